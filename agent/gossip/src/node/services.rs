//! The service catalog as this node holds it: publishing and withdrawing
//! its own records, applying others' entries, and searching every live
//! member's records best first.

use super::*;

impl Node {
    /// This node's own live records.
    pub fn own_records(&self) -> Vec<ServiceRecord> {
        self.catalogs
            .get(&self.me)
            .map(|c| c.live().cloned().collect())
            .unwrap_or_default()
    }

    /// Records of live members matching `filter`, best first: healthy before
    /// unhealthy, then by estimated RTT (unknown last), then by load.
    pub fn search(&self, filter: &SearchFilter) -> Vec<SearchResult> {
        let mut out = Vec::new();
        for (node, cat) in self.catalogs.iter() {
            let Some(m) = self.member(node) else { continue };
            if !m.state.is_live() {
                continue;
            }
            let rtt_us = self.rtt_to(node).map(|d| d.as_micros() as u64);
            let load_x100 = m.tag("load").and_then(|v| v.parse().ok()).unwrap_or(0);
            for r in cat.live() {
                if filter
                    .service_type
                    .as_ref()
                    .is_some_and(|t| *t != r.service_type)
                {
                    continue;
                }
                if filter
                    .microcloud
                    .as_ref()
                    .is_some_and(|c| *c != r.microcloud)
                {
                    continue;
                }
                out.push(SearchResult {
                    node: node.clone(),
                    record: r.clone(),
                    rtt_us,
                    load_x100,
                });
            }
        }
        // A total order (a node has one record per type and port), so the
        // unstable sort, smaller in code, gives the one possible result.
        out.sort_unstable_by(|a, b| {
            let ha = a.record.health == crate::catalog::Health::Unhealthy;
            let hb = b.record.health == crate::catalog::Health::Unhealthy;
            ha.cmp(&hb)
                .then(
                    a.rtt_us
                        .unwrap_or(u64::MAX)
                        .cmp(&b.rtt_us.unwrap_or(u64::MAX)),
                )
                .then(a.load_x100.cmp(&b.load_x100))
                .then(a.node.cmp(&b.node))
                .then(a.record.port.cmp(&b.record.port))
                .then(a.record.service_type.cmp(&b.record.service_type))
        });
        out
    }

    /// Publish (or replace) one of this node's records. Publishing the same
    /// record again changes nothing. An empty `host` becomes this node's name.
    pub fn publish(&mut self, mut record: ServiceRecord) -> Result<(), OpError> {
        if self.left {
            return Err(OpError::Left);
        }
        if record.host.is_empty() {
            record.host = self.me.clone();
        }
        let budget = self.payload_budget();
        let cat = self
            .catalogs
            .get_or_insert_with(self.me.clone(), NodeCatalog::default);
        let key = (record.service_type.clone(), record.port);
        let held = cat.slots.get(&key);
        if held.is_some_and(|s| s.record.as_ref() == Some(&record)) {
            return Ok(());
        }
        if held.is_none_or(|s| s.record.is_none())
            && cat.slots.values().filter(|s| s.record.is_some()).count() >= MAX_OWN_RECORDS
        {
            return Err(OpError::TooManyServices);
        }
        let entry = CatalogEntry {
            version: cat.version.saturating_add(1),
            service_type: record.service_type.clone(),
            port: record.port,
            record: Some(record),
        };
        let msg = Message::Service {
            node: self.me.clone(),
            entry: entry.clone(),
        };
        let enc = wire::encode_message(&msg);
        if enc.len() > budget {
            return Err(OpError::TooLarge);
        }
        wire::fits_bounds(&enc).map_err(OpError::OutOfBounds)?;
        cat.version = entry.version;
        cat.slots.insert(
            key,
            Slot {
                version: entry.version,
                record: entry.record,
                since: Instant::ZERO,
            },
        );
        self.broadcasts.push(
            Subject::Service(self.me.clone(), entry.service_type, entry.port),
            enc,
        );
        Ok(())
    }

