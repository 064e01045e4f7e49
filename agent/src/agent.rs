//! `nuvol agent`: the daemon — a thin IO shell around the sans-IO gossip core.
//!
//! One thread runs a smol `LocalExecutor`. The [`nuvol_gossip::Node`] lives in
//! a `RefCell` that every task borrows only between awaits, so there is no
//! locking and no borrow is ever held across IO. Inputs — UDP datagrams, TCP
//! push-pull streams, control requests, beacons, signals — are fed to the core
//! by their own tasks; after each, [`Ctx::flush`] sends what the core wants
//! sent, acts on its events, and wakes the timer loop, which sleeps until the
//! core's next deadline ([`nuvol_gossip::Node::poll_timeout`]).
//!
//! Lifecycle: start (config, state dir, sockets, saved state, join) → run →
//! on SIGTERM/SIGINT leave gracefully (peers mark this node *left*, not
//! failed), keep gossiping briefly so the news spreads, save state, remove the
//! control socket, exit 0. SIGHUP re-reads the config file. Exit 100 on bad
//! config or usage, 111 on a temporary failure (port in use, socket busy).

use std::cell::{RefCell, RefMut};
use std::future::Future;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::net::{UnixListener, UnixStream};
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use nuvol_control::*;
use nuvol_gossip as g;
use smol::channel::{self, Receiver, Sender};
use smol::{Async, LocalExecutor, Timer};

use crate::config::{AgentConfig, Flags};
use crate::handlers;
use crate::metadata::Metadata;
use crate::shell::{self, Shell};
use crate::state::{self, Loaded, StateDir};
use crate::{beacon, log, services, signals};

/// How often saved state is compared with the core's and rewritten if changed.
const SAVE_INTERVAL: Duration = Duration::from_secs(2);
/// The state file changes with every join, leave, refutation and user event;
/// a copy in RAM ([`state::volatile_dir`]) follows each change, the state
/// directory (flash on a router) gets it at most this often, and at start
/// after a boot, on an owner's publish/unpublish and on stop.
const FLASH_INTERVAL: Duration = Duration::from_secs(3600);
/// How often /proc is read again for the node's tags.
const METADATA_INTERVAL: Duration = Duration::from_secs(30);
/// A real change of the node's metadata (load, free memory) is announced at
/// most this often. Each announcement reaches every member, every member
/// passing it on a few times (retransmit_mult · log N copies each): 50
/// routers whose load moves all day, announcing every 30 s, tripled the
/// gossip traffic of a quiet microcloud. Newcomers get the current tags in
/// their join push-pull, so nothing is re-announced without a change.
const ANNOUNCE_MIN_GAP: Duration = Duration::from_secs(300);
/// Bound on one push-pull exchange, connect to reply.
const STREAM_TIMEOUT: Duration = Duration::from_secs(10);
/// Changes buffered per monitor; a monitor that falls this far behind is dropped.
const MONITOR_BACKLOG: usize = 1024;
/// Bytes of a datagram a query answer's envelope (sealing, header, query id,
/// this node's name) may take; the federation answer gets the rest.
#[cfg(feature = "heavy")]
const ANSWER_OVERHEAD: usize = 160;

