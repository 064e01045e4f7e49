//! Membership changes: joining, leaving, this node's own announcements and
//! tags, and applying others' Alive, Suspect, Dead and Tags news, including
//! refuting news about this node.

use super::*;

/// Seeds contacted per join attempt, at most.
pub(super) const MAX_JOIN_TARGETS: usize = 8;

/// Distinct conflicting addresses remembered (each is reported once).
pub(super) const MAX_CONFLICTS: usize = 256;

impl Node {
    /// Join through any of `seeds` (and peers from imported state): push-pull
    /// with each, retried every `join_retry_interval` until another member is known.
    pub fn join(&mut self, now: Instant, seeds: &[SocketAddr]) {
        if !self.started {
            self.start(now);
        }
        if self.left {
            self.rejoin(now);
        }
        for s in seeds {
            if *s != self.addr && !self.join_targets.contains(s) {
                self.join_targets.push(*s);
            }
        }
        self.send_joins(now);
    }

    /// Back after a leave (a join does it): peers hold this node as left at
    /// its incarnation, so it comes back alive at a higher one, as a
    /// restarted node would, and its probing and records resume.
    pub(super) fn rejoin(&mut self, now: Instant) {
        self.left = false;
        self.incarnation = self.incarnation.saturating_add(1);
        self.members[0].incarnation = self.incarnation;
        self.set_state(0, MemberState::Alive, now);
        self.announce_self();
    }

    /// Leave gracefully: peers mark this node left, not failed. Keep driving
    /// the node for a few gossip intervals so the news spreads.
    pub fn leave(&mut self, now: Instant) {
        if self.left {
            return;
        }
        let _ = now;
        self.left = true;
        self.probe = None;
        self.next_join = None;
        self.set_state(0, MemberState::Left, now);
        let msg = Message::Dead {
            name: self.me.clone(),
            incarnation: self.incarnation,
            from: self.me.clone(),
        };
        let enc = wire::encode_message(&msg);
        self.broadcasts
            .push(Subject::Member(self.me.clone()), enc.clone());
        // Tell a few members straight away rather than waiting for a round.
        let n = (self.config.gossip_nodes.min(MAX_FANOUT) * 2).max(1);
        for i in self.random_members(n, |m| m.state.is_live()) {
            let to = self.members[i].addr;
            self.send(to, alloc::vec![enc.clone()]);
        }
    }

    pub(super) fn send_joins(&mut self, now: Instant) {
        let mut targets = self.join_targets.clone();
        let mut saved = self.saved_peers.clone();
        self.rng.shuffle(&mut saved);
        for p in saved {
            if !targets.contains(&p) {
                targets.push(p);
            }
        }
        targets.truncate(MAX_JOIN_TARGETS.max(self.join_targets.len()));
        if targets.is_empty() {
            self.next_join = None;
            return;
        }
        for t in targets {
            self.send_push_pull(t, true);
        }
        self.next_join = Some(now + self.config.join_retry_interval);
    }

    /// Replace this node's tags; peers keep the newest by Lamport time.
    pub fn set_tags(&mut self, tags: Vec<(String, String)>) -> Result<(), OpError> {
        let lamport = self.members[0].tags_lamport.saturating_add(1);
        let msg = Message::Tags {
            name: self.me.clone(),
            lamport,
            tags: tags.clone(),
        };
        let enc = wire::encode_message(&msg);
        if enc.len() > self.payload_budget() {
            return Err(OpError::TooLarge);
        }
        wire::fits_bounds(&enc).map_err(OpError::OutOfBounds)?;
        self.members[0].tags = tags;
        self.members[0].tags_lamport = lamport;
        self.broadcasts.push(Subject::Tags(self.me.clone()), enc);
        Ok(())
    }

    pub(super) fn announce_self(&mut self) {
        let msg = Message::Alive {
            name: self.me.clone(),
            addr: self.addr,
            incarnation: self.incarnation,
        };
        self.broadcasts
            .push(Subject::Member(self.me.clone()), wire::encode_message(&msg));
    }

