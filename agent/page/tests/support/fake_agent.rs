//! A fake nuvol agent for the page's tests, examples and benchmark: it serves
//! the real control protocol on a Unix socket, answers from a small in-memory
//! model of a 3-node microcloud (or a scaled one), applies the page's actions
//! to that model (install → start → publish really change what the next view
//! shows), and records every request so tests can prove a refused POST
//! reached nothing.

#![allow(dead_code)]

use nuvol_control::frame::{self, MAX_REQUEST};
use nuvol_control::*;
use std::io::Write;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The description a hostile peer publishes: markup and both quotes.
pub const EVIL: &str = "<script>alert(\"pwned\")</script> it's \"quoted\" & <b>bold</b>";

/// What the fake agent knows.
#[derive(Debug, Clone)]
pub struct Model {
    pub info: NodeInfo,
    pub members: Vec<MemberView>,
    pub catalog: Vec<ServiceView>,
    pub own: Vec<ServiceView>,
    pub instances: Vec<InstanceView>,
    pub templates: Vec<TemplateView>,
    pub apps: Vec<AppView>,
}

fn member(
    name: &str,
    ip: &str,
    state: MemberState,
    mc: &str,
    rtt_us: Option<u64>,
    since: u64,
) -> MemberView {
    MemberView {
        name: name.into(),
        addr: format!("{ip}:7946"),
        state,
        microcloud: mc.into(),
        incarnation: 3,
        rtt_us,
        since_change_s: since,
        tags: vec![("board".into(), "turris-omnia".into())],
    }
}

fn record(
    ty: &str,
    desc: &str,
    host: &str,
    ip: &str,
    port: u16,
    mc: &str,
    quality: u8,
) -> ServiceView {
    ServiceView {
        service_type: ty.into(),
        description: desc.into(),
        host: host.into(),
        ip: ip.into(),
        port,
        microcloud: mc.into(),
        txt: Vec::new(),
        health: Health::Healthy,
        rtt_us: Some(u64::from(100 - quality) * 300),
        load_x100: 20,
        quality,
    }
}

impl Model {
    /// alpha (this node), beta and gamma in microcloud `gracia`, plus a peer
    /// microcloud `sants` seen only in global search.
    // `..Default::default()` is there for fields NodeInfo gains later.
    #[allow(clippy::needless_update)]
    pub fn three_nodes() -> Model {
        let mut evil = record("http", EVIL, "gamma", "10.0.0.3", 8080, "gracia", 71);
        evil.txt = vec![
            ("scheme".into(), "javascript".into()),
            ("path".into(), "/\"><script>x</script>".into()),
        ];
        Model {
            info: NodeInfo {
                name: "alpha".into(),
                microcloud: "gracia".into(),
                board: "turris-omnia".into(),
                arch: "armv7".into(),
                version: "0.1.0".into(),
                addr: "10.0.0.1:7946".into(),
                uptime_s: 93_784,
                mem_total_kb: 60_000,
                mem_free_kb: 21_000,
                load_x100: 42,
                members_alive: 2,
                members_total: 3,
                keys_installed: 1,
                encrypted: true,
                health_score: 0,
                incarnation: 3,
                agent_rss_kb: 812,
                packets_rejected: 0,
                // A current agent reports these, zero while nothing is refused.
                members_refused: Some(0),
                services_refused: Some(0),
                max_members: Some(1024),
                packets_malformed: Some(0),
                // Fields added later keep their defaults here.
                ..Default::default()
            },
            members: vec![
                member(
                    "alpha",
                    "10.0.0.1",
                    MemberState::Alive,
                    "gracia",
                    Some(0),
                    93_000,
                ),
                member(
                    "beta",
                    "10.0.0.2",
                    MemberState::Alive,
                    "gracia",
                    Some(1_800),
                    4_000,
                ),
                member(
                    "gamma",
                    "10.0.0.3",
                    MemberState::Suspect,
                    "gracia",
                    Some(12_400),
                    7,
                ),
            ],
            catalog: vec![
                record(
                    "http",
                    "Community wiki",
                    "beta",
                    "10.0.0.2",
                    80,
                    "gracia",
                    93,
                ),
                record("ssh", "Shell on beta", "beta", "10.0.0.2", 22, "gracia", 90),
                evil,
                record(
                    "http",
                    "Sants map tiles",
                    "delta",
                    "10.1.0.9",
                    8000,
                    "sants",
                    40,
                ),
            ],
            own: vec![record(
                "http",
                "alpha status page",
                "alpha",
                "10.0.0.1",
                8081,
                "gracia",
                100,
            )],
            instances: vec![
                InstanceView {
                    name: "status".into(),
                    state: "running".into(),
                    pid: Some(812),
                    health: Health::Healthy,
                    restarts: 0,
                    published: true,
                    uptime_s: Some(93_700),
                    last_log: vec!["listening on :8081".into(), "GET / 200 <ok>".into()],
                    kind: "service".into(),
                },
                InstanceView {
                    name: "tileserver".into(),
                    state: "failed".into(),
                    pid: None,
                    health: Health::Unhealthy,
                    restarts: 5,
                    published: false,
                    uptime_s: None,
                    last_log: vec!["error: port 8000 in use".into()],
                    kind: "service".into(),
                },
            ],
            templates: vec![
                TemplateView {
                    name: "website".into(),
                    description: "Static web site (busybox httpd), offline".into(),
                    version: "1.0".into(),
                    architectures: vec!["armv7".into(), "x86_64".into(), "aarch64".into()],
                    supported: true,
                    installed: false,
                },
                TemplateView {
                    name: "peertube".into(),
                    description: "Video sharing".into(),
                    version: "5.2".into(),
                    architectures: vec!["x86_64".into()],
                    supported: false,
                    installed: false,
                },
            ],
            apps: Vec::new(),
        }
    }

