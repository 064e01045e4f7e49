//! The LXC driver: containers under one lxcpath, driven through the `lxc-*`
//! command-line tools (never liblxc, which would break the static build).
//!
//! Every call is bounded by a timeout from [`Timeouts`]; every piece of tool
//! output is parsed defensively and a surprise becomes an [`LxcError`], never
//! a panic. Container names are checked before they reach a path or a cgroup.
//!
//! ```no_run
//! use nuvol_lxc::driver::{Lxc, Source};
//! let lxc = Lxc::new("/tmp/my-lxcpath");
//! let conf = std::path::Path::new("/tmp/net.conf"); // e.g. "lxc.net.0.type = empty"
//! lxc.create("web", &Source::Busybox, conf).unwrap();
//! lxc.start("web").unwrap();
//! println!("{:?}", lxc.info("web").unwrap());
//! lxc.destroy("web").unwrap();
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::host::{Arch, CgroupLayout};
use crate::run::{run, Output, RunError};

/// How long each kind of call may take before it is killed.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// `lxc-create`: the `download` template fetches an image, so minutes.
    pub create: Duration,
    /// `lxc-start -d` until the container is RUNNING.
    pub start: Duration,
    /// Grace between the halt signal and SIGKILL in `lxc-stop`.
    pub stop_grace: Duration,
    /// `lxc-info`, `lxc-destroy` and other quick calls.
    pub quick: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            create: Duration::from_secs(600),
            start: Duration::from_secs(30),
            stop_grace: Duration::from_secs(10),
            quick: Duration::from_secs(20),
        }
    }
}

/// Config lines a container from a bare rootfs tarball needs (a template
/// would have written them): device nodes, /proc, /sys and its cgroup view.
const ROOTFS_BASE: &str = "lxc.autodev = 1\nlxc.mount.auto = proc:mixed sys:ro cgroup:mixed\nlxc.tty.max = 0\nlxc.pty.max = 8\nlxc.cap.drop = sys_module mac_admin mac_override sys_time\n";

/// Where a container's root filesystem comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The offline `busybox` template: copies the host's busybox, needs no network.
    Busybox,
    /// The `download` template: an image from images.linuxcontainers.org.
    Download {
        dist: String,
        release: String,
        arch: Arch,
    },
    /// A local rootfs tarball (any compression `tar` understands).
    Rootfs(PathBuf),
}

/// A container's state as `lxc-info` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Stopped,
    Starting,
    Running,
    Stopping,
    Aborting,
    Freezing,
    Frozen,
    Thawed,
}

impl State {
    pub fn parse(s: &str) -> Option<State> {
        Some(match s {
            "STOPPED" => State::Stopped,
            "STARTING" => State::Starting,
            "RUNNING" => State::Running,
            "STOPPING" => State::Stopping,
            "ABORTING" => State::Aborting,
            "FREEZING" => State::Freezing,
            "FROZEN" => State::Frozen,
            "THAWED" => State::Thawed,
            _ => return None,
        })
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            State::Stopped => "STOPPED",
            State::Starting => "STARTING",
            State::Running => "RUNNING",
            State::Stopping => "STOPPING",
            State::Aborting => "ABORTING",
            State::Freezing => "FREEZING",
            State::Frozen => "FROZEN",
            State::Thawed => "THAWED",
        }
    }
}

/// What `lxc-info` tells about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub state: State,
    /// The container's init, as seen from the host.
    pub pid: Option<u32>,
    pub ips: Vec<String>,
    pub memory_bytes: Option<u64>,
}

impl Info {
    /// Parses `lxc-info -H` output (`Key:   value` lines; `IP:` may repeat).
    pub fn parse(text: &str) -> Result<Info, String> {
        let mut state = None;
        let mut info = Info {
            state: State::Stopped,
            pid: None,
            ips: Vec::new(),
            memory_bytes: None,
        };
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match key.trim() {
                "State" => {
                    state = Some(
                        State::parse(value).ok_or_else(|| format!("unknown state {value:?}"))?,
                    )
                }
                "PID" => info.pid = Some(value.parse().map_err(|_| format!("bad PID {value:?}"))?),
                "IP" => info.ips.push(value.to_string()),
                "Memory use" => {
                    info.memory_bytes = Some(
                        value
                            .parse()
                            .map_err(|_| format!("bad memory use {value:?}"))?,
                    )
                }
                _ => {}
            }
        }
        info.state = state.ok_or("no State line")?;
        Ok(info)
    }
}

