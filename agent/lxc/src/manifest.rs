//! App template manifests: one UCI file per app, validated as untrusted input.
//!
//! A manifest may come from anyone (a feed, a peer, a USB stick), so [`parse`]
//! checks every field and refuses the file with a [`ManifestError`] that names
//! the field and its line: missing fields, values of the wrong type or form,
//! unknown keys and unknown sections are all errors — a typo never silently
//! turns into a default. Host-dependent checks (architecture, ports already
//! taken) are [`Manifest::check_arch`] and [`Manifest::check_ports`], which the
//! installer runs before anything is downloaded or created.
//!
//! One `config template` section per file (`NAME.app`, named after the app):
//!
//! | field | form | meaning |
//! |---|---|---|
//! | `name`, `description`, `version` | text, required | `name`: 1-32 of `a-z0-9-`, the file's name |
//! | `architecture` | list, required | `all`, or any of x86_64 i586 armv7 armv6 aarch64 mips mipsel |
//! | `source` | required | `busybox` (offline), `download` (+ `dist`, `release`), `rootfs` (+ `rootfs`: tarball path) |
//! | `command` | shell line | the app, run by nuvol's init as PID 1's child; absent: the image's own init |
//! | `setup` | list of shell lines | run once at install in the new container (e.g. `apk add …`) |
//! | `env` | list `KEY=VALUE` | the container's environment |
//! | `port` | list `CONTAINER[:PUBLISHED][/tcp\|/udp]` | ports, and where they are published |
//! | `memory` | `16M`, `512k`, `1G` | memory limit (≥ 4M) |
//! | `cpu`, `cpu_weight`, `pids` | `0.5`; 1-10000; 8-… | CPU quota in CPUs, relative weight, process limit |
//! | `health` | `tcp[:PORT]`, `http[:PORT][/PATH]`, `exec:LINE` | health check (ports are container ports) |
//! | `publish_type`, `publish_description`, `publish_port`, `publish` | text; text; container port; `1`/`0` | the catalog record while healthy, and whether it is published by default |
//!
//! ```
//! let m = nuvol_lxc::manifest::parse("
//! config template
//!     option name 'website'
//!     option description 'A static web site'
//!     option version '1.0'
//!     list architecture 'all'
//!     option source 'busybox'
//!     option command 'httpd -f -p 80 -h /srv/www'
//!     list port '80:8080'
//!     option memory '16M'
//!     option health 'http:80/'
//!     option publish_type 'http'
//! ").unwrap();
//! assert_eq!(m.ports[0].published, 8080);
//! assert_eq!(m.memory, Some(16 << 20));
//! ```

use std::fmt;
use std::path::PathBuf;

use nuvol_uci::{Section, Value};

use crate::host::Arch;

/// Why a manifest was refused: the field (or section) and its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    pub line: u32,
    /// The option or section at fault (`port`, `memory`, `config foo`, …).
    pub field: String,
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.field, self.message)
    }
}

impl std::error::Error for ManifestError {}

fn err(line: u32, field: &str, message: impl Into<String>) -> ManifestError {
    ManifestError {
        line,
        field: field.to_string(),
        message: message.into(),
    }
}

/// Which boards a template runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Architectures {
    /// Any board (e.g. the busybox template copies the host's own busybox).
    All,
    Only(Vec<Arch>),
}

/// Where the container's root filesystem comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    Busybox,
    Download { dist: String, release: String },
    Rootfs(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// A container port and the port it is published on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortMap {
    pub container: u16,
    pub published: u16,
    pub proto: Proto,
}

/// How to tell the app is healthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheck {
    /// TCP connect to this container port (through its published address).
    Tcp(u16),
    /// HTTP GET of `path` on this container port; a 2xx/3xx answer is healthy.
    Http { port: u16, path: String },
    /// A shell line run inside the container; exit 0 is healthy.
    Exec(String),
}

/// The record published while the app is healthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishSpec {
    pub service_type: String,
    pub description: String,
    /// The container port whose published port goes in the record.
    pub port: u16,
    /// Publish as soon as it is installed and healthy.
    pub by_default: bool,
}

