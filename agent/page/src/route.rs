//! From one HTTP request to one reply: the page's logic, shared by the CGI
//! program and the built-in server.
//!
//! Both front ends parse their transport into an [`HttpRequest`] (already
//! authenticated: they decide who the user is) and write the [`Reply`] back.
//! This module checks the CSRF token of every POST before anything reaches the
//! agent, asks the agent over the control socket, and renders HTML or, with
//! `?format=json`, the same data through [`nuvol_control::json`].
//!
//! The agent being down is an answer, not a failure: the page says so with a
//! 503 and how to start it; the web server never sees a broken CGI.

use crate::auth::{csrf_token, csrf_valid};
use crate::form::Form;
use crate::views::{self, Page, View};
use nuvol_control::frame::Client;
use nuvol_control::json::{Object, ToJson};
use nuvol_control::{Action, KeyCommand, PublishSpec, QuerySpec, Request, Response, Scope};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Reads of views must be quick: a page that waits longer than this for the
/// agent tells the owner the agent is stuck.
pub const VIEW_TIMEOUT: Duration = Duration::from_secs(5);
/// Installing or starting a container can take a while on a slow board; this
/// stays under uhttpd's 60 s script limit.
pub const APP_TIMEOUT: Duration = Duration::from_secs(45);
/// Longest query wait a form may ask for.
pub const MAX_QUERY_MS: u32 = 10_000;
/// Largest request body the page accepts; a bigger one gets 413.
pub const MAX_BODY: usize = 16 * 1024;

/// A request as the front end understood it.
#[derive(Debug, Clone, Default)]
pub struct HttpRequest<'a> {
    /// `GET`, `HEAD` or `POST` (others get 405).
    pub method: &'a str,
    /// Path below the page: `/`, `/search`, `/app`, …
    pub path: &'a str,
    /// Raw query string, without `?`.
    pub query: &'a str,
    /// Form body of a POST (`application/x-www-form-urlencoded`).
    pub body: &'a [u8],
    /// Prefix of every link: `/cgi-bin/nuvol` or empty.
    pub base: &'a str,
    /// What CSRF tokens are bound to: `user:NAME` (CGI) or `session:ID`.
    pub binding: &'a str,
    /// False when the browser said the request came from another origin.
    pub same_origin: bool,
    /// Show a log-out button (built-in server sessions).
    pub logout: bool,
}

/// What to send back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    /// Extra headers (`Location`, `Set-Cookie`).
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn html(status: u16, body: String) -> Reply {
        Reply {
            status,
            content_type: "text/html; charset=utf-8",
            headers: Vec::new(),
            body,
        }
    }

    pub fn json(status: u16, body: String) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body,
        }
    }

    /// 303 to `location` (a path the browser resolves against the page).
    pub fn see_other(location: String) -> Reply {
        let mut r = Reply::html(303, String::new());
        r.headers.push(("Location".into(), location));
        r
    }
}

/// Headers every answer carries: no caching of pages with tokens, no framing,
/// no scripts at all, forms only to ourselves.
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
];

/// Whether a POST's `Content-Type` is one the page reads: url-encoded, or
/// none at all (some command-line clients send none).
pub fn form_content_type_ok(content_type: &str) -> bool {
    content_type.is_empty() || content_type.starts_with("application/x-www-form-urlencoded")
}

/// Writes `reply` for either front end: `status_line` (`Status: 200 OK` for
/// the CGI, `HTTP/1.1 200 OK` for the built-in server), the front end's own
/// `framing` header lines (each ending in CRLF), the content type, the
/// [`SECURITY_HEADERS`], the reply's headers, a blank line and (unless
/// `head_only`) the body.
pub fn write_reply(
    out: &mut dyn Write,
    status_line: &str,
    framing: &str,
    reply: &Reply,
    head_only: bool,
) -> io::Result<()> {
    let mut head = String::with_capacity(512);
    head.push_str(status_line);
    head.push_str("\r\n");
    head.push_str(&format!("Content-Type: {}\r\n", reply.content_type));
    head.push_str(framing);
    for (k, v) in SECURITY_HEADERS {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    if !head_only {
        out.write_all(reply.body.as_bytes())?;
    }
    out.flush()
}

/// The reason phrase for the status codes the page uses.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        303 => "See Other",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        _ => "Service Unavailable",
    }
}

