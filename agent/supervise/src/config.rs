//! Reads service definitions from UCI sections (`config service 'name'`), as
//! found in the agent's config file or in the files of a services directory.
//!
//! One bad section never hides the good ones: every definition is read on its
//! own, and each problem comes back as a [`DefError`] naming the service and
//! the line, while the other services load.
//!
//! ```
//! let cfg = nuvol_uci::parse("
//! config service 'web'
//! \tlist command '/usr/bin/httpd'
//! \tlist command '-f'
//! \toption respawn '60 2 3'
//! \toption health_type 'tcp'
//! \toption health_port '8080'
//! \toption publish_type 'http'
//! \toption publish_port '8080'
//! ").unwrap();
//! let (defs, errors) = nuvol_supervise::config::services_from_uci(&cfg, "/etc/config/nuvol");
//! assert!(errors.is_empty());
//! assert_eq!(defs[0].command, ["/usr/bin/httpd", "-f"]);
//! assert_eq!(defs[0].policy.respawn.unwrap().retry, 3);
//! ```
//!
//! Options (durations are seconds, or carry a unit: `500ms`, `2s`, `5m`, `1h`):
//!
//! | option | meaning |
//! |---|---|
//! | `command` | list (one word each) or string (split on spaces) — required |
//! | `env` | list of `KEY=VALUE` |
//! | `dir`, `user`, `group` | working directory, account |
//! | `limits` | list of `name=soft [hard]`, procd names (`nofile`, `core`, `as`, …), `unlimited` allowed |
//! | `stdout`, `stderr` | `1`/`0`: forward lines to the agent log (default 1) |
//! | `enabled` | `1`/`0`: start with the agent (default 1) |
//! | `respawn` | `threshold timeout retry` in seconds (default `3600 5 5`); `0` or `off`: never respawn |
//! | `backoff` | cap of the exponential backoff (default: none) |
//! | `term_timeout` | SIGTERM → SIGKILL delay (default 5) |
//! | `reload_signal` | `HUP` (default), `USR1`, … |
//! | `health_type` | `tcp`, `http` or `exec` |
//! | `health_port`, `health_host` | TCP probe target (host default `127.0.0.1`); port also builds the HTTP URL |
//! | `health_url`, `health_status` | HTTP probe: `http://host:port/path`, expected status (default 200) |
//! | `health_command` | exec probe: list or string; healthy on exit 0 |
//! | `health_interval`, `health_timeout` | defaults 10 and 5 |
//! | `health_failures`, `health_successes` | in a row; defaults 3 and 1 |
//! | `publish_type`, `publish_port`, `publish_description`, `publish_txt` | the catalog record; `publish_txt` is a list of `key=value` |
//! | `memory` | cgroup memory limit: bytes or `k`/`m`/`g` suffix |
//! | `cpu` | cgroup CPU quota in percent of one CPU (`50` or `50%`) |

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use nuvol_uci::{Config, Opt, Section, Value};

use crate::policy::{HealthTiming, PublishRecord, Respawn, Signal};
use crate::service::{Limit, Origin, Probe, Resource, ServiceDef};

/// The UCI section type of a supervised service.
pub const SECTION: &str = "service";

/// A definition that was refused; nothing of it was loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefError {
    /// The service's name (or the file's, when the whole file was refused).
    pub service: String,
    pub file: String,
    pub line: u32,
    pub message: String,
}

impl fmt::Display for DefError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: line {}: service '{}': {}",
            self.file, self.line, self.service, self.message
        )
    }
}

const OPTIONS: &[&str] = &[
    "command",
    "env",
    "dir",
    "user",
    "group",
    "limits",
    "stdout",
    "stderr",
    "enabled",
    "respawn",
    "backoff",
    "term_timeout",
    "reload_signal",
    "health_type",
    "health_host",
    "health_port",
    "health_url",
    "health_status",
    "health_command",
    "health_interval",
    "health_timeout",
    "health_failures",
    "health_successes",
    "publish_type",
    "publish_port",
    "publish_description",
    "publish_txt",
    "memory",
    "cpu",
];

/// Every `service` section of `config`; `file` names the source in messages.
pub fn services_from_uci(config: &Config, file: &str) -> (Vec<ServiceDef>, Vec<DefError>) {
    let mut defs: Vec<ServiceDef> = Vec::new();
    let mut errors = Vec::new();
    for section in config.sections_of(SECTION) {
        match service_from_section(section, file) {
            Ok(def) => {
                if defs.iter().any(|d| d.name == def.name) {
                    errors.push(DefError {
                        service: def.name.clone(),
                        file: file.into(),
                        line: section.line,
                        message: "defined twice; the first definition is kept".into(),
                    });
                } else {
                    defs.push(def);
                }
            }
            Err(e) => errors.push(e),
        }
    }
    (defs, errors)
}