/// A validated manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub name: String,
    pub description: String,
    pub version: String,
    pub architectures: Architectures,
    pub source: SourceSpec,
    /// The app's command (a shell line); `None` keeps the image's own init.
    pub command: Option<String>,
    /// Shell lines run once inside the new container at install.
    pub setup: Vec<String>,
    pub env: Vec<(String, String)>,
    pub ports: Vec<PortMap>,
    pub memory: Option<u64>,
    /// CPU quota in thousandths of one CPU (`0.5` → 500).
    pub cpu_millis: Option<u32>,
    /// Relative CPU weight, 1..=10000 (cgroup v2 scale; 100 is the default).
    pub cpu_weight: Option<u32>,
    pub pids: Option<u32>,
    pub health: Option<HealthCheck>,
    pub publish: Option<PublishSpec>,
    /// Line of each field, for errors found after parsing.
    pub lines: Vec<(String, u32)>,
}

impl Manifest {
    /// The line a field was set on (the section's line when absent).
    pub fn line_of(&self, field: &str) -> u32 {
        self.lines
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, l)| *l)
            .unwrap_or(1)
    }

    pub fn supports(&self, arch: Option<Arch>) -> bool {
        match (&self.architectures, arch) {
            (Architectures::All, _) => true,
            (Architectures::Only(list), Some(a)) => list.contains(&a),
            (Architectures::Only(_), None) => false,
        }
    }

    /// Refuses a board architecture the template does not list.
    pub fn check_arch(&self, arch: Option<Arch>) -> Result<(), ManifestError> {
        if self.supports(arch) {
            return Ok(());
        }
        let listed = match &self.architectures {
            Architectures::All => String::from("all"),
            Architectures::Only(l) => l.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", "),
        };
        let board = arch.map(Arch::as_str).unwrap_or("an unknown architecture");
        Err(err(
            self.line_of("architecture"),
            "architecture",
            format!("this board is {board}; the template supports only {listed}"),
        ))
    }

    /// Refuses published ports that `in_use` says are taken.
    pub fn check_ports(&self, in_use: impl Fn(u16, Proto) -> bool) -> Result<(), ManifestError> {
        self.check_published(&self.ports, in_use)
    }

    /// As [`check_ports`](Self::check_ports), for `ports` as this node
    /// would publish them (they may differ from the template's).
    pub fn check_published(
        &self,
        ports: &[PortMap],
        in_use: impl Fn(u16, Proto) -> bool,
    ) -> Result<(), ManifestError> {
        for p in ports {
            if in_use(p.published, p.proto) {
                return Err(err(
                    self.line_of("port"),
                    "port",
                    format!(
                        "{}/{} is already in use on this node",
                        p.published,
                        p.proto.as_str()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The published port for a container port.
    pub fn published(&self, container: u16) -> Option<u16> {
        self.ports
            .iter()
            .find(|p| p.container == container)
            .map(|p| p.published)
    }
}

/// Fields a template section may hold. Anything else is refused.
const KNOWN: [&str; 18] = [
    "name",
    "description",
    "version",
    "architecture",
    "source",
    "dist",
    "release",
    "rootfs",
    "command",
    "setup",
    "env",
    "port",
    "memory",
    "cpu",
    "cpu_weight",
    "pids",
    "health",
    "publish_type",
];
const KNOWN_MORE: [&str; 3] = ["publish_description", "publish_port", "publish"];

/// Longest text accepted in a free-form field.
const MAX_TEXT: usize = 1024;

/// Reads and validates a manifest.
pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
    let config = nuvol_uci::parse(text).map_err(|e| err(e.line, "syntax", e.message))?;
    let mut sections = config.sections.iter();
    let Some(sec) = sections.next() else {
        return Err(err(1, "config template", "no `config template` section"));
    };
    if sec.kind != "template" {
        return Err(err(
            sec.line,
            &format!("config {}", sec.kind),
            "unknown section; a manifest holds one `config template`",
        ));
    }
    if let Some(extra) = sections.next() {
        return Err(err(
            extra.line,
            &format!("config {}", extra.kind),
            "a manifest holds exactly one section",
        ));
    }
    from_section(sec)
}

struct Fields<'a> {
    sec: &'a Section,
}

impl<'a> Fields<'a> {
    fn line(&self, name: &str) -> u32 {
        self.sec.get(name).map(|o| o.line).unwrap_or(self.sec.line)
    }

    /// A single-valued field; a `list` where an `option` belongs is a type error.
    fn single(&self, name: &str) -> Result<Option<&'a str>, ManifestError> {
        match self.sec.get(name) {
            None => Ok(None),
            Some(o) => match &o.value {
                Value::Single(s) => {
                    if s.len() > MAX_TEXT {
                        return Err(err(o.line, name, format!("longer than {MAX_TEXT} bytes")));
                    }
                    if s.chars().any(|c| c.is_control() && c != '\t') {
                        return Err(err(o.line, name, "contains control characters"));
                    }
                    Ok(Some(s.as_str()))
                }
                Value::List(_) => Err(err(o.line, name, "must be an `option`, not a `list`")),
            },
        }
    }

    fn required(&self, name: &str) -> Result<&'a str, ManifestError> {
        match self.single(name)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            Some(_) => Err(err(self.line(name), name, "is empty")),
            None => Err(err(self.sec.line, name, "is missing")),
        }
    }

    fn list(&self, name: &str) -> Result<Vec<&'a str>, ManifestError> {
        let Some(o) = self.sec.get(name) else {
            return Ok(Vec::new());
        };
        let items: Vec<&str> = o.value.iter().collect();
        if items.len() > 64 {
            return Err(err(o.line, name, "more than 64 entries"));
        }
        for s in &items {
            if s.len() > MAX_TEXT || s.chars().any(|c| c.is_control() && c != '\t') {
                return Err(err(
                    o.line,
                    name,
                    "an entry is too long or contains control characters",
                ));
            }
        }
        Ok(items)
    }
}