/// How the page reaches the agent.
#[derive(Debug, Clone)]
pub struct Agent {
    pub control: PathBuf,
}

/// Why the agent gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentError {
    /// Nobody listens on the control socket.
    Down(String),
    /// It listened but did not answer properly in time.
    Stuck(String),
    /// It answered with an error for the owner.
    Refused(String),
}

impl Agent {
    pub fn new(control: &Path) -> Agent {
        Agent {
            control: control.to_path_buf(),
        }
    }

    /// One request on its own connection (the protocol's rule).
    pub fn call(&self, req: &Request, timeout: Duration) -> Result<Response, AgentError> {
        let mut client = Client::connect(&self.control, timeout).map_err(|e| {
            AgentError::Down(format!(
                "The nuvol agent is not running (cannot reach its control socket {}: {e}). \
                 Start it with “/etc/init.d/nuvol start” or “nuvol agent”.",
                self.control.display()
            ))
        })?;
        match client.call(req) {
            Ok(Response::Error { message }) => Err(AgentError::Refused(message)),
            Ok(r) => Ok(r),
            Err(e) => Err(AgentError::Stuck(format!(
                "The nuvol agent did not answer in time ({e}). It may be overloaded; try again."
            ))),
        }
    }
}

fn unexpected(r: Response) -> AgentError {
    AgentError::Stuck(format!(
        "The agent answered something this page does not understand ({}); are the agent and page the same version?",
        response_name(&r)
    ))
}

fn response_name(r: &Response) -> &'static str {
    match r {
        Response::Ok => "ok",
        Response::Error { .. } => "error",
        Response::Info(_) => "info",
        Response::Members(_) => "members",
        Response::Services(_) => "services",
        Response::Rtt { .. } => "rtt",
        Response::QueryResponses(_) => "query responses",
        Response::Keys(_) => "keys",
        Response::Key(_) => "key",
        Response::Change(_) => "change",
        Response::Instances(_) => "instances",
        Response::Logs(_) => "logs",
        Response::Templates(_) => "templates",
        Response::Apps(_) => "apps",
    }
}

/// Renders a full error page (or JSON error) with `status`.
pub fn error_reply(
    req: &HttpRequest,
    status: u16,
    message: &str,
    json: bool,
    secret: &[u8; 32],
    now_s: u64,
) -> Reply {
    if json {
        let mut out = String::new();
        let mut o = Object::new(&mut out);
        o.bool("ok", false).str("error", message);
        o.end();
        return Reply::json(status, out);
    }
    let csrf = csrf_token(secret, req.binding, now_s);
    let mut p = Page::start(req.base, &csrf, None, reason(status), req.logout);
    p.h1(reason(status));
    p.message(message, true);
    Reply::html(status, p.finish())
}

fn agent_error_reply(
    req: &HttpRequest,
    e: AgentError,
    json: bool,
    secret: &[u8; 32],
    now_s: u64,
) -> Reply {
    match e {
        AgentError::Down(m) | AgentError::Stuck(m) => {
            error_reply(req, 503, &m, json, secret, now_s)
        }
        AgentError::Refused(m) => error_reply(
            req,
            409,
            &format!("The agent refused: {m}"),
            json,
            secret,
            now_s,
        ),
    }
}

/// Answers one authenticated request.
///
/// `secret` signs CSRF tokens; `now_s` is the Unix time (passed in so tests
/// can pin it).
pub fn handle(req: &HttpRequest, agent: &Agent, secret: &[u8; 32], now_s: u64) -> Reply {
    let query = Form::parse(req.query);
    let json = query.get("format") == Some("json");
    match req.method {
        "GET" | "HEAD" => match View::from_path(req.path) {
            Some(view) => get_view(req, view, &query, json, agent, secret, now_s)
                .unwrap_or_else(|e| agent_error_reply(req, e, json, secret, now_s)),
            None => error_reply(req, 404, "No such page.", json, secret, now_s),
        },
        "POST" => post(req, json, agent, secret, now_s),
        _ => error_reply(
            req,
            405,
            "Only GET and POST are used here.",
            json,
            secret,
            now_s,
        ),
    }
}

