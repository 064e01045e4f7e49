//! Federation: finding services of other microclouds through super nodes.
//!
//! A *super node* (a heavier node built with the `heavy` feature and given a
//! `config federation` section) runs a second gossip node in the federation
//! pool (WAN profile, its own port and key, seeds = other super nodes). There
//! it publishes a bounded *summary* of its own microcloud's catalog, and it
//! holds the summaries the other super nodes publish. Its LAN members never
//! store foreign catalogs: a global search on any node asks the super nodes of
//! its microcloud with one bounded query ([`QUERY`], sent only to members
//! tagged [`SUPER_TAG`]) and merges their answers with its own catalog.
//!
//! This module is the pure part: the query and answer formats, decoding of
//! untrusted answers, and the merge a plain node does. Its heavy half builds
//! a summary from the LAN catalog, plans the publish/unpublish steps that
//! bring the pool in line with it, and builds an answer that fits one
//! datagram. The IO lives in `fedpool.rs`. See `docs/federation.md`.
//!
//! Formats, chosen so a base build carries no new codec: the query payload
//! is the service type in UTF-8 (empty: every type); the answer is the
//! control protocol's `Response::Services` list of [`ServiceView`] in CBOR,
//! whose encoder and decoder every build already has (the agent answers
//! the CLI with it, the CLI reads it). The query name is versioned: a
//! richer format would come as another name.

use nuvol_control::{Health, Response, ServiceView};

/// Name of the query a node sends to its microcloud's super nodes.
pub const QUERY: &str = "nuvol-fed";
/// The tag super nodes carry in their microcloud (and the query's filter).
pub const SUPER_TAG: (&str, &str) = ("fed", "1");
/// How long a global search waits for super nodes that have not answered
/// (each answers at once from memory; this covers gossip and loss).
pub const QUERY_TIMEOUT_MS: u64 = 1500;
/// Foreign results kept by one global search, at most (after merging).
pub const MAX_MERGED: usize = 512;
/// Longest string field accepted in an answer (type, host, ip, description,
/// microcloud, txt key or value); a hit with a longer one is dropped.
const MAX_FIELD: usize = 255;

/// Reads a query payload: `Some(None)` for every type, `Some(Some(t))` for
/// type `t`, `None` for bytes that are not a type name.
#[cfg(any(feature = "heavy", test))]
pub fn parse_search(payload: &[u8]) -> Option<Option<String>> {
    match core::str::from_utf8(payload).ok()? {
        "" => Some(None),
        t if t.len() > MAX_FIELD => None,
        t => Some(Some(t.to_string())),
    }
}

/// Decodes a super node's answer. A hit is a [`ServiceView`]: `microcloud`,
/// `host`, `ip` and `port` say where the service is; `quality`, `rtt_us` and
/// `load_x100` are from the super node's view (WAN RTT to the publishing
/// super node, its load, the health). Hits with empty or oversized fields, a
/// zero port, no microcloud or a quality over 100 are dropped. Allocation is
/// bounded by the datagram the answer came in.
pub fn decode_answer(bytes: &[u8]) -> Result<Vec<ServiceView>, String> {
    let mut hits = match nuvol_control::frame::decode::<Response>(bytes) {
        Ok(Response::Services(v)) => v,
        Ok(_) => return Err("not a federation answer: another response".into()),
        Err(e) => return Err(format!("not a federation answer: {e}")),
    };
    hits.retain(|h| {
        h.quality <= 100
            && plausible(
                &h.service_type,
                &h.host,
                &h.ip,
                h.port,
                &h.microcloud,
                &h.description,
                &h.txt,
            )
    });
    Ok(hits)
}

/// Every field of a record within bounds, and the ones that locate it set.
fn plausible(
    service_type: &str,
    host: &str,
    ip: &str,
    port: u16,
    microcloud: &str,
    description: &str,
    txt: &[(String, String)],
) -> bool {
    let ok = |s: &str, empty_ok: bool| s.len() <= MAX_FIELD && (empty_ok || !s.is_empty());
    port != 0
        && ok(service_type, false)
        && ok(host, false)
        && ok(ip, false)
        && ok(microcloud, false)
        && ok(description, true)
        && txt.iter().all(|(k, v)| ok(k, false) && ok(v, true))
}

