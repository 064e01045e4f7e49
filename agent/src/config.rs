//! The agent's configuration: embedded defaults, then the UCI file, then flags.
//!
//! The agent runs with no file at all (name from the hostname, microcloud
//! `default`, LAN profile, bind `0.0.0.0:7946`). On OpenWRT it reads
//! `/etc/config/nuvol`; elsewhere the same format from `--config FILE`. Every
//! value is checked here, once, so the rest of the agent never sees a bad one;
//! a bad value is reported as `FILE:LINE: OPTION: MESSAGE` and the agent exits
//! 100 (s6: do not restart a misconfigured service in a loop).
//!
//! Recognised UCI sections (others — `service`, `app`, `page` — are read by the
//! supervisor, the LXC driver and the page from [`AgentConfig::uci`]):
//!
//! ```text
//! config agent 'main'
//!     option name 'router-1'          # default: hostname
//!     option microcloud 'default'
//!     option bind '0.0.0.0:7946'
//!     option advertise '10.1.2.3:7946' # address peers use; default: bind, or guessed
//!     option profile 'lan'             # lan | wan
//!     option state '/etc/nuvol'
//!     option control '/var/run/nuvol.sock'
//!     option services_dir '/etc/nuvol/services.d' # more `config service` files
//!     option control_mode '0600'
//!     option control_group 'nuvol'     # group owner of the socket (with mode 0660)
//!     option http '127.0.0.1:8080'     # built-in page server, off by default
//!     option beacon_port '7947'        # local-link discovery, 0 = off
//!     list join '10.0.0.1:7946'
//!     list event_handler 'member-join,member-failed=/usr/bin/alert.sh'
//! config seed
//!     list addr '10.0.0.2:7946'
//! config key
//!     option secret 'base64 32-byte key'
//!     option primary '1'
//! config gossip                        # protocol overrides of the profile
//!     option probe_interval_ms '2000'  # any nuvol_gossip::Config::set key
//! config federation                    # super node (builds with `heavy` only)
//!     option enabled '1'
//!     option name 'sants/router-1'     # name in the pool; default MICROCLOUD/NAME
//!     option bind '0.0.0.0:7948'       # the pool's own UDP+TCP port
//!     option advertise '10.1.2.3:7948'
//!     list seed 'super.example.net:7948' # other super nodes
//!     option key 'base64 32-byte key'  # the pool's key (or option keyfile PATH)
//!     option max_summary '256'         # records published in the pool, at most
//!     list gossip 'probe_interval_ms=5000' # overrides of the pool's WAN profile
//! ```
//!
//! A build without the `heavy` feature warns once about a `federation`
//! section and otherwise ignores it, so one config file serves every board.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::args::{Arg, Parser, Usage};

pub const DEFAULT_CONFIG: &str = "/etc/config/nuvol";
pub const DEFAULT_CONTROL: &str = "/var/run/nuvol.sock";
pub const DEFAULT_STATE: &str = "/etc/nuvol";
/// Where packages drop `config service` files of their own.
pub const DEFAULT_SERVICES_DIR: &str = "/etc/nuvol/services.d";
pub const DEFAULT_PORT: u16 = 7946;
pub const DEFAULT_BEACON_PORT: u16 = 7947;
/// The federation pool's port on a super node.
#[cfg(feature = "heavy")]
pub const DEFAULT_FEDERATION_PORT: u16 = 7948;
/// Records a super node publishes in the pool, by default and at most.
#[cfg(feature = "heavy")]
pub const DEFAULT_MAX_SUMMARY: usize = 256;
#[cfg(feature = "heavy")]
pub const MAX_MAX_SUMMARY: usize = 4096;
/// Longest node or microcloud name: fits a table column and a UDP packet.
pub const MAX_NAME: usize = 63;

/// Timing profile of the gossip core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// A microcloud on a community LAN / mesh: fast probes.
    Lan,
    /// Federation pool across the community network: slower, more tolerant.
    Wan,
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Lan => "lan",
            Profile::Wan => "wan",
        }
    }
}

/// Which events a handler script runs for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventFilter {
    /// `*`: everything.
    All,
    /// `member-join`, `member-leave`, `member-failed`, `member-update`,
    /// `service-up`, `service-down`.
    Kind(String),
    /// `user` (any user event) or `user:NAME`.
    User(Option<String>),
    /// `query` or `query:NAME`: the handler's stdout is this node's answer.
    Query(Option<String>),
}

const MEMBER_KINDS: &[&str] = &[
    "member-join",
    "member-leave",
    "member-failed",
    "member-update",
    "member-reap",
    "service-up",
    "service-down",
];

