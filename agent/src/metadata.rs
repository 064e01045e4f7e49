//! What this node is and how busy it is, read from `/proc` and `/sys`:
//! memory, load, uptime, architecture, board model, free space of the state
//! directory, and the agent's own RSS. Gossiped as node tags (short keys, so
//! they fit in every ping) and used for quality ordering in search.
//!
//! Every read is best-effort: a router whose kernel lacks a file just reports
//! zero or `unknown` for that value; nothing here can stop the agent.

use std::path::Path;

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
        let proc = |name: &str| std::fs::read_to_string(Path::new("/proc").join(name));
        let meminfo = proc("meminfo").unwrap_or_default();
        let field = |name: &str| kb_field(&meminfo, name);
        Metadata {
            arch: std::env::consts::ARCH.to_string(),
            board: board(),
            mem_total_kb: field("MemTotal").unwrap_or(0),
            // MemAvailable is what a new app could really get; old kernels lack it.
            mem_free_kb: field("MemAvailable")
                .or_else(|| field("MemFree"))
                .unwrap_or(0),
            load_x100: proc("loadavg")
                .ok()
                .and_then(|t| t.split_whitespace().next().and_then(hundredths))
                .map_or(0, |l| l.min(u64::from(u32::MAX)) as u32),
            uptime_s: proc("uptime")
                .ok()
                .and_then(|t| t.split_whitespace().next().and_then(hundredths))
                .map_or(0, |u| u / 100),
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
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| kb_field(&t, "VmRSS"))
        .unwrap_or(0)
}

/// `Name:   1234 kB` in `/proc/meminfo` or `/proc/self/status`: the number.
/// Parsed by hand: the procfs crate cost the binary tens of kB for four
/// numbers.
fn kb_field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// A non-negative decimal such as `0.42` or `12345.67` in hundredths (`42`,
/// `1234567`), without float parsing.
fn hundredths(text: &str) -> Option<u64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let whole: u64 = whole.parse().ok()?;
    let mut cents = 0;
    let mut digits = frac.bytes();
    for scale in [10, 1] {
        match digits.next() {
            Some(d @ b'0'..=b'9') => cents += u64::from(d - b'0') * scale,
            Some(_) => return None,
            None => break,
        }
    }
    if !digits.all(|d| d.is_ascii_digit()) {
        return None;
    }
    whole.checked_mul(100)?.checked_add(cents)
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
    fn proc_numbers_parse_without_procfs() {
        let meminfo = "MemTotal:         60000 kB\nMemFree:  1000 kB\nMemAvailable:   21000 kB\n";
        assert_eq!(kb_field(meminfo, "MemTotal"), Some(60_000));
        assert_eq!(kb_field(meminfo, "MemAvailable"), Some(21_000));
        assert_eq!(kb_field(meminfo, "Mem"), None);
        assert_eq!(kb_field("VmRSS:\t  812 kB\n", "VmRSS"), Some(812));
        assert_eq!(hundredths("0.42"), Some(42));
        assert_eq!(hundredths("3.5"), Some(350));
        assert_eq!(hundredths("12345.678"), Some(1_234_567));
        assert_eq!(hundredths("7"), Some(700));
        assert_eq!(hundredths("x.1"), None);
        assert_eq!(hundredths("1.2x"), None);
    }

    #[test]
    fn missing_state_dir_reports_zero_free_disk() {
        assert_eq!(disk_free_kb(Path::new("/nonexistent/nuvol")), 0);
    }
}
