//! What this host can run: its board architecture, where each cgroup
//! controller lives (v1 or v2), and whether the LXC tools and kernel features
//! are there — with the exact package to install when they are not.
//!
//! The checks are pure functions over [`HostFacts`]; [`HostFacts::gather`] is
//! the only part that reads `/proc`, `/sys` and `PATH`, so every verdict is
//! unit-tested with made-up hosts (an OpenWRT router without `lxc-attach`, a
//! kernel without a pid namespace).
//!
//! ```
//! use nuvol_lxc::host::{HostFacts, Need};
//! let facts = HostFacts { tools: vec![], ..HostFacts::default() };
//! let problems = facts.check(&[Need::Core]);
//! assert!(problems.iter().any(|p| p.to_string().contains("opkg install lxc-start")));
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

/// Board architectures, named neutrally (Rust and OpenWRT agree on these words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    X86_64,
    I586,
    Armv7,
    Armv6,
    Aarch64,
    Mips,
    Mipsel,
}

impl Arch {
    pub const ALL: [Arch; 7] = [
        Arch::X86_64,
        Arch::I586,
        Arch::Armv7,
        Arch::Armv6,
        Arch::Aarch64,
        Arch::Mips,
        Arch::Mipsel,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::I586 => "i586",
            Arch::Armv7 => "armv7",
            Arch::Armv6 => "armv6",
            Arch::Aarch64 => "aarch64",
            Arch::Mips => "mips",
            Arch::Mipsel => "mipsel",
        }
    }

    pub fn parse(s: &str) -> Option<Arch> {
        Arch::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// The architecture this binary was built for, which is the board's: the
    /// agent is built per board, and `uname -m` cannot tell mips from mipsel.
    pub fn host() -> Option<Arch> {
        if cfg!(target_arch = "x86_64") {
            Some(Arch::X86_64)
        } else if cfg!(target_arch = "x86") {
            Some(Arch::I586)
        } else if cfg!(target_arch = "aarch64") {
            Some(Arch::Aarch64)
        } else if cfg!(all(target_arch = "arm", target_feature = "v7")) {
            Some(Arch::Armv7)
        } else if cfg!(target_arch = "arm") {
            Some(Arch::Armv6)
        } else if cfg!(all(target_arch = "mips", target_endian = "little")) {
            Some(Arch::Mipsel)
        } else if cfg!(target_arch = "mips") {
            Some(Arch::Mips)
        } else {
            None
        }
    }

    /// The name images.linuxcontainers.org (the `download` template) uses.
    pub fn download_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::I586 => "i386",
            Arch::Armv7 => "armhf",
            Arch::Armv6 => "armel",
            Arch::Aarch64 => "arm64",
            Arch::Mips => "mips",
            Arch::Mipsel => "mipsel",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Cgroup controllers nuvol sets limits with.
pub const CONTROLLERS: [&str; 4] = ["memory", "cpu", "pids", "cpuset"];

/// Where one controller is mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// A cgroup v1 hierarchy of its own (`/sys/fs/cgroup/memory`).
    V1(PathBuf),
    /// The unified v2 hierarchy, with this controller enabled.
    V2(PathBuf),
}

/// Which hierarchy carries each controller. Hybrid hosts (v1 controllers
/// plus an empty v2 mount, like this build machine) are decided per controller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupLayout {
    pub controllers: Vec<(String, Hierarchy)>,
}

impl CgroupLayout {
    /// Reads `/proc/self/mounts` and the v2 `cgroup.controllers`.
    pub fn detect() -> CgroupLayout {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        CgroupLayout::from_mounts(&mounts, |mnt| {
            std::fs::read_to_string(mnt.join("cgroup.controllers")).ok()
        })
    }

