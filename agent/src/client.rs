//! The CLI's side of the control socket: sends one parsed command's
//! request to the running agent and prints the answer
//! ([`crate::render`], or JSON with `--json`).
//!
//! Exit codes: 0 ok; 1 the agent refused the request (its message is
//! printed); 111 the agent could not be reached (temporary).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use nuvol_control::frame::Client;
use nuvol_control::json::ToJson;
use nuvol_control::*;

use crate::cli::{ClientCmd, DEFAULT_TIMEOUT};
use crate::render::{change_line, render};

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
