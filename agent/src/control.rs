//! The control socket server: one request per connection from the CLI or the
//! page, answered from the running agent's state.
//!
//! Every connection is untrusted input even though the socket is 0600: a
//! frame over [`MAX_REQUEST`] is refused from its length prefix before
//! anything is allocated; a connection that closes mid-frame, sends bytes
//! that are not a request, or stays silent past [`REQUEST_TIMEOUT`] gets a
//! [`Response::Error`] (when the peer still reads) and is closed; at most
//! `MAX_CONTROL_CONNS` are served at once. None of it can stop the agent.

use std::os::unix::net::{UnixListener, UnixStream};
use std::rc::Rc;
use std::time::Duration;

use nuvol_control::frame::{self, FrameError, MAX_REQUEST};
use nuvol_control::*;
use nuvol_gossip as g;
use smol::io::AsyncReadExt;
use smol::{Async, Timer};

use crate::daemon::Ctx;
use crate::services::{AppRequest, LocalRequest, ServiceRequest};
use crate::views::{member_view, search_view, service_view};
use crate::{log, net, services};

/// How long a client may take to send its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CONNS: usize = 32;

pub async fn accept_loop(ctx: Rc<Ctx>, listener: Async<UnixListener>) {
    let active = Rc::new(std::cell::Cell::new(0usize));
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                log::warn(&format!("control accept: {e}"));
                Timer::after(Duration::from_millis(200)).await;
                continue;
            }
        };
        let c = ctx.clone();
        let active = active.clone();
        ctx.host
            .ex
            .spawn(async move {
                let busy = active.get() >= MAX_CONNS;
                if !busy {
                    active.set(active.get() + 1);
                }
                serve(&c, stream, busy).await;
                if !busy {
                    active.set(active.get() - 1);
                }
            })
            .detach();
    }
}

fn error(message: impl Into<String>) -> Response {
    Response::Error {
        message: message.into(),
    }
}

async fn reply(stream: &mut Async<UnixStream>, resp: &Response) {
    let Ok(bytes) = frame::encode(resp) else {
        return;
    };
    let _ = net::timeout(crate::control::REQUEST_TIMEOUT, async {
        use smol::io::AsyncWriteExt;
        let _ = stream.write_all(&bytes).await;
        let _ = stream.flush().await;
    })
    .await;
}

/// Serves one connection. Every answer, refusals included, goes out through
/// the one `reply` below: each await of it would be another copy of the
/// write-with-timeout state machine in the binary.
async fn serve(ctx: &Rc<Ctx>, mut stream: Async<UnixStream>, busy: bool) {
    let resp = if busy {
        error("agent busy: too many control connections")
    } else {
        let body = net::timeout(REQUEST_TIMEOUT, net::read_frame(&mut stream, MAX_REQUEST)).await;
        match incoming(body) {
            Incoming::Request(Request::Monitor) => match monitor(ctx, &mut stream).await {
                Some(refused) => refused,
                None => return,
            },
            Incoming::Request(req) => dispatch(ctx, req).await,
            Incoming::Refused(refused) => refused,
            Incoming::Closed => return,
        }
    };
    reply(&mut stream, &resp).await;
}

/// What a connection sent.
enum Incoming {
    Request(Request),
    /// Not a request: the answer that says why.
    Refused(Response),
    /// Closed before sending anything: nothing to answer.
    Closed,
}

/// Reads the frame read within [`REQUEST_TIMEOUT`] (`None`: it was not).
fn incoming(body: Option<Result<Option<Vec<u8>>, FrameError>>) -> Incoming {
    let refused = |message: String| Incoming::Refused(error(message));
    let body = match body {
        None => return refused("no complete request within 5 s".into()),
        Some(Ok(None)) => return Incoming::Closed,
        Some(Ok(Some(b))) => b,
        Some(Err(FrameError::TooLarge { announced, limit })) => {
            return refused(format!(
                "request of {announced} bytes is over the {limit}-byte limit"
            ))
        }
        Some(Err(FrameError::Truncated)) => {
            return refused("truncated request: connection closed mid-frame".into())
        }
        Some(Err(e)) => return refused(format!("bad request: {e}")),
    };
    match frame::decode(&body) {
        Ok(r) => Incoming::Request(r),
        Err(e) => refused(format!("not a nuvol request ({e})")),
    }
}

