//! How the daemon fails to start, with the exit code s6 and procd read in
//! the variant: [`Exit::Config`] (100, bad config or usage: restarting will
//! not help) and [`Exit::Temporary`] (111, a port in use, a busy socket:
//! restart me). The message says what a router owner can do about it.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// Bad configuration or usage; exit 100, do not restart.
    Config(String),
    /// A temporary failure; exit 111, restart.
    Temporary(String),
}

impl Exit {
    /// The process exit code.
    pub fn code(&self) -> i32 {
        match self {
            Exit::Config(_) => 100,
            Exit::Temporary(_) => 111,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Exit::Config(m) | Exit::Temporary(m) => m,
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// `Exit::Temporary` with a message built from `what` and the error.
pub fn temporary(what: impl fmt::Display) -> impl FnOnce(std::io::Error) -> Exit {
    move |e| Exit::Temporary(format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_exit_100_and_temporary_ones_111() {
        assert_eq!(Exit::Config("bad".into()).code(), 100);
        assert_eq!(Exit::Temporary("busy".into()).code(), 111);
        let e = temporary("cannot bind UDP 0.0.0.0:1")(std::io::Error::other("in use"));
        assert_eq!(
            e,
            Exit::Temporary("cannot bind UDP 0.0.0.0:1: in use".into())
        );
    }
}
