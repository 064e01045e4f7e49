//! The page as a CGI program, following uhttpd's rules.
//!
//! uhttpd (and lighttpd, busybox httpd) run `/cgi-bin/nuvol` with the request
//! in environment variables and the body on stdin, and read back headers, a
//! blank line, then the body. What this module relies on, and nothing more:
//!
//! * `REQUEST_METHOD`, `PATH_INFO` (the view), `SCRIPT_NAME` (link base),
//!   `QUERY_STRING`, `CONTENT_LENGTH`, `CONTENT_TYPE`, `REMOTE_USER`;
//! * of the `HTTP_*` variables only `HTTP_HOST`, `HTTP_REFERER` (both forwarded
//!   by uhttpd, which drops other headers) and `HTTP_ORIGIN` when a server
//!   does forward it;
//! * the body is read only up to `CONTENT_LENGTH`, and only when that is at
//!   most [`crate::route::MAX_BODY`]; otherwise the answer is 413 unread;
//! * the answer starts with `Status: NNN Reason`;
//! * uhttpd kills a script after 60 s; a watchdog exits on its own after
//!   [`WATCHDOG`] so a stuck read never holds a worker that long.
//!
//! Access: the web server authenticates (uhttpd basic auth, see the package's
//! `/etc/httpd.conf`) and sets `REMOTE_USER`; this program serves only users in
//! `list allowed_user`. Without `REMOTE_USER` it shows nothing, and says why
//! ([`open_realm`]): uhttpd resolves a `$p$root` realm from `/etc/shadow` once,
//! at its start, and leaves the page open while root has no password (a stock
//! router). Then the answer is 403 "set a password with `passwd`". Once the
//! password exists, the still-open uhttpd is restarted from here (at most once
//! a minute, [`RESTART_EVERY_S`]) so it reads the realm again, and the answer
//! is 503 "reload in a few seconds"; the next request meets uhttpd's login.

use crate::auth::{load_or_create_secret, PageConfig};
use crate::route::{self, handle, Agent, HttpRequest, Reply, MAX_BODY};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The CGI process exits by itself after this long, whatever it is doing.
pub const WATCHDOG: Duration = Duration::from_secs(55);

/// Kept here too for callers that name it through the CGI module.
pub use crate::route::SECURITY_HEADERS;

/// Unix seconds now.
pub fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether the browser says the request came from a page of this host: the
/// `Origin` header when sent, else the `Referer` (uhttpd forwards `Referer`
/// but not `Origin`), compared with `Host`. Neither header counts as
/// same-origin: command-line clients send neither, and the CSRF token still
/// applies. This is a second lock, never the only one.
pub fn same_origin(origin: Option<&str>, referer: Option<&str>, host: Option<&str>) -> bool {
    fn nonempty(h: Option<&str>) -> Option<&str> {
        h.map(str::trim).filter(|v| !v.is_empty())
    }
    let Some(claimed) = nonempty(origin).or(nonempty(referer)) else {
        return true;
    };
    let Some(host) = nonempty(host) else {
        return false;
    };
    let rest = claimed
        .strip_prefix("http://")
        .or_else(|| claimed.strip_prefix("https://"));
    let authority = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
    authority.is_some_and(|a| a.eq_ignore_ascii_case(host))
}

/// Serves one CGI request: reads what it needs from `env` and `stdin`, writes
/// the whole answer to `stdout`. Returns the process exit code: 0 when an
/// answer was written (whatever its status), 111 when even that failed.
///
/// `env` looks up a CGI variable (`|k| std::env::var(k).ok()` in the binary).
pub fn cgi_main(
    env: &dyn Fn(&str) -> Option<String>,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    page: &PageConfig,
) -> i32 {
    // The watchdog stands down when `done` is set (the answer is written);
    // it is unparked then, so it does not linger until its deadline. A flag
    // and park, not a channel: a channel of its own type costs ~5 kB of std
    // code in the binary.
    let done = Arc::new(AtomicBool::new(false));
    let answered = Arc::clone(&done);
    let spawned = thread::Builder::new()
        .name("cgi-watchdog".into())
        .stack_size(32 * 1024)
        .spawn(move || {
            let deadline = Instant::now() + WATCHDOG;
            // park_timeout may return early (an unpark, or spuriously).
            while !answered.load(Ordering::Acquire) {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    eprintln!(
                        "nuvol page: request took over {} s, giving up",
                        WATCHDOG.as_secs()
                    );
                    std::process::exit(111);
                }
                thread::park_timeout(left);
            }
        });
    if let Err(e) = &spawned {
        eprintln!("nuvol page: no watchdog thread: {e}");
    }
    let method = env("REQUEST_METHOD").unwrap_or_else(|| "GET".into());
    let reply = answer(env, stdin, page, &method);
    let head_only = method == "HEAD";
    let result = write_cgi(stdout, &reply, head_only);
    done.store(true, Ordering::Release);
    if let Ok(watchdog) = &spawned {
        watchdog.thread().unpark();
    }
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("nuvol page: cannot write the answer: {e}");
            111
        }
    }
}

