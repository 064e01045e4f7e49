//! HTML for each view, written straight into one `String`.
//!
//! No templates: a page is a few `push_str` calls per row, which keeps a
//! 300-row search page well under a millisecond of CPU on a 500 MHz router.
//! Every function here takes data the agent answered and escapes each value
//! with [`crate::html`]; nothing in this module talks to the agent.
//!
//! Tables carry a `data-l` label on every cell so that, on a phone-width
//! screen, the stylesheet turns each row into a card with labelled lines.

use crate::html::{attr, service_url, text, url_component};
use nuvol_control::{
    AppView, Health, InstanceView, MemberState, MemberView, NodeInfo, QueryAnswer, Scope,
    ServiceView, TemplateView,
};

/// The views, as the navigation names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Overview,
    Members,
    Search,
    Services,
    Apps,
    Events,
}

impl View {
    pub const ALL: [View; 6] = [
        View::Overview,
        View::Members,
        View::Search,
        View::Services,
        View::Apps,
        View::Events,
    ];

    /// Path below the page's base URL.
    pub fn path(self) -> &'static str {
        match self {
            View::Overview => "/",
            View::Members => "/members",
            View::Search => "/search",
            View::Services => "/services",
            View::Apps => "/apps",
            View::Events => "/events",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            View::Overview => "Overview",
            View::Members => "Members",
            View::Search => "Search",
            View::Services => "Services",
            View::Apps => "Apps",
            View::Events => "Events",
        }
    }

    pub fn from_path(path: &str) -> Option<View> {
        let p = path.trim_end_matches('/');
        View::ALL
            .into_iter()
            .find(|v| v.path().trim_end_matches('/') == p)
    }
}

const CSS: &str = "\
*{box-sizing:border-box}\
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#1f2933;background:#f4f6f8}\
header{background:#17497a;color:#fff;padding:.6em 1em .3em}\
header b{font-size:1.15em;margin-right:1em}\
nav{display:flex;flex-wrap:wrap;gap:.1em 1em;margin-top:.3em}\
nav a{color:#dbe8f5;text-decoration:none;padding:.2em 0 .3em;border-bottom:3px solid transparent}\
nav a.on{color:#fff;border-color:#f0b429}\
main{padding:.8em 1em 2em;max-width:72em}\
h1{font-size:1.3em;margin:.3em 0 .6em}h2{font-size:1.1em;margin:1.4em 0 .5em}\
table{border-collapse:collapse;width:100%;background:#fff;box-shadow:0 1px 2px #0002;border-radius:6px;overflow:hidden}\
th,td{padding:.45em .6em;border-bottom:1px solid #e4e7eb;text-align:left;vertical-align:top}\
th{background:#e9eef3;font-weight:600;font-size:.9em}\
td.n{text-align:right;font-variant-numeric:tabular-nums}\
a{color:#17497a}\
.tabs{margin:.2em 0 .7em}\
.tabs a{display:inline-block;padding:.25em .8em;margin:0 .3em .4em 0;border:1px solid #bcccdc;border-radius:1em;background:#fff;text-decoration:none}\
.tabs a.on{background:#17497a;border-color:#17497a;color:#fff}\
.tabs span{margin-right:.5em;color:#52606d}\
button,input[type=submit]{font:inherit;padding:.3em .8em;margin:.1em .2em .1em 0;border:1px solid #9fb3c8;border-radius:4px;background:#fff;cursor:pointer}\
button.go{background:#17497a;border-color:#17497a;color:#fff}button.bad{color:#b42318;border-color:#e8a3a3}\
input,textarea,select{font:inherit;padding:.3em;border:1px solid #bcccdc;border-radius:4px;max-width:100%}\
form.i{display:inline}\
label{display:block;margin:.4em 0}\
.open{display:inline-block;padding:.15em .8em;border-radius:4px;background:#2f8132;color:#fff;text-decoration:none}\
.q{display:inline-block;width:3.2em;height:.55em;background:#e4e7eb;border-radius:.3em;margin-right:.4em;vertical-align:middle}\
.q i{display:block;height:100%;border-radius:.3em;background:#3ebd93}\
.s-alive,.s-healthy,.s-running,.s-RUNNING{color:#1f7a3a}\
.s-suspect,.s-backoff,.s-starting,.s-stopping{color:#b45309}\
.s-failed,.s-unhealthy,.s-left,.s-STOPPED,.s-stopped{color:#b42318}\
.msg{padding:.7em 1em;border-radius:6px;margin:.5em 0 1em;background:#e3f8ff;border:1px solid #9fd8ef}\
.err{background:#fde8e8;border-color:#e8a3a3}\
pre{margin:.3em 0 0;padding:.4em;background:#f0f2f5;font-size:.85em;white-space:pre-wrap;word-break:break-all}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:.3em 1em;background:#fff;padding:.8em 1em;border-radius:6px;box-shadow:0 1px 2px #0002}\
dt{color:#52606d}dd{margin:0}\
.empty{color:#52606d;font-style:italic}\
@media(max-width:640px){\
table,tbody,tr,td{display:block;width:100%}thead{display:none}\
tr{border-bottom:2px solid #d9e2ec;padding:.3em 0}td{border:0;padding:.15em .7em}\
td[data-l]::before{content:attr(data-l);display:inline-block;min-width:6.5em;color:#52606d;font-size:.85em}\
td.n{text-align:left}}";