    /// Withdraw this node's record of that type and port. False if none.
    pub fn unpublish(&mut self, now: Instant, service_type: &str, port: u16) -> bool {
        let cat = self
            .catalogs
            .get_or_insert_with(self.me.clone(), NodeCatalog::default);
        let key = (String::from(service_type), port);
        if cat.slots.get(&key).is_none_or(|s| s.record.is_none()) {
            return false;
        }
        cat.version = cat.version.saturating_add(1);
        let version = cat.version;
        cat.slots.insert(
            key,
            Slot {
                version,
                record: None,
                since: now,
            },
        );
        self.broadcast_own_slot(service_type, port);
        true
    }

    pub(super) fn broadcast_own_slot(&mut self, service_type: &str, port: u16) {
        let Some(cat) = self.catalogs.get(&self.me) else {
            return;
        };
        let key = (String::from(service_type), port);
        let Some(slot) = cat.slots.get(&key) else {
            return;
        };
        let msg = Message::Service {
            node: self.me.clone(),
            entry: CatalogEntry {
                version: slot.version,
                service_type: key.0.clone(),
                port,
                record: slot.record.clone(),
            },
        };
        self.broadcasts.push(
            Subject::Service(self.me.clone(), key.0, port),
            wire::encode_message(&msg),
        );
    }

    pub(super) fn service_events(&mut self, node: &str, up: bool) {
        let Some(cat) = self.catalogs.get(node) else {
            return;
        };
        for r in cat.live() {
            let (node, record) = (String::from(node), r.clone());
            self.events.push_back(if up {
                Event::ServiceUp { node, record }
            } else {
                Event::ServiceDown { node, record }
            });
        }
    }

    pub(super) fn on_service(&mut self, now: Instant, node: &str, entry: CatalogEntry) {
        if node == self.me {
            // We own this catalog: anything newer than our copy is from an
            // earlier life; restate our current truth above it.
            let cat = self
                .catalogs
                .get_or_insert_with(self.me.clone(), NodeCatalog::default);
            // A version we cannot have used (beyond the jump bound) is
            // forged; every peer refuses it too, so it needs no answer.
            if !wire::believable(cat.version, entry.version) {
                self.stats.jumps_refused += 1;
                return;
            }
            let key = (entry.service_type.clone(), entry.port);
            let ours = cat.slots.get(&key).map(|s| s.version);
            if ours.is_some_and(|v| v >= entry.version) {
                return;
            }
            if ours.is_none() && entry.record.is_none() {
                return;
            }
            cat.version = cat.version.max(entry.version).saturating_add(1);
            let version = cat.version;
            let slot = cat.slots.get_or_insert_with(key, || Slot {
                version,
                record: None,
                since: now,
            });
            slot.version = version;
            self.broadcast_own_slot(&entry.service_type, entry.port);
            return;
        }
        let known = self.member(node);
        let live = known.is_some_and(|m| m.state.is_live());
        if known.is_none()
            && self.catalogs.len() >= self.config.max_members
            && self.catalogs.get(node).is_none()
        {
            // A catalog racing ahead of its node's Alive is kept, but only
            // while there is room: the table bounds these too.
            self.stats.members_refused += 1;
            return;
        }
        let cat = self
            .catalogs
            .get_or_insert_with(String::from(node), || NodeCatalog {
                created: now,
                ..NodeCatalog::default()
            });
        if !wire::believable(cat.version, entry.version) {
            self.stats.jumps_refused += 1;
            return;
        }
        let key = (entry.service_type.clone(), entry.port);
        if cat.slots.len() >= MAX_SLOTS && cat.slots.get(&key).is_none() {
            self.stats.services_refused += 1;
            return;
        }
        let applied = cat.apply(&entry, now);
        let (node_s, subject) = (
            String::from(node),
            Subject::Service(String::from(node), entry.service_type.clone(), entry.port),
        );
        match applied {
            Applied::Stale => return,
            Applied::Up(record) if live => self.events.push_back(Event::ServiceUp {
                node: node_s.clone(),
                record,
            }),
            Applied::Changed(record) if live => self.events.push_back(Event::ServiceChanged {
                node: node_s.clone(),
                record,
            }),
            Applied::Down(record) if live => self.events.push_back(Event::ServiceDown {
                node: node_s.clone(),
                record,
            }),
            _ => {}
        }
        let msg = Message::Service {
            node: node_s,
            entry,
        };
        self.rebroadcast(subject, wire::encode_message(&msg));
    }
}
