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

use std::cell::{RefCell, RefMut};
use std::net::{TcpListener, UdpSocket};
use std::rc::Rc;
use std::time::Duration;

use nuvol_gossip as g;
use smol::channel::{self, Sender};
use smol::{Async, Timer};

use crate::agent::{advertise_for, Ctx};
use crate::config::FedConfig;
use crate::executor::Executor;
use crate::exit::{temporary, Exit};
use crate::federation;
use crate::log;
use crate::shell::{self, Shell};
use crate::state::Loaded;

/// How often the pool's records are compared with the LAN catalog.
const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// Bound on one push-pull exchange in the pool (WAN paths are slow).
const STREAM_TIMEOUT: Duration = Duration::from_secs(20);
/// State file of the pool node (incarnation, own records, known peers).
const STATE_FILE: &str = "federation";

pub struct Pool {
    pub node: RefCell<g::Node>,
    ex: Rc<Executor>,
    udp: Async<UdpSocket>,
    wake: Sender<()>,
    microcloud: String,
    max_summary: usize,
    /// Summary records left out at the last sync (logged when it changes).
    left_out: RefCell<usize>,
    last_saved: RefCell<Vec<u8>>,
    refusals: shell::Refusals,
    /// The pool node's clock starts with it.
    clock: std::time::Instant,
}

