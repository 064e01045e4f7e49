//! Requests and the views the agent answers with.
//!
//! Their CBOR form is written out in `wire.rs`: each variant's index and each
//! field's position there are the wire contract between a CLI and an agent of
//! different versions on the same router. Variants and fields are declared
//! here in that same order, and the enums without fields spell their
//! discriminants out because a discriminant is that variant's index. Never
//! renumber or remove; add a variant or field at the end, in `wire.rs` too,
//! with its golden bytes in `tests/vectors` and the same addition to the
//! derive reference in `tests/oracle`.

/// What the CLI or the page asks the agent.
#[derive(Debug, Clone)]
pub enum Request {
    /// This node: name, microcloud, board, resources, key status.
    Info,
    /// Every known member with state and estimated RTT.
    Members,
    /// This node's own published records.
    Services,
    /// Publish (or replace) a record of this node.
    Publish(PublishSpec),
    /// Withdraw this node's record of that type and port.
    Unpublish {
        service_type: String,
        port: u16,
    },
    /// Records across the microcloud (or every microcloud), best quality first.
    Search {
        service_type: Option<String>,
        scope: Scope,
    },
    /// Estimated round-trip time to one node.
    Rtt {
        node: String,
    },
    /// Fire a user event.
    Event {
        name: String,
        payload: Vec<u8>,
    },
    /// Ask matching nodes and collect their answers until the timeout.
    Query(QuerySpec),
    /// Join through these addresses (`host:port`).
    Join {
        addrs: Vec<String>,
    },
    /// Leave the microcloud gracefully (the agent keeps running until told to exit).
    Leave,
    /// Keyring management.
    Keys(KeyCommand),
    /// Stream of [`Response::Change`] frames until the client hangs up.
    Monitor,
    /// Supervised local services.
    ServiceList,
    ServiceStatus {
        name: String,
    },
    ServiceControl {
        name: String,
        action: Action,
    },
    ServiceLogs {
        name: String,
        lines: u32,
    },
    /// App templates and installed apps (LXC).
    AppTemplates,
    AppList,
    AppInstall {
        template: String,
        /// Name of the container; the template's name when empty.
        name: String,
    },
    AppControl {
        name: String,
        action: Action,
    },
    AppStatus {
        name: String,
    },
}

/// What to do to a supervised service or an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start = 0,
    Stop = 1,
    Restart = 2,
    Publish = 3,
    Unpublish = 4,
    /// Apps only: remove the container, its config and its records.
    Uninstall = 5,
    Reload = 6,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Restart => "restart",
            Action::Publish => "publish",
            Action::Unpublish => "unpublish",
            Action::Uninstall => "uninstall",
            Action::Reload => "reload",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "start" => Action::Start,
            "stop" => Action::Stop,
            "restart" => Action::Restart,
            "publish" => Action::Publish,
            "unpublish" => Action::Unpublish,
            "uninstall" => Action::Uninstall,
            "reload" => Action::Reload,
            _ => return None,
        })
    }
}

/// Where a search looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Only this node's microcloud.
    Microcloud = 0,
    /// Every microcloud this node knows of.
    Global = 1,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Microcloud => "microcloud",
            Scope::Global => "global",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "microcloud" => Some(Scope::Microcloud),
            "global" => Some(Scope::Global),
            _ => None,
        }
    }
}

/// A record to publish, as the owner types it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishSpec {
    pub service_type: String,
    pub port: u16,
    pub description: String,
    /// `key=value` pairs, in order.
    pub txt: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default)]
pub struct QuerySpec {
    pub name: String,
    pub payload: Vec<u8>,
    /// Only these nodes answer (all when empty).
    pub nodes: Vec<String>,
    /// Only nodes whose tags match every `key=value` answer.
    pub tags: Vec<(String, String)>,
    pub timeout_ms: u32,
}

#[derive(Debug, Clone)]
pub enum KeyCommand {
    /// Make a new random key and print it (base64); installs nothing.
    Generate,
    /// Add a key (base64) to the keyring, for receiving.
    Install(String),
    /// Make an installed key the one used for sending.
    Use(String),
    /// Remove a key that is not the primary.
    Remove(String),
    List,
}

/// What the agent answers.
#[derive(Debug, Clone)]
pub enum Response {
    Ok,
    /// The request was refused or failed; the message is for the owner.
    Error {
        message: String,
    },
    Info(NodeInfo),
    Members(Vec<MemberView>),
    /// Own records (`Services`) or search results (`Search`, best first).
    Services(Vec<ServiceView>),
    Rtt {
        node: String,
        /// `None` when the node has no coordinate yet.
        rtt_us: Option<u64>,
    },
    QueryResponses(Vec<QueryAnswer>),
    Keys(Vec<KeyView>),
    /// A generated key, base64.
    Key(String),
    /// One change, streamed to a monitor.
    Change(ChangeView),
    Instances(Vec<InstanceView>),
    Logs(Vec<String>),
    Templates(Vec<TemplateView>),
    Apps(Vec<AppView>),
}

