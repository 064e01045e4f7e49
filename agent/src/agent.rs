//! `nuvol agent`: the daemon's start-up and task wiring — a thin IO shell
//! around the sans-IO gossip core.
//!
//! This file binds the sockets, opens the LAN node's gossip host
//! ([`crate::host`]), builds the shared [`Ctx`] ([`crate::daemon`]) and
//! spawns the tasks on one thread's executor: the host's IO loops
//! ([`crate::shell`]), the control server ([`crate::control`]), signals,
//! periodic saves and metadata, beacons, supervisor notices and, on a super
//! node, the federation pool's sync. Inputs are fed to the core by their own
//! tasks; after each, [`Ctx::flush`] sends what the core wants sent, acts
//! on its events, and wakes the timer loop, which sleeps until the core's
//! next deadline ([`nuvol_gossip::Node::poll_timeout`]).
//!
//! Lifecycle: start (config, state dir, sockets, saved state, join) → run →
//! on SIGTERM/SIGINT leave gracefully (peers mark this node *left*, not
//! failed), keep gossiping briefly so the news spreads, save state, remove the
//! control socket, exit 0. SIGHUP re-reads the config file. Exit 100 on bad
//! config or usage, 111 on a temporary failure (port in use, socket busy):
//! [`Exit`].

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::net::{UnixListener, UnixStream};
use std::rc::Rc;
use std::time::Duration;

use nuvol_gossip as g;
use smol::{Async, Timer};

use crate::config::{AgentConfig, Flags};
use crate::daemon::{tags, Ctx, State};
use crate::executor::Executor;
use crate::exit::{temporary, Exit};
use crate::host::{GossipHost, HostSpec};
use crate::metadata::Metadata;
use crate::shell;
use crate::state::{self, StateDir};
use crate::{beacon, log, net, services, signals};

/// How often saved state is compared with the core's and rewritten if changed.
const SAVE_INTERVAL: Duration = Duration::from_secs(2);
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
        Err(e) => {
            log::error(e.message());
            e.code()
        }
    }
}

fn start(cfg: AgentConfig, flags: Flags) -> Result<i32, Exit> {
    let dir = StateDir::open(&cfg.state_dir).map_err(|e| {
        Exit::Config(format!(
            "cannot use state directory {}: {e} (choose one with --state DIR)",
            cfg.state_dir.display()
        ))
    })?;
    let udp =
        UdpSocket::bind(cfg.bind).map_err(temporary(format!("cannot bind UDP {}", cfg.bind)))?;
    let tcp =
        TcpListener::bind(cfg.bind).map_err(temporary(format!("cannot bind TCP {}", cfg.bind)))?;
    let advertise = advertise_addr(&cfg);
    let control = bind_control(&cfg)?;
    let signal_pipe = signals::install().map_err(temporary("cannot install signal handlers"))?;

    let meta = Metadata::read(&cfg.state_dir);
    let spec = HostSpec {
        identity: g::Identity::new(&cfg.name, advertise),
        config: cfg.gossip.clone(),
        keyring: build_keyring(&cfg, &dir),
        tags: tags(&cfg, &meta),
        state_file: "node",
        stream_timeout: STREAM_TIMEOUT,
        log_prefix: "",
        volatile: crate::state::volatile_dir(&cfg.control, &cfg.state_dir),
    };
    let ex = Rc::new(Executor::new());
    let (host, wake_rx) = GossipHost::open(spec, udp, ex.clone(), &dir)?;

    let services = services::Services::start(&cfg);
    let tcp = Async::new(tcp).map_err(temporary("TCP socket"))?;
    let control = Async::new(control).map_err(temporary("control socket"))?;
    let signal_pipe = Async::new(signal_pipe).map_err(temporary("signal pipe"))?;
    let ctx = Rc::new(Ctx::new(
        host,
        State::new(cfg, flags, dir, meta, advertise, services),
    ));
    {
        // Records of supervised instances come back from the supervisor once
        // healthy, not from the saved state.
        let now = ctx.now();
        let st = ctx.st.borrow();
        let mut node = ctx.host.node();
        for (service_type, port) in st.services.supervised_records() {
            node.unpublish(now, &service_type, port);
        }
    }
    // Persist the bumped incarnation before anything else: a crash loop must
    // still come back with ever higher incarnations (from the RAM copy; after
    // a boot, from flash).
    if ctx.host.from_ram {
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
            let pool = {
                let st = ctx.st.borrow();
                crate::fedpool::start(&ex, &st.dir, &f, &st.cfg.name, &st.cfg.microcloud)?
            };
            ctx.st.borrow_mut().fed = Some(pool.clone());
            ex.spawn(fed_sync_loop(ctx.clone(), pool)).detach();
        }
    }

    ex.spawn(shell::udp_loop(ctx.clone())).detach();
    ex.spawn(shell::tcp_loop(ctx.clone(), tcp)).detach();
    ex.spawn(crate::control::accept_loop(ctx.clone(), control))
        .detach();
    ex.spawn(signal_loop(ctx.clone(), signal_pipe)).detach();
    ex.spawn(save_loop(ctx.clone())).detach();
    ex.spawn(metadata_loop(ctx.clone())).detach();
    ex.spawn(notice_loop(ctx.clone())).detach();
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
    ctx.host.node().join(now, &[]);
    ctx.flush();
    let joins = ctx.st.borrow().cfg.join.clone();
    ex.spawn(shell::join_loop(ctx.clone(), joins)).detach();

    let code = ex.run(shell::timer_loop(ctx.clone(), wake_rx));
    let mut st = ctx.st.borrow_mut();
    let control = st.cfg.control.clone();
    let _ = std::fs::remove_file(&control);
    st.services.shutdown();
    Ok(code)
}

