//! `keyshare completions SHELL` and `keyshare man DIR`: generated from the
//! clap definitions, they name the real subcommands, bash accepts the
//! script, and `man` renders the pages.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use crate::common::keyshare;

#[test]
fn bash_completion_defines_the_function_names_the_subcommands_and_parses() {
    let run = keyshare(&["completions", "bash"]);
    run.assert_ok();
    let script = &run.stdout;
    assert!(!script.trim().is_empty());
    let registers = script
        .lines()
        .map(str::trim)
        .any(|l| l.starts_with("complete -F _keyshare ") && l.ends_with(" keyshare"));
    assert!(registers, "no `complete -F _keyshare ... keyshare` line");
    for sub in [
        "refresh",
        "decide",
        "watch",
        "verify-blob",
        "completions",
        "man",
    ] {
        assert!(script.contains(sub), "the script does not mention `{sub}`");
    }
    // Nested subcommands and their options too.
    assert!(
        script.contains("keyshare__subcmd__admin__subcmd__namespace"),
        "no admin namespace"
    );
    assert!(script.contains("--expiring-within"), "no list option");
    assert_bash_accepts(script);
}

/// `bash -n`: the script parses.
pub(crate) fn assert_bash_accepts(script: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("completion.bash");
    std::fs::write(&file, script).unwrap();
    let out = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "bash -n refused the script: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_shell_gets_a_script_naming_the_subcommands() {
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let run = keyshare(&["completions", shell]);
        run.assert_ok();
        for sub in ["refresh", "decide", "watch"] {
            assert!(run.stdout.contains(sub), "{shell}: no `{sub}`");
        }
    }
}

#[test]
fn an_unknown_shell_is_a_one_line_usage_error() {
    let run = keyshare(&["completions", "tcsh"]);
    let line = run.assert_error_line(1);
    assert!(line.contains("tcsh"), "{line}");
    assert!(line.contains("bash"), "the line lists the shells: {line}");
    assert!(run.stdout.is_empty(), "{run:?}");
}

#[test]
fn man_writes_a_page_per_command_and_subcommand_that_man_renders() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    let run = keyshare(&["man", out.to_str().unwrap()]);
    run.assert_ok();
    for page in [
        "keyshare.1",
        "keyshare-refresh.1",
        "keyshare-decide.1",
        "keyshare-watch.1",
        "keyshare-completions.1",
        "keyshare-man.1",
        "keyshare-admin.1",
        "keyshare-admin-namespace.1",
        "keyshare-admin-namespace-list.1",
        "keyshare-root-verify.1",
        "keyshare-tuf-download.1",
    ] {
        assert!(out.join(page).is_file(), "no {page}");
    }
    // No page for clap's `help` subcommand, nothing but pages.
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("keyshare") && n.ends_with(".1")),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.contains("-help")), "{names:?}");
    assert!(
        run.stdout
            .contains(&format!("wrote {} man pages", names.len())),
        "{run:?}"
    );

    let page = keyshare_testkit::fixture::render_man_page(&out.join("keyshare-refresh.1"));
    assert!(
        page.contains("Refresh the trust state from the server (TUF), into the cache"),
        "{page}"
    );
    assert!(page.contains("--from-bundle"), "{page}");
    let top = keyshare_testkit::fixture::render_man_page(&out.join("keyshare.1"));
    assert!(
        top.contains("key-sharing and trust-distribution client"),
        "{top}"
    );

    // Again into the same directory: the pages are replaced, no temporary
    // file is left.
    keyshare(&["man", out.to_str().unwrap()]).assert_ok();
    let again = std::fs::read_dir(&out).unwrap().count();
    assert_eq!(again, names.len());
}
