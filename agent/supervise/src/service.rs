//! What a supervised service is: its command, environment, account, limits,
//! health probe and publish block, independent of where it was written down.
//!
//! [`crate::config`] reads these from UCI text; the process shell
//! (`os` feature) runs them; [`ServiceDef::policy`] is the part the pure
//! [`crate::policy`] needs.

use alloc::string::String;
use alloc::vec::Vec;

use crate::policy::Policy;

/// One `config service 'name'` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceDef {
    pub name: String,
    /// Program and arguments; the program is looked up in `PATH` unless it has a `/`.
    pub command: Vec<String>,
    /// Added to (or replacing in) the agent's environment.
    pub env: Vec<(String, String)>,
    pub dir: Option<String>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub limits: Vec<Limit>,
    /// Forward stdout lines to the agent log (the ring buffer keeps them anyway).
    pub stdout: bool,
    pub stderr: bool,
    /// Started when the agent starts.
    pub enabled: bool,
    pub policy: Policy,
    pub probe: Option<Probe>,
    /// cgroup memory limit in bytes.
    pub memory: Option<u64>,
    /// cgroup CPU quota in percent of one CPU.
    pub cpu_percent: Option<u32>,
    /// Where it was defined, for messages: file and line of `config service`.
    pub origin: Origin,
}

/// File and line a definition came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    /// Line of `config service`.
    pub line: u32,
    /// Line of each option, so that checks made later (an account that does
    /// not exist) can still point at the right line.
    pub option_lines: Vec<(String, u32)>,
}

impl Origin {
    /// Line of option `name`, or of the section when it was not written.
    pub fn line_of(&self, name: &str) -> u32 {
        self.option_lines
            .iter()
            .find(|(n, _)| n == name)
            .map_or(self.line, |(_, l)| *l)
    }
}

impl ServiceDef {
    /// A service with procd's defaults around `command`.
    pub fn new(name: &str, command: Vec<String>) -> ServiceDef {
        ServiceDef {
            name: name.into(),
            command,
            env: Vec::new(),
            dir: None,
            user: None,
            group: None,
            limits: Vec::new(),
            stdout: true,
            stderr: true,
            enabled: true,
            policy: Policy::default(),
            probe: None,
            memory: None,
            cpu_percent: None,
            origin: Origin::default(),
        }
    }
}

/// How health is probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Healthy when a TCP connect to `host:port` succeeds.
    Tcp { host: String, port: u16 },
    /// Healthy when `GET path` answers with `status`.
    Http {
        host: String,
        port: u16,
        path: String,
        status: u16,
    },
    /// Healthy when the command exits 0.
    Exec { command: Vec<String> },
}

/// One resource limit, procd's names. `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub resource: Resource,
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// The resources procd's `limits` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    As,
    Core,
    Cpu,
    Data,
    Fsize,
    Memlock,
    Msgqueue,
    Nice,
    Nofile,
    Nproc,
    Rss,
    Rtprio,
    Rttime,
    Sigpending,
    Stack,
    Locks,
}

impl Resource {
    pub const ALL: [Resource; 16] = [
        Resource::As,
        Resource::Core,
        Resource::Cpu,
        Resource::Data,
        Resource::Fsize,
        Resource::Memlock,
        Resource::Msgqueue,
        Resource::Nice,
        Resource::Nofile,
        Resource::Nproc,
        Resource::Rss,
        Resource::Rtprio,
        Resource::Rttime,
        Resource::Sigpending,
        Resource::Stack,
        Resource::Locks,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Resource::As => "as",
            Resource::Core => "core",
            Resource::Cpu => "cpu",
            Resource::Data => "data",
            Resource::Fsize => "fsize",
            Resource::Memlock => "memlock",
            Resource::Msgqueue => "msgqueue",
            Resource::Nice => "nice",
            Resource::Nofile => "nofile",
            Resource::Nproc => "nproc",
            Resource::Rss => "rss",
            Resource::Rtprio => "rtprio",
            Resource::Rttime => "rttime",
            Resource::Sigpending => "sigpending",
            Resource::Stack => "stack",
            Resource::Locks => "locks",
        }
    }

    pub fn from_name(name: &str) -> Option<Resource> {
        Resource::ALL.into_iter().find(|r| r.as_str() == name)
    }
}
