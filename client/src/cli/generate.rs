//! `keyshare completions SHELL` and `keyshare man DIR`: shell completion
//! scripts and man pages, generated from the clap definitions of
//! [`super::Cli`] (`clap_complete`, `clap_mangen`), so they never drift
//! from the commands (`docs/cli.md#shell-completions-and-man-pages`).

use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::{output, Cli, Error};

/// The binary's name, as completions and man pages call it.
const BIN: &str = "keyshare";

/// `keyshare completions`.
#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to write a completion script for.
    #[arg(value_enum)]
    shell: Shell,
}

/// `keyshare man`.
#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// The directory to write the pages into (created if missing):
    /// `keyshare.1`, `keyshare-refresh.1`, `keyshare-admin-namespace-list.1`, ...
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

/// Prints the completion script for `a.shell` on stdout.
pub(crate) fn completions(a: CompletionsArgs) -> Result<(), Error> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, BIN, &mut script);
    let script = String::from_utf8(script)
        .map_err(|e| Error::Input(format!("the completion script is not UTF-8: {e}")))?;
    output::write_stdout(&script);
    Ok(())
}

/// Writes a man page per command and subcommand into `a.dir`, each
/// atomically (a reader sees the old page or the new one).
pub(crate) fn man(a: ManArgs) -> Result<(), Error> {
    let written = man_pages(Cli::command(), &a.dir)?;
    output::text(&format!(
        "wrote {} man pages to {} ({BIN}.1 and one per subcommand)",
        written.len(),
        a.dir.display()
    ));
    Ok(())
}

/// Renders the pages of `cmd` and of its visible subcommands, at every
/// depth (`keyshare-admin-namespace-list.1`), into `dir`; returns the files.
fn man_pages(cmd: clap::Command, dir: &Path) -> Result<Vec<PathBuf>, Error> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Input(format!("cannot create {}: {e}", dir.display())))?;
    let mut cmd = cmd.disable_help_subcommand(true);
    // Gives every subcommand its display name (`keyshare-refresh`).
    cmd.build();
    let mut pending = vec![cmd];
    let mut written = Vec::new();
    while let Some(cmd) = pending.pop() {
        pending.extend(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
        let man = clap_mangen::Man::new(cmd);
        let path = dir.join(man.get_filename());
        let mut page = Vec::new();
        man.render(&mut page)
            .map_err(|e| Error::Input(format!("cannot render {}: {e}", path.display())))?;
        keyshare_fsio::write_atomically(&path, &page, 0o644)
            .map_err(|e| Error::Input(format!("cannot write {}: {}", path.display(), e.source)))?;
        written.push(path);
    }
    Ok(written)
}
