//! Push-pull state exchange over streams: what a request or reply carries
//! (a reply leaves out what the request showed, docs/protocol.md §5), merging
//! a peer's state, and the saved state a restarted node comes back with.

use super::*;

/// What a push-pull request showed of its sender's state. The reply leaves
/// out what the sender provably has (docs/protocol.md §5): the request
/// carries the sender's whole state, so after merging it the answerer
/// sends only where its own differs, and both end with the union as before.
pub(super) struct Shown {
    /// (name, addr, incarnation, state, tags Lamport time, whether it
    /// carried a coordinate) of each member.
    pub(super) members: Vec<(String, MemberShown)>,
    /// Per node, its slots as (type, port, version). Both levels are in key
    /// order, as every sender writes them; when they are not, this is left
    /// empty (a reply with every entry is never wrong), which spares the
    /// code of a sort.
    pub(super) catalogs: Vec<(String, SlotsShown)>,
}

/// Address, incarnation, state, tags Lamport time and whether a coordinate
/// came along, of a member.
pub(super) type MemberShown = (SocketAddr, u64, WireState, u64, bool);

/// A node's catalog slots as (type, port, version).
pub(super) type SlotsShown = Vec<(String, u16, u64)>;

impl Shown {
    pub(super) fn of(pp: &PushPull) -> Shown {
        let members = pp
            .members
            .iter()
            .map(|m| {
                let shown = (
                    m.addr,
                    m.incarnation,
                    m.state,
                    m.tags_lamport,
                    m.coord.is_some(),
                );
                (m.name.clone(), shown)
            })
            .collect();
        let mut catalogs: Vec<(String, SlotsShown)> = Vec::with_capacity(pp.catalogs.len());
        for c in &pp.catalogs {
            let slots: SlotsShown = c
                .entries
                .iter()
                .map(|e| (e.service_type.clone(), e.port, e.version))
                .collect();
            let in_order = slots
                .windows(2)
                .all(|w| (&w[0].0, w[0].1) < (&w[1].0, w[1].1))
                && catalogs.last().is_none_or(|(last, _)| *last < c.node);
            if !in_order {
                catalogs.clear();
                break;
            }
            catalogs.push((c.node.clone(), slots));
        }
        Shown { members, catalogs }
    }

    /// Whether the sender showed `node`'s slot of `e` at its version or newer.
    pub(super) fn has_slot(&self, node: &str, e: &CatalogEntry) -> bool {
        let Ok(c) = self.catalogs.binary_search_by(|c| c.0.as_str().cmp(node)) else {
            return false;
        };
        let slots = &self.catalogs[c].1;
        let key = (e.service_type.as_str(), e.port);
        slots
            .binary_search_by(|s| (s.0.as_str(), s.1).cmp(&key))
            .is_ok_and(|i| slots[i].2 >= e.version)
    }
}

/// Peers written into saved state, at most.
pub(super) const MAX_SAVED_PEERS: usize = 64;

/// Gossip rounds after a join reply until the first early push-pull, then
/// from the first to the second (LAN: +1 s, +6 s).
pub(super) const EARLY_PUSH_PULL_1: u32 = 5;

pub(super) const EARLY_PUSH_PULL_2: u32 = 25;

impl Node {
    /// A join reply is the seed's view at one instant: nodes joining at the
    /// same time (a power cut's reboot) are missing from it, and their
    /// Alives, gossiped while everyone knew few members, can run out of
    /// retransmissions before reaching us. So push-pull with a random live
    /// member a few gossip rounds after joining, and again a little later,
    /// instead of only after the full `push_pull_interval`.
    pub(super) fn arm_early_push_pull(&mut self, now: Instant) {
        let at = now + self.config.gossip_interval * EARLY_PUSH_PULL_1;
        if at < self.next_push_pull {
            self.next_push_pull = at;
            self.early_push_pull = true;
        }
    }

    pub(super) fn send_push_pull(&mut self, to: SocketAddr, join: bool) {
        let state = self.push_pull_state(join, false, None);
        let bytes = self.seal(&wire::encode_push_pull(&state));
        self.stats.streams_sent += 1;
        self.stats.stream_bytes_sent += bytes.len() as u64;
        self.transmits.push_back(Transmit::Stream { to, bytes });
    }

