//! Sending: sealing under the primary key, piggybacking queued broadcasts on
//! datagrams within the payload budget, and the periodic gossip round.

use super::*;

impl Node {
    pub(super) fn gossip(&mut self) {
        if self.broadcasts.is_empty() {
            return;
        }
        let fanout = self.config.gossip_nodes.min(MAX_FANOUT);
        let targets = self.random_members(fanout, |m| m.state.is_live());
        for i in targets {
            if self.broadcasts.is_empty() {
                break;
            }
            let to = self.members[i].addr;
            self.send(to, Vec::new());
        }
    }

    pub(super) fn payload_budget(&self) -> usize {
        self.config
            .mtu
            .saturating_sub(SEAL_OVERHEAD + PACKET_OVERHEAD)
    }

    pub(super) fn seal(&mut self, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        self.rng.fill(&mut nonce);
        self.keyring.seal(nonce, plain)
    }

    /// Send `msgs` to `to`, filling the rest of the datagram with updates.
    pub(super) fn send(&mut self, to: SocketAddr, msgs: Vec<Vec<u8>>) {
        let used: usize = msgs.iter().map(Vec::len).sum();
        let room = self.payload_budget().saturating_sub(used);
        let limit = self.config.retransmit_limit(self.live);
        let mut plain = Vec::with_capacity(self.config.mtu);
        wire::begin_packet(&mut plain);
        for m in &msgs {
            plain.extend_from_slice(m);
        }
        let piggybacked = self.broadcasts.take_into(&mut plain, room, limit);
        if msgs.is_empty() && piggybacked == 0 {
            return;
        }
        wire::finish_packet(&mut plain);
        let bytes = self.seal(&plain);
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += bytes.len() as u64;
        self.transmits.push_back(Transmit::Packet { to, bytes });
    }

    /// Pass on news learnt from a peer, unless it came with a join reply:
    /// a joiner learning the whole cluster is no news to the cluster.
    pub(super) fn rebroadcast(&mut self, subject: Subject, encoded: Vec<u8>) {
        if !self.quiet {
            self.broadcasts.push(subject, encoded);
        }
    }
}
