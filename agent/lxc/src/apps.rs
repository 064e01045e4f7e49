//! The app facade the agent calls for `nuvol app list|templates|install|
//! start|stop|uninstall|status`, and the supervisor definition of each app.
//!
//! An installed app is a container under the lxcpath whose directory also
//! holds nuvol's record (`nuvol-app`, UCI) and the manifest it was installed
//! from (`nuvol-manifest`). Keeping them inside the container directory makes
//! the container the single source of truth: `lxc-destroy` takes the record
//! with it, and a half-installed app is removed by removing one directory.
//!
//! Guarantees:
//! - install refuses a template for another architecture, a published port
//!   already in use, or a host without the needed tools, *before* anything is
//!   downloaded or created; any later failure destroys what was made (the
//!   container, its directory, its port forwards): all or nothing;
//! - uninstall leaves nothing of the app under the lxcpath;
//! - under the supervisor (see [`Apps::service_def`]) a container survives an
//!   agent restart: the supervised process only watches it, and a new watcher
//!   adopts the running container instead of restarting it.
//!
//! ```no_run
//! use nuvol_lxc::apps::{Apps, Settings};
//! let apps = Apps::new(Settings::new("/srv/lxc", "/usr/share/nuvol/templates"));
//! let view = apps.install("website", "").unwrap();
//! println!("{} is {}", view.name, view.state);
//! ```

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nuvol_control::{AppView, Health, TemplateView};
use nuvol_supervise::policy::{HealthTiming, PublishRecord};
use nuvol_supervise::service::{Probe, ServiceDef};
use nuvol_uci::{Section, Value};

use crate::driver::{valid_name, Lxc, LxcError, Source};
use crate::host::{Arch, CgroupLayout, Hierarchy, HostFacts, Need, Problem};
use crate::manifest::{self, HealthCheck, Manifest, ManifestError, PortMap, SourceSpec};
use crate::net::{self, Forward, Mode, Subnet};

/// File name of an installed app's record, inside its container directory.
pub const RECORD: &str = "nuvol-app";
/// File name of the manifest copy, inside its container directory.
pub const MANIFEST_COPY: &str = "nuvol-manifest";
/// Template files end with this.
pub const TEMPLATE_EXT: &str = "app";
/// The script that runs an app's command as the container's init.
const INIT_SCRIPT: &str = "nuvol-init";

/// Largest template file read; a real one is well under 2 KiB.
pub const MAX_TEMPLATE_BYTES: u64 = 64 * 1024;