/// Handler scripts to run for one event: kind, user event / query name,
/// extra `SERF_*` variables, stdin.
struct HandlerCall {
    kind: &'static str,
    name: Option<String>,
    extra: Vec<(&'static str, String)>,
    stdin: Vec<u8>,
}

impl HandlerCall {
    /// A call without a name or extra variables (member and service events).
    fn member(kind: &'static str, stdin: Vec<u8>) -> Option<HandlerCall> {
        Some(HandlerCall {
            kind,
            name: None,
            extra: Vec::new(),
            stdin,
        })
    }
}

/// A query this node asked, collecting answers for a control client.
struct PendingQuery {
    answers: Vec<QueryAnswer>,
    done: Sender<()>,
    /// Done early once this many answers arrived (0: wait for the timeout).
    expect: usize,
}

/// Everything the tasks share; borrowed, never held across an await.
pub struct State {
    pub node: g::Node,
    pub cfg: AgentConfig,
    flags: Flags,
    pub dir: StateDir,
    pub meta: Metadata,
    /// The metadata the gossiped tags carry, and when they were set
    /// (time since the agent started).
    announced: Metadata,
    announced_at: Duration,
    pub advertise: SocketAddr,
    monitors: Vec<Sender<ChangeView>>,
    /// Pending queries by id: a handful at most, so a list (no hash map code).
    queries: Vec<(u64, PendingQuery)>,
    /// What the state directory and the RAM copy hold, and when the state
    /// directory was last written.
    last_saved: Vec<u8>,
    volatile: Option<StateDir>,
    last_volatile: Vec<u8>,
    flashed_at: Duration,
    exit: Option<i32>,
    leaving: bool,
    pub services: services::Services,
    /// The federation pool, on a super node.
    #[cfg(feature = "heavy")]
    pub fed: Option<Rc<crate::fedpool::Pool>>,
}

/// The agent's executor. Every spawned future is boxed first, so all tasks
/// have one type and the task machinery (`async_task`'s raw task functions)
/// is compiled once instead of once per spawned future: tens of kB of flash.
pub struct Executor(LocalExecutor<'static>);

impl Executor {
    pub fn spawn(&self, fut: impl Future<Output = ()> + 'static) -> smol::Task<()> {
        let boxed: Pin<Box<dyn Future<Output = ()>>> = Box::pin(fut);
        self.0.spawn(boxed)
    }
}

pub struct Ctx {
    pub ex: Rc<Executor>,
    pub st: RefCell<State>,
    udp: Async<UdpSocket>,
    wake: Sender<()>,
    clock: std::time::Instant,
    handler_slots: Rc<smol::lock::Semaphore>,
    refusals: shell::Refusals,
}

impl Shell for Ctx {
    fn node(&self) -> RefMut<'_, g::Node> {
        RefMut::map(self.st.borrow_mut(), |st| &mut st.node)
    }
    fn now(&self) -> g::Instant {
        Ctx::now(self)
    }
    fn flush(self: &Rc<Self>) {
        Ctx::flush(self)
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
        ""
    }
    fn exit_code(&self) -> Option<i32> {
        self.st.borrow().exit
    }
}

/// Runs `nuvol agent` with the flags after `agent`; returns the exit code.
pub fn run(args: Vec<String>) -> i32 {
    let flags = match Flags::parse(args) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("nuvol agent: {e}\nRun 'nuvol agent --help' for usage.");
            return 100;
        }
    };
    if flags.help {
        use crate::config::*;
        print!(
            "{}\nDefaults: config {DEFAULT_CONFIG} if it exists, name = hostname, microcloud default,\n\
             bind 0.0.0.0:{DEFAULT_PORT}, state {DEFAULT_STATE}, control {DEFAULT_CONTROL} (or $NUVOL_CONTROL),\n\
             more `config service` files in {DEFAULT_SERVICES_DIR} (agent option services_dir),\n\
             profile lan, beacon port {DEFAULT_BEACON_PORT} (0 = off), no page server. Flags override the file.\n\
             A `config federation` section makes a build with the heavy feature a super node\n\
             (federation pool, default port 7948); other builds warn and ignore it.\n{}",
            crate::cli::command_help("agent").unwrap_or_default(),
            if cfg!(feature = "http") {
                ""
            } else {
                "This build has no built-in page server: --http is ignored (serve the page as CGI).\n"
            }
        );
        return 0;
    }
    let env_control = std::env::var("NUVOL_CONTROL").ok();
    let cfg = match crate::config::load(&flags, env_control.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            log::error(&e.to_string());
            return 100;
        }
    };
    match start(cfg, flags) {
        Ok(code) => code,
        Err((code, msg)) => {
            log::error(&msg);
            code
        }
    }
}

pub type StartError = (i32, String);

