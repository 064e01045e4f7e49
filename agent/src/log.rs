//! Logging without timestamps (OpenWRT's logd and procd add them): info and
//! debug go to stdout, warnings and errors to stderr, which procd forwards at
//! LOG_ERR. Also installed as the `log` crate's logger, so the libraries'
//! `log::warn!` lines come out the same way. `NUVOL_LOG=debug|info|warn|error`
//! picks the level (default info).

use std::io::Write;

struct Logger;

static LOGGER: Logger = Logger;

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &log::Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let line = match r.level() {
            log::Level::Error => format!("error: {}\n", r.args()),
            log::Level::Warn => format!("warning: {}\n", r.args()),
            log::Level::Info => format!("{}\n", r.args()),
            log::Level::Debug | log::Level::Trace => format!("debug: {}\n", r.args()),
        };
        // One write per line so lines from concurrent tasks never interleave;
        // a closed stdout must not kill the agent, so errors are dropped.
        if r.level() <= log::Level::Warn {
            let _ = std::io::stderr().write_all(line.as_bytes());
        } else {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(line.as_bytes());
            let _ = out.flush();
        }
    }

    fn flush(&self) {}
}

/// Installs the logger; the level comes from `NUVOL_LOG`.
pub fn init() {
    let level = match std::env::var("NUVOL_LOG").as_deref() {
        Ok("debug") => log::LevelFilter::Debug,
        Ok("trace") => log::LevelFilter::Trace,
        Ok("warn") => log::LevelFilter::Warn,
        Ok("error") => log::LevelFilter::Error,
        _ => log::LevelFilter::Info,
    };
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}

pub fn info(msg: &str) {
    log::info!("{msg}");
}

pub fn warn(msg: &str) {
    log::warn!("{msg}");
}

pub fn error(msg: &str) {
    log::error!("{msg}");
}

pub fn debug_msg(msg: &str) {
    log::debug!("{msg}");
}