/// One HTML page being written.
pub struct Page {
    pub out: String,
    base: String,
    csrf: String,
}

impl Page {
    /// Starts a page: head, header and navigation with `active` highlighted.
    /// `base` prefixes every link (`/cgi-bin/nuvol`, or empty for the built-in
    /// server); `csrf` goes into every form.
    pub fn start(base: &str, csrf: &str, active: Option<View>, title: &str, logout: bool) -> Page {
        let mut out = String::with_capacity(16 * 1024);
        out.push_str("<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width,initial-scale=1\"><title>");
        text(&mut out, title);
        out.push_str(" · nuvol</title><style>");
        out.push_str(CSS);
        out.push_str("</style></head><body><header><b>nuvol</b><nav>");
        let mut page = Page {
            out,
            base: base.to_string(),
            csrf: csrf.to_string(),
        };
        for v in View::ALL {
            page.out.push_str("<a href=\"");
            page.link(v.path());
            page.out.push('"');
            if Some(v) == active {
                page.out.push_str(" class=on");
            }
            page.out.push('>');
            page.out.push_str(v.title());
            page.out.push_str("</a>");
        }
        if logout {
            page.out.push_str("<form class=i method=post action=\"");
            page.link("/logout");
            page.out.push_str("\">");
            page.csrf_field();
            page.out.push_str("<button>Log out</button></form>");
        }
        page.out.push_str("</nav></header><main>");
        page
    }

    /// Appends an escaped link to `path` below the base.
    pub fn link(&mut self, path: &str) {
        let base = std::mem::take(&mut self.base);
        attr(&mut self.out, &base);
        // Under a CGI base the overview is the script itself: busybox httpd
        // answers 404 for `/cgi-bin/nuvol/` with the trailing slash.
        if base.is_empty() || path != "/" {
            attr(&mut self.out, path);
        }
        self.base = base;
    }

    fn csrf_field(&mut self) {
        self.out.push_str("<input type=hidden name=csrf value=\"");
        attr(&mut self.out, &self.csrf);
        self.out.push_str("\">");
    }

    /// Opens a POST form to `action` with the CSRF token in it.
    pub fn form(&mut self, action: &str, inline: bool) {
        self.out.push_str(if inline {
            "<form class=i method=post action=\""
        } else {
            "<form method=post action=\""
        });
        self.link(action);
        self.out.push_str("\">");
        self.csrf_field();
    }

    fn hidden(&mut self, name: &str, value: &str) {
        self.out.push_str("<input type=hidden name=");
        self.out.push_str(name);
        self.out.push_str(" value=\"");
        attr(&mut self.out, value);
        self.out.push_str("\">");
    }