/// One `service` section.
pub fn service_from_section(section: &Section, file: &str) -> Result<ServiceDef, DefError> {
    let name = section.name.clone().unwrap_or_default();
    let err = |line: u32, message: String| DefError {
        service: if name.is_empty() {
            "?".into()
        } else {
            name.clone()
        },
        file: file.into(),
        line,
        message,
    };
    if name.is_empty() {
        return Err(err(section.line, "a service section needs a name".into()));
    }
    if !valid_name(&name) {
        return Err(err(
            section.line,
            "a service name is letters, digits, '-', '_' or '.' (it names files and cgroups)"
                .into(),
        ));
    }
    for opt in &section.options {
        if !OPTIONS.contains(&opt.name.as_str()) {
            return Err(err(opt.line, format!("unknown option '{}'", opt.name)));
        }
    }
    let r = Reader { section, err: &err };

    let command = r.words("command");
    if command.is_empty() {
        return Err(err(section.line, "missing command".into()));
    }
    let mut def = ServiceDef::new(&name, command);
    def.origin = Origin {
        file: file.into(),
        line: section.line,
        option_lines: section
            .options
            .iter()
            .map(|o| (o.name.clone(), o.line))
            .collect(),
    };
    for (opt, item) in r.items("env") {
        let (k, v) = item
            .split_once('=')
            .filter(|(k, _)| !k.is_empty() && !k.contains('\0'))
            .ok_or_else(|| err(opt.line, format!("env '{item}' is not KEY=VALUE")))?;
        def.env.push((k.into(), v.into()));
    }
    def.dir = r.string("dir");
    def.user = r.string("user");
    def.group = r.string("group");
    for (opt, item) in r.items("limits") {
        def.limits
            .push(parse_limit(item).map_err(|m| err(opt.line, m))?);
    }
    def.stdout = r.flag("stdout", true)?;
    def.stderr = r.flag("stderr", true)?;
    def.enabled = r.flag("enabled", true)?;

    if let Some((line, text)) = r.single("respawn") {
        def.policy.respawn = parse_respawn(text).map_err(|m| err(line, m))?;
    }
    def.policy.backoff_max = r.duration("backoff")?.filter(|d| !d.is_zero());
    if let Some(d) = r.duration("term_timeout")? {
        def.policy.term_timeout = d;
    }
    if let Some((line, text)) = r.single("reload_signal") {
        def.policy.reload_signal =
            Signal::from_name(text).ok_or_else(|| err(line, format!("unknown signal '{text}'")))?;
    }

    if let Some((line, kind)) = r.single("health_type") {
        let host = r
            .string("health_host")
            .unwrap_or_else(|| "127.0.0.1".into());
        let port = r.number::<u16>("health_port")?;
        def.probe = Some(match kind {
            "tcp" => Probe::Tcp {
                host,
                port: port.ok_or_else(|| err(line, "health_type tcp needs health_port".into()))?,
            },
            "http" => {
                let url = match (r.single("health_url"), port) {
                    (Some((_, url)), _) => url.to_string(),
                    (None, Some(port)) => format!("http://{host}:{port}/"),
                    (None, None) => {
                        return Err(err(
                            line,
                            "health_type http needs health_url or health_port".into(),
                        ))
                    }
                };
                let (host, port, path) = parse_http_url(&url).map_err(|m| err(line, m))?;
                let status = r.number::<u16>("health_status")?.unwrap_or(200);
                Probe::Http {
                    host,
                    port,
                    path,
                    status,
                }
            }
            "exec" => {
                let command = r.words("health_command");
                if command.is_empty() {
                    return Err(err(line, "health_type exec needs health_command".into()));
                }
                Probe::Exec { command }
            }
            other => {
                return Err(err(
                    line,
                    format!("health_type '{other}' is not tcp, http or exec"),
                ))
            }
        });
        let d = HealthTiming::default();
        let timing = HealthTiming {
            interval: r.duration("health_interval")?.unwrap_or(d.interval),
            timeout: r.duration("health_timeout")?.unwrap_or(d.timeout),
            failures: r.number("health_failures")?.unwrap_or(d.failures).max(1),
            successes: r.number("health_successes")?.unwrap_or(d.successes).max(1),
        };
        if timing.interval.is_zero() {
            return Err(err(line, "health_interval must be more than 0".into()));
        }
        def.policy.health = Some(timing);
    }

    if let Some((line, kind)) = r.single("publish_type") {
        let port = r
            .number::<u16>("publish_port")?
            .ok_or_else(|| err(line, "publish_type needs publish_port".into()))?;
        let mut record = PublishRecord {
            service_type: kind.into(),
            port,
            description: r
                .string("publish_description")
                .unwrap_or_else(|| name.clone()),
            txt: Vec::new(),
        };
        for (opt, item) in r.items("publish_txt") {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| err(opt.line, format!("publish_txt '{item}' is not key=value")))?;
            record.txt.push((k.into(), v.into()));
        }
        def.policy.publish = Some(record);
    }

    if let Some((line, text)) = r.single("memory") {
        def.memory = Some(parse_bytes(text).map_err(|m| err(line, m))?);
    }
    if let Some((line, text)) = r.single("cpu") {
        let pct = text
            .trim()
            .trim_end_matches('%')
            .parse::<u32>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| err(line, format!("cpu '{text}' is not a percentage above 0")))?;
        def.cpu_percent = Some(pct);
    }
    Ok(def)
}

