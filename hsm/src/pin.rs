//! PINs and passphrases, and where they come from.

use std::fmt;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// A PIN or passphrase. Its memory is zeroed on drop and `Debug` prints
/// `Pin(<redacted>)`; there is no `Display`.
#[derive(Clone)]
pub struct Pin(Zeroizing<String>);

impl Pin {
    /// Wraps a secret string.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(Zeroizing::new(secret.into()))
    }

    /// The secret, for handing to a token or a decryption routine only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

impl PartialEq for Pin {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for Pin {}

impl From<&str> for Pin {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

/// Where a PIN or passphrase comes from.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum PinSource {
    /// The first line of a file (a trailing newline is dropped).
    File(PathBuf),
    /// An environment variable, by name.
    Env(String),
    /// Asked on the terminal with echo off. Refused when stdin is not a TTY.
    Prompt(String),
    /// A value already in memory (tests, `pin-value` URIs, callers that
    /// obtained it elsewhere).
    Value(Pin),
}

impl PinSource {
    /// Reads the PIN.
    pub fn read(&self) -> Result<Pin> {
        match self {
            Self::File(path) => {
                let text =
                    Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                        Error::PinSource(format!("PIN file {}: {e}", path.display()))
                    })?);
                let first = text.lines().next().unwrap_or("");
                if first.is_empty() {
                    return Err(Error::PinSource(format!(
                        "PIN file {} is empty",
                        path.display()
                    )));
                }
                Ok(Pin::new(first))
            }
            Self::Env(name) => match std::env::var(name) {
                Ok(v) if !v.is_empty() => Ok(Pin::new(v)),
                Ok(_) => Err(Error::PinSource(format!(
                    "environment variable {name} is empty"
                ))),
                Err(std::env::VarError::NotPresent) => Err(Error::PinSource(format!(
                    "environment variable {name} is not set"
                ))),
                Err(std::env::VarError::NotUnicode(_)) => Err(Error::PinSource(format!(
                    "environment variable {name} is not valid UTF-8"
                ))),
            },
            Self::Prompt(prompt) => prompt_pin(prompt),
            Self::Value(pin) => Ok(pin.clone()),
        }
    }
}

/// Asks for a PIN on the terminal, with echo turned off through `stty`.
fn prompt_pin(prompt: &str) -> Result<Pin> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Error::PinSource(
            "stdin is not a terminal, so the PIN cannot be prompted for; \
             use a PIN file or an environment variable"
                .into(),
        ));
    }
    let stty = |arg: &str| {
        Command::new("stty")
            .arg(arg)
            .stdin(Stdio::inherit())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    let mut err = std::io::stderr();
    let _ = write!(err, "{prompt}: ");
    let _ = err.flush();
    let echo_off = stty("-echo");
    let mut line = Zeroizing::new(String::new());
    let read = stdin.lock().read_line(&mut line);
    if echo_off {
        stty("echo");
    }
    let _ = writeln!(err);
    read.map_err(|e| Error::PinSource(format!("reading from the terminal: {e}")))?;
    let pin = line.trim_end_matches(['\r', '\n']);
    if pin.is_empty() {
        return Err(Error::PinSource("empty PIN".into()));
    }
    Ok(Pin::new(pin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let p = Pin::new("123456");
        assert_eq!(format!("{p:?}"), "Pin(<redacted>)");
        let s = PinSource::Value(p);
        assert!(!format!("{s:?}").contains("123456"));
    }

    #[test]
    fn file_source_reads_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pin");
        std::fs::write(&path, "987654\n").unwrap();
        assert_eq!(PinSource::File(path).read().unwrap().expose(), "987654");
    }

    #[test]
    fn prompt_without_a_terminal_is_a_clear_error() {
        if std::io::stdin().is_terminal() {
            return; // Interactive run: the prompt would wait for input.
        }
        let err = PinSource::Prompt("PIN".into()).read().unwrap_err();
        assert!(err.to_string().contains("not a terminal"), "{err}");
    }

    #[test]
    fn missing_env_var_is_named_in_the_error() {
        let err = PinSource::Env("KEYSHARE_TEST_SURELY_UNSET_VAR".into())
            .read()
            .unwrap_err();
        assert!(err.to_string().contains("KEYSHARE_TEST_SURELY_UNSET_VAR"));
    }
}