    /// A one-button form posting `fields` to `action`; `class` is `go`
    /// (the expected next step), `bad` (destructive) or empty.
    pub fn button(&mut self, action: &str, fields: &[(&str, &str)], label: &str, class: &str) {
        self.form(action, true);
        for (k, v) in fields {
            self.hidden(k, v);
        }
        if class.is_empty() {
            self.out.push_str("<button>");
        } else {
            self.out.push_str("<button class=");
            self.out.push_str(class);
            self.out.push('>');
        }
        self.out.push_str(label);
        self.out.push_str("</button></form>");
    }

    pub fn h1(&mut self, s: &str) {
        self.out.push_str("<h1>");
        text(&mut self.out, s);
        self.out.push_str("</h1>");
    }

    pub fn h2(&mut self, s: &str) {
        self.out.push_str("<h2>");
        text(&mut self.out, s);
        self.out.push_str("</h2>");
    }

    /// A message box; `error` makes it red.
    pub fn message(&mut self, msg: &str, error: bool) {
        self.out.push_str(if error {
            "<p class=\"msg err\">"
        } else {
            "<p class=msg>"
        });
        text(&mut self.out, msg);
        self.out.push_str("</p>");
    }

    fn table(&mut self, headers: &[&str]) {
        self.out.push_str("<table><thead><tr>");
        for h in headers {
            self.out.push_str("<th>");
            self.out.push_str(h);
            self.out.push_str("</th>");
        }
        self.out.push_str("</tr></thead><tbody>");
    }

    fn end_table(&mut self, rows: usize, cols: usize, empty: &str) {
        if rows == 0 {
            self.out.push_str("<tr><td class=empty colspan=");
            self.out.push_str(&cols.to_string());
            self.out.push('>');
            self.out.push_str(empty);
            self.out.push_str("</td></tr>");
        }
        self.out.push_str("</tbody></table>");
    }

    /// Opens a cell labelled `label` for the phone layout.
    fn td(&mut self, label: &str) {
        self.out.push_str("<td data-l=\"");
        self.out.push_str(label);
        self.out.push_str("\">");
    }

    fn td_text(&mut self, label: &str, s: &str) {
        self.td(label);
        text(&mut self.out, s);
        self.out.push_str("</td>");
    }

    /// A cell with a state word coloured by class (the word is escaped and
    /// the class is only ever a known word).
    fn td_state(&mut self, label: &str, s: &str) {
        self.td(label);
        self.out.push_str("<span class=\"s-");
        if s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            self.out.push_str(s);
        }
        self.out.push_str("\">");
        text(&mut self.out, s);
        self.out.push_str("</span></td>");
    }

    /// Closes the page.
    pub fn finish(mut self) -> String {
        self.out.push_str("</main></body></html>");
        self.out
    }
}

/// `1.2 ms`, `35 ms`, or `—` when unknown.
pub fn fmt_rtt(rtt_us: Option<u64>) -> String {
    match rtt_us {
        None => "—".into(),
        Some(us) if us < 10_000 => format!("{}.{} ms", us / 1000, us % 1000 / 100),
        Some(us) => format!("{} ms", us / 1000),
    }
}

/// `42 s`, `3 min`, `5 h`, `2 d`.
pub fn fmt_age(s: u64) -> String {
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}

fn fmt_kb(kb: u64) -> String {
    match kb {
        0..=1023 => format!("{kb} kB"),
        1024..=10239 => format!("{}.{} MB", kb / 1024, kb % 1024 * 10 / 1024),
        _ => format!("{} MB", kb / 1024),
    }
}

/// What the agent dropped because a table was full, for the overview's
/// warning row; empty when nothing was (or an old agent does not say).
fn refusals(i: &NodeInfo) -> String {
    let mut parts = Vec::new();
    if let Some(n @ 1..) = i.members_refused {
        let cap = i
            .max_members
            .map(|c| format!(" at {c}"))
            .unwrap_or_default();
        parts.push(format!(
            "{n} new members: the member table is full{cap} (raise max_members \
             if the microcloud is that big, else someone is sending fake members)"
        ));
    }
    if let Some(n @ 1..) = i.services_refused {
        parts.push(format!(
            "{n} services: a node published more than its catalog holds"
        ));
    }
    parts.join("; ")
}