fn start(cfg: AgentConfig, flags: Flags) -> Result<i32, StartError> {
    let dir = StateDir::open(&cfg.state_dir).map_err(|e| {
        (
            100,
            format!(
                "cannot use state directory {}: {e} (choose one with --state DIR)",
                cfg.state_dir.display()
            ),
        )
    })?;
    let udp = UdpSocket::bind(cfg.bind)
        .map_err(|e| (111, format!("cannot bind UDP {}: {e}", cfg.bind)))?;
    let tcp = TcpListener::bind(cfg.bind)
        .map_err(|e| (111, format!("cannot bind TCP {}: {e}", cfg.bind)))?;
    let advertise = advertise_addr(&cfg);
    let control = bind_control(&cfg)?;
    let signal_pipe =
        signals::install().map_err(|e| (111, format!("cannot install signal handlers: {e}")))?;

    let keyring = build_keyring(&cfg, &dir);
    let mut seed = [0u8; 8];
    getrandom::getrandom(&mut seed).map_err(|e| (111, format!("no randomness: {e}")))?;
    let mut node = g::Node::new(
        g::Identity::new(&cfg.name, advertise),
        cfg.gossip.clone(),
        keyring,
        u64::from_le_bytes(seed),
    );
    // The RAM copy, when this boot has one, is as new as the flash copy or newer.
    let volatile = state::volatile_dir(&cfg.control, &cfg.state_dir);
    let from_ram = volatile
        .as_ref()
        .and_then(|v| match v.load_raw("node") {
            Loaded::Ok(bytes) => Some(bytes),
            _ => None,
        })
        .filter(|bytes| node.import_state(bytes).is_ok())
        .is_some();
    match if from_ram {
        Loaded::Missing
    } else {
        dir.load_raw("node")
    } {
        Loaded::Ok(bytes) => match node.import_state(&bytes) {
            Ok(()) => {}
            Err(g::InputError::OtherNode) => log::warn(&format!(
                "state in {} belongs to another node name; starting fresh as {}",
                dir.path().display(),
                cfg.name
            )),
            Err(e) => {
                dir.move_aside("node");
                dir.warn_corrupt("node", &e.to_string());
            }
        },
        Loaded::Missing => {}
        Loaded::Corrupt(why) => dir.warn_corrupt("node", &why),
    }
    let meta = Metadata::read(&cfg.state_dir);
    // Tags are tiny; they cannot exceed a datagram.
    let _ = node.set_tags(tags(&cfg, &meta));

    let services = services::Services::start(&cfg);
    let (wake_tx, wake_rx) = channel::bounded(1);
    let ex = Rc::new(Executor(LocalExecutor::new()));
    let udp = Async::new(udp).map_err(|e| (111, format!("UDP socket: {e}")))?;
    let tcp = Async::new(tcp).map_err(|e| (111, format!("TCP socket: {e}")))?;
    let control = Async::new(control).map_err(|e| (111, format!("control socket: {e}")))?;
    let signal_pipe = Async::new(signal_pipe).map_err(|e| (111, format!("signal pipe: {e}")))?;
    let ctx = Rc::new(Ctx {
        ex: ex.clone(),
        st: RefCell::new(State {
            node,
            cfg,
            flags,
            dir,
            announced: meta.clone(),
            announced_at: Duration::ZERO,
            meta,
            advertise,
            monitors: Vec::new(),
            queries: Vec::new(),
            last_saved: Vec::new(),
            volatile,
            last_volatile: Vec::new(),
            flashed_at: Duration::ZERO,
            exit: None,
            leaving: false,
            services,
            #[cfg(feature = "heavy")]
            fed: None,
        }),
        udp,
        wake: wake_tx,
        clock: std::time::Instant::now(),
        handler_slots: Rc::new(smol::lock::Semaphore::new(handlers::MAX_RUNNING)),
        refusals: shell::Refusals::default(),
    });
    {
        // Records of supervised instances come back from the supervisor once
        // healthy, not from the saved state.
        let now = ctx.now();
        let mut st = ctx.st.borrow_mut();
        for (service_type, port) in st.services.supervised_records() {
            st.node.unpublish(now, &service_type, port);
        }
    }
    // Persist the bumped incarnation before anything else: a crash loop must
    // still come back with ever higher incarnations (from the RAM copy; after
    // a boot, from flash).
    if from_ram {
        ctx.save_state();
    } else {
        ctx.persist_state();
    }
    {
        let st = ctx.st.borrow();
        log::info(&format!(
            "nuvol {} agent {} in microcloud {} on {} (advertised {}), profile {}, state {}, control {}",
            env!("CARGO_PKG_VERSION"),
            st.cfg.name,
            st.cfg.microcloud,
            st.cfg.bind,
            st.advertise,
            st.cfg.profile.as_str(),
            st.cfg.state_dir.display(),
            st.cfg.control.display()
        ));
    }
    if let Some(addr) = ctx.st.borrow().cfg.http {
        #[cfg(feature = "http")]
        start_page(&ctx.st.borrow().cfg, addr);
        #[cfg(not(feature = "http"))]
        log::warn(&format!(
            "this build has no built-in page server; http {addr} is ignored \
             (serve the page as CGI under uhttpd, or use a build with the http feature)"
        ));
    }
    #[cfg(feature = "heavy")]
    {
        let fed = ctx.st.borrow().cfg.federation.clone();
        if let Some(f) = fed {
            let pool = crate::fedpool::start(&ctx, &f)?;
            ctx.st.borrow_mut().fed = Some(pool);
        }
    }

    ex.spawn(shell::udp_loop(ctx.clone())).detach();
    ex.spawn(shell::tcp_loop(ctx.clone(), tcp)).detach();
    ex.spawn(crate::control::accept_loop(ctx.clone(), control))
        .detach();
    ex.spawn(signal_loop(ctx.clone(), signal_pipe)).detach();
    ex.spawn(save_loop(ctx.clone())).detach();
    ex.spawn(metadata_loop(ctx.clone())).detach();
    ex.spawn(services::notice_loop(ctx.clone())).detach();
    let port = ctx.st.borrow().cfg.beacon_port;
    if port != 0 {
        match beacon::bind(port).and_then(Async::new) {
            Ok(sock) => {
                let sock = Rc::new(sock);
                ex.spawn(beacon_send_loop(ctx.clone(), sock.clone(), port))
                    .detach();
                ex.spawn(beacon_recv_loop(ctx.clone(), sock)).detach();
            }
            Err(e) => log::warn(&format!(
                "beacon port {port} unavailable ({e}); local-link discovery is off"
            )),
        }
    }
    // Rejoin through the peers remembered in the state dir right away; the
    // configured seeds follow as soon as they resolve.
    let now = ctx.now();
    ctx.st.borrow_mut().node.join(now, &[]);
    ctx.flush();
    let joins = ctx.st.borrow().cfg.join.clone();
    ex.spawn(shell::join_loop(ctx.clone(), joins)).detach();

    let code = smol::block_on(ex.0.run(shell::timer_loop(ctx.clone(), wake_rx)));
    let mut st = ctx.st.borrow_mut();
    let control = st.cfg.control.clone();
    let _ = std::fs::remove_file(&control);
    st.services.shutdown();
    Ok(code)
}