/// [`cgi_main`] on this process's environment, stdin and stdout.
pub fn run_cgi(page: &PageConfig) -> i32 {
    let stdin = io::stdin();
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let code = cgi_main(
        &|k| std::env::var(k).ok(),
        &mut stdin.lock(),
        &mut out,
        page,
    );
    match out.flush() {
        Ok(()) => code,
        Err(_) => 111,
    }
}

/// Answers this CGI request with a 500 page carrying `message`, for when the
/// binary cannot even build a [`PageConfig`] (say, a config file with a syntax
/// error): the owner sees the reason in the browser instead of a 502.
pub fn run_cgi_failure(message: &str) -> i32 {
    let req = HttpRequest {
        method: "GET",
        path: "/",
        binding: "anonymous",
        ..HttpRequest::default()
    };
    let reply = route::error_reply(&req, 500, message, false, &[0u8; 32], 0);
    let stdout = io::stdout();
    let mut out = stdout.lock();
    match write_cgi(&mut out, &reply, false) {
        Ok(()) => 0,
        Err(_) => 111,
    }
}

fn answer(
    env: &dyn Fn(&str) -> Option<String>,
    stdin: &mut dyn Read,
    page: &PageConfig,
    method: &str,
) -> Reply {
    let base = env("SCRIPT_NAME").unwrap_or_default();
    let path = env("PATH_INFO")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".into());
    let query = env("QUERY_STRING").unwrap_or_default();
    let json = query.split('&').any(|kv| kv == "format=json");
    let anon = HttpRequest {
        method,
        path: &path,
        query: &query,
        base: &base,
        binding: "anonymous",
        same_origin: true,
        ..HttpRequest::default()
    };
    // No secret is needed to say "go away": error pages for strangers carry
    // a token bound to nobody, which no POST will accept.
    let refuse =
        |status: u16, msg: &str| route::error_reply(&anon, status, msg, json, &[0u8; 32], 0);

    let user = env("REMOTE_USER").unwrap_or_default();
    if user.is_empty() {
        return unprotected(page, &base, &refuse);
    }
    if !page.user_allowed(&user) {
        return refuse(403, "This user may not manage nuvol (see list allowed_user in the page section of /etc/config/nuvol).");
    }
    let secret = match load_or_create_secret(&page.secret_file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "nuvol page: secret file {}: {e}",
                page.secret_file.display()
            );
            return refuse(
                500,
                &format!(
                    "Cannot read or create the page's secret file {}: {e}",
                    page.secret_file.display()
                ),
            );
        }
    };
    let binding = format!("user:{user}");
    let now = now_s();
    let mut req = HttpRequest {
        binding: &binding,
        same_origin: same_origin(
            env("HTTP_ORIGIN").as_deref(),
            env("HTTP_REFERER").as_deref(),
            env("HTTP_HOST").as_deref(),
        ),
        ..anon.clone()
    };
    let mut body = Vec::new();
    if method == "POST" {
        let Some(len) = env("CONTENT_LENGTH").and_then(|l| l.trim().parse::<usize>().ok()) else {
            return route::error_reply(
                &req,
                411,
                "A form must say its length.",
                json,
                &secret,
                now,
            );
        };
        if len > MAX_BODY {
            return route::error_reply(&req, 413, "The form is too large.", json, &secret, now);
        }
        if !route::form_content_type_ok(&env("CONTENT_TYPE").unwrap_or_default()) {
            return route::error_reply(
                &req,
                415,
                "Forms must be sent url-encoded.",
                json,
                &secret,
                now,
            );
        }
        if let Err(e) = stdin.take(len as u64).read_to_end(&mut body) {
            return route::error_reply(
                &req,
                400,
                &format!("Cannot read the form: {e}"),
                json,
                &secret,
                now,
            );
        }
        if body.len() != len {
            return route::error_reply(
                &req,
                400,
                "The form arrived incomplete.",
                json,
                &secret,
                now,
            );
        }
    }
    req.body = &body;
    handle(&req, &Agent::new(&page.control), &secret, now)
}

