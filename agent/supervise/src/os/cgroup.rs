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
        Hierarchy::detect_in(Path::new(ROOT), &own)
    }

    /// [`Hierarchy::detect`] with the mount point and `/proc/self/cgroup`
    /// given (tests point it at a plain directory).
    fn detect_in(root: &Path, own: &str) -> Result<Hierarchy, String> {
        if root.join("cgroup.controllers").exists() {
            let own_dir = join(root, own_path(own, "").unwrap_or("/"));
            let base = own_dir.join("nuvol");
            fs::create_dir_all(&base).map_err(|e| format!("{}: {e}", base.display()))?;
            // Limits need each controller enabled on the way down to the
            // instance groups. The agent's own group may refuse (v2 allows
            // it only for a group without processes, or the root); then the
            // groups still hold a service's tree, only without limits.
            for ctrl in ["+memory", "+cpu"] {
                let _ = fs::write(own_dir.join("cgroup.subtree_control"), ctrl);
                let _ = fs::write(base.join("cgroup.subtree_control"), ctrl);
            }
            return Ok(Hierarchy::V2 { base });
        }
        let v1 = |ctrl: &str| -> Option<PathBuf> {
            let mount = root.join(ctrl);
            if !mount.join("cgroup.procs").exists() {
                return None;
            }
            let base = join(&mount, own_path(own, ctrl).unwrap_or("/")).join("nuvol");
            fs::create_dir_all(&base).ok().map(|_| base)
        };
        let (memory, cpu) = (v1("memory"), v1("cpu"));
        if memory.is_none() && cpu.is_none() {
            return Err("no writable cgroup v2 or v1 memory/cpu hierarchy".into());
        }
        Ok(Hierarchy::V1 { memory, cpu })
    }

    /// Creates (or reuses) the instance's groups and sets its limits. A
    /// limit the hierarchy cannot take is a warning in the second value, not
    /// a reason to run without the group.
    pub fn instance(
        &self,
        name: &str,
        memory: Option<u64>,
        cpu_percent: Option<u32>,
    ) -> io::Result<(Group, Vec<String>)> {
        let mut dirs = Vec::new();
        let mut warnings = Vec::new();
        let quota = cpu_percent.map(|p| u64::from(p) * PERIOD_US / 100);
        let mut set = |dir: &Path, file: &str, value: String| {
            if let Err(e) = fs::write(dir.join(file), &value) {
                warnings.push(format!("cannot set {file} to {value}: {e}"));
            }
        };
        match self {
            Hierarchy::V2 { base } => {
                let dir = base.join(name);
                fs::create_dir_all(&dir)?;
                set(
                    &dir,
                    "memory.max",
                    memory.map_or_else(|| "max".into(), |b| b.to_string()),
                );
                set(
                    &dir,
                    "cpu.max",
                    quota.map_or_else(
                        || format!("max {PERIOD_US}"),
                        |q| format!("{q} {PERIOD_US}"),
                    ),
                );
                dirs.push(dir);
            }
            Hierarchy::V1 { memory: mem, cpu } => {
                if let Some(base) = mem {
                    let dir = base.join(name);
                    fs::create_dir_all(&dir)?;
                    // -1 clears a limit an earlier definition had set.
                    set(
                        &dir,
                        "memory.limit_in_bytes",
                        memory.map_or_else(|| "-1".into(), |b| b.to_string()),
                    );
                    dirs.push(dir);
                }
                if let Some(base) = cpu {
                    let dir = base.join(name);
                    fs::create_dir_all(&dir)?;
                    set(&dir, "cpu.cfs_period_us", PERIOD_US.to_string());
                    set(
                        &dir,
                        "cpu.cfs_quota_us",
                        quota.map_or_else(|| "-1".into(), |q| q.to_string()),
                    );
                    dirs.push(dir);
                }
            }
        }
        // Without limits asked for, a hierarchy that has no such controller
        // is not worth a warning.
        if memory.is_none() && cpu_percent.is_none() {
            warnings.clear();
        }
        Ok((Group { dirs }, warnings))
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

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("nuvol-cg-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn v2_groups_go_below_the_agents_own_group_with_limits() {
        let root = scratch("v2");
        fs::write(root.join("cgroup.controllers"), "cpu memory").unwrap();
        let h = Hierarchy::detect_in(&root, "0::/services/nuvol\n").unwrap();
        let (g, warnings) = h.instance("web", Some(64 << 20), Some(50)).unwrap();
        assert_eq!(warnings, Vec::<String>::new());
        let dir = root.join("services/nuvol/nuvol/web");
        assert_eq!(g.dirs, vec![dir.clone()]);
        let read = |f: &str| fs::read_to_string(dir.join(f)).unwrap();
        assert_eq!(read("memory.max"), "67108864");
        assert_eq!(read("cpu.max"), "50000 100000");
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn v1_uses_each_controller_mount_and_clears_old_limits() {
        let root = scratch("v1");
        for ctrl in ["memory", "cpu"] {
            fs::create_dir_all(root.join(ctrl)).unwrap();
            fs::write(root.join(ctrl).join("cgroup.procs"), "").unwrap();
        }
        let own = "4:memory:/box/1\n1:cpu,cpuacct:/\n0::/\n";
        let h = Hierarchy::detect_in(&root, own).unwrap();
        let (g, _) = h.instance("web", None, Some(25)).unwrap();
        assert_eq!(
            g.dirs,
            vec![
                root.join("memory/box/1/nuvol/web"),
                root.join("cpu/nuvol/web")
            ]
        );
        let read = |p: &str| fs::read_to_string(root.join(p)).unwrap();
        assert_eq!(read("memory/box/1/nuvol/web/memory.limit_in_bytes"), "-1");
        assert_eq!(read("cpu/nuvol/web/cpu.cfs_quota_us"), "25000");
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn no_hierarchy_is_an_explained_error() {
        let root = scratch("none");
        assert!(Hierarchy::detect_in(&root, "0::/\n").is_err());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn join_never_climbs_out_of_the_mount() {
        assert_eq!(join(Path::new("/m"), "/a/b"), PathBuf::from("/m/a/b"));
        assert_eq!(join(Path::new("/m"), "/"), PathBuf::from("/m"));
        assert_eq!(join(Path::new("/m"), "/../x"), PathBuf::from("/m"));
    }
}
