//! Local services and LXC apps: the agent's side of the supervisor
//! (`nuvol-supervise`, feature `os`) and of the app facade (`nuvol-lxc`).
//!
//! `config service` sections of the agent config become supervised
//! instances; every installed app becomes one too (`app-NAME`, a watcher
//! process that keeps its container running). The supervisor runs on its own
//! thread and reports health-driven publish/unpublish notices
//! ([`Services::notices`]), which become catalog records
//! ([`published_record`]). App installs and other
//! `lxc-*` work run on blocking threads, so a slow download never stalls
//! gossip. Pid records and output FIFOs go to a directory next to the
//! control socket (`<control>.run/supervise`), which is on tmpfs on OpenWRT.

use std::path::PathBuf;
use std::sync::Arc;

use nuvol_control::*;
use nuvol_gossip as g;
use nuvol_lxc::apps::{Apps, Settings};
use nuvol_supervise::os::{Notice, Options, Supervisor};
use nuvol_supervise::service::ServiceDef;
use smol::channel::{self, Receiver};

use crate::config::AgentConfig;
use crate::log;

/// Supervisor instance names of apps: `app-NAME` (nuvol-lxc's `service_def`).
const APP_PREFIX: &str = "app-";

pub struct Services {
    sup: Option<Arc<Supervisor>>,
    apps: Option<Arc<Apps>>,
    notices: Receiver<Notice>,
    /// The `config service` definitions, kept to re-apply with apps.
    defs: Vec<ServiceDef>,
}

fn run_dir(cfg: &AgentConfig) -> PathBuf {
    let mut s = cfg.control.clone().into_os_string();
    s.push(".run");
    PathBuf::from(s).join("supervise")
}

fn config_file(cfg: &AgentConfig) -> String {
    cfg.file
        .as_ref()
        .map_or("(no config file)".into(), |f| f.display().to_string())
}

fn service_defs(cfg: &AgentConfig) -> Vec<ServiceDef> {
    let file = config_file(cfg);
    let loaded = nuvol_supervise::os::load(Some((&cfg.uci, &file)), Some(&cfg.services_dir));
    for e in &loaded.errors {
        log::error(&format!("{e}; that service is left out"));
    }
    loaded.services
}

fn apps_from(cfg: &AgentConfig) -> Option<Apps> {
    let settings = match cfg.uci.sections_of("app").next() {
        None => Settings::new("/srv/lxc", "/usr/share/nuvol/templates"),
        Some(sec) => match Settings::from_section(sec) {
            Ok(s) => s,
            Err(e) => {
                log::error(&format!(
                    "{}:{}: {}: {}; apps are off",
                    config_file(cfg),
                    e.line,
                    e.field,
                    e.message
                ));
                return None;
            }
        },
    };
    Some(Apps::new(settings))
}

/// Supervisor definitions of every installed app.
fn app_defs(apps: &Apps) -> Vec<ServiceDef> {
    let mut out = Vec::new();
    for app in apps.installed() {
        match apps.service_def(&app.name) {
            Ok(d) => out.push(d),
            Err(e) => log::warn(&format!("app {}: not supervised: {e}", app.name)),
        }
    }
    out
}

impl Services {
    pub fn start(cfg: &AgentConfig) -> Services {
        let defs = service_defs(cfg);
        let apps = apps_from(cfg).map(Arc::new);
        let mut all = defs.clone();
        if let Some(a) = &apps {
            all.extend(app_defs(a));
        }
        let (tx, rx) = channel::unbounded();
        let sup = match Supervisor::spawn(Options::new(run_dir(cfg)), all, move |n| {
            // Unbounded and non-blocking: the supervisor thread never waits on us.
            let _ = tx.try_send(n);
        }) {
            Ok(s) => Some(Arc::new(s)),
            Err(e) => {
                log::error(&format!(
                    "supervisor not started: {e}; local services are off"
                ));
                None
            }
        };
        Services {
            sup,
            apps,
            notices: rx,
            defs,
        }
    }

    /// Type and port of every record a supervised instance publishes. The
    /// agent drops these from the state it restores: the supervisor
    /// republishes each once its instance is up and healthy, and a restored
    /// copy would outlive an instance that stopped meanwhile.
    pub fn supervised_records(&self) -> Vec<(String, u16)> {
        let mut all = self.defs.clone();
        if let Some(a) = &self.apps {
            all.extend(app_defs(a));
        }
        all.into_iter()
            .filter_map(|d| d.policy.publish)
            .map(|p| (p.service_type, p.port))
            .collect()
    }

