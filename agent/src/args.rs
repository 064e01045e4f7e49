//! A small hand-written argument reader (clap would cost more flash than the
//! whole gossip core).
//!
//! It understands `--flag value`, `--flag=value`, boolean `--flag`, and `--`
//! to end flags. Every problem is a [`Usage`] error whose message the caller
//! prints before exiting 100.
//!
//! ```ignore
//! let mut p = Parser::new(vec!["--port".into(), "80".into(), "x".into()]);
//! while let Some(arg) = p.next() { /* match Arg::Flag / Arg::Pos */ }
//! ```

use std::fmt;

/// A usage mistake: the message says what was wrong, for the owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage(pub String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// One item on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// `--name`; a value written as `--name=value` waits in the parser.
    Flag(String),
    /// A positional word.
    Pos(String),
}

pub struct Parser {
    args: Vec<String>,
    pos: usize,
    /// The `=value` part of the last flag, if it had one.
    inline: Option<String>,
    only_positional: bool,
}

impl Parser {
    pub fn new(args: Vec<String>) -> Parser {
        Parser {
            args,
            pos: 0,
            inline: None,
            only_positional: false,
        }
    }

    /// The next flag or word; `None` when the line is used up.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Arg> {
        self.inline = None;
        let a = self.args.get(self.pos)?.clone();
        self.pos += 1;
        if self.only_positional {
            return Some(Arg::Pos(a));
        }
        if a == "--" {
            self.only_positional = true;
            return self.next();
        }
        if let Some(body) = a.strip_prefix("--") {
            return Some(match body.split_once('=') {
                Some((name, value)) => {
                    self.inline = Some(value.to_string());
                    Arg::Flag(name.to_string())
                }
                None => Arg::Flag(body.to_string()),
            });
        }
        // `-h` is the one short flag everybody types.
        if a == "-h" {
            return Some(Arg::Flag("help".into()));
        }
        Some(Arg::Pos(a))
    }

    /// The value of the flag just read: its `=value` or the next word.
    pub fn value(&mut self, flag: &str) -> Result<String, Usage> {
        if let Some(v) = self.inline.take() {
            return Ok(v);
        }
        match self.args.get(self.pos) {
            Some(v) => {
                self.pos += 1;
                Ok(v.clone())
            }
            None => Err(Usage(format!("--{flag} needs a value"))),
        }
    }

    /// Refuses `--flag=value` on a flag that takes no value.
    pub fn no_value(&mut self, flag: &str) -> Result<(), Usage> {
        match self.inline.take() {
            Some(_) => Err(Usage(format!("--{flag} takes no value"))),
            None => Ok(()),
        }
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> Vec<String> {
        let rest = self.args[self.pos.min(self.args.len())..].to_vec();
        self.pos = self.args.len();
        rest
    }
}

/// Parses a number flag, naming the flag in the error.
pub fn number<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, Usage> {
    v.parse()
        .map_err(|_| Usage(format!("--{flag}: '{v}' is not a valid number")))
}

/// Splits `key=value`, naming the flag in the error.
pub fn pair(flag: &str, v: &str) -> Result<(String, String), Usage> {
    match v.split_once('=') {
        Some((k, val)) if !k.is_empty() => Ok((k.to_string(), val.to_string())),
        _ => Err(Usage(format!("--{flag}: expected key=value, got '{v}'"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser(words: &[&str]) -> Parser {
        Parser::new(words.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn flags_take_values_inline_or_next() {
        let mut p = parser(&["--a=1", "--b", "2", "pos", "--", "--c"]);
        assert_eq!(p.next(), Some(Arg::Flag("a".into())));
        assert_eq!(p.value("a").unwrap(), "1");
        assert_eq!(p.next(), Some(Arg::Flag("b".into())));
        assert_eq!(p.value("b").unwrap(), "2");
        assert_eq!(p.next(), Some(Arg::Pos("pos".into())));
        assert_eq!(p.next(), Some(Arg::Pos("--c".into())));
        assert_eq!(p.next(), None);
    }

    #[test]
    fn missing_value_is_usage_error() {
        let mut p = parser(&["--port"]);
        p.next();
        assert_eq!(p.value("port").unwrap_err().0, "--port needs a value");
    }

    #[test]
    fn boolean_flag_with_value_is_refused() {
        let mut p = parser(&["--json=yes"]);
        p.next();
        assert!(p.no_value("json").is_err());
    }

    #[test]
    fn pair_and_number_name_the_flag() {
        assert_eq!(pair("txt", "a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(pair("txt", "=x").unwrap_err().0.contains("--txt"));
        assert!(number::<u16>("port", "70000")
            .unwrap_err()
            .0
            .contains("--port"));
    }
}