    /// Our state as a push-pull. A reply to `shown` leaves out what the
    /// request showed: a member whose address, incarnation and state it
    /// showed alike and whose tags it showed as new (tags alone go out as
    /// "none", Lamport time 0, which merging skips), and catalog slots it
    /// showed at the same version. Our own record always goes (it carries
    /// our coordinate), and so does, in a join reply, a member whose
    /// coordinate we hold and the request did not carry.
    pub(super) fn push_pull_state(
        &self,
        join: bool,
        reply: bool,
        shown: Option<&Shown>,
    ) -> PushPull {
        // What the request showed of each of our members, by position.
        let mut seen: Vec<Option<MemberShown>> = alloc::vec![None; self.members.len()];
        for (name, m) in shown.map_or(&[][..], |s| &s.members[..]) {
            if let Some(&i) = self.index.get(name) {
                seen[i] = Some(*m);
            }
        }
        let mut members = Vec::with_capacity(self.members.len());
        for (i, m) in self.members.iter().enumerate() {
            let state = match m.state {
                MemberState::Alive => WireState::Alive,
                MemberState::Suspect => WireState::Suspect,
                MemberState::Failed => WireState::Dead,
                MemberState::Left => WireState::Left,
            };
            let mut tags_lamport = m.tags_lamport;
            if let Some((addr, inc, st, lamport, had_coord)) = seen[i] {
                let has_tags = lamport >= m.tags_lamport;
                let has_coord = had_coord || !join || m.coordinate.is_none();
                let alike = (addr, inc, st) == (m.addr, m.incarnation, state);
                if i != 0 && has_tags && has_coord && alike {
                    continue;
                }
                if has_tags {
                    tags_lamport = 0;
                }
            }
            members.push(MemberRecord {
                name: m.name.clone(),
                addr: m.addr,
                incarnation: m.incarnation,
                state,
                tags_lamport,
                tags: if tags_lamport == 0 {
                    Vec::new()
                } else {
                    m.tags.clone()
                },
                // Other members' coordinates only serve a joiner: a receiver
                // keeps a relayed coordinate only for a member it has none
                // for, and in a settled cluster every member has probed
                // every other. 52 bytes a member, in every periodic exchange.
                coord: if i == 0 {
                    Some(self.coord.to_wire())
                } else if join {
                    m.coordinate.as_ref().map(Coordinate::to_wire)
                } else {
                    None
                },
            });
        }
        let catalogs = self
            .catalogs
            .iter()
            .filter_map(|(n, c)| {
                let mut entries = c.entries();
                if let Some(s) = shown {
                    entries.retain(|e| !s.has_slot(n, e));
                }
                (!entries.is_empty()).then(|| CatalogState {
                    node: n.clone(),
                    version: c.version,
                    entries,
                })
            })
            .collect();
        PushPull {
            version: wire::VERSION,
            join,
            reply,
            from: self.me.clone(),
            members,
            catalogs,
            event_clock: self.event_clock,
            query_clock: self.query_clock,
            ping: None,
        }
    }

