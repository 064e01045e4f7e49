//! The IO loops around one gossip node: its datagrams, push-pull and
//! stream-probe connections both ways, and its timers. The agent's LAN node
//! ([`crate::agent::Ctx`]) and a super node's federation pool node
//! (`crate::fedpool::Pool`) run the same loops through [`Shell`]; the core
//! decides everything, these only move bytes and time.

use std::cell::{Cell, RefMut};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::rc::Rc;
use std::time::Duration;

use nuvol_control::frame::FrameError;
use nuvol_gossip as g;
use smol::channel::Receiver;
use smol::{Async, Timer};

use crate::executor::Executor;
use crate::{log, net};

/// Concurrent inbound push-pull streams; more wait to be accepted.
const MAX_STREAMS: usize = 8;
/// Body bytes all inbound streams may hold at once, in the core's
/// `max_stream_len`s: a stream announcing more than is left is closed
/// unread (its sender retries at its next push-pull), so a flood of
/// maximal streams cannot fill a router's memory with buffers.
const STREAM_BUFFERS: usize = 2;
/// Largest datagram read.
const MAX_DATAGRAM: usize = 65_536;

/// What the loops need from the owner of a gossip node.
pub trait Shell: 'static {
    /// The node, borrowed for one step.
    fn node(&self) -> RefMut<'_, g::Node>;
    /// The node's clock.
    fn now(&self) -> g::Instant;
    /// Sends what the node queued, acts on its events, wakes the timer loop.
    fn flush(self: &Rc<Self>);
    fn udp(&self) -> &Async<UdpSocket>;
    fn executor(&self) -> &Executor;
    /// Largest push-pull body accepted: the node's own bound.
    fn max_stream_len(&self) -> usize {
        self.node().config().max_stream_len
    }
    /// Bound on one push-pull exchange, connect to reply.
    fn stream_timeout(&self) -> Duration;
    /// Names the node in log lines ("" for the LAN node, "federation: ").
    fn log_prefix(&self) -> &'static str;
    /// An exit code once the owner is shutting down: the timer loop ends.
    fn exit_code(&self) -> Option<i32> {
        None
    }
}

/// Sends every datagram the node queued and starts every stream it asked
/// for; false if there was nothing to send.
pub fn send_queued<S: Shell>(s: &Rc<S>) -> bool {
    let mut sent = false;
    loop {
        let t = s.node().poll_transmit();
        match t {
            None => return sent,
            Some(g::Transmit::Packet { to, bytes }) => {
                // Non-blocking: a full socket buffer drops the datagram,
                // which SWIM tolerates like any loss.
                let _ = s.udp().get_ref().send_to(&bytes, to);
            }
            Some(g::Transmit::Stream { to, bytes }) => {
                s.executor().spawn(push_pull(s.clone(), to, bytes)).detach();
            }
        }
        sent = true;
    }
}

/// Resolves join addresses (off the event loop: DNS blocks) and joins;
/// names that do not resolve are retried every 30 s while the node is alone.
pub async fn join_loop<S: Shell>(s: Rc<S>, addrs: Vec<String>) {
    let mut pending = addrs;
    for _ in 0..10_000 {
        if pending.is_empty() {
            return;
        }
        let local = match s.udp().get_ref().local_addr() {
            Ok(a) => a,
            Err(e) => {
                log::warn(&format!(
                    "{}cannot join: gossip socket: {e}",
                    s.log_prefix()
                ));
                return;
            }
        };
        let resolved = net::resolve(pending.clone(), local).await;
        let ok: Vec<SocketAddr> = resolved.iter().filter_map(|(_, r)| *r).collect();
        pending = resolved
            .into_iter()
            .filter(|(_, r)| r.is_none())
            .map(|(a, _)| a)
            .collect();
        if !ok.is_empty() {
            let now = s.now();
            s.node().join(now, &ok);
            s.flush();
        }
        for a in &pending {
            log::warn(&format!(
                "{}cannot resolve join address {a}; retrying",
                s.log_prefix()
            ));
        }
        Timer::after(Duration::from_secs(30)).await;
        if s.node().num_live() > 1 {
            return;
        }
    }
}

/// Runs the node's timers until [`Shell::exit_code`] has one.
pub async fn timer_loop<S: Shell>(s: Rc<S>, wake: Receiver<()>) -> i32 {
    loop {
        if let Some(code) = s.exit_code() {
            return code;
        }
        let deadline = s.node().poll_timeout();
        let now = s.now();
        if let Some(d) = deadline {
            if d <= now {
                s.node().handle_timeout(now);
                s.flush();
                // Let the other tasks run between timer bursts.
                smol::future::yield_now().await;
                continue;
            }
        }
        let sleep = deadline
            .map(|d| Duration::from_millis(d.as_millis() - now.as_millis()))
            .unwrap_or(Duration::from_secs(60));
        smol::future::or(
            async {
                Timer::after(sleep).await;
            },
            async {
                let _ = wake.recv().await;
            },
        )
        .await;
    }
}

pub async fn udp_loop<S: Shell>(s: Rc<S>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        match s.udp().recv_from(&mut buf).await {
            Ok((n, from)) => {
                let now = s.now();
                // Rejected packets are counted by the core (info shows them).
                let _ = s.node().handle_packet(now, from, &buf[..n]);
                s.flush();
            }
            Err(e) => {
                // ICMP errors surface here on Linux; not fatal.
                log::debug_msg(&format!("{}udp receive: {e}", s.log_prefix()));
                Timer::after(Duration::from_millis(10)).await;
            }
        }
    }
}

