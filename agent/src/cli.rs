//! The command line: `nuvol [--control PATH] [--json] COMMAND …`, parsed.
//!
//! Every command is one request to the running agent over its control socket
//! (`--control PATH`, else `$NUVOL_CONTROL`, else `/var/run/nuvol.sock`);
//! this module turns the words into that request ([`parse`]), `crate::client`
//! sends it and prints the answer as a table (`crate::render`) or, with
//! `--json`, as the same JSON the page's `?format=json` gives. The help text is generated from [`COMMANDS`], the same
//! table the dispatcher is tested against, so it cannot list a command that
//! does not exist.
//!
//! Exit codes: 0 ok; 1 the agent refused the request (its message is
//! printed); 100 bad usage; 111 the agent could not be reached (temporary).

use std::path::PathBuf;
use std::time::Duration;

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

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

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

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Result<Invocation, Usage> {
        parse(line.split_whitespace().map(String::from).collect())
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
}