#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    pub name: String,
    pub microcloud: String,
    pub board: String,
    pub arch: String,
    pub version: String,
    /// Gossip address `ip:port`.
    pub addr: String,
    pub uptime_s: u64,
    pub mem_total_kb: u64,
    pub mem_free_kb: u64,
    /// 1-minute load average × 100.
    pub load_x100: u32,
    pub members_alive: u32,
    pub members_total: u32,
    /// How many keys are installed, and whether packets are sealed.
    pub keys_installed: u32,
    pub encrypted: bool,
    /// Lifeguard local health score, 0 (healthy) ..= 8.
    pub health_score: u32,
    pub incarnation: u64,
    pub agent_rss_kb: u64,
    /// Packets that failed to open under any installed key.
    pub packets_rejected: u64,
    // Fields 18.. were added after the first version: `Option`s, left out
    // on the wire when `None` at the end, so an older peer's bytes decode
    // with them `None` ("not reported") and its decoder skips them.
    /// New member names dropped because the member table was full.
    pub members_refused: Option<u64>,
    /// Service entries dropped because one node's catalog was full.
    pub services_refused: Option<u64>,
    /// The member table's size (the agent's `max_members`).
    pub max_members: Option<u32>,
    /// Packets that opened but were not valid gossip messages.
    pub packets_malformed: Option<u64>,
}

/// Membership state as the page and CLI name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    Alive = 0,
    Suspect = 1,
    /// Declared dead by failure detection.
    Failed = 2,
    /// Left gracefully.
    Left = 3,
}

impl MemberState {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Failed => "failed",
            MemberState::Left => "left",
        }
    }
}

#[derive(Debug, Clone)]
pub struct MemberView {
    pub name: String,
    pub addr: String,
    pub state: MemberState,
    pub microcloud: String,
    pub incarnation: u64,
    pub rtt_us: Option<u64>,
    /// Seconds since the state last changed.
    pub since_change_s: u64,
    /// Node tags (board, arch, role, load, …).
    pub tags: Vec<(String, String)>,
}

/// Health of a published record, as gossiped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Healthy = 0,
    Unhealthy = 1,
    /// No health check configured.
    Unknown = 2,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
            Health::Unknown => "unknown",
        }
    }
}

/// One service record: Cloudy's avahi-ps fields plus what search needs.
#[derive(Debug, Clone)]
pub struct ServiceView {
    pub service_type: String,
    pub description: String,
    /// The node that publishes it.
    pub host: String,
    pub ip: String,
    pub port: u16,
    pub microcloud: String,
    pub txt: Vec<(String, String)>,
    pub health: Health,
    /// Estimated RTT from this node to the host.
    pub rtt_us: Option<u64>,
    /// Host's 1-minute load × 100.
    pub load_x100: u32,
    /// 0..=100, higher is better: from RTT, health and load. Search sorts on it.
    pub quality: u8,
}

#[derive(Debug, Clone)]
pub struct QueryAnswer {
    pub node: String,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct KeyView {
    /// A short fingerprint, never the key itself.
    pub fingerprint: String,
    pub primary: bool,
}

#[derive(Debug, Clone)]
pub enum ChangeView {
    Member(MemberView),
    ServiceUp(ServiceView),
    ServiceDown(ServiceView),
    Event {
        from: String,
        name: String,
        payload: Vec<u8>,
        lamport: u64,
    },
}

/// A supervised instance, as `nuvol service list` shows it.
#[derive(Debug, Clone)]
pub struct InstanceView {
    pub name: String,
    /// `stopped`, `starting`, `running`, `stopping`, `backoff`, `failed`.
    pub state: String,
    pub pid: Option<u32>,
    pub health: Health,
    pub restarts: u32,
    /// Whether its publish block is currently a catalog record.
    pub published: bool,
    pub uptime_s: Option<u64>,
    pub last_log: Vec<String>,
    /// `service` or `app`.
    pub kind: String,
}

#[derive(Debug, Clone)]
pub struct TemplateView {
    pub name: String,
    pub description: String,
    pub version: String,
    pub architectures: Vec<String>,
    /// Whether this board's architecture is supported.
    pub supported: bool,
    pub installed: bool,
}

#[derive(Debug, Clone)]
pub struct AppView {
    pub name: String,
    pub template: String,
    /// LXC state: `STOPPED`, `RUNNING`, …
    pub state: String,
    pub ips: Vec<String>,
    pub ports: Vec<(u16, u16)>,
    pub memory_bytes: Option<u64>,
    pub health: Health,
    pub published: bool,
}