/// A global search's result: `local` (this node's own view, authoritative
/// for `own` microcloud) plus the super nodes' answers, without hits of our
/// own microcloud (a super node cannot know it better than we do), one
/// entry per (microcloud, host, type, port) with the best quality, best
/// first (unhealthy last), at most `local.len() + MAX_MERGED`.
pub fn merge(
    local: Vec<ServiceView>,
    answers: Vec<Vec<ServiceView>>,
    own: &str,
) -> Vec<ServiceView> {
    let mut foreign: Vec<ServiceView> = Vec::new();
    for v in answers.into_iter().flatten() {
        if v.microcloud == own {
            continue;
        }
        let same = |o: &ServiceView| {
            o.microcloud == v.microcloud
                && o.host == v.host
                && o.service_type == v.service_type
                && o.port == v.port
        };
        let full = foreign.len() >= MAX_MERGED;
        match foreign.iter_mut().find(|o| same(o)) {
            Some(o) if o.quality < v.quality => *o = v,
            Some(_) => {}
            None if !full => foreign.push(v),
            None => {}
        }
    }
    // Rank: unhealthy last, then quality, best first; equal ranks keep
    // their order (local first, in the local search's RTT order). Sorted
    // by insertion with a binary search: a few hundred entries at most,
    // and no sort routine instantiated for this one type (flash).
    let rank = |v: &ServiceView| {
        let sick = matches!(v.health, Health::Unhealthy);
        (sick, 100u8.saturating_sub(v.quality))
    };
    let mut out: Vec<ServiceView> = Vec::with_capacity(local.len() + foreign.len());
    for v in local.into_iter().chain(foreign) {
        let r = rank(&v);
        let at = out.partition_point(|o| rank(o) <= r);
        out.insert(at, v);
    }
    out
}

#[cfg(feature = "heavy")]
pub use heavy::*;

#[cfg(feature = "heavy")]
mod heavy {
    use super::*;
    use nuvol_gossip as g;

    /// The summary a super node publishes in the pool for microcloud `own`:
    /// one record per (type, port) of the live LAN records of `own` (the pool
    /// keys a node's records by type and port, so a summary cannot carry two
    /// providers of one type and port; it names the best one — healthy
    /// first, then by host name so the choice does not flap with RTT — and
    /// counts the others in a `providers` txt entry). Records of other
    /// microclouds in the LAN catalog are never re-exported: only a
    /// microcloud's own super nodes speak for it. At most `max` records,
    /// by type then port; returns the summary and how many were left out.
    pub fn summary(
        lan: &[g::SearchResult],
        own: &str,
        max: usize,
    ) -> (Vec<g::ServiceRecord>, usize) {
        let mut groups: Vec<(g::ServiceRecord, usize)> = Vec::new();
        for r in lan.iter().map(|r| &r.record) {
            let sane = plausible(
                &r.service_type,
                &r.host,
                &r.ip,
                r.port,
                &r.microcloud,
                &r.description,
                &r.txt,
            );
            if r.microcloud != own || !sane {
                continue;
            }
            let rank = |x: &g::ServiceRecord| (x.health == g::Health::Unhealthy, x.host.clone());
            match groups
                .iter_mut()
                .find(|(g, _)| g.service_type == r.service_type && g.port == r.port)
            {
                Some((best, n)) => {
                    *n += 1;
                    if rank(r) < rank(best) {
                        *best = r.clone();
                    }
                }
                None => groups.push((r.clone(), 1)),
            }
        }
        groups.sort_by(|a, b| (&a.0.service_type, a.0.port).cmp(&(&b.0.service_type, b.0.port)));
        let left_out = groups.len().saturating_sub(max);
        groups.truncate(max);
        let out = groups
            .into_iter()
            .map(|(mut r, n)| {
                r.txt.retain(|(k, _)| k != "providers");
                if n > 1 {
                    r.txt.push(("providers".into(), n.to_string()));
                }
                r
            })
            .collect();
        (out, left_out)
    }

