//! Reader and atomic writer of OpenWRT UCI configuration files.
//!
//! nuvol reads `/etc/config/nuvol` itself instead of linking libuci, which would
//! break the static build. The reader follows libuci's file syntax:
//!
//! - `package NAME` (accepted and ignored), `config TYPE [NAME]`,
//!   `option NAME VALUE`, `list NAME VALUE`; the one-letter forms `c`, `o`, `l`,
//!   `p` too, as libuci accepts them.
//! - A word is unquoted, `'single quoted'` (no escapes inside) or
//!   `"double quoted"` (backslash escapes the next character); parts written
//!   next to each other join into one word, so `'it'\''s'` is `it's`.
//! - A backslash at the end of a line continues the word on the next line
//!   (which must not start with a blank: libuci reads an empty word there);
//!   quoted words may span lines.
//! - `#` outside quotes starts a comment; `;` ends a statement. Two spots where
//!   libuci would silently read something else are refused instead: a `;`
//!   touching an unquoted word with more on the line (libuci drops the rest of
//!   the line) and a ` ;` ending a line (libuci: invalid command).
//! - Repeating an `option` replaces its value; `list` appends; a second
//!   `config` with an existing name reopens that section, as libuci does.
//!   An empty or missing option value (`option a ''`, `option a`) changes
//!   nothing, an empty name (`config t ''`) makes an anonymous section, as in
//!   libuci. `tests/uci_cli.rs` checks all this against the real `uci`.
//!
//! What the reader guarantees: it never panics, on any input; every error
//! names the line it starts on, and nothing is returned on error (a config is
//! either read whole or refused). Values may hold any UTF-8 text.
//!
//! ```
//! let cfg = nuvol_uci::parse("config agent 'main'\n\toption name \"router 1\"\n\tlist seed 10.0.0.1:7946\n").unwrap();
//! let agent = cfg.sections_of("agent").next().unwrap();
//! assert_eq!(agent.get_str("name"), Some("router 1"));
//! assert_eq!(agent.get_list("seed"), vec!["10.0.0.1:7946"]);
//! ```

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// A whole UCI file: its sections in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pub sections: Vec<Section>,
}

/// One `config TYPE [NAME]` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The section type (`agent`, `service`, …).
    pub kind: String,
    /// `None` for an anonymous section.
    pub name: Option<String>,
    /// Line of the `config` statement.
    pub line: u32,
    /// Options in the order they first appeared.
    pub options: Vec<Opt>,
}

/// One `option` or `list` inside a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opt {
    pub name: String,
    pub value: Value,
    /// Line of the statement that last set (or appended to) it.
    pub line: u32,
}

/// An option's value: a single string (`option`) or a list (`list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Single(String),
    List(Vec<String>),
}

/// Why a file was refused: the line where the bad statement starts, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: u32,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

impl Config {
    /// Sections of one type, in file order.
    pub fn sections_of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Section> + 'a {
        self.sections.iter().filter(move |s| s.kind == kind)
    }

    /// The section with this name, whatever its type.
    pub fn named(&self, name: &str) -> Option<&Section> {
        self.sections
            .iter()
            .find(|s| s.name.as_deref() == Some(name))
    }
}

impl Section {
    /// The option of that name, single or list.
    pub fn get(&self, name: &str) -> Option<&Opt> {
        self.options.iter().find(|o| o.name == name)
    }

    /// A single value; for a list, its last element (libuci's `uci get` prints
    /// lists joined, but for a scalar setting the last one written wins).
    pub fn get_str(&self, name: &str) -> Option<&str> {
        match &self.get(name)?.value {
            Value::Single(s) => Some(s),
            Value::List(l) => l.last().map(String::as_str),
        }
    }

    /// Every value of a list; a single value counts as a one-element list, so
    /// `option seed X` and `list seed X` both work.
    pub fn get_list(&self, name: &str) -> Vec<&str> {
        match self.get(name).map(|o| &o.value) {
            None => Vec::new(),
            Some(Value::Single(s)) => vec![s.as_str()],
            Some(Value::List(l)) => l.iter().map(String::as_str).collect(),
        }
    }

