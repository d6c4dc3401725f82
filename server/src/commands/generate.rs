//! `keyshare-server completions SHELL` and `keyshare-server man DIR`: a
//! shell completion script and man pages, generated from the binary's clap
//! definitions (`clap_complete`, `clap_mangen`), so they never drift from
//! the commands (docs/cli.md#shell-completions-and-man-pages).

use std::io::Write;
use std::path::{Path, PathBuf};

pub use clap_complete::Shell;

use super::CliError;

/// Writes the completion script of `cmd`, run as `bin`, for `shell` to `out`.
pub fn completions(
    mut cmd: clap::Command,
    bin: &str,
    shell: Shell,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, bin, &mut script);
    out.write_all(&script)
        .and_then(|()| out.flush())
        .map_err(|source| CliError::Io {
            path: "<stdout>".into(),
            source,
        })
}

/// Renders the man pages of `cmd` and of its visible subcommands, at every
/// depth (`keyshare-server.1`, `keyshare-server-serve.1`, ...), into `dir`
/// (created if missing), each replaced atomically; returns the files.
pub fn man_pages(cmd: clap::Command, dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    std::fs::create_dir_all(dir).map_err(super::io_at(dir))?;
    let mut cmd = cmd.disable_help_subcommand(true);
    // Gives every subcommand its display name (`keyshare-server-serve`).
    cmd.build();
    let mut pending = vec![cmd];
    let mut written = Vec::new();
    while let Some(cmd) = pending.pop() {
        pending.extend(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
        let man = clap_mangen::Man::new(cmd);
        let path = dir.join(man.get_filename());
        let mut page = Vec::new();
        man.render(&mut page).map_err(super::io_at(&path))?;
        keyshare_fsio::write_atomically(&path, &page, 0o644)?;
        written.push(path);
    }
    Ok(written)
}
