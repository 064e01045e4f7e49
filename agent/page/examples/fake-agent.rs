//! A fake nuvol agent on a control socket, for the page's shell and browser
//! tests before the real agent exists: `fake-agent SOCKET [--log FILE]
//! [--scale MEMBERS SERVICES]`. Every request is appended to FILE as one line.
//! Runs until killed.

#[path = "../tests/support/fake_agent.rs"]
mod fake_agent;

use fake_agent::{FakeAgent, Model};
use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(socket) = args.first() else {
        eprintln!("usage: fake-agent SOCKET [--log FILE] [--scale MEMBERS SERVICES]");
        std::process::exit(100);
    };
    let mut log = None;
    let mut model = Model::three_nodes();
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--log" if i + 1 < args.len() => {
                log = Some(PathBuf::from(&args[i + 1]));
                i += 2;
            }
            "--scale" if i + 2 < args.len() => {
                let (Ok(m), Ok(s)) = (args[i + 1].parse(), args[i + 2].parse()) else {
                    eprintln!("--scale wants two numbers");
                    std::process::exit(100);
                };
                model = Model::scaled(m, s);
                i += 3;
            }
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(100);
            }
        }
    }
    let _agent = FakeAgent::start(std::path::Path::new(socket), model, log);
    println!("fake agent on {socket}");
    loop {
        std::thread::park();
    }
}