    fn set(&mut self, name: String, value: String, line: u32, list: bool) {
        match self.options.iter_mut().find(|o| o.name == name) {
            Some(opt) => {
                opt.line = line;
                match (&mut opt.value, list) {
                    (Value::List(l), true) => l.push(value),
                    (Value::Single(old), true) => {
                        // libuci turns an option into a list keeping its value.
                        let first = core::mem::take(old);
                        opt.value = Value::List(vec![first, value]);
                    }
                    (v, false) => *v = Value::Single(value),
                }
            }
            None => {
                let value = if list {
                    Value::List(vec![value])
                } else {
                    Value::Single(value)
                };
                self.options.push(Opt { name, value, line });
            }
        }
    }
}

impl Value {
    /// Every string in the value, one for `Single`.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let slice: &[String] = match self {
            Value::Single(s) => core::slice::from_ref(s),
            Value::List(l) => l,
        };
        slice.iter().map(String::as_str)
    }
}

/// Reads a UCI file. On error nothing is returned: the caller keeps its old config.
pub fn parse(text: &str) -> Result<Config, ParseError> {
    let mut lexer = Lexer {
        chars: text.chars().peekable(),
        line: 1,
    };
    let mut cfg = Config::default();
    // Index of the section that `option`/`list` statements go into.
    let mut current: Option<usize> = None;
    while let Some(words) = lexer.statement()? {
        let Some((cmd, args)) = words.split_first() else {
            continue;
        };
        let line = cmd.line;
        let err = |message: String| ParseError { line, message };
        match cmd.text.as_str() {
            "package" | "p" => {
                let [name] = args else {
                    return Err(err("package takes exactly one name".into()));
                };
                if !valid_name(&name.text) {
                    return Err(err(format!("invalid package name '{}'", name.text)));
                }
            }
            "config" | "c" => {
                let (kind, name) = match args {
                    [kind] => (kind, None),
                    // libuci: `config TYPE ''` is an anonymous section.
                    [kind, name] if name.text.is_empty() => (kind, None),
                    [kind, name] => (kind, Some(name)),
                    [] => return Err(err("config needs a section type".into())),
                    _ => return Err(err("too many words after config TYPE NAME".into())),
                };
                if !valid_type(&kind.text) {
                    return Err(err(format!("invalid section type '{}'", kind.text)));
                }
                if let Some(name) = name {
                    if !valid_name(&name.text) {
                        return Err(err(format!(
                            "invalid section name '{}' (letters, digits and _ only)",
                            name.text
                        )));
                    }
                }
                let name = name.map(|n| n.text.clone());
                let existing = name
                    .as_ref()
                    .and_then(|n| cfg.sections.iter().position(|s| s.name.as_ref() == Some(n)));
                match existing {
                    Some(i) => {
                        cfg.sections[i].kind = kind.text.clone();
                        current = Some(i);
                    }
                    None => {
                        cfg.sections.push(Section {
                            kind: kind.text.clone(),
                            name,
                            line,
                            options: Vec::new(),
                        });
                        current = Some(cfg.sections.len() - 1);
                    }
                }
            }
            "option" | "o" | "list" | "l" => {
                let list = matches!(cmd.text.as_str(), "list" | "l");
                let what = if list { "list" } else { "option" };
                let Some(i) = current else {
                    return Err(err(format!("{what} before the first config section")));
                };
                let (name, value) = match args {
                    [name, value] => (name, value.text.as_str()),
                    // libuci reads a bare `option a` / `list a` as an empty value.
                    [name] => (name, ""),
                    [] => return Err(err(format!("{what} needs a name and a value"))),
                    _ => {
                        return Err(err(format!(
                            "too many words after {what} NAME VALUE (quote a value with spaces)"
                        )))
                    }
                };
                if !valid_name(&name.text) {
                    return Err(err(format!(
                        "invalid option name '{}' (letters, digits and _ only)",
                        name.text
                    )));
                }
                // libuci: an empty option value neither sets nor clears
                // the option (`uci show` has no such option); a list gets
                // an empty element.
                if !list && value.is_empty() {
                    continue;
                }
                cfg.sections[i].set(name.text.clone(), value.to_string(), line, list);
            }
            other => {
                return Err(err(format!(
                    "unknown statement '{other}' (expected config, option or list)"
                )))
            }
        }
    }
    Ok(cfg)
}