/// The address peers should use: `advertise`, else the bind address, else
/// (bound to 0.0.0.0) the first up, non-loopback IPv4 address.
fn advertise_addr(cfg: &AgentConfig) -> SocketAddr {
    net::advertise_for(cfg.advertise, cfg.bind)
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
fn bind_control(cfg: &AgentConfig) -> Result<UnixListener, Exit> {
    let path = &cfg.control;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(parent);
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(Exit::Temporary(format!(
                "another agent already answers on {}; use --control PATH for a second one",
                path.display()
            )));
        }
        let _ = std::fs::remove_file(path);
    }
    // Created with no access for group/others, so there is no window in
    // which another user could connect; widened below only if configured.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = bound.map_err(temporary(format!(
        "cannot bind control socket {}",
        path.display()
    )))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(cfg.control_mode))
        .map_err(temporary(format!("cannot set mode of {}", path.display())))?;
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
            let due = ctx.host.elapsed() >= st.announced_at + ANNOUNCE_MIN_GAP;
            if due && st.announced.differs_much(&meta) && !st.leaving {
                let new_tags = tags(&st.cfg, &meta);
                let _ = ctx.host.node().set_tags(new_tags);
                st.announced = meta.clone();
                st.announced_at = ctx.host.elapsed();
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
            None if ctx.host.node_ref().num_live() <= 1 => beacon::INTERVAL_ALONE,
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
            let known_alive = ctx.host.node_ref().member(&b.name).is_some_and(|m| {
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
        ctx.host.node().join(now, &[target]);
        ctx.flush();
    }
}

/// Turns the supervisor's health-driven notices into catalog records.
async fn notice_loop(ctx: Rc<Ctx>) {
    use nuvol_supervise::os::Notice;
    let rx = ctx.st.borrow().services.notices();
    while let Ok(n) = rx.recv().await {
        let now = ctx.now();
        match n {
            Notice::Publish { service, record } => {
                let r = {
                    let st = ctx.st.borrow();
                    services::published_record(record, st.advertise.ip(), &st.cfg.microcloud)
                };
                if let Err(e) = ctx.host.node().publish(r) {
                    log::warn(&format!("service {service}: not published: {e}"));
                }
            }
            Notice::Unpublish { record, .. } => {
                ctx.host
                    .node()
                    .unpublish(now, &record.service_type, record.port);
            }
        }
        ctx.save_state();
        ctx.flush();
    }
}

/// Once a second: the LAN catalog's summary → the pool's records.
#[cfg(feature = "heavy")]
async fn fed_sync_loop(ctx: Rc<Ctx>, pool: Rc<crate::fedpool::Pool>) {
    loop {
        Timer::after(crate::fedpool::SYNC_INTERVAL).await;
        // A node that left its microcloud (`nuvol leave`) speaks for it no
        // more: its summary empties until it joins again.
        let lan = {
            let node = ctx.host.node_ref();
            if node.is_left() {
                Vec::new()
            } else {
                node.search(&g::SearchFilter {
                    service_type: None,
                    microcloud: Some(pool.microcloud.clone()),
                })
            }
        };
        pool.sync(&lan, &ctx.st.borrow().dir);
    }
}