fn from_section(sec: &Section) -> Result<Manifest, ManifestError> {
    for o in &sec.options {
        if !KNOWN.contains(&o.name.as_str()) && !KNOWN_MORE.contains(&o.name.as_str()) {
            return Err(err(o.line, &o.name, "unknown key"));
        }
    }
    let f = Fields { sec };

    let name = f.required("name")?;
    if !crate::driver::valid_name(name) {
        return Err(err(
            f.line("name"),
            "name",
            "use 1-32 of a-z, 0-9 and '-', starting with a letter",
        ));
    }
    let description = f.required("description")?;
    let version = f.required("version")?;

    let arch_list = f.list("architecture")?;
    if arch_list.is_empty() {
        return Err(err(
            sec.line,
            "architecture",
            "is missing (list the boards, or 'all')",
        ));
    }
    let architectures = if arch_list == ["all"] {
        Architectures::All
    } else {
        let mut archs = Vec::new();
        for a in arch_list {
            let arch = Arch::parse(a).ok_or_else(|| {
                let known: Vec<&str> = Arch::ALL.iter().map(|a| a.as_str()).collect();
                err(
                    f.line("architecture"),
                    "architecture",
                    format!(
                        "unknown architecture {a:?}; known: all, {}",
                        known.join(", ")
                    ),
                )
            })?;
            if !archs.contains(&arch) {
                archs.push(arch);
            }
        }
        Architectures::Only(archs)
    };

    let source = match f.required("source")? {
        "busybox" => SourceSpec::Busybox,
        "download" => {
            let dist = f.required("dist")?;
            let release = f.required("release")?;
            for (field, v) in [("dist", dist), ("release", release)] {
                if !v
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
                {
                    return Err(err(
                        f.line(field),
                        field,
                        "use letters, digits, '.', '-' and '_'",
                    ));
                }
            }
            SourceSpec::Download {
                dist: dist.to_string(),
                release: release.to_string(),
            }
        }
        "rootfs" => {
            let path = f.required("rootfs")?;
            if !path.starts_with('/') || path.split('/').any(|p| p == "..") {
                return Err(err(
                    f.line("rootfs"),
                    "rootfs",
                    "must be an absolute path without '..'",
                ));
            }
            SourceSpec::Rootfs(PathBuf::from(path))
        }
        other => {
            return Err(err(
                f.line("source"),
                "source",
                format!("unknown source {other:?}; use busybox, download or rootfs"),
            ))
        }
    };
    // Fields of other sources are refused rather than ignored: they signal a mistake.
    for (field, wanted) in [
        ("dist", "download"),
        ("release", "download"),
        ("rootfs", "rootfs"),
    ] {
        let used = matches!(
            (&source, wanted),
            (SourceSpec::Download { .. }, "download") | (SourceSpec::Rootfs(_), "rootfs")
        );
        if !used && sec.get(field).is_some() {
            return Err(err(
                f.line(field),
                field,
                format!("only used with source '{wanted}'"),
            ));
        }
    }

    let command = f
        .single("command")?
        .filter(|c| !c.trim().is_empty())
        .map(String::from);
    let setup = f.list("setup")?.into_iter().map(String::from).collect();

    let mut env = Vec::new();
    for e in f.list("env")? {
        let (k, v) = e
            .split_once('=')
            .ok_or_else(|| err(f.line("env"), "env", format!("{e:?} is not KEY=VALUE")))?;
        let key_ok = !k.is_empty()
            && !k.starts_with(|c: char| c.is_ascii_digit())
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !key_ok {
            return Err(err(
                f.line("env"),
                "env",
                format!("{k:?} is not a variable name"),
            ));
        }
        env.push((k.to_string(), v.to_string()));
    }

    let mut ports: Vec<PortMap> = Vec::new();
    for p in f.list("port")? {
        let pm = parse_port(p).map_err(|m| err(f.line("port"), "port", m))?;
        if ports
            .iter()
            .any(|q| q.published == pm.published && q.proto == pm.proto)
        {
            return Err(err(
                f.line("port"),
                "port",
                format!("published port {} appears twice", pm.published),
            ));
        }
        ports.push(pm);
    }

    let memory = match f.single("memory")? {
        None => None,
        Some(s) => Some(parse_size(s).map_err(|m| err(f.line("memory"), "memory", m))?),
    };
    let cpu_millis = match f.single("cpu")? {
        None => None,
        Some(s) => Some(parse_cpu(s).map_err(|m| err(f.line("cpu"), "cpu", m))?),
    };
    let cpu_weight = number(&f, "cpu_weight", 1, 10_000)?;
    let pids = number(&f, "pids", 8, 1 << 22)?;

    let health = match f.single("health")? {
        None => None,
        Some(s) => Some(parse_health(s, &ports).map_err(|m| err(f.line("health"), "health", m))?),
    };

    let publish_type = f.single("publish_type")?;
    let publish = match publish_type {
        None => {
            for field in ["publish_description", "publish_port", "publish"] {
                if sec.get(field).is_some() {
                    return Err(err(f.line(field), field, "needs publish_type"));
                }
            }
            None
        }
        Some(t) => {
            if t.is_empty()
                || t.len() > 64
                || !t
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(err(
                    f.line("publish_type"),
                    "publish_type",
                    "use 1-64 of letters, digits, '-', '_' and '.'",
                ));
            }
            let port = match number(&f, "publish_port", 1, 65_535)? {
                Some(p) => {
                    let p = p as u16;
                    if !ports.iter().any(|m| m.container == p) {
                        return Err(err(
                            f.line("publish_port"),
                            "publish_port",
                            format!("{p} is not a container port in `port`"),
                        ));
                    }
                    p
                }
                None => ports.first().map(|p| p.container).ok_or_else(|| {
                    err(
                        f.line("publish_type"),
                        "port",
                        "publishing needs at least one port",
                    )
                })?,
            };
            let by_default = match f.single("publish")? {
                None => true,
                Some(s) => parse_bool(s).ok_or_else(|| {
                    err(
                        f.line("publish"),
                        "publish",
                        format!("{s:?} is not a boolean (1/0)"),
                    )
                })?,
            };
            Some(PublishSpec {
                service_type: t.to_string(),
                description: f
                    .single("publish_description")?
                    .unwrap_or(description)
                    .to_string(),
                port,
                by_default,
            })
        }
    };

    Ok(Manifest {
        name: name.to_string(),
        description: description.to_string(),
        version: version.to_string(),
        architectures,
        source,
        command,
        setup,
        env,
        ports,
        memory,
        cpu_millis,
        cpu_weight,
        pids,
        health,
        publish,
        lines: sec
            .options
            .iter()
            .map(|o| (o.name.clone(), o.line))
            .collect(),
    })
}