    /// Builds the layout from mount table text; `v2_controllers` reads a v2
    /// mount's `cgroup.controllers`. A v1 mount wins over v2 for a controller,
    /// because the kernel only lets a controller be active in one of them and
    /// the v1 mount is the one that shows it.
    pub fn from_mounts(
        mounts: &str,
        v2_controllers: impl Fn(&Path) -> Option<String>,
    ) -> CgroupLayout {
        let mut layout = CgroupLayout::default();
        let mut v2_mounts = Vec::new();
        for line in mounts.lines() {
            let mut f = line.split_whitespace();
            let (Some(_dev), Some(mnt), Some(fstype), Some(opts)) =
                (f.next(), f.next(), f.next(), f.next())
            else {
                continue;
            };
            let mnt = PathBuf::from(unescape_mount(mnt));
            match fstype {
                "cgroup" => {
                    for opt in opts.split(',') {
                        if CONTROLLERS.contains(&opt) && layout.get(opt).is_none() {
                            layout
                                .controllers
                                .push((opt.to_string(), Hierarchy::V1(mnt.clone())));
                        }
                    }
                }
                "cgroup2" => v2_mounts.push(mnt),
                _ => {}
            }
        }
        for mnt in v2_mounts {
            let Some(list) = v2_controllers(&mnt) else {
                continue;
            };
            for c in list.split_whitespace() {
                if CONTROLLERS.contains(&c) && layout.get(c).is_none() {
                    layout
                        .controllers
                        .push((c.to_string(), Hierarchy::V2(mnt.clone())));
                }
            }
        }
        layout
    }

    pub fn get(&self, controller: &str) -> Option<&Hierarchy> {
        self.controllers
            .iter()
            .find(|(c, _)| c == controller)
            .map(|(_, h)| h)
    }

    /// The file `file` of `controller` for the cgroup a process is in, from
    /// that process's `/proc/PID/cgroup` text. `None` when the controller is
    /// not mounted or the process is not listed in it.
    pub fn process_file(&self, proc_cgroup: &str, controller: &str, file: &str) -> Option<PathBuf> {
        let hier = self.get(controller)?;
        let (mnt, rel) = match hier {
            Hierarchy::V1(mnt) => (mnt, cgroup_path_v1(proc_cgroup, controller)?),
            Hierarchy::V2(mnt) => (mnt, cgroup_path_v2(proc_cgroup)?),
        };
        let rel = rel.trim_start_matches('/');
        if rel.split('/').any(|part| part == "..") {
            return None;
        }
        let mut path = mnt.clone();
        if !rel.is_empty() {
            path.push(rel);
        }
        path.push(file);
        Some(path)
    }
}

/// `/proc/self/mounts` writes spaces in paths as `\040`.
fn unescape_mount(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\134", "\\")
}

fn cgroup_path_v1<'a>(proc_cgroup: &'a str, controller: &str) -> Option<&'a str> {
    proc_cgroup.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_id, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        ctrls.split(',').any(|c| c == controller).then_some(path)
    })
}

fn cgroup_path_v2(proc_cgroup: &str) -> Option<&str> {
    proc_cgroup.lines().find_map(|l| l.strip_prefix("0::"))
}

/// The `lxc-*` tools nuvol calls, with the OpenWRT package of each (OpenWRT
/// ships one package per tool).
/// `lxc-wait` is what the supervised watcher blocks in.
pub const CORE_TOOLS: [&str; 7] = [
    "lxc-create",
    "lxc-start",
    "lxc-stop",
    "lxc-destroy",
    "lxc-info",
    "lxc-attach",
    "lxc-wait",
];

/// Namespaces a container needs, with the OpenWRT kernel option that gives each.
const NAMESPACES: [(&str, &str); 5] = [
    ("mnt", "CONFIG_KERNEL_NAMESPACES"),
    ("uts", "CONFIG_KERNEL_UTS_NS"),
    ("ipc", "CONFIG_KERNEL_IPC_NS"),
    ("pid", "CONFIG_KERNEL_PID_NS"),
    ("net", "CONFIG_KERNEL_NET_NS"),
];

/// What the host offers, as gathered by [`HostFacts::gather`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// Programs found on `PATH` (by name).
    pub tools: Vec<String>,
    /// LXC template scripts found (`busybox`, `download`, …).
    pub templates: Vec<String>,
    /// Namespaces present under `/proc/self/ns`.
    pub namespaces: Vec<String>,
    pub cgroups: CgroupLayout,
}

