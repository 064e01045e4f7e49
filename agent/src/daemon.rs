//! The running agent: its LAN gossip host, the state every task shares
//! ([`State`], borrowed between awaits and never across one) and what the
//! tasks do with them — flush the node and carry out its events'
//! reactions ([`crate::reactions`]), save state, ask queries, leave, reload.
//! Started and wired to its tasks by `crate::agent`.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use nuvol_control::*;
use nuvol_gossip as g;
use smol::channel::{self, Receiver, Sender};
use smol::Timer;

use crate::config::{AgentConfig, Flags};
use crate::host::GossipHost;
use crate::metadata::Metadata;
use crate::queries::PendingQueries;
use crate::reactions::{self, HandlerCall, QueryStep};
use crate::shell::{self, Shell};
use crate::state::{self, StateDir};
use crate::{handlers, log, services};

/// Changes buffered per monitor; a monitor that falls this far behind is dropped.
const MONITOR_BACKLOG: usize = 1024;
/// Bytes of a datagram a query answer's envelope (sealing, header, query id,
/// this node's name) may take; the federation answer gets the rest.
#[cfg(feature = "heavy")]
const ANSWER_OVERHEAD: usize = 160;

/// Everything the tasks share besides the node; borrowed, never held
/// across an await.
pub struct State {
    pub cfg: AgentConfig,
    pub flags: Flags,
    pub dir: StateDir,
    pub meta: Metadata,
    /// The metadata the gossiped tags carry, and when they were set
    /// (time since the agent started).
    pub announced: Metadata,
    pub announced_at: Duration,
    pub advertise: SocketAddr,
    monitors: Vec<Sender<ChangeView>>,
    queries: PendingQueries,
    exit: Option<i32>,
    pub leaving: bool,
    pub services: services::Services,
    /// The federation pool, on a super node.
    #[cfg(feature = "heavy")]
    pub fed: Option<Rc<crate::fedpool::Pool>>,
}

impl State {
    pub fn new(
        cfg: AgentConfig,
        flags: Flags,
        dir: StateDir,
        meta: Metadata,
        advertise: SocketAddr,
        services: services::Services,
    ) -> State {
        State {
            cfg,
            flags,
            dir,
            announced: meta.clone(),
            announced_at: Duration::ZERO,
            meta,
            advertise,
            monitors: Vec::new(),
            queries: PendingQueries::default(),
            exit: None,
            leaving: false,
            services,
            #[cfg(feature = "heavy")]
            fed: None,
        }
    }
}

pub struct Ctx {
    /// The LAN node and its socket, clock and executor.
    pub host: GossipHost,
    pub st: RefCell<State>,
    handler_slots: Rc<smol::lock::Semaphore>,
}

impl Shell for Ctx {
    fn host(&self) -> &GossipHost {
        &self.host
    }
    fn flush(self: &Rc<Self>) {
        Ctx::flush(self)
    }
    fn exit_code(&self) -> Option<i32> {
        self.st.borrow().exit
    }
}

impl Ctx {
    pub fn new(host: GossipHost, st: State) -> Ctx {
        Ctx {
            host,
            st: RefCell::new(st),
            handler_slots: Rc::new(smol::lock::Semaphore::new(handlers::MAX_RUNNING)),
        }
    }

    /// The core's clock: milliseconds since the agent started.
    pub fn now(&self) -> g::Instant {
        self.host.now()
    }

    /// Sends what the core wants sent, acts on its events, wakes the timer loop.
    pub fn flush(self: &Rc<Self>) {
        shell::flush(self, |ev| self.on_event(ev));
    }

    /// Writes the core's state if it changed: to the RAM copy, to the state
    /// directory at most hourly ([`crate::host::FLASH_INTERVAL`]).
    pub fn save_state(&self) {
        self.host.save_if_changed(&self.st.borrow().dir);
    }

    /// Writes the core's state to the state directory now, if it changed.
    pub fn persist_state(&self) {
        self.host.persist(&self.st.borrow().dir);
    }

    /// Writes the keyring now (after a keys command).
    pub fn save_keyring(&self) {
        let ring = state::Keyring {
            keys: self
                .host
                .node_ref()
                .keyring()
                .keys()
                .iter()
                .map(|k| k.as_bytes().to_vec())
                .collect(),
        };
        if let Err(e) = self.st.borrow().dir.save("keyring", &ring) {
            log::warn(&format!("cannot save keyring: {e}"));
        }
    }

    /// Registers a monitor; changes arrive on the returned channel.
    pub fn add_monitor(&self) -> Receiver<ChangeView> {
        let (tx, rx) = channel::bounded(MONITOR_BACKLOG);
        self.st.borrow_mut().monitors.push(tx);
        rx
    }

    /// Starts a query for a control client; the receiver closes when it is done.
    pub fn start_query(self: &Rc<Self>, spec: QuerySpec) -> Result<(u64, Receiver<()>), String> {
        let params = g::QueryParams {
            name: spec.name,
            payload: spec.payload,
            nodes: spec.nodes,
            tags: spec.tags,
            timeout: Duration::from_millis(u64::from(spec.timeout_ms.max(100))),
        };
        self.begin_query(params, 0)
    }

