//! nuvol: the microcloud agent, its CLI and its CGI page in one static binary.

mod args;
mod base64;
mod config;
mod log;
mod metadata;
mod state;

fn main() {
    log::init();
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("--version") | Some("version") => println!("nuvol {}", env!("CARGO_PKG_VERSION")),
        _ => {
            eprintln!("usage: nuvol --version");
            std::process::exit(100);
        }
    }
}