/// Streams changes until the client hangs up (or falls too far behind);
/// the refusal to send when it cannot watch the socket.
async fn monitor(ctx: &Rc<Ctx>, stream: &mut Async<UnixStream>) -> Option<Response> {
    // A second handle on the socket watches for the hang-up while the first
    // writes changes.
    let mut watch = match stream.get_ref().try_clone().and_then(Async::new) {
        Ok(w) => w,
        Err(e) => return Some(error(format!("cannot monitor: {e}"))),
    };
    let changes = ctx.add_monitor();
    let mut b = [0u8; 1];
    loop {
        let next = smol::future::or(async { changes.recv().await.ok() }, async {
            // Any read result means the client is gone (or talking out of turn).
            let _ = watch.read(&mut b).await;
            None
        })
        .await;
        let change = next?;
        let Ok(bytes) = frame::encode(&Response::Change(change)) else {
            return None;
        };
        use smol::io::AsyncWriteExt;
        let ok = net::timeout(REQUEST_TIMEOUT, stream.write_all(&bytes)).await;
        if !matches!(ok, Some(Ok(()))) {
            return None;
        }
    }
}

/// Answers one request.
pub async fn dispatch(ctx: &Rc<Ctx>, req: Request) -> Response {
    let now = ctx.now();
    match req {
        Request::Info => info(ctx),
        Request::Members => {
            let node = ctx.host.node_ref();
            Response::Members(node.members().map(|m| member_view(&node, m, now)).collect())
        }
        Request::Services => {
            let node = ctx.host.node_ref();
            let me = node.name().to_string();
            Response::Services(
                node.own_records()
                    .iter()
                    .map(|r| service_view(&node, &me, r))
                    .collect(),
            )
        }
        Request::Publish(spec) => {
            let r = publish(ctx, spec);
            ctx.persist_state();
            ctx.flush();
            r
        }
        Request::Unpublish { service_type, port } => {
            let removed = ctx.host.node().unpublish(now, &service_type, port);
            ctx.persist_state();
            ctx.flush();
            if removed {
                Response::Ok
            } else {
                error(format!(
                    "this node publishes no {service_type} on port {port}"
                ))
            }
        }
        Request::Search {
            service_type,
            scope,
        } => search(ctx, service_type, scope).await,
        Request::Rtt { node } => {
            let core = ctx.host.node_ref();
            if core.member(&node).is_none() {
                return error(format!("no member named '{node}'"));
            }
            Response::Rtt {
                rtt_us: core.rtt_to(&node).map(|d| d.as_micros() as u64),
                node,
            }
        }
        Request::Event { name, payload } => {
            if name.is_empty() {
                return error("an event needs a name");
            }
            let r = ctx.host.node().fire_event(&name, &payload);
            ctx.flush();
            match r {
                Ok(()) => Response::Ok,
                Err(e) => error(format!("event not sent: {e}")),
            }
        }
        Request::Query(spec) => {
            if spec.name.is_empty() {
                return error("a query needs a name");
            }
            let wait = Duration::from_millis(u64::from(spec.timeout_ms)) + Duration::from_secs(2);
            let (id, done) = match ctx.start_query(spec) {
                Ok(x) => x,
                Err(e) => return error(format!("query not sent: {e}")),
            };
            let _ = net::timeout(wait, done.recv()).await;
            Response::QueryResponses(ctx.finish_query(id))
        }
        Request::Join { addrs } => join(ctx, addrs).await,
        Request::Leave => {
            ctx.host.node().leave(now);
            ctx.flush();
            Response::Ok
        }
        Request::Keys(cmd) => keys(ctx, cmd),
        Request::Monitor => error("monitor is a stream; it is handled before dispatch"),
        Request::ServiceList => local(ctx, LocalRequest::Service(ServiceRequest::List)).await,
        Request::ServiceStatus { name } => {
            local(ctx, LocalRequest::Service(ServiceRequest::Status { name })).await
        }
        Request::ServiceControl { name, action } => {
            let req = ServiceRequest::Control { name, action };
            local(ctx, LocalRequest::Service(req)).await
        }
        Request::ServiceLogs { name, lines } => {
            let req = ServiceRequest::Logs { name, lines };
            local(ctx, LocalRequest::Service(req)).await
        }
        Request::AppTemplates => local(ctx, LocalRequest::App(AppRequest::Templates)).await,
        Request::AppList => local(ctx, LocalRequest::App(AppRequest::List)).await,
        Request::AppInstall { template, name } => {
            let req = AppRequest::Install { template, name };
            local(ctx, LocalRequest::App(req)).await
        }
        Request::AppControl { name, action } => {
            let req = AppRequest::Control { name, action };
            local(ctx, LocalRequest::App(req)).await
        }
        Request::AppStatus { name } => {
            local(ctx, LocalRequest::App(AppRequest::Status { name })).await
        }
    }
}

