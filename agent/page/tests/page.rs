//! The page against a fake agent on a real Unix socket: the CGI entry point
//! (in-process, with a CGI environment) and the built-in server over real TCP.

mod support;

use nuvol_page::{cgi_main, serve_listener, PageConfig};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use support::fake_agent::{FakeAgent, Model, EVIL};

/// A test's own directory (socket, secret file), removed when the test
/// ends, whether it passed or not.
struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tmpdir(name: &str) -> TempDir {
    let d = std::env::temp_dir().join(format!("nuvol-page-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}

fn setup(name: &str) -> (FakeAgent, PageConfig, TempDir) {
    let dir = tmpdir(name);
    let agent = FakeAgent::start(&dir.join("nuvol.sock"), Model::three_nodes(), None);
    let page = PageConfig::new(&agent.path, &dir);
    (agent, page, dir)
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn split_head(raw: &str, status_prefix: &str) -> Answer {
    let (head, body) = raw.split_once("\r\n\r\n").expect("head and body");
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap();
    let status = first
        .strip_prefix(status_prefix)
        .and_then(|r| r.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {first:?}"));
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(": ").unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

/// Runs the CGI entry point like a web server would.
fn cgi(
    page: &PageConfig,
    method: &str,
    path: &str,
    query: &str,
    body: &str,
    user: Option<&str>,
) -> Answer {
    cgi_with(page, method, path, query, body, user, &[])
}

fn cgi_with(
    page: &PageConfig,
    method: &str,
    path: &str,
    query: &str,
    body: &str,
    user: Option<&str>,
    extra: &[(&'static str, &str)],
) -> Answer {
    let mut env: HashMap<&str, String> = HashMap::new();
    for (k, v) in extra {
        env.insert(k, v.to_string());
    }
    env.insert("GATEWAY_INTERFACE", "CGI/1.1".into());
    env.insert("REQUEST_METHOD", method.into());
    env.insert("SCRIPT_NAME", "/cgi-bin/nuvol".into());
    env.insert("PATH_INFO", path.into());
    env.insert("QUERY_STRING", query.into());
    env.insert("HTTP_HOST", "router".into());
    if let Some(u) = user {
        env.insert("REMOTE_USER", u.into());
    }
    if method == "POST" {
        env.insert("CONTENT_LENGTH", body.len().to_string());
        env.insert("CONTENT_TYPE", "application/x-www-form-urlencoded".into());
    }
    let mut out = Vec::new();
    let code = cgi_main(
        &|k| env.get(k).cloned(),
        &mut body.as_bytes(),
        &mut out,
        page,
    );
    assert_eq!(code, 0);
    split_head(&String::from_utf8(out).unwrap(), "Status: ")
}

fn get(page: &PageConfig, path: &str, query: &str) -> Answer {
    cgi(page, "GET", path, query, "", Some("root"))
}

fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=csrf value=\"")
        .expect("a form with a csrf field")
        + 17;
    html[at..at + html[at..].find('"').unwrap()].to_string()
}

#[test]
fn overview_warns_of_refused_members_only_when_the_agent_reports_some() {
    let (_agent, page, _dir) = setup("quiet");
    let quiet = get(&page, "/", "");
    assert_eq!(quiet.status, 200);
    assert!(!quiet.body.contains("Refused"), "{}", quiet.body);
    let json = get(&page, "/", "format=json");
    assert!(json.body.contains("\"members_refused\":0"), "{}", json.body);

    let dir = tmpdir("refused");
    let mut model = Model::three_nodes();
    model.info.members_refused = Some(40);
    let agent = FakeAgent::start(&dir.join("nuvol.sock"), model, None);
    let page = PageConfig::new(&agent.path, &dir);
    let full = get(&page, "/", "");
    assert!(
        full.body.contains(
            "<dt>Refused</dt><dd class=s-failed>40 new members: the member table is full at 1024"
        ),
        "{}",
        full.body
    );
}

#[test]
fn every_view_answers_200_with_its_rows() {
    let (_agent, page, _dir) = setup("views");
    let cases: [(&str, &[&str]); 6] = [
        (
            "/",
            &[
                "alpha in gracia",
                "turris-omnia",
                "2 alive of 3",
                "packets encrypted",
            ],
        ),
        (
            "/members",
            &[
                "<td data-l=\"Name\">beta</td>",
                "<span class=\"s-suspect\">suspect</span>",
                "12 ms",
                "7 s ago",
            ],
        ),
        (
            "/search",
            &[
                "Community wiki",
                "Shell on beta",
                "href=\"http://10.0.0.2:80/\"",
                ">ssh</a>",
            ],
        ),
        (
            "/services",
            &[
                "tileserver",
                "error: port 8000 in use",
                "alpha status page",
                "name=action value=\"restart\"",
            ],
        ),
        (
            "/apps",
            &[
                "website",
                "Static web site (busybox httpd)",
                "not for this board",
                "No apps installed.",
            ],
        ),
        ("/events", &["Send an event", "Ask a query"]),
    ];
    for (path, rows) in cases {
        let a = get(&page, path, "");
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        assert_eq!(a.header("Content-Type"), Some("text/html; charset=utf-8"));
        for row in rows {
            assert!(a.body.contains(row), "{path} lacks {row:?}:\n{}", a.body);
        }
    }
}

#[test]
fn search_scope_and_type_tabs_filter_results() {
    let (_agent, page, _dir) = setup("search");
    let local = get(&page, "/search", "scope=microcloud");
    assert!(!local.body.contains("Sants map tiles"));
    let global = get(&page, "/search", "scope=global");
    assert!(global.body.contains("Sants map tiles"));
    let ssh = get(&page, "/search", "scope=global&type=ssh");
    assert!(ssh.body.contains("Shell on beta") && !ssh.body.contains("Community wiki"));
    assert!(ssh
        .body
        .contains("href=\"/cgi-bin/nuvol/search?scope=global&amp;type=ssh\" class=on"));
}

#[test]
fn a_global_search_for_one_type_asks_the_agent_for_that_type() {
    // Other microclouds answer in one datagram per super node: asked for one
    // type, they spend all of it on that type.
    let (agent, page, _dir) = setup("search-typed");
    let ssh = get(&page, "/search", "scope=global&type=ssh");
    assert!(ssh.body.contains("Shell on beta"), "{}", ssh.body);
    let asked = agent.requests.lock().unwrap().clone();
    assert!(
        asked
            .iter()
            .any(|r| r.contains("service_type: Some(\"ssh\")") && r.contains("Global")),
        "{asked:?}"
    );
    assert_eq!(ssh.body.matches("Shell on beta").count(), 1, "{}", ssh.body);
}

#[test]
fn json_format_returns_the_same_data() {
    let (_agent, page, _dir) = setup("json");
    let a = get(&page, "/members", "format=json");
    assert_eq!(a.status, 200);
    assert_eq!(a.header("Content-Type"), Some("application/json"));
    assert!(a.body.starts_with("[{\"name\":\"alpha\""), "{}", a.body);
    assert_eq!(a.body.matches("\"state\":").count(), 3);
    let s = get(&page, "/search", "scope=global&type=http&format=json");
    assert_eq!(s.body.matches("\"type\":\"http\"").count(), 4, "{}", s.body);
    assert!(s.body.contains("\\u003cscript\\u003e"));
    for (path, key) in [
        ("/", "\"microcloud\":\"gracia\""),
        ("/services", "\"instances\":["),
        ("/apps", "\"templates\":["),
        ("/events", "\"ok\":true"),
    ] {
        let a = get(&page, path, "format=json");
        assert_eq!(a.status, 200);
        assert!(a.body.contains(key), "{path}: {}", a.body);
    }
}

#[test]
fn peer_markup_and_quotes_are_escaped_everywhere() {
    let (_agent, page, _dir) = setup("escape");
    let a = get(&page, "/search", "");
    assert!(!a.body.contains("<script>"), "raw script tag in page");
    assert!(!a.body.contains("<b>bold"));
    assert!(!a.body.contains("javascript"));
    assert!(a.body.contains("&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt; it&#39;s &quot;quoted&quot; &amp; &lt;b&gt;bold&lt;/b&gt;"));
    // The peer's txt path is percent-encoded into our own http:// URL.
    assert!(
        a.body
            .contains("href=\"http://10.0.0.3:8080/%22%3E%3Cscript%3Ex%3C/script%3E\""),
        "{}",
        a.body
    );
    assert!(!EVIL.is_empty());
}

#[test]
fn post_without_or_with_wrong_csrf_token_changes_nothing() {
    let (agent, page, _dir) = setup("csrf");
    let good = csrf_of(&get(&page, "/apps", "").body);
    let forged = [
        "template=website&name=x".to_string(),
        "template=website&name=x&csrf=".to_string(),
        "template=website&name=x&csrf=1234.00112233445566778899aabbccddeeff".to_string(),
        format!(
            "template=website&name=x&csrf={}",
            good.replace('a', "b").replace('1', "2")
        ),
    ];
    for body in &forged {
        let a = cgi(&page, "POST", "/install", "", body, Some("root"));
        assert_eq!(a.status, 403, "{body}");
        assert!(a.body.contains("nothing was changed"));
    }
    // A token made for another user does not work for this one either.
    let mut other = page.clone();
    other.allowed_users.push("guest".into());
    let guest_token = csrf_of(&cgi(&other, "GET", "/apps", "", "", Some("guest")).body);
    let a = cgi(
        &other,
        "POST",
        "/install",
        "",
        &format!("template=website&csrf={guest_token}"),
        Some("root"),
    );
    assert_eq!(a.status, 403);
    assert_eq!(agent.changes(), Vec::<String>::new());
    // The real token goes through, and the browser is sent back to the view.
    let a = cgi(
        &page,
        "POST",
        "/install",
        "",
        &format!("template=website&name=&csrf={good}"),
        Some("root"),
    );
    assert_eq!(a.status, 303, "{}", a.body);
    assert_eq!(a.header("Location"), Some("/cgi-bin/nuvol/apps"));
    assert_eq!(
        agent.changes(),
        vec!["AppInstall { template: \"website\", name: \"website\" }"]
    );
}

#[test]
fn post_from_another_site_is_refused_even_with_a_valid_token() {
    let (agent, page, _dir) = setup("referer");
    let token = csrf_of(&get(&page, "/events", "").body);
    let body = format!("name=deploy&payload=x&csrf={token}");
    for (k, v) in [
        ("HTTP_REFERER", "http://evil.example/page"),
        ("HTTP_ORIGIN", "http://evil.example"),
    ] {
        let a = cgi_with(&page, "POST", "/event", "", &body, Some("root"), &[(k, v)]);
        assert_eq!(a.status, 403, "{k}");
    }
    assert!(agent.changes().is_empty());
    let own = [("HTTP_REFERER", "http://router/cgi-bin/nuvol/events")];
    let a = cgi_with(&page, "POST", "/event", "", &body, Some("root"), &own);
    assert_eq!(a.status, 303);
    assert_eq!(a.header("Location"), Some("/cgi-bin/nuvol/events?sent=1"));
    assert_eq!(agent.changes().len(), 1);
}

#[test]
fn search_lists_the_best_rows_and_links_to_the_rest() {
    let dir = tmpdir("many");
    let agent = FakeAgent::start(&dir.join("nuvol.sock"), Model::scaled(100, 300), None);
    let page = PageConfig::new(&agent.path, &dir);
    let a = get(&page, "/search", "scope=global");
    assert_eq!(a.status, 200);
    assert_eq!(
        a.body.matches("<td data-l=\"Host\">").count(),
        nuvol_page::views::SEARCH_ROWS
    );
    assert!(a
        .body
        .contains("?all=1&amp;scope=global\">Show all 301 results</a>"));
    let all = get(&page, "/search", "scope=global&all=1");
    assert_eq!(all.body.matches("<td data-l=\"Host\">").count(), 301); // 300 peers + our own
}

#[test]
fn unauthenticated_or_unlisted_user_gets_403_and_no_data() {
    let (agent, page, _dir) = setup("auth");
    let a = cgi(&page, "GET", "/members", "", "", None);
    assert_eq!(a.status, 403);
    assert!(a.body.contains("basic auth") && !a.body.contains("beta"));
    let a = cgi(&page, "GET", "/members", "", "", Some("mallory"));
    assert_eq!(a.status, 403);
    assert!(!a.body.contains("beta"));
    assert!(agent.requests.lock().unwrap().is_empty());
}

#[test]
fn oversized_body_gets_413_and_is_not_read() {
    let (agent, page, _dir) = setup("big");
    let big = "a".repeat(nuvol_page::route::MAX_BODY + 1);
    let a = cgi(&page, "POST", "/event", "", &big, Some("root"));
    assert_eq!(a.status, 413);
    assert!(agent.requests.lock().unwrap().is_empty());
}

#[test]
fn agent_down_is_a_clear_503_page_not_a_broken_cgi() {
    let dir = tmpdir("down");
    let page = PageConfig::new(&dir.join("no-agent.sock"), &dir);
    let a = get(&page, "/search", "");
    assert_eq!(a.status, 503);
    assert!(
        a.body.contains("The nuvol agent is not running"),
        "{}",
        a.body
    );
    assert!(
        a.body.contains("<nav>"),
        "still a full page with navigation"
    );
    let j = get(&page, "/search", "format=json");
    assert_eq!(j.status, 503);
    assert!(j
        .body
        .starts_with("{\"ok\":false,\"error\":\"The nuvol agent is not running"));
}

#[test]
fn agent_errors_are_shown_to_the_owner() {
    let (_agent, page, _dir) = setup("refused");
    let token = csrf_of(&get(&page, "/apps", "").body);
    let a = cgi(
        &page,
        "POST",
        "/install",
        "",
        &format!("template=peertube&csrf={token}"),
        Some("root"),
    );
    assert_eq!(a.status, 409);
    assert!(a
        .body
        .contains("The agent refused: template not available for this architecture"));
}

#[test]
fn invalid_form_fields_are_refused_before_the_agent() {
    let (agent, page, _dir) = setup("invalid");
    let token = csrf_of(&get(&page, "/services", "").body);
    for body in [
        "type=http&port=0",
        "type=a b&port=80",
        "type=http&port=99999",
        "type=&port=80",
    ] {
        let a = cgi(
            &page,
            "POST",
            "/publish",
            "",
            &format!("{body}&csrf={token}"),
            Some("root"),
        );
        assert_eq!(a.status, 400, "{body}");
    }
    let a = cgi(
        &page,
        "POST",
        "/service",
        "",
        &format!("name=status&action=uninstall&csrf={token}"),
        Some("root"),
    );
    assert_eq!(a.status, 400);
    assert!(agent.changes().is_empty());
}

// ---- built-in server ----

fn start_server(name: &str, password: &str) -> (FakeAgent, SocketAddr, TempDir) {
    let (agent, mut page, dir) = setup(name);
    page.password_hash = Some(nuvol_page::auth::hash_password_with(password, 1000).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || serve_listener(listener, page));
    (agent, addr, dir)
}

fn http(addr: SocketAddr, method: &str, target: &str, cookie: Option<&str>, body: &str) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req =
        format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\n");
    if let Some(c) = cookie {
        req.push_str(&format!("Cookie: {c}\r\n"));
    }
    if method == "POST" {
        req.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    split_head(&raw, "HTTP/1.1 ")
}

fn login(addr: SocketAddr, password: &str) -> Option<String> {
    let token = csrf_of(&http(addr, "GET", "/login", None, "").body);
    let a = http(
        addr,
        "POST",
        "/login",
        None,
        &format!("csrf={token}&password={password}"),
    );
    let cookie = a.header("Set-Cookie")?;
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    Some(cookie.split(';').next().unwrap().to_string())
}

#[test]
fn builtin_server_requires_login_and_serves_every_view() {
    let (agent, addr, _dir) = start_server("srv", "s3cret");
    let a = http(addr, "GET", "/members", None, "");
    assert_eq!(a.status, 403);
    assert!(a.body.contains("type=password") && !a.body.contains("beta"));
    assert!(login(addr, "wrong").is_none());
    let cookie = login(addr, "s3cret").expect("login with the right password");
    for (path, row) in [
        ("/", "alpha in gracia"),
        ("/members", "gamma"),
        ("/search?scope=global", "Sants map tiles"),
        ("/services", "tileserver"),
        ("/apps", "website"),
        ("/events", "Ask a query"),
    ] {
        let a = http(addr, "GET", path, Some(&cookie), "");
        assert_eq!(a.status, 200, "{path}");
        assert!(a.body.contains(row), "{path}");
        assert!(a.body.contains("Log out"));
    }
    let j = http(addr, "GET", "/members?format=json", Some(&cookie), "");
    assert_eq!(j.status, 200);
    assert!(j.body.starts_with("[{\"name\":\"alpha\""));
    assert!(
        http(
            addr,
            "GET",
            "/apps",
            Some("nuvol_session=00112233445566778899aabbccddeeff"),
            ""
        )
        .status
            == 403
    );
    assert!(agent.changes().is_empty());
}

#[test]
fn builtin_server_click_through_install_start_publish() {
    let (agent, addr, _dir) = start_server("click", "pw");
    let cookie = login(addr, "pw").unwrap();
    let token = csrf_of(&http(addr, "GET", "/apps", Some(&cookie), "").body);
    for body in [
        "template=website&name=",
        "name=website&action=start",
        "name=website&action=publish",
    ] {
        let path = if body.starts_with("template") {
            "/install"
        } else {
            "/app"
        };
        let a = http(
            addr,
            "POST",
            path,
            Some(&cookie),
            &format!("{body}&csrf={token}"),
        );
        assert_eq!(a.status, 303, "{path} {body}: {}", a.body);
        assert_eq!(a.header("Location"), Some("/apps"));
    }
    let page = http(addr, "GET", "/apps", Some(&cookie), "").body;
    assert!(
        page.contains("<span class=\"s-RUNNING\">RUNNING</span>"),
        "{page}"
    );
    assert!(page.contains("value=\"unpublish\""));
    assert_eq!(agent.changes().len(), 3);
    // A token from another session is refused.
    let other = login(addr, "pw").unwrap();
    let a = http(
        addr,
        "POST",
        "/app",
        Some(&other),
        &format!("name=website&action=stop&csrf={token}"),
    );
    assert_eq!(a.status, 403);
    // Logging out ends the session.
    let a = http(
        addr,
        "POST",
        "/logout",
        Some(&cookie),
        &format!("csrf={token}"),
    );
    assert_eq!(a.status, 303);
    assert_eq!(http(addr, "GET", "/apps", Some(&cookie), "").status, 403);
    assert_eq!(agent.changes().len(), 3);
}

#[test]
fn builtin_server_refuses_oversized_and_cross_origin_posts() {
    let (agent, addr, _dir) = start_server("limits", "pw");
    let cookie = login(addr, "pw").unwrap();
    let big = "a".repeat(nuvol_page::route::MAX_BODY + 1);
    assert_eq!(
        http(addr, "POST", "/event", Some(&cookie), &big).status,
        413
    );
    let token = csrf_of(&http(addr, "GET", "/events", Some(&cookie), "").body);
    // Right token, but the browser says the form came from another site.
    let mut s = TcpStream::connect(addr).unwrap();
    let body = format!("name=x&csrf={token}");
    write!(s, "POST /event HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://evil.example\r\nCookie: {cookie}\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 403"), "{raw}");
    let huge_head = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
    let mut s = TcpStream::connect(addr).unwrap();
    let _ = s.write_all(huge_head.as_bytes());
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    assert!(raw.starts_with("HTTP/1.1 431"), "{raw}");
    assert!(agent.changes().is_empty());
}

#[test]
fn builtin_server_answers_503_past_its_connection_limit() {
    let (_agent, addr, _dir) = start_server("busy", "pw");
    // Idle connections hold their slots (their threads wait for a request).
    let idle: Vec<TcpStream> = (0..nuvol_page::server::MAX_CONNECTIONS)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    // Accepts are served in order, so this one finds every slot taken.
    let a = http(addr, "GET", "/login", None, "");
    assert_eq!(a.status, 503);
    drop(idle);
    // The slots free up as soon as the idle threads see the connections
    // close; on a loaded machine that can take a while, so poll up to 10 s.
    let mut status = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        status = http(addr, "GET", "/login", None, "").status;
        if status == 200 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(status, 200);
}