/// Serializes installs and uninstalls within this process.
static CHANGES: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Serializes rebuilding the port-forward table (taken after [`CHANGES`],
/// never before). Reading the installed apps and replacing the table happen
/// under it together, so an older snapshot (an app start reading the apps
/// just before an install wrote its record) can never be applied after a
/// newer one and drop the new app's forwards.
static FORWARDS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Node-wide settings of the app subsystem (a UCI `app` section of the agent config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub lxcpath: PathBuf,
    /// Where the app templates (`*.app`) live.
    pub templates: PathBuf,
    /// Where LXC's own template scripts (`lxc-busybox`, `lxc-download`) live.
    pub lxc_templates: PathBuf,
    pub network: Mode,
    /// Static addresses come from here (bridge mode); `None`: the image's init asks DHCP.
    pub subnet: Option<Subnet>,
    /// Default: the subnet's first host.
    pub gateway: Option<Ipv4Addr>,
    /// Host offsets of the subnet handed to containers.
    pub pool: (u32, u32),
    /// DNAT published ports from the node's addresses (a private bridge).
    pub forward: bool,
    pub nft_table: String,
    /// The address records carry; `None`: the agent's own.
    pub publish_ip: Option<Ipv4Addr>,
    /// Written to containers' `/etc/resolv.conf` when set.
    pub dns: Vec<Ipv4Addr>,
    /// The board's architecture; `None` when the agent was built for another.
    pub arch: Option<Arch>,
    /// Halt signal → SIGKILL grace when stopping a container.
    pub stop_grace: Duration,
}

impl Settings {
    /// Defaults (host networking) around an lxcpath and a template directory.
    pub fn new(lxcpath: impl Into<PathBuf>, templates: impl Into<PathBuf>) -> Settings {
        Settings {
            lxcpath: lxcpath.into(),
            templates: templates.into(),
            lxc_templates: PathBuf::from("/usr/share/lxc/templates"),
            network: Mode::Host,
            subnet: None,
            gateway: None,
            pool: (2, 254),
            forward: false,
            nft_table: String::from("nuvol"),
            publish_ip: None,
            dns: Vec::new(),
            arch: Arch::host(),
            stop_grace: Duration::from_secs(10),
        }
    }

    /// Reads an `app` section:
    ///
    /// | option | meaning (default) |
    /// |---|---|
    /// | `lxcpath` | containers (`/srv/lxc`) |
    /// | `templates` | app templates (`/usr/share/nuvol/templates`) |
    /// | `lxc_templates` | LXC template scripts (`/usr/share/lxc/templates`) |
    /// | `network` | `host`, `bridge` or `none` (`host`) |
    /// | `bridge` | bridge for `bridge` (`br-lan`) |
    /// | `subnet`, `gateway`, `pool` | static addresses, e.g. `10.213.0.0/24`, `10.213.0.1`, `2-254` |
    /// | `forward` | `1`: DNAT published ports to containers (`0`) |
    /// | `nft_table` | nftables table of the forwards (`nuvol`) |
    /// | `publish_ip` | address in records (the agent's) |
    /// | `dns` | list of resolvers for containers |
    /// | `arch` | override the board architecture |
    /// | `stop_timeout` | seconds from halt signal to SIGKILL (`10`) |
    pub fn from_section(sec: &Section) -> Result<Settings, ManifestError> {
        let mut s = Settings::new("/srv/lxc", "/usr/share/nuvol/templates");
        let bad = |o: &nuvol_uci::Opt, m: String| ManifestError {
            line: o.line,
            field: o.name.clone(),
            message: m,
        };
        let mut bridge = String::from("br-lan");
        let mut mode = "host".to_string();
        for o in &sec.options {
            let one = || match &o.value {
                Value::Single(v) => Ok(v.as_str()),
                Value::List(_) => Err(bad(o, "must be an `option`, not a `list`".into())),
            };
            let ip = |v: &str| {
                v.parse::<Ipv4Addr>()
                    .map_err(|_| bad(o, format!("{v:?} is not an IPv4 address")))
            };
            match o.name.as_str() {
                "lxcpath" => s.lxcpath = PathBuf::from(one()?),
                "templates" => s.templates = PathBuf::from(one()?),
                "lxc_templates" => s.lxc_templates = PathBuf::from(one()?),
                "network" => mode = one()?.to_string(),
                "bridge" => bridge = one()?.to_string(),
                "subnet" => s.subnet = Some(one()?.parse().map_err(|m| bad(o, m))?),
                "gateway" => s.gateway = Some(ip(one()?)?),
                "pool" => {
                    let v = one()?;
                    let range = v
                        .split_once('-')
                        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                        .filter(|(a, b): &(u32, u32)| *a >= 1 && a <= b);
                    s.pool = range
                        .ok_or_else(|| bad(o, format!("{v:?} is not FIRST-LAST host offsets")))?;
                }
                "forward" => {
                    s.forward = match one()? {
                        "1" | "yes" | "on" | "true" => true,
                        "0" | "no" | "off" | "false" => false,
                        v => return Err(bad(o, format!("{v:?} is not a boolean (1/0)"))),
                    }
                }
                "nft_table" => {
                    let v = one()?;
                    if v.is_empty()
                        || !v
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    {
                        return Err(bad(o, format!("{v:?} is not a table name")));
                    }
                    s.nft_table = v.to_string();
                }
                "publish_ip" => s.publish_ip = Some(ip(one()?)?),
                "dns" => {
                    s.dns = o.value.iter().map(ip).collect::<Result<_, _>>()?;
                }
                "arch" => {
                    let v = one()?;
                    s.arch = Some(
                        Arch::parse(v)
                            .ok_or_else(|| bad(o, format!("unknown architecture {v:?}")))?,
                    );
                }
                "stop_timeout" => {
                    let v = one()?;
                    let n: u64 = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=600).contains(n))
                        .ok_or_else(|| bad(o, format!("{v:?} is not 1..=600 seconds")))?;
                    s.stop_grace = Duration::from_secs(n);
                }
                _ => return Err(bad(o, "unknown option".into())),
            }
        }
        s.network = match mode.as_str() {
            "host" => Mode::Host,
            "none" => Mode::Isolated,
            "bridge" => {
                if bridge.is_empty()
                    || bridge.len() > 15
                    || bridge.contains('/')
                    || bridge.contains(char::is_whitespace)
                {
                    return Err(ManifestError {
                        line: sec.get("bridge").map(|o| o.line).unwrap_or(sec.line),
                        field: "bridge".into(),
                        message: format!("{bridge:?} is not an interface name"),
                    });
                }
                Mode::Bridge(bridge)
            }
            other => {
                return Err(ManifestError {
                    line: sec.get("network").map(|o| o.line).unwrap_or(sec.line),
                    field: "network".into(),
                    message: format!("{other:?}: use host, bridge or none"),
                })
            }
        };
        if let (Some(sub), Some(gw)) = (s.subnet, s.gateway) {
            if !sub.contains(gw) {
                return Err(ManifestError {
                    line: sec.get("gateway").map(|o| o.line).unwrap_or(sec.line),
                    field: "gateway".into(),
                    message: format!("{gw} is outside {sub}"),
                });
            }
        }
        Ok(s)
    }

    fn gateway(&self) -> Option<Ipv4Addr> {
        self.gateway.or_else(|| self.subnet.and_then(|s| s.host(1)))
    }
}

/// Why an app operation failed. Every variant leaves no half-made app.
#[derive(Debug)]
pub enum AppError {
    /// The template (or the settings) is invalid; the field and line are named.
    Manifest {
        file: String,
        error: ManifestError,
    },
    NoTemplate(String),
    NotInstalled(String),
    AlreadyInstalled(String),
    BadName(String),
    /// The host lacks tools or kernel features; each problem says what to install.
    Host(Vec<Problem>),
    /// A network prerequisite is missing (no bridge, no free address, nft failed).
    Network(String),
    Lxc(LxcError),
    Io {
        what: String,
        error: std::io::Error,
    },
}

impl AppError {
    /// s6 exit code for the CLI: 100 for what the owner must fix, 111 for
    /// what may pass (a tool timing out, a busy system).
    pub fn exit_code(&self) -> i32 {
        match self {
            AppError::Lxc(_) | AppError::Io { .. } => 111,
            _ => 100,
        }
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Manifest { file, error } => write!(f, "{file}: {error}"),
            AppError::NoTemplate(t) => write!(f, "no app template named {t:?}"),
            AppError::NotInstalled(n) => write!(f, "no app named {n:?} is installed"),
            AppError::AlreadyInstalled(n) => write!(f, "an app named {n:?} is already installed"),
            AppError::BadName(n) => write!(
                f,
                "bad app name {n:?}: use 1-32 of a-z, 0-9 and '-', starting with a letter"
            ),
            AppError::Host(problems) => {
                f.write_str("this node cannot run containers yet: ")?;
                for (i, p) in problems.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{p}")?;
                }
                Ok(())
            }
            AppError::Network(m) => f.write_str(m),
            AppError::Lxc(e) => write!(f, "{e}"),
            AppError::Io { what, error } => write!(f, "{what}: {error}"),
        }
    }
}

impl std::error::Error for AppError {}

impl From<LxcError> for AppError {
    fn from(e: LxcError) -> Self {
        AppError::Lxc(e)
    }
}

/// An installed app, as its record and manifest copy describe it.
#[derive(Debug, Clone)]
pub struct Installed {
    pub name: String,
    pub template: String,
    pub manifest: Manifest,
    /// Static address on the bridge, when one was allocated.
    pub address: Option<Ipv4Addr>,
}