/// A feature group a caller is about to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Create, start, stop, destroy, inspect, attach.
    Core,
    /// The offline `busybox` template.
    Busybox,
    /// The `download` template (images.linuxcontainers.org).
    Download,
    /// A memory limit.
    Memory,
    /// A CPU limit.
    Cpu,
    /// A pids limit.
    Pids,
    /// nftables port forwarding for a private bridge.
    Forward,
}

/// One thing missing, and how to get it on Debian and on OpenWRT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub what: String,
    pub debian: String,
    pub openwrt: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (Debian: {}; OpenWRT: {})",
            self.what, self.debian, self.openwrt
        )
    }
}

fn problem(
    what: impl Into<String>,
    debian: impl Into<String>,
    openwrt: impl Into<String>,
) -> Problem {
    Problem {
        what: what.into(),
        debian: debian.into(),
        openwrt: openwrt.into(),
    }
}

impl HostFacts {
    /// Looks at `PATH`, the LXC template directory, `/proc/self/ns` and the
    /// cgroup mounts. Reads only; never fails (what cannot be read is absent).
    pub fn gather(template_dir: &Path) -> HostFacts {
        let path =
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
        let wanted = CORE_TOOLS
            .iter()
            .copied()
            .chain(["nft", "ip", "busybox", "tar"]);
        let tools = wanted
            .filter(|t| std::env::split_paths(&path).any(|d| is_executable(&d.join(t))))
            .map(String::from)
            .collect();
        let templates = ["busybox", "download"]
            .into_iter()
            .filter(|t| is_executable(&template_dir.join(format!("lxc-{t}"))))
            .map(String::from)
            .collect();
        let namespaces = NAMESPACES
            .iter()
            .map(|(ns, _)| *ns)
            .filter(|ns| Path::new("/proc/self/ns").join(ns).exists())
            .map(String::from)
            .collect();
        HostFacts {
            tools,
            templates,
            namespaces,
            cgroups: CgroupLayout::detect(),
        }
    }

    fn has_tool(&self, t: &str) -> bool {
        self.tools.iter().any(|x| x == t)
    }

    /// Everything missing for `needs`, each with the packages that fix it.
    pub fn check(&self, needs: &[Need]) -> Vec<Problem> {
        let mut out = Vec::new();
        for need in needs {
            match need {
                Need::Core => {
                    for t in CORE_TOOLS {
                        if !self.has_tool(t) {
                            out.push(problem(
                                format!("{t} is not installed"),
                                "apt-get install lxc",
                                format!("opkg install {t}"),
                            ));
                        }
                    }
                    for (ns, option) in NAMESPACES {
                        if !self.namespaces.iter().any(|n| n == ns) {
                            out.push(problem(
                                format!("the kernel has no {ns} namespace"),
                                "use a stock Debian kernel (it has all namespaces)",
                                format!("rebuild the image with {option}=y (a kernel option, not a package)"),
                            ));
                        }
                    }
                }
                Need::Busybox => {
                    if !self.templates.iter().any(|t| t == "busybox") {
                        out.push(problem(
                            "the LXC busybox template is not installed",
                            "apt-get install lxc-templates",
                            "opkg install lxc-templates",
                        ));
                    }
                    if !self.has_tool("busybox") {
                        out.push(problem(
                            "busybox is not on PATH (the busybox template copies it)",
                            "apt-get install busybox-static",
                            "busybox is part of every OpenWRT image; check PATH",
                        ));
                    }
                }
                Need::Download => {
                    if !self.templates.iter().any(|t| t == "download") {
                        out.push(problem(
                            "the LXC download template is not installed",
                            "apt-get install lxc-templates (or lxc, which ships lxc-download)",
                            "opkg install lxc-templates gnupg tar wget",
                        ));
                    }
                }
                Need::Memory => self.need_controller(
                    &mut out,
                    "memory",
                    "CONFIG_KERNEL_MEMCG",
                    "cgroup_enable=memory",
                ),
                Need::Cpu => self.need_controller(
                    &mut out,
                    "cpu",
                    "CONFIG_KERNEL_CFS_BANDWIDTH",
                    "a stock kernel",
                ),
                Need::Pids => self.need_controller(
                    &mut out,
                    "pids",
                    "CONFIG_KERNEL_CGROUP_PIDS",
                    "a stock kernel",
                ),
                Need::Forward => {
                    if !self.has_tool("nft") {
                        out.push(problem(
                            "nft is not installed (port forwarding to a private bridge)",
                            "apt-get install nftables",
                            "opkg install nftables-json kmod-nft-nat",
                        ));
                    }
                }
            }
        }
        out
    }

