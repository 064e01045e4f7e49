//! The IO loops around one gossip host ([`crate::host::GossipHost`]): its
//! datagrams, push-pull and stream-probe connections both ways, and its
//! timers. The agent's LAN node and a super node's federation pool node run
//! the same loops through [`Shell`], which says what the owner does with the
//! node's events; the core decides everything, these only move bytes and
//! time.

use std::cell::Cell;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::time::Duration;

use nuvol_control::frame::FrameError;
use nuvol_gossip as g;
use smol::channel::Receiver;
use smol::{Async, Timer};

use crate::host::GossipHost;
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

/// What the loops need from the owner of a gossip host.
pub trait Shell: 'static {
    fn host(&self) -> &GossipHost;
    /// Sends what the node queued, acts on its events, wakes the timer
    /// loop: [`flush`] with the owner's reaction to each event.
    fn flush(self: &Rc<Self>);
    /// An exit code once the owner is shutting down: the timer loop ends.
    fn exit_code(&self) -> Option<i32> {
        None
    }
}

/// Sends what the node queued and hands each of its events to `on_event`
/// until both are drained, then warns of refusals and wakes the timer loop.
pub fn flush<S: Shell>(s: &Rc<S>, mut on_event: impl FnMut(g::Event)) {
    // Events can cause sends (query answers) and vice versa; a few passes
    // settle it, and the bound keeps a misbehaving core from spinning us.
    for _ in 0..8 {
        let mut idle = !send_queued(s);
        loop {
            let ev = s.host().node().poll_event();
            let Some(ev) = ev else { break };
            idle = false;
            on_event(ev);
        }
        if idle {
            break;
        }
    }
    s.host().check_refusals();
    s.host().wake();
}

/// Sends every datagram the node queued and starts every stream it asked
/// for; false if there was nothing to send.
pub fn send_queued<S: Shell>(s: &Rc<S>) -> bool {
    let mut sent = false;
    loop {
        let t = s.host().node().poll_transmit();
        match t {
            None => return sent,
            Some(g::Transmit::Packet { to, bytes }) => {
                // Non-blocking: a full socket buffer drops the datagram,
                // which SWIM tolerates like any loss.
                let _ = s.host().udp().get_ref().send_to(&bytes, to);
            }
            Some(g::Transmit::Stream { to, bytes }) => {
                s.host().ex.spawn(push_pull(s.clone(), to, bytes)).detach();
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
        let local = match s.host().udp().get_ref().local_addr() {
            Ok(a) => a,
            Err(e) => {
                log::warn(&format!(
                    "{}cannot join: gossip socket: {e}",
                    s.host().log_prefix
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
            let now = s.host().now();
            s.host().node().join(now, &ok);
            s.flush();
        }
        for a in &pending {
            log::warn(&format!(
                "{}cannot resolve join address {a}; retrying",
                s.host().log_prefix
            ));
        }
        Timer::after(Duration::from_secs(30)).await;
        if s.host().node().num_live() > 1 {
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
        let deadline = s.host().node().poll_timeout();
        let now = s.host().now();
        if let Some(d) = deadline {
            if d <= now {
                s.host().node().handle_timeout(now);
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
        match s.host().udp().recv_from(&mut buf).await {
            Ok((n, from)) => {
                let now = s.host().now();
                // Rejected packets are counted by the core (info shows them).
                let _ = s.host().node().handle_packet(now, from, &buf[..n]);
                s.flush();
            }
            Err(e) => {
                // ICMP errors surface here on Linux; not fatal.
                log::debug_msg(&format!("{}udp receive: {e}", s.host().log_prefix));
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
    let room = Rc::new(Cell::new(STREAM_BUFFERS * s.host().max_stream_len()));
    loop {
        let slot = slots.acquire_arc().await;
        let (stream, from) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                log::warn(&format!("{}push-pull accept: {e}", s.host().log_prefix));
                Timer::after(Duration::from_millis(200)).await;
                continue;
            }
        };
        let (c, room) = (s.clone(), room.clone());
        s.host()
            .ex
            .spawn(async move {
                let serve = serve_stream(&c, stream, from, &room);
                let _ = net::timeout(c.host().stream_timeout, serve).await;
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
    let len = match net::read_len(&mut stream, s.host().max_stream_len()).await {
        Ok(Some(len)) => len,
        Err(e @ FrameError::TooLarge { .. }) => return too_large(&**s, from, &e),
        _ => return,
    };
    let Some(left) = room.get().checked_sub(len) else {
        log::debug_msg(&format!(
            "{}push-pull from {from}: {len} bytes refused, other streams hold the room",
            s.host().log_prefix
        ));
        return;
    };
    room.set(left);
    let _taken = Taken(room, len);
    let Ok(body) = net::read_body(&mut stream, len).await else {
        return;
    };
    let now = s.host().now();
    let reply = s.host().node().handle_stream(now, from, &body);
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
        s.host().log_prefix
    ));
}

/// Our side of a push-pull or stream probe: connect, send, read the reply,
/// feed it back.
pub async fn push_pull<S: Shell>(s: Rc<S>, to: SocketAddr, bytes: Vec<u8>) {
    let limit = s.host().max_stream_len();
    let exchange = async {
        let mut c = Async::<TcpStream>::connect(to).await.ok()?;
        net::write_frame(&mut c, &bytes).await.ok()?;
        Some(net::read_frame(&mut c, limit).await)
    };
    match net::timeout(s.host().stream_timeout, exchange).await {
        Some(Some(Ok(Some(reply)))) => {
            let now = s.host().now();
            let r = s.host().node().handle_stream(now, to, &reply);
            s.flush();
            if let Err(e @ g::InputError::Wire(g::WireError::TooLarge)) = r {
                too_large(&*s, to, &e);
            }
        }
        Some(Some(Err(e @ FrameError::TooLarge { .. }))) => too_large(&*s, to, &e),
        _ => {}
    }
}