/// A one-shot health probe the agent (or a test) can run itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Tcp(SocketAddr),
    Http { addr: SocketAddr, path: String },
    Exec(Vec<String>),
}

impl Check {
    /// Runs once; healthy or not within about `timeout`.
    pub fn run(&self, timeout: Duration) -> bool {
        match self {
            Check::Tcp(addr) => TcpStream::connect_timeout(addr, timeout).is_ok(),
            Check::Http { addr, path } => http_get(*addr, path, timeout)
                .map(|(status, _)| (200..400).contains(&status))
                .unwrap_or(false),
            Check::Exec(argv) => crate::run::run(argv, timeout)
                .map(|o| o.success())
                .unwrap_or(false),
        }
    }
}

/// A minimal HTTP/1.0 GET: the status code and the body (at most 64 KiB).
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.take(64 * 1024).read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// The app subsystem of one node.
#[derive(Debug, Clone)]
pub struct Apps {
    pub settings: Settings,
    pub lxc: Lxc,
    pub cgroups: CgroupLayout,
}

impl Apps {
    pub fn new(settings: Settings) -> Apps {
        let mut lxc = Lxc::new(settings.lxcpath.clone());
        lxc.timeouts.stop_grace = settings.stop_grace;
        Apps {
            settings,
            lxc,
            cgroups: CgroupLayout::detect(),
        }
    }

    /// What this node lacks to run apps at all (tools, namespaces, the
    /// busybox template, nft when forwarding), each with the Debian and
    /// OpenWRT packages that fix it. Empty when apps can run. Templates may
    /// need more (cgroup controllers, the download template); `install`
    /// checks those per template.
    pub fn preflight(&self) -> Vec<Problem> {
        let mut needs = vec![Need::Core, Need::Busybox];
        if self.settings.forward {
            needs.push(Need::Forward);
        }
        HostFacts::gather(&self.settings.lxc_templates).check(&needs)
    }

    fn template_path(&self, name: &str) -> PathBuf {
        self.settings
            .templates
            .join(format!("{name}.{TEMPLATE_EXT}"))
    }