    /// What to publish and unpublish (type, port) in the pool so that the
    /// node's records `current` become `desired`.
    pub fn plan(
        current: &[g::ServiceRecord],
        desired: &[g::ServiceRecord],
    ) -> (Vec<g::ServiceRecord>, Vec<(String, u16)>) {
        let publish = desired
            .iter()
            .filter(|d| !current.contains(d))
            .cloned()
            .collect();
        let unpublish = current
            .iter()
            .filter(|c| {
                !desired
                    .iter()
                    .any(|d| d.service_type == c.service_type && d.port == c.port)
            })
            .map(|c| (c.service_type.clone(), c.port))
            .collect();
        (publish, unpublish)
    }

    /// The pool's records a super node of microcloud `own` may pass on: of
    /// live pool members (`pool` is the pool node's search, which already
    /// leaves out failed and left members), not of `own`, and only records
    /// whose `microcloud` is the one their publisher's `microcloud` tag
    /// names (a super node speaks only for its own microcloud, so nothing
    /// is re-exported round a loop). `tag_of(node)` is that tag.
    pub fn foreign<'a>(
        pool: &'a [g::SearchResult],
        own: &str,
        tag_of: impl Fn(&str) -> Option<String>,
    ) -> Vec<&'a g::SearchResult> {
        pool.iter()
            .filter(|r| r.record.microcloud != own)
            .filter(|r| tag_of(&r.node).as_deref() == Some(r.record.microcloud.as_str()))
            .collect()
    }

    /// The answer to a search for `service_type` (every type when `None`)
    /// from `results` (best first), deduplicated by (microcloud, host, type,
    /// port) — two super nodes of one microcloud publish the same summary —
    /// and cut to fit `budget` bytes encoded (ask with a type to get all
    /// hits of that type).
    pub fn answer(
        results: &[&g::SearchResult],
        service_type: Option<&str>,
        budget: usize,
    ) -> Vec<u8> {
        let mut hits: Vec<ServiceView> = Vec::new();
        for r in results {
            if service_type.is_some_and(|t| t != r.record.service_type) {
                continue;
            }
            let dup = hits.iter().any(|h| {
                h.microcloud == r.record.microcloud
                    && h.host == r.record.host
                    && h.service_type == r.record.service_type
                    && h.port == r.record.port
            });
            if !dup {
                hits.push(crate::views::search_view(r));
            }
        }
        hits.sort_by_key(|h| core::cmp::Reverse(h.quality));
        if service_type.is_none() {
            // One datagram cannot hold every type's hits: take the best of
            // each type first, then the second best of each, and so on, so
            // a search over all types (the page's type tabs) sees every
            // type that fits.
            let mut seen: Vec<(String, usize)> = Vec::new();
            let mut round: Vec<(usize, ServiceView)> = Vec::with_capacity(hits.len());
            for h in hits {
                let nth = match seen.iter_mut().find(|(t, _)| *t == h.service_type) {
                    Some((_, n)) => {
                        *n += 1;
                        *n
                    }
                    None => {
                        seen.push((h.service_type.clone(), 0));
                        0
                    }
                };
                round.push((nth, h));
            }
            round.sort_by_key(|(nth, _)| *nth);
            hits = round.into_iter().map(|(_, h)| h).collect();
        }
        // Sum the hits' own sizes (a few bytes of slack for the headers),
        // then encode once; shrink in the rare case the slack was not
        // enough. Linear in the number of hits.
        const SLACK: usize = 16;
        let mut size = SLACK;
        let mut n = 0;
        for h in &hits {
            size += minicbor::to_vec(h).map_or(usize::MAX / 2, |b| b.len());
            if size > budget {
                break;
            }
            n += 1;
        }
        hits.truncate(n);
        loop {
            let resp = Response::Services(hits);
            // Writing CBOR to a Vec cannot fail.
            let bytes = minicbor::to_vec(&resp).unwrap_or_default();
            let Response::Services(back) = resp else {
                return bytes;
            };
            hits = back;
            if bytes.len() <= budget || hits.is_empty() {
                return bytes;
            }
            hits.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nuvol_gossip as g;

    fn record(t: &str, host: &str, port: u16, mc: &str) -> g::ServiceRecord {
        g::ServiceRecord {
            service_type: t.into(),
            description: format!("{t} on {host}"),
            host: host.into(),
            ip: "10.0.0.1".into(),
            port,
            microcloud: mc.into(),
            txt: Vec::new(),
            health: g::Health::Healthy,
        }
    }

    fn hit(t: &str, host: &str, port: u16, mc: &str, quality: u8) -> ServiceView {
        let mut v = crate::views::search_view(&g::SearchResult {
            node: host.into(),
            record: record(t, host, port, mc),
            rtt_us: Some(1000),
            load_x100: 0,
        });
        v.quality = quality;
        v
    }

    /// What identifies a hit and how it ranks, for comparisons.
    fn key(v: &ServiceView) -> (String, String, String, u16, u8) {
        (
            v.microcloud.clone(),
            v.host.clone(),
            v.service_type.clone(),
            v.port,
            v.quality,
        )
    }

    fn encode(hits: Vec<ServiceView>) -> Vec<u8> {
        minicbor::to_vec(Response::Services(hits)).unwrap()
    }

    fn keys(v: &[ServiceView]) -> Vec<(String, String, String, u16, u8)> {
        v.iter().map(key).collect()
    }

    #[test]
    fn answers_round_trip_and_garbage_is_an_error() {
        let hits = vec![hit("http", "h1", 80, "b", 90)];
        let back = decode_answer(&encode(hits.clone())).unwrap();
        assert_eq!(keys(&back), keys(&hits));
        assert_eq!(back[0].description, "http on h1");
        assert!(decode_answer(&[0xff, 0x00, 0x13]).is_err());
        assert!(decode_answer(&[]).is_err());
        let other = minicbor::to_vec(Response::Ok).unwrap();
        assert!(decode_answer(&other).is_err());
        assert_eq!(parse_search(b""), Some(None));
        assert_eq!(parse_search(b"http"), Some(Some("http".into())));
        assert_eq!(parse_search(b"\xff\xfe"), None);
        assert_eq!(parse_search("x".repeat(300).as_bytes()), None);
    }

    #[test]
    fn implausible_hits_are_dropped_from_an_answer() {
        let mut bad_port = hit("http", "h1", 80, "b", 90);
        bad_port.port = 0;
        let no_cloud = hit("http", "h2", 80, "", 90);
        let long = hit(&"x".repeat(300), "h3", 80, "b", 90);
        let mut over = hit("http", "h4", 80, "b", 90);
        over.quality = 200;
        let mut bad_txt = hit("http", "h6", 80, "b", 90);
        bad_txt.txt = vec![(String::new(), "v".into())];
        let good = hit("http", "h5", 80, "b", 90);
        let all = vec![bad_port, no_cloud, long, over, bad_txt, good.clone()];
        let back = decode_answer(&encode(all)).unwrap();
        assert_eq!(keys(&back), vec![key(&good)]);
    }

    #[test]
    fn merge_drops_own_microcloud_dedups_and_ranks() {
        let local = vec![hit("http", "mine", 80, "a", 95)];
        let answers = vec![
            vec![
                hit("http", "far", 80, "b", 40),
                hit("http", "spoof", 80, "a", 100),
            ],
            // A second super node of our microcloud answers the same, better.
            vec![
                hit("http", "far", 80, "b", 60),
                hit("ssh", "x", 22, "c", 70),
            ],
        ];
        let out = merge(local, answers, "a");
        let seen: Vec<(&str, &str, u8)> = out
            .iter()
            .map(|v| (v.microcloud.as_str(), v.host.as_str(), v.quality))
            .collect();
        assert_eq!(
            seen,
            vec![("a", "mine", 95), ("c", "x", 70), ("b", "far", 60)]
        );
    }

    #[test]
    fn merge_puts_unhealthy_last_and_bounds_foreign_hits() {
        let mut sick = hit("http", "sick", 80, "b", 99);
        sick.health = Health::Unhealthy;
        let out = merge(
            Vec::new(),
            vec![vec![sick, hit("http", "ok", 80, "b", 10)]],
            "a",
        );
        assert_eq!(out[0].host, "ok");
        let many = (0..2000u16)
            .map(|i| hit("http", &format!("h{i}"), 80, "b", 50))
            .collect();
        let out = merge(Vec::new(), vec![many], "a");
        assert_eq!(out.len(), MAX_MERGED);
    }

    #[cfg(feature = "heavy")]
    mod heavy_side {
        use super::*;

        fn result(node: &str, r: g::ServiceRecord) -> g::SearchResult {
            g::SearchResult {
                node: node.into(),
                record: r,
                rtt_us: Some(2000),
                load_x100: 0,
            }
        }

        #[test]
        fn summary_groups_providers_of_one_type_and_port() {
            let mut sick = record("http", "aa", 80, "b");
            sick.health = g::Health::Unhealthy;
            let lan = vec![
                result("zz", record("http", "zz", 80, "b")),
                result("aa", sick),
                result("mm", record("http", "mm", 80, "b")),
                result("mm", record("ssh", "mm", 22, "b")),
            ];
            let (s, left) = summary(&lan, "b", 10);
            assert_eq!(left, 0);
            assert_eq!(s.len(), 2);
            assert_eq!(s[0].host, "mm", "healthy first, then by host name");
            assert_eq!(s[0].txt, vec![("providers".into(), "3".into())]);
            assert_eq!(s[1].service_type, "ssh");
            assert!(s[1].txt.is_empty());
        }

        #[test]
        fn summary_never_reexports_other_microclouds_and_is_bounded() {
            let lan = vec![
                result("x", record("http", "x", 80, "other")),
                result("y", record("a", "y", 1, "b")),
                result("y", record("b", "y", 2, "b")),
                result("y", record("c", "y", 3, "b")),
            ];
            let (s, left) = summary(&lan, "b", 2);
            let types: Vec<&str> = s.iter().map(|r| r.service_type.as_str()).collect();
            assert_eq!(types, vec!["a", "b"]);
            assert_eq!(left, 1);
        }

        #[test]
        fn plan_publishes_changes_and_unpublishes_what_went_away() {
            let a = record("http", "h", 80, "b");
            let mut a2 = a.clone();
            a2.description = "changed".into();
            let b = record("ssh", "h", 22, "b");
            let (p, u) = plan(&[a.clone(), b.clone()], &[a2.clone()]);
            assert_eq!(p, vec![a2]);
            assert_eq!(u, vec![("ssh".to_string(), 22)]);
            let (p, u) = plan(std::slice::from_ref(&a), std::slice::from_ref(&a));
            assert!(p.is_empty() && u.is_empty());
        }

        #[test]
        fn foreign_keeps_only_what_a_publisher_may_speak_for() {
            let pool = vec![
                result("sb", record("http", "h", 80, "b")),
                // Our own microcloud, re-exported by someone: never.
                result("sb", record("http", "h", 81, "a")),
                // A super node of c passing on b's record (a loop): refused.
                result("sc", record("http", "h", 82, "b")),
            ];
            let tag = |n: &str| Some(if n == "sb" { "b" } else { "c" }.to_string());
            let f = foreign(&pool, "a", tag);
            assert_eq!(f.len(), 1);
            assert_eq!(f[0].record.port, 80);
        }

        #[test]
        fn answer_dedups_filters_by_type_and_fits_the_budget() {
            let rs: Vec<g::SearchResult> = (0..100u16)
                .map(|i| result("sb", record("http", &format!("host-{i}"), 80, "b")))
                .chain([
                    result("sb2", record("http", "host-0", 80, "b")),
                    // The worst of all: still in, as the only one of its type.
                    result(
                        "sb",
                        g::ServiceRecord {
                            health: g::Health::Unhealthy,
                            ..record("ssh", "s", 22, "b")
                        },
                    ),
                ])
                .collect();
            let refs: Vec<&g::SearchResult> = rs.iter().collect();
            let bytes = answer(&refs, None, 1200);
            assert!(bytes.len() <= 1200);
            let a = decode_answer(&bytes).unwrap();
            assert!(a.len() > 5, "{} hits fit", a.len());
            let mut ks = keys(&a);
            ks.dedup();
            assert_eq!(ks.len(), a.len(), "no duplicates");
            assert!(
                a.iter().any(|h| h.service_type == "ssh"),
                "every type gets its best hit in before a second of another"
            );
            let a = decode_answer(&answer(&refs, Some("ssh"), 1200)).unwrap();
            assert_eq!(a.len(), 1);
            assert_eq!(a[0].service_type, "ssh");
        }
    }
}
