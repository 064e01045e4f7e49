//! What survives an agent crash: one small state file per running instance
//! (`<name>.pid`: pid and the process start time from `/proc/<pid>/stat`),
//! written atomically, and the check that a pid still names that same process.
//!
//! A pid alone is not enough: after a reboot or a long outage the number may
//! belong to an unrelated process. The start time (field 22, in clock ticks
//! since boot) differs for every process that ever had that pid.

use std::fs;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// A process we started, as the state file records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub pid: u32,
    pub start_time: u64,
}

pub fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.pid"))
}

pub fn save(dir: &Path, name: &str, record: Record) -> io::Result<()> {
    let text = format!("{} {}\n", record.pid, record.start_time);
    nuvol_uci::write_atomic(&path(dir, name), &text)
}

pub fn remove(dir: &Path, name: &str) {
    // Already gone is fine: the instance simply has no live process.
    let _ = fs::remove_file(path(dir, name));
}

/// The record, if the file exists and reads well; a damaged file is ignored
/// (the worst outcome is one duplicate start, never a wrong adoption).
pub fn load(dir: &Path, name: &str) -> Option<Record> {
    let text = fs::read_to_string(path(dir, name)).ok()?;
    let mut fields = text.split_whitespace();
    let pid: u32 = fields.next()?.parse().ok()?;
    let start_time = fields.next()?.parse().ok()?;
    // Never init, never ourselves, never a negative pid after the cast to
    // pid_t: a damaged file must not make us signal the wrong group.
    if pid <= 1 || pid == std::process::id() || i32::try_from(pid).is_err() {
        return None;
    }
    Some(Record { pid, start_time })
}

/// Start time of a live (not zombie) process, from `/proc/<pid>/stat`.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)
}

/// Field 22 of `/proc/<pid>/stat`. The command name (field 2) is in
/// parentheses and may itself hold spaces and parentheses, so fields are
/// counted from the last `)`. A zombie has exited already: `None`.
pub fn parse_stat(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    // `state` was field 3; field 22 is 19 further on.
    fields.nth(18)?.parse().ok()
}

/// How long a live process has run, from its start time and the system
/// uptime; survives agent restarts, unlike the supervisor's own clock.
pub fn age(pid: u32) -> Option<std::time::Duration> {
    let ticks = start_time(pid)?;
    let uptime = fs::read_to_string("/proc/uptime").ok()?;
    let up_ms = uptime_ms(uptime.split_whitespace().next()?)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz <= 0 {
        return None;
    }
    let started_ms = ticks.saturating_mul(1000) / hz as u64;
    Some(std::time::Duration::from_millis(
        up_ms.saturating_sub(started_ms),
    ))
}

/// `/proc/uptime`'s `12345.67` in milliseconds. Integers only: float parsing
/// would link its 10 kB power-of-five table into the agent for this alone.
pub fn uptime_ms(text: &str) -> Option<u64> {
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let secs: u64 = secs.parse().ok()?;
    let mut ms = 0;
    for (i, d) in frac.bytes().enumerate() {
        if !d.is_ascii_digit() {
            return None;
        }
        if i < 3 {
            ms += u64::from(d - b'0') * [100, 10, 1][i];
        }
    }
    secs.checked_mul(1000)?.checked_add(ms)
}

/// Whether `record` still names a live process.
pub fn alive(record: Record) -> bool {
    start_time(record.pid) == Some(record.start_time)
}

/// A descriptor that becomes readable when the process exits, for a process
/// that is not our child (so `waitpid` cannot tell us). `None` on kernels
/// before 5.3; the caller then polls [`alive`].
pub fn pidfd(pid: u32) -> Option<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor
    // that we own, or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    let fd = i32::try_from(fd).ok()?;
    // SAFETY: fd was just returned by the kernel and nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_parses_to_milliseconds_without_floats() {
        assert_eq!(uptime_ms("12345.67"), Some(12_345_670));
        assert_eq!(uptime_ms("0.5"), Some(500));
        assert_eq!(uptime_ms("3.14159"), Some(3_141));
        assert_eq!(uptime_ms("42"), Some(42_000));
        assert_eq!(uptime_ms("4.x"), None);
        assert_eq!(uptime_ms(""), None);
    }

    #[test]
    fn stat_with_spaces_and_parens_in_the_name_parses() {
        let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_stat(stat), Some(987654));
    }

    /// /proc text is trusted, but the state file is not: neither parser
    /// panics on any input.
    #[test]
    fn random_stat_and_record_text_never_panics() {
        let pieces = [
            "1",
            " ",
            "(",
            ")",
            "Z",
            "S",
            "x",
            "é",
            "\n",
            "99999999999999999999",
        ];
        let mut seed: u64 = 0x0ADD_07ED;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut s = seed;
            let text: String = (0..(s % 30))
                .map(|_| {
                    s = s.rotate_left(5) ^ 0x9E37_79B9;
                    pieces[(s % pieces.len() as u64) as usize]
                })
                .collect();
            let _ = parse_stat(&text);
        }
    }

    #[test]
    fn zombie_is_not_alive() {
        let stat = "1234 (x) Z 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_stat(stat), None);
    }

    #[test]
    fn own_process_has_a_start_time_and_an_age() {
        assert!(start_time(std::process::id()).is_some());
        let age = age(std::process::id()).expect("own age");
        assert!(age < std::time::Duration::from_secs(24 * 3600), "{age:?}");
    }

    #[test]
    fn record_round_trips_and_damage_is_ignored() {
        let dir = std::env::temp_dir().join(format!("nuvol-adopt-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let r = Record {
            pid: 42,
            start_time: 7,
        };
        save(&dir, "web", r).unwrap();
        assert_eq!(load(&dir, "web"), Some(r));
        fs::write(path(&dir, "web"), "garbage").unwrap();
        assert_eq!(load(&dir, "web"), None);
        fs::write(path(&dir, "web"), "1 7\n").unwrap();
        assert_eq!(load(&dir, "web"), None, "init is never adopted");
        remove(&dir, "web");
        assert_eq!(load(&dir, "web"), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