    /// `members` members and `services` search results, for the benchmark.
    pub fn scaled(members: usize, services: usize) -> Model {
        let mut m = Model::three_nodes();
        m.members = (0..members)
            .map(|i| {
                let state = if i % 17 == 5 {
                    MemberState::Suspect
                } else {
                    MemberState::Alive
                };
                member(
                    &format!("node-{i:03}"),
                    &format!("10.0.{}.{}", i / 250, i % 250 + 1),
                    state,
                    "gracia",
                    Some(500 + i as u64 * 97),
                    i as u64 * 13,
                )
            })
            .collect();
        let types = ["http", "ssh", "dns", "ipfs", "syncthing", "peertube"];
        m.catalog = (0..services)
            .map(|i| {
                let host = i % members.max(1);
                record(
                    types[i % types.len()],
                    &format!("Service {i} on node {host} <with> \"markup\" & more text to make it realistic"),
                    &format!("node-{host:03}"),
                    &format!("10.0.{}.{}", host / 250, host % 250 + 1),
                    8000 + (i % 1000) as u16,
                    if i % 5 == 0 { "sants" } else { "gracia" },
                    (100 - (i * 7) % 100) as u8,
                )
            })
            .collect();
        m.info.members_total = members as u32;
        m
    }

    /// Answers one request, changing the model like the agent would.
    pub fn answer(&mut self, req: &Request) -> Response {
        let err = |m: &str| Response::Error { message: m.into() };
        match req {
            Request::Info => Response::Info(self.info.clone()),
            Request::Members => Response::Members(self.members.clone()),
            Request::Services => Response::Services(self.own.clone()),
            Request::Search {
                service_type,
                scope,
            } => Response::Services(
                self.catalog
                    .iter()
                    .chain(self.own.iter())
                    .filter(|s| *scope == Scope::Global || s.microcloud == self.info.microcloud)
                    .filter(|s| service_type.as_ref().is_none_or(|t| *t == s.service_type))
                    .cloned()
                    .collect(),
            ),
            Request::Publish(spec) => {
                self.own
                    .retain(|s| !(s.service_type == spec.service_type && s.port == spec.port));
                let mut r = record(
                    &spec.service_type,
                    &spec.description,
                    "alpha",
                    "10.0.0.1",
                    spec.port,
                    "gracia",
                    100,
                );
                r.txt = spec.txt.clone();
                self.own.push(r);
                Response::Ok
            }
            Request::Unpublish { service_type, port } => {
                let before = self.own.len();
                self.own
                    .retain(|s| !(s.service_type == *service_type && s.port == *port));
                if before == self.own.len() {
                    err("no such record")
                } else {
                    Response::Ok
                }
            }
            Request::Event { .. } | Request::Join { .. } | Request::Leave => Response::Ok,
            Request::Query(q) => Response::QueryResponses(
                self.members
                    .iter()
                    .filter(|m| q.nodes.is_empty() || q.nodes.contains(&m.name))
                    .map(|m| QueryAnswer {
                        node: m.name.clone(),
                        payload: format!("{} says <hi>", m.name).into_bytes(),
                    })
                    .collect(),
            ),
            Request::ServiceList => Response::Instances(self.instances.clone()),
            Request::ServiceControl { name, action } => {
                let Some(i) = self.instances.iter_mut().find(|i| i.name == *name) else {
                    return err("no such service");
                };
                match action {
                    Action::Start | Action::Restart => i.state = "running".into(),
                    Action::Stop => i.state = "stopped".into(),
                    Action::Publish => i.published = true,
                    Action::Unpublish => i.published = false,
                    _ => return err("not for services"),
                }
                Response::Ok
            }
            Request::AppTemplates => Response::Templates(self.templates.clone()),
            Request::AppList => Response::Apps(self.apps.clone()),
            Request::AppInstall { template, name } => {
                let Some(t) = self.templates.iter_mut().find(|t| t.name == *template) else {
                    return err("no such template");
                };
                if !t.supported {
                    return err("template not available for this architecture");
                }
                if self.apps.iter().any(|a| a.name == *name) {
                    return err("an app with that name exists");
                }
                t.installed = true;
                self.apps.push(AppView {
                    name: name.clone(),
                    template: template.clone(),
                    state: "STOPPED".into(),
                    ips: Vec::new(),
                    ports: vec![(80, 8090)],
                    memory_bytes: None,
                    health: Health::Unknown,
                    published: false,
                });
                Response::Ok
            }
            Request::AppControl { name, action } => {
                let Some(idx) = self.apps.iter().position(|a| a.name == *name) else {
                    return err("no such app");
                };
                let a = &mut self.apps[idx];
                match action {
                    Action::Start | Action::Restart => {
                        a.state = "RUNNING".into();
                        a.ips = vec!["10.0.3.17".into()];
                        a.memory_bytes = Some(6 << 20);
                        a.health = Health::Healthy;
                    }
                    Action::Stop => {
                        a.state = "STOPPED".into();
                        a.ips.clear();
                        a.memory_bytes = None;
                    }
                    Action::Publish => {
                        a.published = true;
                        let desc = format!("{} app", a.name);
                        self.own.push(record(
                            "http", &desc, "alpha", "10.0.0.1", 8090, "gracia", 100,
                        ));
                    }
                    Action::Unpublish => a.published = false,
                    Action::Uninstall => {
                        let t = self.apps.remove(idx).template;
                        for tv in self.templates.iter_mut().filter(|tv| tv.name == t) {
                            tv.installed = false;
                        }
                    }
                    Action::Reload => return err("not for apps"),
                }
                Response::Ok
            }
            _ => err("the fake agent does not know this request"),
        }
    }
}