    /// Outbid a claim about this node at incarnation `accused` (one we
    /// used, or one from an earlier life within [`wire::MAX_JUMP`]; the
    /// callers check): alive again at one above both, saturating.
    pub(super) fn refute(&mut self, accused: u64) {
        self.incarnation = self.incarnation.max(accused).saturating_add(1);
        self.members[0].incarnation = self.incarnation;
        self.stats.refutations += 1;
        self.adjust_awareness(1);
        self.announce_self();
        self.events.push_back(Event::Refuted {
            incarnation: self.incarnation,
        });
    }

    pub(super) fn report_conflict(&mut self, name: &str, addr: SocketAddr) {
        if self.conflicts.len() >= MAX_CONFLICTS {
            // Forget old reports rather than grow without bound.
            self.conflicts.clear();
        }
        if !self.conflicts.contains(&addr) {
            self.conflicts.push(addr);
            self.events.push_back(Event::NameConflict {
                name: String::from(name),
                addr,
            });
        }
    }

    pub(super) fn on_alive(&mut self, now: Instant, name: &str, addr: SocketAddr, inc: u64) {
        if name == self.me {
            if self.left {
                return;
            }
            if addr != self.addr {
                // Someone else claims our name. Report it; fighting over
                // incarnations would only make the two flap in everyone's view.
                self.report_conflict(name, addr);
            } else if inc > self.incarnation {
                if wire::believable(self.incarnation, inc) {
                    // News of an earlier life of ours: outbid it.
                    self.refute(inc);
                } else {
                    // An incarnation we cannot have used: forged. Peers
                    // refuse it too (they hold us at most where we are).
                    self.stats.jumps_refused += 1;
                }
            }
            return;
        }
        let held = self
            .index
            .get(name)
            .map_or(0, |&i| self.members[i].incarnation);
        if !wire::believable(held, inc) {
            self.stats.jumps_refused += 1;
            return;
        }
        match self.index.get(name).copied() {
            None if self.members.len() >= self.config.max_members => {
                // Full: no new name until reaping makes room. Evicting
                // anyone would let a flood of fake names push real members
                // out; not re-gossiping keeps the refused name from
                // filling others' tables through us.
                self.stats.members_refused += 1;
                return;
            }
            None => {
                self.members.push(Member {
                    name: String::from(name),
                    addr,
                    state: MemberState::Alive,
                    incarnation: inc,
                    tags: Vec::new(),
                    tags_lamport: 0,
                    state_since: now,
                    coordinate: None,
                    rtt_samples: LatencyFilter::default(),
                });
                self.index
                    .insert(String::from(name), self.members.len() - 1);
                self.live += 1;
                self.events.push_back(Event::MemberUp {
                    name: String::from(name),
                    addr,
                });
                self.service_events(name, true);
            }
            Some(i) => {
                let old = self.members[i].state;
                if self.members[i].addr != addr && old.is_live() {
                    // A second node with a live member's name: keep the one
                    // we know (as memberlist does) and report it.
                    self.report_conflict(name, addr);
                    return;
                }
                if inc <= self.members[i].incarnation {
                    return;
                }
                self.members[i].incarnation = inc;
                self.members[i].addr = addr;
                self.set_state(i, MemberState::Alive, now);
                self.suspicions.remove(name);
                match old {
                    MemberState::Suspect => self.events.push_back(Event::MemberAlive {
                        name: String::from(name),
                        incarnation: inc,
                    }),
                    MemberState::Failed | MemberState::Left => {
                        self.events.push_back(Event::MemberUp {
                            name: String::from(name),
                            addr,
                        });
                        self.service_events(name, true);
                    }
                    MemberState::Alive => {}
                }
            }
        }
        let msg = Message::Alive {
            name: String::from(name),
            addr,
            incarnation: inc,
        };
        self.rebroadcast(
            Subject::Member(String::from(name)),
            wire::encode_message(&msg),
        );
    }

    /// The shared first step of a suspicion or death claim about `name` at
    /// `inc`: about ourselves it is refuted; about a member it is the member's
    /// index, unless the claim is stale or the member already dead or left.
    ///
    /// A claim more than [`wire::MAX_JUMP`] above the incarnation held is
    /// refused, about us or anyone: about us it names an incarnation we
    /// never used (a restarted node that lost its state is below the one
    /// peers hold by the restarts since, far less than the jump), and every
    /// peer refuses it as well, so it needs no answer and cannot push our
    /// incarnation to where it can no longer be outbid.
    pub(super) fn claim_target(&mut self, name: &str, inc: u64) -> Option<usize> {
        if name == self.me {
            if !wire::believable(self.incarnation, inc) {
                self.stats.jumps_refused += 1;
            } else if !self.left && inc >= self.incarnation {
                self.refute(inc);
            }
            return None;
        }
        let i = self.index.get(name).copied()?;
        let m = &self.members[i];
        if !wire::believable(m.incarnation, inc) {
            self.stats.jumps_refused += 1;
            return None;
        }
        (inc >= m.incarnation && m.state.is_live()).then_some(i)
    }