pub async fn tcp_loop<S: Shell>(s: Rc<S>, listener: Async<TcpListener>) {
    // A burst of joiners must not be turned away (each would wait a join
    // retry interval): beyond the limit, connections wait in the kernel's
    // accept backlog until a slot frees.
    let slots = std::sync::Arc::new(smol::lock::Semaphore::new(MAX_STREAMS));
    let room = Rc::new(Cell::new(STREAM_BUFFERS * s.max_stream_len()));
    loop {
        let slot = slots.acquire_arc().await;
        let (stream, from) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                log::warn(&format!("{}push-pull accept: {e}", s.log_prefix()));
                Timer::after(Duration::from_millis(200)).await;
                continue;
            }
        };
        let (c, room) = (s.clone(), room.clone());
        s.executor()
            .spawn(async move {
                let serve = serve_stream(&c, stream, from, &room);
                let _ = net::timeout(c.stream_timeout(), serve).await;
                drop(slot);
            })
            .detach();
    }
}

/// Bytes taken from the inbound streams' room, given back on drop (also
/// when the stream times out mid-read).
struct Taken<'a>(&'a Cell<usize>, usize);

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() + self.1);
    }
}

async fn serve_stream<S: Shell>(
    s: &Rc<S>,
    mut stream: Async<TcpStream>,
    from: SocketAddr,
    room: &Cell<usize>,
) {
    let len = match net::read_len(&mut stream, s.max_stream_len()).await {
        Ok(Some(len)) => len,
        Err(e @ FrameError::TooLarge { .. }) => return too_large(&**s, from, &e),
        _ => return,
    };
    let Some(left) = room.get().checked_sub(len) else {
        log::debug_msg(&format!(
            "{}push-pull from {from}: {len} bytes refused, other streams hold the room",
            s.log_prefix()
        ));
        return;
    };
    room.set(left);
    let _taken = Taken(room, len);
    let Ok(body) = net::read_body(&mut stream, len).await else {
        return;
    };
    let now = s.now();
    let reply = s.node().handle_stream(now, from, &body);
    s.flush();
    match reply {
        Ok(Some(reply)) => {
            let _ = net::write_frame(&mut stream, &reply).await;
        }
        Err(e @ g::InputError::Wire(g::WireError::TooLarge)) => too_large(&**s, from, &e),
        _ => {}
    }
}

/// A push-pull refused for its size: an honest microcloud that outgrew the
/// limit would otherwise stop exchanging state without a word.
fn too_large<S: Shell>(s: &S, peer: SocketAddr, e: &dyn std::fmt::Display) {
    log::warn(&format!(
        "{}push-pull with {peer} refused: {e}; if the microcloud has grown that \
         large, raise max_stream_len (list gossip 'max_stream_len=BYTES')",
        s.log_prefix()
    ));
}

/// How often at most the owner is told of members or services refused.
const REFUSAL_WARNING_EVERY: Duration = Duration::from_secs(60);

/// Tells the owner why members or services are missing: the core counts
/// names it refused for a full member table (`Stats::members_refused`) and
/// services refused for a full catalog (`Stats::services_refused`); this
/// warns on the first refusal and then at most once a minute, so a flood
/// of fakes cannot flood the log too.
#[derive(Default)]
pub struct Refusals {
    /// The counts (members, services) at the last warning, and when it was given.
    warned: Cell<(u64, u64)>,
    at: Cell<Option<g::Instant>>,
}

impl Refusals {
    /// Warns if refusals grew since the last warning and that was long enough ago.
    pub fn check<S: Shell>(&self, s: &S) {
        let now = s.now();
        let (members, services, cap) = {
            let node = s.node();
            let st = node.stats();
            (
                st.members_refused,
                st.services_refused,
                node.config().max_members,
            )
        };
        let due = self
            .at
            .get()
            .is_none_or(|t| now.saturating_since(t) >= REFUSAL_WARNING_EVERY);
        let (warned_members, warned_services) = self.warned.get();
        if (members <= warned_members && services <= warned_services) || !due {
            return;
        }
        if members > warned_members {
            log::warn(&format!(
                "{}member table full ({cap} members): {} new member(s) refused ({members} in all); \
                 if the microcloud has grown that large, raise max_members \
                 (list gossip 'max_members=N'), else someone is sending fake members",
                s.log_prefix(),
                members - warned_members
            ));
        }
        if services > warned_services {
            log::warn(&format!(
                "{}{} service record(s) refused ({services} in all): a node's catalog holds \
                 at most {} services; someone is sending fake services",
                s.log_prefix(),
                services - warned_services,
                g::MAX_SLOTS
            ));
        }
        self.warned.set((members, services));
        self.at.set(Some(now));
    }
}

/// Our side of a push-pull or stream probe: connect, send, read the reply,
/// feed it back.
pub async fn push_pull<S: Shell>(s: Rc<S>, to: SocketAddr, bytes: Vec<u8>) {
    let limit = s.max_stream_len();
    let exchange = async {
        let mut c = Async::<TcpStream>::connect(to).await.ok()?;
        net::write_frame(&mut c, &bytes).await.ok()?;
        Some(net::read_frame(&mut c, limit).await)
    };
    match net::timeout(s.stream_timeout(), exchange).await {
        Some(Some(Ok(Some(reply)))) => {
            let now = s.now();
            let r = s.node().handle_stream(now, to, &reply);
            s.flush();
            if let Err(e @ g::InputError::Wire(g::WireError::TooLarge)) = r {
                too_large(&*s, to, &e);
            }
        }
        Some(Some(Err(e @ FrameError::TooLarge { .. }))) => too_large(&*s, to, &e),
        _ => {}
    }
}
