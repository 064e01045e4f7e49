//! How the CLI shows the agent's answers: tables for people (peer-supplied
//! text with its control characters replaced), one line per monitored
//! change. Pure functions from control responses to text; `crate::client`
//! prints them, `--json` prints the protocol's own JSON instead.

use nuvol_control::*;

/// One monitored change on one line.
pub fn change_line(c: &ChangeView) -> String {
    match c {
        ChangeView::Member(m) => format!("member {} {} {}", m.name, m.state.as_str(), m.addr),
        ChangeView::ServiceUp(s) => format!(
            "service-up {} {}:{} on {} ({})",
            s.service_type, s.ip, s.port, s.host, s.description
        ),
        ChangeView::ServiceDown(s) => format!(
            "service-down {} {}:{} on {}",
            s.service_type, s.ip, s.port, s.host
        ),
        ChangeView::Event {
            from,
            name,
            payload,
            lamport,
        } => format!(
            "event {name} from {from} (ltime {lamport}): {}",
            String::from_utf8_lossy(payload)
        ),
    }
}

/// `nuvol info`'s packets row: those that failed to open, and those that
/// opened but were not gossip (only when there are any).
fn rejected(i: &NodeInfo) -> String {
    match i.packets_malformed {
        Some(bad) if bad > 0 => format!("{} packets, {bad} malformed", i.packets_rejected),
        _ => format!("{} packets", i.packets_rejected),
    }
}

/// `nuvol info`'s refusals row, empty (left out) when nothing was refused or
/// the agent is too old to say: members and services the agent dropped
/// because a table was full, which the owner fixes by raising
/// `max_members` (or which means someone is sending fakes).
fn refused(i: &NodeInfo) -> String {
    let mut parts = Vec::new();
    if let Some(n @ 1..) = i.members_refused {
        parts.push(match i.max_members {
            Some(cap) => format!("{n} new members (member table full at {cap})"),
            None => format!("{n} new members (member table full)"),
        });
    }
    if let Some(n @ 1..) = i.services_refused {
        parts.push(format!("{n} services (a node's catalog full)"));
    }
    parts.join(", ")
}

/// Round-trip time in ms with one decimal. Integer arithmetic: float
/// formatting alone costs the binary a few kB.
fn rtt(us: Option<u64>) -> String {
    match us {
        Some(us) => {
            let tenths = us.saturating_add(50) / 100;
            format!("{}.{}ms", tenths / 10, tenths % 10)
        }
        None => "-".into(),
    }
}