/// A Serf-style handler: `[filter[,filter]=]command`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerSpec {
    pub filters: Vec<EventFilter>,
    pub command: String,
}

impl HandlerSpec {
    pub fn parse(spec: &str) -> Result<HandlerSpec, String> {
        // Only treat the part before `=` as a filter list if it is one, so a
        // command that itself contains `=` still works without a filter.
        if let Some((head, cmd)) = spec.split_once('=') {
            if let Some(filters) = parse_filters(head) {
                if cmd.trim().is_empty() {
                    return Err(format!("handler '{spec}' has no command"));
                }
                return Ok(HandlerSpec {
                    filters,
                    command: cmd.to_string(),
                });
            }
        }
        if spec.trim().is_empty() {
            return Err("empty handler".into());
        }
        Ok(HandlerSpec {
            filters: vec![EventFilter::All],
            command: spec.to_string(),
        })
    }

    /// Whether this handler runs for an event of `kind` (`user`, `query`,
    /// `member-join`, …) with user event / query `name`.
    pub fn matches(&self, kind: &str, name: Option<&str>) -> bool {
        self.filters.iter().any(|f| match f {
            EventFilter::All => true,
            EventFilter::Kind(k) => k == kind,
            EventFilter::User(n) => kind == "user" && (n.is_none() || n.as_deref() == name),
            EventFilter::Query(n) => kind == "query" && (n.is_none() || n.as_deref() == name),
        })
    }
}

fn parse_filters(head: &str) -> Option<Vec<EventFilter>> {
    let mut out = Vec::new();
    for part in head.split(',') {
        let f = match part {
            "*" => EventFilter::All,
            "user" => EventFilter::User(None),
            "query" => EventFilter::Query(None),
            k if MEMBER_KINDS.contains(&k) => EventFilter::Kind(k.to_string()),
            p => {
                if let Some(n) = p.strip_prefix("user:").filter(|n| !n.is_empty()) {
                    EventFilter::User(Some(n.to_string()))
                } else if let Some(n) = p.strip_prefix("query:").filter(|n| !n.is_empty()) {
                    EventFilter::Query(Some(n.to_string()))
                } else {
                    return None;
                }
            }
        };
        out.push(f);
    }
    Some(out)
}

/// A key from the config file (keys installed at runtime live in the state dir).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigKey {
    pub key: [u8; 32],
    pub primary: bool,
}

/// Everything the agent needs to start, checked.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub name: String,
    pub microcloud: String,
    pub bind: SocketAddr,
    pub advertise: Option<SocketAddr>,
    pub join: Vec<String>,
    pub state_dir: PathBuf,
    /// UCI files with more `config service` sections (read on start and SIGHUP).
    pub services_dir: PathBuf,
    pub control: PathBuf,
    pub control_mode: u32,
    pub control_group: Option<String>,
    pub profile: Profile,
    pub http: Option<SocketAddr>,
    pub beacon_port: u16,
    pub handlers: Vec<HandlerSpec>,
    pub keys: Vec<ConfigKey>,
    /// The gossip profile with the file's `config gossip` overrides applied.
    pub gossip: nuvol_gossip::Config,
    /// `(key, value)` overrides from the file, re-applied if a flag changes the profile.
    pub gossip_overrides: Vec<(String, String)>,
    /// The file read, if any (SIGHUP re-reads it).
    pub file: Option<PathBuf>,
    /// The whole parsed file, for the supervisor, the LXC driver and the page.
    pub uci: nuvol_uci::Config,
    /// `config federation` with `enabled 1`: this node is a super node.
    #[cfg(feature = "heavy")]
    pub federation: Option<FedConfig>,
}

/// A super node's second gossip node: the federation pool.
#[cfg(feature = "heavy")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FedConfig {
    /// Name in the pool (unique across microclouds); `None`: MICROCLOUD/NAME.
    pub name: Option<String>,
    pub bind: SocketAddr,
    pub advertise: Option<SocketAddr>,
    /// Other super nodes, `HOST:PORT`, resolved when joining.
    pub seeds: Vec<String>,
    /// The pool's key; `None` is plaintext (with a warning).
    pub key: Option<[u8; 32]>,
    pub max_summary: usize,
    /// The WAN profile with the section's `gossip` overrides.
    pub gossip: nuvol_gossip::Config,
}