    /// Asks the live super nodes of this microcloud (this node too, if it
    /// is one) for foreign services; `None` when there are none. Done as
    /// soon as each has answered.
    pub fn start_federated_search(
        self: &Rc<Self>,
        service_type: Option<String>,
    ) -> Option<(u64, Receiver<()>)> {
        use crate::federation::{QUERY, QUERY_TIMEOUT_MS, SUPER_TAG};
        let supers = self
            .host
            .node_ref()
            .members()
            .filter(|m| matches!(m.state, g::MemberState::Alive | g::MemberState::Suspect))
            .filter(|m| m.tag(SUPER_TAG.0) == Some(SUPER_TAG.1))
            .count();
        if supers == 0 {
            return None;
        }
        let params = g::QueryParams {
            name: QUERY.into(),
            payload: service_type.map(String::into_bytes).unwrap_or_default(),
            nodes: Vec::new(),
            tags: vec![(SUPER_TAG.0.into(), SUPER_TAG.1.into())],
            timeout: Duration::from_millis(QUERY_TIMEOUT_MS),
        };
        self.begin_query(params, supers).ok()
    }

    fn begin_query(
        self: &Rc<Self>,
        params: g::QueryParams,
        expect: usize,
    ) -> Result<(u64, Receiver<()>), String> {
        let now = self.now();
        let id = self
            .host
            .node()
            .query(now, params)
            .map_err(|e| e.to_string())?;
        let done = self.st.borrow_mut().queries.add(id.0, expect);
        self.flush();
        Ok((id.0, done))
    }

    /// Answers collected for a query (and forgets it).
    pub fn finish_query(&self, id: u64) -> Vec<QueryAnswer> {
        self.st.borrow_mut().queries.finish(id)
    }

    /// Carries out the reaction to one event of the LAN node.
    fn on_event(self: &Rc<Self>, ev: g::Event) {
        let now = self.now();
        let r = reactions::react(&self.host.node_ref(), now, ev);
        reactions::write_log(r.log);
        if let Some(c) = &r.change {
            self.st
                .borrow_mut()
                .monitors
                .retain(|m| m.try_send(c.clone()).is_ok());
        }
        match r.query {
            None => {}
            Some(QueryStep::Collect { id, answer }) => {
                self.st.borrow_mut().queries.answer(id, answer)
            }
            Some(QueryStep::Done { id }) => self.st.borrow().queries.done(id),
            #[cfg_attr(not(feature = "heavy"), allow(unused_variables))]
            Some(QueryStep::AnswerFederation { id, payload }) => {
                #[cfg(feature = "heavy")]
                {
                    let (pool, budget) = {
                        let st = self.st.borrow();
                        let budget = st.cfg.gossip.mtu.saturating_sub(ANSWER_OVERHEAD);
                        (st.fed.clone(), budget)
                    };
                    if let Some(pool) = pool {
                        let answer = pool.answer(&payload, budget);
                        if let Err(e) = self.host.node().respond(now, id, &answer) {
                            log::warn(&format!("federation answer not sent: {e}"));
                        }
                    }
                }
            }
            Some(QueryStep::AnswerWithHandler {
                id,
                name,
                origin,
                payload,
            }) => self.answer_with_handler(id, name, origin, payload),
        }
        if let Some(h) = r.handler {
            self.run_handlers(h);
        }
    }

    /// Runs the first query handler for `name`, whose stdout is the answer.
    fn answer_with_handler(
        self: &Rc<Self>,
        id: g::QueryId,
        name: String,
        origin: String,
        payload: Vec<u8>,
    ) {
        let st = self.st.borrow();
        let Some(command) = st
            .cfg
            .handlers
            .iter()
            .find(|h| h.matches("query", Some(&name)))
            .map(|h| h.command.clone())
        else {
            return;
        };
        let env = handlers::environment(
            "query",
            &st.cfg.name,
            &st.cfg.microcloud,
            &self.own_tags(),
            &[("QUERY_NAME", name), ("QUERY_ORIGIN", origin)],
        );
        let inv = handlers::Invocation {
            command,
            env,
            stdin: payload,
            timeout: st.cfg.gossip.max_query_timeout.min(Duration::from_secs(10)),
        };
        drop(st);
        self.host
            .ex
            .spawn(answer_query(self.clone(), id, inv))
            .detach();
    }

    /// This node's tags as its node table holds them (its first member).
    fn own_tags(&self) -> Vec<(String, String)> {
        self.host
            .node_ref()
            .members()
            .next()
            .map(|m| m.tags.clone())
            .unwrap_or_default()
    }