fn get_view(
    req: &HttpRequest,
    view: View,
    query: &Form,
    json: bool,
    agent: &Agent,
    secret: &[u8; 32],
    now_s: u64,
) -> Result<Reply, AgentError> {
    let call = |r: Request| agent.call(&r, VIEW_TIMEOUT);
    let csrf = csrf_token(secret, req.binding, now_s);
    let mut page =
        (!json).then(|| Page::start(req.base, &csrf, Some(view), view.title(), req.logout));
    let mut out = String::new();
    match view {
        View::Overview => match call(Request::Info)? {
            Response::Info(i) => match page.as_mut() {
                Some(p) => views::overview(p, &i),
                None => i.write_json(&mut out),
            },
            r => return Err(unexpected(r)),
        },
        View::Members => match call(Request::Members)? {
            Response::Members(m) => match page.as_mut() {
                Some(p) => views::members(p, &m),
                None => m.write_json(&mut out),
            },
            r => return Err(unexpected(r)),
        },
        View::Search => {
            let scope = query
                .get("scope")
                .and_then(Scope::parse)
                .unwrap_or(Scope::Microcloud);
            let selected = query.text("type");
            // All types in one call: the tabs need every type seen, and the
            // selected tab is a filter over the same answer.
            let mut found = match call(Request::Search {
                service_type: None,
                scope,
            })? {
                Response::Services(s) => s,
                r => return Err(unexpected(r)),
            };
            // Other microclouds answer a global search in one datagram per
            // super node, shared by every type; asked for one type, they
            // spend it all on that type, so the selected tab gets its own call.
            if scope == Scope::Global && !selected.is_empty() {
                match call(Request::Search {
                    service_type: Some(selected.to_string()),
                    scope,
                })? {
                    Response::Services(typed) => {
                        found.retain(|s| s.service_type != selected);
                        found.extend(typed);
                    }
                    r => return Err(unexpected(r)),
                }
            }
            match page.as_mut() {
                Some(p) => views::search(p, &found, scope, selected, query.get("all").is_some()),
                None => {
                    let picked: Vec<_> = found
                        .into_iter()
                        .filter(|s| selected.is_empty() || s.service_type == selected)
                        .collect();
                    picked.write_json(&mut out)
                }
            }
        }
        View::Services => {
            let instances = match call(Request::ServiceList)? {
                Response::Instances(i) => i,
                r => return Err(unexpected(r)),
            };
            let records = match call(Request::Services)? {
                Response::Services(s) => s,
                r => return Err(unexpected(r)),
            };
            match page.as_mut() {
                Some(p) => views::services(p, &instances, &records),
                None => {
                    let mut o = Object::new(&mut out);
                    o.value("instances", &instances).value("records", &records);
                    o.end();
                }
            }
        }
        View::Apps => {
            let templates = match call(Request::AppTemplates)? {
                Response::Templates(t) => t,
                r => return Err(unexpected(r)),
            };
            let apps = match call(Request::AppList)? {
                Response::Apps(a) => a,
                r => return Err(unexpected(r)),
            };
            match page.as_mut() {
                Some(p) => views::apps(p, &templates, &apps),
                None => {
                    let mut o = Object::new(&mut out);
                    o.value("templates", &templates).value("apps", &apps);
                    o.end();
                }
            }
        }
        View::Events => match page.as_mut() {
            Some(p) => {
                if query.get("sent").is_some() {
                    p.message("Event sent.", false);
                }
                views::events(p, None)
            }
            None => out.push_str(r#"{"ok":true,"post":["event","query"]}"#),
        },
    }
    Ok(match page {
        Some(p) => Reply::html(200, p.finish()),
        None => Reply::json(200, out),
    })
}

/// A short name of a node, service, template or type: what the agent accepts
/// as an identifier. Anything else is refused before it reaches the agent.
fn ident<'a>(form: &'a Form, field: &str) -> Result<&'a str, String> {
    let v = form.text(field);
    if v.is_empty() || v.len() > 64 || v.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "“{field}” must be 1 to 64 characters without spaces."
        ));
    }
    Ok(v)
}