/// Why the web server let a request through without a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenRealm {
    /// httpd.conf protects the page with this account's password, and the
    /// account has none: uhttpd leaves such a realm open.
    NoPassword(String),
    /// httpd.conf protects the page with this account's password and it has
    /// one (or is locked) now: uhttpd read the realm before that and must
    /// read it again.
    StaleServer(String),
    /// No realm for the page: the web server was not set up to protect it.
    NotProtected,
}

/// Minimum time between two web server restarts asked for by the page.
pub const RESTART_EVERY_S: u64 = 60;

/// Reads uhttpd's realm lines (`/PATH:USER:$p$ACCOUNT`) and `/etc/shadow` to
/// tell why `path` was served without a login. Only a realm that names a
/// system account counts: a realm with a fixed password is never left open.
pub fn open_realm(httpd_conf: &str, shadow: &str, path: &str) -> OpenRealm {
    let account = httpd_conf.lines().find_map(|line| {
        let mut parts = line.trim().splitn(3, ':');
        let (realm, _user, pass) = (parts.next()?, parts.next()?, parts.next()?);
        let account = pass.strip_prefix("$p$")?;
        (realm.starts_with('/') && path.starts_with(realm) && !account.is_empty())
            .then(|| account.to_string())
    });
    let Some(account) = account else {
        return OpenRealm::NotProtected;
    };
    let hash = shadow.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        (parts.next()? == account).then(|| parts.next().unwrap_or("").to_string())
    });
    match hash {
        None => OpenRealm::NotProtected,
        Some(h) if h.is_empty() => OpenRealm::NoPassword(account),
        Some(_) => OpenRealm::StaleServer(account),
    }
}

/// The answer to a request the web server did not authenticate: never the
/// page, always what to do.
fn unprotected(page: &PageConfig, base: &str, refuse: &dyn Fn(u16, &str) -> Reply) -> Reply {
    let conf = std::fs::read_to_string(&page.httpd_conf).unwrap_or_default();
    let shadow = std::fs::read_to_string(&page.shadow_file).unwrap_or_default();
    let path = if base.is_empty() {
        "/cgi-bin/nuvol"
    } else {
        base
    };
    match open_realm(&conf, &shadow, path) {
        OpenRealm::NoPassword(account) => refuse(
            403,
            &format!(
                "This router's '{account}' account has no password, so the web server cannot ask for one and this page shows nothing. Set one: run 'passwd' over SSH (or use LuCI: System, Administration), then reload this page and log in as {account} with it."
            ),
        ),
        OpenRealm::StaleServer(account) => {
            let stamp = page
                .control
                .parent()
                .unwrap_or(Path::new("/tmp"))
                .join("nuvol-page-restart");
            let message = if restart_web_server(&page.web_server_init, &stamp, now_s()) {
                format!("The '{account}' password is set now; the web server is restarting to ask for it. Reload this page in a few seconds.")
            } else {
                format!("The '{account}' password is set, but the web server still serves this page without asking for it. It was just restarted (or cannot be); reload this page in a minute, or run '{} restart'.", page.web_server_init.display())
            };
            let mut reply = refuse(503, &message);
            reply.headers.push(("Retry-After".into(), "5".into()));
            reply.headers.push(("Refresh".into(), "5".into()));
            reply
        }
        OpenRealm::NotProtected => refuse(
            403,
            "This page must be protected by the web server's login (basic auth for /cgi-bin/nuvol in /etc/httpd.conf: '/cgi-bin/nuvol:root:$p$root'); it is not, so it shows nothing.",
        ),
    }
}

/// Runs `INIT restart` in the background, detached from this request (a
/// second later, so this answer leaves before the server stops), unless the
/// stamp file says it was done less than [`RESTART_EVERY_S`] ago. Returns
/// whether it was started.
fn restart_web_server(init: &Path, stamp: &Path, now: u64) -> bool {
    let last = std::fs::read_to_string(stamp)
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok());
    if last.is_some_and(|t| t <= now && now - t < RESTART_EVERY_S) || !init.exists() {
        return false;
    }
    if std::fs::write(stamp, now.to_string()).is_err() {
        // Without a stamp nothing bounds the restarts: do none.
        return false;
    }
    std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg("sleep 1; exec \"$0\" restart")
        .arg(init)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}