/// Why a driver call failed. A failed call leaves the container as it was,
/// except `create`, which removes what it half-made.
#[derive(Debug)]
pub enum LxcError {
    /// The name cannot be a container name (it would reach paths and cgroups).
    BadName(String),
    /// No such container under this lxcpath.
    NotFound(String),
    /// Something of that name is already under the lxcpath; it was not touched.
    Exists(String),
    /// A tool could not be run, or ran too long.
    Run(RunError),
    /// A tool ran and refused; `reason` is its last words.
    Failed {
        op: &'static str,
        name: String,
        reason: String,
    },
    /// A tool said something this driver cannot read.
    Parse {
        op: &'static str,
        name: String,
        reason: String,
    },
    /// A host file (cgroup, config) could not be read or written.
    Io { what: String, error: std::io::Error },
}

impl fmt::Display for LxcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LxcError::BadName(n) => write!(
                f,
                "bad container name {n:?}: use 1-32 of a-z, 0-9 and '-', starting with a letter"
            ),
            LxcError::NotFound(n) => write!(f, "container {n} does not exist"),
            LxcError::Exists(n) => write!(f, "container {n} already exists"),
            LxcError::Run(e) => write!(f, "{e}"),
            LxcError::Failed { op, name, reason } => write!(f, "{op} {name} failed: {reason}"),
            LxcError::Parse { op, name, reason } => {
                write!(f, "{op} {name}: unreadable output: {reason}")
            }
            LxcError::Io { what, error } => write!(f, "{what}: {error}"),
        }
    }
}

impl std::error::Error for LxcError {}

impl From<RunError> for LxcError {
    fn from(e: RunError) -> Self {
        LxcError::Run(e)
    }
}

/// Whether `name` is safe as a container name, path part and cgroup name.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// Containers under one lxcpath.
#[derive(Debug, Clone)]
pub struct Lxc {
    pub lxcpath: PathBuf,
    pub timeouts: Timeouts,
}

impl Lxc {
    pub fn new(lxcpath: impl Into<PathBuf>) -> Lxc {
        Lxc {
            lxcpath: lxcpath.into(),
            timeouts: Timeouts::default(),
        }
    }

    fn path_arg(&self) -> String {
        self.lxcpath.to_string_lossy().into_owned()
    }

    fn check(&self, name: &str) -> Result<(), LxcError> {
        if valid_name(name) {
            Ok(())
        } else {
            Err(LxcError::BadName(name.to_string()))
        }
    }

    /// The container's directory (config, rootfs, nuvol's records).
    pub fn dir(&self, name: &str) -> PathBuf {
        self.lxcpath.join(name)
    }

    /// Whether a container of that name exists (its config is there).
    pub fn exists(&self, name: &str) -> bool {
        valid_name(name) && self.dir(name).join("config").is_file()
    }