/// The overview: this node, plus forms to join and leave (and to set the
/// microcloud's key while there is none).
pub fn overview(p: &mut Page, i: &NodeInfo) {
    p.h1(&format!("{} in {}", i.name, i.microcloud));
    if !i.encrypted {
        key_form(p);
    }
    p.out.push_str("<dl>");
    let used = i.mem_total_kb.saturating_sub(i.mem_free_kb);
    let rows: [(&str, String); 14] = [
        ("Node", i.name.clone()),
        ("Microcloud", i.microcloud.clone()),
        ("Board", format!("{} ({})", i.board, i.arch)),
        ("Version", i.version.clone()),
        ("Gossip address", i.addr.clone()),
        ("Uptime", fmt_age(i.uptime_s)),
        (
            "Memory",
            format!("{} used of {}", fmt_kb(used), fmt_kb(i.mem_total_kb)),
        ),
        (
            "Load",
            format!("{}.{:02}", i.load_x100 / 100, i.load_x100 % 100),
        ),
        (
            "Members",
            format!("{} alive of {}", i.members_alive, i.members_total),
        ),
        (
            "Keys",
            format!(
                "{} installed, {}",
                i.keys_installed,
                if i.encrypted {
                    "packets encrypted"
                } else {
                    "NOT encrypted"
                }
            ),
        ),
        (
            "Local health",
            format!("{} (0 is best, 8 worst)", i.health_score),
        ),
        ("Incarnation", i.incarnation.to_string()),
        ("Agent memory", fmt_kb(i.agent_rss_kb)),
        (
            "Rejected packets",
            match i.packets_malformed {
                Some(bad) if bad > 0 => format!("{}, {bad} malformed", i.packets_rejected),
                _ => i.packets_rejected.to_string(),
            },
        ),
    ];
    for (k, v) in rows {
        p.out.push_str("<dt>");
        p.out.push_str(k);
        p.out.push_str("</dt><dd>");
        text(&mut p.out, &v);
        p.out.push_str("</dd>");
    }
    let refused = refusals(i);
    if !refused.is_empty() {
        p.out.push_str("<dt>Refused</dt><dd class=s-failed>");
        text(&mut p.out, &refused);
        p.out.push_str("</dd>");
    }
    p.out.push_str("</dl>");
    p.h2("Join a microcloud");
    p.form("/join", false);
    p.out.push_str("<label>Addresses (ip:port, separated by spaces) <input name=addrs size=40 required></label><button class=go>Join</button></form>");
    p.h2("Leave");
    p.button("/leave", &[], "Leave the microcloud", "");
}

/// The warning that gossip travels in the clear, and the form that sets the
/// key every node of the microcloud shares (POST /key).
fn key_form(p: &mut Page) {
    p.message(
        "This microcloud is NOT encrypted: anyone on the networks this node listens on can read its gossip and pretend to be a member. Give every node the same key.",
        true,
    );
    p.form("/key", false);
    p.out.push_str(
        "<label>Microcloud key (base64, from another node's page or <code>nuvol keys generate</code>; empty: make a new one) \
<input name=key size=48 maxlength=64 autocomplete=off></label>\
<button class=go>Encrypt with this key</button></form>\
<p>This node then talks only to nodes with the same key: set it on all of them.</p>",
    );
}

/// After POST /key made a new key: show it once, to copy to the other nodes.
pub fn key_made(p: &mut Page, key: &str) {
    p.h1("A new microcloud key");
    p.message("This node now encrypts its gossip with this key. Set the same key on every other node of the microcloud (their page, or nuvol keys install KEY and nuvol keys use KEY):", false);
    p.out.push_str("<pre>");
    text(&mut p.out, key);
    p.out.push_str("</pre>");
}