/// A bad configuration value, located for the owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, or `command line`.
    pub origin: String,
    pub line: Option<u32>,
    /// The option (`bind`) or flag (`--bind`).
    pub option: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: ", self.origin, l)?,
            None => write!(f, "{}: ", self.origin)?,
        }
        if !self.option.is_empty() {
            write!(f, "{}: ", self.option)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Command-line settings; `None` means "not given, keep the file's value".
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub config: Option<PathBuf>,
    pub name: Option<String>,
    pub microcloud: Option<String>,
    pub bind: Option<String>,
    pub advertise: Option<String>,
    pub join: Vec<String>,
    pub state: Option<PathBuf>,
    pub control: Option<PathBuf>,
    pub profile: Option<String>,
    pub http: Option<String>,
    pub beacon_port: Option<String>,
    pub handlers: Vec<String>,
    /// `KEY=VALUE` gossip parameter overrides (as in `config gossip`).
    pub gossip: Vec<String>,
    pub help: bool,
}

impl Flags {
    /// Reads `nuvol agent` flags (everything after `agent`).
    pub fn parse(args: Vec<String>) -> Result<Flags, Usage> {
        let mut p = Parser::new(args);
        let mut f = Flags::default();
        while let Some(arg) = p.next() {
            match arg {
                Arg::Flag(flag) => match flag.as_str() {
                    "config" => f.config = Some(p.value(&flag)?.into()),
                    "name" => f.name = Some(p.value(&flag)?),
                    "microcloud" => f.microcloud = Some(p.value(&flag)?),
                    "bind" => f.bind = Some(p.value(&flag)?),
                    "advertise" => f.advertise = Some(p.value(&flag)?),
                    "join" => f.join.push(p.value(&flag)?),
                    "state" => f.state = Some(p.value(&flag)?.into()),
                    "control" => f.control = Some(p.value(&flag)?.into()),
                    "profile" => f.profile = Some(p.value(&flag)?),
                    "http" => f.http = Some(p.value(&flag)?),
                    "beacon-port" => f.beacon_port = Some(p.value(&flag)?),
                    "event-handler" => f.handlers.push(p.value(&flag)?),
                    "gossip" => f.gossip.push(p.value(&flag)?),
                    "help" => f.help = true,
                    other => return Err(Usage(format!("unknown agent flag --{other}"))),
                },
                Arg::Pos(w) => return Err(Usage(format!("unexpected argument '{w}'"))),
            }
        }
        Ok(f)
    }
}

/// Builds the configuration: defaults, then the file, then `flags`.
/// `env_control` is `$NUVOL_CONTROL`.
pub fn load(flags: &Flags, env_control: Option<&str>) -> Result<AgentConfig, ConfigError> {
    let mut cfg = defaults();
    let (path, required) = match &flags.config {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from(DEFAULT_CONFIG), false),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            apply_file(&mut cfg, &path, &text)?;
            cfg.file = Some(path);
        }
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(ConfigError {
                origin: path.display().to_string(),
                line: None,
                option: String::new(),
                message: format!("cannot read: {e}"),
            })
        }
    }
    if let Some(c) = env_control.filter(|c| !c.is_empty()) {
        cfg.control = PathBuf::from(c);
    }
    apply_flags(&mut cfg, flags)?;
    Ok(cfg)
}

fn defaults() -> AgentConfig {
    AgentConfig {
        name: hostname(),
        microcloud: "default".into(),
        bind: SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)),
        advertise: None,
        join: Vec::new(),
        state_dir: PathBuf::from(DEFAULT_STATE),
        services_dir: PathBuf::from(DEFAULT_SERVICES_DIR),
        control: PathBuf::from(DEFAULT_CONTROL),
        control_mode: 0o600,
        control_group: None,
        profile: Profile::Lan,
        http: None,
        beacon_port: DEFAULT_BEACON_PORT,
        handlers: Vec::new(),
        keys: Vec::new(),
        gossip: nuvol_gossip::Config::lan(),
        gossip_overrides: Vec::new(),
        file: None,
        uci: nuvol_uci::Config::default(),
        #[cfg(feature = "heavy")]
        federation: None,
    }
}

/// The kernel's hostname, cut to a valid node name; `nuvol` if unusable.
fn hostname() -> String {
    let raw = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let name: String = raw
        .chars()
        .filter(|c| !c.is_control() && !c.is_whitespace())
        .take(MAX_NAME)
        .collect();
    if name.is_empty() {
        "nuvol".into()
    } else {
        name
    }
}