    /// Names of the containers under the lxcpath, sorted.
    pub fn list(&self) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(&self.lxcpath)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| self.exists(n))
            .collect();
        out.sort();
        out
    }

    /// `lxc-* -n NAME -P PATH` plus `rest`.
    fn argv(&self, tool: &str, name: &str, rest: &[&str]) -> Vec<String> {
        let mut v = vec![
            tool.to_string(),
            "-n".into(),
            name.to_string(),
            "-P".into(),
            self.path_arg(),
        ];
        v.extend(rest.iter().map(|s| s.to_string()));
        v
    }

    fn call(
        &self,
        op: &'static str,
        name: &str,
        argv: &[String],
        timeout: Duration,
    ) -> Result<Output, LxcError> {
        let out = run(argv, timeout)?;
        if out.success() {
            Ok(out)
        } else {
            Err(LxcError::Failed {
                op,
                name: name.to_string(),
                reason: out.reason(),
            })
        }
    }

    /// Creates a container from `source`, with `config` (an LXC config
    /// fragment: network, at least) as its initial configuration. On failure
    /// nothing of it is left under the lxcpath. A name already there is
    /// refused with [`LxcError::Exists`] before anything runs, so the
    /// cleanup of a failed create can never remove a container it did not make.
    pub fn create(&self, name: &str, source: &Source, config: &Path) -> Result<(), LxcError> {
        self.check(name)?;
        if self.dir(name).symlink_metadata().is_ok() {
            return Err(LxcError::Exists(name.to_string()));
        }
        std::fs::create_dir_all(&self.lxcpath).map_err(|error| LxcError::Io {
            what: format!("creating {}", self.lxcpath.display()),
            error,
        })?;
        let conf = config.to_string_lossy().into_owned();
        let mut argv = self.argv("lxc-create", name, &["-f", &conf]);
        match source {
            Source::Busybox => argv.extend(["-t".into(), "busybox".into()]),
            Source::Download {
                dist,
                release,
                arch,
            } => argv.extend([
                "-t".into(),
                "download".into(),
                "--".into(),
                "--dist".into(),
                dist.clone(),
                "--release".into(),
                release.clone(),
                "--arch".into(),
                arch.download_name().into(),
            ]),
            // No template: lxc-create writes only the config; the rootfs
            // directory is made and the tarball unpacked below.
            Source::Rootfs(_) => argv.extend(["-t".into(), "none".into()]),
        }
        let made = self
            .call("create", name, &argv, self.timeouts.create)
            .and_then(|_| {
                if let Source::Rootfs(tarball) = source {
                    let rootfs = self.dir(name).join("rootfs");
                    std::fs::create_dir_all(&rootfs).map_err(|error| LxcError::Io {
                        what: format!("creating {}", rootfs.display()),
                        error,
                    })?;
                    let lines = format!(
                        "lxc.rootfs.path = dir:{}\nlxc.uts.name = {name}\n",
                        rootfs.display()
                    );
                    self.append_config(name, &lines)?;
                    let tar = [
                        "tar".to_string(),
                        "-x".into(),
                        "-f".into(),
                        tarball.to_string_lossy().into_owned(),
                        "-C".into(),
                        rootfs.to_string_lossy().into_owned(),
                    ];
                    self.call("unpack rootfs for", name, &tar, self.timeouts.create)?;
                    // No template wrote the basics a bare rootfs needs.
                    self.append_config(name, ROOTFS_BASE)?;
                }
                Ok(())
            });
        if made.is_err() {
            self.remove_leftovers(name);
        }
        made
    }

    /// The directory holding the container's root filesystem, from its config.
    pub fn rootfs(&self, name: &str) -> Result<PathBuf, LxcError> {
        self.check(name)?;
        let config = self.dir(name).join("config");
        let text = std::fs::read_to_string(&config).map_err(|error| LxcError::Io {
            what: format!("reading {}", config.display()),
            error,
        })?;
        rootfs_from_config(&text).ok_or_else(|| LxcError::Parse {
            op: "read rootfs of",
            name: name.to_string(),
            reason: "no lxc.rootfs.path with a dir backend in its config".into(),
        })
    }

    /// Appends LXC config lines (limits, init, environment) to the container's config.
    pub fn append_config(&self, name: &str, lines: &str) -> Result<(), LxcError> {
        use std::io::Write;
        self.check(name)?;
        let config = self.dir(name).join("config");
        let io = |error| LxcError::Io {
            what: format!("appending to {}", config.display()),
            error,
        };
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&config)
            .map_err(io)?;
        f.write_all(lines.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)
    }

    /// Starts the container in the background and waits until it runs.
    /// Starting a running container is not an error.
    pub fn start(&self, name: &str) -> Result<(), LxcError> {
        self.start_with(name, &[])
    }

    /// [`Lxc::start`] with `-s KEY=VALUE` overrides for this run only.
    pub fn start_with(&self, name: &str, overrides: &[(&str, &str)]) -> Result<(), LxcError> {
        self.check(name)?;
        if !self.exists(name) {
            return Err(LxcError::NotFound(name.to_string()));
        }
        let sets: Vec<String> = overrides.iter().map(|(k, v)| format!("{k}={v}")).collect();
        // lxc-start's stderr only says "see the log": keep one, and quote it.
        let log = self.dir(name).join(START_LOG);
        let _ = std::fs::remove_file(&log);
        let log_arg = log.to_string_lossy().into_owned();
        let mut rest = vec!["-d", "-o", &log_arg, "-l", "ERROR"];
        for s in &sets {
            rest.extend(["-s", s.as_str()]);
        }
        let argv = self.argv("lxc-start", name, &rest);
        let started = self
            .call("start", name, &argv, self.timeouts.start)
            .and_then(|_| self.wait_state(name, &State::Running, self.timeouts.start));
        started.map_err(|e| match e {
            LxcError::Failed { op, name, reason } => LxcError::Failed {
                op,
                reason: log_reason(&log).unwrap_or(reason),
                name,
            },
            other => other,
        })
    }

    /// The foreground command a supervisor can own as its child: it runs as
    /// long as the container does, and forwards signals to the container's init.
    pub fn foreground_argv(&self, name: &str) -> Vec<String> {
        self.argv("lxc-start", name, &["-F", "-s", "lxc.console.path=none"])
    }

    /// A watcher a supervisor can own instead of the container itself:
    /// it starts the container unless it already runs, then blocks in
    /// `lxc-wait` until the container stops, and exits 1 (a crash, for a
    /// respawn policy). SIGTERM to its process group runs `lxc-stop` (the
    /// image's halt signal, SIGKILL after the grace) and exits 0. Respawning
    /// it after an agent restart adopts the running container instead of
    /// restarting it; `lxc-start -d` puts the container's monitor in its own
    /// session, so signals to the watcher's group never reach the container.
    pub fn watch_argv(&self, name: &str) -> Vec<String> {
        let grace = self.timeouts.stop_grace.as_secs().max(1);
        let script = format!(
            "trap 'lxc-stop -n \"$0\" -P \"$1\" -t {grace}; exit 0' TERM INT\n\
             lxc-start -d -n \"$0\" -P \"$1\" || exit 111\n\
             lxc-wait -n \"$0\" -P \"$1\" -s STOPPED &\n\
             wait $!\n\
             echo \"container $0 stopped\" >&2\n\
             exit 1\n"
        );
        vec![
            "/bin/sh".into(),
            "-c".into(),
            script,
            name.to_string(),
            self.path_arg(),
        ]
    }

    /// Kills the container outright (`lxc-stop -k`), for a placeholder run
    /// or a stop that did not finish.
    pub fn kill(&self, name: &str) -> Result<(), LxcError> {
        self.check(name)?;
        let argv = self.argv("lxc-stop", name, &["-k"]);
        let _ = run(&argv, self.timeouts.quick);
        self.wait_state(name, &State::Stopped, self.timeouts.quick)
    }

    /// The command that stops the container (halt signal, then SIGKILL after the grace).
    pub fn stop_argv(&self, name: &str) -> Vec<String> {
        let grace = self.timeouts.stop_grace.as_secs().max(1).to_string();
        self.argv("lxc-stop", name, &["-t", &grace])
    }

    /// Stops the container: its halt signal, then SIGKILL after the grace
    /// time. Stopping a stopped container is not an error.
    pub fn stop(&self, name: &str) -> Result<(), LxcError> {
        self.check(name)?;
        if self.state(name)? == State::Stopped {
            return Ok(());
        }
        let argv = self.stop_argv(name);
        let bound = self.timeouts.stop_grace + self.timeouts.quick;
        if let Err(first) = self.call("stop", name, &argv, bound) {
            // lxc-stop itself hung or failed: kill outright.
            if self.kill(name).is_err() {
                return Err(first);
            }
        }
        self.wait_state(name, &State::Stopped, self.timeouts.quick)
    }

    /// Stops (by force) and deletes the container and everything in its directory.
    pub fn destroy(&self, name: &str) -> Result<(), LxcError> {
        self.check(name)?;
        if !self.dir(name).exists() {
            return Ok(());
        }
        if self.exists(name) {
            let argv = self.argv("lxc-destroy", name, &["-f"]);
            let res = self.call(
                "destroy",
                name,
                &argv,
                self.timeouts.quick + self.timeouts.stop_grace,
            );
            if let Err(e) = res {
                if self
                    .state(name)
                    .map(|s| s != State::Stopped)
                    .unwrap_or(false)
                {
                    return Err(e);
                }
            }
        }
        self.remove_leftovers(name);
        if self.dir(name).exists() {
            return Err(LxcError::Failed {
                op: "destroy",
                name: name.to_string(),
                reason: format!("{} could not be removed", self.dir(name).display()),
            });
        }
        Ok(())
    }

    /// Removes the container directory if lxc left anything (nuvol's own
    /// records, a half-unpacked rootfs). The name was validated, so the path
    /// is a direct child of the lxcpath.
    fn remove_leftovers(&self, name: &str) {
        if valid_name(name) {
            let _ = std::fs::remove_dir_all(self.dir(name));
        }
    }

    /// The container's state.
    pub fn state(&self, name: &str) -> Result<State, LxcError> {
        Ok(self.info(name)?.state)
    }

    /// State, init pid, addresses and memory use.
    pub fn info(&self, name: &str) -> Result<Info, LxcError> {
        self.check(name)?;
        if !self.exists(name) {
            return Err(LxcError::NotFound(name.to_string()));
        }
        let argv = self.argv("lxc-info", name, &["-H"]);
        let out = self.call("inspect", name, &argv, self.timeouts.quick)?;
        Info::parse(&out.stdout).map_err(|reason| LxcError::Parse {
            op: "inspect",
            name: name.to_string(),
            reason,
        })
    }

    /// Polls the state until it is `want` or `timeout` passes.
    pub fn wait_state(&self, name: &str, want: &State, timeout: Duration) -> Result<(), LxcError> {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.state(name)?;
            if &now == want {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(LxcError::Failed {
                    op: "wait for",
                    name: name.to_string(),
                    reason: format!(
                        "still {} after {} s, wanted {}",
                        now.as_str(),
                        timeout.as_secs(),
                        want.as_str()
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `argv` inside the running container (for health checks and
    /// setup steps) and returns its output whatever its exit status.
    pub fn attach_run(
        &self,
        name: &str,
        argv: &[&str],
        timeout: Duration,
    ) -> Result<Output, LxcError> {
        self.check(name)?;
        let mut rest = vec!["--clear-env", "--"];
        rest.extend_from_slice(argv);
        let full = self.argv("lxc-attach", name, &rest);
        Ok(run(&full, timeout)?)
    }

    /// The argv that runs `command` (a shell line) inside the container, for
    /// an exec health check run by someone else.
    pub fn attach_argv(&self, name: &str, command: &str) -> Vec<String> {
        self.argv(
            "lxc-attach",
            name,
            &["--clear-env", "--", "/bin/sh", "-c", command],
        )
    }

    /// Reads one file of the running container's cgroup (e.g. `memory`,
    /// `memory.limit_in_bytes`), located through its init's `/proc/PID/cgroup`.
    pub fn cgroup_file(
        &self,
        name: &str,
        layout: &CgroupLayout,
        controller: &str,
        file: &str,
    ) -> Result<String, LxcError> {
        let info = self.info(name)?;
        let pid = info.pid.ok_or_else(|| LxcError::Failed {
            op: "read cgroup of",
            name: name.to_string(),
            reason: "not running".into(),
        })?;
        let proc_cgroup =
            std::fs::read_to_string(format!("/proc/{pid}/cgroup")).map_err(|error| {
                LxcError::Io {
                    what: format!("reading /proc/{pid}/cgroup"),
                    error,
                }
            })?;
        let path = layout
            .process_file(&proc_cgroup, controller, file)
            .ok_or_else(|| LxcError::Failed {
                op: "read cgroup of",
                name: name.to_string(),
                reason: format!("the {controller} controller is not mounted"),
            })?;
        std::fs::read_to_string(&path)
            .map(|s| s.trim().to_string())
            .map_err(|error| LxcError::Io {
                what: format!("reading {}", path.display()),
                error,
            })
    }
}

/// The log `lxc-start` writes errors to, inside the container directory.
pub const START_LOG: &str = "start.log";

/// The first error lines of an LXC log (the cause comes first; what follows
/// is the fallout), without LXC's timestamps and source locations.
fn log_reason(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" ERROR "))
        .map(|l| l.rsplit_once(" - ").map(|(_, m)| m).unwrap_or(l).trim())
        .take(2)
        .collect();
    (!lines.is_empty()).then(|| lines.join("; "))
}

/// The rootfs directory from an LXC config (`lxc.rootfs.path = [dir:]PATH`).
fn rootfs_from_config(text: &str) -> Option<PathBuf> {
    let value = text.lines().rev().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "lxc.rootfs.path").then(|| v.trim())
    })?;
    let path = value.strip_prefix("dir:").unwrap_or(value);
    (path.starts_with('/') && !path.contains(':')).then(|| PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_of_a_running_container() {
        let text = "Name:           web\nState:          RUNNING\nPID:            17882\nIP:             10.0.3.5\nIP:             fd00::5\nCPU use:        3420622\nMemory use:     1011712\n";
        let info = Info::parse(text).unwrap();
        assert_eq!(info.state, State::Running);
        assert_eq!(info.pid, Some(17882));
        assert_eq!(info.ips, vec!["10.0.3.5", "fd00::5"]);
        assert_eq!(info.memory_bytes, Some(1011712));
    }

    #[test]
    fn info_of_a_stopped_container_has_no_pid() {
        let info = Info::parse("Name:           web\nState:          STOPPED\n").unwrap();
        assert_eq!(info.state, State::Stopped);
        assert_eq!(info.pid, None);
    }

    #[test]
    fn garbled_info_is_an_error_not_a_panic() {
        assert!(Info::parse("").is_err());
        assert!(Info::parse("State: DANCING\n").is_err());
        assert!(Info::parse("State: RUNNING\nPID: -1\n").is_err());
        assert!(Info::parse("State: RUNNING\nMemory use: 1.1 MiB\n").is_err());
        assert!(Info::parse("\u{0}:\u{0}\nState:RUNNING").is_ok());
    }

    #[test]
    fn names_that_could_escape_a_path_are_refused() {
        for bad in [
            "",
            "../x",
            "a/b",
            "Web",
            "1web",
            "web.1",
            "a b",
            &"a".repeat(33),
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert!(valid_name("web-2"));
    }

    #[test]
    fn start_failure_quotes_the_first_log_errors() {
        let dir = std::env::temp_dir().join(format!("nuvol-lxc-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("start.log");
        std::fs::write(
            &log,
            "lxc-start d1 20261121002412.429 ERROR    network - ../src/lxc/network.c:netdev_configure_server_veth:711 - No such file or directory - Failed to attach \"veth1\" to bridge \"nvbr0\"\n\
             lxc-start d1 20261121002412.455 ERROR    start - ../src/lxc/start.c:lxc_spawn:1840 - Failed to create the network\n\
             lxc-start d1 20261121002412.456 ERROR    lxc_start - ../src/lxc/tools/lxc_start.c:main:306 - The container failed to start\n",
        )
        .unwrap();
        assert_eq!(
            log_reason(&log).unwrap(),
            "Failed to attach \"veth1\" to bridge \"nvbr0\"; Failed to create the network"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn create_over_an_existing_container_leaves_it_alone() {
        // Regression: lxc-create refuses an existing name, and the cleanup of
        // that failed create used to remove the existing container's directory.
        let lxcpath = std::env::temp_dir().join(format!("nuvol-lxc-exists-{}", std::process::id()));
        let dir = lxcpath.join("web");
        std::fs::create_dir_all(dir.join("rootfs")).unwrap();
        std::fs::write(dir.join("config"), "lxc.uts.name = web\n").unwrap();
        let lxc = Lxc::new(&lxcpath);
        let err = lxc
            .create("web", &Source::Busybox, &lxcpath.join("net.conf"))
            .unwrap_err();
        assert!(
            matches!(err, LxcError::Exists(ref n) if n == "web"),
            "{err}"
        );
        assert!(dir.join("config").is_file() && dir.join("rootfs").is_dir());
        let _ = std::fs::remove_dir_all(&lxcpath);
    }

    #[test]
    fn rootfs_path_is_read_from_the_config() {
        let conf = "lxc.uts.name = x\nlxc.rootfs.path = dir:/srv/lxc/x/rootfs\n";
        assert_eq!(
            rootfs_from_config(conf),
            Some(PathBuf::from("/srv/lxc/x/rootfs"))
        );
        assert_eq!(
            rootfs_from_config("lxc.rootfs.path = overlay:/a:/b\n"),
            None
        );
        assert_eq!(
            rootfs_from_config("lxc.rootfs.path = /plain\n"),
            Some(PathBuf::from("/plain"))
        );
    }
}
