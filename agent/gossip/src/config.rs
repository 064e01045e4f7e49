//! Protocol parameters: the `lan` and `wan` profiles, every field overridable.
//!
//! `lan` suits a microcloud on one community mesh (probe 1 s, timeout 500 ms,
//! gossip 200 ms to 3 nodes); `wan` suits super nodes federating microclouds
//! over long, lossy paths (5 s, 3 s, 500 ms to 4). Fields are public so a shell
//! or a test can override any of them; [`Config::set`] does the same from the
//! `name=value` strings of a UCI config file.
//!
//! ```
//! use nuvol_gossip::Config;
//! let mut c = Config::lan();
//! c.set("probe_interval_ms", "2000").unwrap();
//! assert_eq!(c.probe_interval.as_millis(), 2000);
//! ```

use core::fmt;
use core::time::Duration;

/// Every tunable of the protocol. See the module docs for the profiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Time between two probes of the round-robin (scaled by local health).
    pub probe_interval: Duration,
    /// How long to wait for a direct ack before asking others (scaled by local health).
    pub probe_timeout: Duration,
    /// Members asked to probe indirectly (SWIM's k).
    pub indirect_checks: usize,
    /// Time between two gossip rounds.
    pub gossip_interval: Duration,
    /// Members each gossip round sends to.
    pub gossip_nodes: usize,
    /// λ: an update is retransmitted λ·⌈log10(N+1)⌉ times.
    pub retransmit_mult: u32,
    /// Suspicion timeout minimum is `suspicion_mult · max(1, log10 N) · probe_interval`.
    pub suspicion_mult: u32,
    /// Suspicion timeout maximum is this times the minimum (Lifeguard).
    pub suspicion_max_timeout_mult: u32,
    /// Lifeguard local health score ranges over `0..awareness_max_multiplier`.
    pub awareness_max_multiplier: u32,
    /// Lifeguard on (local health, nacks, dynamic suspicion, buddy system) or
    /// plain SWIM with a fixed suspicion timeout.
    pub lifeguard: bool,
    /// When the direct probe times out, also ping the target over a stream
    /// (TCP in the agent), alongside the indirect probes: retransmission
    /// carries it through heavy datagram loss (memberlist's TCP fallback).
    pub stream_probes: bool,
    /// Base interval of push-pull anti-entropy; scaled up with cluster size.
    pub push_pull_interval: Duration,
    /// How often to try a push-pull with one failed member (heals partitions).
    pub reconnect_interval: Duration,
    /// How long failed members are still gossiped to and retried.
    pub reconnect_timeout: Duration,
    /// How long failed or left members are remembered before being reaped.
    pub dead_retention: Duration,
    /// How long unpublished records are remembered so they cannot come back.
    pub tombstone_retention: Duration,
    /// How often to retry joining while no other member is known.
    pub join_retry_interval: Duration,
    /// Largest datagram the core emits, sealing included.
    pub mtu: usize,
    /// How many Lamport ticks of user events are remembered for deduplication.
    pub event_buffer: u64,
    /// Upper bound for a query's timeout, whatever the asker requests.
    pub max_query_timeout: Duration,
    /// Largest push-pull stream accepted or produced, in bytes; decoding
    /// one may take up to [`Config::decode_budget`] more.
    pub max_stream_len: usize,
    /// Most members this node holds, itself and failed or left ones
    /// included. A full table takes no new names (their Alives and records
    /// are dropped and counted in [`crate::Stats::members_refused`]) until
    /// reaping makes room; known members are always updated and never
    /// pushed out, so a flood of fake names cannot evict real members.
    pub max_members: usize,
}

/// A [`Config::set`] failure; the config is unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    UnknownKey,
    BadValue,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::UnknownKey => f.write_str("unknown gossip parameter"),
            ConfigError::BadValue => f.write_str("gossip parameter value is not a valid number"),
        }
    }
}

/// A push-pull decodes into at most this many times the stream limit:
/// realistic ones take ~4.6× their length as the decoder counts (tags and
/// catalogs of the agent's shape), a hostile one of minimal items up to
/// 40×, so honest streams of the largest size fit with room for shorter
/// strings and hostile ones are cut at 3 MiB on a LAN node.
const DECODE_FACTOR: usize = 6;

const MAX_DURATION_MS: u64 = 366 * 24 * 3600 * 1000;

const fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

impl Config {
    /// The LAN profile: one microcloud on a community mesh.
    pub fn lan() -> Config {
        Config {
            probe_interval: ms(1000),
            probe_timeout: ms(500),
            indirect_checks: 3,
            gossip_interval: ms(200),
            gossip_nodes: 3,
            retransmit_mult: 4,
            suspicion_mult: 4,
            suspicion_max_timeout_mult: 6,
            awareness_max_multiplier: 8,
            lifeguard: true,
            stream_probes: true,
            push_pull_interval: ms(30_000),
            reconnect_interval: ms(10_000),
            reconnect_timeout: ms(24 * 3600 * 1000),
            dead_retention: ms(3600 * 1000),
            tombstone_retention: ms(24 * 3600 * 1000),
            join_retry_interval: ms(5_000),
            mtu: 1400,
            event_buffer: 512,
            max_query_timeout: ms(60_000),
            // A router has 64 MB, often 25-30 MB free, and anyone on the
            // LAN (any key holder when sealed) may send streams this long.
            // A member with the agent's 8 tags and 10 services takes
            // ~1.2 KB (wire.rs tests), so this holds ~430 such members,
            // more with fewer services: "tens to hundreds of nodes".
            max_stream_len: 512 << 10,
            // A few times the largest honest microcloud, about twice what
            // one full push-pull of realistic members holds (~430): fake
            // members cost the router ~1 KB each and a probe slot, so a
            // flood tops out at ~1 MB instead of growing until OOM.
            max_members: 1024,
        }
    }

    /// The WAN profile: super nodes across microclouds.
    pub fn wan() -> Config {
        Config {
            probe_interval: ms(5000),
            probe_timeout: ms(3000),
            gossip_interval: ms(500),
            gossip_nodes: 4,
            suspicion_mult: 6,
            push_pull_interval: ms(60_000),
            reconnect_interval: ms(30_000),
            join_retry_interval: ms(10_000),
            // Super nodes run on servers and carry many microclouds.
            max_stream_len: 16 << 20,
            // Hundreds of microclouds with a few super nodes each.
            max_members: 4096,
            ..Config::lan()
        }
    }

    /// A profile by name: `lan` or `wan`.
    pub fn profile(name: &str) -> Option<Config> {
        match name {
            "lan" => Some(Config::lan()),
            "wan" => Some(Config::wan()),
            _ => None,
        }
    }

    /// What decoding one push-pull may take ([`crate::wire::decode_push_pull`]'s
    /// budget): a fixed multiple of [`Config::max_stream_len`].
    pub fn decode_budget(&self) -> usize {
        self.max_stream_len.saturating_mul(DECODE_FACTOR)
    }