fn port(form: &Form) -> Result<u16, String> {
    form.text("port")
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| "“port” must be a number from 1 to 65535.".to_string())
}

fn bounded(form: &Form, field: &str, max: usize) -> Result<String, String> {
    let v = form.text(field);
    if v.len() > max {
        return Err(format!("“{field}” is longer than {max} bytes."));
    }
    Ok(v.to_string())
}

/// What a POST asks the agent, and where the browser goes after success.
fn post_request(path: &str, form: &Form) -> Result<(Request, &'static str, Duration), String> {
    Ok(match path {
        "/service" => {
            let action = Action::parse(form.text("action"))
                .filter(|a| {
                    matches!(
                        a,
                        Action::Start
                            | Action::Stop
                            | Action::Restart
                            | Action::Publish
                            | Action::Unpublish
                    )
                })
                .ok_or("Unknown service action.")?;
            let req = Request::ServiceControl {
                name: ident(form, "name")?.into(),
                action,
            };
            (req, "/services", Duration::from_secs(20))
        }
        "/app" => {
            let action = Action::parse(form.text("action"))
                .filter(|a| *a != Action::Reload)
                .ok_or("Unknown app action.")?;
            let req = Request::AppControl {
                name: ident(form, "name")?.into(),
                action,
            };
            (req, "/apps", APP_TIMEOUT)
        }
        "/install" => {
            let template = ident(form, "template")?.to_string();
            let name = if form.text("name").is_empty() {
                template.clone()
            } else {
                ident(form, "name")?.to_string()
            };
            (Request::AppInstall { template, name }, "/apps", APP_TIMEOUT)
        }
        "/publish" => {
            let mut txt = Vec::new();
            for line in form
                .text("txt")
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
            {
                let (k, v) = line
                    .split_once('=')
                    .ok_or("TXT lines must look like key=value.")?;
                txt.push((k.trim().to_string(), v.trim().to_string()));
            }
            if txt.len() > 16 {
                return Err("At most 16 TXT lines.".into());
            }
            let spec = PublishSpec {
                service_type: ident(form, "type")?.into(),
                port: port(form)?,
                description: bounded(form, "description", 200)?,
                txt,
            };
            (Request::Publish(spec), "/services", VIEW_TIMEOUT)
        }
        "/unpublish" => {
            let req = Request::Unpublish {
                service_type: ident(form, "type")?.into(),
                port: port(form)?,
            };
            (req, "/services", VIEW_TIMEOUT)
        }
        "/event" => {
            let req = Request::Event {
                name: ident(form, "name")?.into(),
                payload: bounded(form, "payload", 512)?.into_bytes(),
            };
            (req, "/events?sent=1", VIEW_TIMEOUT)
        }
        "/query" => {
            let timeout_ms = form
                .text("timeout_ms")
                .parse::<u32>()
                .unwrap_or(2000)
                .clamp(100, MAX_QUERY_MS);
            let spec = QuerySpec {
                name: ident(form, "name")?.into(),
                payload: bounded(form, "payload", 512)?.into_bytes(),
                nodes: form
                    .text("nodes")
                    .split_whitespace()
                    .take(64)
                    .map(String::from)
                    .collect(),
                tags: Vec::new(),
                timeout_ms,
            };
            let wait = Duration::from_millis(u64::from(timeout_ms)) + VIEW_TIMEOUT;
            (Request::Query(spec), "/events", wait)
        }
        "/join" => {
            let addrs: Vec<String> = form
                .text("addrs")
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|a| !a.is_empty())
                .take(16)
                .map(String::from)
                .collect();
            if addrs.is_empty() {
                return Err("Give at least one address to join.".into());
            }
            (Request::Join { addrs }, "/", Duration::from_secs(15))
        }
        "/leave" => (Request::Leave, "/", Duration::from_secs(15)),
        _ => return Err(String::new()),
    })
}

