//! Failure detection: the probe round (direct ping, indirect pings, stream
//! probe), relaying others' indirect pings, Lifeguard's awareness score and
//! the suspicion timers that turn a silent member into a dead one.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ProbePhase {
    Direct,
    Indirect,
}

pub(super) struct Probe {
    pub(super) target: String,
    pub(super) seq: u32,
    pub(super) sent: Instant,
    pub(super) phase: ProbePhase,
    pub(super) direct_deadline: Instant,
    pub(super) end: Instant,
    pub(super) acked: bool,
    pub(super) acked_direct: bool,
    pub(super) expected_nacks: u32,
    pub(super) nacks: u32,
    /// A stream probe is under way.
    pub(super) streamed: bool,
}

pub(super) struct Relay {
    pub(super) requester: SocketAddr,
    pub(super) orig_seq: u32,
    pub(super) nack_at: Option<Instant>,
    pub(super) expires: Instant,
}

impl Node {
    pub(super) fn scaled(&self, d: Duration) -> Duration {
        d.saturating_mul(self.awareness + 1)
    }

    pub(super) fn run_probe(&mut self, now: Instant) {
        if let Some(p) = &mut self.probe {
            if !p.acked && p.phase == ProbePhase::Direct && now >= p.direct_deadline {
                p.phase = ProbePhase::Indirect;
                let (target, seq, streamed) = (p.target.clone(), p.seq, p.streamed);
                self.send_indirect(&target, seq);
                if self.config.stream_probes && !streamed {
                    self.send_stream_ping(&target, seq);
                }
            }
        }
        if self.probe.as_ref().is_some_and(|p| now >= p.end) {
            if let Some(p) = self.probe.take() {
                self.finish_probe(now, p);
            }
            self.next_probe = now;
        }
        if self.probe.is_none() && now >= self.next_probe {
            self.start_probe(now);
        }
    }

    pub(super) fn start_probe(&mut self, now: Instant) {
        let Some(target) = self.next_probe_target() else {
            self.next_probe = now + self.config.probe_interval;
            return;
        };
        let Some(&i) = self.index.get(&target) else {
            return;
        };
        let m = &self.members[i];
        let addr = m.addr;
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut msgs = Vec::new();
        if self.config.lifeguard && m.state == MemberState::Suspect {
            // Buddy system: tell the suspect straight away so it can refute.
            msgs.push(wire::encode_message(&Message::Suspect {
                name: target.clone(),
                incarnation: m.incarnation,
                from: self.me.clone(),
            }));
        }
        msgs.push(wire::encode_message(&Message::Ping {
            seq,
            target: target.clone(),
        }));
        self.send(addr, msgs);
        self.stats.probes_sent += 1;
        let target_name = target.clone();
        self.probe = Some(Probe {
            target,
            seq,
            sent: now,
            phase: ProbePhase::Direct,
            direct_deadline: now + self.scaled(self.config.probe_timeout),
            end: now + self.scaled(self.config.probe_interval),
            acked: false,
            acked_direct: false,
            expected_nacks: 0,
            nacks: 0,
            streamed: false,
        });
        // Lifeguard's awareness says datagrams are going missing: start the
        // stream probe with the ping, so its retransmissions get the whole
        // (stretched) probe interval instead of what is left after the
        // direct timeout.
        if self.config.stream_probes && self.awareness > 0 {
            self.send_stream_ping(&target_name, seq);
        }
    }

    pub(super) fn next_probe_target(&mut self) -> Option<String> {
        for _ in 0..2 {
            while self.probe_pos < self.probe_order.len() {
                let name = &self.probe_order[self.probe_pos];
                self.probe_pos += 1;
                if let Some(&i) = self.index.get(name) {
                    if i != 0 && self.members[i].state.is_live() {
                        return Some(name.clone());
                    }
                }
            }
            // A new round: every live member once, in a fresh random order.
            self.probe_order = self
                .members
                .iter()
                .skip(1)
                .filter(|m| m.state.is_live())
                .map(|m| m.name.clone())
                .collect();
            self.rng.shuffle(&mut self.probe_order);
            self.probe_pos = 0;
        }
        None
    }