    pub(super) fn merge(&mut self, now: Instant, pp: PushPull) {
        let from = pp.from;
        // A suspicion learned from a peer's state counts as our own, not as
        // the peer's confirmation (as memberlist): the peer may only be
        // echoing what it heard from us, and Lifeguard shortens the timeout
        // per independent confirmation.
        let me = self.me.clone();
        for m in pp.members {
            match m.state {
                WireState::Alive => self.on_alive(now, &m.name, m.addr, m.incarnation),
                WireState::Left => self.on_dead(now, &m.name, m.incarnation, &m.name),
                // Someone else's verdict of death is only a suspicion here:
                // our own timer decides (as memberlist does).
                WireState::Suspect | WireState::Dead => {
                    if m.name == self.me {
                        self.on_dead(now, &m.name, m.incarnation, &from);
                    } else {
                        self.on_suspect(now, &m.name, m.incarnation, &me)
                    }
                }
            }
            if m.tags_lamport > 0 {
                self.on_tags(&m.name, m.tags_lamport, m.tags);
            }
            if let (Some(c), Some(&i)) = (m.coord, self.index.get(&m.name)) {
                if i != 0 && (m.name == from || self.members[i].coordinate.is_none()) {
                    self.members[i].coordinate = Coordinate::from_wire(&c);
                }
            }
        }
        for c in pp.catalogs {
            for e in c.entries {
                self.on_service(now, &c.node, e);
            }
        }
        for (held, claimed) in [
            (&mut self.event_clock, pp.event_clock),
            (&mut self.query_clock, pp.query_clock),
        ] {
            if wire::believable(*held, claimed) {
                *held = (*held).max(claimed);
            } else {
                self.stats.jumps_refused += 1;
            }
        }
    }

    /// Persistable state: incarnation, tags, own catalog, known peers,
    /// Lamport clocks. Write it atomically; pass it to
    /// [`Node::import_state`] after a restart.
    pub fn export_state(&self) -> Vec<u8> {
        let own = self.catalogs.get(&self.me);
        let mut peers: Vec<Peer> = self
            .members
            .iter()
            .skip(1)
            .filter(|m| m.state.is_live())
            .map(|m| Peer {
                name: m.name.clone(),
                addr: m.addr,
            })
            .collect();
        peers.truncate(MAX_SAVED_PEERS);
        wire::encode_saved_state(&SavedState {
            version: wire::VERSION,
            name: self.me.clone(),
            incarnation: self.incarnation,
            tags_lamport: self.members[0].tags_lamport,
            tags: self.members[0].tags.clone(),
            catalog: CatalogState {
                node: self.me.clone(),
                version: own.map_or(0, |c| c.version),
                entries: own.map(|c| c.entries()).unwrap_or_default(),
            },
            peers,
            event_clock: self.event_clock,
            query_clock: self.query_clock,
        })
    }

    /// Restore state saved by [`Node::export_state`], before joining: the
    /// node comes back with a higher incarnation (refuting its old death),
    /// its catalog and clocks, and rejoins through its saved peers too.
    pub fn import_state(&mut self, bytes: &[u8]) -> Result<(), InputError> {
        let s = wire::decode_saved_state(bytes).map_err(InputError::Wire)?;
        if s.name != self.me {
            return Err(InputError::OtherNode);
        }
        // Counters past the protocol's ceiling can only come from a forged
        // message an older version took in; peers would refuse them, so the
        // node starts those afresh (its peers' refutations settle the rest).
        let sane = |n: u64| if n < wire::MAX_COUNTER { n } else { 0 };
        let (incarnation, event_clock, query_clock) = (
            sane(s.incarnation),
            sane(s.event_clock),
            sane(s.query_clock),
        );
        self.incarnation = self.incarnation.max(incarnation + 1);
        self.members[0].incarnation = self.incarnation;
        let me0 = &mut self.members[0];
        if me0.tags.is_empty() {
            me0.tags = s.tags;
        }
        me0.tags_lamport = me0.tags_lamport.max(sane(s.tags_lamport)) + 1;
        let cat = self
            .catalogs
            .get_or_insert_with(self.me.clone(), NodeCatalog::default);
        for e in &s.catalog.entries {
            cat.apply(e, Instant::ZERO);
        }
        cat.version = cat.version.max(s.catalog.version);
        self.event_clock = self.event_clock.max(event_clock);
        self.query_clock = self.query_clock.max(query_clock);
        self.saved_peers = s
            .peers
            .iter()
            .filter(|p| p.name != self.me)
            .map(|p| p.addr)
            .collect();
        self.announce_self();
        let tags = self.members[0].tags.clone();
        let lamport = self.members[0].tags_lamport;
        let enc = wire::encode_message(&Message::Tags {
            name: self.me.clone(),
            lamport,
            tags,
        });
        self.broadcasts.push(Subject::Tags(self.me.clone()), enc);
        Ok(())
    }
}