    /// Override one parameter from text. Durations are given in milliseconds
    /// with an `_ms` suffix on the field name (`probe_interval_ms`).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let num = || {
            value
                .trim()
                .parse::<u64>()
                .map_err(|_| ConfigError::BadValue)
        };
        // Durations above a year are typos; refusing them keeps every
        // product of timers far from overflow.
        let dur = || match num()? {
            ms if ms <= MAX_DURATION_MS => Ok(Duration::from_millis(ms)),
            _ => Err(ConfigError::BadValue),
        };
        let small = || num().and_then(|v| u32::try_from(v).map_err(|_| ConfigError::BadValue));
        let fanout = || match small()? {
            v @ 1..=64 => Ok(v as usize),
            _ => Err(ConfigError::BadValue),
        };
        let flag = || match value.trim() {
            "1" | "true" | "on" | "yes" => Ok(true),
            "0" | "false" | "off" | "no" => Ok(false),
            _ => Err(ConfigError::BadValue),
        };
        match key {
            "probe_interval_ms" => self.probe_interval = dur()?,
            "probe_timeout_ms" => self.probe_timeout = dur()?,
            "indirect_checks" => self.indirect_checks = fanout()?,
            "gossip_interval_ms" => self.gossip_interval = dur()?,
            "gossip_nodes" => self.gossip_nodes = fanout()?,
            "retransmit_mult" => self.retransmit_mult = small()?,
            "suspicion_mult" => self.suspicion_mult = small()?,
            "suspicion_max_timeout_mult" => self.suspicion_max_timeout_mult = small()?,
            "awareness_max_multiplier" => self.awareness_max_multiplier = small()?,
            "lifeguard" => self.lifeguard = flag()?,
            "stream_probes" => self.stream_probes = flag()?,
            "push_pull_interval_ms" => self.push_pull_interval = dur()?,
            "reconnect_interval_ms" => self.reconnect_interval = dur()?,
            "reconnect_timeout_ms" => self.reconnect_timeout = dur()?,
            "dead_retention_ms" => self.dead_retention = dur()?,
            "tombstone_retention_ms" => self.tombstone_retention = dur()?,
            "join_retry_interval_ms" => self.join_retry_interval = dur()?,
            "mtu" => {
                let v = small()? as usize;
                if !(512..=65_000).contains(&v) {
                    return Err(ConfigError::BadValue);
                }
                self.mtu = v;
            }
            "event_buffer" => self.event_buffer = num()?,
            "max_query_timeout_ms" => self.max_query_timeout = dur()?,
            "max_stream_len" => self.max_stream_len = small()? as usize,
            // At least this node and one other.
            "max_members" => match small()? {
                v @ 2.. => self.max_members = v as usize,
                _ => return Err(ConfigError::BadValue),
            },
            _ => return Err(ConfigError::UnknownKey),
        }
        Ok(())
    }

    /// Retransmit limit for an update in a cluster of `n` members: λ·⌈log10(n+1)⌉.
    pub fn retransmit_limit(&self, n: usize) -> u32 {
        // ⌈log10(n+1)⌉ without floats: the smallest d with 10^d ≥ n+1.
        let target = n as u64 + 1;
        let mut digits = 0u32;
        let mut power = 1u64;
        while power < target {
            power = power.saturating_mul(10);
            digits += 1;
        }
        self.retransmit_mult.saturating_mul(digits.max(1))
    }

    /// Lifeguard's minimum suspicion timeout for `n` members.
    pub fn suspicion_min_timeout(&self, n: usize) -> Duration {
        let scale = crate::rng::log10(n.max(1) as f64).max(1.0);
        let ms = self.suspicion_mult as f64 * scale * self.probe_interval.as_millis() as f64;
        Duration::from_millis((ms + 0.5) as u64)
    }

    /// Push-pull interval for `n` members: doubles with every doubling past 32.
    pub fn push_pull_interval_for(&self, n: usize) -> Duration {
        if n <= 32 {
            return self.push_pull_interval;
        }
        let extra = crate::rng::ln(n as f64 / 32.0) / core::f64::consts::LN_2;
        let mult = extra.max(0.0) as u32 + 2;
        self.push_pull_interval.saturating_mul(mult)
    }
}

impl Default for Config {
    fn default() -> Config {
        Config::lan()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retransmit_limit_is_lambda_times_ceil_log10() {
        let c = Config::lan();
        assert_eq!(c.retransmit_limit(0), 4);
        assert_eq!(c.retransmit_limit(9), 4);
        assert_eq!(c.retransmit_limit(10), 8);
        assert_eq!(c.retransmit_limit(99), 8);
        assert_eq!(c.retransmit_limit(100), 12);
        assert_eq!(c.retransmit_limit(1000), 16);
    }

    #[test]
    fn suspicion_min_scales_with_log10_n() {
        let c = Config::lan();
        assert_eq!(c.suspicion_min_timeout(5).as_millis(), 4000);
        assert_eq!(c.suspicion_min_timeout(100).as_millis(), 8000);
    }

    #[test]
    fn set_overrides_and_rejects_garbage() {
        let mut c = Config::wan();
        c.set("lifeguard", "off").unwrap();
        assert!(!c.lifeguard);
        assert_eq!(c.set("nope", "1"), Err(ConfigError::UnknownKey));
        assert_eq!(c.set("gossip_nodes", "x"), Err(ConfigError::BadValue));
        assert_eq!(c.set("mtu", "10"), Err(ConfigError::BadValue));
        assert_eq!(c.set("gossip_nodes", "0"), Err(ConfigError::BadValue));
        assert_eq!(c.set("max_members", "1"), Err(ConfigError::BadValue));
        c.set("max_members", "300").unwrap();
        assert_eq!(c.max_members, 300);
        let huge = "18446744073709551615";
        assert_eq!(c.set("probe_interval_ms", huge), Err(ConfigError::BadValue));
    }
}