/// A `service …` or `app …` request, answered by the supervisor or the
/// app facade; an install or uninstall changes what is supervised.
async fn local(ctx: &Rc<Ctx>, req: LocalRequest) -> Response {
    let reapply = req.changes_apps();
    let handles = ctx.st.borrow().services.handles();
    let resp = services::answer(handles, req).await;
    if reapply {
        ctx.st.borrow().services.apply();
    }
    resp
}

/// A search: this node's catalog; for the global scope also what the
/// microcloud's super nodes know of other microclouds (see `federation`).
async fn search(ctx: &Rc<Ctx>, service_type: Option<String>, scope: Scope) -> Response {
    use crate::federation::{self, QUERY_TIMEOUT_MS, SUPER_TAG};
    let global = matches!(scope, Scope::Global);
    let (local, own) = {
        let st = ctx.st.borrow();
        let filter = g::SearchFilter {
            service_type: service_type.clone(),
            microcloud: (!global).then(|| st.cfg.microcloud.clone()),
        };
        let found = ctx.host.node_ref().search(&filter);
        let local: Vec<ServiceView> = found.iter().map(search_view).collect();
        (local, st.cfg.microcloud.clone())
    };
    if !global {
        return Response::Services(local);
    }
    let Some((id, done)) = ctx.start_federated_search(service_type) else {
        return Response::Services(local);
    };
    let wait = Duration::from_millis(QUERY_TIMEOUT_MS + 500);
    let _ = net::timeout(wait, done.recv()).await;
    let answers = ctx.finish_query(id);
    let node = ctx.host.node_ref();
    // Only members that are super nodes may answer for other microclouds.
    let decoded = answers
        .into_iter()
        .filter(|a| {
            node.member(&a.node)
                .is_some_and(|m| m.tag(SUPER_TAG.0) == Some(SUPER_TAG.1))
        })
        .filter_map(|a| federation::decode_answer(&a.payload).ok())
        .collect();
    Response::Services(federation::merge(local, decoded, &own))
}

fn info(ctx: &Rc<Ctx>) -> Response {
    let st = ctx.st.borrow();
    let n = ctx.host.node_ref();
    let alive = n
        .members()
        .filter(|m| m.state == g::MemberState::Alive)
        .count();
    Response::Info(NodeInfo {
        name: st.cfg.name.clone(),
        microcloud: st.cfg.microcloud.clone(),
        board: st.meta.board.clone(),
        arch: st.meta.arch.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        addr: st.advertise.to_string(),
        uptime_s: crate::metadata::Metadata::read(&st.cfg.state_dir).uptime_s,
        mem_total_kb: st.meta.mem_total_kb,
        mem_free_kb: st.meta.mem_free_kb,
        load_x100: st.meta.load_x100,
        members_alive: alive as u32,
        members_total: n.members().count() as u32,
        keys_installed: n.keyring().keys().len() as u32,
        encrypted: n.keyring().is_encrypted(),
        health_score: n.health_score(),
        incarnation: n.incarnation(),
        agent_rss_kb: crate::metadata::rss_kb(),
        packets_rejected: n.stats().packets_rejected,
        members_refused: Some(n.stats().members_refused),
        services_refused: Some(n.stats().services_refused),
        max_members: Some(u32::try_from(n.config().max_members).unwrap_or(u32::MAX)),
        packets_malformed: Some(n.stats().packets_malformed),
    })
}

