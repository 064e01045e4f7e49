//! nuvol: the microcloud agent, its CLI and its CGI page in one static binary.
//!
//! Multi-call, like busybox: run by a web server as a CGI program (the
//! `GATEWAY_INTERFACE` variable is set) it serves one page request; as
//! `nuvol agent …` it is the daemon; anything else is a CLI command talking
//! to the running agent over its control socket.

mod agent;
mod args;
mod beacon;
mod cli;
mod client;
mod config;
mod control;
mod daemon;
mod executor;
mod exit;
mod federation;
#[cfg(feature = "heavy")]
mod fedpool;
mod handlers;
mod host;
mod libc_shim;
mod log;
mod metadata;
mod net;
mod queries;
mod reactions;
mod render;
mod services;
mod shell;
mod signals;
mod state;
mod views;

use std::path::PathBuf;

fn main() {
    log::init();
    if std::env::var_os("GATEWAY_INTERFACE").is_some() {
        std::process::exit(cgi());
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let inv = match cli::parse(args) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("nuvol: {e}\nRun 'nuvol --help' for usage.");
            std::process::exit(100);
        }
    };
    let code = match inv.cmd {
        cli::Cmd::Help(None) => {
            print!("{}", cli::help());
            0
        }
        cli::Cmd::Help(Some(c)) => match cli::command_help(&c) {
            Some(h) => {
                print!("{h}");
                0
            }
            None => {
                eprintln!("nuvol: no command '{c}'\nRun 'nuvol --help' for usage.");
                100
            }
        },
        cli::Cmd::Version => {
            println!("nuvol {}", env!("CARGO_PKG_VERSION"));
            0
        }
        cli::Cmd::Agent(mut flags) => {
            // `nuvol --control P agent` means the same as `nuvol agent --control P`.
            if let Some(c) = inv.control {
                flags.push("--control".into());
                flags.push(c.to_string_lossy().into_owned());
            }
            agent::run(flags)
        }
        cli::Cmd::PagePasswd => page_passwd(),
        cli::Cmd::Client(cmd) => client::execute(cli::control_path(inv.control), inv.json, cmd),
    };
    std::process::exit(code);
}

/// `nuvol page-passwd`: the first line of stdin, hashed for `option password_hash`.
fn page_passwd() -> i32 {
    nuvol_page::auth::passwd_main(&mut std::io::stdin().lock(), &mut std::io::stdout().lock())
}

/// One CGI request: the page reads the agent's config for its own section
/// and the control socket (`NUVOL_CONFIG` names another config file).
fn cgi() -> i32 {
    let flags = config::Flags {
        config: std::env::var_os("NUVOL_CONFIG").map(PathBuf::from),
        ..config::Flags::default()
    };
    let env_control = std::env::var("NUVOL_CONTROL").ok();
    let page = config::load(&flags, env_control.as_deref())
        .map_err(|e| e.to_string())
        .and_then(|cfg| {
            nuvol_page::PageConfig::from_uci(&cfg.uci, &cfg.control, &cfg.state_dir)
                .map_err(|e| format!("page section: {e}"))
        });
    match page {
        Ok(p) => nuvol_page::run_cgi(&p),
        Err(e) => {
            // Still a valid CGI answer, so uhttpd shows why instead of a bare 502.
            eprintln!("nuvol page: {e}");
            nuvol_page::run_cgi_failure(&format!("configuration error: {e}"))
        }
    }
}