fn apply_file(cfg: &mut AgentConfig, path: &Path, text: &str) -> Result<(), ConfigError> {
    let origin = path.display().to_string();
    let uci = nuvol_uci::parse(text).map_err(|e| ConfigError {
        origin: origin.clone(),
        line: Some(e.line),
        option: String::new(),
        message: e.message,
    })?;
    for section in uci.sections_of("agent") {
        for opt in &section.options {
            let err = |message: String| ConfigError {
                origin: origin.clone(),
                line: Some(opt.line),
                option: opt.name.clone(),
                message,
            };
            let single = || single_value(opt).map_err(err);
            match opt.name.as_str() {
                "name" => cfg.name = check_name(single()?).map_err(err)?,
                "microcloud" => cfg.microcloud = check_name(single()?).map_err(err)?,
                "bind" => cfg.bind = parse_addr(single()?).map_err(err)?,
                "advertise" => cfg.advertise = Some(parse_addr(single()?).map_err(err)?),
                "join" => {
                    for a in opt.value.iter() {
                        cfg.join.push(check_host_port(a).map_err(err)?);
                    }
                }
                "state" => cfg.state_dir = check_path(single()?).map_err(err)?,
                "control" => cfg.control = check_path(single()?).map_err(err)?,
                "services_dir" => cfg.services_dir = check_path(single()?).map_err(err)?,
                "control_mode" => cfg.control_mode = parse_mode(single()?).map_err(err)?,
                "control_group" => cfg.control_group = Some(single()?.to_string()),
                "profile" => cfg.profile = parse_profile(single()?).map_err(err)?,
                "http" => cfg.http = parse_optional_addr(single()?).map_err(err)?,
                "beacon_port" => cfg.beacon_port = parse_port(single()?).map_err(err)?,
                "event_handler" => {
                    for h in opt.value.iter() {
                        cfg.handlers.push(HandlerSpec::parse(h).map_err(err)?);
                    }
                }
                // Read by other parts of the agent, or reserved; unknown
                // options are refused so a typo does not silently do nothing.
                other => return Err(err(format!("unknown option '{other}' in an agent section"))),
            }
        }
    }
    for section in uci.sections_of("seed") {
        let Some(opt) = section.get("addr") else {
            return Err(ConfigError {
                origin: origin.clone(),
                line: Some(section.line),
                option: "addr".into(),
                message: "a seed section needs an addr".into(),
            });
        };
        for a in opt.value.iter() {
            cfg.join
                .push(check_host_port(a).map_err(|message| ConfigError {
                    origin: origin.clone(),
                    line: Some(opt.line),
                    option: "addr".into(),
                    message,
                })?);
        }
    }
    for section in uci.sections_of("key") {
        let located = |opt: &str, line: u32, message: String| ConfigError {
            origin: origin.clone(),
            line: Some(line),
            option: opt.into(),
            message,
        };
        let Some(secret) = section.get("secret") else {
            return Err(located(
                "secret",
                section.line,
                "a key section needs a secret".into(),
            ));
        };
        let key = parse_key(section.get_str("secret").unwrap_or_default())
            .map_err(|m| located("secret", secret.line, m))?;
        let primary = match section.get("primary") {
            None => false,
            Some(o) => parse_bool(section.get_str("primary").unwrap_or_default())
                .map_err(|m| located("primary", o.line, m))?,
        };
        cfg.keys.push(ConfigKey { key, primary });
    }
    for section in uci.sections_of("gossip") {
        for opt in &section.options {
            let value = section.get_str(&opt.name).unwrap_or_default();
            let mut probe = nuvol_gossip::Config::lan();
            probe.set(&opt.name, value).map_err(|e| ConfigError {
                origin: origin.clone(),
                line: Some(opt.line),
                option: opt.name.clone(),
                message: format!("{e} ('{value}')"),
            })?;
            cfg.gossip_overrides
                .push((opt.name.clone(), value.to_string()));
        }
    }
    for section in uci.sections_of("federation") {
        #[cfg(not(feature = "heavy"))]
        crate::log::warn(&format!(
            "{origin}:{}: this build has no federation support; the federation section is ignored \
             (super nodes need a build with the heavy feature)",
            section.line
        ));
        #[cfg(feature = "heavy")]
        {
            if cfg.federation.is_some() {
                return Err(ConfigError {
                    origin: origin.clone(),
                    line: Some(section.line),
                    option: String::new(),
                    message: "only one federation section may be enabled".into(),
                });
            }
            cfg.federation = parse_federation(&origin, section)?;
        }
    }
    cfg.uci = uci;
    Ok(())
}

