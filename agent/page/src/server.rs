//! The built-in HTTP/1.1 server, for machines without uhttpd
//! (`nuvol agent --http ADDR`, `./build.sh demo`).
//!
//! Deliberately small: one request per connection (`Connection: close`), a
//! thread per connection up to [`MAX_CONNECTIONS`] (more get an immediate 503),
//! a request head of at most [`MAX_HEAD`] bytes and a body of at most
//! [`MAX_BODY`], every read and write under [`IO_TIMEOUT`] and the whole
//! request under [`REQUEST_DEADLINE`], so a slow or hostile client holds a
//! slot for seconds, not forever. No chunked bodies (411).
//!
//! It has its own login: one password, checked against `option password_hash`
//! of the page section. A login makes a random 128-bit session id, sent as an
//! `HttpOnly; SameSite=Strict` cookie; CSRF tokens are bound to it. Without a
//! configured hash nobody can log in, and the page says how to set one.

use crate::auth::{csrf_token, csrf_valid, random_bytes, to_hex, PageConfig, PasswordHash};
use crate::cgi::{now_s, same_origin};
use crate::form::Form;
use crate::route::{self, handle, Agent, HttpRequest, Reply, MAX_BODY};
use crate::views::{self, Page};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Connections served at once; more are answered 503 and closed.
pub const MAX_CONNECTIONS: usize = 8;
/// Largest request line plus headers.
pub const MAX_HEAD: usize = 8 * 1024;
/// Bound on each read or write.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on receiving a whole request.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(15);
/// Logins kept at once; the one closest to expiry goes first.
pub const MAX_SESSIONS: usize = 32;
/// Name of the session cookie.
pub const COOKIE: &str = "nuvol_session";
/// A wrong password costs this long before the answer.
const LOGIN_PENALTY: Duration = Duration::from_secs(1);

struct Shared {
    page: PageConfig,
    agent: Agent,
    /// CSRF key; a restart logs everyone out anyway, so it need not persist.
    secret: [u8; 32],
    /// Session id → expiry (Unix seconds).
    /// Session id and expiry; at most [`MAX_SESSIONS`], so a list.
    sessions: Mutex<Vec<(String, u64)>>,
    active: AtomicUsize,
}

/// Binds `addr` and serves the page forever (run it on its own thread).
pub fn serve(addr: SocketAddr, page: PageConfig) -> io::Result<()> {
    serve_listener(TcpListener::bind(addr)?, page)
}

/// Serves the page on an already bound listener, forever. Errors only when
/// the kernel has no random bytes for the CSRF key.
pub fn serve_listener(listener: TcpListener, page: PageConfig) -> io::Result<()> {
    let mut secret = [0u8; 32];
    random_bytes(&mut secret)?;
    if page.password_hash.is_none() {
        log::warn!(
            "page: no password_hash in the page section; the built-in page refuses every login"
        );
    }
    let shared = Arc::new(Shared {
        agent: Agent::new(&page.control),
        page,
        secret,
        sessions: Mutex::new(Vec::new()),
        active: AtomicUsize::new(0),
    });
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors and the like: back off, don't spin.
                log::warn!("page: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if shared.active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            shared.active.fetch_sub(1, Ordering::SeqCst);
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            let reply = Reply::html(503, "Too many connections; try again.".into());
            let mut stream = stream;
            if write_http(&mut stream, &reply, false).is_ok() {
                // Short, so an overload cannot stall the accept loop for long.
                linger(&mut stream, Duration::from_millis(50));
            }
            continue;
        }
        let worker = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("page-http".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                let _ = connection(&worker, stream);
                worker.active.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            shared.active.fetch_sub(1, Ordering::SeqCst);
            log::warn!("page: cannot start a connection thread: {e}");
        }
    }
    Ok(())
}

/// One parsed request head.
#[derive(Debug, Default)]
struct Head {
    method: String,
    target: String,
    content_length: Option<usize>,
    chunked: bool,
    cookie: Option<String>,
    origin: Option<String>,
    referer: Option<String>,
    host: Option<String>,
    content_type: Option<String>,
}