/// Members with state, microcloud, estimated RTT and age of their state.
pub fn members(p: &mut Page, members: &[MemberView]) {
    let alive = members
        .iter()
        .filter(|m| m.state == MemberState::Alive)
        .count();
    p.h1(&format!("Members ({alive} alive of {})", members.len()));
    p.table(&["Name", "State", "Microcloud", "Address", "RTT", "Changed"]);
    for m in members {
        p.out.push_str("<tr>");
        p.td_text("Name", &m.name);
        p.td_state("State", m.state.as_str());
        p.td_text("Microcloud", &m.microcloud);
        p.td_text("Address", &m.addr);
        p.td_text("RTT", &fmt_rtt(m.rtt_us));
        p.td_text("Changed", &format!("{} ago", fmt_age(m.since_change_s)));
        p.out.push_str("</tr>");
    }
    p.end_table(members.len(), 6, "No members known yet.");
}

/// Service search: scope switch, a tab per type seen, and the results of the
/// selected type (all when `selected` is empty), best quality first as the
/// agent sorted them. Unless `show_all`, only the best [`SEARCH_ROWS`] are
/// listed, with a link to the rest: a phone on a lossy link should not pull a
/// 150 kB page to see the top of the list.
pub fn search(p: &mut Page, results: &[ServiceView], scope: Scope, selected: &str, show_all: bool) {
    p.h1("Search services");
    let mut types: Vec<&str> = results.iter().map(|s| s.service_type.as_str()).collect();
    types.sort_unstable();
    types.dedup();
    let tab = |p: &mut Page, ty: &str, sc: Scope, label: &str, on: bool| {
        p.out.push_str("<a href=\"");
        p.link("/search");
        let mut q = String::from("?scope=");
        q.push_str(sc.as_str());
        if !ty.is_empty() {
            q.push_str("&type=");
            url_component(&mut q, ty);
        }
        attr(&mut p.out, &q);
        p.out.push_str(if on { "\" class=on>" } else { "\">" });
        text(&mut p.out, label);
        p.out.push_str("</a>");
    };
    p.out.push_str("<div class=tabs><span>Scope</span>");
    for sc in [Scope::Microcloud, Scope::Global] {
        let label = if sc == Scope::Microcloud {
            "This microcloud"
        } else {
            "Global"
        };
        tab(p, selected, sc, label, sc == scope);
    }
    p.out.push_str("</div><div class=tabs><span>Type</span>");
    tab(p, "", scope, "all", selected.is_empty());
    for ty in &types {
        tab(p, ty, scope, ty, *ty == selected);
    }
    p.out.push_str("</div>");
    p.table(&[
        "Quality",
        "Type",
        "Description",
        "Host",
        "IP",
        "Port",
        "Microcloud",
        "",
    ]);
    let matching = || {
        results
            .iter()
            .filter(|s| selected.is_empty() || s.service_type == selected)
    };
    let total = matching().count();
    let shown = if show_all {
        total
    } else {
        total.min(SEARCH_ROWS)
    };
    for s in matching().take(shown) {
        p.out.push_str("<tr>");
        p.td("Quality");
        let q = s.quality.min(100);
        p.out.push_str("<span class=q><i style=\"width:");
        p.out.push_str(&q.to_string());
        p.out.push_str("%\"></i></span>");
        p.out.push_str(&q.to_string());
        if s.health == Health::Unhealthy {
            p.out.push_str(" <span class=s-unhealthy>unhealthy</span>");
        }
        p.out.push_str("</td>");
        p.td_text("Type", &s.service_type);
        p.td_text("Description", &s.description);
        p.td_text("Host", &s.host);
        p.td_text("IP", &s.ip);
        p.td("Port");
        p.out.push_str(&s.port.to_string());
        p.out.push_str("</td>");
        p.td_text("Microcloud", &s.microcloud);
        p.out.push_str("<td>");
        if let Some(url) = service_url(&s.service_type, &s.ip, s.port, &s.txt) {
            p.out
                .push_str("<a class=open rel=\"noopener noreferrer\" target=_blank href=\"");
            attr(&mut p.out, &url);
            p.out.push_str("\">Open</a>");
        }
        p.out.push_str("</td></tr>");
    }
    p.end_table(shown, 8, "No services found.");
    if shown < total {
        p.out.push_str("<p><a href=\"");
        p.link("/search");
        let mut q = String::from("?all=1&scope=");
        q.push_str(scope.as_str());
        if !selected.is_empty() {
            q.push_str("&type=");
            url_component(&mut q, selected);
        }
        attr(&mut p.out, &q);
        p.out.push_str("\">Show all ");
        p.out.push_str(&total.to_string());
        p.out.push_str(" results</a></p>");
    }
}

