//! A tiny JSON writer for the views: the CLI's `--json` and the page's
//! `?format=json` print through it, so both show the same fields.
//!
//! Hand-written rather than serde: it is ~150 lines, costs a few kB, and the
//! views are the only things we ever print.

use crate::proto::*;

/// Appends JSON for `self` to `out`.
pub trait ToJson {
    fn write_json(&self, out: &mut String);

    fn to_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }
}

/// Appends `s` as a JSON string literal, escaping everything JSON requires and
/// `<`, `>`, `&` too, so JSON embedded in a page cannot close a script tag.
pub fn write_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    // Copies runs that need no escape in one go; the page prints every view
    // through here, so no allocation and no formatting per character.
    let mut plain = 0;
    for (i, c) in s.char_indices() {
        let esc: &str = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => "",
            c if (c as u32) < 0x20 => "",
            _ => continue,
        };
        out.push_str(&s[plain..i]);
        plain = i + c.len_utf8();
        if esc.is_empty() {
            push_unicode_escape(out, c as u32);
        } else {
            out.push_str(esc);
        }
    }
    out.push_str(&s[plain..]);
    out.push('"');
}

/// `\uXXXX` for a code point below 0x10000.
fn push_unicode_escape(out: &mut String, code: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("\\u");
    for shift in [12, 8, 4, 0] {
        out.push(HEX[(code >> shift) as usize & 0xf] as char);
    }
}

/// Appends `v` in decimal without going through the formatting machinery.
pub fn write_u64(out: &mut String, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for &d in &buf[i..] {
        out.push(d as char);
    }
}

/// Builds one JSON object field by field.
pub struct Object<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Object<'a> {
    pub fn new(out: &'a mut String) -> Self {
        out.push('{');
        Object { out, first: true }
    }

    fn key(&mut self, k: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        write_str(self.out, k);
        self.out.push(':');
        self.out
    }

    pub fn str(&mut self, k: &str, v: &str) -> &mut Self {
        let out = self.key(k);
        write_str(out, v);
        self
    }

    pub fn num(&mut self, k: &str, v: impl Into<u64>) -> &mut Self {
        let v = v.into();
        let out = self.key(k);
        write_u64(out, v);
        self
    }

    pub fn opt_num(&mut self, k: &str, v: Option<u64>) -> &mut Self {
        match v {
            Some(v) => self.num(k, v),
            None => self.raw(k, "null"),
        }
    }

    pub fn bool(&mut self, k: &str, v: bool) -> &mut Self {
        self.raw(k, if v { "true" } else { "false" })
    }

    pub fn raw(&mut self, k: &str, json: &str) -> &mut Self {
        let out = self.key(k);
        out.push_str(json);
        self
    }

    pub fn value(&mut self, k: &str, v: &impl ToJson) -> &mut Self {
        let out = self.key(k);
        v.write_json(out);
        self
    }

    /// `[(k, v)]` pairs as a JSON object (txt records, tags).
    pub fn pairs(&mut self, k: &str, pairs: &[(String, String)]) -> &mut Self {
        let out = self.key(k);
        let mut o = Object::new(out);
        for (pk, pv) in pairs {
            o.str(pk, pv);
        }
        o.end();
        self
    }

    pub fn strs(&mut self, k: &str, items: &[String]) -> &mut Self {
        let out = self.key(k);
        out.push('[');
        for (i, s) in items.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_str(out, s);
        }
        out.push(']');
        self
    }

    pub fn end(self) {
        self.out.push('}');
    }
}

impl<T: ToJson> ToJson for [T] {
    fn write_json(&self, out: &mut String) {
        out.push('[');
        for (i, v) in self.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            v.write_json(out);
        }
        out.push(']');
    }
}

impl<T: ToJson> ToJson for Vec<T> {
    fn write_json(&self, out: &mut String) {
        self.as_slice().write_json(out)
    }
}