    pub(super) fn on_suspect(&mut self, now: Instant, name: &str, inc: u64, from: &str) {
        let Some(i) = self.claim_target(name, inc) else {
            return;
        };
        let m = &self.members[i];
        let msg = || Message::Suspect {
            name: String::from(name),
            incarnation: inc,
            from: String::from(from),
        };
        if m.state == MemberState::Suspect && inc == m.incarnation {
            // Lifeguard: an independent confirmation shortens the timeout
            // and is worth passing on.
            if let Some(s) = self.suspicions.get_mut(name) {
                if s.confirm(from) {
                    self.rebroadcast(
                        Subject::Member(String::from(name)),
                        wire::encode_message(&msg()),
                    );
                }
            }
            return;
        }
        self.members[i].incarnation = inc;
        self.set_state(i, MemberState::Suspect, now);
        let n = self.live;
        let mut k = self.config.suspicion_mult.saturating_sub(2);
        if n < k as usize + 2 {
            k = 0;
        }
        self.suspicions.insert(
            String::from(name),
            Suspicion::new(
                inc,
                String::from(from),
                now,
                // Lifeguard: while our own datagrams go missing (awareness
                // up), refutations reach us late too, so wait for them as
                // much longer as we stretch our probes.
                self.scaled(self.config.suspicion_min_timeout(n)),
                self.config.suspicion_max_timeout_mult,
                k,
                self.config.lifeguard,
            ),
        );
        self.events.push_back(Event::MemberSuspect {
            name: String::from(name),
            incarnation: inc,
        });
        self.rebroadcast(
            Subject::Member(String::from(name)),
            wire::encode_message(&msg()),
        );
    }

    pub(super) fn on_dead(&mut self, now: Instant, name: &str, inc: u64, from: &str) {
        let Some(i) = self.claim_target(name, inc) else {
            return;
        };
        let graceful = from == name;
        self.members[i].incarnation = inc;
        let state = if graceful {
            MemberState::Left
        } else {
            MemberState::Failed
        };
        self.set_state(i, state, now);
        self.suspicions.remove(name);
        self.events.push_back(if graceful {
            Event::MemberLeft {
                name: String::from(name),
            }
        } else {
            Event::MemberFailed {
                name: String::from(name),
            }
        });
        self.service_events(name, false);
        let msg = Message::Dead {
            name: String::from(name),
            incarnation: inc,
            from: String::from(from),
        };
        self.rebroadcast(
            Subject::Member(String::from(name)),
            wire::encode_message(&msg),
        );
    }

    pub(super) fn on_tags(&mut self, name: &str, lamport: u64, tags: Vec<(String, String)>) {
        let Some(i) = self.index.get(name).copied() else {
            return;
        };
        if lamport <= self.members[i].tags_lamport {
            return;
        }
        if !wire::believable(self.members[i].tags_lamport, lamport) {
            self.stats.jumps_refused += 1;
            return;
        }
        if i == 0 {
            // Newer tags of ours than we know: an earlier life, or someone
            // speaking for us. Outbid them with what we hold.
            let lamport = lamport.saturating_add(1);
            self.members[0].tags_lamport = lamport;
            let msg = Message::Tags {
                name: self.me.clone(),
                lamport,
                tags: self.members[0].tags.clone(),
            };
            self.broadcasts
                .push(Subject::Tags(self.me.clone()), wire::encode_message(&msg));
            return;
        }
        self.members[i].tags_lamport = lamport;
        self.members[i].tags = tags.clone();
        self.events.push_back(Event::MemberUpdated {
            name: String::from(name),
        });
        let msg = Message::Tags {
            name: String::from(name),
            lamport,
            tags,
        };
        self.rebroadcast(
            Subject::Tags(String::from(name)),
            wire::encode_message(&msg),
        );
    }
}