/// Rows a search page lists before "show all".
pub const SEARCH_ROWS: usize = 100;

/// Supervised instances with their controls, then this node's own records
/// with unpublish buttons and a form to publish a new one.
pub fn services(p: &mut Page, instances: &[InstanceView], records: &[ServiceView]) {
    p.h1("Local services");
    p.table(&[
        "Name",
        "Kind",
        "State",
        "Health",
        "Restarts",
        "Uptime",
        "Published",
        "Actions",
    ]);
    for i in instances {
        p.out.push_str("<tr>");
        p.td("Name");
        text(&mut p.out, &i.name);
        if !i.last_log.is_empty() {
            p.out.push_str("<pre>");
            for line in &i.last_log {
                text(&mut p.out, line);
                p.out.push('\n');
            }
            p.out.push_str("</pre>");
        }
        p.out.push_str("</td>");
        p.td_text("Kind", &i.kind);
        p.td_state("State", &i.state);
        p.td_state("Health", i.health.as_str());
        p.td("Restarts");
        p.out.push_str(&i.restarts.to_string());
        p.out.push_str("</td>");
        p.td_text(
            "Uptime",
            &i.uptime_s.map(fmt_age).unwrap_or_else(|| "—".into()),
        );
        p.td_text("Published", if i.published { "yes" } else { "no" });
        p.td("Actions");
        let running = matches!(i.state.as_str(), "running" | "starting" | "backoff");
        let name = i.name.as_str();
        if running {
            p.button(
                "/service",
                &[("name", name), ("action", "stop")],
                "Stop",
                "",
            );
            p.button(
                "/service",
                &[("name", name), ("action", "restart")],
                "Restart",
                "",
            );
        } else {
            p.button(
                "/service",
                &[("name", name), ("action", "start")],
                "Start",
                "go",
            );
        }
        if i.published {
            p.button(
                "/service",
                &[("name", name), ("action", "unpublish")],
                "Unpublish",
                "",
            );
        } else {
            p.button(
                "/service",
                &[("name", name), ("action", "publish")],
                "Publish",
                "",
            );
        }
        p.out.push_str("</td></tr>");
    }
    p.end_table(instances.len(), 8, "No supervised services configured.");

    p.h2("Records this node publishes");
    p.table(&["Type", "Port", "Description", "Health", ""]);
    for r in records {
        p.out.push_str("<tr>");
        p.td_text("Type", &r.service_type);
        p.td("Port");
        p.out.push_str(&r.port.to_string());
        p.out.push_str("</td>");
        p.td_text("Description", &r.description);
        p.td_state("Health", r.health.as_str());
        p.out.push_str("<td>");
        let port = r.port.to_string();
        p.button(
            "/unpublish",
            &[("type", &r.service_type), ("port", &port)],
            "Unpublish",
            "",
        );
        p.out.push_str("</td></tr>");
    }
    p.end_table(records.len(), 5, "Nothing published.");

    p.h2("Publish a service");
    p.form("/publish", false);
    p.out.push_str(
        "<label>Type <input name=type required maxlength=64 placeholder=http></label>\
<label>Port <input name=port type=number min=1 max=65535 required></label>\
<label>Description <input name=description maxlength=200 size=40></label>\
<label>TXT (one key=value per line) <textarea name=txt rows=2 cols=30></textarea></label>\
<button class=go>Publish</button></form>",
    );
}

