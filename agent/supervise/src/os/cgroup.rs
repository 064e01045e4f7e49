//! One cgroup per instance, with optional memory and CPU limits, on cgroup v2
//! or on v1 controllers (`/sys/fs/cgroup/<controller>`, as on hybrid hosts).
//!
//! Groups are made below the agent's own cgroup (read from
//! `/proc/self/cgroup`), never at the root, so the services stay inside
//! whatever limits the agent itself runs under. When nothing is writable
//! (a read-only `/sys/fs/cgroup`, an unprivileged agent, no cgroups in the
//! kernel) the supervisor runs without them and says so once.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";
const PERIOD_US: u64 = 100_000;

/// Where instance groups go, as detected once at start.
#[derive(Debug, Clone)]
pub enum Hierarchy {
    V2 {
        base: PathBuf,
    },
    V1 {
        memory: Option<PathBuf>,
        cpu: Option<PathBuf>,
    },
}

impl Hierarchy {
    /// Detects a writable hierarchy below the agent's own group and creates
    /// `<own group>/nuvol` in it. `Err` explains why there is none.
    pub fn detect() -> Result<Hierarchy, String> {
        let own = fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
        let root = Path::new(ROOT);
        if root.join("cgroup.controllers").exists() {
            let base = join(root, own_path(&own, "").unwrap_or("/")).join("nuvol");
            fs::create_dir_all(&base).map_err(|e| format!("{}: {e}", base.display()))?;
            // Limits need the controllers enabled for the children of `base`;
            // without them the groups still collect and kill a service's tree.
            let _ = fs::write(base.join("cgroup.subtree_control"), "+memory +cpu");
            return Ok(Hierarchy::V2 { base });
        }
        let v1 = |ctrl: &str| -> Option<PathBuf> {
            let mount = root.join(ctrl);
            if !mount.join("cgroup.procs").exists() {
                return None;
            }
            let base = join(&mount, own_path(&own, ctrl).unwrap_or("/")).join("nuvol");
            fs::create_dir_all(&base).ok().map(|_| base)
        };
        let (memory, cpu) = (v1("memory"), v1("cpu"));
        if memory.is_none() && cpu.is_none() {
            return Err("no writable cgroup v2 or v1 memory/cpu hierarchy".into());
        }
        Ok(Hierarchy::V1 { memory, cpu })
    }

    /// Creates (or reuses) the instance's groups and sets its limits.
    pub fn instance(
        &self,
        name: &str,
        memory: Option<u64>,
        cpu_percent: Option<u32>,
    ) -> io::Result<Group> {
        let mut dirs = Vec::new();
        let quota = cpu_percent.map(|p| u64::from(p) * PERIOD_US / 100);
        match self {
            Hierarchy::V2 { base } => {
                let dir = base.join(name);
                fs::create_dir_all(&dir)?;
                if let Some(bytes) = memory {
                    fs::write(dir.join("memory.max"), bytes.to_string())?;
                }
                if let Some(q) = quota {
                    fs::write(dir.join("cpu.max"), format!("{q} {PERIOD_US}"))?;
                }
                dirs.push(dir);
            }
            Hierarchy::V1 { memory: mem, cpu } => {
                if let Some(base) = mem {
                    let dir = base.join(name);
                    fs::create_dir_all(&dir)?;
                    if let Some(bytes) = memory {
                        fs::write(dir.join("memory.limit_in_bytes"), bytes.to_string())?;
                    }
                    dirs.push(dir);
                }
                if let Some(base) = cpu {
                    let dir = base.join(name);
                    fs::create_dir_all(&dir)?;
                    let q = quota.map_or_else(|| "-1".to_string(), |q| q.to_string());
                    fs::write(dir.join("cpu.cfs_period_us"), PERIOD_US.to_string())?;
                    fs::write(dir.join("cpu.cfs_quota_us"), q)?;
                    dirs.push(dir);
                }
            }
        }
        Ok(Group { dirs })
    }
}

/// The directories of one instance's groups (one per v1 controller).
#[derive(Debug, Clone)]
pub struct Group {
    pub dirs: Vec<PathBuf>,
}

impl Group {
    /// Descriptors of each `cgroup.procs`, opened before the fork so that the
    /// child only has to `write("0")` to move itself in.
    pub fn procs_fds(&self) -> io::Result<Vec<OwnedFd>> {
        self.dirs
            .iter()
            .map(|d| {
                OpenOptions::new()
                    .write(true)
                    .open(d.join("cgroup.procs"))
                    .map(OwnedFd::from)
            })
            .collect()
    }

    /// Removes the groups once empty; a busy group (a process still dying)
    /// stays, and is reused by the next run.
    /// `true` once every directory is gone.
    pub fn remove(&self) -> bool {
        let mut all = true;
        for d in &self.dirs {
            match fs::remove_dir(d) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(_) => all = false,
            }
        }
        all
    }
}

/// The agent's own path in a hierarchy: `0::/x` for v2 (`ctrl` empty), or the
/// line whose controller list names `ctrl` for v1.
fn own_path<'a>(cgroup_file: &'a str, ctrl: &str) -> Option<&'a str> {
    cgroup_file.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let _id = parts.next()?;
        let ctrls = parts.next()?;
        let path = parts.next()?;
        let hit = if ctrl.is_empty() {
            ctrls.is_empty()
        } else {
            ctrls.split(',').any(|c| c == ctrl)
        };
        hit.then_some(path)
    })
}

fn join(mount: &Path, own: &str) -> PathBuf {
    let rel = own.trim_start_matches('/');
    if rel.is_empty() || rel.split('/').any(|p| p == "..") {
        mount.to_path_buf()
    } else {
        mount.join(rel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_path_finds_v1_controller_and_v2_line() {
        let file = "9:name=systemd:/\n4:memory:/process_api/abc\n1:cpu,cpuacct:/x\n0::/u\n";
        assert_eq!(own_path(file, "memory"), Some("/process_api/abc"));
        assert_eq!(own_path(file, "cpu"), Some("/x"));
        assert_eq!(own_path(file, ""), Some("/u"));
        assert_eq!(own_path(file, "pids"), None);
    }

    #[test]
    fn join_never_climbs_out_of_the_mount() {
        assert_eq!(join(Path::new("/m"), "/a/b"), PathBuf::from("/m/a/b"));
        assert_eq!(join(Path::new("/m"), "/"), PathBuf::from("/m"));
        assert_eq!(join(Path::new("/m"), "/../x"), PathBuf::from("/m"));
    }
}
