//! The protocol's types exactly as the first version of the crate declared
//! them, with minicbor's derive: the reference the hand-written codec in
//! `src/wire.rs` is checked against (`tests/derive_oracle.rs`). Only the
//! derives matter here, so the types' methods are left out. When a variant or
//! field is appended to `src/proto.rs`, append it here with its `#[n(i)]`.

use minicbor::{Decode, Encode};

/// What the CLI or the page asks the agent.
#[derive(Debug, Clone, Encode, Decode)]
pub enum Request {
    /// This node: name, microcloud, board, resources, key status.
    #[n(0)]
    Info,
    /// Every known member with state and estimated RTT.
    #[n(1)]
    Members,
    /// This node's own published records.
    #[n(2)]
    Services,
    /// Publish (or replace) a record of this node.
    #[n(3)]
    Publish(#[n(0)] PublishSpec),
    /// Withdraw this node's record of that type and port.
    #[n(4)]
    Unpublish {
        #[n(0)]
        service_type: String,
        #[n(1)]
        port: u16,
    },
    /// Records across the microcloud (or every microcloud), best quality first.
    #[n(5)]
    Search {
        #[n(0)]
        service_type: Option<String>,
        #[n(1)]
        scope: Scope,
    },
    /// Estimated round-trip time to one node.
    #[n(6)]
    Rtt {
        #[n(0)]
        node: String,
    },
    /// Fire a user event.
    #[n(7)]
    Event {
        #[n(0)]
        name: String,
        #[n(1)]
        payload: Vec<u8>,
    },
    /// Ask matching nodes and collect their answers until the timeout.
    #[n(8)]
    Query(#[n(0)] QuerySpec),
    /// Join through these addresses (`host:port`).
    #[n(9)]
    Join {
        #[n(0)]
        addrs: Vec<String>,
    },
    /// Leave the microcloud gracefully (the agent keeps running until told to exit).
    #[n(10)]
    Leave,
    /// Keyring management.
    #[n(11)]
    Keys(#[n(0)] KeyCommand),
    /// Stream of [`Response::Change`] frames until the client hangs up.
    #[n(12)]
    Monitor,
    /// Supervised local services.
    #[n(13)]
    ServiceList,
    #[n(14)]
    ServiceStatus {
        #[n(0)]
        name: String,
    },
    #[n(15)]
    ServiceControl {
        #[n(0)]
        name: String,
        #[n(1)]
        action: Action,
    },
    #[n(16)]
    ServiceLogs {
        #[n(0)]
        name: String,
        #[n(1)]
        lines: u32,
    },
    /// App templates and installed apps (LXC).
    #[n(17)]
    AppTemplates,
    #[n(18)]
    AppList,
    #[n(19)]
    AppInstall {
        #[n(0)]
        template: String,
        /// Name of the container; the template's name when empty.
        #[n(1)]
        name: String,
    },
    #[n(20)]
    AppControl {
        #[n(0)]
        name: String,
        #[n(1)]
        action: Action,
    },
    #[n(21)]
    AppStatus {
        #[n(0)]
        name: String,
    },
}

/// What to do to a supervised service or an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub enum Action {
    #[n(0)]
    Start,
    #[n(1)]
    Stop,
    #[n(2)]
    Restart,
    #[n(3)]
    Publish,
    #[n(4)]
    Unpublish,
    /// Apps only: remove the container, its config and its records.
    #[n(5)]
    Uninstall,
    #[n(6)]
    Reload,
}

/// Where a search looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub enum Scope {
    /// Only this node's microcloud.
    #[n(0)]
    Microcloud,
    /// Every microcloud this node knows of.
    #[n(1)]
    Global,
}

/// A record to publish, as the owner types it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Encode, Decode)]
pub struct PublishSpec {
    #[n(0)]
    pub service_type: String,
    #[n(1)]
    pub port: u16,
    #[n(2)]
    pub description: String,
    /// `key=value` pairs, in order.
    #[n(3)]
    pub txt: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, Encode, Decode)]
pub struct QuerySpec {
    #[n(0)]
    pub name: String,
    #[n(1)]
    pub payload: Vec<u8>,
    /// Only these nodes answer (all when empty).
    #[n(2)]
    pub nodes: Vec<String>,
    /// Only nodes whose tags match every `key=value` answer.
    #[n(3)]
    pub tags: Vec<(String, String)>,
    #[n(4)]
    pub timeout_ms: u32,
}