/// Binds the pool's sockets, restores its state and starts its tasks.
pub fn start(ctx: &Rc<Ctx>, f: &FedConfig) -> Result<Rc<Pool>, Exit> {
    let udp = UdpSocket::bind(f.bind)
        .map_err(temporary(format!("cannot bind federation UDP {}", f.bind)))?;
    let tcp = TcpListener::bind(f.bind)
        .map_err(temporary(format!("cannot bind federation TCP {}", f.bind)))?;
    let advertise = advertise_for(f.advertise, f.bind);
    let (name, microcloud, version_tags) = {
        let st = ctx.st.borrow();
        let name = f
            .name
            .clone()
            .unwrap_or_else(|| format!("{}/{}", st.cfg.microcloud, st.cfg.name));
        // No `load` tag: the super node's load says nothing about the
        // providers it summarises, so a hit's quality is health and RTT.
        let tags = vec![
            ("microcloud".to_string(), st.cfg.microcloud.clone()),
            ("version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
        ];
        (name, st.cfg.microcloud.clone(), tags)
    };
    let keyring = match f.key {
        Some(k) => g::Keyring::new(g::Key::from_bytes(k)),
        None => {
            log::warn("federation: no pool key configured: the pool's gossip travels unencrypted");
            g::Keyring::plaintext()
        }
    };
    let mut seed = [0u8; 8];
    getrandom::getrandom(&mut seed).map_err(|e| Exit::Temporary(format!("no randomness: {e}")))?;
    let mut node = g::Node::new(
        g::Identity::new(&name, advertise),
        f.gossip.clone(),
        keyring,
        u64::from_le_bytes(seed),
    );
    {
        let st = ctx.st.borrow();
        match st.dir.load_raw(STATE_FILE) {
            Loaded::Ok(bytes) => {
                if let Err(e) = node.import_state(&bytes) {
                    // Another pool name, or damaged: start fresh (the
                    // summary is rebuilt from the LAN within a second).
                    log::warn(&format!("federation: saved pool state not used: {e}"));
                }
            }
            Loaded::Missing => {}
            Loaded::Corrupt(why) => st.dir.warn_corrupt(STATE_FILE, &why),
        }
    }
    // Tags are tiny; they cannot exceed a datagram.
    let _ = node.set_tags(version_tags);
    let (wake_tx, wake_rx) = channel::bounded(1);
    let udp = Async::new(udp).map_err(temporary("federation UDP socket"))?;
    let tcp = Async::new(tcp).map_err(temporary("federation TCP socket"))?;
    let pool = Rc::new(Pool {
        node: RefCell::new(node),
        ex: ctx.ex.clone(),
        udp,
        wake: wake_tx,
        microcloud,
        max_summary: f.max_summary,
        left_out: RefCell::new(0),
        last_saved: RefCell::new(Vec::new()),
        refusals: shell::Refusals::default(),
        clock: std::time::Instant::now(),
    });
    log::info(&format!(
        "federation: super node {name} in the pool on {} (advertised {advertise}), {} seed(s), summary of at most {} records",
        f.bind,
        f.seeds.len(),
        f.max_summary
    ));
    let ex = &ctx.ex;
    ex.spawn(shell::udp_loop(pool.clone())).detach();
    ex.spawn(shell::tcp_loop(pool.clone(), tcp)).detach();
    let timers = pool.clone();
    ex.spawn(async move {
        shell::timer_loop(timers, wake_rx).await;
    })
    .detach();
    ex.spawn(sync_loop(ctx.clone(), pool.clone())).detach();
    let now = pool.now();
    pool.node.borrow_mut().join(now, &[]);
    pool.flush();
    ex.spawn(shell::join_loop(pool.clone(), f.seeds.clone()))
        .detach();
    Ok(pool)
}

impl Shell for Pool {
    fn node(&self) -> RefMut<'_, g::Node> {
        self.node.borrow_mut()
    }
    fn now(&self) -> g::Instant {
        g::Instant::from_millis(self.clock.elapsed().as_millis() as u64)
    }
    fn flush(self: &Rc<Self>) {
        Pool::flush(self)
    }
    fn udp(&self) -> &Async<UdpSocket> {
        &self.udp
    }
    fn executor(&self) -> &Executor {
        &self.ex
    }
    fn stream_timeout(&self) -> Duration {
        STREAM_TIMEOUT
    }
    fn log_prefix(&self) -> &'static str {
        "federation: "
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
        let node = self.node.borrow();
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
        self.node.borrow_mut().leave(now);
        self.flush();
    }

    /// Sends what the pool node wants sent, logs its membership news and
    /// wakes its timer task.
    fn flush(self: &Rc<Self>) {
        // Bounded like the agent's flush: a few passes settle it.
        for _ in 0..8 {
            let mut idle = !shell::send_queued(self);
            loop {
                let ev = self.node.borrow_mut().poll_event();
                let Some(ev) = ev else { break };
                idle = false;
                match ev {
                    g::Event::MemberUp { name, addr } => {
                        log::info(&format!("federation: super node {name} joined from {addr}"))
                    }
                    g::Event::MemberFailed { name } => {
                        log::warn(&format!("federation: super node {name} failed"))
                    }
                    g::Event::MemberLeft { name } => {
                        log::info(&format!("federation: super node {name} left"))
                    }
                    g::Event::NameConflict { name, addr } => log::warn(&format!(
                        "federation: another super node at {addr} claims this pool name {name}"
                    )),
                    // Service news is read by the pool's search when a
                    // member asks; queries and user events are not used.
                    _ => {}
                }
            }
            if idle {
                break;
            }
        }
        self.refusals.check(&**self);
        let _ = self.wake.try_send(());
    }

    /// One sync step: publish and unpublish so the pool holds the summary
    /// of `lan` (the LAN node's search of this microcloud).
    fn sync(&self, now: g::Instant, lan: &[g::SearchResult]) {
        let (desired, left_out) = federation::summary(lan, &self.microcloud, self.max_summary);
        if left_out != *self.left_out.borrow() {
            if left_out > 0 {
                log::warn(&format!(
                    "federation: {left_out} service type/port(s) of this microcloud left out of the pool summary (max_summary {})",
                    self.max_summary
                ));
            }
            *self.left_out.borrow_mut() = left_out;
        }
        let mut node = self.node.borrow_mut();
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

/// Once a second: summary → pool records, and the pool's state saved when
/// it changed (so a restart keeps its incarnation and peers).
async fn sync_loop(ctx: Rc<Ctx>, pool: Rc<Pool>) {
    loop {
        Timer::after(SYNC_INTERVAL).await;
        // A node that left its microcloud (`nuvol leave`) speaks for it no
        // more: its summary empties until it joins again.
        let lan = {
            let st = ctx.st.borrow();
            if st.node.is_left() {
                Vec::new()
            } else {
                st.node.search(&g::SearchFilter {
                    service_type: None,
                    microcloud: Some(pool.microcloud.clone()),
                })
            }
        };
        pool.sync(pool.now(), &lan);
        pool.flush();
        let bytes = pool.node.borrow().export_state();
        if bytes != *pool.last_saved.borrow() {
            let st = ctx.st.borrow();
            match st.dir.save_raw(STATE_FILE, &bytes) {
                Ok(()) => *pool.last_saved.borrow_mut() = bytes,
                Err(e) => log::warn(&format!("federation: cannot save pool state: {e}")),
            }
        }
    }
}