/// Templates with an install form, then installed apps with their controls.
pub fn apps(p: &mut Page, templates: &[TemplateView], apps: &[AppView]) {
    p.h1("Apps");
    p.h2("Installed");
    p.table(&[
        "Name",
        "Template",
        "State",
        "Addresses",
        "Memory",
        "Health",
        "Published",
        "Actions",
    ]);
    for a in apps {
        p.out.push_str("<tr>");
        p.td_text("Name", &a.name);
        p.td_text("Template", &a.template);
        p.td_state("State", &a.state);
        p.td("Addresses");
        for (n, ip) in a.ips.iter().enumerate() {
            if n > 0 {
                p.out.push_str(", ");
            }
            text(&mut p.out, ip);
        }
        for (c, h) in &a.ports {
            p.out.push_str(&format!(" {h}→{c}"));
        }
        p.out.push_str("</td>");
        p.td_text(
            "Memory",
            &a.memory_bytes
                .map(|b| fmt_kb(b / 1024))
                .unwrap_or_else(|| "—".into()),
        );
        p.td_state("Health", a.health.as_str());
        p.td_text("Published", if a.published { "yes" } else { "no" });
        p.td("Actions");
        let name = a.name.as_str();
        if a.state.eq_ignore_ascii_case("running") {
            p.button("/app", &[("name", name), ("action", "stop")], "Stop", "");
        } else {
            p.button(
                "/app",
                &[("name", name), ("action", "start")],
                "Start",
                "go",
            );
        }
        if a.published {
            p.button(
                "/app",
                &[("name", name), ("action", "unpublish")],
                "Unpublish",
                "",
            );
        } else {
            p.button(
                "/app",
                &[("name", name), ("action", "publish")],
                "Publish",
                "",
            );
        }
        p.button(
            "/app",
            &[("name", name), ("action", "uninstall")],
            "Uninstall",
            "bad",
        );
        p.out.push_str("</td></tr>");
    }
    p.end_table(apps.len(), 8, "No apps installed.");

    p.h2("Templates");
    p.table(&[
        "Template",
        "Description",
        "Version",
        "Architectures",
        "Install",
    ]);
    for t in templates {
        p.out.push_str("<tr>");
        p.td_text("Template", &t.name);
        p.td_text("Description", &t.description);
        p.td_text("Version", &t.version);
        p.td_text("Arch", &t.architectures.join(" "));
        p.td("Install");
        if t.installed {
            p.out.push_str("installed");
        } else if !t.supported {
            p.out.push_str("not for this board");
        } else {
            p.form("/install", true);
            p.hidden("template", &t.name);
            p.out.push_str("<input name=name size=10 maxlength=64 aria-label=\"container name\" placeholder=\"");
            attr(&mut p.out, &t.name);
            p.out
                .push_str("\"> <button class=go>Install</button></form>");
        }
        p.out.push_str("</td></tr>");
    }
    p.end_table(templates.len(), 5, "No app templates available.");
}

/// Forms to fire a user event and to run a query; `answers` are shown when a
/// query just ran.
pub fn events(p: &mut Page, answers: Option<&[QueryAnswer]>) {
    p.h1("Events and queries");
    if let Some(answers) = answers {
        p.h2(&format!("Query answers ({})", answers.len()));
        p.table(&["Node", "Answer"]);
        for a in answers {
            p.out.push_str("<tr>");
            p.td_text("Node", &a.node);
            p.td_text("Answer", &String::from_utf8_lossy(&a.payload));
            p.out.push_str("</tr>");
        }
        p.end_table(answers.len(), 2, "No node answered before the timeout.");
    }
    p.h2("Send an event to every node");
    p.form("/event", false);
    p.out.push_str(
        "<label>Name <input name=name required maxlength=64></label>\
<label>Payload <input name=payload maxlength=512 size=40></label>\
<button class=go>Send event</button></form>",
    );
    p.h2("Ask a query");
    p.form("/query", false);
    p.out.push_str(
        "<label>Name <input name=name required maxlength=64></label>\
<label>Payload <input name=payload maxlength=512 size=40></label>\
<label>Only these nodes (space separated, empty for all) <input name=nodes size=40></label>\
<label>Timeout (ms) <input name=timeout_ms type=number min=100 max=10000 value=2000></label>\
<button class=go>Ask</button></form>",
    );
}