/// libuci's rule for option and section names.
fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// libuci's rule for section types: printable ASCII without spaces.
fn valid_type(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (33..=126).contains(&b))
}

struct Word {
    text: String,
    line: u32,
}

/// The rest of a line after a `;`.
#[derive(PartialEq, Eq)]
enum Rest {
    Empty,
    Comment,
    Text,
}

struct Lexer<'a> {
    chars: core::iter::Peekable<core::str::Chars<'a>>,
    line: u32,
}

impl Lexer<'_> {
    /// The words of the next statement, `None` at the end of the text. A
    /// statement may be empty (a blank or comment line).
    fn statement(&mut self) -> Result<Option<Vec<Word>>, ParseError> {
        let mut words = Vec::new();
        // Whether the last word ended right here, with no blank after it,
        // and in an unquoted part (libuci treats `;` differently then).
        let mut glued = false;
        loop {
            if self.skip_blanks()? {
                glued = false;
            }
            match self.chars.peek().copied() {
                None if words.is_empty() => return Ok(None),
                None => return Ok(Some(words)),
                Some('\n') => {
                    self.chars.next();
                    self.line += 1;
                    return Ok(Some(words));
                }
                Some(';') => {
                    self.chars.next();
                    let rest = self.rest_of_line();
                    if glued && rest == Rest::Text {
                        // libuci drops the rest of the line after a `;` that
                        // touches an unquoted word: refuse rather than read
                        // statements `uci show` does not have.
                        return Err(ParseError {
                            line: self.line,
                            message: "';' right after a word: uci ignores the rest of this line; put a space before ';' or use one line per statement".into(),
                        });
                    }
                    if !glued && rest == Rest::Empty && !words.is_empty() {
                        return Err(ParseError {
                            line: self.line,
                            message: "nothing after ';' (uci refuses an empty statement there)"
                                .into(),
                        });
                    }
                    return Ok(Some(words));
                }
                Some('#') => self.skip_comment(),
                Some(_) => {
                    let line = self.line;
                    let (text, unquoted_end) = self.word()?;
                    words.push(Word { text, line });
                    glued = unquoted_end;
                }
            }
        }
    }

    /// Skips spaces, tabs, carriage returns and backslash-newline
    /// continuations; returns whether it skipped a blank. A continued line
    /// that starts with a blank is refused: libuci reads an empty word
    /// there (so `option a \` + an indented value has too many words).
    fn skip_blanks(&mut self) -> Result<bool, ParseError> {
        let mut blank = false;
        loop {
            match self.chars.peek().copied() {
                Some(' ' | '\t' | '\r') => {
                    self.chars.next();
                    blank = true;
                }
                Some('\\') => {
                    let mut ahead = self.chars.clone();
                    ahead.next();
                    match ahead.peek() {
                        Some('\n') => {
                            self.chars = ahead;
                            self.chars.next();
                            self.line += 1;
                            if matches!(self.chars.peek(), Some(' ' | '\t')) {
                                return Err(ParseError {
                                    line: self.line,
                                    message: "a line continued with '\\' must not start with blanks (uci reads an empty word there)".into(),
                                });
                            }
                        }
                        // A lone backslash at the very end is nothing.
                        None => self.chars = ahead,
                        Some(_) => return Ok(blank),
                    }
                }
                _ => return Ok(blank),
            }
        }
    }

    /// What follows on this line (not consumed).
    fn rest_of_line(&self) -> Rest {
        let mut ahead = self.chars.clone();
        loop {
            match ahead.next() {
                None | Some('\n') => return Rest::Empty,
                Some('#') => return Rest::Comment,
                Some(' ' | '\t' | '\r') => {}
                Some(_) => return Rest::Text,
            }
        }
    }

    fn skip_comment(&mut self) {
        while let Some(&c) = self.chars.peek() {
            if c == '\n' {
                return;
            }
            self.chars.next();
        }
    }

    /// One word: unquoted, quoted and escaped parts up to a blank, a newline,
    /// `;` or `#` outside quotes; and whether its last part was unquoted.
    fn word(&mut self) -> Result<(String, bool), ParseError> {
        let mut out = String::new();
        let mut unquoted_end = false;
        while let Some(&c) = self.chars.peek() {
            match c {
                ' ' | '\t' | '\r' | '\n' | ';' | '#' => break,
                '\'' => {
                    let start = self.line;
                    self.chars.next();
                    unquoted_end = false;
                    loop {
                        match self.chars.next() {
                            None => return Err(unterminated(start, '\'')),
                            Some('\'') => break,
                            Some(c) => {
                                if c == '\n' {
                                    self.line += 1;
                                }
                                out.push(c);
                            }
                        }
                    }
                }
                '"' => {
                    let start = self.line;
                    self.chars.next();
                    unquoted_end = false;
                    loop {
                        match self.chars.next() {
                            None => return Err(unterminated(start, '"')),
                            Some('"') => break,
                            Some('\\') => self.escaped(&mut out),
                            Some(c) => {
                                if c == '\n' {
                                    self.line += 1;
                                }
                                out.push(c);
                            }
                        }
                    }
                }
                '\\' => {
                    self.chars.next();
                    self.escaped(&mut out);
                    unquoted_end = true;
                }
                c => {
                    self.chars.next();
                    out.push(c);
                    unquoted_end = true;
                }
            }
        }
        Ok((out, unquoted_end))
    }

    /// After a backslash: a newline continues the line, anything else is taken
    /// literally (libuci decodes no `\n`-style escapes).
    fn escaped(&mut self, out: &mut String) {
        match self.chars.next() {
            Some('\n') => self.line += 1,
            Some(c) => out.push(c),
            None => {}
        }
    }
}

