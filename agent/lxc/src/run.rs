//! Running one external command with a deadline.
//!
//! Every `lxc-*`, `nft` or `ip` call goes through [`run`]: the child gets no
//! stdin, its stdout and stderr are drained on their own threads (so a chatty
//! tool can never block on a full pipe), each stream keeps at most
//! [`OUTPUT_CAP`] bytes, and a child still running at the deadline is killed
//! and reaped. A hung `lxc-stop` therefore costs the agent a bounded wait,
//! never a stuck thread.
//!
//! ```no_run
//! use std::time::Duration;
//! let out = nuvol_lxc::run::run(&["lxc-info", "--version"], Duration::from_secs(5)).unwrap();
//! assert!(out.success());
//! ```

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Bytes kept of each output stream; the rest is read and dropped.
pub const OUTPUT_CAP: usize = 256 * 1024;

/// How often a running child is checked against its deadline.
const POLL: Duration = Duration::from_millis(20);

/// What a finished command left behind.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The last non-empty stderr line, or stdout's, for an error message.
    pub fn reason(&self) -> String {
        let pick = |s: &str| {
            s.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::trim)
                .map(String::from)
        };
        pick(&self.stderr)
            .or_else(|| pick(&self.stdout))
            .unwrap_or_else(|| format!("{}", self.status))
    }
}

/// Why a command gave no [`Output`].
#[derive(Debug)]
pub enum RunError {
    /// The program is not on `PATH` (or not executable).
    NotFound(String),
    /// It ran past its deadline and was killed.
    TimedOut { program: String, after: Duration },
    /// Spawning or waiting failed for another reason.
    Io { program: String, error: io::Error },
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::NotFound(p) => write!(f, "{p}: command not found"),
            RunError::TimedOut { program, after } => {
                write!(
                    f,
                    "{program}: no answer after {} s, killed",
                    after.as_secs()
                )
            }
            RunError::Io { program, error } => write!(f, "{program}: {error}"),
        }
    }
}

impl std::error::Error for RunError {}

/// Runs `argv` (program first) and waits at most `timeout` for it.
pub fn run<S: AsRef<str>>(argv: &[S], timeout: Duration) -> Result<Output, RunError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(RunError::Io {
            program: String::new(),
            error: io::Error::new(io::ErrorKind::InvalidInput, "empty command"),
        });
    };
    let program = program.as_ref().to_string();
    let mut cmd = Command::new(&program);
    cmd.args(args.iter().map(AsRef::as_ref))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(RunError::NotFound(program)),
        Err(error) => return Err(RunError::Io { program, error }),
    };
    wait_bounded(child, &program, timeout)
}

fn wait_bounded(mut child: Child, program: &str, timeout: Duration) -> Result<Output, RunError> {
    // Both pipes as plain files: one reader function, not one per pipe type.
    let out = child.stdout.take().map(|p| drain(OwnedFd::from(p).into()));
    let err = child.stderr.take().map(|p| drain(OwnedFd::from(p).into()));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                // Kill, then reap so no zombie outlives the call.
                let _ = child.kill();
                let _ = child.wait();
                // The readers end once every writer is gone; a grandchild that
                // kept the pipe open would hold them, so they are not joined.
                return Err(RunError::TimedOut {
                    program: program.to_string(),
                    after: timeout,
                });
            }
            Ok(None) => thread::sleep(POLL),
            Err(error) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(RunError::Io {
                    program: program.to_string(),
                    error,
                });
            }
        }
    };
    Ok(Output {
        status,
        stdout: collect(out, deadline),
        stderr: collect(err, deadline),
    })
}

type Reader = thread::JoinHandle<Vec<u8>>;

fn drain(mut r: File) -> Reader {
    thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = OUTPUT_CAP.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
        kept
    })
}

/// The stream's text; a daemon the command left behind may still hold the
/// pipe, so waiting is bounded by the command's own deadline (at least a
/// moment, for output written just before exit). A reader still running
/// then is left to end on its own.
fn collect(reader: Option<Reader>, deadline: Instant) -> String {
    let Some(reader) = reader else {
        return String::new();
    };
    let until = deadline.max(Instant::now() + Duration::from_millis(200));
    while !reader.is_finished() {
        if Instant::now() >= until {
            return String::new();
        }
        thread::sleep(POLL);
    }
    match reader.join() {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_stdout_and_status() {
        let out = run(
            &["sh", "-c", "echo hello; echo oops >&2; exit 3"],
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(out.stdout, "hello\n");
        assert_eq!(out.stderr, "oops\n");
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.reason(), "oops");
    }

    #[test]
    fn kills_a_command_past_its_deadline() {
        let started = Instant::now();
        let err = run(&["sleep", "30"], Duration::from_millis(300)).unwrap_err();
        assert!(matches!(err, RunError::TimedOut { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn missing_program_is_not_found() {
        let err = run(&["nuvol-no-such-tool"], Duration::from_secs(1)).unwrap_err();
        assert!(matches!(err, RunError::NotFound(ref p) if p == "nuvol-no-such-tool"));
    }

    #[test]
    fn large_output_does_not_block_and_is_capped() {
        let out = run(
            &["sh", "-c", "head -c 1000000 /dev/zero"],
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(out.success());
        assert_eq!(out.stdout.len(), OUTPUT_CAP);
    }
}