impl ToJson for NodeInfo {
    fn write_json(&self, out: &mut String) {
        let mut o = Object::new(out);
        o.str("name", &self.name)
            .str("microcloud", &self.microcloud)
            .str("board", &self.board)
            .str("arch", &self.arch)
            .str("version", &self.version)
            .str("addr", &self.addr)
            .num("uptime_s", self.uptime_s)
            .num("mem_total_kb", self.mem_total_kb)
            .num("mem_free_kb", self.mem_free_kb)
            .num("load_x100", self.load_x100)
            .num("members_alive", self.members_alive)
            .num("members_total", self.members_total)
            .num("keys_installed", self.keys_installed)
            .bool("encrypted", self.encrypted)
            .num("health_score", self.health_score)
            .num("incarnation", self.incarnation)
            .num("agent_rss_kb", self.agent_rss_kb)
            .num("packets_rejected", self.packets_rejected)
            .opt_num("packets_malformed", self.packets_malformed)
            .opt_num("members_refused", self.members_refused)
            .opt_num("services_refused", self.services_refused)
            .opt_num("max_members", self.max_members.map(u64::from));
        o.end();
    }
}

impl ToJson for MemberView {
    fn write_json(&self, out: &mut String) {
        let mut o = Object::new(out);
        o.str("name", &self.name)
            .str("addr", &self.addr)
            .str("state", self.state.as_str())
            .str("microcloud", &self.microcloud)
            .num("incarnation", self.incarnation)
            .opt_num("rtt_us", self.rtt_us)
            .num("since_change_s", self.since_change_s)
            .pairs("tags", &self.tags);
        o.end();
    }
}

impl ToJson for ServiceView {
    fn write_json(&self, out: &mut String) {
        let mut o = Object::new(out);
        o.str("type", &self.service_type)
            .str("description", &self.description)
            .str("host", &self.host)
            .str("ip", &self.ip)
            .num("port", self.port)
            .str("microcloud", &self.microcloud)
            .pairs("txt", &self.txt)
            .str("health", self.health.as_str())
            .opt_num("rtt_us", self.rtt_us)
            .num("load_x100", self.load_x100)
            .num("quality", self.quality);
        o.end();
    }
}

impl ToJson for QueryAnswer {
    fn write_json(&self, out: &mut String) {
        let mut o = Object::new(out);
        o.str("node", &self.node)
            .str("payload", &String::from_utf8_lossy(&self.payload));
        o.end();
    }
}

impl ToJson for KeyView {
    fn write_json(&self, out: &mut String) {
        let mut o = Object::new(out);
        o.str("fingerprint", &self.fingerprint)
            .bool("primary", self.primary);
        o.end();
    }
}

impl ToJson for ChangeView {
    fn write_json(&self, out: &mut String) {
        let mut o = Object::new(out);
        match self {
            ChangeView::Member(m) => o.str("change", "member").value("member", m),
            ChangeView::ServiceUp(s) => o.str("change", "service-up").value("service", s),
            ChangeView::ServiceDown(s) => o.str("change", "service-down").value("service", s),
            ChangeView::Event {
                from,
                name,
                payload,
                lamport,
            } => o
                .str("change", "event")
                .str("from", from)
                .str("name", name)
                .str("payload", &String::from_utf8_lossy(payload))
                .num("lamport", *lamport),
        };
        o.end();
    }
}

impl ToJson for InstanceView {
    fn write_json(&self, out: &mut String) {
        let mut o = Object::new(out);
        o.str("name", &self.name)
            .str("kind", &self.kind)
            .str("state", &self.state)
            .opt_num("pid", self.pid.map(u64::from))
            .str("health", self.health.as_str())
            .num("restarts", self.restarts)
            .bool("published", self.published)
            .opt_num("uptime_s", self.uptime_s)
            .strs("last_log", &self.last_log);
        o.end();
    }
}

impl ToJson for TemplateView {
    fn write_json(&self, out: &mut String) {
        let mut o = Object::new(out);
        o.str("name", &self.name)
            .str("description", &self.description)
            .str("version", &self.version)
            .strs("architectures", &self.architectures)
            .bool("supported", self.supported)
            .bool("installed", self.installed);
        o.end();
    }
}

/// An app's port map: `[{"container":80,"published":8080}, …]`.
struct Ports<'a>(&'a [(u16, u16)]);

impl ToJson for Ports<'_> {
    fn write_json(&self, out: &mut String) {
        out.push('[');
        for (i, &(container, published)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let mut o = Object::new(out);
            o.num("container", container).num("published", published);
            o.end();
        }
        out.push(']');
    }
}

impl ToJson for AppView {
    fn write_json(&self, out: &mut String) {
        let mut o = Object::new(out);
        o.str("name", &self.name)
            .str("template", &self.template)
            .str("state", &self.state)
            .strs("ips", &self.ips)
            .value("ports", &Ports(&self.ports))
            .opt_num("memory_bytes", self.memory_bytes)
            .str("health", self.health.as_str())
            .bool("published", self.published);
        o.end();
    }
}