fn pairs(p: &[(String, String)]) -> String {
    p.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Human-readable form of every response.
pub fn render(resp: &Response, done: &str) -> String {
    match resp {
        Response::Ok => {
            if done.is_empty() {
                String::new()
            } else {
                format!("{done}\n")
            }
        }
        Response::Error { message } => format!("error: {message}\n"),
        Response::Info(i) => {
            let rows = [
                ("name", i.name.clone()),
                ("microcloud", i.microcloud.clone()),
                ("addr", i.addr.clone()),
                ("version", i.version.clone()),
                ("board", i.board.clone()),
                ("arch", i.arch.clone()),
                ("uptime", format!("{}s", i.uptime_s)),
                (
                    "memory",
                    format!("{} kB free of {} kB", i.mem_free_kb, i.mem_total_kb),
                ),
                (
                    "load",
                    format!("{}.{:02}", i.load_x100 / 100, i.load_x100 % 100),
                ),
                (
                    "members",
                    format!("{} alive of {}", i.members_alive, i.members_total),
                ),
                ("health", format!("{} (0 best, 8 worst)", i.health_score)),
                ("incarnation", i.incarnation.to_string()),
                (
                    "keys",
                    format!(
                        "{} installed, encryption {}",
                        i.keys_installed,
                        if i.encrypted { "on" } else { "off" }
                    ),
                ),
                ("rejected", rejected(i)),
                ("refused", refused(i)),
                ("agent rss", format!("{} kB", i.agent_rss_kb)),
            ];
            rows.iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| format!("{k:<12} {v}\n"))
                .collect()
        }
        Response::Members(ms) => table(
            &["NAME", "ADDR", "STATE", "RTT", "MICROCLOUD", "TAGS"],
            ms.iter()
                .map(|m| {
                    vec![
                        m.name.clone(),
                        m.addr.clone(),
                        m.state.as_str().into(),
                        rtt(m.rtt_us),
                        m.microcloud.clone(),
                        pairs(&m.tags),
                    ]
                })
                .collect(),
        ),
        Response::Services(ss) => table(
            &[
                "QUALITY",
                "TYPE",
                "DESCRIPTION",
                "HOST",
                "IP",
                "PORT",
                "MICROCLOUD",
                "HEALTH",
                "RTT",
                "TXT",
            ],
            ss.iter()
                .map(|s| {
                    vec![
                        s.quality.to_string(),
                        s.service_type.clone(),
                        s.description.clone(),
                        s.host.clone(),
                        s.ip.clone(),
                        s.port.to_string(),
                        s.microcloud.clone(),
                        s.health.as_str().into(),
                        rtt(s.rtt_us),
                        pairs(&s.txt),
                    ]
                })
                .collect(),
        ),
        Response::Rtt { node, rtt_us } => match rtt_us {
            Some(_) => format!("{node}: {}\n", rtt(*rtt_us)),
            None => format!("{node}: no estimate yet\n"),
        },
        Response::QueryResponses(answers) => answers
            .iter()
            .map(|a| format!("{}: {}\n", a.node, String::from_utf8_lossy(&a.payload)))
            .collect(),
        Response::Keys(keys) => keys
            .iter()
            .map(|k| {
                format!(
                    "{}{}\n",
                    k.fingerprint,
                    if k.primary { " (primary)" } else { "" }
                )
            })
            .collect(),
        Response::Key(k) => format!("{k}\n"),
        Response::Change(c) => format!("{}\n", change_line(c)),
        Response::Instances(is) => table(
            &[
                "NAME",
                "KIND",
                "STATE",
                "PID",
                "HEALTH",
                "RESTARTS",
                "PUBLISHED",
                "UPTIME",
            ],
            is.iter()
                .map(|i| {
                    vec![
                        i.name.clone(),
                        i.kind.clone(),
                        i.state.clone(),
                        i.pid.map_or("-".into(), |p| p.to_string()),
                        i.health.as_str().into(),
                        i.restarts.to_string(),
                        if i.published { "yes" } else { "no" }.into(),
                        i.uptime_s.map_or("-".into(), |u| format!("{u}s")),
                    ]
                })
                .collect(),
        ),
        Response::Logs(lines) => lines.iter().map(|l| format!("{l}\n")).collect(),
        Response::Templates(ts) => table(
            &["NAME", "VERSION", "SUPPORTED", "INSTALLED", "DESCRIPTION"],
            ts.iter()
                .map(|t| {
                    vec![
                        t.name.clone(),
                        t.version.clone(),
                        if t.supported { "yes" } else { "no" }.into(),
                        if t.installed { "yes" } else { "no" }.into(),
                        t.description.clone(),
                    ]
                })
                .collect(),
        ),
        Response::Apps(apps) => table(
            &[
                "NAME",
                "TEMPLATE",
                "STATE",
                "IPS",
                "PORTS",
                "HEALTH",
                "PUBLISHED",
            ],
            apps.iter()
                .map(|a| {
                    vec![
                        a.name.clone(),
                        a.template.clone(),
                        a.state.clone(),
                        a.ips.join(","),
                        a.ports
                            .iter()
                            .map(|(c, p)| format!("{p}->{c}"))
                            .collect::<Vec<_>>()
                            .join(","),
                        a.health.as_str().into(),
                        if a.published { "yes" } else { "no" }.into(),
                    ]
                })
                .collect(),
        ),
    }
}

/// Left-aligned columns; peer-supplied text has control characters replaced
/// so a hostile description cannot rewrite the owner's terminal.
fn table(head: &[&str], rows: Vec<Vec<String>>) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect()
    };
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| r.iter().map(|c| clean(c)).collect())
        .collect();
    let mut width: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                l.push_str(c);
                l.push_str(&" ".repeat(width[i] - c.chars().count() + 2));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(head.to_vec());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_shows_refusals_only_when_there_are_some() {
        let quiet = NodeInfo {
            members_refused: Some(0),
            services_refused: Some(0),
            max_members: Some(1024),
            packets_malformed: Some(0),
            ..NodeInfo::default()
        };
        let text = render(&Response::Info(quiet.clone()), "");
        assert!(!text.contains("refused"), "{text}");
        assert!(text.contains("rejected     0 packets\n"), "{text}");
        // An old agent reports none of them: same output.
        assert!(!render(&Response::Info(NodeInfo::default()), "").contains("refused"));
        let full = NodeInfo {
            members_refused: Some(12),
            services_refused: Some(3),
            packets_malformed: Some(2),
            ..quiet.clone()
        };
        let text = render(&Response::Info(full), "");
        assert!(
            text.contains("refused      12 new members (member table full at 1024), 3 services (a node's catalog full)\n"),
            "{text}"
        );
        assert!(
            text.contains("rejected     0 packets, 2 malformed\n"),
            "{text}"
        );
        let services_only = NodeInfo {
            services_refused: Some(3),
            ..quiet
        };
        let text = render(&Response::Info(services_only), "");
        assert!(
            text.contains("refused      3 services (a node's catalog full)\n"),
            "{text}"
        );
    }

    #[test]
    fn rtt_and_load_print_with_fixed_decimals() {
        assert_eq!(rtt(Some(1_234)), "1.2ms");
        assert_eq!(rtt(Some(1_250)), "1.3ms");
        assert_eq!(rtt(Some(999_960)), "1000.0ms");
        assert_eq!(rtt(Some(0)), "0.0ms");
        assert_eq!(rtt(None), "-");
        let info = Response::Info(NodeInfo {
            load_x100: 7,
            ..NodeInfo::default()
        });
        assert!(render(&info, "").contains("0.07"));
    }

    #[test]
    fn table_replaces_control_characters_from_peers() {
        let t = table(&["A"], vec![vec!["evil\x1b[2Jname".into()]]);
        assert!(!t.contains('\x1b'));
    }
}