    /// Reads and validates one template by name.
    pub fn template(&self, name: &str) -> Result<(Manifest, String), AppError> {
        if !valid_name(name) {
            return Err(AppError::NoTemplate(name.to_string()));
        }
        let path = self.template_path(name);
        let file = path.display().to_string();
        // Templates come from feeds and USB sticks: a huge file (or a
        // symlink to /dev/zero) must cost a bounded read, not all memory.
        let mut bytes = Vec::new();
        let read = std::fs::File::open(&path)
            .and_then(|f| f.take(MAX_TEMPLATE_BYTES + 1).read_to_end(&mut bytes));
        match read {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(AppError::NoTemplate(name.to_string()))
            }
            Err(error) => {
                return Err(AppError::Io {
                    what: format!("reading {file}"),
                    error,
                })
            }
        }
        if bytes.len() as u64 > MAX_TEMPLATE_BYTES {
            return Err(AppError::Manifest {
                file,
                error: ManifestError {
                    line: 1,
                    field: "file".into(),
                    message: format!("larger than {MAX_TEMPLATE_BYTES} bytes"),
                },
            });
        }
        let text = String::from_utf8(bytes).map_err(|e| AppError::Manifest {
            file: file.clone(),
            error: ManifestError {
                line: 1,
                field: "file".into(),
                message: format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
            },
        })?;
        let m = manifest::parse(&text).map_err(|error| AppError::Manifest {
            file: file.clone(),
            error,
        })?;
        if m.name != name {
            return Err(AppError::Manifest {
                file,
                error: ManifestError {
                    line: m.line_of("name"),
                    field: "name".into(),
                    message: format!("{:?} differs from the file name {name:?}", m.name),
                },
            });
        }
        Ok((m, text))
    }

    /// Every template, sorted by name. A broken template is listed as
    /// unsupported with the error as its description, so one bad file
    /// never hides the others.
    pub fn templates(&self) -> Vec<TemplateView> {
        let mut names: Vec<String> = std::fs::read_dir(&self.settings.templates)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().into_string().ok()?;
                n.strip_suffix(&format!(".{TEMPLATE_EXT}"))
                    .map(String::from)
            })
            .collect();
        names.sort();
        let installed: Vec<String> = self.installed().into_iter().map(|i| i.template).collect();
        names
            .into_iter()
            .map(|n| match self.template(&n) {
                Ok((m, _)) => TemplateView {
                    supported: m.supports(self.settings.arch),
                    installed: installed.contains(&n),
                    architectures: match &m.architectures {
                        manifest::Architectures::All => vec!["all".into()],
                        manifest::Architectures::Only(l) => {
                            l.iter().map(|a| a.to_string()).collect()
                        }
                    },
                    name: n,
                    description: m.description,
                    version: m.version,
                },
                Err(e) => TemplateView {
                    installed: installed.contains(&n),
                    name: n,
                    description: format!("invalid template: {e}"),
                    version: String::new(),
                    architectures: Vec::new(),
                    supported: false,
                },
            })
            .collect()
    }

    /// Installs the template `template` as app `name` (the template's name when empty).
    pub fn install(&self, template: &str, name: &str) -> Result<AppView, AppError> {
        let (m, text) = self.template(template)?;
        let name = if name.is_empty() { template } else { name };
        self.install_manifest(&m, &text, name)
    }

    /// Installs a manifest already read (from a template file or elsewhere).
    /// Checks architecture, name, host and ports before creating anything;
    /// after that, any failure destroys what was made.
    pub fn install_manifest(
        &self,
        m: &Manifest,
        text: &str,
        name: &str,
    ) -> Result<AppView, AppError> {
        let as_manifest = |error| AppError::Manifest {
            file: format!("template {}", m.name),
            error,
        };
        m.check_arch(self.settings.arch).map_err(as_manifest)?;
        // One install or uninstall at a time: the existence check, the port
        // and address choice and a rollback must not interleave with another
        // call's (a rollback would destroy the other call's container).
        let _changing = CHANGES.lock().unwrap_or_else(|p| p.into_inner());
        if !valid_name(name) {
            return Err(AppError::BadName(name.to_string()));
        }
        if self.lxc.dir(name).exists() {
            return Err(AppError::AlreadyInstalled(name.to_string()));
        }
        let problems = HostFacts::gather(&self.settings.lxc_templates).check(&self.needs(m));
        if !problems.is_empty() {
            return Err(AppError::Host(problems));
        }
        if let Mode::Bridge(b) = &self.settings.network {
            if !net::interface_exists(b) {
                return Err(AppError::Network(format!(
                    "bridge {b} does not exist (OpenWRT: br-lan; set option bridge in the app section)"
                )));
            }
        }
        let others = self.installed();
        let ports = self.effective_ports(m);
        let probe_host = matches!(self.settings.network, Mode::Host) || self.settings.forward;
        let taken = |port: u16, proto| {
            let by_app = others.iter().any(|o| {
                self.effective_ports(&o.manifest)
                    .iter()
                    .any(|p| p.published == port && p.proto == proto)
            });
            by_app || (probe_host && !port_free(port, proto))
        };
        m.check_published(&ports, taken).map_err(as_manifest)?;

        let address = match (&self.settings.network, self.settings.subnet) {
            (Mode::Bridge(_), Some(subnet)) => {
                let used: Vec<Ipv4Addr> = others.iter().filter_map(|o| o.address).collect();
                let gw = self
                    .settings
                    .gateway()
                    .ok_or_else(|| AppError::Network("the subnet has no gateway".into()))?;
                Some(
                    net::allocate(
                        subnet,
                        self.settings.pool.0,
                        self.settings.pool.1,
                        gw,
                        &used,
                    )
                    .ok_or_else(|| {
                        AppError::Network(format!("no free address left in {subnet}"))
                    })?,
                )
            }
            _ => None,
        };

        // From here on something exists: every failure rolls back.
        let result = self.create(m, text, name, address);
        if let Err(e) = result {
            // A container that appeared under that name meanwhile (made by
            // hand, or by another agent on this lxcpath) is not ours to remove.
            if !matches!(e, AppError::Lxc(LxcError::Exists(_))) {
                let _ = self.lxc.destroy(name);
            }
            let _ = self.apply_forwards();
            return Err(e);
        }
        self.status(name)
    }

    fn needs(&self, m: &Manifest) -> Vec<Need> {
        let mut needs = vec![Need::Core];
        match m.source {
            SourceSpec::Busybox => needs.push(Need::Busybox),
            SourceSpec::Download { .. } => needs.push(Need::Download),
            SourceSpec::Rootfs(_) => {}
        }
        if m.memory.is_some() {
            needs.push(Need::Memory);
        }
        if m.cpu_millis.is_some() || m.cpu_weight.is_some() {
            needs.push(Need::Cpu);
        }
        if m.pids.is_some() {
            needs.push(Need::Pids);
        }
        if self.settings.forward {
            needs.push(Need::Forward);
        }
        needs
    }

    /// With host networking the app listens on the node itself, so a port
    /// cannot be remapped: the published port is the container port.
    fn effective_ports(&self, m: &Manifest) -> Vec<PortMap> {
        match self.settings.network {
            Mode::Host => m
                .ports
                .iter()
                .map(|p| PortMap {
                    published: p.container,
                    ..*p
                })
                .collect(),
            _ => m.ports.clone(),
        }
    }

    fn create(
        &self,
        m: &Manifest,
        text: &str,
        name: &str,
        address: Option<Ipv4Addr>,
    ) -> Result<(), AppError> {
        let io = |what: String| move |error| AppError::Io { what, error };
        std::fs::create_dir_all(&self.settings.lxcpath)
            .map_err(io(format!("creating {}", self.settings.lxcpath.display())))?;
        let net_conf = net::lxc_config(
            &self.settings.network,
            address.and_then(|a| Some((a, self.settings.subnet?, self.settings.gateway()?))),
        );
        let frag = self.settings.lxcpath.join(format!(".nuvol-{name}.conf"));
        std::fs::write(&frag, &net_conf).map_err(io(format!("writing {}", frag.display())))?;
        let source = match &m.source {
            SourceSpec::Busybox => Source::Busybox,
            SourceSpec::Download { dist, release } => Source::Download {
                dist: dist.clone(),
                release: release.clone(),
                arch: self
                    .settings
                    .arch
                    .ok_or_else(|| AppError::Network("unknown board architecture".into()))?,
            },
            SourceSpec::Rootfs(p) => Source::Rootfs(p.clone()),
        };
        let created = self.lxc.create(name, &source, &frag);
        let _ = std::fs::remove_file(&frag);
        created?;

        let extra = container_config(m, &self.cgroups).map_err(AppError::Host)?;
        self.lxc.append_config(name, &extra)?;
        let rootfs = self.lxc.rootfs(name)?;
        if let Some(cmd) = &m.command {
            // On a bridge without static addresses the app's own init asks
            // DHCP (the LAN's server, dnsmasq on OpenWRT); a distro init does
            // that itself, a bare command needs nuvol's.
            let dhcp = matches!(self.settings.network, Mode::Bridge(_)) && address.is_none();
            write_in_rootfs(&rootfs, INIT_SCRIPT, &init_script(cmd, dhcp), 0o644).map_err(io(
                format!("writing {INIT_SCRIPT} into {}", rootfs.display()),
            ))?;
            if dhcp {
                write_in_rootfs(&rootfs, DHCP_SCRIPT, DHCP_HOOK, 0o755).map_err(io(format!(
                    "writing {DHCP_SCRIPT} into {}",
                    rootfs.display()
                )))?;
            }
        }
        if !self.settings.dns.is_empty() {
            let text: String = self
                .settings
                .dns
                .iter()
                .map(|d| format!("nameserver {d}\n"))
                .collect();
            write_in_rootfs(&rootfs, "etc/resolv.conf", &text, 0o644).map_err(io(format!(
                "writing etc/resolv.conf into {}",
                rootfs.display()
            )))?;
        }
        let dir = self.lxc.dir(name);
        nuvol_uci::write_atomic(&dir.join(MANIFEST_COPY), text)
            .map_err(io(format!("writing {}", dir.display())))?;
        let mut record = format!(
            "config app {}\n\toption template {}\n\toption version {}\n",
            nuvol_uci::quote(name),
            nuvol_uci::quote(&m.name),
            nuvol_uci::quote(&m.version)
        );
        if let Some(a) = address {
            record.push_str(&format!("\toption address '{a}'\n"));
        }
        nuvol_uci::write_atomic(&dir.join(RECORD), &record)
            .map_err(io(format!("writing {}", dir.display())))?;

        // Forwards (and the masquerade a private bridge needs) before setup:
        // setup steps usually download packages from inside the container.
        self.apply_forwards().map_err(AppError::Network)?;
        if !m.setup.is_empty() {
            self.run_setup(name, &m.setup)?;
        }
        Ok(())
    }

    /// Runs the setup lines once, in the container started with a placeholder
    /// init (the app's own command may not exist before setup installs it).
    fn run_setup(&self, name: &str, setup: &[String]) -> Result<(), AppError> {
        self.lxc
            .start_with(name, &[("lxc.init.cmd", "/bin/sleep 86400")])?;
        let mut result = Ok(());
        for line in setup {
            let out = self
                .lxc
                .attach_run(name, &["/bin/sh", "-c", line], Duration::from_secs(600));
            match out {
                Ok(o) if o.success() => {}
                Ok(o) => {
                    result = Err(AppError::Lxc(LxcError::Failed {
                        op: "setup of",
                        name: name.to_string(),
                        reason: format!("`{line}`: {}", o.reason()),
                    }));
                    break;
                }
                Err(e) => {
                    result = Err(e.into());
                    break;
                }
            }
        }
        let stopped = self.lxc.kill(name);
        result.and(stopped.map_err(AppError::from))
    }

    /// Every installed app (containers under the lxcpath with a nuvol record).
    pub fn installed(&self) -> Vec<Installed> {
        self.lxc
            .list()
            .into_iter()
            .filter_map(|n| self.load(&n).ok())
            .collect()
    }

    /// One installed app's record and manifest.
    pub fn load(&self, name: &str) -> Result<Installed, AppError> {
        if !valid_name(name) {
            return Err(AppError::BadName(name.to_string()));
        }
        let dir = self.lxc.dir(name);
        let (Ok(rec), Ok(text)) = (
            std::fs::read_to_string(dir.join(RECORD)),
            std::fs::read_to_string(dir.join(MANIFEST_COPY)),
        ) else {
            return Err(AppError::NotInstalled(name.to_string()));
        };
        let file = dir.join(RECORD).display().to_string();
        let bad = |error| AppError::Manifest {
            file: file.clone(),
            error,
        };
        let cfg = nuvol_uci::parse(&rec).map_err(|e| {
            bad(ManifestError {
                line: e.line,
                field: "syntax".into(),
                message: e.message,
            })
        })?;
        let sec = cfg.sections_of("app").next().ok_or_else(|| {
            bad(ManifestError {
                line: 1,
                field: "config app".into(),
                message: "missing".into(),
            })
        })?;
        let address = match sec.get_str("address") {
            None => None,
            Some(a) => Some(a.parse().map_err(|_| {
                bad(ManifestError {
                    line: sec.get("address").map(|o| o.line).unwrap_or(1),
                    field: "address".into(),
                    message: format!("{a:?} is not an IPv4 address"),
                })
            })?),
        };
        let manifest = manifest::parse(&text).map_err(|error| AppError::Manifest {
            file: dir.join(MANIFEST_COPY).display().to_string(),
            error,
        })?;
        Ok(Installed {
            name: name.to_string(),
            template: sec
                .get_str("template")
                .unwrap_or(&manifest.name)
                .to_string(),
            manifest,
            address,
        })
    }

    /// Views of every installed app.
    pub fn list(&self) -> Vec<AppView> {
        self.installed().iter().map(|i| self.view(i)).collect()
    }

    /// View of one app: LXC state, addresses, ports, memory use. Health and
    /// `published` are the supervisor's to fill in; here they are unknown/false.
    pub fn status(&self, name: &str) -> Result<AppView, AppError> {
        Ok(self.view(&self.load(name)?))
    }

    fn view(&self, app: &Installed) -> AppView {
        let info = self.lxc.info(&app.name).ok();
        let mut ips: Vec<String> = info.as_ref().map(|i| i.ips.clone()).unwrap_or_default();
        if ips.is_empty() {
            ips.extend(app.address.map(|a| a.to_string()));
        }
        AppView {
            name: app.name.clone(),
            template: app.template.clone(),
            state: info
                .as_ref()
                .map(|i| i.state.as_str())
                .unwrap_or("UNKNOWN")
                .to_string(),
            ips,
            ports: self
                .effective_ports(&app.manifest)
                .iter()
                .map(|p| (p.container, p.published))
                .collect(),
            memory_bytes: info.and_then(|i| i.memory_bytes),
            health: Health::Unknown,
            published: false,
        }
    }

    /// Starts the container directly (without the supervisor) and waits until it runs.
    pub fn start(&self, name: &str) -> Result<AppView, AppError> {
        self.load(name)?;
        self.apply_forwards().map_err(AppError::Network)?;
        self.lxc.start(name)?;
        self.status(name)
    }

    /// Stops the container: halt signal, SIGKILL after the grace time.
    pub fn stop(&self, name: &str) -> Result<AppView, AppError> {
        self.load(name)?;
        self.lxc.stop(name)?;
        self.status(name)
    }

    /// Removes the container, its config, its records and its port forwards.
    /// The caller withdraws its catalog records and supervisor instance first.
    pub fn uninstall(&self, name: &str) -> Result<(), AppError> {
        let _changing = CHANGES.lock().unwrap_or_else(|p| p.into_inner());
        if !valid_name(name) {
            return Err(AppError::BadName(name.to_string()));
        }
        if !self.lxc.dir(name).join(RECORD).exists() {
            return Err(AppError::NotInstalled(name.to_string()));
        }
        self.lxc.destroy(name)?;
        self.apply_forwards().map_err(AppError::Network)
    }

    /// Replaces the nftables table with the forwards of every installed app
    /// (removing it when there are none). Does nothing unless `forward` is set.
    pub fn apply_forwards(&self) -> Result<(), String> {
        if !self.settings.forward {
            return Ok(());
        }
        let _applying = FORWARDS.lock().unwrap_or_else(|p| p.into_inner());
        let mut forwards = Vec::new();
        for app in self.installed() {
            let Some(to) = app.address else { continue };
            for p in &app.manifest.ports {
                forwards.push(Forward {
                    proto: p.proto,
                    published: p.published,
                    to,
                    port: p.container,
                });
            }
        }
        let script = net::ruleset(
            &self.settings.nft_table,
            &forwards,
            self.settings.subnet.filter(|_| !forwards.is_empty()),
        );
        net::apply(&script, &self.settings.lxcpath)
    }

    /// The container's own IPv4 address: the static one, or what `lxc-info` reports.
    pub fn container_ip(&self, app: &Installed) -> Option<Ipv4Addr> {
        app.address.or_else(|| {
            let info = self.lxc.info(&app.name).ok()?;
            info.ips.iter().find_map(|i| i.parse::<Ipv4Addr>().ok())
        })
    }

    /// Where the app's published port `published` answers, as seen from this node.
    fn published_addr(&self, app: &Installed, container_port: u16) -> Option<SocketAddr> {
        let published = self
            .effective_ports(&app.manifest)
            .iter()
            .find(|p| p.container == container_port)?
            .published;
        match &self.settings.network {
            Mode::Host => Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), published)),
            Mode::Bridge(_) if self.settings.forward => {
                let ip = self
                    .settings
                    .publish_ip
                    .or_else(|| self.settings.gateway())?;
                Some(SocketAddr::new(IpAddr::V4(ip), published))
            }
            Mode::Bridge(_) => Some(SocketAddr::new(
                IpAddr::V4(self.container_ip(app)?),
                container_port,
            )),
            Mode::Isolated => None,
        }
    }

    /// The address a catalog record of the app should carry: the container's
    /// own on a shared bridge; `publish_ip` (or `None`, meaning the agent's own
    /// address) when the node forwards or shares its network.
    pub fn publish_ip(&self, name: &str) -> Result<Option<IpAddr>, AppError> {
        let app = self.load(name)?;
        Ok(match &self.settings.network {
            Mode::Bridge(_) if !self.settings.forward => self.container_ip(&app).map(IpAddr::V4),
            _ => self.settings.publish_ip.map(IpAddr::V4),
        })
    }

    /// The app's health check as a probe this node can run now: TCP/HTTP to
    /// the published address, or the command run through `lxc-attach`.
    pub fn check(&self, name: &str) -> Result<Option<Check>, AppError> {
        let app = self.load(name)?;
        Ok(match &app.manifest.health {
            None => None,
            Some(HealthCheck::Exec(cmd)) => Some(Check::Exec(self.lxc.attach_argv(name, cmd))),
            Some(HealthCheck::Tcp(port)) => self.published_addr(&app, *port).map(Check::Tcp),
            Some(HealthCheck::Http { port, path }) => {
                self.published_addr(&app, *port).map(|addr| Check::Http {
                    addr,
                    path: path.clone(),
                })
            }
        })
    }

    /// The app as a supervisor service `app-NAME`. Its command is the
    /// watcher of [`Lxc::watch_argv`], not the container: a crash of the
    /// container is a crash of the instance, a supervised stop stops the
    /// container, and a new agent's supervisor adopts (never restarts) a
    /// running container. `term_timeout` is the stop grace plus a margin.
    /// The health probe is [`Apps::check`]; the publish record carries the
    /// published port and `txt` `app`, `template` and, when the record's
    /// address is not the agent's own, `addr` (see [`Apps::publish_ip`]).
    pub fn service_def(&self, name: &str) -> Result<ServiceDef, AppError> {
        let app = self.load(name)?;
        let command = self.lxc.watch_argv(name);
        let mut def = ServiceDef::new(&format!("app-{name}"), command);
        def.policy.term_timeout = self.settings.stop_grace + Duration::from_secs(10);
        if let Some(check) = self.check(name)? {
            def.probe = Some(match check {
                Check::Tcp(a) => Probe::Tcp {
                    host: a.ip().to_string(),
                    port: a.port(),
                },
                Check::Http { addr, path } => Probe::Http {
                    host: addr.ip().to_string(),
                    port: addr.port(),
                    path,
                    status: 200,
                },
                Check::Exec(command) => Probe::Exec { command },
            });
            def.policy.health = Some(HealthTiming::default());
        }
        if let Some(p) = &app.manifest.publish {
            let port = self
                .effective_ports(&app.manifest)
                .iter()
                .find(|m| m.container == p.port)
                .map(|m| m.published)
                .unwrap_or(p.port);
            let mut txt = vec![
                ("app".to_string(), name.to_string()),
                ("template".into(), app.template.clone()),
            ];
            if let Some(ip) = self.publish_ip(name)? {
                txt.push(("addr".into(), ip.to_string()));
            }
            def.policy.publish = Some(PublishRecord {
                service_type: p.service_type.clone(),
                port,
                description: p.description.clone(),
                txt,
            });
            def.policy.publish_by_default = p.by_default;
        }
        Ok(def)
    }
}

