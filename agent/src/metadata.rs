//! What this node is and how busy it is, read from `/proc` and `/sys`:
//! memory, load, uptime, architecture, board model, free space of the state
//! directory, and the agent's own RSS. Gossiped as node tags (short keys, so
//! they fit in every ping) and used for quality ordering in search.
//!
//! Every read is best-effort: a router whose kernel lacks a file just reports
//! zero or `unknown` for that value; nothing here can stop the agent.

use std::path::Path;

use procfs::Current;

/// A snapshot of this node's resources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    pub arch: String,
    pub board: String,
    pub mem_total_kb: u64,
    pub mem_free_kb: u64,
    /// 1-minute load average × 100.
    pub load_x100: u32,
    pub uptime_s: u64,
    pub disk_free_kb: u64,
    pub rss_kb: u64,
}

impl Metadata {
    /// Reads everything now. `state_dir` is where free disk is measured.
    pub fn read(state_dir: &Path) -> Metadata {
        let mem = procfs::Meminfo::current().ok();
        Metadata {
            arch: std::env::consts::ARCH.to_string(),
            board: board(),
            mem_total_kb: mem.as_ref().map_or(0, |m| m.mem_total / 1024),
            // MemAvailable is what a new app could really get; old kernels lack it.
            mem_free_kb: mem
                .as_ref()
                .map_or(0, |m| m.mem_available.unwrap_or(m.mem_free) / 1024),
            load_x100: procfs::LoadAverage::current()
                .map(|l| (l.one.max(0.0) * 100.0) as u32)
                .unwrap_or(0),
            uptime_s: procfs::Uptime::current()
                .map(|u| u.uptime as u64)
                .unwrap_or(0),
            disk_free_kb: disk_free_kb(state_dir),
            rss_kb: rss_kb(),
        }
    }

    /// Node tags gossiped to every member. Keys are short: they ride in probes.
    pub fn tags(&self) -> Vec<(String, String)> {
        vec![
            ("arch".into(), self.arch.clone()),
            ("board".into(), self.board.clone()),
            ("mem".into(), self.mem_total_kb.to_string()),
            ("memfree".into(), self.mem_free_kb.to_string()),
            ("load".into(), self.load_x100.to_string()),
            ("disk".into(), self.disk_free_kb.to_string()),
        ]
    }
}

impl Metadata {
    /// Whether `new` is different enough from `self` to re-announce the
    /// node's tags. Every announcement is gossiped to every member, so small
    /// wobbles of load and free memory are not worth one: only the identity
    /// fields, a load change of 0.5 or a quarter, or a free memory or disk
    /// change of a tenth count.
    pub fn differs_much(&self, new: &Metadata) -> bool {
        let off_by = |a: u64, b: u64, num: u64, den: u64| {
            let (lo, hi) = (a.min(b), a.max(b));
            (hi - lo).saturating_mul(den) > hi.saturating_mul(num)
        };
        self.arch != new.arch
            || self.board != new.board
            || self.mem_total_kb != new.mem_total_kb
            || (self.load_x100.abs_diff(new.load_x100) >= 50
                && off_by(self.load_x100.into(), new.load_x100.into(), 1, 4))
            || off_by(self.mem_free_kb, new.mem_free_kb, 1, 10)
            || off_by(self.disk_free_kb, new.disk_free_kb, 1, 10)
    }
}

/// The agent's resident set size in kB.
pub fn rss_kb() -> u64 {
    procfs::process::Process::myself()
        .and_then(|p| p.statm())
        .map(|s| s.resident * procfs::page_size() / 1024)
        .unwrap_or(0)
}

/// The board model: OpenWRT's board name, then the device tree, then DMI.
fn board() -> String {
    const SOURCES: &[&str] = &[
        "/tmp/sysinfo/model",
        "/tmp/sysinfo/board_name",
        "/proc/device-tree/model",
        "/sys/class/dmi/id/product_name",
    ];
    for path in SOURCES {
        if let Ok(raw) = std::fs::read(path) {
            let text: String = String::from_utf8_lossy(&raw)
                .chars()
                .filter(|c| !c.is_control())
                .take(64)
                .collect();
            let text = text.trim();
            if !text.is_empty() {
                return text.to_string();
            }
        }
    }
    "unknown".into()
}

// statvfs field types are u32 on some 32-bit targets (mips, arm) and u64 here.
#[allow(clippy::unnecessary_cast)]
fn disk_free_kb(dir: &Path) -> u64 {
    nix::sys::statvfs::statvfs(dir)
        .map(|s| (s.blocks_available() as u64).saturating_mul(s.fragment_size() as u64) / 1024)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_machine() {
        let m = Metadata::read(Path::new("/"));
        assert!(m.mem_total_kb > 0);
        assert!(m.mem_free_kb <= m.mem_total_kb);
        assert!(m.uptime_s > 0);
        assert!(m.rss_kb > 0);
        assert!(!m.arch.is_empty() && !m.board.is_empty());
        assert!(m.tags().iter().any(|(k, _)| k == "arch"));
    }

    #[test]
    fn small_wobbles_do_not_reannounce_tags() {
        let base = Metadata {
            arch: "mips".into(),
            board: "tplink".into(),
            mem_total_kb: 60_000,
            mem_free_kb: 20_000,
            load_x100: 100,
            uptime_s: 5,
            disk_free_kb: 3_000,
            rss_kb: 800,
        };
        let mut m = base.clone();
        m.mem_free_kb = 19_000;
        m.load_x100 = 130;
        m.uptime_s = 500;
        m.rss_kb = 900;
        assert!(!base.differs_much(&m));
        m.load_x100 = 160;
        assert!(base.differs_much(&m));
        let mut m = base.clone();
        m.disk_free_kb = 2_000;
        assert!(base.differs_much(&m));
        let mut m = base.clone();
        m.board = "other".into();
        assert!(base.differs_much(&m));
    }

    #[test]
    fn missing_state_dir_reports_zero_free_disk() {
        assert_eq!(disk_free_kb(Path::new("/nonexistent/nuvol")), 0);
    }
}