impl Ctx {
    /// The core's clock: milliseconds since the agent started.
    pub fn now(&self) -> g::Instant {
        g::Instant::from_millis(self.clock.elapsed().as_millis() as u64)
    }

    /// Sends what the core wants sent, acts on its events, wakes the timer loop.
    pub fn flush(self: &Rc<Self>) {
        // Events can cause sends (query answers) and vice versa; a few passes
        // settle it, and the bound keeps a misbehaving core from spinning us.
        for _ in 0..8 {
            let mut idle = !shell::send_queued(self);
            loop {
                let ev = self.st.borrow_mut().node.poll_event();
                match ev {
                    None => break,
                    Some(ev) => {
                        idle = false;
                        self.on_event(ev);
                    }
                }
            }
            if idle {
                break;
            }
        }
        self.refusals.check(&**self);
        let _ = self.wake.try_send(());
    }

    /// Writes the core's state, if it changed, to the RAM copy, and to the
    /// state directory when [`FLASH_INTERVAL`] has passed since its last write.
    pub fn save_state(&self) {
        self.save_state_now(false);
    }

    /// Writes the core's state, if it changed, to the state directory now
    /// (and the RAM copy): at stop, and after the owner changed the catalog.
    pub fn persist_state(&self) {
        self.save_state_now(true);
    }

    fn save_state_now(&self, to_flash: bool) {
        let mut guard = self.st.borrow_mut();
        let st = &mut *guard;
        let bytes = st.node.export_state();
        let mut to_flash = to_flash || st.volatile.is_none();
        if let Some(v) = &st.volatile {
            if bytes != st.last_volatile {
                match v.save_raw("node", &bytes) {
                    Ok(()) => st.last_volatile = bytes.clone(),
                    Err(_) => to_flash = true,
                }
            }
        }
        let now = self.clock.elapsed();
        if bytes == st.last_saved
            || !(to_flash || now.saturating_sub(st.flashed_at) >= FLASH_INTERVAL)
        {
            return;
        }
        match st.dir.save_raw("node", &bytes) {
            Ok(()) => {
                st.last_saved = bytes;
                st.flashed_at = now;
            }
            Err(e) => log::warn(&format!(
                "cannot save state to {}: {e}",
                st.dir.path().display()
            )),
        }
    }

