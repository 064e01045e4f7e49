//! The command line: `nuvol [--control PATH] [--json] COMMAND …`.
//!
//! Every command is one request to the running agent over its control socket
//! (`--control PATH`, else `$NUVOL_CONTROL`, else `/var/run/nuvol.sock`), and
//! prints the answer as a table or, with `--json`, as the same JSON the page's
//! `?format=json` gives. The help text is generated from [`COMMANDS`], the same
//! table the dispatcher is tested against, so it cannot list a command that
//! does not exist.
//!
//! Exit codes: 0 ok; 1 the agent refused the request (its message is
//! printed); 100 bad usage; 111 the agent could not be reached (temporary).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use nuvol_control::frame::Client;
use nuvol_control::json::ToJson;
use nuvol_control::*;

use crate::args::{number, pair, Arg, Parser, Usage};
use crate::config::DEFAULT_CONTROL;

/// `(command, synopsis, what it does)`: the help text and the dispatcher's contract.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    ("agent", "agent [--config FILE] [--name NODE] [--microcloud NAME] [--bind IP:PORT] [--advertise IP:PORT] [--join HOST:PORT]... [--state DIR] [--control PATH] [--profile lan|wan] [--http IP:PORT] [--beacon-port PORT] [--event-handler [FILTER=]CMD]... [--gossip KEY=VALUE]...", "run the agent in the foreground"),
    ("info", "info", "this node: name, microcloud, board, resources, keys"),
    ("members", "members", "every known member with state and RTT"),
    ("services", "services", "this node's published services"),
    ("publish", "publish --type T --port P --description D [--txt K=V]...", "publish (or replace) a service of this node"),
    ("unpublish", "unpublish --type T --port P", "withdraw a service of this node"),
    ("search", "search [--type T] [--scope microcloud|global]", "services of this microcloud, best quality first; global: also other microclouds' (asked of this microcloud's super nodes)"),
    ("rtt", "rtt NODE", "estimated round-trip time to NODE"),
    ("event", "event NAME [PAYLOAD]", "send a user event to every member"),
    ("query", "query NAME [PAYLOAD] [--node N]... [--tag K=V]... [--timeout SECONDS]", "ask members and print their answers"),
    ("join", "join HOST:PORT...", "join a microcloud through these members"),
    ("leave", "leave", "leave the microcloud gracefully (the agent keeps running; `join` comes back)"),
    ("keys", "keys generate|install KEY|use KEY|remove KEY|list", "manage the cluster keyring (keys are base64, 32 bytes)"),
    ("monitor", "monitor", "print member, service and event changes as they happen"),
    ("service", "service list|status NAME|start NAME|stop NAME|restart NAME|logs NAME [--lines N]", "supervised local services"),
    ("app", "app list|templates|install TEMPLATE [--name NAME]|start NAME|stop NAME|uninstall NAME|status NAME", "LXC apps from templates"),
    ("page-passwd", "page-passwd < PASSWORD", "print the `option password_hash` value for the built-in page's login (password read from stdin)"),
];

const GLOBAL: &str = "\
Global options:
  --control PATH   control socket of the agent (default $NUVOL_CONTROL, else /var/run/nuvol.sock)
  --json           print JSON instead of tables
  --help, -h       this help (or `nuvol COMMAND --help`)
  --version        print the version
Exit codes: 0 ok, 1 refused by the agent, 100 bad usage or config, 111 agent unreachable.";

pub fn help() -> String {
    let mut out = String::from(
        "nuvol: microcloud agent for community-network routers\n\nUsage: nuvol [--control PATH] [--json] COMMAND ...\n\nCommands:\n",
    );
    for (_, synopsis, what) in COMMANDS {
        out.push_str(&format!("  nuvol {synopsis}\n      {what}\n"));
    }
    out.push('\n');
    out.push_str(GLOBAL);
    out.push('\n');
    out
}

pub fn command_help(cmd: &str) -> Option<String> {
    COMMANDS
        .iter()
        .find(|(name, _, _)| *name == cmd)
        .map(|(_, synopsis, what)| format!("Usage: nuvol {synopsis}\n{what}\n\n{GLOBAL}\n"))
}

