//! The memory a child process really used: its peak resident set, as GNU
//! `time` reports it (`/usr/bin/time -f %M`, Debian's `time` package),
//! under a generous address-space cap that stops a runaway before it takes
//! the machine down.
//!
//! Why resident memory and not an address-space limit (`ulimit -v`) alone:
//! the binaries allocate through mimalloc, which reserves address space in
//! large aligned segments well beyond what it touches, and how much depends
//! on where the kernel places its mappings. A limit on address space then
//! fails a valid run now and then, without any more memory being used.
//! What a bound on memory is about is the memory used, so the tests bound
//! [`Measured::peak_rss_kib`].
//!
//! ```ignore
//! let measured = Measured::new();
//! let mut cmd = measured.bash(r#""$0" "$@""#);
//! cmd.arg(BIN).args(["import", bundle]);
//! let out = cmd.output().unwrap();
//! assert!(measured.peak_rss_kib() < LIMIT_KIB);
//! ```

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

/// The address-space cap of a measured child, in KiB: far above what any
/// bounded run needs, low enough that a runaway allocation fails fast.
pub const ADDRESS_SPACE_CAP_KIB: u64 = 4 << 20;

/// One measured run: where GNU `time` writes the child's peak resident set
/// (a file in the temporary directory, removed when dropped).
#[derive(Debug)]
pub struct Measured {
    report: PathBuf,
}

impl Drop for Measured {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.report);
    }
}

impl Default for Measured {
    fn default() -> Self {
        Self::new()
    }
}

impl Measured {
    /// A new measurement, not yet run.
    pub fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let report =
            std::env::temp_dir().join(format!("keyshare-peak-rss-{}-{n}", std::process::id()));
        let _ = std::fs::remove_file(&report);
        Self { report }
    }

    /// `bash -c 'ulimit -v CAP && exec /usr/bin/time ... COMMAND'`:
    /// `command` is the rest of a bash command line, starting with the
    /// program (usually `"$0" "$@"`, with the program and its arguments
    /// added to the returned [`Command`] as `$0`, `$1`, ...). It may use
    /// bash's own syntax, such as `<(cat "$1")`.
    pub fn bash(&self, command: &str) -> Command {
        let report = self.report.to_str().expect("temporary paths are UTF-8");
        assert!(!report.contains('\''), "{report}");
        let mut cmd = Command::new("bash");
        cmd.arg("-c").arg(format!(
            "ulimit -v {ADDRESS_SPACE_CAP_KIB} && exec /usr/bin/time -q -f %M -o '{report}' {command}"
        ));
        cmd
    }

    /// The child's peak resident set in KiB, once it has exited (panics
    /// when GNU `time` wrote no report: it did not run, or was killed).
    pub fn peak_rss_kib(&self) -> u64 {
        let text = std::fs::read_to_string(&self.report)
            .map_err(|e| format!("{}: {e}", self.report.display()))
            .expect("a peak-memory report (is Debian's `time` package installed?)");
        text.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .and_then(|l| l.trim().parse().ok())
            .ok_or(text)
            .expect("a peak-memory report that is a number of KiB")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_that_touches_memory_is_measured_at_least_that_much() {
        // 64 MiB written by a child (python is on every test machine; a
        // shell string would not be written to at once).
        let small = Measured::new();
        let status = small
            .bash(r#""$0" -c 'pass'"#)
            .arg("python3")
            .status()
            .expect("python3");
        assert!(status.success());
        let big = Measured::new();
        let status = big
            .bash(r#""$0" -c 'b = bytearray(64 << 20); b[::4096] = b"x" * len(b[::4096])'"#)
            .arg("python3")
            .status()
            .expect("python3");
        assert!(status.success());
        assert!(
            big.peak_rss_kib() >= small.peak_rss_kib() + 60 * 1024,
            "{} vs {}",
            big.peak_rss_kib(),
            small.peak_rss_kib()
        );
    }

    #[test]
    fn a_failing_child_still_reports_and_keeps_its_exit_code() {
        let measured = Measured::new();
        let status = measured
            .bash(r#""$0" -c 'exit 3'"#)
            .arg("sh")
            .status()
            .expect("sh");
        assert_eq!(status.code(), Some(3));
        assert!(measured.peak_rss_kib() > 0);
    }
}