/// One `config federation` section; `None` when `enabled` is 0.
#[cfg(feature = "heavy")]
fn parse_federation(
    origin: &str,
    section: &nuvol_uci::Section,
) -> Result<Option<FedConfig>, ConfigError> {
    let mut f = FedConfig {
        name: None,
        bind: SocketAddr::from(([0, 0, 0, 0], DEFAULT_FEDERATION_PORT)),
        advertise: None,
        seeds: Vec::new(),
        key: None,
        max_summary: DEFAULT_MAX_SUMMARY,
        gossip: nuvol_gossip::Config::wan(),
    };
    let mut enabled = true;
    for opt in &section.options {
        let err = |message: String| ConfigError {
            origin: origin.to_string(),
            line: Some(opt.line),
            option: opt.name.clone(),
            message,
        };
        let single = || single_value(opt).map_err(err);
        match opt.name.as_str() {
            "enabled" => enabled = parse_bool(single()?).map_err(err)?,
            "name" => f.name = Some(check_pool_name(single()?).map_err(err)?),
            "bind" => f.bind = parse_addr(single()?).map_err(err)?,
            "advertise" => f.advertise = Some(parse_addr(single()?).map_err(err)?),
            "seed" => {
                for a in opt.value.iter() {
                    let a = match check_host_port(a) {
                        // A bare host means the pool's port, not the LAN's.
                        Ok(_) if !a.contains(':') => format!("{a}:{DEFAULT_FEDERATION_PORT}"),
                        r => r.map_err(err)?,
                    };
                    f.seeds.push(a);
                }
            }
            "key" => f.key = Some(parse_key(single()?).map_err(err)?),
            "keyfile" => {
                let path = single()?;
                let text = std::fs::read_to_string(path)
                    .map_err(|e| err(format!("cannot read {path}: {e}")))?;
                f.key = Some(parse_key(&text).map_err(|m| err(format!("{path}: {m}")))?);
            }
            "max_summary" => {
                f.max_summary = match single()?.parse::<usize>() {
                    Ok(n) if (1..=MAX_MAX_SUMMARY).contains(&n) => n,
                    _ => {
                        return Err(err(format!(
                            "'{}' is not a record count (1-{MAX_MAX_SUMMARY})",
                            single()?
                        )))
                    }
                }
            }
            "gossip" => {
                for kv in opt.value.iter() {
                    let (k, v) = kv
                        .split_once('=')
                        .ok_or_else(|| err(format!("expected KEY=VALUE, got '{kv}'")))?;
                    f.gossip
                        .set(k, v)
                        .map_err(|e| err(format!("{k}: {e} ('{v}')")))?;
                }
            }
            other => {
                return Err(err(format!(
                    "unknown option '{other}' in a federation section"
                )))
            }
        }
    }
    Ok(enabled.then_some(f))
}

/// A pool name: a node name that may also hold the `/` of MICROCLOUD/NAME.
#[cfg(feature = "heavy")]
fn check_pool_name(v: &str) -> Result<String, String> {
    if v.len() > 2 * MAX_NAME + 1 {
        return Err(format!("'{v}' is longer than {} bytes", 2 * MAX_NAME + 1));
    }
    if v.is_empty() || v.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "'{v}' is empty or contains spaces or control characters"
        ));
    }
    Ok(v.to_string())
}

fn apply_flags(cfg: &mut AgentConfig, f: &Flags) -> Result<(), ConfigError> {
    let err = |flag: &str, message: String| ConfigError {
        origin: "command line".into(),
        line: None,
        option: format!("--{flag}"),
        message,
    };
    if let Some(v) = &f.name {
        cfg.name = check_name(v).map_err(|m| err("name", m))?;
    }
    if let Some(v) = &f.microcloud {
        cfg.microcloud = check_name(v).map_err(|m| err("microcloud", m))?;
    }
    if let Some(v) = &f.bind {
        cfg.bind = parse_addr(v).map_err(|m| err("bind", m))?;
    }
    if let Some(v) = &f.advertise {
        cfg.advertise = Some(parse_addr(v).map_err(|m| err("advertise", m))?);
    }
    for j in &f.join {
        cfg.join
            .push(check_host_port(j).map_err(|m| err("join", m))?);
    }
    if let Some(v) = &f.state {
        cfg.state_dir = v.clone();
    }
    if let Some(v) = &f.control {
        cfg.control = v.clone();
    }
    if let Some(v) = &f.profile {
        cfg.profile = parse_profile(v).map_err(|m| err("profile", m))?;
    }
    if let Some(v) = &f.http {
        cfg.http = parse_optional_addr(v).map_err(|m| err("http", m))?;
    }
    if let Some(v) = &f.beacon_port {
        cfg.beacon_port = parse_port(v).map_err(|m| err("beacon-port", m))?;
    }
    for h in &f.handlers {
        cfg.handlers
            .push(HandlerSpec::parse(h).map_err(|m| err("event-handler", m))?);
    }
    cfg.gossip = match cfg.profile {
        Profile::Lan => nuvol_gossip::Config::lan(),
        Profile::Wan => nuvol_gossip::Config::wan(),
    };
    for (k, v) in &cfg.gossip_overrides {
        // Checked when the file was read; a profile switch cannot make it invalid.
        let _ = cfg.gossip.set(k, v);
    }
    for g in &f.gossip {
        let (k, v) = g
            .split_once('=')
            .ok_or_else(|| err("gossip", format!("expected KEY=VALUE, got '{g}'")))?;
        cfg.gossip
            .set(k, v)
            .map_err(|e| err("gossip", format!("{k}: {e} ('{v}')")))?;
    }
    Ok(())
}