    /// Writes the keyring now (after a keys command).
    pub fn save_keyring(&self) {
        let st = self.st.borrow();
        let ring = state::Keyring {
            keys: st
                .node
                .keyring()
                .keys()
                .iter()
                .map(|k| k.as_bytes().to_vec())
                .collect(),
        };
        if let Err(e) = st.dir.save("keyring", &ring) {
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
            .st
            .borrow()
            .node
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
        let id = {
            let mut st = self.st.borrow_mut();
            let id = st.node.query(now, params).map_err(|e| e.to_string())?;
            let (tx, rx) = channel::bounded(1);
            st.queries.push((
                id.0,
                PendingQuery {
                    answers: Vec::new(),
                    done: tx,
                    expect,
                },
            ));
            (id.0, rx)
        };
        self.flush();
        Ok(id)
    }

    /// Answers collected for a query (and forgets it).
    pub fn finish_query(&self, id: u64) -> Vec<QueryAnswer> {
        let mut st = self.st.borrow_mut();
        match st.queries.iter().position(|(q, _)| *q == id) {
            Some(i) => st.queries.swap_remove(i).1.answers,
            None => Vec::new(),
        }
    }

    fn on_event(self: &Rc<Self>, ev: g::Event) {
        let now = self.now();
        let mut change = None;
        let mut handler: Option<HandlerCall> = None;
        {
            let mut st = self.st.borrow_mut();
            let member_line = |st: &State, name: &str| -> Vec<u8> {
                match st.node.member(name) {
                    Some(m) => {
                        let tags: Vec<String> =
                            m.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        format!(
                            "{}\t{}\t{}\t{}\n",
                            m.name,
                            m.addr.ip(),
                            m.tag("role").unwrap_or(""),
                            tags.join(",")
                        )
                        .into_bytes()
                    }
                    None => format!("{name}\t\t\t\n").into_bytes(),
                }
            };
            let member_change = |st: &State, name: &str| {
                st.node
                    .member(name)
                    .map(|m| ChangeView::Member(member_view(&st.node, m, now)))
            };
            match ev {
                g::Event::MemberUp { name, addr } => {
                    log::info(&format!("member {name} joined from {addr}"));
                    change = member_change(&st, &name);
                    handler = HandlerCall::member("member-join", member_line(&st, &name));
                }
                g::Event::MemberSuspect { name, .. } => {
                    log::info(&format!("member {name} is suspect"));
                    change = member_change(&st, &name);
                }
                g::Event::MemberAlive { name, .. } => {
                    log::info(&format!("member {name} refuted suspicion"));
                    change = member_change(&st, &name);
                }
                g::Event::MemberFailed { name } => {
                    log::warn(&format!("member {name} failed"));
                    change = member_change(&st, &name);
                    handler = HandlerCall::member("member-failed", member_line(&st, &name));
                }
                g::Event::MemberLeft { name } => {
                    log::info(&format!("member {name} left"));
                    change = member_change(&st, &name);
                    handler = HandlerCall::member("member-leave", member_line(&st, &name));
                }
                g::Event::MemberUpdated { name } => {
                    change = member_change(&st, &name);
                    handler = HandlerCall::member("member-update", member_line(&st, &name));
                }
                g::Event::MemberReaped { name } => {
                    handler = HandlerCall::member("member-reap", format!("{name}\t\t\t\n").into_bytes());
                }
                g::Event::NameConflict { name, addr } => log::warn(&format!(
                    "another node at {addr} claims this node's name {name}; give each node a unique --name"
                )),
                g::Event::Refuted { incarnation } => {
                    log::info(&format!(
                        "refuted a rumour of this node's failure (incarnation {incarnation})"
                    ));
                }
                g::Event::ServiceUp { node, record } | g::Event::ServiceChanged { node, record } => {
                    let view = service_view(&st.node, &node, &record);
                    handler = HandlerCall::member("service-up", service_line(&view).into_bytes());
                    change = Some(ChangeView::ServiceUp(view));
                }
                g::Event::ServiceDown { node, record } => {
                    let view = service_view(&st.node, &node, &record);
                    handler = HandlerCall::member("service-down", service_line(&view).into_bytes());
                    change = Some(ChangeView::ServiceDown(view));
                }
                g::Event::UserEvent {
                    origin,
                    name,
                    payload,
                    lamport,
                } => {
                    handler = Some(HandlerCall {
                        kind: "user",
                        name: Some(name.clone()),
                        extra: vec![
                            ("USER_EVENT", name.clone()),
                            ("USER_LTIME", lamport.to_string()),
                        ],
                        stdin: payload.clone(),
                    });
                    change = Some(ChangeView::Event {
                        from: origin,
                        name,
                        payload,
                        lamport,
                    });
                }
                g::Event::QueryRequest {
                    id,
                    origin,
                    name,
                    payload,
                } => {
                    if name == crate::federation::QUERY {
                        // Only super nodes are asked; a plain node that
                        // matched a forged tag filter stays silent.
                        #[cfg(feature = "heavy")]
                        if let Some(pool) = st.fed.clone() {
                            let budget = st.cfg.gossip.mtu.saturating_sub(ANSWER_OVERHEAD);
                            let answer = pool.answer(&payload, budget);
                            if let Err(e) = st.node.respond(now, id, &answer) {
                                log::warn(&format!("federation answer not sent: {e}"));
                            }
                        }
                        return;
                    }
                    let matching: Vec<String> = st
                        .cfg
                        .handlers
                        .iter()
                        .filter(|h| h.matches("query", Some(&name)))
                        .map(|h| h.command.clone())
                        .collect();
                    if let Some(command) = matching.into_iter().next() {
                        let env = handlers::environment(
                            "query",
                            &st.cfg.name,
                            &st.cfg.microcloud,
                            &st.node.members().next().map(|m| m.tags.clone()).unwrap_or_default(),
                            &[("QUERY_NAME", name.clone()), ("QUERY_ORIGIN", origin)],
                        );
                        let inv = handlers::Invocation {
                            command,
                            env,
                            stdin: payload,
                            timeout: st.cfg.gossip.max_query_timeout.min(Duration::from_secs(10)),
                        };
                        drop(st);
                        self.ex.spawn(answer_query(self.clone(), id, inv)).detach();
                        return;
                    }
                }
                g::Event::QueryResponse { id, from, payload } => {
                    if let Some((_, q)) = st.queries.iter_mut().find(|(q, _)| *q == id.0) {
                        q.answers.push(QueryAnswer {
                            node: from,
                            payload,
                        });
                        if q.expect > 0 && q.answers.len() >= q.expect {
                            let _ = q.done.try_send(());
                        }
                    }
                }
                g::Event::QueryDone { id } => {
                    if let Some((_, q)) = st.queries.iter().find(|(q, _)| *q == id.0) {
                        let _ = q.done.try_send(());
                    }
                }
                _ => {}
            }
            if let Some(c) = &change {
                st.monitors.retain(|m| m.try_send(c.clone()).is_ok());
            }
        }
        if let Some(h) = handler {
            self.run_handlers(h);
        }
    }

    fn run_handlers(self: &Rc<Self>, call: HandlerCall) {
        let HandlerCall {
            kind,
            name,
            extra,
            stdin,
        } = call;
        let st = self.st.borrow();
        let tags = st
            .node
            .members()
            .next()
            .map(|m| m.tags.clone())
            .unwrap_or_default();
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
            self.ex
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
    fn shutdown(self: &Rc<Self>, code: i32) {
        let grace = {
            let mut st = self.st.borrow_mut();
            if st.leaving {
                return;
            }
            st.leaving = true;
            let now = self.now();
            st.node.leave(now);
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
        self.ex
            .spawn(async move {
                Timer::after(grace).await;
                ctx.persist_state();
                ctx.st.borrow_mut().exit = Some(code);
                let _ = ctx.wake.try_send(());
            })
            .detach();
    }

    /// SIGHUP: re-reads the config file and applies what can change live.
    fn reload(self: &Rc<Self>) {
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
            for k in &cfg.keys {
                st.node.keyring_mut().install(g::Key::from_bytes(k.key));
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
            self.ex
                .spawn(shell::join_loop(self.clone(), new_joins))
                .detach();
        }
        self.flush();
    }
}

pub fn member_view(node: &g::Node, m: &g::Member, now: g::Instant) -> MemberView {
    MemberView {
        name: m.name.clone(),
        addr: m.addr.to_string(),
        state: match m.state {
            g::MemberState::Alive => MemberState::Alive,
            g::MemberState::Suspect => MemberState::Suspect,
            g::MemberState::Failed => MemberState::Failed,
            g::MemberState::Left => MemberState::Left,
        },
        microcloud: m.tag("microcloud").unwrap_or_default().to_string(),
        incarnation: m.incarnation,
        rtt_us: node.rtt_to(&m.name).map(|d| d.as_micros() as u64),
        since_change_s: now.saturating_since(m.state_since).as_secs(),
        tags: m.tags.clone(),
    }
}

pub fn health(h: g::Health) -> Health {
    match h {
        g::Health::Healthy => Health::Healthy,
        g::Health::Unhealthy => Health::Unhealthy,
        g::Health::Unknown => Health::Unknown,
    }
}

pub fn search_view(r: &g::SearchResult) -> ServiceView {
    ServiceView {
        service_type: r.record.service_type.clone(),
        description: r.record.description.clone(),
        host: r.record.host.clone(),
        ip: r.record.ip.clone(),
        port: r.record.port,
        microcloud: r.record.microcloud.clone(),
        txt: r.record.txt.clone(),
        health: health(r.record.health),
        rtt_us: r.rtt_us,
        load_x100: r.load_x100,
        quality: r.quality(),
    }
}

/// A view of `record` published by `node`, ranked as search would rank it.
pub fn service_view(core: &g::Node, node: &str, record: &g::ServiceRecord) -> ServiceView {
    let load_x100 = core
        .member(node)
        .and_then(|m| m.tag("load"))
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    search_view(&g::SearchResult {
        node: node.to_string(),
        record: record.clone(),
        rtt_us: core.rtt_to(node).map(|d| d.as_micros() as u64),
        load_x100,
    })
}

fn service_line(v: &ServiceView) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{}\n",
        v.service_type, v.host, v.ip, v.port, v.description
    )
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

/// The address peers should use: `advertise`, else the bind address, else
/// (bound to 0.0.0.0) the first up, non-loopback IPv4 address.
fn advertise_addr(cfg: &AgentConfig) -> SocketAddr {
    advertise_for(cfg.advertise, cfg.bind)
}

/// [`advertise_addr`] for any socket: the federation pool has its own.
pub fn advertise_for(advertise: Option<SocketAddr>, bind: SocketAddr) -> SocketAddr {
    if let Some(a) = advertise {
        return a;
    }
    if !bind.ip().is_unspecified() {
        return bind;
    }
    use nix::net::if_::InterfaceFlags as F;
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for ifa in addrs {
            if !ifa.flags.contains(F::IFF_UP) || ifa.flags.contains(F::IFF_LOOPBACK) {
                continue;
            }
            if let Some(sin) = ifa.address.as_ref().and_then(|a| a.as_sockaddr_in()) {
                return SocketAddr::from((sin.ip(), bind.port()));
            }
        }
    }
    SocketAddr::from(([127, 0, 0, 1], bind.port()))
}

/// The keyring: the state dir's (keys installed at runtime) when it has
/// any, plus the config file's keys for receiving; else the config's keys
/// with the one marked primary first; else plaintext.
fn build_keyring(cfg: &AgentConfig, dir: &StateDir) -> g::Keyring {
    let saved: state::Keyring = dir.load_or_warn("keyring");
    let mut keys: Vec<[u8; 32]> = saved
        .keys
        .iter()
        .filter_map(|k| <[u8; 32]>::try_from(k.as_slice()).ok())
        .collect();
    let mut config_keys: Vec<&crate::config::ConfigKey> = cfg.keys.iter().collect();
    config_keys.sort_by_key(|k| !k.primary);
    for k in config_keys {
        if !keys.contains(&k.key) {
            keys.push(k.key);
        }
    }
    let mut it = keys.into_iter();
    match it.next() {
        None => {
            log::warn(
                "no cluster key configured: gossip travels unencrypted (see `nuvol keys generate`)",
            );
            g::Keyring::plaintext()
        }
        Some(primary) => {
            let mut ring = g::Keyring::new(g::Key::from_bytes(primary));
            for k in it {
                ring.install(g::Key::from_bytes(k));
            }
            ring
        }
    }
}

/// Binds the control socket with the configured mode (0600 by default),
/// replacing a stale socket file but never a live agent's.
fn bind_control(cfg: &AgentConfig) -> Result<UnixListener, StartError> {
    let path = &cfg.control;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(parent);
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err((
                111,
                format!(
                    "another agent already answers on {}; use --control PATH for a second one",
                    path.display()
                ),
            ));
        }
        let _ = std::fs::remove_file(path);
    }
    // Created with no access for group/others, so there is no window in
    // which another user could connect; widened below only if configured.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = bound.map_err(|e| {
        (
            111,
            format!("cannot bind control socket {}: {e}", path.display()),
        )
    })?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(cfg.control_mode))
        .map_err(|e| (111, format!("cannot set mode of {}: {e}", path.display())))?;
    if let Some(group) = &cfg.control_group {
        match nix::unistd::Group::from_name(group) {
            Ok(Some(gr)) => {
                if let Err(e) = nix::unistd::chown(path, None, Some(gr.gid)) {
                    log::warn(&format!(
                        "cannot give {} to group {group}: {e}",
                        path.display()
                    ));
                }
            }
            _ => log::warn(&format!("control_group {group} does not exist")),
        }
    }
    Ok(listener)
}