/// Why a request could not be read; each maps to a status.
enum ReadError {
    Status(u16, &'static str),
    Io,
}

fn connection(shared: &Shared, mut stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let (reply, head_only) = match read_request(&mut stream, deadline) {
        Ok((head, body)) => (respond(shared, &head, &body), head.method == "HEAD"),
        Err(ReadError::Io) => return Ok(()),
        Err(ReadError::Status(status, msg)) => (Reply::html(status, msg.into()), false),
    };
    write_http(&mut stream, &reply, head_only)?;
    linger(&mut stream, Duration::from_millis(500));
    Ok(())
}

/// Closes gently: closing with unread input makes the kernel send a reset,
/// which can destroy the answer (a 413 for a body we refused to read) before
/// the client reads it. So stop writing, then drain a bounded amount for a
/// bounded time.
fn linger(stream: &mut TcpStream, wait: Duration) {
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(wait));
    let mut sink = [0u8; 4096];
    let until = Instant::now() + wait;
    while Instant::now() < until {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

fn read_request(stream: &mut TcpStream, deadline: Instant) -> Result<(Head, Vec<u8>), ReadError> {
    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err(ReadError::Status(431, "Request head too large."));
        }
        read_more(stream, &mut buf, deadline)?;
    };
    let head = parse_head(&buf[..head_end]).ok_or(ReadError::Status(400, "Malformed request."))?;
    let mut body = buf.split_off(head_end + 4);
    if head.chunked {
        return Err(ReadError::Status(411, "Send a Content-Length, not chunks."));
    }
    let len = head.content_length.unwrap_or(0);
    if len > MAX_BODY {
        return Err(ReadError::Status(413, "The form is too large."));
    }
    while body.len() < len {
        read_more(stream, &mut body, deadline)?;
    }
    body.truncate(len);
    Ok((head, body))
}

/// Appends the next bytes the client sends to `buf` (none after an
/// interrupted read), unless the request is already past `deadline`.
fn read_more(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> Result<(), ReadError> {
    if Instant::now() > deadline {
        return Err(ReadError::Status(408, "Request took too long."));
    }
    let mut chunk = [0u8; 1024];
    match stream.read(&mut chunk) {
        Ok(0) => Err(ReadError::Io),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
        Err(_) => Err(ReadError::Io),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse_head(bytes: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let mut head = Head {
        method: first.next()?.to_string(),
        target: first.next()?.to_string(),
        ..Head::default()
    };
    if !first.next()?.starts_with("HTTP/1.") || !head.target.starts_with('/') {
        return None;
    }
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let value = value.trim().to_string();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => head.content_length = Some(value.parse().ok()?),
            "transfer-encoding" => head.chunked = true,
            "cookie" => head.cookie = Some(value),
            "origin" => head.origin = Some(value),
            "referer" => head.referer = Some(value),
            "host" => head.host = Some(value),
            "content-type" => head.content_type = Some(value),
            _ => {}
        }
    }
    Some(head)
}

fn cookie_value<'a>(cookies: &'a str, name: &str) -> Option<&'a str> {
    cookies
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn respond(shared: &Shared, head: &Head, body: &[u8]) -> Reply {
    let now = now_s();
    let (path, query) = head.target.split_once('?').unwrap_or((&head.target, ""));
    let same = same_origin(
        head.origin.as_deref(),
        head.referer.as_deref(),
        head.host.as_deref(),
    );
    let json = query.split('&').any(|kv| kv == "format=json");
    if head.method == "POST"
        && !route::form_content_type_ok(head.content_type.as_deref().unwrap_or(""))
    {
        let req = HttpRequest {
            path,
            binding: "anonymous",
            ..HttpRequest::default()
        };
        return route::error_reply(
            &req,
            415,
            "Forms must be sent url-encoded.",
            json,
            &shared.secret,
            now,
        );
    }
    let session = head
        .cookie
        .as_deref()
        .and_then(|c| cookie_value(c, COOKIE))
        .filter(|id| {
            let mut sessions = shared.sessions.lock().unwrap_or_else(|p| p.into_inner());
            sessions.retain(|(_, exp)| *exp > now);
            sessions.iter().any(|(s, _)| s == id)
        })
        .map(String::from);

    if path == "/login" {
        return login(shared, head, path, query, body, same, now);
    }
    let Some(id) = session else {
        return login_page(shared, 403, false, now);
    };
    let binding = format!("session:{id}");
    if path == "/logout" && head.method == "POST" {
        let form = Form::parse(&String::from_utf8_lossy(body));
        if same && csrf_valid(&shared.secret, &binding, form.text("csrf"), now) {
            shared
                .sessions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|(s, _)| *s != id);
            let mut r = Reply::see_other("/login".into());
            r.headers.push((
                "Set-Cookie".into(),
                format!("{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"),
            ));
            return r;
        }
    }
    let req = HttpRequest {
        method: &head.method,
        path,
        query,
        body,
        base: "",
        binding: &binding,
        same_origin: same,
        logout: true,
    };
    handle(&req, &shared.agent, &shared.secret, now)
}

const LOGIN_BINDING: &str = "login";

