//! The nuvol page: node overview, members, service search, local services,
//! apps and events, as a uhttpd CGI program and as a small built-in HTTP server.
//!
//! Both front ends talk to the running agent only over its control socket
//! ([`nuvol_control::frame::Client`], one short-timeout request per view) and
//! share one request handler ([`route::handle`]). Pages are plain HTML forms
//! with a little inline CSS: no JavaScript, readable on a phone, every value
//! from peers and config escaped, every change a POST with a CSRF token.
//! Every view also answers `?format=json` with the same data as the CLI's
//! `--json`.
//!
//! # Entry points for the `nuvol` binary
//!
//! ```no_run
//! use std::path::Path;
//! use nuvol_page::{PageConfig, run_cgi};
//! // Settings: the `config page 'page'` section of the UCI file (see [`auth`]).
//! let uci = nuvol_uci::parse("config page 'page'\n\tlist allowed_user 'root'\n").unwrap();
//! let page = PageConfig::from_uci(&uci, Path::new("/var/run/nuvol.sock"), Path::new("/var/lib/nuvol")).unwrap();
//! // As CGI (GATEWAY_INTERFACE is set): serve one request, exit with the code.
//! let code = run_cgi(&page);
//! // `nuvol agent --http 127.0.0.1:8080` (feature `server`): on its own thread, forever.
//! # #[cfg(feature = "server")]
//! std::thread::spawn(move || nuvol_page::serve("127.0.0.1:8080".parse().unwrap(), page));
//! # let _ = code;
//! ```
//!
//! * [`cgi_main`] is the testable form of [`run_cgi`] (environment, stdin and
//!   stdout passed in).
//! * [`run_cgi_failure`] answers with a 500 page naming the problem when the
//!   binary cannot load its config at all.
//! * [`serve_listener`] serves an already bound listener.
//! * The built-in server (`serve`, `serve_listener`, the `server` module) is
//!   the cargo feature `server`, on by default. A router that serves the page as
//!   CGI under uhttpd does without it (about 12 kB of the binary on aarch64).
//! * [`hash_password`] makes the `option password_hash` string for the
//!   built-in server's login; [`auth::passwd_main`] is the whole
//!   `nuvol page-passwd` command (password on stdin, the hash on stdout).
//!
//! # Under uhttpd (OpenWRT)
//!
//! The package links `/www/cgi-bin/nuvol` to the `nuvol` binary (it runs as
//! CGI when `GATEWAY_INTERFACE` is set) and protects it with uhttpd's basic
//! auth, using the system password of `root`:
//!
//! ```text
//! # /etc/httpd.conf  (uhttpd: option config '/etc/httpd.conf' in /etc/config/uhttpd)
//! /cgi-bin/nuvol:root:$p$root
//! ```
//!
//! uhttpd then sets `REMOTE_USER`, which must be in `list allowed_user` of the
//! `page` section (default `root`). Without that entry the page answers 403 and
//! says why. See [`auth`] for every `page` option.
//!
//! # Routes (below `/cgi-bin/nuvol` for the CGI, `/` for the built-in server)
//!
//! GET `/`, `/members`, `/search?scope=microcloud|global&type=T`, `/services`,
//! `/apps`, `/events` (each with `&format=json`); POST `/service`
//! (name, action), `/app` (name, action), `/install` (template, name),
//! `/publish` (type, port, description, txt), `/unpublish` (type, port),
//! `/event` (name, payload), `/query` (name, payload, nodes, timeout_ms),
//! `/join` (addrs), `/leave`; built-in server only: `/login`, `/logout`.

pub mod auth;
pub mod cgi;
pub mod form;
pub mod html;
pub mod route;
#[cfg(feature = "server")]
pub mod server;
pub mod views;

pub use auth::{hash_password, PageConfig};
pub use cgi::{cgi_main, run_cgi, run_cgi_failure};
#[cfg(feature = "server")]
pub use server::{serve, serve_listener};