/// A running fake agent.
pub struct FakeAgent {
    pub path: PathBuf,
    pub requests: Arc<Mutex<Vec<String>>>,
    pub model: Arc<Mutex<Model>>,
}

impl FakeAgent {
    /// Serves `model` on a new socket at `path` from a background thread.
    /// Every request is appended to `requests` and, when given, as one line to
    /// `log` (for shell tests).
    pub fn start(path: &Path, model: Model, log: Option<PathBuf>) -> FakeAgent {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).expect("bind fake control socket");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let model = Arc::new(Mutex::new(model));
        let (reqs, m) = (Arc::clone(&requests), Arc::clone(&model));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                let Ok(Some(body)) = frame::read_body(&mut conn, MAX_REQUEST) else {
                    continue;
                };
                let resp = match frame::decode::<Request>(&body) {
                    Ok(req) => {
                        let line = format!("{req:?}");
                        if let Some(log) = &log {
                            if let Ok(mut f) = std::fs::OpenOptions::new()
                                .create(true)
                                .append(true)
                                .open(log)
                            {
                                let _ = writeln!(f, "{line}");
                            }
                        }
                        reqs.lock().unwrap().push(line);
                        m.lock().unwrap().answer(&req)
                    }
                    Err(e) => Response::Error {
                        message: e.to_string(),
                    },
                };
                if let Ok(bytes) = frame::encode(&resp) {
                    let _ = frame::write_frame(&mut conn, &bytes);
                }
            }
        });
        FakeAgent {
            path: path.to_path_buf(),
            requests,
            model,
        }
    }

    /// Requests that would change something on a real agent.
    pub fn changes(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| is_change(r))
            .cloned()
            .collect()
    }
}

/// Whether a recorded request (its Debug line) changes state.
pub fn is_change(line: &str) -> bool {
    [
        "Publish",
        "Unpublish",
        "Event",
        "Query",
        "Join",
        "Leave",
        "ServiceControl",
        "AppInstall",
        "AppControl",
        "Keys",
    ]
    .iter()
    .any(|p| line.starts_with(p))
}