fn login_page(shared: &Shared, status: u16, failed: bool, now: u64) -> Reply {
    let csrf = csrf_token(&shared.secret, LOGIN_BINDING, now);
    let mut p = Page::start("", &csrf, None, "Log in", false);
    if shared.page.password_hash.is_none() {
        p.message(
            "No password is set for this page. Set option password_hash in the page section of the nuvol config (make one with “nuvol page-passwd”), then restart the agent.",
            true,
        );
    }
    views::login(&mut p, failed);
    Reply::html(status, p.finish())
}

fn login(
    shared: &Shared,
    head: &Head,
    _path: &str,
    _query: &str,
    body: &[u8],
    same: bool,
    now: u64,
) -> Reply {
    if head.method != "POST" {
        return login_page(shared, 200, false, now);
    }
    let form = Form::parse(&String::from_utf8_lossy(body));
    let token_ok = same && csrf_valid(&shared.secret, LOGIN_BINDING, form.text("csrf"), now);
    let hash = shared
        .page
        .password_hash
        .as_deref()
        .and_then(|h| PasswordHash::parse(h).ok());
    let ok = token_ok && hash.is_some_and(|h| h.verify(form.get("password").unwrap_or("")));
    if !ok {
        std::thread::sleep(LOGIN_PENALTY);
        return login_page(shared, 403, true, now);
    }
    let mut raw = [0u8; 16];
    if random_bytes(&mut raw).is_err() {
        return login_page(shared, 503, false, now);
    }
    let id = to_hex(&raw);
    let ttl = shared.page.session_timeout_s;
    {
        let mut sessions = shared.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|(_, exp)| *exp > now);
        while sessions.len() >= MAX_SESSIONS {
            let oldest = sessions
                .iter()
                .enumerate()
                .min_by_key(|(_, (_, exp))| *exp)
                .map(|(i, _)| i);
            match oldest {
                Some(i) => sessions.swap_remove(i),
                None => break,
            };
        }
        sessions.push((id.clone(), now + ttl));
    }
    let mut r = Reply::see_other("/".into());
    r.headers.push((
        "Set-Cookie".into(),
        format!("{COOKIE}={id}; Path=/; Max-Age={ttl}; HttpOnly; SameSite=Strict"),
    ));
    r
}

/// Writes `reply` as an HTTP/1.1 response that closes the connection.
fn write_http(out: &mut impl Write, reply: &Reply, head_only: bool) -> io::Result<()> {
    let status = format!("HTTP/1.1 {} {}", reply.status, route::reason(reply.status));
    let framing = format!(
        "Content-Length: {}\r\nConnection: close\r\n",
        reply.body.len()
    );
    route::write_reply(out, &status, &framing, reply, head_only)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_parses_the_fields_the_page_uses() {
        let h = parse_head(b"POST /app?format=json HTTP/1.1\r\nHost: r:8080\r\nContent-Length: 12\r\nCookie: a=b; nuvol_session=abc\r\nOrigin: http://r:8080").unwrap();
        assert_eq!(h.method, "POST");
        assert_eq!(h.target, "/app?format=json");
        assert_eq!(h.content_length, Some(12));
        assert_eq!(
            cookie_value(h.cookie.as_deref().unwrap(), COOKIE),
            Some("abc")
        );
        assert!(same_origin(h.origin.as_deref(), None, h.host.as_deref()));
    }

    #[test]
    fn random_heads_never_panic() {
        let mut x: u64 = 0xbad_5eed;
        let pieces: [&[u8]; 10] = [
            b"GET ",
            b"/",
            b" HTTP/1.1",
            b"\r\n",
            b":",
            b"Content-Length",
            b"Cookie: a=b;",
            b"\xff",
            b"99999999999999999999",
            b" ",
        ];
        for _ in 0..20_000 {
            let mut head = Vec::new();
            for _ in 0..(x % 12) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                head.extend_from_slice(pieces[(x % pieces.len() as u64) as usize]);
            }
            if let Some(h) = parse_head(&head) {
                let _ = h.cookie.as_deref().and_then(|c| cookie_value(c, COOKIE));
            }
        }
    }

    #[test]
    fn malformed_heads_are_refused() {
        assert!(parse_head(b"GET").is_none());
        assert!(parse_head(b"GET http://x/ HTTP/1.1").is_none());
        assert!(parse_head(b"GET / SPDY/3").is_none());
        assert!(parse_head(b"GET / HTTP/1.1\r\nContent-Length: -1").is_none());
        assert!(parse_head(b"GET / HTTP/1.1\r\nno colon").is_none());
    }
}