fn publish(ctx: &Rc<Ctx>, spec: PublishSpec) -> Response {
    if spec.service_type.is_empty() || spec.port == 0 {
        return error("a service needs a type and a port (1-65535)");
    }
    let st = ctx.st.borrow();
    let record = g::ServiceRecord {
        service_type: spec.service_type,
        description: spec.description,
        host: String::new(),
        ip: st.advertise.ip().to_string(),
        port: spec.port,
        microcloud: st.cfg.microcloud.clone(),
        txt: spec.txt,
        health: g::Health::Unknown,
    };
    match ctx.host.node().publish(record) {
        Ok(()) => Response::Ok,
        Err(e) => error(format!("not published: {e}")),
    }
}

async fn join(ctx: &Rc<Ctx>, addrs: Vec<String>) -> Response {
    if addrs.is_empty() {
        return error("join needs at least one address");
    }
    let checked: Result<Vec<String>, String> = addrs
        .iter()
        .map(|a| crate::config::check_host_port(a))
        .collect();
    let addrs = match checked {
        Ok(a) => a,
        Err(e) => return error(e),
    };
    let local = match ctx.host.udp().get_ref().local_addr() {
        Ok(a) => a,
        Err(e) => return error(format!("gossip socket: {e}")),
    };
    let resolved = crate::net::resolve(addrs, local).await;
    let bad: Vec<&str> = resolved
        .iter()
        .filter(|(_, r)| r.is_none())
        .map(|(a, _)| a.as_str())
        .collect();
    if !bad.is_empty() {
        return error(format!("cannot resolve {}", bad.join(", ")));
    }
    let ok: Vec<_> = resolved.iter().filter_map(|(_, r)| *r).collect();
    let now = ctx.now();
    ctx.host.node().join(now, &ok);
    ctx.flush();
    Response::Ok
}

fn keys(ctx: &Rc<Ctx>, cmd: KeyCommand) -> Response {
    let parse = |k: &str| g::Key::from_base64(k.trim()).map_err(|e| format!("bad key: {e}"));
    let r = match cmd {
        KeyCommand::Generate => {
            let mut bytes = [0u8; 32];
            return match getrandom::getrandom(&mut bytes) {
                Ok(()) => Response::Key(g::Key::from_bytes(bytes).to_base64()),
                Err(e) => error(format!("no randomness: {e}")),
            };
        }
        KeyCommand::List => {
            return Response::Keys(
                ctx.host
                    .node_ref()
                    .keyring()
                    .keys()
                    .iter()
                    .enumerate()
                    .map(|(i, k)| KeyView {
                        fingerprint: k.fingerprint(),
                        primary: i == 0,
                    })
                    .collect(),
            );
        }
        KeyCommand::Install(k) => match parse(&k) {
            Ok(key) => {
                ctx.host.node().keyring_mut().install(key);
                Ok(())
            }
            Err(e) => return error(e),
        },
        KeyCommand::Use(k) => match parse(&k) {
            Ok(key) => ctx.host.node().keyring_mut().use_key(&key),
            Err(e) => return error(e),
        },
        KeyCommand::Remove(k) => match parse(&k) {
            Ok(key) => ctx.host.node().keyring_mut().remove(&key),
            Err(e) => return error(e),
        },
    };
    match r {
        Ok(()) => {
            ctx.save_keyring();
            Response::Ok
        }
        Err(e) => error(e.to_string()),
    }
}