#[cfg(feature = "http")]
fn start_page(cfg: &AgentConfig, addr: SocketAddr) {
    let page = match nuvol_page::PageConfig::from_uci(&cfg.uci, &cfg.control, &cfg.state_dir) {
        Ok(p) => p,
        Err(e) => {
            let file = cfg
                .file
                .as_ref()
                .map_or("config".into(), |f| f.display().to_string());
            log::error(&format!("{file}:{e}; the built-in page is off"));
            return;
        }
    };
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            log::error(&format!("cannot serve the page on {addr}: {e}"));
            return;
        }
    };
    log::info(&format!("page on http://{addr}/"));
    let spawned = std::thread::Builder::new()
        .name("page".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            if let Err(e) = nuvol_page::serve_listener(listener, page) {
                log::error(&format!("page server stopped: {e}"));
            }
        });
    if let Err(e) = spawned {
        log::error(&format!("cannot start the page thread: {e}"));
    }
}

async fn answer_query(ctx: Rc<Ctx>, id: g::QueryId, inv: handlers::Invocation) {
    let slots = ctx.handler_slots.clone();
    let _slot = slots.acquire().await;
    let cmd = inv.command.clone();
    match handlers::run(inv).await {
        Ok(o) if !o.timed_out => {
            let now = ctx.now();
            let r = ctx.st.borrow_mut().node.respond(now, id, &o.stdout);
            if let Err(e) = r {
                log::warn(&format!("query handler '{cmd}': answer not sent: {e}"));
            }
            ctx.flush();
        }
        Ok(_) => log::warn(&format!("query handler '{cmd}' timed out")),
        Err(e) => log::warn(&format!("query handler '{cmd}' did not start: {e}")),
    }
}

