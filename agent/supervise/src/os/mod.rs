//! The process shell (`os` feature): runs [`ServiceDef`]s as real processes
//! under the [`crate::policy`], on one thread the agent drives through a
//! [`Supervisor`] handle.
//!
//! What it does for each instance: fork/exec with rlimits, user/group, working
//! directory and environment applied in the child; its own session and, when
//! the hierarchy is writable, its own cgroup with memory/CPU limits;
//! stdout/stderr read into the agent log (prefixed with the instance name)
//! and a bounded ring buffer; exits reaped through a SIGCHLD self-pipe;
//! SIGTERM then SIGKILL after `term_timeout`; health probes on short threads;
//! a pid record per instance so a restarted agent re-adopts what still runs
//! instead of starting it twice.

mod adopt;
mod cgroup;
mod output;
mod probe;
mod reply;
mod sigchld;
mod spawn;
mod supervisor;

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

pub use probe::run as run_probe;
pub use spawn::{account, Account};
pub use supervisor::{Error, Notice, Options, Supervisor};

use crate::config::{services_from_uci, DefError};
use crate::service::ServiceDef;

/// Definitions read from the agent config and a services directory.
#[derive(Debug, Default)]
pub struct Loaded {
    pub services: Vec<ServiceDef>,
    /// Each refused definition, with its service name, file and line.
    pub errors: Vec<DefError>,
}

/// Reads `service` sections from the agent's parsed config (named `file` in
/// messages) and from every file in `dir` (UCI text, read in name order;
/// hidden files and editor backups `*~` skipped), then checks that each
/// `user` and `group` exists. A refused definition is reported and left
/// out; the rest load. A name defined twice keeps its first definition.
pub fn load(config: Option<(&nuvol_uci::Config, &str)>, dir: Option<&Path>) -> Loaded {
    let mut loaded = Loaded::default();
    let add = |defs: Vec<ServiceDef>, errors: Vec<DefError>, loaded: &mut Loaded| {
        loaded.errors.extend(errors);
        for def in defs {
            if loaded.services.iter().any(|d| d.name == def.name) {
                loaded.errors.push(DefError {
                    service: def.name.clone(),
                    file: def.origin.file.clone(),
                    line: def.origin.line,
                    message: "defined twice; the first definition is kept".into(),
                });
            } else {
                loaded.services.push(def);
            }
        }
    };
    if let Some((cfg, file)) = config {
        let (defs, errors) = services_from_uci(cfg, file);
        add(defs, errors, &mut loaded);
    }
    if let Some(dir) = dir {
        let mut files: Vec<_> = match fs::read_dir(dir) {
            Ok(rd) => rd.filter_map(Result::ok).map(|e| e.path()).collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                loaded.errors.push(DefError {
                    service: "*".into(),
                    file: dir.display().to_string(),
                    line: 0,
                    message: format!("cannot read the services directory: {e}"),
                });
                Vec::new()
            }
        };
        files.sort();
        for path in files {
            let fname = path.file_name().and_then(|f| f.to_str()).unwrap_or("");
            if fname.starts_with('.') || fname.ends_with('~') || !path.is_file() {
                continue;
            }
            let shown = path.display().to_string();
            let parsed = fs::read_to_string(&path)
                .map_err(|e| (0, format!("cannot read: {e}")))
                .and_then(|t| nuvol_uci::parse(&t).map_err(|e| (e.line, e.message)));
            match parsed {
                Ok(cfg) => {
                    let (defs, errors) = services_from_uci(&cfg, &shown);
                    add(defs, errors, &mut loaded);
                }
                Err((line, message)) => loaded.errors.push(DefError {
                    service: fname.into(),
                    file: shown,
                    line,
                    message,
                }),
            }
        }
    }
    let mut errors = Vec::new();
    loaded.services.retain(|def| match account(def) {
        Ok(_) => true,
        Err(message) => {
            let opt = if message.contains("group '") {
                "group"
            } else {
                "user"
            };
            errors.push(DefError {
                service: def.name.clone(),
                file: def.origin.file.clone(),
                line: def.origin.line_of(opt),
                message,
            });
            false
        }
    });
    loaded.errors.extend(errors);
    loaded
}

/// Where instance cgroups would go (`Ok`, a description) or why there are
/// none (`Err`): what a [`Supervisor`] with `cgroups: true` will find.
pub fn cgroup_support() -> Result<String, String> {
    cgroup::Hierarchy::detect().map(|h| format!("{h:?}"))
}

/// A close-on-exec, non-blocking pipe: (read, write).
fn nonblocking_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::fcntl::OFlag;
    nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).map_err(io::Error::from)
}
