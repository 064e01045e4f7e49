//! Local services and LXC apps: the agent's side of the supervisor
//! (`nuvol-supervise`, feature `os`) and of the app facade (`nuvol-lxc`).
//!
//! `config service` sections of the agent config become supervised
//! instances; every installed app becomes one too (`app-NAME`, a watcher
//! process that keeps its container running). The supervisor runs on its own
//! thread and reports health-driven publish/unpublish notices, which
//! [`notice_loop`] turns into catalog records. App installs and other
//! `lxc-*` work run on blocking threads, so a slow download never stalls
//! gossip. Pid records and output FIFOs go to a directory next to the
//! control socket (`<control>.run/supervise`), which is on tmpfs on OpenWRT.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use nuvol_control::*;
use nuvol_gossip as g;
use nuvol_lxc::apps::{Apps, Settings};
use nuvol_supervise::os::{Notice, Options, Supervisor};
use nuvol_supervise::service::ServiceDef;
use smol::channel::{self, Receiver};

use crate::agent::Ctx;
use crate::config::AgentConfig;
use crate::log;

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
    let loaded = nuvol_supervise::os::load(Some((&cfg.uci, &file)), None);
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

    /// SIGHUP: new `config service` definitions and app settings.
    pub fn reload(&mut self, cfg: &AgentConfig) {
        self.defs = service_defs(cfg);
        self.apps = apps_from(cfg).map(Arc::new);
        self.apply();
    }

    fn apply(&self) {
        let Some(sup) = &self.sup else { return };
        let mut all = self.defs.clone();
        if let Some(a) = &self.apps {
            all.extend(app_defs(a));
        }
        if let Err(e) = sup.apply(all) {
            log::error(&format!("supervisor: {e}"));
        }
    }

    /// Stops every instance (the agent is exiting).
    pub fn shutdown(&mut self) {
        if let Some(sup) = self.sup.take() {
            match Arc::try_unwrap(sup) {
                Ok(s) => s.shutdown(),
                Err(_) => log::warn("supervisor busy at exit; its instances keep running"),
            }
        }
    }
}

/// Turns the supervisor's health-driven notices into catalog records.
pub async fn notice_loop(ctx: Rc<Ctx>) {
    let rx = ctx.st.borrow().services.notices.clone();
    while let Ok(n) = rx.recv().await {
        let now = ctx.now();
        {
            let mut st = ctx.st.borrow_mut();
            match n {
                Notice::Publish { service, record } => {
                    let r = g::ServiceRecord {
                        service_type: record.service_type,
                        description: record.description,
                        host: String::new(),
                        ip: st.advertise.ip().to_string(),
                        port: record.port,
                        microcloud: st.cfg.microcloud.clone(),
                        txt: record.txt,
                        health: g::Health::Healthy,
                    };
                    if let Err(e) = st.node.publish(r) {
                        log::warn(&format!("service {service}: not published: {e}"));
                    }
                }
                Notice::Unpublish { record, .. } => {
                    st.node.unpublish(now, &record.service_type, record.port);
                }
            }
        }
        ctx.save_state();
        ctx.flush();
    }
}

fn error(message: impl Into<String>) -> Response {
    Response::Error {
        message: message.into(),
    }
}