fn unterminated(line: u32, quote: char) -> ParseError {
    ParseError {
        line,
        message: format!("unterminated {quote} quote starting on this line"),
    }
}

/// Quotes a value so that [`parse`] reads it back exactly: single quotes, with
/// each `'` written as `'\''` (libuci's own export form).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Writes the config back in the canonical form libuci exports.
impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.sections.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "config {}", s.kind)?;
            if let Some(name) = &s.name {
                write!(f, " {}", quote(name))?;
            }
            f.write_str("\n")?;
            for o in &s.options {
                match &o.value {
                    Value::Single(v) => writeln!(f, "\toption {} {}", o.name, quote(v))?,
                    Value::List(l) => {
                        for v in l {
                            writeln!(f, "\tlist {} {}", o.name, quote(v))?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Replaces `path` with `text` so that a reader (or a crash at any instant)
/// sees either the old file or the new one, never a mix: write a temporary
/// file next to it, fsync it, rename it over `path`, fsync the directory so
/// the rename itself survives a power cut.
pub fn write_atomic(path: &Path, text: &str) -> io::Result<()> {
    write_atomic_bytes(path, text.as_bytes())
}

/// [`write_atomic`] for bytes (state files are CBOR).
pub fn write_atomic_bytes(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    // The pid keeps two writers (agent and a CLI) from sharing a temp file.
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        // Some filesystems (and read-only overlay dirs) refuse fsync on a
        // directory; the data is already renamed, so that is not an error.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Section {
        let cfg = parse(text).unwrap();
        assert_eq!(cfg.sections.len(), 1, "{cfg:?}");
        cfg.sections.into_iter().next().unwrap()
    }

    fn err(text: &str) -> ParseError {
        parse(text).expect_err("should be refused")
    }

    #[test]
    fn reads_openwrt_style_file() {
        let text = "\
# nuvol configuration
config agent 'main'
\toption name 'router-1'
\toption microcloud \"guifi-sants\"
\toption bind 0.0.0.0:7946

config seed
\tlist addr '10.0.0.1:7946'
\tlist addr '10.0.0.2:7946'
";
        let cfg = parse(text).unwrap();
        assert_eq!(cfg.sections.len(), 2);
        let a = &cfg.sections[0];
        assert_eq!(
            (a.kind.as_str(), a.name.as_deref(), a.line),
            ("agent", Some("main"), 2)
        );
        assert_eq!(a.get_str("name"), Some("router-1"));
        assert_eq!(a.get_str("microcloud"), Some("guifi-sants"));
        assert_eq!(a.get("bind").unwrap().line, 5);
        let s = cfg.sections_of("seed").next().unwrap();
        assert_eq!(s.name, None);
        assert_eq!(s.get_list("addr"), vec!["10.0.0.1:7946", "10.0.0.2:7946"]);
        assert_eq!(s.get("addr").unwrap().line, 9);
    }

    #[test]
    fn single_quotes_keep_backslashes_and_hashes() {
        let s = one("config a\noption v 'a\\b # not a comment'\n");
        assert_eq!(s.get_str("v"), Some("a\\b # not a comment"));
    }

    #[test]
    fn double_quotes_unescape_backslash() {
        let s = one("config a\noption v \"say \\\"hi\\\" \\\\ \\n\"\n");
        // libuci decodes no \n: a backslash keeps the next character as is.
        assert_eq!(s.get_str("v"), Some("say \"hi\" \\ n"));
    }

    #[test]
    fn adjacent_parts_join_into_one_word() {
        let s = one("config a\noption v 'it'\\''s'\"_\"ok\n");
        assert_eq!(s.get_str("v"), Some("it's_ok"));
    }

    #[test]
    fn unquoted_backslash_escapes_space() {
        let s = one("config a\noption v two\\ words\n");
        assert_eq!(s.get_str("v"), Some("two words"));
    }

    #[test]
    fn empty_or_missing_option_value_changes_nothing_as_in_libuci() {
        let s = one("config a\noption v ''\noption w \"\"\noption x\noption y 1\noption y ''\nlist l\nlist l ''\n");
        assert_eq!((s.get("v"), s.get("w"), s.get("x")), (None, None, None));
        assert_eq!(s.get_str("y"), Some("1"));
        assert_eq!(s.get_list("l"), vec!["", ""]);
    }

    #[test]
    fn empty_section_name_is_anonymous() {
        assert_eq!(one("config a ''\n").name, None);
    }

    #[test]
    fn comment_after_value_is_ignored() {
        let s = one("config a # the agent\n  option v x # trailing\n#option w y\n");
        assert_eq!(s.get_str("v"), Some("x"));
        assert!(s.get("w").is_none());
    }

    #[test]
    fn backslash_newline_continues_statement() {
        let cfg = parse("config a\noption v \\\n'x'\noption w y\\\nz\n").unwrap();
        let s = &cfg.sections[0];
        assert_eq!(s.get_str("v"), Some("x"));
        assert_eq!(s.get_str("w"), Some("yz"));
        assert_eq!(s.get("w").unwrap().line, 4);
        // libuci reads an empty word before the blanks: too many words there.
        assert_eq!(err("config a\noption v \\\n  'x'\n").line, 3);
    }

    #[test]
    fn quoted_value_may_span_lines_and_lines_stay_counted() {
        let e = parse("config a\noption v 'one\ntwo'\noption w x\nbogus\n").unwrap_err();
        assert_eq!(e.line, 5);
        let s = one("config a\noption v 'one\ntwo'\n");
        assert_eq!(s.get_str("v"), Some("one\ntwo"));
    }

    #[test]
    fn semicolon_separates_statements() {
        let s = one("config a ; option v 1 ; option w '2;3'\noption x 4; # done\noption y '5'; option z 6\n");
        assert_eq!(s.get_str("z"), Some("6"));
        assert_eq!(s.get_str("v"), Some("1"));
        assert_eq!(s.get_str("w"), Some("2;3"));
        assert_eq!(s.get_str("x"), Some("4"));
        // libuci drops what follows a `;` that touches a word: refused.
        assert!(err("config a; option v 1\n")
            .message
            .contains("space before ';'"));
        assert!(err("config a\noption v 1 ;\n")
            .message
            .contains("nothing after ';'"));
    }

    #[test]
    fn short_keywords_are_accepted() {
        let s = one("package nuvol\nc agent main\no name x\nl seed y\n");
        assert_eq!(s.get_str("name"), Some("x"));
        assert_eq!(s.get_list("seed"), vec!["y"]);
    }

    #[test]
    fn repeated_option_replaces_and_list_appends() {
        let s = one("config a\noption v 1\noption v 2\nlist l x\nlist l y\noption o 1\nlist o 2\n");
        assert_eq!(s.get_str("v"), Some("2"));
        assert_eq!(s.get_list("l"), vec!["x", "y"]);
        assert_eq!(s.get_list("o"), vec!["1", "2"]);
        assert_eq!(s.options.len(), 3);
    }

    #[test]
    fn named_section_reopened_merges() {
        let cfg = parse("config a main\noption v 1\nconfig b other\nconfig a main\noption w 2\n")
            .unwrap();
        assert_eq!(cfg.sections.len(), 2);
        let m = cfg.named("main").unwrap();
        assert_eq!((m.get_str("v"), m.get_str("w")), (Some("1"), Some("2")));
    }

    #[test]
    fn crlf_line_endings_are_read() {
        let s = one("config a\r\n\toption v 'x'\r\n");
        assert_eq!(s.get_str("v"), Some("x"));
    }

    #[test]
    fn unknown_statement_names_its_line() {
        let e = err("config a\n\noption v 1\nfrobnicate x\n");
        assert_eq!(e.line, 4);
        assert!(e.message.contains("frobnicate"), "{e}");
        assert_eq!(e.to_string(), format!("line 4: {}", e.message));
    }

    #[test]
    fn unterminated_quote_names_the_line_it_started() {
        let e = err("config a\noption v 'abc\noption w x\n");
        assert_eq!(e.line, 2);
        let e = err("config a\noption v \"abc\\\"\n");
        assert_eq!(e.line, 2);
    }

    #[test]
    fn option_before_section_is_refused() {
        assert_eq!(err("\n option v 1\n").line, 2);
    }

    #[test]
    fn missing_and_extra_words_are_refused() {
        assert_eq!(err("config a\noption\n").line, 2);
        assert_eq!(err("config a\noption v 1 2\n").line, 2);
        assert_eq!(err("config\n").line, 1);
        assert_eq!(err("config a b c\n").line, 1);
    }

    #[test]
    fn invalid_names_are_refused() {
        assert!(err("config a\noption 'bad-name' 1\n")
            .message
            .contains("bad-name"));
        assert!(parse("config a 'has space'\n").is_err());
        assert!(parse("config 'we ird'\n").is_err());
        assert!(parse("config my-type\n").is_ok());
    }

    #[test]
    fn empty_and_comment_only_files_are_empty_configs() {
        assert_eq!(parse("").unwrap(), Config::default());
        assert_eq!(parse("# nothing\n\n   \t\n").unwrap(), Config::default());
    }

    #[test]
    fn hostile_inputs_never_panic() {
        let nasty = [
            "\\",
            "'",
            "\"",
            "\"\\",
            "config\\",
            "config a\noption v \\",
            ";;;",
            "#",
            "\0",
            "config a\noption v é'ü'\\\u{1F600}",
            "c a\no",
            "l",
            "config a\nlist",
        ];
        for n in nasty {
            let _ = parse(n);
        }
        // Every prefix of a realistic file.
        let text = "config agent 'm'\n\toption v \"a\\\"b\"\n\tlist l 'x'\\''y' # c\n";
        for (i, _) in text.char_indices() {
            let _ = parse(&text[..i]);
        }
    }

    #[test]
    fn display_round_trips_through_parse() {
        let text = "config agent 'main'\noption v \"it's \\\"q\\\" \\\\ # x\"\nlist l 'a b'\nlist l ''\nconfig seed\noption addr 1\n";
        let cfg = parse(text).unwrap();
        let again = parse(&cfg.to_string()).unwrap();
        // Lines differ after re-export; everything else must not.
        let strip = |c: &Config| {
            let mut c = c.clone();
            for s in &mut c.sections {
                s.line = 0;
                s.options.iter_mut().for_each(|o| o.line = 0);
            }
            c
        };
        assert_eq!(strip(&cfg), strip(&again));
    }

    #[test]
    fn write_atomic_replaces_file_and_leaves_no_temp() {
        let dir = std::env::temp_dir().join(format!("nuvol-uci-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("nuvol");
        write_atomic(&path, "config a\n").unwrap();
        write_atomic(&path, "config b\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "config b\n");
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("nuvol")]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn write_atomic_into_missing_dir_is_an_error() {
        let path = Path::new("/nonexistent-nuvol-dir/x");
        assert!(write_atomic(path, "x").is_err());
    }
}
