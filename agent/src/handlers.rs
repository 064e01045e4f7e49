//! Event and query handler scripts, with Serf's environment so existing Serf
//! handlers keep working: `SERF_EVENT` (`member-join`, `member-leave`,
//! `member-failed`, `member-update`, `member-reap`, `user`, `query`, plus
//! nuvol's `service-up` and `service-down`), `SERF_SELF_NAME`,
//! `SERF_SELF_ROLE`, `SERF_TAG_<KEY>` for this node's tags,
//! `SERF_USER_EVENT` / `SERF_USER_LTIME`, `SERF_QUERY_NAME` /
//! `SERF_QUERY_LTIME`; the same values are also set as `NUVOL_*`, with
//! `NUVOL_MICROCLOUD`. Member events get one line per member on stdin
//! (`name<TAB>address<TAB>role<TAB>tags`), user events and queries their
//! payload. A query handler's stdout (at most [`MAX_ANSWER`] bytes) is this
//! node's answer.
//!
//! Each handler runs as `/bin/sh -c COMMAND` on a small thread, is killed
//! after its timeout, and at most [`MAX_RUNNING`] run at once; more wait.
//! A handler never blocks the gossip loop.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Handlers running at once; a burst of member events queues behind them.
pub const MAX_RUNNING: usize = 4;
/// Bytes of a query handler's stdout used as the answer (it must fit a datagram).
pub const MAX_ANSWER: usize = 1024;
/// How long an event handler may run.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(60);

/// One invocation: what to tell the script.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    pub command: String,
    pub env: Vec<(String, String)>,
    pub stdin: Vec<u8>,
    pub timeout: Duration,
}

/// How a handler ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Exit code; `None` when killed by a signal or the timeout.
    pub code: Option<i32>,
    pub timed_out: bool,
    /// Stdout, truncated to [`MAX_ANSWER`].
    pub stdout: Vec<u8>,
}

/// Builds the Serf-style environment.
pub fn environment(
    event: &str,
    self_name: &str,
    microcloud: &str,
    tags: &[(String, String)],
    extra: &[(&str, String)],
) -> Vec<(String, String)> {
    let mut env = Vec::new();
    let mut both = |k: &str, v: String| {
        env.push((format!("SERF_{k}"), v.clone()));
        env.push((format!("NUVOL_{k}"), v));
    };
    both("EVENT", event.to_string());
    both("SELF_NAME", self_name.to_string());
    let role = tags
        .iter()
        .find(|(k, _)| k == "role")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    both("SELF_ROLE", role);
    for (k, v) in tags {
        let key: String = k
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        both(&format!("TAG_{key}"), v.clone());
    }
    for (k, v) in extra {
        both(k, v.clone());
    }
    env.push(("NUVOL_MICROCLOUD".into(), microcloud.to_string()));
    env
}

/// Runs one handler to completion on a blocking thread (event and query
/// handlers share this one task type).
pub async fn run(inv: Invocation) -> std::io::Result<Outcome> {
    smol::unblock(move || run_blocking(&inv)).await
}

/// Runs one handler to completion (blocking: call it from a thread).
pub fn run_blocking(inv: &Invocation) -> std::io::Result<Outcome> {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new("/bin/sh")
        // Its own process group, so a timeout kills what the script started too.
        .process_group(0)
        .arg("-c")
        .arg(&inv.command)
        .envs(inv.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    // Payloads fit one datagram, far below a pipe's buffer, so this write
    // cannot block on a script that never reads.
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(&inv.stdin);
    }
    let group = nix::unistd::Pid::from_raw(child.id() as i32);
    let kill_group = || {
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    };
    let stdout = child.stdout.take();
    // The reader hands its bytes back through its JoinHandle (no channel:
    // std's channel code would be the only one left in the binary).
    let reader = std::thread::Builder::new()
        .stack_size(32 * 1024)
        .spawn(move || {
            let mut out = Vec::new();
            if let Some(s) = stdout {
                let mut limited = s.take(MAX_ANSWER as u64);
                let _ = limited.read_to_end(&mut out);
                // Drain the rest so the script never blocks on a full pipe.
                let mut rest = limited.into_inner();
                let _ = std::io::copy(&mut rest, &mut std::io::sink());
            }
            out
        })?;
    let deadline = Instant::now() + inv.timeout;
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            kill_group();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // A background process the script left behind may still hold stdout
    // open; give it a moment, then end the whole group and wait a moment more.
    let finished = reader_done(&reader) || {
        kill_group();
        reader_done(&reader)
    };
    let stdout = if finished {
        reader.join().unwrap_or_default()
    } else {
        // Still blocked (the pipe is held by something outside the group):
        // answer without its output; the thread ends when the pipe closes.
        Vec::new()
    };
    Ok(Outcome {
        code: status.code(),
        timed_out,
        stdout,
    })
}

/// Whether the reader thread ends within a second, looking every 20 ms.
fn reader_done<T>(reader: &std::thread::JoinHandle<T>) -> bool {
    for _ in 0..50 {
        if reader.is_finished() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    reader.is_finished()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_sees_serf_environment_and_payload() {
        let env = environment(
            "user",
            "n1",
            "mc",
            &[
                ("role".into(), "web".into()),
                ("load-avg".into(), "3".into()),
            ],
            &[("USER_EVENT", "deploy".into())],
        );
        let out = run_blocking(&Invocation {
            command: "echo \"$SERF_EVENT $SERF_SELF_NAME $SERF_SELF_ROLE $SERF_TAG_LOAD_AVG $SERF_USER_EVENT $NUVOL_MICROCLOUD $(cat)\"".into(),
            env,
            stdin: b"payload".to_vec(),
            timeout: Duration::from_secs(10),
        })
        .unwrap();
        assert_eq!(out.code, Some(0));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "user n1 web 3 deploy mc payload\n"
        );
    }

    #[test]
    fn slow_handler_is_killed_at_its_timeout() {
        let started = Instant::now();
        let out = run_blocking(&Invocation {
            command: "sleep 30".into(),
            timeout: Duration::from_millis(200),
            ..Invocation::default()
        })
        .unwrap();
        assert!(out.timed_out);
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn long_output_is_truncated_and_does_not_block() {
        let out = run_blocking(&Invocation {
            command: "head -c 200000 /dev/zero".into(),
            timeout: Duration::from_secs(10),
            ..Invocation::default()
        })
        .unwrap();
        assert_eq!(out.code, Some(0));
        assert_eq!(out.stdout.len(), MAX_ANSWER);
    }
}