/// Answers the `service …` and `app …` requests.
pub async fn dispatch(ctx: &Rc<Ctx>, req: Request) -> Response {
    let (sup, apps) = {
        let st = ctx.st.borrow();
        (st.services.sup.clone(), st.services.apps.clone())
    };
    let no_sup = || error("the supervisor is not running on this node (see the agent log)");
    let no_apps = || error("apps are off on this node (see the agent log)");
    match req {
        Request::ServiceList => match sup {
            None => no_sup(),
            Some(s) => match smol::unblock(move || s.list()).await {
                Ok(v) => Response::Instances(v),
                Err(e) => error(e.to_string()),
            },
        },
        Request::ServiceStatus { name } => match sup {
            None => no_sup(),
            Some(s) => match smol::unblock(move || s.status(&name)).await {
                Ok(v) => Response::Instances(vec![v]),
                Err(e) => error(e.to_string()),
            },
        },
        Request::ServiceControl { name, action } => match sup {
            None => no_sup(),
            Some(s) => match smol::unblock(move || s.control(&name, action)).await {
                Ok(()) => Response::Ok,
                Err(e) => error(e.to_string()),
            },
        },
        Request::ServiceLogs { name, lines } => match sup {
            None => no_sup(),
            Some(s) => match smol::unblock(move || s.logs(&name, lines.min(10_000) as usize)).await
            {
                Ok(v) => Response::Logs(v),
                Err(e) => error(e.to_string()),
            },
        },
        Request::AppTemplates => match apps {
            None => no_apps(),
            Some(a) => Response::Templates(smol::unblock(move || a.templates()).await),
        },
        Request::AppList => match apps {
            None => no_apps(),
            Some(a) => {
                Response::Apps(with_supervision(&sup, smol::unblock(move || a.list()).await).await)
            }
        },
        Request::AppStatus { name } => match apps {
            None => no_apps(),
            Some(a) => match smol::unblock(move || a.status(&name)).await {
                Ok(v) => Response::Apps(with_supervision(&sup, vec![v]).await),
                Err(e) => error(e.to_string()),
            },
        },
        Request::AppInstall { template, name } => match apps {
            None => no_apps(),
            Some(a) => {
                let installed = smol::unblock(move || a.install(&template, &name)).await;
                match installed {
                    Ok(view) => {
                        // Supervise it from now on (starts it, publishes when healthy).
                        ctx.st.borrow().services.apply();
                        Response::Apps(vec![view])
                    }
                    Err(e) => error(e.to_string()),
                }
            }
        },
        Request::AppControl { name, action } => match apps {
            None => no_apps(),
            Some(a) => app_control(ctx, sup, a, name, action).await,
        },
        _ => error("not a service or app request"),
    }
}

/// Fills in health and published state from the app's supervised instance.
async fn with_supervision(sup: &Option<Arc<Supervisor>>, mut views: Vec<AppView>) -> Vec<AppView> {
    let Some(s) = sup.clone() else { return views };
    let Ok(instances) = smol::unblock(move || s.list()).await else {
        return views;
    };
    for v in &mut views {
        let name = format!("app-{}", v.name);
        if let Some(i) = instances.iter().find(|i| i.name == name) {
            v.health = i.health;
            v.published = i.published;
        }
    }
    views
}

async fn app_control(
    ctx: &Rc<Ctx>,
    sup: Option<Arc<Supervisor>>,
    apps: Arc<Apps>,
    name: String,
    action: Action,
) -> Response {
    let instance = format!("app-{name}");
    match action {
        Action::Start | Action::Stop | Action::Restart => {
            // Through the supervisor, so it does not fight a manual start/stop.
            let Some(s) = sup else {
                return error("the supervisor is not running on this node (see the agent log)");
            };
            let r = smol::unblock(move || s.control(&instance, action)).await;
            match r {
                Ok(()) => match smol::unblock(move || apps.status(&name)).await {
                    Ok(v) => Response::Apps(vec![v]),
                    Err(e) => error(e.to_string()),
                },
                Err(e) => error(e.to_string()),
            }
        }
        Action::Publish | Action::Unpublish => {
            let Some(s) = sup else {
                return error("the supervisor is not running on this node (see the agent log)");
            };
            match smol::unblock(move || s.control(&instance, action)).await {
                Ok(()) => Response::Ok,
                Err(e) => error(e.to_string()),
            }
        }
        Action::Uninstall => {
            if let Some(s) = sup.clone() {
                let inst = instance.clone();
                let _ = smol::unblock(move || s.stop(&inst)).await;
            }
            let r = smol::unblock(move || apps.uninstall(&name)).await;
            // Drop its instance (and, through the supervisor, its records).
            ctx.st.borrow().services.apply();
            match r {
                Ok(()) => Response::Ok,
                Err(e) => error(e.to_string()),
            }
        }
        Action::Reload => error("apps have no reload; use restart"),
    }
}