/// Node and microcloud names: printable, no blanks, at most [`MAX_NAME`] bytes.
pub fn check_name(v: &str) -> Result<String, String> {
    if v.is_empty() {
        return Err("must not be empty".into());
    }
    if v.len() > MAX_NAME {
        return Err(format!("'{v}' is longer than {MAX_NAME} bytes"));
    }
    if v.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("'{v}' contains spaces or control characters"));
    }
    Ok(v.to_string())
}

fn parse_addr(v: &str) -> Result<SocketAddr, String> {
    v.parse()
        .map_err(|_| format!("'{v}' is not an IP:PORT address (e.g. 0.0.0.0:7946)"))
}

fn parse_optional_addr(v: &str) -> Result<Option<SocketAddr>, String> {
    match v {
        "" | "off" | "0" => Ok(None),
        v => parse_addr(v).map(Some),
    }
}

/// A join address: `IP:PORT`, `host:PORT`, or a bare IP/host meaning port 7946.
/// Hosts are resolved when joining, not here, so a seed that is down or
/// unresolvable at boot does not stop the agent.
pub fn check_host_port(v: &str) -> Result<String, String> {
    if v.parse::<SocketAddr>().is_ok() {
        return Ok(v.to_string());
    }
    if v.parse::<std::net::IpAddr>().is_ok() {
        return Ok(if v.contains(':') {
            format!("[{v}]:{DEFAULT_PORT}")
        } else {
            format!("{v}:{DEFAULT_PORT}")
        });
    }
    let (host, port) = match v.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (v, None),
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if !host_ok {
        return Err(format!("'{v}' is not a HOST:PORT address"));
    }
    match port {
        None => Ok(format!("{host}:{DEFAULT_PORT}")),
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(v.to_string()),
            _ => Err(format!("'{v}' has an invalid port")),
        },
    }
}

fn check_path(v: &str) -> Result<PathBuf, String> {
    if v.is_empty() {
        Err("path must not be empty".into())
    } else {
        Ok(PathBuf::from(v))
    }
}

fn parse_mode(v: &str) -> Result<u32, String> {
    match u32::from_str_radix(v.trim_start_matches("0o"), 8) {
        Ok(m) if m <= 0o777 => Ok(m),
        _ => Err(format!("'{v}' is not an octal file mode like 0600")),
    }
}

fn parse_profile(v: &str) -> Result<Profile, String> {
    match v {
        "lan" => Ok(Profile::Lan),
        "wan" => Ok(Profile::Wan),
        _ => Err(format!("'{v}' is not a profile (lan or wan)")),
    }
}

fn parse_port(v: &str) -> Result<u16, String> {
    v.parse()
        .map_err(|_| format!("'{v}' is not a port number (0 turns it off)"))
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v {
        "1" | "yes" | "on" | "true" | "enabled" => Ok(true),
        "0" | "no" | "off" | "false" | "disabled" => Ok(false),
        _ => Err(format!("'{v}' is not a boolean (1 or 0)")),
    }
}

/// A cluster key: 32 bytes, base64 (as `nuvol keys generate` prints).
/// An option's one value: a list where one value belongs is an error.
fn single_value(opt: &nuvol_uci::Opt) -> Result<&str, String> {
    match &opt.value {
        nuvol_uci::Value::Single(s) => Ok(s.as_str()),
        nuvol_uci::Value::List(_) => Err("expected a single value, not a list".into()),
    }
}

