//! nuvol's supervisor: procd's restart semantics, health checks that decide
//! whether a service is a catalog record, and re-adoption across agent
//! crashes.
//!
//! Three layers, each usable alone:
//!
//! - [`policy`] (always built, `no_std` + `alloc`): one instance as a pure
//!   `match (state, event)` machine with time passed in. It returns actions
//!   (spawn, signal, probe, publish, unpublish, log) and its next deadline.
//! - [`service`] and, with feature `uci`, [`config`]: what a service is, and
//!   how `config service 'name'` sections map onto it, with errors that name
//!   the service and the line.
//! - `os` (feature `os`, std): the process shell, a [`os::Supervisor`] thread
//!   that runs real processes under the policy.
//!
//! # Integration with the agent
//!
//! The agent reads its config, loads the services, starts one supervisor and
//! forwards the publish notices to its catalog. The supervisor lives on its
//! own thread; its methods are short blocking round trips, fine to call from
//! a smol task (or wrap in `smol::unblock`). Notices arrive on the
//! supervisor thread through the callback, which must not block: hand them
//! to an async channel.
//!
//! ```no_run
//! # #[cfg(feature = "os")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use nuvol_supervise::os::{self, Notice, Options, Supervisor};
//! use std::path::Path;
//!
//! let text = std::fs::read_to_string("/etc/config/nuvol")?;
//! let config = nuvol_uci::parse(&text)?;
//! // `service` sections of the agent config plus files in a services dir.
//! let loaded = os::load(Some((&config, "/etc/config/nuvol")), Some(Path::new("/etc/nuvol/services.d")));
//! for e in &loaded.errors {
//!     eprintln!("{e}"); // "/etc/config/nuvol: line 12: service 'web': unknown option 'comand'"
//! }
//! let (tx, rx) = std::sync::mpsc::channel(); // an async channel in the agent
//! let sup = Supervisor::spawn(
//!     Options::new("/var/run/nuvol/supervise"),
//!     loaded.services,
//!     move |notice| { let _ = tx.send(notice); },
//! )?;
//! // Catalog side: a publish block becomes a record while the service is healthy.
//! std::thread::spawn(move || {
//!     for notice in rx {
//!         match notice {
//!             Notice::Publish { service, record } => { /* catalog.publish(record) */ let _ = (service, record); }
//!             Notice::Unpublish { service, record } => { /* catalog.unpublish(type, port) */ let _ = (service, record); }
//!         }
//!     }
//! });
//! // Control socket side (Request::ServiceList / ServiceStatus / ServiceControl / ServiceLogs):
//! let views: Vec<nuvol_control::InstanceView> = sup.list()?;
//! sup.control("web", nuvol_control::Action::Restart)?;
//! let lines: Vec<String> = sup.logs("web", 50)?;
//! # let _ = (views, lines);
//! // Config reload (SIGHUP of the agent): sup.apply(new_services)?;
//! // Agent exit: sup.shutdown() stops the services; sup.detach() (or a crash)
//! // leaves them running for the next agent to adopt; sup.shutdown_except(keep)
//! // stops all but the kept ones (the agent keeps its LXC apps).
//! sup.shutdown();
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "os"))]
//! # fn main() {}
//! ```
//!
//! The supervisor owns SIGCHLD in the process: it installs a handler that only
//! writes to self-pipes, and reaps only the pids it started (never
//! `waitpid(-1)`), so `std::process::Command` elsewhere in the agent keeps
//! working. Nothing else in the process may install a SIGCHLD handler or set
//! SIGCHLD to `SIG_IGN`.
#![cfg_attr(not(feature = "uci"), no_std)]
extern crate alloc;

#[cfg(feature = "uci")]
pub mod config;
#[cfg(feature = "os")]
pub mod os;
pub mod policy;
pub mod service;
