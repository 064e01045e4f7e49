//! What the agent does about one event of its LAN gossip node, worked out
//! without doing it: the log line, the change monitors get, the handler
//! scripts to run and with what stdin, and the query step (an answer to
//! give, an answer collected, a query finished). [`react`] is a pure
//! function of the event and the node's state; `crate::daemon` carries the
//! reaction out. [`pool_log`] is the federation pool node's one reaction.

use nuvol_control::{ChangeView, QueryAnswer};
use nuvol_gossip as g;

use crate::views::{member_view, service_line, service_view};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
}

/// Handler scripts to run for one event: kind, user event / query name,
/// extra `SERF_*` variables, stdin.
#[derive(Debug, PartialEq, Eq)]
pub struct HandlerCall {
    pub kind: &'static str,
    pub name: Option<String>,
    pub extra: Vec<(&'static str, String)>,
    pub stdin: Vec<u8>,
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

/// What a query event asks of the agent.
#[derive(Debug)]
pub enum QueryStep {
    /// A federation query: a super node answers from its pool; any other
    /// node (one that matched a forged tag filter) stays silent.
    AnswerFederation { id: g::QueryId, payload: Vec<u8> },
    /// Another query: the first query handler for `name` answers, if any.
    AnswerWithHandler {
        id: g::QueryId,
        name: String,
        origin: String,
        payload: Vec<u8>,
    },
    /// An answer to a query this node asked.
    Collect { id: u64, answer: QueryAnswer },
    /// A query this node asked timed out.
    Done { id: u64 },
}

#[derive(Debug, Default)]
pub struct Reaction {
    pub log: Option<(Level, String)>,
    /// For every monitor.
    pub change: Option<ChangeView>,
    pub handler: Option<HandlerCall>,
    pub query: Option<QueryStep>,
}

/// A member's line on a handler script's stdin: name, address, role, tags.
fn member_line(node: &g::Node, name: &str) -> Vec<u8> {
    match node.member(name) {
        Some(m) => {
            let tags: Vec<String> = m.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
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
}

/// The agent's reaction to `ev` of its LAN node `node`, at `now`.
pub fn react(node: &g::Node, now: g::Instant, ev: g::Event) -> Reaction {
    let mut r = Reaction::default();
    let member_change = |name: &str| {
        node.member(name)
            .map(|m| ChangeView::Member(member_view(node, m, now)))
    };
    let info = |m: String| Some((Level::Info, m));
    match ev {
        g::Event::MemberUp { name, addr } => {
            r.log = info(format!("member {name} joined from {addr}"));
            r.change = member_change(&name);
            r.handler = HandlerCall::member("member-join", member_line(node, &name));
        }
        g::Event::MemberSuspect { name, .. } => {
            r.log = info(format!("member {name} is suspect"));
            r.change = member_change(&name);
        }
        g::Event::MemberAlive { name, .. } => {
            r.log = info(format!("member {name} refuted suspicion"));
            r.change = member_change(&name);
        }
        g::Event::MemberFailed { name } => {
            r.log = Some((Level::Warn, format!("member {name} failed")));
            r.change = member_change(&name);
            r.handler = HandlerCall::member("member-failed", member_line(node, &name));
        }
        g::Event::MemberLeft { name } => {
            r.log = info(format!("member {name} left"));
            r.change = member_change(&name);
            r.handler = HandlerCall::member("member-leave", member_line(node, &name));
        }
        g::Event::MemberUpdated { name } => {
            r.change = member_change(&name);
            r.handler = HandlerCall::member("member-update", member_line(node, &name));
        }
        g::Event::MemberReaped { name } => {
            r.handler = HandlerCall::member("member-reap", format!("{name}\t\t\t\n").into_bytes());
        }
        g::Event::NameConflict { name, addr } => {
            r.log = Some((
                Level::Warn,
                format!(
                    "another node at {addr} claims this node's name {name}; give each node a unique --name"
                ),
            ))
        }
        g::Event::Refuted { incarnation } => {
            r.log = info(format!(
                "refuted a rumour of this node's failure (incarnation {incarnation})"
            ));
        }
        g::Event::ServiceUp { node: from, record }
        | g::Event::ServiceChanged { node: from, record } => {
            let view = service_view(node, &from, &record);
            r.handler = HandlerCall::member("service-up", service_line(&view).into_bytes());
            r.change = Some(ChangeView::ServiceUp(view));
        }
        g::Event::ServiceDown { node: from, record } => {
            let view = service_view(node, &from, &record);
            r.handler = HandlerCall::member("service-down", service_line(&view).into_bytes());
            r.change = Some(ChangeView::ServiceDown(view));
        }
        g::Event::UserEvent {
            origin,
            name,
            payload,
            lamport,
        } => {
            r.handler = Some(HandlerCall {
                kind: "user",
                name: Some(name.clone()),
                extra: vec![
                    ("USER_EVENT", name.clone()),
                    ("USER_LTIME", lamport.to_string()),
                ],
                stdin: payload.clone(),
            });
            r.change = Some(ChangeView::Event {
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
            r.query = Some(if name == crate::federation::QUERY {
                QueryStep::AnswerFederation { id, payload }
            } else {
                QueryStep::AnswerWithHandler {
                    id,
                    name,
                    origin,
                    payload,
                }
            });
        }
        g::Event::QueryResponse { id, from, payload } => {
            r.query = Some(QueryStep::Collect {
                id: id.0,
                answer: QueryAnswer {
                    node: from,
                    payload,
                },
            });
        }
        g::Event::QueryDone { id } => r.query = Some(QueryStep::Done { id: id.0 }),
        _ => {}
    }
    r
}

/// The federation pool node's log line for `ev`: membership news of super
/// nodes. Service news is read by the pool's search when a member asks;
/// queries and user events are not used in the pool.
#[cfg(any(feature = "heavy", test))]
pub fn pool_log(ev: &g::Event) -> Option<(Level, String)> {
    match ev {
        g::Event::MemberUp { name, addr } => Some((
            Level::Info,
            format!("federation: super node {name} joined from {addr}"),
        )),
        g::Event::MemberFailed { name } => {
            Some((Level::Warn, format!("federation: super node {name} failed")))
        }
        g::Event::MemberLeft { name } => {
            Some((Level::Info, format!("federation: super node {name} left")))
        }
        g::Event::NameConflict { name, addr } => Some((
            Level::Warn,
            format!("federation: another super node at {addr} claims this pool name {name}"),
        )),
        _ => None,
    }
}

/// Writes a reaction's log line.
pub fn write_log(line: Option<(Level, String)>) {
    match line {
        Some((Level::Info, m)) => crate::log::info(&m),
        Some((Level::Warn, m)) => crate::log::warn(&m),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn node() -> g::Node {
        let addr: SocketAddr = "127.0.0.1:7946".parse().unwrap();
        g::Node::new(
            g::Identity::new("me", addr),
            g::Config::lan(),
            g::Keyring::plaintext(),
            0xF0CA,
        )
    }

    #[test]
    fn failed_member_is_logged_as_a_warning_and_runs_member_failed_handlers() {
        let n = node();
        let r = react(
            &n,
            g::Instant::from_millis(0),
            g::Event::MemberFailed { name: "b".into() },
        );
        assert_eq!(r.log, Some((Level::Warn, "member b failed".into())));
        // An unknown member has no view for monitors but still a stdin line.
        assert!(r.change.is_none());
        let h = r.handler.expect("member-failed handlers");
        assert_eq!(h.kind, "member-failed");
        assert_eq!(h.stdin, b"b\t\t\t\n");
        assert!(r.query.is_none());
    }

    #[test]
    fn known_member_change_reaches_monitors_with_its_view() {
        let n = node();
        let r = react(
            &n,
            g::Instant::from_millis(0),
            g::Event::MemberUpdated { name: "me".into() },
        );
        assert!(r.log.is_none());
        match r.change {
            Some(ChangeView::Member(m)) => assert_eq!(m.name, "me"),
            other => panic!("expected a member change, got {other:?}"),
        }
        let h = r.handler.expect("member-update handlers");
        assert!(h.stdin.starts_with(b"me\t127.0.0.1\t"), "{:?}", h.stdin);
    }

    #[test]
    fn user_event_goes_to_monitors_and_named_user_handlers() {
        let n = node();
        let ev = g::Event::UserEvent {
            origin: "b".into(),
            name: "deploy".into(),
            payload: b"v2".to_vec(),
            lamport: 9,
        };
        let r = react(&n, g::Instant::from_millis(0), ev);
        let h = r.handler.expect("user handlers");
        assert_eq!((h.kind, h.name.as_deref()), ("user", Some("deploy")));
        assert_eq!(
            h.extra,
            vec![("USER_EVENT", "deploy".into()), ("USER_LTIME", "9".into())]
        );
        assert_eq!(h.stdin, b"v2");
        assert!(matches!(
            r.change,
            Some(ChangeView::Event { lamport: 9, .. })
        ));
    }

    #[test]
    fn federation_query_is_answered_from_the_pool_not_by_handlers() {
        let n = node();
        let ev = g::Event::QueryRequest {
            id: g::QueryId(3),
            origin: "b".into(),
            name: crate::federation::QUERY.into(),
            payload: b"web".to_vec(),
        };
        let r = react(&n, g::Instant::from_millis(0), ev);
        assert!(r.handler.is_none() && r.change.is_none() && r.log.is_none());
        assert!(matches!(
            r.query,
            Some(QueryStep::AnswerFederation { id: g::QueryId(3), ref payload }) if payload == b"web"
        ));
        let ev = g::Event::QueryRequest {
            id: g::QueryId(4),
            origin: "b".into(),
            name: "uptime".into(),
            payload: Vec::new(),
        };
        let r = react(&n, g::Instant::from_millis(0), ev);
        assert!(
            matches!(r.query, Some(QueryStep::AnswerWithHandler { ref name, .. }) if name == "uptime")
        );
    }

    #[test]
    fn query_answers_and_timeouts_go_to_the_query_bookkeeping() {
        let n = node();
        let ev = g::Event::QueryResponse {
            id: g::QueryId(5),
            from: "b".into(),
            payload: b"up".to_vec(),
        };
        let r = react(&n, g::Instant::from_millis(0), ev);
        assert!(
            matches!(r.query, Some(QueryStep::Collect { id: 5, ref answer }) if answer.node == "b")
        );
        let r = react(
            &n,
            g::Instant::from_millis(0),
            g::Event::QueryDone { id: g::QueryId(5) },
        );
        assert!(matches!(r.query, Some(QueryStep::Done { id: 5 })));
    }

    #[test]
    fn pool_logs_only_super_node_membership() {
        let ev = g::Event::MemberFailed {
            name: "mc/b".into(),
        };
        assert_eq!(
            pool_log(&ev),
            Some((Level::Warn, "federation: super node mc/b failed".into()))
        );
        assert_eq!(pool_log(&g::Event::QueryDone { id: g::QueryId(1) }), None);
    }
}