async fn signal_loop(ctx: Rc<Ctx>, mut pipe: Async<UnixStream>) {
    use smol::io::AsyncReadExt;
    let mut b = [0u8; 1];
    loop {
        match pipe.read(&mut b).await {
            Ok(1) => match signals::name(b[0]) {
                Some(nix::sys::signal::Signal::SIGHUP) => ctx.reload(),
                Some(sig) => {
                    log::info(&format!("{sig}: leaving gracefully"));
                    ctx.shutdown(0);
                }
                None => {}
            },
            _ => return,
        }
    }
}

async fn save_loop(ctx: Rc<Ctx>) {
    loop {
        Timer::after(SAVE_INTERVAL).await;
        ctx.save_state();
    }
}

async fn metadata_loop(ctx: Rc<Ctx>) {
    loop {
        Timer::after(METADATA_INTERVAL).await;
        let dir = ctx.st.borrow().cfg.state_dir.clone();
        let meta = Metadata::read(&dir);
        {
            let mut st = ctx.st.borrow_mut();
            // The tags carry the metadata last announced; re-announce only
            // on a real change, and not within ANNOUNCE_MIN_GAP of the last.
            let due = ctx.clock.elapsed() >= st.announced_at + ANNOUNCE_MIN_GAP;
            if due && st.announced.differs_much(&meta) && !st.leaving {
                let new_tags = tags(&st.cfg, &meta);
                let _ = st.node.set_tags(new_tags);
                st.announced = meta.clone();
                st.announced_at = ctx.clock.elapsed();
            }
            st.meta = meta;
        }
        ctx.flush();
    }
}