/// Writes `rel` (a path inside the container, without a leading `/`) below
/// `rootfs` as a new regular file of `mode`, never following a symlink out
/// of the container. The rootfs is not trusted: a tarball or image may ship
/// `nuvol-init -> /etc/passwd` or `etc -> /etc`, and a plain write as root
/// would then overwrite a file of the host. So the parent directory must
/// resolve to a place inside the rootfs, and the file itself is removed
/// (a symlink, not its target) and created anew with `O_EXCL`, which never
/// follows a symlink.
pub fn write_in_rootfs(rootfs: &Path, rel: &str, contents: &str, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let target = rootfs.join(rel);
    let outside = || {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{rel} leads outside the container's rootfs"),
        )
    };
    let (Some(parent), Some(file)) = (target.parent(), target.file_name()) else {
        return Err(outside());
    };
    let root = rootfs.canonicalize()?;
    let parent = parent.canonicalize()?;
    if !parent.starts_with(&root) {
        return Err(outside());
    }
    let path = parent.join(file);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&path)?;
    f.write_all(contents.as_bytes())?;
    // The mode given to open is filtered by the umask; say it exactly.
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    f.sync_all()
}

/// Whether nothing on this node holds `port` (a bind to the wildcard address succeeds).
fn port_free(port: u16, proto: manifest::Proto) -> bool {
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
    match proto {
        manifest::Proto::Tcp => TcpListener::bind(addr).is_ok(),
        manifest::Proto::Udp => UdpSocket::bind(addr).is_ok(),
    }
}