fn number(f: &Fields<'_>, name: &str, min: u32, max: u32) -> Result<Option<u32>, ManifestError> {
    let Some(s) = f.single(name)? else {
        return Ok(None);
    };
    let n: u32 = s
        .trim()
        .parse()
        .map_err(|_| err(f.line(name), name, format!("{s:?} is not a whole number")))?;
    if n < min || n > max {
        return Err(err(
            f.line(name),
            name,
            format!("{n} is outside {min}..={max}"),
        ));
    }
    Ok(Some(n))
}

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "yes" | "on" | "true" | "enabled" => Some(true),
        "0" | "no" | "off" | "false" | "disabled" => Some(false),
        _ => None,
    }
}

/// `CONTAINER[:PUBLISHED][/tcp|/udp]`.
fn parse_port(s: &str) -> Result<PortMap, String> {
    let (ports, proto) = match s.split_once('/') {
        None => (s, Proto::Tcp),
        Some((p, "tcp")) => (p, Proto::Tcp),
        Some((p, "udp")) => (p, Proto::Udp),
        Some((_, other)) => return Err(format!("unknown protocol {other:?}; use tcp or udp")),
    };
    let one = |p: &str| -> Result<u16, String> {
        match p.trim().parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{p:?} is not a port (1-65535)")),
        }
    };
    let (container, published) = match ports.split_once(':') {
        None => {
            let c = one(ports)?;
            (c, c)
        }
        Some((c, p)) => (one(c)?, one(p)?),
    };
    Ok(PortMap {
        container,
        published,
        proto,
    })
}