/// What a parsed command line asks for.
#[derive(Debug)]
pub enum Cmd {
    Help(Option<String>),
    Version,
    /// Run the agent with these flags.
    Agent(Vec<String>),
    /// Hash a password from stdin for the page section (no agent needed).
    PagePasswd,
    /// Talk to the agent.
    Client(ClientCmd),
}

/// A command answered by the running agent.
#[derive(Debug)]
pub enum ClientCmd {
    /// One request; `done` is printed on `Response::Ok` without `--json`.
    Call {
        request: Request,
        done: String,
        timeout: Duration,
    },
    Monitor,
}

#[derive(Debug)]
pub struct Invocation {
    pub control: Option<PathBuf>,
    pub json: bool,
    pub cmd: Cmd,
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Parses the whole command line (without the program name).
pub fn parse(args: Vec<String>) -> Result<Invocation, Usage> {
    // Global flags may come before the command; `--json` also after it.
    let mut control = None;
    let mut json = false;
    let mut p = Parser::new(args);
    let (cmd, rest) = loop {
        match p.next() {
            None => return Err(Usage("no command given".into())),
            Some(Arg::Flag(f)) => match f.as_str() {
                "control" => control = Some(PathBuf::from(p.value(&f)?)),
                "json" => {
                    p.no_value(&f)?;
                    json = true
                }
                "help" => {
                    return Ok(Invocation {
                        control,
                        json,
                        cmd: Cmd::Help(None),
                    })
                }
                "version" => {
                    return Ok(Invocation {
                        control,
                        json,
                        cmd: Cmd::Version,
                    })
                }
                other => return Err(Usage(format!("unknown option --{other}"))),
            },
            Some(Arg::Pos(c)) => break (c, p.rest()),
        }
    };
    if cmd == "agent" {
        // The agent has its own flags; `--help` there is handled by it.
        return Ok(Invocation {
            control,
            json,
            cmd: Cmd::Agent(rest),
        });
    }
    if cmd == "help" || cmd == "version" {
        let c = if cmd == "help" {
            Cmd::Help(rest.first().cloned())
        } else {
            Cmd::Version
        };
        return Ok(Invocation {
            control,
            json,
            cmd: c,
        });
    }
    if !COMMANDS.iter().any(|(n, _, _)| *n == cmd) {
        return Err(Usage(format!("unknown command '{cmd}'")));
    }
    let mut c = CommandArgs::read(rest)?;
    json |= c.json;
    if c.control.is_some() {
        control = c.control.take();
    }
    let cmd = if c.help {
        Cmd::Help(Some(cmd))
    } else if cmd == "page-passwd" {
        c.only(&cmd, &[])?;
        c.words_exactly(&cmd, 0, "no arguments (the password comes on stdin)")?;
        Cmd::PagePasswd
    } else {
        Cmd::Client(build(&cmd, &mut c)?)
    };
    Ok(Invocation { control, json, cmd })
}

/// A command's own words and flags, read generically, then checked by [`build`].
#[derive(Debug, Default)]
struct CommandArgs {
    words: Vec<String>,
    flags: Vec<(String, String)>,
    json: bool,
    help: bool,
    control: Option<PathBuf>,
}

/// Flags that take a value; every other flag is a switch.
const VALUE_FLAGS: &[&str] = &[
    "type",
    "port",
    "description",
    "txt",
    "scope",
    "node",
    "tag",
    "timeout",
    "lines",
    "name",
    "control",
];

impl CommandArgs {
    fn read(args: Vec<String>) -> Result<CommandArgs, Usage> {
        let mut c = CommandArgs::default();
        let mut p = Parser::new(args);
        while let Some(a) = p.next() {
            match a {
                Arg::Pos(w) => c.words.push(w),
                Arg::Flag(f) if f == "json" => {
                    p.no_value(&f)?;
                    c.json = true
                }
                Arg::Flag(f) if f == "help" => c.help = true,
                Arg::Flag(f) if f == "control" => c.control = Some(p.value(&f)?.into()),
                Arg::Flag(f) if VALUE_FLAGS.contains(&f.as_str()) => {
                    let v = p.value(&f)?;
                    c.flags.push((f, v));
                }
                Arg::Flag(f) => return Err(Usage(format!("unknown option --{f}"))),
            }
        }
        Ok(c)
    }

