//! The page as a stand-alone CGI program, for testing under a real web server
//! until the `nuvol` binary wires in [`nuvol_page::run_cgi`].
//!
//! Environment: `NUVOL_CONTROL` (control socket, default /var/run/nuvol.sock),
//! `NUVOL_CONFIG` (UCI file with a `page` section, optional),
//! `NUVOL_STATE` (state directory for the CSRF secret, default /var/lib/nuvol).

use nuvol_page::PageConfig;
use std::path::PathBuf;

fn main() {
    let var = |k: &str, d: &str| PathBuf::from(std::env::var(k).unwrap_or_else(|_| d.into()));
    let control = var("NUVOL_CONTROL", "/var/run/nuvol.sock");
    let state = var("NUVOL_STATE", "/var/lib/nuvol");
    let page = match std::env::var("NUVOL_CONFIG") {
        Err(_) => PageConfig::new(&control, &state),
        Ok(file) => {
            let parsed = std::fs::read_to_string(&file)
                .map_err(|e| e.to_string())
                .and_then(|t| nuvol_uci::parse(&t).map_err(|e| e.to_string()))
                .and_then(|c| {
                    PageConfig::from_uci(&c, &control, &state).map_err(|e| e.to_string())
                });
            match parsed {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("page-cgi: {file}: {e}");
                    std::process::exit(100);
                }
            }
        }
    };
    std::process::exit(nuvol_page::run_cgi(&page));
}