    fn need_controller(&self, out: &mut Vec<Problem>, ctrl: &str, option: &str, debian: &str) {
        if self.cgroups.get(ctrl).is_none() {
            out.push(problem(
                format!("the {ctrl} cgroup controller is not mounted"),
                format!("boot with {debian}, and mount cgroups (cgroupfs-mount)"),
                format!("rebuild the image with CONFIG_KERNEL_CGROUPS=y and {option}=y; opkg install cgroupfs-mount"),
            ));
        }
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/pids cgroup rw,relatime,pids 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
";

    #[test]
    fn hybrid_host_uses_v1_for_mounted_controllers() {
        let l = CgroupLayout::from_mounts(HYBRID, |_| Some(String::new()));
        assert_eq!(
            l.get("memory"),
            Some(&Hierarchy::V1("/sys/fs/cgroup/memory".into()))
        );
        assert_eq!(l.get("cpuset"), None);
    }

    #[test]
    fn unified_host_uses_v2_for_enabled_controllers() {
        let mounts = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid 0 0\n";
        let l = CgroupLayout::from_mounts(mounts, |_| Some("cpuset cpu io memory pids\n".into()));
        assert_eq!(
            l.get("memory"),
            Some(&Hierarchy::V2("/sys/fs/cgroup".into()))
        );
        let file = l
            .process_file("0::/lxc.payload.web\n", "memory", "memory.max")
            .unwrap();
        assert_eq!(
            file,
            PathBuf::from("/sys/fs/cgroup/lxc.payload.web/memory.max")
        );
    }

    #[test]
    fn process_file_follows_the_v1_controller_line() {
        let l = CgroupLayout::from_mounts(HYBRID, |_| None);
        let pc = "8:pids:/lxc.payload.web\n4:memory:/lxc.payload.web\n1:cpu,cpuacct:/x\n0::/lxc.payload.web\n";
        assert_eq!(
            l.process_file(pc, "memory", "memory.limit_in_bytes")
                .unwrap(),
            PathBuf::from("/sys/fs/cgroup/memory/lxc.payload.web/memory.limit_in_bytes")
        );
        assert_eq!(l.process_file("4:memory:/../etc\n", "memory", "x"), None);
        assert_eq!(l.process_file("garbage", "memory", "x"), None);
    }

    #[test]
    fn missing_tools_name_the_openwrt_package() {
        let facts = HostFacts {
            tools: vec!["lxc-create".into(), "lxc-start".into()],
            namespaces: NAMESPACES.iter().map(|(n, _)| n.to_string()).collect(),
            ..HostFacts::default()
        };
        let p = facts.check(&[Need::Core]);
        let text: Vec<String> = p.iter().map(ToString::to_string).collect();
        assert_eq!(p.len(), 5, "{text:?}");
        assert!(text.iter().any(|t| t.contains("opkg install lxc-attach")));
        assert!(text.iter().all(|t| t.contains("apt-get install lxc")));
    }

    #[test]
    fn kernel_without_pid_namespace_says_which_option() {
        let facts = HostFacts {
            tools: CORE_TOOLS.iter().map(|t| t.to_string()).collect(),
            namespaces: vec!["mnt".into(), "uts".into(), "ipc".into(), "net".into()],
            ..HostFacts::default()
        };
        let p = facts.check(&[Need::Core, Need::Memory]);
        assert_eq!(p.len(), 2);
        assert!(p[0].openwrt.contains("CONFIG_KERNEL_PID_NS"));
        assert!(p[1].what.contains("memory"));
    }

    #[test]
    fn host_arch_is_known_and_round_trips() {
        let a = Arch::host().expect("tests run on a supported arch");
        assert_eq!(Arch::parse(a.as_str()), Some(a));
        assert_eq!(Arch::parse("sparc"), None);
    }
}
