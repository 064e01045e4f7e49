//! The federation pool of a super node (`heavy` builds): a second gossip
//! node with the WAN profile, on its own port and key, whose members are the
//! super nodes of every microcloud.
//!
//! Like the agent's LAN node it is a thin IO shell around one
//! [`nuvol_gossip::Node`]: its own UDP socket, push-pull TCP listener and
//! timer task, all on the agent's executor. Once a second a sync step
//! brings this node's pool records in line with the summary of the LAN
//! catalog ([`federation::summary`], [`federation::plan`]): a service
//! published in the microcloud appears in the pool, one unpublished (or
//! whose provider failed) is withdrawn, and the pool's tombstones carry the
//! removal. A super node that dies is declared failed by the pool, and the
//! pool's search leaves its records out. Nothing imported from the pool is
//! ever published in the LAN: plain members ask through
//! [`federation::QUERY`], answered by [`Pool::answer`].

use std::cell::Cell;
use std::net::{TcpListener, UdpSocket};
use std::rc::Rc;
use std::time::Duration;

use nuvol_gossip as g;
use smol::Async;

use crate::config::FedConfig;
use crate::executor::Executor;
use crate::exit::{temporary, Exit};
use crate::federation;
use crate::host::{GossipHost, HostSpec};
use crate::log;
use crate::reactions;
use crate::shell::{self, Shell};
use crate::state::StateDir;

/// How often the pool's records are compared with the LAN catalog.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// Bound on one push-pull exchange in the pool (WAN paths are slow).
const STREAM_TIMEOUT: Duration = Duration::from_secs(20);
/// State file of the pool node (incarnation, own records, known peers).
const STATE_FILE: &str = "federation";

pub struct Pool {
    host: GossipHost,
    pub microcloud: String,
    max_summary: usize,
    /// Summary records left out at the last sync (logged when it changes).
    left_out: Cell<usize>,
}

/// Binds the pool's sockets, restores its state from `dir` and starts its
/// gossip tasks for the super node `lan_name` of `microcloud`. The caller
/// runs [`Pool::sync`] every [`SYNC_INTERVAL`].
pub fn start(
    ex: &Rc<Executor>,
    dir: &StateDir,
    f: &FedConfig,
    lan_name: &str,
    microcloud: &str,
) -> Result<Rc<Pool>, Exit> {
    let udp = UdpSocket::bind(f.bind)
        .map_err(temporary(format!("cannot bind federation UDP {}", f.bind)))?;
    let tcp = TcpListener::bind(f.bind)
        .map_err(temporary(format!("cannot bind federation TCP {}", f.bind)))?;
    let advertise = crate::net::advertise_for(f.advertise, f.bind);
    let name = f
        .name
        .clone()
        .unwrap_or_else(|| format!("{microcloud}/{lan_name}"));
    let keyring = match f.key {
        Some(k) => g::Keyring::new(g::Key::from_bytes(k)),
        None => {
            log::warn("federation: no pool key configured: the pool's gossip travels unencrypted");
            g::Keyring::plaintext()
        }
    };
    // No `load` tag: the super node's load says nothing about the
    // providers it summarises, so a hit's quality is health and RTT.
    let tags = vec![
        ("microcloud".to_string(), microcloud.to_string()),
        ("version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
    ];
    let spec = HostSpec {
        identity: g::Identity::new(&name, advertise),
        config: f.gossip.clone(),
        keyring,
        tags,
        state_file: STATE_FILE,
        stream_timeout: STREAM_TIMEOUT,
        log_prefix: "federation: ",
        // Super nodes are servers and bigger boards: no RAM copy.
        volatile: None,
    };
    let (host, wake_rx) = GossipHost::open(spec, udp, ex.clone(), dir)?;
    let tcp = Async::new(tcp).map_err(temporary("federation TCP socket"))?;
    let pool = Rc::new(Pool {
        host,
        microcloud: microcloud.to_string(),
        max_summary: f.max_summary,
        left_out: Cell::new(0),
    });
    log::info(&format!(
        "federation: super node {name} in the pool on {} (advertised {advertise}), {} seed(s), summary of at most {} records",
        f.bind,
        f.seeds.len(),
        f.max_summary
    ));
    ex.spawn(shell::udp_loop(pool.clone())).detach();
    ex.spawn(shell::tcp_loop(pool.clone(), tcp)).detach();
    let timers = pool.clone();
    ex.spawn(async move {
        shell::timer_loop(timers, wake_rx).await;
    })
    .detach();
    let now = pool.host.now();
    pool.host.node().join(now, &[]);
    pool.flush();
    ex.spawn(shell::join_loop(pool.clone(), f.seeds.clone()))
        .detach();
    Ok(pool)
}

impl Shell for Pool {
    fn host(&self) -> &GossipHost {
        &self.host
    }
    fn flush(self: &Rc<Self>) {
        Pool::flush(self)
    }
}

impl Pool {
    /// Answers a [`federation::QUERY`] payload from the pool: foreign
    /// services, best first, in at most `budget` bytes.
    pub fn answer(&self, payload: &[u8], budget: usize) -> Vec<u8> {
        // Bytes that are not a type name get an empty answer.
        let Some(service_type) = federation::parse_search(payload) else {
            return federation::answer(&[], None, budget);
        };
        let node = self.host.node_ref();
        let results = node.search(&g::SearchFilter {
            service_type: service_type.clone(),
            microcloud: None,
        });
        let tag_of = |n: &str| {
            node.member(n)
                .and_then(|m| m.tag("microcloud"))
                .map(String::from)
        };
        let foreign = federation::foreign(&results, &self.microcloud, tag_of);
        federation::answer(&foreign, service_type.as_deref(), budget)
    }

    /// Leaves the pool gracefully (the agent is shutting down).
    pub fn leave(self: &Rc<Self>, now: g::Instant) {
        self.host.node().leave(now);
        self.flush();
    }

    /// Sends what the pool node wants sent, logs its membership news and
    /// wakes its timer task.
    fn flush(self: &Rc<Self>) {
        shell::flush(self, |ev| reactions::write_log(reactions::pool_log(&ev)));
    }

    /// One sync step: publish and unpublish so the pool holds the summary
    /// of `lan` (the LAN node's search of this microcloud), then save the
    /// pool's state to `dir` if it changed (so a restart keeps its
    /// incarnation and peers).
    pub fn sync(self: &Rc<Self>, lan: &[g::SearchResult], dir: &StateDir) {
        self.plan_sync(self.host.now(), lan);
        self.flush();
        self.host.save_if_changed(dir);
    }

    fn plan_sync(&self, now: g::Instant, lan: &[g::SearchResult]) {
        let (desired, left_out) = federation::summary(lan, &self.microcloud, self.max_summary);
        if left_out != self.left_out.get() {
            if left_out > 0 {
                log::warn(&format!(
                    "federation: {left_out} service type/port(s) of this microcloud left out of the pool summary (max_summary {})",
                    self.max_summary
                ));
            }
            self.left_out.set(left_out);
        }
        let mut node = self.host.node();
        let current = node.own_records();
        let (publish, unpublish) = federation::plan(&current, &desired);
        for (service_type, port) in unpublish {
            node.unpublish(now, &service_type, port);
        }
        for r in publish {
            if let Err(e) = node.publish(r.clone()) {
                log::debug_msg(&format!(
                    "federation: {}:{} not summarised: {e}",
                    r.service_type, r.port
                ));
            }
        }
    }
}