/// LXC config lines for the app: its init, environment and limits, in the
/// cgroup version each controller is mounted with on this host.
pub fn container_config(m: &Manifest, layout: &CgroupLayout) -> Result<String, Vec<Problem>> {
    let mut s = format!(
        "\n# nuvol app from template {} {}\nlxc.start.auto = 0\n",
        m.name, m.version
    );
    if m.command.is_some() {
        // nuvol-init turns SIGTERM into a clean exit of the app.
        s.push_str(&format!(
            "lxc.init.cmd = /bin/sh /{INIT_SCRIPT}\nlxc.signal.halt = SIGTERM\n"
        ));
    }
    for (k, v) in &m.env {
        s.push_str(&format!("lxc.environment = {k}={v}\n"));
    }
    let mut missing = Vec::new();
    let mut set = |ctrl: &str, v1: &[(&str, String)], v2: &[(&str, String)]| match layout.get(ctrl)
    {
        Some(Hierarchy::V1(_)) => v1
            .iter()
            .for_each(|(k, v)| s.push_str(&format!("lxc.cgroup.{k} = {v}\n"))),
        Some(Hierarchy::V2(_)) => v2
            .iter()
            .for_each(|(k, v)| s.push_str(&format!("lxc.cgroup2.{k} = {v}\n"))),
        None => missing.push(ctrl.to_string()),
    };
    if let Some(mem) = m.memory {
        set(
            "memory",
            &[("memory.limit_in_bytes", mem.to_string())],
            &[("memory.max", mem.to_string())],
        );
    }
    if let Some(millis) = m.cpu_millis {
        let period = 100_000u64;
        let quota = u64::from(millis) * period / 1000;
        set(
            "cpu",
            &[
                ("cpu.cfs_period_us", period.to_string()),
                ("cpu.cfs_quota_us", quota.to_string()),
            ],
            &[("cpu.max", format!("{quota} {period}"))],
        );
    }
    if let Some(w) = m.cpu_weight {
        // v1 shares: 1024 is the default as 100 is v2's default weight.
        let shares = (u64::from(w) * 1024 / 100).clamp(2, 262_144);
        set(
            "cpu",
            &[("cpu.shares", shares.to_string())],
            &[("cpu.weight", w.to_string())],
        );
    }
    if let Some(p) = m.pids {
        set(
            "pids",
            &[("pids.max", p.to_string())],
            &[("pids.max", p.to_string())],
        );
    }
    if missing.is_empty() {
        Ok(s)
    } else {
        let facts = HostFacts {
            cgroups: CgroupLayout::default(),
            ..HostFacts::default()
        };
        let needs: Vec<Need> = missing
            .iter()
            .filter_map(|c| match c.as_str() {
                "memory" => Some(Need::Memory),
                "cpu" => Some(Need::Cpu),
                "pids" => Some(Need::Pids),
                _ => None,
            })
            .collect();
        Err(facts.check(&needs))
    }
}

