//! User events and queries: firing and delivering events once each, asking
//! queries, answering them and collecting responses until the deadline.

use super::*;

/// Parameters of [`Node::query`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryParams {
    pub name: String,
    pub payload: Vec<u8>,
    /// Only these nodes answer (all when empty).
    pub nodes: Vec<String>,
    /// Only nodes whose tags match every pair answer.
    pub tags: Vec<(String, String)>,
    pub timeout: Duration,
}

pub(super) struct OutQuery {
    pub(super) deadline: Instant,
    pub(super) responders: Vec<String>,
}

pub(super) struct InQuery {
    pub(super) origin: String,
    pub(super) origin_addr: SocketAddr,
    pub(super) id: u32,
    pub(super) deadline: Instant,
}

impl Node {
    /// Fire a user event to every member (also delivered here as an event).
    pub fn fire_event(&mut self, name: &str, payload: &[u8]) -> Result<(), OpError> {
        if self.left {
            return Err(OpError::Left);
        }
        let lamport = self.event_clock;
        let msg = Message::UserEvent {
            lamport,
            origin: self.me.clone(),
            name: String::from(name),
            payload: payload.to_vec(),
        };
        let enc = wire::encode_message(&msg);
        if enc.len() > self.payload_budget() {
            return Err(OpError::TooLarge);
        }
        wire::fits_bounds(&enc).map_err(OpError::OutOfBounds)?;
        self.event_clock = self.event_clock.saturating_add(1);
        self.seen_events
            .insert((lamport, self.me.clone(), String::from(name)), ());
        self.broadcasts.push(
            Subject::Event(lamport, self.me.clone(), String::from(name)),
            enc,
        );
        self.events.push_back(Event::UserEvent {
            origin: self.me.clone(),
            name: String::from(name),
            payload: payload.to_vec(),
            lamport,
        });
        Ok(())
    }

    /// Ask matching members; answers arrive as [`Event::QueryResponse`]
    /// until [`Event::QueryDone`]. This node answers too if it matches.
    pub fn query(&mut self, now: Instant, params: QueryParams) -> Result<QueryId, OpError> {
        if self.left {
            return Err(OpError::Left);
        }
        let id = self.next_query_id;
        let lamport = self.query_clock;
        let timeout = params.timeout.min(self.config.max_query_timeout);
        let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        let msg = Message::Query {
            id,
            lamport,
            origin: self.me.clone(),
            origin_addr: self.addr,
            name: params.name,
            payload: params.payload,
            nodes: params.nodes,
            tags: params.tags,
            timeout_ms,
        };
        let enc = wire::encode_message(&msg);
        if enc.len() > self.payload_budget() {
            return Err(OpError::TooLarge);
        }
        wire::fits_bounds(&enc).map_err(OpError::OutOfBounds)?;
        self.next_query_id = self.next_query_id.wrapping_add(1).max(1);
        self.query_clock = self.query_clock.saturating_add(1);
        self.out_queries.insert(
            id,
            OutQuery {
                deadline: now + timeout,
                responders: Vec::new(),
            },
        );
        self.broadcasts
            .push(Subject::Query(self.me.clone(), id), enc);
        self.on_query(now, msg);
        Ok(QueryId(u64::from(id)))
    }

    /// Answer a [`Event::QueryRequest`] (once, before its timeout).
    pub fn respond(&mut self, now: Instant, id: QueryId, payload: &[u8]) -> Result<(), OpError> {
        let q = self.in_queries.get(&id.0).ok_or(OpError::UnknownQuery)?;
        if now >= q.deadline {
            self.in_queries.remove(&id.0);
            return Err(OpError::UnknownQuery);
        }
        let msg = Message::QueryResponse {
            id: q.id,
            from: self.me.clone(),
            payload: payload.to_vec(),
        };
        let enc = wire::encode_message(&msg);
        if enc.len() > self.payload_budget() {
            return Err(OpError::TooLarge);
        }
        wire::fits_bounds(&enc).map_err(OpError::OutOfBounds)?;
        let (origin, addr) = (q.origin.clone(), q.origin_addr);
        self.in_queries.remove(&id.0);
        if origin == self.me {
            self.handle_message(now, addr, msg);
        } else {
            self.send(addr, alloc::vec![enc]);
        }
        Ok(())
    }

    pub(super) fn on_user_event(
        &mut self,
        lamport: u64,
        origin: String,
        name: String,
        payload: Vec<u8>,
    ) {
        if !wire::believable(self.event_clock, lamport) {
            // A forged clock near u64::MAX would stop every later event
            // (they would all be older than it): refused.
            self.stats.jumps_refused += 1;
            return;
        }
        self.event_clock = self.event_clock.max(lamport.saturating_add(1));
        if lamport.saturating_add(self.config.event_buffer) < self.event_clock {
            return;
        }
        if self
            .seen_events
            .insert((lamport, origin.clone(), name.clone()), ())
            .is_some()
        {
            return;
        }
        let msg = Message::UserEvent {
            lamport,
            origin: origin.clone(),
            name: name.clone(),
            payload: payload.clone(),
        };
        self.broadcasts.push(
            Subject::Event(lamport, origin.clone(), name.clone()),
            wire::encode_message(&msg),
        );
        self.events.push_back(Event::UserEvent {
            origin,
            name,
            payload,
            lamport,
        });
    }

    pub(super) fn on_query(&mut self, now: Instant, msg: Message) {
        let Message::Query {
            id,
            lamport,
            ref origin,
            origin_addr,
            ref name,
            ref payload,
            ref nodes,
            ref tags,
            timeout_ms,
        } = msg
        else {
            return;
        };
        if !wire::believable(self.query_clock, lamport) {
            self.stats.jumps_refused += 1;
            return;
        }
        self.query_clock = self.query_clock.max(lamport.saturating_add(1));
        if lamport.saturating_add(self.config.event_buffer) < self.query_clock {
            return;
        }
        let mine = *origin == self.me;
        if self
            .seen_queries
            .insert((lamport, origin.clone(), id), ())
            .is_some()
            && !mine
        {
            return;
        }
        if !mine {
            self.broadcasts.push(
                Subject::Query(origin.clone(), id),
                wire::encode_message(&msg),
            );
        }
        if self.left {
            return;
        }
        let node_ok = nodes.is_empty() || nodes.contains(&self.me);
        let tags_ok = tags
            .iter()
            .all(|(k, v)| self.members[0].tag(k) == Some(v.as_str()));
        if !(node_ok && tags_ok) {
            return;
        }
        let timeout =
            Duration::from_millis(u64::from(timeout_ms)).min(self.config.max_query_timeout);
        let handle = self.next_in_query;
        self.next_in_query += 1;
        self.in_queries.insert(
            handle,
            InQuery {
                origin: origin.clone(),
                origin_addr,
                id,
                deadline: now + timeout,
            },
        );
        self.events.push_back(Event::QueryRequest {
            id: QueryId(handle),
            origin: origin.clone(),
            name: name.clone(),
            payload: payload.clone(),
        });
    }
}