/// Names end up in file names and cgroup directories.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

struct Reader<'a, F: Fn(u32, String) -> DefError> {
    section: &'a Section,
    err: &'a F,
}

impl<F: Fn(u32, String) -> DefError> Reader<'_, F> {
    fn single(&self, name: &str) -> Option<(u32, &str)> {
        let opt = self.section.get(name)?;
        self.section.get_str(name).map(|s| (opt.line, s))
    }

    fn string(&self, name: &str) -> Option<String> {
        self.single(name)
            .map(|(_, s)| s.to_string())
            .filter(|s| !s.is_empty())
    }

    /// A list gives one word per item; a single string is split on spaces.
    fn words(&self, name: &str) -> Vec<String> {
        match self.section.get(name).map(|o| &o.value) {
            None => Vec::new(),
            Some(Value::List(l)) => l.iter().filter(|s| !s.is_empty()).cloned().collect(),
            Some(Value::Single(s)) => s.split_whitespace().map(String::from).collect(),
        }
    }

    fn items(&self, name: &str) -> Vec<(&Opt, &str)> {
        match self.section.get(name) {
            None => Vec::new(),
            Some(opt) => opt.value.iter().map(|s| (opt, s)).collect(),
        }
    }

    fn flag(&self, name: &str, default: bool) -> Result<bool, DefError> {
        match self.single(name) {
            None => Ok(default),
            Some((_, "1" | "true" | "yes" | "on")) => Ok(true),
            Some((_, "0" | "false" | "no" | "off")) => Ok(false),
            Some((line, v)) => Err((self.err)(line, format!("{name} '{v}' is not 0 or 1"))),
        }
    }

    fn number<T: core::str::FromStr>(&self, name: &str) -> Result<Option<T>, DefError> {
        match self.single(name) {
            None => Ok(None),
            Some((line, v)) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| (self.err)(line, format!("{name} '{v}' is not a valid number"))),
        }
    }

    fn duration(&self, name: &str) -> Result<Option<Duration>, DefError> {
        match self.single(name) {
            None => Ok(None),
            Some((line, v)) => parse_duration(v)
                .map(Some)
                .ok_or_else(|| (self.err)(line, format!("{name} '{v}' is not a duration"))),
        }
    }
}