/// Writes `reply` in CGI form: `Status:` line, headers, blank line, body.
///
/// No Content-Length: uhttpd frames the body itself (chunked on HTTP/1.1)
/// and passes our headers through, and both together confuse clients.
pub fn write_cgi(out: &mut dyn Write, reply: &Reply, head_only: bool) -> io::Result<()> {
    let status = format!("Status: {} {}", reply.status, route::reason(reply.status));
    route::write_reply(out, &status, "", reply, head_only)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REALM: &str = "I:index.html\n/cgi-bin/nuvol:root:$p$root\n";

    #[test]
    fn open_realm_says_why_the_page_was_not_protected() {
        let no_pw = "root:::0:99999:7:::\nnobody:*:0:0:99999:7:::\n";
        let pw = "root:$1$abc$hash:20000:0:99999:7:::\n";
        assert_eq!(
            open_realm(REALM, no_pw, "/cgi-bin/nuvol"),
            OpenRealm::NoPassword("root".into())
        );
        assert_eq!(
            open_realm(REALM, pw, "/cgi-bin/nuvol"),
            OpenRealm::StaleServer("root".into())
        );
        // A locked account: uhttpd would deny all once it reads it again.
        assert_eq!(
            open_realm(REALM, "root:!:1::::::\n", "/cgi-bin/nuvol"),
            OpenRealm::StaleServer("root".into())
        );
        assert_eq!(
            open_realm("", pw, "/cgi-bin/nuvol"),
            OpenRealm::NotProtected
        );
        assert_eq!(
            open_realm(REALM, "", "/cgi-bin/nuvol"),
            OpenRealm::NotProtected
        );
        // A realm with a fixed password or for another path does not count.
        assert_eq!(
            open_realm(
                "/cgi-bin/nuvol:root:secret\n/cgi-bin/luci:root:$p$root\n",
                no_pw,
                "/cgi-bin/nuvol"
            ),
            OpenRealm::NotProtected
        );
        // A realm on a parent path covers the page, as in uhttpd.
        assert_eq!(
            open_realm("/cgi-bin:root:$p$root\n", no_pw, "/cgi-bin/nuvol"),
            OpenRealm::NoPassword("root".into())
        );
    }

    #[test]
    fn web_server_restart_is_rate_limited() {
        let dir = std::env::temp_dir().join(format!("nuvol-restart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let init = dir.join("uhttpd");
        let marker = dir.join("restarted");
        std::fs::write(
            &init,
            format!("#!/bin/sh\necho \"$1\" >> {}\n", marker.display()),
        )
        .unwrap();
        std::fs::set_permissions(&init, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let stamp = dir.join("stamp");
        assert!(restart_web_server(&init, &stamp, 1000));
        assert!(!restart_web_server(
            &init,
            &stamp,
            1000 + RESTART_EVERY_S - 1
        ));
        assert!(restart_web_server(&init, &stamp, 1000 + RESTART_EVERY_S));
        assert!(!restart_web_server(
            &dir.join("missing"),
            &dir.join("stamp2"),
            5
        ));
        // Each started restart runs INIT restart (a second later).
        let mut seen = String::new();
        for _ in 0..50 {
            seen = std::fs::read_to_string(&marker).unwrap_or_default();
            if seen.lines().count() == 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert_eq!(seen, "restart\nrestart\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn origin_must_match_host_when_sent() {
        assert!(same_origin(None, None, Some("r:80")));
        assert!(same_origin(Some("http://r:80"), None, Some("r:80")));
        assert!(same_origin(Some("https://Router"), None, Some("router")));
        assert!(!same_origin(
            Some("http://evil.example"),
            None,
            Some("router")
        ));
        assert!(!same_origin(Some("null"), None, Some("router")));
        assert!(!same_origin(Some("http://router"), None, None));
        assert!(same_origin(
            None,
            Some("http://router/cgi-bin/nuvol/apps?x"),
            Some("router")
        ));
        assert!(!same_origin(
            None,
            Some("http://router.evil.example/x"),
            Some("router")
        ));
        assert!(!same_origin(
            Some("http://evil.example"),
            Some("http://router/"),
            Some("router")
        ));
    }
}