    /// SIGHUP: new `config service` definitions and app settings.
    pub fn reload(&mut self, cfg: &AgentConfig) {
        self.defs = service_defs(cfg);
        self.apps = apps_from(cfg).map(Arc::new);
        self.apply();
    }

    /// Gives the supervisor the current service and app definitions.
    pub fn apply(&self) {
        let Some(sup) = &self.sup else { return };
        let mut all = self.defs.clone();
        if let Some(a) = &self.apps {
            all.extend(app_defs(a));
        }
        if let Err(e) = sup.apply(all) {
            log::error(&format!("supervisor: {e}"));
        }
    }

    /// The agent is exiting: stops the `config service` instances and
    /// leaves the app instances running for the next agent to adopt.
    ///
    /// Plain services are the agent's children, as procd instances are
    /// procd's: stopping the agent's service stops them, and none is left
    /// running with nobody to restart it or withdraw its record. An LXC
    /// container is not part of the agent; its lifetime is the app's (issue
    /// 5), so `/etc/init.d/nuvol restart` must not restart every app.
    pub fn shutdown(&mut self) {
        if let Some(sup) = self.sup.take() {
            match Arc::try_unwrap(sup) {
                Ok(s) => s.shutdown_except(|name| name.starts_with(APP_PREFIX)),
                Err(_) => log::warn("supervisor busy at exit; its instances keep running"),
            }
        }
    }
}

impl Services {
    /// The supervisor's health-driven publish/unpublish notices.
    pub fn notices(&self) -> Receiver<Notice> {
        self.notices.clone()
    }
}

/// The catalog record a supervisor's publish notice asks for: on the
/// agent's address `agent_ip` unless the record names its own.
pub fn published_record(
    record: PublishSpec,
    agent_ip: std::net::IpAddr,
    microcloud: &str,
) -> g::ServiceRecord {
    let ip = record_ip(&record.txt).unwrap_or_else(|| agent_ip.to_string());
    g::ServiceRecord {
        service_type: record.service_type,
        description: record.description,
        host: String::new(),
        ip,
        port: record.port,
        microcloud: microcloud.to_string(),
        txt: record.txt,
        health: g::Health::Healthy,
    }
}

/// The address a record names when it is not the agent's own: an app on a
/// shared bridge answers on the container's address, which nuvol-lxc puts
/// in the record's `addr` txt (see `Apps::publish_ip`).
fn record_ip(txt: &[(String, String)]) -> Option<String> {
    txt.iter()
        .find(|(k, _)| k == "addr")
        .and_then(|(_, v)| v.parse::<std::net::IpAddr>().ok())
        .map(|ip| ip.to_string())
}

fn error(message: impl Into<String>) -> Response {
    Response::Error {
        message: message.into(),
    }
}

/// A `service …` request of the control protocol.
pub enum ServiceRequest {
    List,
    Status { name: String },
    Control { name: String, action: Action },
    Logs { name: String, lines: u32 },
}

/// An `app …` request of the control protocol.
pub enum AppRequest {
    Templates,
    List,
    Status { name: String },
    Install { template: String, name: String },
    Control { name: String, action: Action },
}

/// A request the supervisor or the app facade answers.
pub enum LocalRequest {
    Service(ServiceRequest),
    App(AppRequest),
}

impl LocalRequest {
    /// An installed app is supervised from now on (started, published when
    /// healthy); an uninstalled one loses its instance and, through the
    /// supervisor, its records: both change the supervisor's set.
    pub fn changes_apps(&self) -> bool {
        matches!(
            self,
            LocalRequest::App(
                AppRequest::Install { .. }
                    | AppRequest::Control {
                        action: Action::Uninstall,
                        ..
                    }
            )
        )
    }
}

/// The supervisor and the app facade, for one request's blocking thread.
pub struct Handles {
    sup: Option<Arc<Supervisor>>,
    apps: Option<Arc<Apps>>,
}

impl Services {
    pub fn handles(&self) -> Handles {
        Handles {
            sup: self.sup.clone(),
            apps: self.apps.clone(),
        }
    }
}