    pub(super) fn send_indirect(&mut self, target: &str, seq: u32) {
        let Some(&ti) = self.index.get(target) else {
            return;
        };
        let target_addr = self.members[ti].addr;
        let k = self.config.indirect_checks.min(MAX_FANOUT);
        let helpers = self.random_members(k, |m| m.state == MemberState::Alive && m.name != target);
        let nack = self.config.lifeguard;
        for i in &helpers {
            let to = self.members[*i].addr;
            let msg = Message::IndirectPing {
                seq,
                target: String::from(target),
                target_addr,
                nack,
            };
            self.send(to, alloc::vec![wire::encode_message(&msg)]);
        }
        if let Some(p) = &mut self.probe {
            p.expected_nacks = if nack { helpers.len() as u32 } else { 0 };
        }
    }

    /// memberlist's TCP fallback: the stream's retransmissions get through
    /// loss that defeats single datagrams, and its answer counts as an ack.
    pub(super) fn send_stream_ping(&mut self, target: &str, seq: u32) {
        let Some(&ti) = self.index.get(target) else {
            return;
        };
        let to = self.members[ti].addr;
        let bytes = self.stream_ping(seq, false);
        self.stats.streams_sent += 1;
        self.stats.stream_bytes_sent += bytes.len() as u64;
        self.stats.stream_probes_sent += 1;
        self.transmits.push_back(Transmit::Stream { to, bytes });
        if let Some(p) = &mut self.probe {
            p.streamed = true;
        }
    }

    pub(super) fn finish_probe(&mut self, now: Instant, p: Probe) {
        if p.acked {
            if p.acked_direct {
                self.adjust_awareness(-1);
            }
            return;
        }
        self.stats.probes_failed += 1;
        // Lifeguard: missing nacks mean our own links are the problem.
        let delta = if p.expected_nacks > 0 {
            p.expected_nacks.saturating_sub(p.nacks) as i32
        } else {
            1
        };
        self.adjust_awareness(delta);
        if let Some(&i) = self.index.get(&p.target) {
            let inc = self.members[i].incarnation;
            if self.members[i].state.is_live() {
                let me = self.me.clone();
                self.on_suspect(now, &p.target, inc, &me);
            }
        }
    }

    pub(super) fn adjust_awareness(&mut self, delta: i32) {
        if !self.config.lifeguard {
            return;
        }
        let max = self.config.awareness_max_multiplier.saturating_sub(1) as i32;
        self.awareness = (self.awareness as i32 + delta).clamp(0, max.max(0)) as u32;
    }

    pub(super) fn run_suspicions(&mut self, now: Instant) {
        let due: Vec<(String, u64)> = self
            .suspicions
            .iter()
            .filter(|(_, s)| now >= s.deadline())
            .map(|(n, s)| (n.clone(), s.incarnation))
            .collect();
        for (name, inc) in due {
            self.suspicions.remove(&name);
            let Some(&i) = self.index.get(&name) else {
                continue;
            };
            if self.members[i].state == MemberState::Suspect && self.members[i].incarnation == inc {
                self.stats.declared_dead += 1;
                let me = self.me.clone();
                self.on_dead(now, &name, inc, &me);
            }
        }
    }

    pub(super) fn run_relays(&mut self, now: Instant) {
        let mut nacks = Vec::new();
        self.relays.retain(|_, r| {
            if r.nack_at.is_some_and(|t| now >= t) {
                r.nack_at = None;
                nacks.push((r.requester, r.orig_seq));
            }
            now < r.expires
        });
        for (to, seq) in nacks {
            self.send(
                to,
                alloc::vec![wire::encode_message(&Message::Nack { seq })],
            );
        }
    }

    /// A stream probe (`ping` set), or its answer when `reply`: our name and
    /// the sequence number, no state.
    pub(super) fn stream_ping(&mut self, seq: u32, reply: bool) -> Vec<u8> {
        let ping = PushPull {
            version: wire::VERSION,
            join: false,
            reply,
            from: self.me.clone(),
            members: Vec::new(),
            catalogs: Vec::new(),
            event_clock: 0,
            query_clock: 0,
            ping: Some(seq),
        };
        self.seal(&wire::encode_push_pull(&ping))
    }

    /// A stream probe's answer: an ack, if it is from the target of the
    /// probe still running. Late answers are ignored like late datagrams.
    pub(super) fn on_stream_ack(&mut self, seq: u32, from: &str) {
        if let Some(p) = &mut self.probe {
            if p.seq == seq && p.target == from && !p.acked {
                p.acked = true;
                self.stats.stream_probe_acks += 1;
            }
        }
    }
}