    /// The one value of `flag`, refusing repeats.
    fn one(&self, flag: &str) -> Result<Option<&str>, Usage> {
        let mut it = self.flags.iter().filter(|(f, _)| f == flag);
        let first = it.next().map(|(_, v)| v.as_str());
        if it.next().is_some() {
            return Err(Usage(format!("--{flag} given twice")));
        }
        Ok(first)
    }

    fn required(&self, flag: &str) -> Result<&str, Usage> {
        self.one(flag)?
            .ok_or_else(|| Usage(format!("--{flag} is required")))
    }

    fn all(&self, flag: &str) -> Vec<&str> {
        self.flags
            .iter()
            .filter(|(f, _)| f == flag)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Refuses any flag not in `allowed` (each command lists what it reads).
    fn only(&self, cmd: &str, allowed: &[&str]) -> Result<(), Usage> {
        match self
            .flags
            .iter()
            .find(|(f, _)| !allowed.contains(&f.as_str()))
        {
            Some((f, _)) => Err(Usage(format!("{cmd} does not take --{f}"))),
            None => Ok(()),
        }
    }

    fn words_exactly(&self, cmd: &str, n: usize, what: &str) -> Result<(), Usage> {
        if self.words.len() == n {
            Ok(())
        } else {
            Err(Usage(format!("{cmd} takes {what}")))
        }
    }
}

fn call(request: Request, done: &str) -> ClientCmd {
    ClientCmd::Call {
        request,
        done: done.to_string(),
        timeout: DEFAULT_TIMEOUT,
    }
}

fn port(v: &str) -> Result<u16, Usage> {
    match number::<u16>("port", v)? {
        0 => Err(Usage("--port must be 1..65535".into())),
        p => Ok(p),
    }
}

fn build(cmd: &str, c: &mut CommandArgs) -> Result<ClientCmd, Usage> {
    let words = c.words.clone();
    Ok(match cmd {
        "info" | "members" | "services" | "leave" | "monitor" => {
            c.only(cmd, &[])?;
            c.words_exactly(cmd, 0, "no arguments")?;
            match cmd {
                "info" => call(Request::Info, ""),
                "members" => call(Request::Members, ""),
                "services" => call(Request::Services, ""),
                "leave" => call(Request::Leave, "left the microcloud"),
                _ => ClientCmd::Monitor,
            }
        }
        "publish" => {
            c.only(cmd, &["type", "port", "description", "txt"])?;
            c.words_exactly(cmd, 0, "only flags")?;
            let spec = PublishSpec {
                service_type: check_type(c.required("type")?)?,
                port: port(c.required("port")?)?,
                description: c.one("description")?.unwrap_or_default().to_string(),
                txt: c
                    .all("txt")
                    .into_iter()
                    .map(|t| pair("txt", t))
                    .collect::<Result<_, _>>()?,
            };
            let done = format!("published {}:{}", spec.service_type, spec.port);
            call(Request::Publish(spec), &done)
        }
        "unpublish" => {
            c.only(cmd, &["type", "port"])?;
            c.words_exactly(cmd, 0, "only flags")?;
            let service_type = check_type(c.required("type")?)?;
            let port = port(c.required("port")?)?;
            let done = format!("unpublished {service_type}:{port}");
            call(Request::Unpublish { service_type, port }, &done)
        }
        "search" => {
            c.only(cmd, &["type", "scope"])?;
            c.words_exactly(cmd, 0, "only flags")?;
            let scope = match c.one("scope")? {
                None => Scope::Microcloud,
                Some(s) => Scope::parse(s)
                    .ok_or_else(|| Usage(format!("--scope: '{s}' is not microcloud or global")))?,
            };
            let service_type = c.one("type")?.map(check_type).transpose()?;
            call(
                Request::Search {
                    service_type,
                    scope,
                },
                "",
            )
        }
        "rtt" => {
            c.only(cmd, &[])?;
            c.words_exactly(cmd, 1, "one NODE")?;
            call(
                Request::Rtt {
                    node: words[0].clone(),
                },
                "",
            )
        }
        "event" => {
            c.only(cmd, &[])?;
            if words.is_empty() || words.len() > 2 {
                return Err(Usage("event takes NAME [PAYLOAD]".into()));
            }
            call(
                Request::Event {
                    name: words[0].clone(),
                    payload: words.get(1).cloned().unwrap_or_default().into_bytes(),
                },
                "event sent",
            )
        }
        "query" => {
            c.only(cmd, &["node", "tag", "timeout"])?;
            if words.is_empty() || words.len() > 2 {
                return Err(Usage("query takes NAME [PAYLOAD]".into()));
            }
            let secs: u32 = match c.one("timeout")? {
                Some(t) => number("timeout", t)?,
                None => 3,
            };
            if secs == 0 || secs > 300 {
                return Err(Usage("--timeout must be 1..300 seconds".into()));
            }
            let spec = QuerySpec {
                name: words[0].clone(),
                payload: words.get(1).cloned().unwrap_or_default().into_bytes(),
                nodes: c.all("node").into_iter().map(String::from).collect(),
                tags: c
                    .all("tag")
                    .into_iter()
                    .map(|t| pair("tag", t))
                    .collect::<Result<_, _>>()?,
                timeout_ms: secs * 1000,
            };
            ClientCmd::Call {
                request: Request::Query(spec),
                done: String::new(),
                timeout: Duration::from_secs(u64::from(secs) + 5),
            }
        }
        "join" => {
            c.only(cmd, &[])?;
            if words.is_empty() {
                return Err(Usage("join takes one or more HOST:PORT".into()));
            }
            let addrs = words
                .iter()
                .map(|w| crate::config::check_host_port(w).map_err(|m| Usage(format!("join: {m}"))))
                .collect::<Result<Vec<_>, _>>()?;
            call(Request::Join { addrs }, "join started")
        }
        "keys" => {
            c.only(cmd, &[])?;
            let sub = words.first().map(String::as_str).unwrap_or("");
            let key = || -> Result<String, Usage> {
                c.words_exactly("keys", 2, &format!("{sub} KEY"))?;
                crate::config::parse_key(&words[1])
                    .map_err(|m| Usage(format!("keys {sub}: {m}")))?;
                Ok(words[1].clone())
            };
            let kc = match sub {
                "generate" => KeyCommand::Generate,
                "list" => KeyCommand::List,
                "install" => KeyCommand::Install(key()?),
                "use" => KeyCommand::Use(key()?),
                "remove" => KeyCommand::Remove(key()?),
                _ => {
                    return Err(Usage(
                        "keys takes generate|install KEY|use KEY|remove KEY|list".into(),
                    ))
                }
            };
            if matches!(kc, KeyCommand::Generate | KeyCommand::List) {
                c.words_exactly("keys", 1, &format!("nothing after {sub}"))?;
            }
            call(Request::Keys(kc), &format!("key {sub} done"))
        }
        "service" => {
            let sub = words.first().map(String::as_str).unwrap_or("");
            let name = || -> Result<String, Usage> {
                c.words_exactly("service", 2, &format!("{sub} NAME"))?;
                Ok(words[1].clone())
            };
            match sub {
                "list" => {
                    c.only(cmd, &[])?;
                    c.words_exactly("service", 1, "nothing after list")?;
                    call(Request::ServiceList, "")
                }
                "status" => {
                    c.only(cmd, &[])?;
                    call(Request::ServiceStatus { name: name()? }, "")
                }
                "logs" => {
                    c.only(cmd, &["lines"])?;
                    let lines = match c.one("lines")? {
                        Some(l) => number("lines", l)?,
                        None => 50,
                    };
                    call(
                        Request::ServiceLogs {
                            name: name()?,
                            lines,
                        },
                        "",
                    )
                }
                "start" | "stop" | "restart" => {
                    c.only(cmd, &[])?;
                    let action = Action::parse(sub).expect("matched a valid action name above");
                    let n = name()?;
                    let done = format!("{n}: {sub} requested");
                    call(Request::ServiceControl { name: n, action }, &done)
                }
                _ => {
                    return Err(Usage(
                        "service takes list|status|start|stop|restart|logs".into(),
                    ))
                }
            }
        }
        "app" => {
            let sub = words.first().map(String::as_str).unwrap_or("");
            let name = || -> Result<String, Usage> {
                c.words_exactly("app", 2, &format!("{sub} NAME"))?;
                Ok(words[1].clone())
            };
            match sub {
                "list" | "templates" => {
                    c.only(cmd, &[])?;
                    c.words_exactly("app", 1, &format!("nothing after {sub}"))?;
                    call(
                        if sub == "list" {
                            Request::AppList
                        } else {
                            Request::AppTemplates
                        },
                        "",
                    )
                }
                "install" => {
                    c.only(cmd, &["name"])?;
                    let template = name()?;
                    let name = c.one("name")?.unwrap_or_default().to_string();
                    let done = format!("{template}: installed");
                    ClientCmd::Call {
                        request: Request::AppInstall { template, name },
                        done,
                        // Downloading a rootfs on a router takes minutes.
                        timeout: Duration::from_secs(900),
                    }
                }
                "status" => {
                    c.only(cmd, &[])?;
                    call(Request::AppStatus { name: name()? }, "")
                }
                "start" | "stop" | "uninstall" => {
                    c.only(cmd, &[])?;
                    let action = Action::parse(sub).expect("matched a valid action name above");
                    let n = name()?;
                    let done = format!("{n}: {sub} done");
                    ClientCmd::Call {
                        request: Request::AppControl { name: n, action },
                        done,
                        timeout: Duration::from_secs(120),
                    }
                }
                _ => {
                    return Err(Usage(
                        "app takes list|templates|install|start|stop|uninstall|status".into(),
                    ))
                }
            }
        }
        other => return Err(Usage(format!("unknown command '{other}'"))),
    })
}

/// Service types: the avahi-ps style short names (`http`, `peerstreamer`).
fn check_type(t: &str) -> Result<String, Usage> {
    let ok = !t.is_empty()
        && t.len() <= 63
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(t.to_string())
    } else {
        Err(Usage(format!(
            "--type: '{t}' must be 1-63 letters, digits, '-', '_' or '.'"
        )))
    }
}

/// The control socket path the CLI uses.
pub fn control_path(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| {
        std::env::var_os("NUVOL_CONTROL")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
    .unwrap_or_else(|| PathBuf::from(DEFAULT_CONTROL))
}

/// Runs a client command; returns the exit code.
pub fn execute(control: PathBuf, json: bool, cmd: ClientCmd) -> i32 {
    match cmd {
        ClientCmd::Call {
            request,
            done,
            timeout,
        } => {
            let mut client = match connect(&control, timeout) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match client.call(&request) {
                Ok(resp) => print_response(&resp, json, &done),
                Err(e) => {
                    eprintln!("nuvol: agent at {}: {e}", control.display());
                    111
                }
            }
        }
        ClientCmd::Monitor => monitor(&control, json),
    }
}

fn connect(control: &std::path::Path, timeout: Duration) -> Result<Client, i32> {
    Client::connect(control, timeout).map_err(|e| {
        eprintln!(
            "nuvol: cannot reach the agent at {}: {e} (is `nuvol agent` running? --control PATH or NUVOL_CONTROL picks another socket)",
            control.display()
        );
        111
    })
}

fn monitor(control: &std::path::Path, json: bool) -> i32 {
    let mut client = match connect(control, DEFAULT_TIMEOUT) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(e) = client.send(&Request::Monitor) {
        eprintln!("nuvol: {e}");
        return 111;
    }
    if let Err(e) = client.set_read_timeout(None) {
        eprintln!("nuvol: {e}");
        return 111;
    }
    loop {
        match client.recv() {
            Ok(None) => return 0,
            Ok(Some(Response::Error { message })) => {
                eprintln!("nuvol: {message}");
                return 1;
            }
            Ok(Some(resp)) => {
                let text = if json {
                    resp.to_json()
                } else {
                    match &resp {
                        Response::Change(c) => change_line(c),
                        other => other.to_json(),
                    }
                };
                let mut out = std::io::stdout().lock();
                // A closed pipe (`nuvol monitor | head`) ends the monitor.
                if writeln!(out, "{text}").and_then(|_| out.flush()).is_err() {
                    return 0;
                }
            }
            Err(e) => {
                eprintln!("nuvol: monitor: {e}");
                return 111;
            }
        }
    }
}

fn change_line(c: &ChangeView) -> String {
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

fn print_response(resp: &Response, json: bool, done: &str) -> i32 {
    if let Response::Error { message } = resp {
        if json {
            println!("{}", resp.to_json());
        }
        eprintln!("nuvol: {message}");
        return 1;
    }
    if json {
        println!("{}", resp.to_json());
        return 0;
    }
    let text = render(resp, done);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    0
}

/// Round-trip time in ms with one decimal. Integer arithmetic: float
/// formatting alone costs the binary a few kB.
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

    fn p(line: &str) -> Result<Invocation, Usage> {
        parse(line.split_whitespace().map(String::from).collect())
    }

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
    fn every_listed_command_is_dispatched_and_has_help() {
        for (name, synopsis, _) in COMMANDS {
            assert!(synopsis.starts_with(name), "{synopsis}");
            let inv = p(&format!("{name} --help")).unwrap();
            if *name == "agent" {
                assert!(matches!(inv.cmd, Cmd::Agent(_)));
            } else {
                assert!(
                    matches!(inv.cmd, Cmd::Help(Some(ref n)) if n == name),
                    "{name}"
                );
            }
            assert!(help().contains(&format!("nuvol {name}")));
            assert!(command_help(name).is_some());
        }
    }

    #[test]
    fn unknown_command_is_usage_error() {
        assert!(p("frobnicate").is_err());
        assert!(p("").is_err());
    }

    #[test]
    fn publish_reads_all_fields() {
        let inv =
            p("--json publish --type http --port 80 --description wiki --txt path=/ --txt a=b")
                .unwrap();
        assert!(inv.json);
        match inv.cmd {
            Cmd::Client(ClientCmd::Call {
                request: Request::Publish(s),
                ..
            }) => {
                assert_eq!(s.service_type, "http");
                assert_eq!(s.port, 80);
                assert_eq!(s.description, "wiki");
                assert_eq!(
                    s.txt,
                    vec![("path".into(), "/".into()), ("a".into(), "b".into())]
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn publish_without_port_or_with_bad_type_is_refused() {
        assert!(p("publish --type http").unwrap_err().0.contains("--port"));
        assert!(p("publish --type 'a b' --port 1").is_err());
        assert!(p("publish --type http --port 0").is_err());
        assert!(p("publish --type http --port 1 --scope global").is_err());
    }

    #[test]
    fn json_and_control_work_after_the_command() {
        let inv = p("search --type http --json --control /tmp/x.sock").unwrap();
        assert!(inv.json);
        assert_eq!(inv.control, Some(PathBuf::from("/tmp/x.sock")));
        assert!(matches!(
            inv.cmd,
            Cmd::Client(ClientCmd::Call {
                request: Request::Search {
                    scope: Scope::Microcloud,
                    ..
                },
                ..
            })
        ));
    }

    #[test]
    fn query_collects_filters_and_extends_client_timeout() {
        let inv = p("query ping hi --node a --node b --tag role=web --timeout 7").unwrap();
        match inv.cmd {
            Cmd::Client(ClientCmd::Call {
                request: Request::Query(q),
                timeout,
                ..
            }) => {
                assert_eq!(q.nodes, vec!["a", "b"]);
                assert_eq!(q.tags, vec![("role".into(), "web".into())]);
                assert_eq!(q.timeout_ms, 7000);
                assert!(timeout > Duration::from_secs(7));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn keys_check_the_key_before_sending() {
        assert!(p("keys install AAAA").is_err());
        let k = nuvol_gossip::Key::from_bytes([1u8; 32]).to_base64();
        assert!(p(&format!("keys install {k}")).is_ok());
        assert!(p("keys list extra").is_err());
    }

    #[test]
    fn table_replaces_control_characters_from_peers() {
        let t = table(&["A"], vec![vec!["evil\x1b[2Jname".into()]]);
        assert!(!t.contains('\x1b'));
    }
}