/// The built-in server's login form.
pub fn login(p: &mut Page, failed: bool) {
    p.h1("Log in");
    if failed {
        p.message("Wrong password.", true);
    }
    p.form("/login", false);
    p.out.push_str("<label>Password <input type=password name=password required autofocus autocomplete=current-password></label><button class=go>Log in</button></form>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtt_and_age_are_short_and_readable() {
        assert_eq!(fmt_rtt(None), "—");
        assert_eq!(fmt_rtt(Some(1_250)), "1.2 ms");
        assert_eq!(fmt_rtt(Some(35_900)), "35 ms");
        assert_eq!(fmt_age(5), "5 s");
        assert_eq!(fmt_age(600), "10 min");
        assert_eq!(fmt_age(3 * 86_400), "3 d");
    }

    fn overview_of(i: &NodeInfo) -> String {
        let mut p = Page::start("", "t", None, "x", false);
        overview(&mut p, i);
        p.finish()
    }

    #[test]
    fn overview_offers_the_key_form_only_while_gossip_is_unencrypted() {
        let clear = overview_of(&NodeInfo::default());
        assert!(clear.contains("is NOT encrypted"), "{clear}");
        assert!(
            clear.contains("action=\"/key\"") && clear.contains("name=csrf"),
            "{clear}"
        );
        let sealed = overview_of(&NodeInfo {
            keys_installed: 1,
            encrypted: true,
            ..NodeInfo::default()
        });
        assert!(!sealed.contains("/key"), "{sealed}");
    }

    #[test]
    fn overview_warns_of_refusals_only_when_there_are_some() {
        let quiet = NodeInfo {
            members_refused: Some(0),
            services_refused: Some(0),
            max_members: Some(1024),
            packets_malformed: Some(0),
            ..NodeInfo::default()
        };
        for i in [&quiet, &NodeInfo::default()] {
            let html = overview_of(i);
            assert!(!html.contains("<dt>Refused"), "{html}");
            assert!(html.contains("<dt>Rejected packets</dt><dd>0</dd>"));
        }
        let members = NodeInfo {
            members_refused: Some(12),
            packets_malformed: Some(2),
            ..quiet.clone()
        };
        let html = overview_of(&members);
        assert!(html.contains(
            "<dt>Refused</dt><dd class=s-failed>12 new members: the member table is full at 1024 (raise"
        ));
        assert!(!html.contains("services:"));
        assert!(html.contains("<dt>Rejected packets</dt><dd>0, 2 malformed</dd>"));
        let services = NodeInfo {
            services_refused: Some(3),
            ..quiet
        };
        let html = overview_of(&services);
        assert!(html.contains("<dd class=s-failed>3 services: a node published"));
        assert!(!html.contains("new members"));
    }

    #[test]
    fn state_class_is_only_a_plain_word() {
        let mut p = Page::start("", "t", None, "x", false);
        p.td_state("State", "x\" onmouseover=\"alert(1)");
        let html = p.finish();
        assert!(html.contains("<span class=\"s-\">x&quot; onmouseover"));
    }

    #[test]
    fn overview_link_under_a_cgi_base_has_no_trailing_slash() {
        // busybox httpd answers 404 for `/cgi-bin/nuvol/`.
        let html = Page::start("/cgi-bin/nuvol", "t", None, "x", false).finish();
        assert!(html.contains("href=\"/cgi-bin/nuvol\""));
        assert!(!html.contains("href=\"/cgi-bin/nuvol/\""));
        assert!(html.contains("href=\"/cgi-bin/nuvol/search\""));
        let html = Page::start("", "t", None, "x", false).finish();
        assert!(html.contains("href=\"/\""));
    }

    #[test]
    fn view_paths_round_trip() {
        for v in View::ALL {
            assert_eq!(View::from_path(v.path()), Some(v));
        }
        assert_eq!(View::from_path(""), Some(View::Overview));
        assert_eq!(View::from_path("/search/"), Some(View::Search));
        assert_eq!(View::from_path("/nope"), None);
    }
}