pub fn parse_key(v: &str) -> Result<[u8; 32], String> {
    nuvol_gossip::Key::from_base64(v.trim())
        .map(|k| *k.as_bytes())
        .map_err(|e| format!("bad key: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_file(text: &str, flags: Flags) -> Result<AgentConfig, ConfigError> {
        // One directory per call: tests run in parallel, and two texts of
        // one length used to share (and remove) a directory.
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("nuvol-config-{}-{call}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("nuvol");
        std::fs::write(&path, text).unwrap();
        let flags = Flags {
            config: Some(path),
            ..flags
        };
        let r = load(&flags, None);
        std::fs::remove_dir_all(&dir).unwrap();
        r
    }

    #[test]
    fn defaults_need_no_file() {
        let flags = Flags {
            config: None,
            ..Flags::default()
        };
        // /etc/config/nuvol does not exist on the build machine.
        if Path::new(DEFAULT_CONFIG).exists() {
            return;
        }
        let cfg = load(&flags, None).unwrap();
        assert_eq!(cfg.microcloud, "default");
        assert_eq!(cfg.bind, "0.0.0.0:7946".parse().unwrap());
        assert_eq!(cfg.profile, Profile::Lan);
        assert_eq!(cfg.control, PathBuf::from(DEFAULT_CONTROL));
        assert!(!cfg.name.is_empty());
    }

    #[test]
    fn file_values_apply_and_flags_override() {
        let text = "config agent\n\toption name a\n\toption microcloud m\n\toption bind 127.0.0.1:9000\n\tlist join 10.0.0.1\nconfig seed\n\toption addr seed.lan:7000\n";
        let flags = Flags {
            name: Some("b".into()),
            join: vec!["127.0.0.1:9001".into()],
            ..Flags::default()
        };
        let cfg = with_file(text, flags).unwrap();
        assert_eq!(cfg.name, "b");
        assert_eq!(cfg.microcloud, "m");
        assert_eq!(cfg.bind.port(), 9000);
        assert_eq!(
            cfg.join,
            vec!["10.0.0.1:7946", "seed.lan:7000", "127.0.0.1:9001"]
        );
    }

    #[test]
    fn services_dir_has_a_default_and_an_option() {
        let cfg = with_file("config agent\n\toption name a\n", Flags::default()).unwrap();
        assert_eq!(cfg.services_dir, PathBuf::from(DEFAULT_SERVICES_DIR));
        let cfg = with_file(
            "config agent\n\toption services_dir '/srv/svc.d'\n",
            Flags::default(),
        )
        .unwrap();
        assert_eq!(cfg.services_dir, PathBuf::from("/srv/svc.d"));
    }

    #[test]
    fn bad_value_names_file_line_and_option() {
        let e = with_file(
            "config agent\n\toption name a\n\toption bind nowhere\n",
            Flags::default(),
        )
        .unwrap_err();
        assert_eq!(e.line, Some(3));
        assert_eq!(e.option, "bind");
        let shown = e.to_string();
        assert!(
            shown.ends_with(":3: bind: 'nowhere' is not an IP:PORT address (e.g. 0.0.0.0:7946)"),
            "{shown}"
        );
    }

    #[test]
    fn unknown_agent_option_is_refused() {
        let e = with_file("config agent\n\toption nmae a\n", Flags::default()).unwrap_err();
        assert_eq!((e.line, e.option.as_str()), (Some(2), "nmae"));
    }

    #[test]
    fn syntax_error_names_line() {
        let e = with_file("config agent\n\toption name 'a\n", Flags::default()).unwrap_err();
        assert_eq!(e.line, Some(2));
    }

    #[test]
    fn bad_flag_names_flag() {
        let flags = Flags {
            profile: Some("moon".into()),
            ..Flags::default()
        };
        let e = with_file("", flags).unwrap_err();
        assert_eq!(
            e.to_string(),
            "command line: --profile: 'moon' is not a profile (lan or wan)"
        );
    }

    #[cfg(not(feature = "heavy"))]
    #[test]
    fn a_base_build_accepts_a_federation_section() {
        // Only a warning (on stderr): the same file serves every board.
        let cfg = with_file(
            "config federation\n\toption enabled 1\n\toption bind 'nonsense'\n",
            Flags::default(),
        );
        assert!(cfg.is_ok());
    }

    #[cfg(feature = "heavy")]
    #[test]
    fn federation_section_parses_with_defaults_and_overrides() {
        let key = nuvol_gossip::Key::from_bytes([9u8; 32]).to_base64();
        let cfg = with_file(
            &format!(
                "config federation\n\toption bind '127.0.0.1:9000'\n\tlist seed 'super.example'\n\
                 \tlist seed '10.0.0.9:9100'\n\toption key '{key}'\n\toption max_summary 10\n\
                 \tlist gossip 'probe_interval_ms=700'\n"
            ),
            Flags::default(),
        )
        .unwrap();
        let f = cfg.federation.unwrap();
        assert_eq!(f.bind, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(f.seeds, vec!["super.example:7948", "10.0.0.9:9100"]);
        assert_eq!(f.key, Some([9; 32]));
        assert_eq!(f.max_summary, 10);
        assert_eq!(f.gossip.probe_interval.as_millis(), 700);
        assert_eq!(
            f.gossip.probe_timeout,
            nuvol_gossip::Config::wan().probe_timeout
        );
        let off = with_file("config federation\n\toption enabled 0\n", Flags::default()).unwrap();
        assert!(off.federation.is_none());
    }

    #[cfg(feature = "heavy")]
    #[test]
    fn bad_federation_values_name_file_line_and_option() {
        for (text, line, option) in [
            ("config federation\n\toption bind 'x'\n", 2, "bind"),
            (
                "config federation\n\n\toption max_summary 0\n",
                3,
                "max_summary",
            ),
            ("config federation\n\toption key 'AAAA'\n", 2, "key"),
            ("config federation\n\tlist gossip 'nope=1'\n", 2, "gossip"),
            (
                "config federation\n\toption keyfile '/nonexistent/k'\n",
                2,
                "keyfile",
            ),
            ("config federation\n\toption colour 'red'\n", 2, "colour"),
        ] {
            let e = with_file(text, Flags::default()).unwrap_err();
            assert_eq!((e.line, e.option.as_str()), (Some(line), option), "{text}");
            assert!(
                e.to_string().contains(&format!(":{line}: {option}: ")),
                "{e}"
            );
        }
        let two = "config federation\nconfig federation\n";
        assert_eq!(with_file(two, Flags::default()).unwrap_err().line, Some(2));
    }

    #[test]
    fn keys_are_checked() {
        let good = nuvol_gossip::Key::from_bytes([7u8; 32]).to_base64();
        let cfg = with_file(
            &format!("config key\n\toption secret '{good}'\n\toption primary 1\n"),
            Flags::default(),
        )
        .unwrap();
        assert_eq!(
            cfg.keys,
            vec![ConfigKey {
                key: [7; 32],
                primary: true
            }]
        );
        let e = with_file("config key\n\toption secret 'AAAA'\n", Flags::default()).unwrap_err();
        assert_eq!((e.line, e.option.as_str()), (Some(2), "secret"));
    }

    #[test]
    fn gossip_overrides_apply_to_the_chosen_profile() {
        let flags = Flags {
            profile: Some("wan".into()),
            ..Flags::default()
        };
        let cfg = with_file("config gossip\n\toption probe_interval_ms 1234\n", flags).unwrap();
        assert_eq!(cfg.gossip.probe_interval.as_millis(), 1234);
        assert_eq!(
            cfg.gossip.gossip_interval,
            nuvol_gossip::Config::wan().gossip_interval
        );
        let e = with_file(
            "config gossip\n\toption probe_intervl_ms 1\n",
            Flags::default(),
        )
        .unwrap_err();
        assert_eq!((e.line, e.option.as_str()), (Some(2), "probe_intervl_ms"));
    }

    #[test]
    fn handler_specs_follow_serf() {
        let h = HandlerSpec::parse("member-join,user:deploy=/bin/x a=b").unwrap();
        assert_eq!(h.command, "/bin/x a=b");
        assert!(h.matches("member-join", None));
        assert!(h.matches("user", Some("deploy")));
        assert!(!h.matches("user", Some("other")));
        assert!(!h.matches("query", Some("deploy")));
        let all = HandlerSpec::parse("/bin/env FOO=1 handler").unwrap();
        assert_eq!(all.filters, vec![EventFilter::All]);
        assert_eq!(all.command, "/bin/env FOO=1 handler");
        assert!(HandlerSpec::parse("user=").is_err());
    }

    #[test]
    fn join_addresses_get_default_port() {
        assert_eq!(check_host_port("10.0.0.1").unwrap(), "10.0.0.1:7946");
        assert_eq!(check_host_port("fe80::1").unwrap(), "[fe80::1]:7946");
        assert_eq!(check_host_port("node.lan").unwrap(), "node.lan:7946");
        assert!(check_host_port("a b:1").is_err());
        assert!(check_host_port("host:0").is_err());
    }

    #[test]
    fn agent_flags_parse() {
        let f = Flags::parse(
            [
                "--name",
                "n",
                "--join=1.2.3.4:1",
                "--join",
                "h:2",
                "--beacon-port",
                "0",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        )
        .unwrap();
        assert_eq!(f.name.as_deref(), Some("n"));
        assert_eq!(f.join, vec!["1.2.3.4:1", "h:2"]);
        assert!(Flags::parse(vec!["--nmae".into()]).is_err());
    }
}