    fn run_handlers(self: &Rc<Self>, call: HandlerCall) {
        let HandlerCall {
            kind,
            name,
            extra,
            stdin,
        } = call;
        let tags = self.own_tags();
        let st = self.st.borrow();
        for h in st
            .cfg
            .handlers
            .iter()
            .filter(|h| h.matches(kind, name.as_deref()))
        {
            let inv = handlers::Invocation {
                command: h.command.clone(),
                env: handlers::environment(kind, &st.cfg.name, &st.cfg.microcloud, &tags, &extra),
                stdin: stdin.clone(),
                timeout: handlers::EVENT_TIMEOUT,
            };
            let slots = self.handler_slots.clone();
            self.host
                .ex
                .spawn(async move {
                    let _slot = slots.acquire().await;
                    let cmd = inv.command.clone();
                    match handlers::run(inv).await {
                        Ok(o) if o.timed_out => log::warn(&format!(
                            "handler '{cmd}' for {kind} timed out and was killed"
                        )),
                        Ok(o) if o.code != Some(0) => log::warn(&format!(
                            "handler '{cmd}' for {kind} exited with {:?}",
                            o.code
                        )),
                        Ok(_) => {}
                        Err(e) => {
                            log::warn(&format!("handler '{cmd}' for {kind} did not start: {e}"))
                        }
                    }
                })
                .detach();
        }
    }

    /// Starts a graceful leave and schedules the exit.
    pub fn shutdown(self: &Rc<Self>, code: i32) {
        let grace = {
            let mut st = self.st.borrow_mut();
            if st.leaving {
                return;
            }
            st.leaving = true;
            let now = self.now();
            self.host.node().leave(now);
            #[cfg(feature = "heavy")]
            if let Some(pool) = &st.fed {
                pool.leave(now);
            }
            // Long enough for a few gossip rounds to carry the leave.
            (st.cfg.gossip.gossip_interval * 5)
                .clamp(Duration::from_millis(500), Duration::from_secs(3))
        };
        log::info("leaving the microcloud");
        self.flush();
        let ctx = self.clone();
        self.host
            .ex
            .spawn(async move {
                Timer::after(grace).await;
                ctx.persist_state();
                ctx.st.borrow_mut().exit = Some(code);
                ctx.host.wake();
            })
            .detach();
    }

    /// SIGHUP: re-reads the config file and applies what can change live.
    pub fn reload(self: &Rc<Self>) {
        let flags = self.st.borrow().flags.clone();
        let env_control = std::env::var("NUVOL_CONTROL").ok();
        let cfg = match crate::config::load(&flags, env_control.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                log::error(&format!("reload refused, keeping the running config: {e}"));
                return;
            }
        };
        let new_joins = {
            let mut st = self.st.borrow_mut();
            let old = &st.cfg;
            if cfg.name != old.name
                || cfg.microcloud != old.microcloud
                || cfg.bind != old.bind
                || cfg.control != old.control
                || cfg.state_dir != old.state_dir
                || cfg.profile != old.profile
            {
                log::warn(
                    "name, microcloud, bind, control, state and profile change only on restart",
                );
            }
            #[cfg(feature = "heavy")]
            if cfg.federation != old.federation {
                log::warn("the federation section changes only on restart");
            }
            {
                let mut node = self.host.node();
                for k in &cfg.keys {
                    node.keyring_mut().install(g::Key::from_bytes(k.key));
                }
            }
            let new_joins: Vec<String> = cfg
                .join
                .iter()
                .filter(|j| !st.cfg.join.contains(j))
                .cloned()
                .collect();
            st.cfg.handlers = cfg.handlers.clone();
            st.cfg.join = cfg.join.clone();
            st.cfg.keys = cfg.keys.clone();
            st.services.reload(&cfg);
            st.cfg.uci = cfg.uci;
            new_joins
        };
        log::info("configuration reloaded");
        if !new_joins.is_empty() {
            self.host
                .ex
                .spawn(shell::join_loop(self.clone(), new_joins))
                .detach();
        }
        self.flush();
    }
}

/// Runs a query handler and sends its stdout as this node's answer.
async fn answer_query(ctx: Rc<Ctx>, id: g::QueryId, inv: handlers::Invocation) {
    let slots = ctx.handler_slots.clone();
    let _slot = slots.acquire().await;
    let cmd = inv.command.clone();
    match handlers::run(inv).await {
        Ok(o) if !o.timed_out => {
            let now = ctx.now();
            let r = ctx.host.node().respond(now, id, &o.stdout);
            if let Err(e) = r {
                log::warn(&format!("query handler '{cmd}': answer not sent: {e}"));
            }
            ctx.flush();
        }
        Ok(_) => log::warn(&format!("query handler '{cmd}' timed out")),
        Err(e) => log::warn(&format!("query handler '{cmd}' did not start: {e}")),
    }
}

/// This node's tags: its metadata plus microcloud and version.
pub fn tags(cfg: &AgentConfig, meta: &Metadata) -> Vec<(String, String)> {
    let mut t = vec![
        ("microcloud".to_string(), cfg.microcloud.clone()),
        ("version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
    ];
    t.extend(meta.tags());
    #[cfg(feature = "heavy")]
    if cfg.federation.is_some() {
        let (k, v) = crate::federation::SUPER_TAG;
        t.push((k.to_string(), v.to_string()));
    }
    t
}