#[derive(Debug, Clone, Encode, Decode)]
pub enum KeyCommand {
    /// Make a new random key and print it (base64); installs nothing.
    #[n(0)]
    Generate,
    /// Add a key (base64) to the keyring, for receiving.
    #[n(1)]
    Install(#[n(0)] String),
    /// Make an installed key the one used for sending.
    #[n(2)]
    Use(#[n(0)] String),
    /// Remove a key that is not the primary.
    #[n(3)]
    Remove(#[n(0)] String),
    #[n(4)]
    List,
}

/// What the agent answers.
#[derive(Debug, Clone, Encode, Decode)]
pub enum Response {
    #[n(0)]
    Ok,
    /// The request was refused or failed; the message is for the owner.
    #[n(1)]
    Error {
        #[n(0)]
        message: String,
    },
    #[n(2)]
    Info(#[n(0)] NodeInfo),
    #[n(3)]
    Members(#[n(0)] Vec<MemberView>),
    /// Own records (`Services`) or search results (`Search`, best first).
    #[n(4)]
    Services(#[n(0)] Vec<ServiceView>),
    #[n(5)]
    Rtt {
        #[n(0)]
        node: String,
        /// `None` when the node has no coordinate yet.
        #[n(1)]
        rtt_us: Option<u64>,
    },
    #[n(6)]
    QueryResponses(#[n(0)] Vec<QueryAnswer>),
    #[n(7)]
    Keys(#[n(0)] Vec<KeyView>),
    /// A generated key, base64.
    #[n(8)]
    Key(#[n(0)] String),
    /// One change, streamed to a monitor.
    #[n(9)]
    Change(#[n(0)] ChangeView),
    #[n(10)]
    Instances(#[n(0)] Vec<InstanceView>),
    #[n(11)]
    Logs(#[n(0)] Vec<String>),
    #[n(12)]
    Templates(#[n(0)] Vec<TemplateView>),
    #[n(13)]
    Apps(#[n(0)] Vec<AppView>),
}

#[derive(Debug, Clone, Default, Encode, Decode)]
pub struct NodeInfo {
    #[n(0)]
    pub name: String,
    #[n(1)]
    pub microcloud: String,
    #[n(2)]
    pub board: String,
    #[n(3)]
    pub arch: String,
    #[n(4)]
    pub version: String,
    /// Gossip address `ip:port`.
    #[n(5)]
    pub addr: String,
    #[n(6)]
    pub uptime_s: u64,
    #[n(7)]
    pub mem_total_kb: u64,
    #[n(8)]
    pub mem_free_kb: u64,
    /// 1-minute load average × 100.
    #[n(9)]
    pub load_x100: u32,
    #[n(10)]
    pub members_alive: u32,
    #[n(11)]
    pub members_total: u32,
    /// How many keys are installed, and whether packets are sealed.
    #[n(12)]
    pub keys_installed: u32,
    #[n(13)]
    pub encrypted: bool,
    /// Lifeguard local health score, 0 (healthy) ..= 8.
    #[n(14)]
    pub health_score: u32,
    #[n(15)]
    pub incarnation: u64,
    #[n(16)]
    pub agent_rss_kb: u64,
    /// Packets that failed to open under any installed key.
    #[n(17)]
    pub packets_rejected: u64,
    /// Appended later: optional, so an older peer's 18 fields still decode.
    #[n(18)]
    pub members_refused: Option<u64>,
    #[n(19)]
    pub services_refused: Option<u64>,
    #[n(20)]
    pub max_members: Option<u32>,
    #[n(21)]
    pub packets_malformed: Option<u64>,
}

/// Membership state as the page and CLI name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub enum MemberState {
    #[n(0)]
    Alive,
    #[n(1)]
    Suspect,
    /// Declared dead by failure detection.
    #[n(2)]
    Failed,
    /// Left gracefully.
    #[n(3)]
    Left,
}

#[derive(Debug, Clone, Encode, Decode)]
pub struct MemberView {
    #[n(0)]
    pub name: String,
    #[n(1)]
    pub addr: String,
    #[n(2)]
    pub state: MemberState,
    #[n(3)]
    pub microcloud: String,
    #[n(4)]
    pub incarnation: u64,
    #[n(5)]
    pub rtt_us: Option<u64>,
    /// Seconds since the state last changed.
    #[n(6)]
    pub since_change_s: u64,
    /// Node tags (board, arch, role, load, …).
    #[n(7)]
    pub tags: Vec<(String, String)>,
}

/// Health of a published record, as gossiped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub enum Health {
    #[n(0)]
    Healthy,
    #[n(1)]
    Unhealthy,
    /// No health check configured.
    #[n(2)]
    Unknown,
}

/// One service record: Cloudy's avahi-ps fields plus what search needs.
#[derive(Debug, Clone, Encode, Decode)]
pub struct ServiceView {
    #[n(0)]
    pub service_type: String,
    #[n(1)]
    pub description: String,
    /// The node that publishes it.
    #[n(2)]
    pub host: String,
    #[n(3)]
    pub ip: String,
    #[n(4)]
    pub port: u16,
    #[n(5)]
    pub microcloud: String,
    #[n(6)]
    pub txt: Vec<(String, String)>,
    #[n(7)]
    pub health: Health,
    /// Estimated RTT from this node to the host.
    #[n(8)]
    pub rtt_us: Option<u64>,
    /// Host's 1-minute load × 100.
    #[n(9)]
    pub load_x100: u32,
    /// 0..=100, higher is better: from RTT, health and load. Search sorts on it.
    #[n(10)]
    pub quality: u8,
}

#[derive(Debug, Clone, Encode, Decode)]
pub struct QueryAnswer {
    #[n(0)]
    pub node: String,
    #[n(1)]
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, Encode, Decode)]
pub struct KeyView {
    /// A short fingerprint, never the key itself.
    #[n(0)]
    pub fingerprint: String,
    #[n(1)]
    pub primary: bool,
}

#[derive(Debug, Clone, Encode, Decode)]
pub enum ChangeView {
    #[n(0)]
    Member(#[n(0)] MemberView),
    #[n(1)]
    ServiceUp(#[n(0)] ServiceView),
    #[n(2)]
    ServiceDown(#[n(0)] ServiceView),
    #[n(3)]
    Event {
        #[n(0)]
        from: String,
        #[n(1)]
        name: String,
        #[n(2)]
        payload: Vec<u8>,
        #[n(3)]
        lamport: u64,
    },
}

/// A supervised instance, as `nuvol service list` shows it.
#[derive(Debug, Clone, Encode, Decode)]
pub struct InstanceView {
    #[n(0)]
    pub name: String,
    /// `stopped`, `starting`, `running`, `stopping`, `backoff`, `failed`.
    #[n(1)]
    pub state: String,
    #[n(2)]
    pub pid: Option<u32>,
    #[n(3)]
    pub health: Health,
    #[n(4)]
    pub restarts: u32,
    /// Whether its publish block is currently a catalog record.
    #[n(5)]
    pub published: bool,
    #[n(6)]
    pub uptime_s: Option<u64>,
    #[n(7)]
    pub last_log: Vec<String>,
    /// `service` or `app`.
    #[n(8)]
    pub kind: String,
}

#[derive(Debug, Clone, Encode, Decode)]
pub struct TemplateView {
    #[n(0)]
    pub name: String,
    #[n(1)]
    pub description: String,
    #[n(2)]
    pub version: String,
    #[n(3)]
    pub architectures: Vec<String>,
    /// Whether this board's architecture is supported.
    #[n(4)]
    pub supported: bool,
    #[n(5)]
    pub installed: bool,
}

#[derive(Debug, Clone, Encode, Decode)]
pub struct AppView {
    #[n(0)]
    pub name: String,
    #[n(1)]
    pub template: String,
    /// LXC state: `STOPPED`, `RUNNING`, …
    #[n(2)]
    pub state: String,
    #[n(3)]
    pub ips: Vec<String>,
    #[n(4)]
    pub ports: Vec<(u16, u16)>,
    #[n(5)]
    pub memory_bytes: Option<u64>,
    #[n(6)]
    pub health: Health,
    #[n(7)]
    pub published: bool,
}
