//! Helpers shared by the live test binaries: the skip check, a private
//! network (and mount) namespace per test thread, and a throw-away lxcpath.
// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nuvol_lxc::apps::{http_get, Apps, Settings};
use nuvol_lxc::host::{HostFacts, Need};
use nuvol_lxc::net::Mode;

/// Why these tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (LXC containers, network namespaces)".into());
    }
    let problems = HostFacts::gather(Path::new("/usr/share/lxc/templates")).check(&[
        Need::Core,
        Need::Busybox,
        Need::Memory,
        Need::Forward,
    ]);
    if !problems.is_empty() {
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Some(text.join("; "));
    }
    None
}

#[macro_export]
macro_rules! require_lxc {
    () => {
        if let Some(why) = common::skip_reason() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

pub fn sh(cmd: &str) {
    let out = Command::new("/bin/sh")
        .args(["-c", cmd])
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Moves this test thread into a fresh network namespace with a bridge
/// `nvbr0` at 10.213.0.1/24. The namespace dies with the thread's last user.
///
/// LXC checks bridges under `/sys/class/net`, and sysfs shows the network
/// namespace of whoever mounted it, so the thread also gets its own mount
/// namespace where a sysfs mounted from the new network namespace is bound
/// over the two net directories (the rest of /sys, cgroups included, stays).
pub fn enter_private_network() {
    // SAFETY: unshare only changes this thread's namespaces.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET | libc::CLONE_NEWNS) };
    assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
    let sys = std::env::temp_dir().join(format!(
        "nuvol-lxc-sys-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let sys = sys.to_string_lossy().replace(['(', ')'], "");
    sh(&format!(
        "mount --make-rprivate / && mkdir -p {sys} && mount -t sysfs sysfs {sys} && \
         mount --bind {sys}/class/net /sys/class/net && mount --bind {sys}/devices/virtual/net /sys/devices/virtual/net && \
         umount -l {sys} && rmdir {sys}"
    ));
    sh("ip link set lo up && ip link add nvbr0 type bridge && ip addr add 10.213.0.1/24 dev nvbr0 && ip link set nvbr0 up");
}

/// An lxcpath and settings of one test; destroys whatever is left on drop,
/// so a failing assertion does not leave containers running.
pub struct Env {
    pub dir: PathBuf,
    pub apps: Apps,
}

impl Env {
    /// `templates`: the shipped ones, or `None` for a directory of the test's own.
    pub fn new(tag: &str, templates: Option<&Path>) -> Env {
        let dir = std::env::temp_dir().join(format!("nuvol-lxc-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let templates = templates
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.join("templates"));
        let mut s = Settings::new(dir.join("lxc"), templates);
        s.network = Mode::Bridge("nvbr0".into());
        s.subnet = Some("10.213.0.0/24".parse().unwrap());
        s.forward = true;
        s.nft_table = format!("nuvoltest{tag}");
        s.stop_grace = Duration::from_secs(5);
        Env {
            dir,
            apps: Apps::new(s),
        }
    }

    pub fn templates(&self) -> &Path {
        &self.apps.settings.templates
    }

    pub fn lxcpath_entries(&self) -> Vec<String> {
        std::fs::read_dir(&self.apps.settings.lxcpath)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for name in self.apps.lxc.list() {
            let _ = self.apps.lxc.destroy(&name);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn shipped_templates() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("templates")
}

/// A container name unique on this host: cgroups are named after containers
/// whatever their lxcpath, so two test runs must not share one.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", std::process::id())
}

pub fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub const PUBLISHED: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 213, 0, 1)), 8080);

pub fn page(addr: SocketAddr) -> Option<String> {
    http_get(addr, "/", Duration::from_secs(2))
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
}