/// Answers a `service …` or `app …` request. If
/// [`LocalRequest::changes_apps`], the caller re-applies the supervisor's
/// set afterwards ([`Services::apply`]).
///
/// The whole answer is worked out on one blocking thread (supervisor round
/// trips and `lxc-*` runs block): one `unblock` instead of one per step
/// keeps a single task type in the binary, not one per request kind.
pub async fn answer(h: Handles, req: LocalRequest) -> Response {
    smol::unblock(move || match req {
        LocalRequest::Service(r) => match h.sup.as_deref() {
            Some(s) => service(s, r),
            None => no_sup(),
        },
        LocalRequest::App(r) => match h.apps.as_deref() {
            Some(a) => app(h.sup.as_deref(), a, r),
            None => error("apps are off on this node (see the agent log)"),
        },
    })
    .await
}

fn no_sup() -> Response {
    error("the supervisor is not running on this node (see the agent log)")
}

fn service(s: &Supervisor, req: ServiceRequest) -> Response {
    let r = match req {
        ServiceRequest::List => s.list().map(Response::Instances),
        ServiceRequest::Status { name } => s.status(&name).map(|v| Response::Instances(vec![v])),
        ServiceRequest::Control { name, action } => s.control(&name, action).map(|()| Response::Ok),
        ServiceRequest::Logs { name, lines } => s
            .logs(&name, lines.min(10_000) as usize)
            .map(Response::Logs),
    };
    r.unwrap_or_else(|e| error(e.to_string()))
}

fn app(sup: Option<&Supervisor>, a: &Apps, req: AppRequest) -> Response {
    match req {
        AppRequest::Templates => Response::Templates(a.templates()),
        AppRequest::List => Response::Apps(with_supervision(sup, a.list())),
        AppRequest::Status { name } => match a.status(&name) {
            Ok(v) => Response::Apps(with_supervision(sup, vec![v])),
            Err(e) => error(e.to_string()),
        },
        AppRequest::Install { template, name } => match a.install(&template, &name) {
            Ok(view) => Response::Apps(vec![view]),
            Err(e) => error(e.to_string()),
        },
        AppRequest::Control { name, action } => {
            let instance = format!("{APP_PREFIX}{name}");
            match action {
                // Through the supervisor, so it does not fight a manual start/stop.
                Action::Start | Action::Stop | Action::Restart => {
                    let Some(s) = sup else { return no_sup() };
                    match s.control(&instance, action) {
                        Ok(()) => match a.status(&name) {
                            Ok(v) => Response::Apps(vec![v]),
                            Err(e) => error(e.to_string()),
                        },
                        Err(e) => error(e.to_string()),
                    }
                }
                Action::Publish | Action::Unpublish => {
                    let Some(s) = sup else { return no_sup() };
                    done(s.control(&instance, action))
                }
                Action::Uninstall => {
                    if let Some(s) = sup {
                        let _ = s.stop(&instance);
                    }
                    done(a.uninstall(&name))
                }
                Action::Reload => error("apps have no reload; use restart"),
            }
        }
    }
}

fn done(r: Result<(), impl std::fmt::Display>) -> Response {
    match r {
        Ok(()) => Response::Ok,
        Err(e) => error(e.to_string()),
    }
}

/// Fills in health and published state from the app's supervised instance.
fn with_supervision(sup: Option<&Supervisor>, mut views: Vec<AppView>) -> Vec<AppView> {
    let Some(Ok(instances)) = sup.map(Supervisor::list) else {
        return views;
    };
    for v in &mut views {
        if let Some(i) = instances
            .iter()
            .find(|i| i.name.strip_prefix(APP_PREFIX) == Some(v.name.as_str()))
        {
            v.health = i.health;
            v.published = i.published;
        }
    }
    views
}

#[cfg(test)]
mod tests {
    use super::record_ip;

    fn txt(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn app_record_on_a_shared_bridge_names_the_container_address() {
        let t = txt(&[("app", "web"), ("addr", "192.168.1.77")]);
        assert_eq!(record_ip(&t).as_deref(), Some("192.168.1.77"));
    }

    #[test]
    fn record_without_a_valid_addr_uses_the_agent_address() {
        assert_eq!(record_ip(&txt(&[("app", "web")])), None);
        assert_eq!(record_ip(&txt(&[("addr", "not an ip")])), None);
    }
}