/// `5`, `5s`, `500ms`, `2m`, `1h`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().ok()?;
    match unit {
        "" | "s" => Some(Duration::from_secs(n)),
        "ms" => Some(Duration::from_millis(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

/// procd's `threshold timeout retry`; missing trailing fields keep their defaults.
fn parse_respawn(text: &str) -> Result<Option<Respawn>, String> {
    let t = text.trim();
    if t == "0" || t == "off" || t == "no" {
        return Ok(None);
    }
    let mut r = Respawn::default();
    let mut fields = t.split_whitespace();
    let bad = || format!("respawn '{text}' is not 'threshold timeout retry' in seconds");
    if let Some(f) = fields.next() {
        r.threshold = parse_duration(f).ok_or_else(bad)?;
    }
    if let Some(f) = fields.next() {
        r.timeout = parse_duration(f).ok_or_else(bad)?;
    }
    if let Some(f) = fields.next() {
        r.retry = f.parse().map_err(|_| bad())?;
    }
    if fields.next().is_some() {
        return Err(bad());
    }
    Ok(Some(r))
}

/// `nofile=1024`, `nofile=1024 4096`, `core=unlimited`.
fn parse_limit(item: &str) -> Result<Limit, String> {
    let (name, values) = item
        .split_once('=')
        .ok_or_else(|| format!("limit '{item}' is not name=soft [hard]"))?;
    let resource = Resource::from_name(name.trim())
        .ok_or_else(|| format!("unknown limit '{}'", name.trim()))?;
    let value = |v: &str| -> Result<Option<u64>, String> {
        if v == "unlimited" || v == "infinity" {
            Ok(None)
        } else {
            v.parse()
                .map(Some)
                .map_err(|_| format!("limit value '{v}' is not a number or 'unlimited'"))
        }
    };
    let mut parts = values.split_whitespace();
    let soft = value(
        parts
            .next()
            .ok_or_else(|| format!("limit '{item}' has no value"))?,
    )?;
    let hard = match parts.next() {
        Some(h) => value(h)?,
        None => soft,
    };
    if parts.next().is_some() {
        return Err(format!("limit '{item}' has more than soft and hard"));
    }
    if let (Some(s), Some(h)) = (soft, hard) {
        if s > h {
            return Err(format!("limit '{item}': soft is above hard"));
        }
    }
    if soft.is_none() && hard.is_some() {
        return Err(format!("limit '{item}': soft is above hard"));
    }
    Ok(Limit {
        resource,
        soft,
        hard,
    })
}

/// `64m`, `512k`, `1g`, `1048576`.
fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, mult) = match t.as_bytes().last() {
        Some(b'k' | b'K') => (&t[..t.len() - 1], 1u64 << 10),
        Some(b'm' | b'M') => (&t[..t.len() - 1], 1 << 20),
        Some(b'g' | b'G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("memory '{text}' is not a size (bytes, or with k/m/g)"))
}

/// `http://host[:port][/path]`; only plain HTTP: the probe talks to this node.
fn parse_http_url(url: &str) -> Result<(String, u16, String), String> {
    let bad = || format!("health_url '{url}' is not http://host[:port]/path");
    let rest = url.strip_prefix("http://").ok_or_else(bad)?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if after.is_empty() => 80,
            None => return Err(bad()),
        };
        (h, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| bad())?),
            None => (authority, 80),
        }
    };
    if host.is_empty() || path.bytes().any(|b| b <= b' ') {
        return Err(bad());
    }
    Ok((host.into(), port, path.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn load(text: &str) -> (Vec<ServiceDef>, Vec<DefError>) {
        services_from_uci(&nuvol_uci::parse(text).expect("valid UCI"), "test")
    }

    #[test]
    fn full_definition_maps_every_option() {
        let (defs, errors) = load(
            "config service 'web'
	option command '/usr/sbin/httpd -f -p 8080'
	list env 'A=1'
	list env 'B=x=y'
	option dir '/srv'
	option user 'nobody'
	option group 'nogroup'
	list limits 'nofile=64 128'
	list limits 'core=unlimited'
	option stdout '0'
	option respawn '60 2 0'
	option backoff '30'
	option term_timeout '500ms'
	option reload_signal 'USR1'
	option health_type 'http'
	option health_url 'http://127.0.0.1:8080/ok'
	option health_status '204'
	option health_interval '3'
	option health_failures '2'
	option publish_type 'http'
	option publish_port '8080'
	list publish_txt 'path=/'
	option memory '64m'
	option cpu '50%'
",
        );
        assert_eq!(errors, vec![]);
        let d = &defs[0];
        assert_eq!(d.command, ["/usr/sbin/httpd", "-f", "-p", "8080"]);
        assert_eq!(d.env[1], ("B".into(), "x=y".into()));
        assert_eq!(
            d.limits,
            vec![
                Limit {
                    resource: Resource::Nofile,
                    soft: Some(64),
                    hard: Some(128)
                },
                Limit {
                    resource: Resource::Core,
                    soft: None,
                    hard: None
                }
            ]
        );
        assert!(!d.stdout && d.stderr);
        let respawn = d.policy.respawn.unwrap();
        assert_eq!((respawn.threshold.as_secs(), respawn.retry), (60, 0));
        assert_eq!(d.policy.backoff_max, Some(Duration::from_secs(30)));
        assert_eq!(d.policy.term_timeout, Duration::from_millis(500));
        assert_eq!(d.policy.reload_signal, Signal::Usr1);
        assert_eq!(
            d.probe,
            Some(Probe::Http {
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/ok".into(),
                status: 204
            })
        );
        let h = d.policy.health.unwrap();
        assert_eq!((h.interval.as_secs(), h.failures, h.successes), (3, 2, 1));
        let p = d.policy.publish.as_ref().unwrap();
        assert_eq!((p.port, p.description.as_str()), (8080, "web"));
        assert_eq!(d.memory, Some(64 << 20));
        assert_eq!(d.cpu_percent, Some(50));
    }

    #[test]
    fn defaults_are_procd_defaults() {
        let (defs, _) = load("config service 'a'\n\tlist command 'sleep'\n\tlist command '1'\n");
        let d = &defs[0];
        assert_eq!(d.policy.respawn, Some(Respawn::default()));
        assert_eq!(d.policy.term_timeout, Duration::from_secs(5));
        assert!(d.enabled && d.stdout && d.stderr);
    }

    #[test]
    fn bad_definitions_name_service_and_line_and_others_still_load() {
        let (defs, errors) = load(
            "config service 'good'
	option command 'true'

config service 'typo'
	option command 'true'
	option comand 'x'

config service 'empty'
	option user 'nobody'

config service 'after'
	option command 'true'
",
        );
        let names: Vec<_> = defs.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["good", "after"]);
        assert_eq!(errors.len(), 2);
        assert_eq!(
            errors[0].to_string(),
            "test: line 6: service 'typo': unknown option 'comand'"
        );
        assert_eq!(
            errors[1].to_string(),
            "test: line 8: service 'empty': missing command"
        );
    }

    #[test]
    fn respawn_off_disables_respawn() {
        let (defs, _) =
            load("config service 'a'\n\toption command 'true'\n\toption respawn 'off'\n");
        assert_eq!(defs[0].policy.respawn, None);
    }

    #[test]
    fn malformed_values_are_errors_not_panics() {
        for (opt, value) in [
            ("respawn", "1 2 3 4"),
            ("respawn", "x"),
            ("limits", "nofile"),
            ("limits", "bogus=1"),
            ("limits", "nofile=10 5"),
            ("term_timeout", "5 years"),
            ("memory", "lots"),
            ("memory", "99999999999999999999g"),
            ("cpu", "0"),
            ("reload_signal", "SIGNOPE"),
            ("env", "=x"),
            ("health_type", "ping"),
            ("publish_type", "http"),
        ] {
            let text = alloc::format!(
                "config service 'a'\n\toption command 'true'\n\toption {opt} '{value}'\n"
            );
            let (defs, errors) = load(&text);
            assert!(defs.is_empty(), "{opt} '{value}' was accepted");
            assert_eq!(errors[0].line, 3, "{opt} '{value}'");
        }
    }

    /// Untrusted text never panics a value parser: random strings over an
    /// alphabet of the characters the formats care about, multi-byte ones
    /// included (byte slicing at a non-boundary would panic).
    #[test]
    fn random_values_never_panic() {
        const ALPHABET: &[&str] = &[
            "0",
            "1",
            "9",
            " ",
            "=",
            ":",
            "/",
            "[",
            "]",
            "k",
            "m",
            "g",
            "s",
            "ms",
            "h",
            "http://",
            "unlimited",
            "nofile",
            "-",
            ".",
            "é",
            "€",
            "\u{1F600}",
            "\t",
            "%",
        ];
        let mut seed: u64 = 0x5EED_F00D;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let len = (next() % 8) as usize;
            let text: String = (0..len)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
                .collect();
            let _ = parse_duration(&text);
            let _ = parse_respawn(&text);
            let _ = parse_limit(&text);
            let _ = parse_bytes(&text);
            let _ = parse_http_url(&text);
            let _ = Signal::from_name(&text);
        }
    }

    #[test]
    fn http_probe_url_from_port_alone() {
        let (defs, errors) = load(
            "config service 'a'\n\toption command 'true'\n\toption health_type 'http'\n\toption health_port '81'\n",
        );
        assert_eq!(errors, vec![]);
        assert!(matches!(&defs[0].probe, Some(Probe::Http { port: 81, path, .. }) if path == "/"));
    }

    #[test]
    fn names_that_would_escape_a_directory_are_refused() {
        for bad in ["../x", ".x", "a/b", "", "a b"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert!(valid_name("web-1.2_x"));
    }
}