/// `16M`, `512k`, `1G` or plain bytes; at least 4 MiB, because less cannot
/// run even busybox and would only produce confusing OOM kills.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&t[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 32M"))?;
    let bytes = n
        .checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))?;
    if bytes < 4 << 20 {
        return Err(format!("{s:?} is below the 4M minimum"));
    }
    Ok(bytes)
}

/// A decimal number of CPUs, `0.01` to `64`, kept in thousandths.
fn parse_cpu(s: &str) -> Result<u32, String> {
    let bad = || format!("{s:?} is not a number of CPUs like 0.5");
    let t = s.trim();
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if int.is_empty() && frac.is_empty() || frac.len() > 3 {
        return Err(bad());
    }
    let int: u32 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    let frac_m: u32 = if frac.is_empty() {
        0
    } else {
        let f: u32 = frac.parse().map_err(|_| bad())?;
        f * 10u32.pow(3 - frac.len() as u32)
    };
    let millis = int
        .checked_mul(1000)
        .and_then(|m| m.checked_add(frac_m))
        .ok_or_else(bad)?;
    if !(10..=64_000).contains(&millis) {
        return Err(format!("{s:?} is outside 0.01..=64"));
    }
    Ok(millis)
}

/// `tcp[:PORT]`, `http[:PORT][/PATH]` or `exec:SHELL LINE`; the port is a
/// container port listed in `port` (the first one when left out).
fn parse_health(s: &str, ports: &[PortMap]) -> Result<HealthCheck, String> {
    let pick = |p: Option<&str>| -> Result<u16, String> {
        match p {
            None | Some("") => ports
                .iter()
                .find(|p| p.proto == Proto::Tcp)
                .map(|p| p.container)
                .ok_or_else(|| String::from("names no port and the template has no tcp port")),
            Some(p) => {
                let n: u16 = p.parse().map_err(|_| format!("{p:?} is not a port"))?;
                if ports.iter().any(|m| m.container == n) {
                    Ok(n)
                } else {
                    Err(format!("port {n} is not a container port in `port`"))
                }
            }
        }
    };
    if let Some(cmd) = s.strip_prefix("exec:") {
        if cmd.trim().is_empty() {
            return Err("exec: needs a command".into());
        }
        return Ok(HealthCheck::Exec(cmd.to_string()));
    }
    if s == "tcp" {
        return Ok(HealthCheck::Tcp(pick(None)?));
    }
    if let Some(p) = s.strip_prefix("tcp:") {
        return Ok(HealthCheck::Tcp(pick(Some(p))?));
    }
    if let Some(rest) = s.strip_prefix("http") {
        let rest = rest.strip_prefix(':').unwrap_or(rest);
        let (port, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if path.chars().any(|c| c.is_whitespace()) {
            return Err("the HTTP path contains spaces".into());
        }
        return Ok(HealthCheck::Http {
            port: pick(Some(port).filter(|p| !p.is_empty()))?,
            path: path.to_string(),
        });
    }
    Err(format!(
        "{s:?}: use tcp[:PORT], http[:PORT][/PATH] or exec:COMMAND"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "config template
	option name 'website'
	option description 'A static web site'
	option version '1.0'
	list architecture 'x86_64'
	list architecture 'mipsel'
	option source 'busybox'
	option command 'httpd -f -p 80 -h /srv/www'
	list env 'LANG=C'
	list port '80:8080'
	list port '53/udp'
	option memory '16M'
	option cpu '0.5'
	option cpu_weight '50'
	option pids '64'
	option health 'http:80/index.html'
	option publish_type 'http'
	option publish '0'
";

    fn bad(text: &str) -> ManifestError {
        parse(text).expect_err("manifest should be refused")
    }

    fn with(line: &str) -> String {
        format!("{GOOD}\t{line}\n")
    }

    fn without(field: &str) -> String {
        GOOD.lines()
            .filter(|l| !l.contains(&format!(" {field} ")))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn a_full_manifest_reads_every_field() {
        let m = parse(GOOD).unwrap();
        assert_eq!(m.name, "website");
        assert_eq!(
            m.architectures,
            Architectures::Only(vec![Arch::X86_64, Arch::Mipsel])
        );
        assert_eq!(m.source, SourceSpec::Busybox);
        assert_eq!(m.env, vec![("LANG".into(), "C".into())]);
        assert_eq!(
            m.ports,
            vec![
                PortMap {
                    container: 80,
                    published: 8080,
                    proto: Proto::Tcp
                },
                PortMap {
                    container: 53,
                    published: 53,
                    proto: Proto::Udp
                },
            ]
        );
        assert_eq!(
            (m.memory, m.cpu_millis, m.cpu_weight, m.pids),
            (Some(16 << 20), Some(500), Some(50), Some(64))
        );
        assert_eq!(
            m.health,
            Some(HealthCheck::Http {
                port: 80,
                path: "/index.html".into()
            })
        );
        let p = m.publish.unwrap();
        assert_eq!(
            (p.service_type.as_str(), p.port, p.by_default),
            ("http", 80, false)
        );
        assert_eq!(p.description, "A static web site");
    }

    #[test]
    fn missing_fields_are_named() {
        for field in ["name", "description", "version", "architecture", "source"] {
            let e = bad(&without(field));
            assert_eq!(e.field, field, "{e}");
            assert!(e.to_string().contains("missing"), "{e}");
        }
    }

    #[test]
    fn unknown_keys_are_named_with_their_line() {
        let e = bad(&with("option memroy '16M'"));
        assert_eq!((e.field.as_str(), e.line), ("memroy", 19));
        assert_eq!(e.to_string(), "line 19: memroy: unknown key");
    }

    #[test]
    fn wrong_types_are_named() {
        assert_eq!(bad(&with("list memory '16M'")).field, "memory");
        assert_eq!(bad(&with("option memory 'lots'")).field, "memory");
        assert_eq!(bad(&with("option memory '1k'")).field, "memory");
        assert_eq!(bad(&with("option cpu 'half'")).field, "cpu");
        assert_eq!(bad(&with("option pids '-3'")).field, "pids");
        assert_eq!(bad(&with("list port '99999'")).field, "port");
        assert_eq!(bad(&with("list port '81:8080'")).field, "port");
        assert_eq!(bad(&with("list env 'NOVALUE'")).field, "env");
        assert_eq!(bad(&with("option publish 'maybe'")).field, "publish");
        assert_eq!(bad(&with("option health 'ping'")).field, "health");
        assert_eq!(bad(&with("option health 'tcp:22'")).field, "health");
        assert_eq!(
            bad(&with("list architecture 'sparc'")).field,
            "architecture"
        );
        assert_eq!(bad(&with("option dist 'alpine'")).field, "dist");
    }

    #[test]
    fn bad_names_and_sources_are_refused() {
        assert_eq!(bad(&GOOD.replace("'website'", "'../etc'")).field, "name");
        assert_eq!(bad(&GOOD.replace("'busybox'", "'docker'")).field, "source");
        let download = GOOD.replace("'busybox'", "'download'");
        assert_eq!(bad(&download).field, "dist");
        assert_eq!(
            bad(&format!("{download}\toption dist 'alpine'\n")).field,
            "release"
        );
        let ok = parse(&format!(
            "{download}\toption dist 'alpine'\n\toption release '3.19'\n"
        ))
        .unwrap();
        assert_eq!(
            ok.source,
            SourceSpec::Download {
                dist: "alpine".into(),
                release: "3.19".into()
            }
        );
        assert_eq!(
            bad(&format!(
                "{download}\toption dist 'al pine'\n\toption release '3'\n"
            ))
            .field,
            "dist"
        );
    }

    #[test]
    fn unknown_or_extra_sections_are_refused() {
        assert_eq!(bad("config app 'x'\n").field, "config app");
        assert_eq!(
            bad(&format!("{GOOD}config template 'two'\n")).field,
            "config template"
        );
        assert_eq!(bad("").field, "config template");
        assert_eq!(bad("config template\n\toption name 'x\n").field, "syntax");
    }

    #[test]
    fn unsupported_architecture_is_refused_naming_the_field() {
        let m = parse(GOOD).unwrap();
        assert!(m.check_arch(Some(Arch::X86_64)).is_ok());
        let e = m.check_arch(Some(Arch::Aarch64)).unwrap_err();
        assert_eq!((e.field.as_str(), e.line), ("architecture", 6));
        assert!(e.message.contains("aarch64"), "{e}");
    }

    #[test]
    fn port_in_use_is_refused_naming_the_field() {
        let m = parse(GOOD).unwrap();
        let e = m.check_ports(|p, _| p == 8080).unwrap_err();
        assert_eq!(e.field, "port");
        assert!(e.message.contains("8080/tcp"));
        assert!(m.check_ports(|_, _| false).is_ok());
    }

    #[test]
    fn sizes_and_cpus_parse_exactly() {
        assert_eq!(parse_size("32M"), Ok(32 << 20));
        assert_eq!(parse_size("8388608"), Ok(8 << 20));
        assert!(parse_size("99999999999999999999G").is_err());
        assert!(parse_size("").is_err());
        assert_eq!(parse_cpu("1"), Ok(1000));
        assert_eq!(parse_cpu(".25"), Ok(250));
        assert!(parse_cpu("0.0001").is_err());
        assert!(parse_cpu(".").is_err());
        assert!(parse_cpu("4294967296").is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed = 0x1234_5678u32;
        let alphabet =
            b"config template option list '\"\\#\n\t =:/.0123456789abcdefghport memory health";
        for _ in 0..2000 {
            let len = (seed % 200) as usize;
            let mut s = String::new();
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                s.push(alphabet[(seed as usize) % alphabet.len()] as char);
            }
            let _ = parse(&s);
            let _ = parse(&format!("{GOOD}{s}"));
        }
    }
}