/// The container's init for an app with a command: the command runs as a
/// child, so PID 1 is a shell with a TERM trap (a bare daemon as PID 1 would
/// ignore SIGTERM, and every stop would wait for SIGKILL). With `dhcp`, a
/// background `udhcpc` first gets (and keeps renewing) eth0's address.
pub fn init_script(command: &str, dhcp: bool) -> String {
    let dhcp = if dhcp {
        format!(
            "udhcpc -b -i eth0 -t 10 -T 1 -s /{DHCP_SCRIPT} -x hostname:\"$(hostname)\" >/dev/null 2>&1\n"
        )
    } else {
        String::new()
    };
    format!(
        "#!/bin/sh\n\
         # Written by nuvol: runs the app as a child so that SIGTERM stops it cleanly.\n\
         trap 'kill -TERM \"$child\" 2>/dev/null; wait \"$child\"; exit 0' TERM INT\n\
         {dhcp}\
         /bin/sh -c {} &\n\
         child=$!\n\
         wait \"$child\"\n",
        nuvol_uci::quote(command)
    )
}

/// The udhcpc hook nuvol writes for [`init_script`] with DHCP.
const DHCP_SCRIPT: &str = "nuvol-dhcp";

/// Applies a lease with the busybox `ip` applet (busybox images ship no
/// default udhcpc script).
const DHCP_HOOK: &str = "#!/bin/sh\n\
# Written by nuvol: udhcpc hook for the app's eth0.\n\
case \"$1\" in\n\
deconfig) ip addr flush dev \"$interface\"; ip link set \"$interface\" up ;;\n\
bound|renew)\n\
\tip addr flush dev \"$interface\"\n\
\tip addr add \"$ip/${mask:-24}\" dev \"$interface\"\n\
\tfor r in $router; do ip route add default via \"$r\" dev \"$interface\" && break; done\n\
\t[ -n \"$dns\" ] && { for d in $dns; do echo \"nameserver $d\"; done > /etc/resolv.conf; }\n\
\t;;\n\
esac\n\
exit 0\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(extra: &str) -> Manifest {
        manifest::parse(&format!(
            "config template\n\toption name 'web'\n\toption description 'd'\n\toption version '1'\n\tlist architecture 'all'\n\toption source 'busybox'\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn limits_use_v1_keys_on_a_v1_host() {
        let layout = CgroupLayout::from_mounts(
            "cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n",
            |_| None,
        );
        let m = manifest("\toption memory '32M'\n\toption cpu '0.25'\n\toption cpu_weight '50'\n");
        let c = container_config(&m, &layout).unwrap();
        assert!(
            c.contains("lxc.cgroup.memory.limit_in_bytes = 33554432\n"),
            "{c}"
        );
        assert!(c.contains("lxc.cgroup.cpu.cfs_quota_us = 25000\n"), "{c}");
        assert!(c.contains("lxc.cgroup.cpu.shares = 512\n"), "{c}");
        assert!(!c.contains("cgroup2"));
    }

    #[test]
    fn limits_use_v2_keys_on_a_unified_host() {
        let layout = CgroupLayout::from_mounts("cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n", |_| {
            Some("cpu memory pids".into())
        });
        let m = manifest("\toption memory '32M'\n\toption cpu '1.5'\n\toption pids '100'\n");
        let c = container_config(&m, &layout).unwrap();
        assert!(c.contains("lxc.cgroup2.memory.max = 33554432\n"), "{c}");
        assert!(c.contains("lxc.cgroup2.cpu.max = 150000 100000\n"), "{c}");
        assert!(c.contains("lxc.cgroup2.pids.max = 100\n"), "{c}");
    }

    #[test]
    fn a_limit_without_its_controller_says_what_to_install() {
        let m = manifest("\toption memory '32M'\n");
        let problems = container_config(&m, &CgroupLayout::default()).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].openwrt.contains("CONFIG_KERNEL_MEMCG"));
    }

    #[test]
    fn files_written_into_a_rootfs_never_follow_its_symlinks_out() {
        // Regression: the init script, DHCP hook and resolv.conf were written
        // with a plain write as root, so a rootfs shipping
        // `nuvol-init -> HOST FILE` or `etc -> HOST DIR` overwrote the host's file.
        let base = std::env::temp_dir().join(format!("nuvol-lxc-rootfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let (rootfs, host) = (base.join("rootfs"), base.join("host"));
        std::fs::create_dir_all(&rootfs).unwrap();
        std::fs::create_dir_all(host.join("etc")).unwrap();
        std::fs::write(host.join("passwd"), "root:x:0:0\n").unwrap();
        std::fs::write(host.join("etc/resolv.conf"), "nameserver 9.9.9.9\n").unwrap();
        std::os::unix::fs::symlink(host.join("passwd"), rootfs.join(INIT_SCRIPT)).unwrap();
        std::os::unix::fs::symlink(host.join("etc"), rootfs.join("etc")).unwrap();

        write_in_rootfs(&rootfs, INIT_SCRIPT, "#!/bin/sh\n", 0o644).unwrap();
        let e = write_in_rootfs(&rootfs, "etc/resolv.conf", "nameserver 10.0.0.1\n", 0o644)
            .unwrap_err();
        assert!(e.to_string().contains("outside"), "{e}");

        assert_eq!(
            std::fs::read_to_string(host.join("passwd")).unwrap(),
            "root:x:0:0\n"
        );
        assert_eq!(
            std::fs::read_to_string(host.join("etc/resolv.conf")).unwrap(),
            "nameserver 9.9.9.9\n"
        );
        let init = rootfs.join(INIT_SCRIPT);
        assert!(!init.symlink_metadata().unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(&init).unwrap(), "#!/bin/sh\n");
        write_in_rootfs(&rootfs, DHCP_SCRIPT, DHCP_HOOK, 0o755).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(rootfs.join(DHCP_SCRIPT))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn oversized_templates_are_refused_after_a_bounded_read() {
        // Regression: templates were read whole, so a huge file or a
        // symlink to /dev/zero in the template directory exhausted memory.
        let dir = std::env::temp_dir().join(format!("nuvol-lxc-bigtpl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let padding = "# padding\n".repeat(7000);
        std::fs::write(dir.join("big.app"), padding).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.join("zero.app")).unwrap();
        let apps = Apps::new(Settings::new(dir.join("lxc"), &dir));
        for name in ["big", "zero"] {
            match apps.template(name) {
                Err(AppError::Manifest { error, .. }) => {
                    assert_eq!(error.field, "file");
                    assert!(error.message.contains("larger than"), "{error}");
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        let views = apps.templates();
        assert_eq!(views.len(), 2);
        assert!(views
            .iter()
            .all(|v| !v.supported && v.description.contains("larger than")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn init_script_quotes_the_command() {
        let s = init_script("echo 'it''s' && exec httpd -f", false);
        assert!(!s.contains("udhcpc"));
        assert!(init_script("x", true).contains("udhcpc -b -i eth0"));
        assert!(
            s.contains("/bin/sh -c 'echo '\\''it'\\'''\\''s'\\'' && exec httpd -f' &\n"),
            "{s}"
        );
    }

    #[test]
    fn settings_read_every_option_and_name_bad_ones() {
        let cfg = nuvol_uci::parse(
            "config app\n\toption lxcpath '/tmp/x'\n\toption network 'bridge'\n\toption bridge 'nvbr0'\n\toption subnet '10.9.0.0/24'\n\toption forward '1'\n\tlist dns '10.9.0.1'\n\toption stop_timeout '3'\n",
        )
        .unwrap();
        let s = Settings::from_section(&cfg.sections[0]).unwrap();
        assert_eq!(s.network, Mode::Bridge("nvbr0".into()));
        assert_eq!(s.gateway(), Some(Ipv4Addr::new(10, 9, 0, 1)));
        assert!(s.forward);
        assert_eq!(s.stop_grace, Duration::from_secs(3));
        for (bad, field) in [
            ("option network 'wifi'", "network"),
            ("option subnet '10.9.0.0'", "subnet"),
            ("option lxcpaht '/x'", "lxcpaht"),
            ("list lxcpath '/x'", "lxcpath"),
            ("option forward 'maybe'", "forward"),
        ] {
            let cfg = nuvol_uci::parse(&format!("config app\n\t{bad}\n")).unwrap();
            let e = Settings::from_section(&cfg.sections[0]).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
    }
}