impl ToJson for Response {
    fn write_json(&self, out: &mut String) {
        match self {
            Response::Ok => out.push_str("{\"ok\":true}"),
            Response::Error { message } => {
                let mut o = Object::new(out);
                o.bool("ok", false).str("error", message);
                o.end();
            }
            Response::Info(i) => i.write_json(out),
            Response::Members(v) => v.write_json(out),
            Response::Services(v) => v.write_json(out),
            Response::Rtt { node, rtt_us } => {
                let mut o = Object::new(out);
                o.str("node", node).opt_num("rtt_us", *rtt_us);
                o.end();
            }
            Response::QueryResponses(v) => v.write_json(out),
            Response::Keys(v) => v.write_json(out),
            Response::Key(k) => {
                let mut o = Object::new(out);
                o.str("key", k);
                o.end();
            }
            Response::Change(c) => c.write_json(out),
            Response::Instances(v) => v.write_json(out),
            Response::Logs(v) => {
                let mut o = Object::new(out);
                o.strs("lines", v);
                o.end();
            }
            Response::Templates(v) => v.write_json(out),
            Response::Apps(v) => v.write_json(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_strings_cannot_break_out_of_json_or_a_script_tag() {
        let mut out = String::new();
        write_str(&mut out, "a\"b</script>\n\u{1}");
        assert_eq!(out, r#""a\"b\u003c/script\u003e\n\u0001""#);
    }

    #[test]
    fn escapes_keep_the_text_around_them_and_non_ascii() {
        let mut out = String::new();
        write_str(&mut out, "é&\u{2028}ü\\\t\r");
        assert_eq!(out, r#""é\u0026\u2028ü\\\t\r""#);
        out.clear();
        write_str(&mut out, "");
        assert_eq!(out, "\"\"");
    }

    #[test]
    fn numbers_print_in_decimal() {
        for v in [0, 7, 10, 4_294_967_296, u64::MAX] {
            let mut out = String::new();
            write_u64(&mut out, v);
            assert_eq!(out, v.to_string());
        }
    }

    #[test]
    fn app_view_prints_ports_as_objects() {
        let a = AppView {
            name: "cloud".into(),
            template: "nextcloud".into(),
            state: "RUNNING".into(),
            ips: vec!["10.0.3.5".into()],
            ports: vec![(80, 8080), (443, 8443)],
            memory_bytes: None,
            health: Health::Healthy,
            published: true,
        };
        assert_eq!(
            a.to_json(),
            r#"{"name":"cloud","template":"nextcloud","state":"RUNNING","ips":["10.0.3.5"],"ports":[{"container":80,"published":8080},{"container":443,"published":8443}],"memory_bytes":null,"health":"healthy","published":true}"#
        );
        let no_ports = AppView {
            ports: Vec::new(),
            ..a
        };
        assert!(no_ports.to_json().contains(r#""ports":[],"#));
    }

    #[test]
    fn node_info_prints_refusals_and_null_when_an_old_agent_did_not_report_them() {
        let reported = NodeInfo {
            members_refused: Some(12),
            services_refused: Some(0),
            max_members: Some(1024),
            packets_malformed: Some(2),
            ..NodeInfo::default()
        };
        assert!(reported.to_json().ends_with(
            r#""packets_rejected":0,"packets_malformed":2,"members_refused":12,"services_refused":0,"max_members":1024}"#
        ));
        assert!(NodeInfo::default().to_json().ends_with(
            r#""packets_malformed":null,"members_refused":null,"services_refused":null,"max_members":null}"#
        ));
    }

    #[test]
    fn service_view_prints_every_column() {
        let s = ServiceView {
            service_type: "http".into(),
            description: "wiki".into(),
            host: "n1".into(),
            ip: "10.0.0.1".into(),
            port: 80,
            microcloud: "gracia".into(),
            txt: vec![("path".into(), "/".into())],
            health: Health::Healthy,
            rtt_us: None,
            load_x100: 12,
            quality: 90,
        };
        assert_eq!(
            s.to_json(),
            r#"{"type":"http","description":"wiki","host":"n1","ip":"10.0.0.1","port":80,"microcloud":"gracia","txt":{"path":"/"},"health":"healthy","rtt_us":null,"load_x100":12,"quality":90}"#
        );
    }
}
