//! Escaping and URL building for everything the page prints.
//!
//! Every string that came from a peer, from the agent or from the config goes
//! through [`text`] (element content) or [`attr`] (a double-quoted attribute
//! value) before it touches the page. Both escape the same five characters, so
//! a value is safe in either context; two names keep the call sites honest.
//!
//! "Open" links are never copied from a peer: [`service_url`] builds them from
//! a parsed IP address and a port, with a scheme chosen by us (`http` unless the
//! record asks for `https`), so a peer cannot inject `javascript:` or another host.
//!
//! ```
//! let mut out = String::new();
//! nuvol_page::html::text(&mut out, "<script>\"x\"</script>");
//! assert_eq!(out, "&lt;script&gt;&quot;x&quot;&lt;/script&gt;");
//! ```

use std::net::IpAddr;

/// Appends `s` escaped for HTML element content.
pub fn text(out: &mut String, s: &str) {
    let mut last = 0;
    for (i, b) in s.bytes().enumerate() {
        let rep = match b {
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'&' => "&amp;",
            b'"' => "&quot;",
            b'\'' => "&#39;",
            _ => continue,
        };
        out.push_str(&s[last..i]);
        out.push_str(rep);
        last = i + 1;
    }
    out.push_str(&s[last..]);
}

/// Appends `s` escaped for a double-quoted attribute value.
pub fn attr(out: &mut String, s: &str) {
    text(out, s)
}

/// `s` escaped for HTML, as a new string (for tests and small call sites).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    text(&mut out, s);
    out
}

/// Appends `s` percent-encoded for a query-string value or a path segment:
/// only unreserved characters (RFC 3986) pass through.
pub fn url_component(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
}

/// The "Open" link for a service record, or `None` when the record's IP is not
/// an IP address (then the page shows no link rather than a guessed one).
///
/// The scheme is `https` when the type is `https` or a txt pair says
/// `scheme=https`, else `http`. A txt `path` is appended only when it starts
/// with `/`, and every byte outside the unreserved set and `/` is
/// percent-encoded, so it cannot add a query, fragment or authority.
pub fn service_url(
    service_type: &str,
    ip: &str,
    port: u16,
    txt: &[(String, String)],
) -> Option<String> {
    let addr: IpAddr = ip.trim().parse().ok()?;
    if port == 0 {
        return None;
    }
    let txt_get = |k: &str| txt.iter().find(|(tk, _)| tk == k).map(|(_, v)| v.as_str());
    let https = service_type.eq_ignore_ascii_case("https")
        || txt_get("scheme").is_some_and(|s| s.eq_ignore_ascii_case("https"));
    let mut url = String::with_capacity(48);
    url.push_str(if https { "https://" } else { "http://" });
    match addr {
        IpAddr::V4(a) => url.push_str(&a.to_string()),
        IpAddr::V6(a) => {
            url.push('[');
            url.push_str(&a.to_string());
            url.push(']');
        }
    }
    url.push(':');
    url.push_str(&port.to_string());
    match txt_get("path") {
        Some(p) if p.starts_with('/') && !p.starts_with("//") => {
            for seg in p.split('/').skip(1) {
                url.push('/');
                url_component(&mut url, seg);
            }
        }
        _ => url.push('/'),
    }
    Some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_escapes_markup_and_both_quotes() {
        assert_eq!(
            escape(r#"<b a='1' c="2">&</b>"#),
            "&lt;b a=&#39;1&#39; c=&quot;2&quot;&gt;&amp;&lt;/b&gt;"
        );
        assert_eq!(escape("plain ünïcode"), "plain ünïcode");
    }

    #[test]
    fn open_link_is_built_from_ip_and_port_only() {
        let txt = vec![("scheme".to_string(), "javascript".to_string())];
        assert_eq!(
            service_url("http", "10.0.0.1", 80, &txt).unwrap(),
            "http://10.0.0.1:80/"
        );
        assert_eq!(service_url("http", "javascript:alert(1)", 80, &[]), None);
        assert_eq!(service_url("http", "10.0.0.1", 0, &[]), None);
    }

    #[test]
    fn open_link_brackets_ipv6_and_honours_https() {
        let txt = vec![("scheme".to_string(), "HTTPS".to_string())];
        assert_eq!(
            service_url("web", "fd00::1", 443, &txt).unwrap(),
            "https://[fd00::1]:443/"
        );
        assert_eq!(
            service_url("https", "10.0.0.2", 8443, &[]).unwrap(),
            "https://10.0.0.2:8443/"
        );
    }

    #[test]
    fn open_link_path_cannot_add_authority_query_or_quotes() {
        let txt = |p: &str| vec![("path".to_string(), p.to_string())];
        assert_eq!(
            service_url("http", "10.0.0.1", 80, &txt("/wiki/a b")).unwrap(),
            "http://10.0.0.1:80/wiki/a%20b"
        );
        assert_eq!(
            service_url("http", "10.0.0.1", 80, &txt("//evil.example/")).unwrap(),
            "http://10.0.0.1:80/"
        );
        assert_eq!(
            service_url("http", "10.0.0.1", 80, &txt("/x?\"<y>#z")).unwrap(),
            "http://10.0.0.1:80/x%3F%22%3Cy%3E%23z"
        );
        assert_eq!(
            service_url("http", "10.0.0.1", 80, &txt("evil")).unwrap(),
            "http://10.0.0.1:80/"
        );
    }
}
