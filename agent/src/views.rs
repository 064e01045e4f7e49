//! Views from the gossip core's state to the control protocol's types:
//! what `nuvol members`, `nuvol search`, monitors and handler scripts see
//! of a member or a service record. Pure functions of the core's state and
//! the time passed in.

use nuvol_control::{Health, MemberState, MemberView, ServiceView};
use nuvol_gossip as g;

pub fn member_view(node: &g::Node, m: &g::Member, now: g::Instant) -> MemberView {
    MemberView {
        name: m.name.clone(),
        addr: m.addr.to_string(),
        state: match m.state {
            g::MemberState::Alive => MemberState::Alive,
            g::MemberState::Suspect => MemberState::Suspect,
            g::MemberState::Failed => MemberState::Failed,
            g::MemberState::Left => MemberState::Left,
        },
        microcloud: m.tag("microcloud").unwrap_or_default().to_string(),
        incarnation: m.incarnation,
        rtt_us: node.rtt_to(&m.name).map(|d| d.as_micros() as u64),
        since_change_s: now.saturating_since(m.state_since).as_secs(),
        tags: m.tags.clone(),
    }
}

pub fn health(h: g::Health) -> Health {
    match h {
        g::Health::Healthy => Health::Healthy,
        g::Health::Unhealthy => Health::Unhealthy,
        g::Health::Unknown => Health::Unknown,
    }
}

pub fn search_view(r: &g::SearchResult) -> ServiceView {
    ServiceView {
        service_type: r.record.service_type.clone(),
        description: r.record.description.clone(),
        host: r.record.host.clone(),
        ip: r.record.ip.clone(),
        port: r.record.port,
        microcloud: r.record.microcloud.clone(),
        txt: r.record.txt.clone(),
        health: health(r.record.health),
        rtt_us: r.rtt_us,
        load_x100: r.load_x100,
        quality: r.quality(),
    }
}

/// A view of `record` published by `node`, ranked as search would rank it.
pub fn service_view(core: &g::Node, node: &str, record: &g::ServiceRecord) -> ServiceView {
    let load_x100 = core
        .member(node)
        .and_then(|m| m.tag("load"))
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    search_view(&g::SearchResult {
        node: node.to_string(),
        record: record.clone(),
        rtt_us: core.rtt_to(node).map(|d| d.as_micros() as u64),
        load_x100,
    })
}

/// A service's line on a handler script's stdin.
pub fn service_line(v: &ServiceView) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{}\n",
        v.service_type, v.host, v.ip, v.port, v.description
    )
}