/// POST /key: installs the key given (or a new one the agent makes) and
/// makes it the one this node sends with, through the control socket's
/// keys requests. A new key is shown once, to be copied to the other nodes.
fn set_key(
    req: &HttpRequest,
    form: &Form,
    json: bool,
    agent: &Agent,
    secret: &[u8; 32],
    now_s: u64,
) -> Reply {
    let given = form.text("key").trim();
    if given.len() > 64 {
        return error_reply(
            req,
            400,
            "A key is 44 base64 characters.",
            json,
            secret,
            now_s,
        );
    }
    let key = if given.is_empty() {
        match agent.call(&Request::Keys(KeyCommand::Generate), VIEW_TIMEOUT) {
            Ok(Response::Key(k)) => k,
            Ok(_) => {
                return error_reply(
                    req,
                    502,
                    "The agent did not make a key.",
                    json,
                    secret,
                    now_s,
                )
            }
            Err(e) => return agent_error_reply(req, e, json, secret, now_s),
        }
    } else {
        given.to_string()
    };
    for command in [
        KeyCommand::Install(key.clone()),
        KeyCommand::Use(key.clone()),
    ] {
        if let Err(e) = agent.call(&Request::Keys(command), VIEW_TIMEOUT) {
            return agent_error_reply(req, e, json, secret, now_s);
        }
    }
    if json {
        let mut out = String::new();
        let mut o = Object::new(&mut out);
        o.bool("ok", true);
        if given.is_empty() {
            o.str("key", &key);
        }
        o.end();
        return Reply::json(200, out);
    }
    if given.is_empty() {
        let csrf = csrf_token(secret, req.binding, now_s);
        let mut p = Page::start(req.base, &csrf, Some(View::Overview), "Key", req.logout);
        views::key_made(&mut p, &key);
        return Reply::html(200, p.finish());
    }
    let mut location = req.base.to_string();
    if location.is_empty() {
        location.push('/');
    }
    Reply::see_other(location)
}

fn post(req: &HttpRequest, json: bool, agent: &Agent, secret: &[u8; 32], now_s: u64) -> Reply {
    if req.body.len() > MAX_BODY {
        return error_reply(req, 413, "The form is too large.", json, secret, now_s);
    }
    let body = String::from_utf8_lossy(req.body);
    let form = Form::parse(&body);
    // The token check comes first: a forged request learns nothing, not even
    // whether its fields were valid, and the agent never sees it.
    let token_ok = req.same_origin && csrf_valid(secret, req.binding, form.text("csrf"), now_s);
    if !token_ok {
        return error_reply(
            req,
            403,
            "This form is out of date or came from another site, so nothing was changed. Reload the page and try again.",
            json,
            secret,
            now_s,
        );
    }
    if req.path == "/key" {
        return set_key(req, &form, json, agent, secret, now_s);
    }
    let (request, back, timeout) = match post_request(req.path, &form) {
        Ok(x) => x,
        Err(m) if m.is_empty() => {
            return error_reply(req, 404, "No such action.", json, secret, now_s)
        }
        Err(m) => return error_reply(req, 400, &m, json, secret, now_s),
    };
    match agent.call(&request, timeout) {
        Ok(resp) if json => Reply::json(200, resp.to_json()),
        Ok(Response::QueryResponses(answers)) => {
            let csrf = csrf_token(secret, req.binding, now_s);
            let mut p = Page::start(req.base, &csrf, Some(View::Events), "Events", req.logout);
            views::events(&mut p, Some(&answers));
            Reply::html(200, p.finish())
        }
        Ok(_) => {
            let mut location = req.base.to_string();
            // The overview under a CGI base is the script itself (see Page::link).
            if location.is_empty() || back != "/" {
                location.push_str(back);
            }
            Reply::see_other(location)
        }
        Err(e) => agent_error_reply(req, e, json, secret, now_s),
    }
}