async fn beacon_send_loop(ctx: Rc<Ctx>, sock: Rc<Async<UdpSocket>>, port: u16) {
    let mut startup = beacon::STARTUP.iter();
    loop {
        let wait = match startup.next() {
            Some(d) => *d,
            None if ctx.st.borrow().node.num_live() <= 1 => beacon::INTERVAL_ALONE,
            None => beacon::INTERVAL,
        };
        Timer::after(wait).await;
        let (bytes, own_ip) = {
            let st = ctx.st.borrow();
            if st.leaving {
                return;
            }
            let b = beacon::Beacon {
                microcloud: st.cfg.microcloud.clone(),
                name: st.cfg.name.clone(),
                addr: st.advertise.to_string(),
            };
            (beacon::encode(&b), st.advertise.ip())
        };
        for dest in beacon::destinations(own_ip, port) {
            let _ = sock.get_ref().send_to(&bytes, dest);
        }
    }
}

async fn beacon_recv_loop(ctx: Rc<Ctx>, sock: Rc<Async<UdpSocket>>) {
    let mut buf = [0u8; beacon::MAX_BEACON + 1];
    // When each node was last joined through a beacon, to bound join traffic.
    let mut recent: Vec<(String, g::Instant)> = Vec::new();
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else {
            Timer::after(Duration::from_millis(100)).await;
            continue;
        };
        let Some(b) = beacon::decode(&buf[..n]) else {
            continue;
        };
        let now = ctx.now();
        let target = {
            let st = ctx.st.borrow();
            if b.microcloud != st.cfg.microcloud || b.name == st.cfg.name || st.leaving {
                continue;
            }
            let known_alive = st.node.member(&b.name).is_some_and(|m| {
                matches!(m.state, g::MemberState::Alive | g::MemberState::Suspect)
            });
            if known_alive {
                continue;
            }
            beacon::target(&b, from)
        };
        let Some(target) = target else { continue };
        if recent
            .iter()
            .any(|(n, t)| *n == b.name && now.saturating_since(*t) < Duration::from_secs(10))
        {
            continue;
        }
        recent.retain(|(n, t)| *n != b.name && now.saturating_since(*t) < Duration::from_secs(10));
        if recent.len() > 256 {
            recent.clear();
        }
        recent.push((b.name.clone(), now));
        log::info(&format!("beacon: found {} at {target}, joining", b.name));
        ctx.st.borrow_mut().node.join(now, &[target]);
        ctx.flush();
    }
}
