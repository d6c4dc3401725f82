//! Everything the CLI prints goes through here.
//!
//! A closed stdout (`keyshare ... | head`) ends the output quietly: the
//! first write that fails with a broken pipe marks stdout closed
//! ([`stdout_closed`]), nothing more is written, and the command goes on to
//! its exit status (a `--follow` loop stops). Writes to stderr never fail
//! the command either.

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;

/// Set once a write to stdout failed.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Whether stdout was found closed (a reader that went away).
pub(crate) fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// Writes `s` to stdout and flushes; after a failure (a closed pipe, a
/// full disk) stdout counts as closed and later writes are skipped.
pub(crate) fn write_stdout(s: &str) {
    if stdout_closed() {
        return;
    }
    let mut out = io::stdout().lock();
    if out
        .write_all(s.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
}

/// Writes `s` to stderr, ignoring failures (there is nowhere left to say so).
fn write_stderr(s: &str) {
    let _ = io::stderr().lock().write_all(s.as_bytes());
}

/// Prints a JSON value, pretty, on stdout.
pub(crate) fn json(value: &Value) {
    let s = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    write_stdout(&format!("{s}\n"));
}

/// Prints a JSON value on one line (JSON Lines, for streams).
pub(crate) fn json_line(value: &Value) {
    write_stdout(&format!("{value}\n"));
}

/// Prints lines of text on stdout.
pub(crate) fn text(s: &str) {
    write_stdout(&format!("{s}\n"));
}

/// Prints a table: a header row and aligned columns; "(none)" when empty.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) {
    write_stdout(&render_table(headers, rows));
}

pub(crate) fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    if rows.is_empty() {
        return "(none)\n".to_owned();
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let n = cells.len();
        let mut l = String::new();
        for (i, (cell, w)) in cells.into_iter().zip(&widths).enumerate() {
            l.push_str(cell);
            if i + 1 < n {
                let pad = w.saturating_sub(cell.chars().count()) + 2;
                l.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// One error line on stderr, with secrets masked.
pub(crate) fn error(message: &str, secrets: &[String]) {
    write_stderr(&format!("error: {}\n", one_line(message, secrets)));
}

/// One warning line on stderr.
pub(crate) fn warning(message: &str) {
    write_stderr(&format!("warning: {}\n", one_line(message, &[])));
}

/// A clap outcome: help and version go to stdout with exit 0; errors
/// become one line on stderr with exit 1.
pub(crate) fn clap_error(e: &clap::Error, secrets: &[String]) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let rendered = e.render().to_string();
        if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            write_stderr(&rendered);
            return ExitCode::FAILURE;
        }
        write_stdout(&rendered);
        return ExitCode::SUCCESS;
    }
    // clap renders "error: ...", details on further lines, then a usage
    // section: keep what comes before the usage, on one line.
    let rendered = e.render().to_string();
    let mut parts = Vec::new();
    for l in rendered.lines() {
        let l = l.trim();
        if l.starts_with("Usage:") || l.starts_with("For more information") {
            break;
        }
        if !l.is_empty() {
            parts.push(l);
        }
    }
    let joined = parts.join(" ");
    let message = joined.strip_prefix("error:").unwrap_or(&joined).trim();
    error(&format!("{message} (see --help)"), secrets);
    ExitCode::FAILURE
}

/// Secrets shorter than this are not masked: they would garble every
/// message, and are no secret anyway (real tokens are `ks_` + 64 hex).
const MIN_MASKED_LEN: usize = 8;

/// `message` on one line, every secret replaced by `***`.
fn one_line(message: &str, secrets: &[String]) -> String {
    let mut s = message.replace(['\n', '\r'], " ");
    for secret in secrets {
        if secret.len() >= MIN_MASKED_LEN {
            s = s.replace(secret.as_str(), "***");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_say_none_when_empty() {
        let t = render_table(
            &["NAME", "N"],
            &[
                vec!["a".into(), "1".into()],
                vec!["long".into(), "22".into()],
            ],
        );
        assert_eq!(t, "NAME  N\na     1\nlong  22\n");
        assert_eq!(render_table(&["X"], &[]), "(none)\n");
    }

    #[test]
    fn error_lines_are_single_and_masked() {
        assert_eq!(
            one_line("a\nb sekrit-token c", &["sekrit-token".into()]),
            "a b *** c"
        );
        assert_eq!(one_line("a t", &["t".into()]), "a t");
    }
}
