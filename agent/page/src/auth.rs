//! Who may use the page, and proof that a form came from the page.
//!
//! * [`PageConfig`] is the `config page 'page'` section of the nuvol UCI file:
//!
//!   ```text
//!   config page 'page'
//!       list allowed_user 'root'          # CGI: REMOTE_USER values let in (default: root)
//!       option password_hash 'pbkdf2-sha256$10000$<salt hex>$<hash hex>'
//!                                         # built-in server login (none: login refused)
//!       option secret_file '/etc/nuvol/page.secret'
//!                                         # CSRF key for the CGI (default: <state dir>/page.secret)
//!       option session_timeout '28800'    # built-in server: seconds a login lasts
//!   ```
//!
//! * Passwords are stored as PBKDF2-HMAC-SHA256 (RFC 8018) with a 16-byte random
//!   salt: `pbkdf2-sha256$ITERATIONS$SALT_HEX$HASH_HEX` (32-byte hash). The
//!   iteration count lives in the string, so an owner with a faster CPU can raise
//!   it; [`DEFAULT_ITERATIONS`] is sized for a 500 MHz router (see the report in
//!   the crate docs). [`hash_password`] makes such a string.
//! * CSRF tokens are `HOUR_HEX.MAC_HEX`: an HMAC-SHA256 under a secret of the
//!   hour they were made and of what they are bound to (the CGI's `REMOTE_USER`,
//!   or the built-in server's session id), truncated to 128 bits. They are valid
//!   for [`CSRF_VALID_HOURS`] hours. The CGI keeps its secret in a file created
//!   once (atomically, mode 0600); the built-in server keeps one in memory.
//!
//! ```
//! use nuvol_page::auth::{csrf_token, csrf_valid};
//! let secret = [7u8; 32];
//! let t = csrf_token(&secret, "user:root", 1_000_000);
//! assert!(csrf_valid(&secret, "user:root", &t, 1_000_100));
//! assert!(!csrf_valid(&secret, "user:mallory", &t, 1_000_100));
//! ```

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fs;
use std::io::{self, BufRead, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

type HmacSha256 = Hmac<Sha256>;

/// PBKDF2 rounds for new hashes. About 0.1 s natively; measured on an emulated
/// Cortex-A9 in the crate report. A login happens once per session.
pub const DEFAULT_ITERATIONS: u32 = 10_000;
/// Hashes asking for more rounds than this are refused rather than letting a
/// bad config pin the CPU on every login.
pub const MAX_ITERATIONS: u32 = 1_000_000;
/// How long a CSRF token stays valid.
pub const CSRF_VALID_HOURS: u64 = 12;
/// Default lifetime of a built-in server login.
pub const DEFAULT_SESSION_TIMEOUT_S: u64 = 8 * 3600;

/// The page's settings, from the `page` section of the UCI config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageConfig {
    /// The agent's control socket.
    pub control: PathBuf,
    /// `REMOTE_USER` values the CGI serves (`list allowed_user`). Never empty:
    /// `root` when the config names none.
    pub allowed_users: Vec<String>,
    /// `option password_hash`: the built-in server's login password.
    pub password_hash: Option<String>,
    /// `option secret_file`: the CGI's CSRF secret.
    pub secret_file: PathBuf,
    /// `option session_timeout`, seconds.
    pub session_timeout_s: u64,
    /// Where the CGI looks when the web server let a request through without
    /// a login: the accounts' password hashes, the web server's realms, and
    /// the init script that restarts it (see [`crate::cgi`]).
    pub shadow_file: PathBuf,
    pub httpd_conf: PathBuf,
    pub web_server_init: PathBuf,
}

/// A `page` section that cannot be used; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub line: u32,
    pub message: String,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ConfigError {}

impl PageConfig {
    /// Defaults: only `root`, no password (built-in login refused), the secret
    /// in `state_dir/page.secret`.
    pub fn new(control: &Path, state_dir: &Path) -> PageConfig {
        PageConfig {
            control: control.to_path_buf(),
            allowed_users: vec!["root".into()],
            password_hash: None,
            secret_file: state_dir.join("page.secret"),
            session_timeout_s: DEFAULT_SESSION_TIMEOUT_S,
            shadow_file: PathBuf::from("/etc/shadow"),
            httpd_conf: PathBuf::from("/etc/httpd.conf"),
            web_server_init: PathBuf::from("/etc/init.d/uhttpd"),
        }
    }

    /// Reads the first `page` section of `config` over the defaults of
    /// [`PageConfig::new`]. Unknown options are ignored (newer configs on older
    /// agents); a malformed known option is an error naming its line.
    pub fn from_uci(
        config: &nuvol_uci::Config,
        control: &Path,
        state_dir: &Path,
    ) -> Result<PageConfig, ConfigError> {
        let mut page = PageConfig::new(control, state_dir);
        let Some(section) = config.sections_of("page").next() else {
            return Ok(page);
        };
        for opt in &section.options {
            let err = |message: String| ConfigError {
                line: opt.line,
                message,
            };
            let values: Vec<&str> = match &opt.value {
                nuvol_uci::Value::Single(s) => vec![s.as_str()],
                nuvol_uci::Value::List(l) => l.iter().map(String::as_str).collect(),
            };
            let last = values.last().copied().unwrap_or("");
            match opt.name.as_str() {
                "allowed_user" => {
                    let users: Vec<String> = values
                        .iter()
                        .map(|u| u.trim())
                        .filter(|u| !u.is_empty())
                        .map(String::from)
                        .collect();
                    if !users.is_empty() {
                        page.allowed_users = users;
                    }
                }
                "password_hash" if last.is_empty() => page.password_hash = None,
                "password_hash" => {
                    PasswordHash::parse(last).map_err(|m| err(format!("password_hash: {m}")))?;
                    page.password_hash = Some(last.to_string());
                }
                "secret_file" if last.is_empty() => {
                    return Err(err("secret_file: empty path".into()))
                }
                "secret_file" => page.secret_file = PathBuf::from(last),
                "session_timeout" => {
                    page.session_timeout_s = last
                        .parse::<u64>()
                        .ok()
                        .filter(|s| (60..=30 * 86_400).contains(s))
                        .ok_or_else(|| {
                            err(format!(
                                "session_timeout: {last:?} is not a number of seconds between 60 and 2592000"
                            ))
                        })?;
                }
                _ => {}
            }
        }
        Ok(page)
    }

    /// Whether the CGI serves this authenticated web-server user.
    pub fn user_allowed(&self, user: &str) -> bool {
        !user.is_empty() && self.allowed_users.iter().any(|u| u == user)
    }
}

/// A parsed `pbkdf2-sha256$…` string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordHash {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub hash: [u8; 32],
}

impl PasswordHash {
    pub fn parse(s: &str) -> Result<PasswordHash, String> {
        let mut parts = s.trim().split('$');
        if parts.next() != Some("pbkdf2-sha256") {
            return Err(
                "must start with pbkdf2-sha256$ (make one with `nuvol page-passwd`)".into(),
            );
        }
        let iterations = parts
            .next()
            .and_then(|i| i.parse::<u32>().ok())
            .filter(|i| (1..=MAX_ITERATIONS).contains(i))
            .ok_or_else(|| format!("iterations must be 1..={MAX_ITERATIONS}"))?;
        let salt = parts
            .next()
            .and_then(from_hex)
            .filter(|s| (8..=64).contains(&s.len()))
            .ok_or("salt must be 8 to 64 bytes of hex")?;
        let hash: [u8; 32] = parts
            .next()
            .and_then(from_hex)
            .and_then(|h| h.try_into().ok())
            .ok_or("hash must be 32 bytes of hex")?;
        if parts.next().is_some() {
            return Err("too many $-separated fields".into());
        }
        Ok(PasswordHash {
            iterations,
            salt,
            hash,
        })
    }

    /// Whether `password` matches, compared in constant time.
    pub fn verify(&self, password: &str) -> bool {
        let mut got = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &self.salt, self.iterations, &mut got);
        got.iter()
            .zip(self.hash.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl core::fmt::Display for PasswordHash {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "pbkdf2-sha256${}${}${}",
            self.iterations,
            to_hex(&self.salt),
            to_hex(&self.hash)
        )
    }
}

/// Hashes `password` with a fresh random salt and `iterations` rounds.
pub fn hash_password_with(password: &str, iterations: u32) -> io::Result<String> {
    let mut salt = [0u8; 16];
    random_bytes(&mut salt)?;
    let mut hash = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations, &mut hash);
    Ok(PasswordHash {
        iterations,
        salt: salt.to_vec(),
        hash,
    }
    .to_string())
}

/// Hashes `password` for `option password_hash` with [`DEFAULT_ITERATIONS`].
pub fn hash_password(password: &str) -> io::Result<String> {
    hash_password_with(password, DEFAULT_ITERATIONS)
}

/// `nuvol page-passwd`: reads a password (first line of `input`) and prints
/// the value of `option password_hash` for the `page` section (bare, so a
/// script can write `HASH=$(echo pw | nuvol page-passwd)`). Returns the exit
/// code: 0, 100 for an empty or unreadable password, 111 without random bytes.
pub fn passwd_main(input: &mut dyn BufRead, out: &mut dyn Write) -> i32 {
    let mut line = String::new();
    if input.take(1024).read_line(&mut line).is_err() {
        eprintln!("page-passwd: cannot read the password");
        return 100;
    }
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!(
            "page-passwd: empty password (give it on stdin: echo secret | nuvol page-passwd)"
        );
        return 100;
    }
    match hash_password(password) {
        Ok(h) => match writeln!(out, "{h}") {
            Ok(()) => 0,
            Err(_) => 111,
        },
        Err(e) => {
            eprintln!("page-passwd: {e}");
            111
        }
    }
}

/// Fills `buf` from the kernel's random source.
pub fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    fs::File::open("/dev/urandom")?.read_exact(buf)
}

fn csrf_mac(secret: &[u8; 32], binding: &str, hour: u64) -> [u8; 16] {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(b"nuvol-page-csrf\0");
    mac.update(&hour.to_be_bytes());
    mac.update(binding.as_bytes());
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// A CSRF token for forms shown to `binding` at `now_s` (Unix seconds).
pub fn csrf_token(secret: &[u8; 32], binding: &str, now_s: u64) -> String {
    let hour = now_s / 3600;
    format!("{hour:x}.{}", to_hex(&csrf_mac(secret, binding, hour)))
}

/// Whether `token` was made by [`csrf_token`] for `binding` within the last
/// [`CSRF_VALID_HOURS`] hours. Compared in constant time.
pub fn csrf_valid(secret: &[u8; 32], binding: &str, token: &str, now_s: u64) -> bool {
    let Some((hour, mac)) = token.split_once('.') else {
        return false;
    };
    let Ok(hour) = u64::from_str_radix(hour, 16) else {
        return false;
    };
    let now_hour = now_s / 3600;
    if hour > now_hour || now_hour - hour >= CSRF_VALID_HOURS || binding.is_empty() {
        return false;
    }
    let Some(mac) = from_hex(mac) else {
        return false;
    };
    let want = csrf_mac(secret, binding, hour);
    mac.len() == want.len()
        && mac
            .iter()
            .zip(want.iter())
            .fold(0u8, |a, (x, y)| a | (x ^ y))
            == 0
}

/// Reads the CGI's CSRF secret, creating it on first use.
///
/// Creation writes a temporary file (mode 0600) and hard-links it into place,
/// which fails if another CGI process won the race; then that one's secret is
/// read, so concurrent first requests agree on one secret.
pub fn load_or_create_secret(path: &Path) -> io::Result<[u8; 32]> {
    match read_secret(path) {
        Ok(s) => return Ok(s),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let mut secret = [0u8; 32];
    random_bytes(&mut secret)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let written = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(to_hex(&secret).as_bytes())?;
        f.sync_all()?;
        fs::hard_link(&tmp, path)
    })();
    let _ = fs::remove_file(&tmp);
    match written {
        Ok(()) => Ok(secret),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read_secret(path),
        Err(e) => Err(e),
    }
}

fn read_secret(path: &Path) -> io::Result<[u8; 32]> {
    let mut text = String::new();
    fs::File::open(path)?.take(256).read_to_string(&mut text)?;
    from_hex(text.trim())
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is not 64 hex digits; delete it to make a new one",
                    path.display()
                ),
            )
        })
}

/// Lower-case hex.
pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 256 {
        return None;
    }
    let nib = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(nib(p[0])? << 4 | nib(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_round_trips_and_rejects_wrong_password() {
        let h = hash_password_with("correct horse", 50).unwrap();
        let parsed = PasswordHash::parse(&h).unwrap();
        assert_eq!(parsed.to_string(), h);
        assert!(parsed.verify("correct horse"));
        assert!(!parsed.verify("correct horse "));
    }

    #[test]
    fn pbkdf2_matches_rfc7914_vector() {
        // RFC 7914 section 11: PBKDF2-HMAC-SHA256("passwd", "salt", 1, 64).
        let mut out = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(b"passwd", b"salt", 1, &mut out);
        assert_eq!(
            to_hex(&out),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        );
    }

    #[test]
    fn passwd_prints_a_hash_that_verifies() {
        let mut out = Vec::new();
        assert_eq!(passwd_main(&mut &b"hunter2\n"[..], &mut out), 0);
        let line = String::from_utf8(out).unwrap();
        let hash = PasswordHash::parse(line.strip_suffix('\n').unwrap()).unwrap();
        assert!(hash.verify("hunter2"));
        assert_eq!(passwd_main(&mut &b"\n"[..], &mut Vec::new()), 100);
    }

    #[test]
    fn malformed_hashes_are_errors() {
        for bad in [
            "",
            "md5$1$00$00",
            "pbkdf2-sha256$0$0011223344556677$00",
            "pbkdf2-sha256$99999999$0011223344556677$00",
            "pbkdf2-sha256$10$zz$00",
            "pbkdf2-sha256$10$0011223344556677$0011",
        ] {
            assert!(PasswordHash::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn csrf_token_expires_and_is_bound() {
        let s = [1u8; 32];
        let t = csrf_token(&s, "session:abc", 36_000);
        assert!(csrf_valid(&s, "session:abc", &t, 36_000 + 3600 * 11));
        assert!(!csrf_valid(&s, "session:abc", &t, 36_000 + 3600 * 12));
        assert!(!csrf_valid(&s, "session:abd", &t, 36_000));
        assert!(!csrf_valid(&[2u8; 32], "session:abc", &t, 36_000));
        assert!(!csrf_valid(&s, "session:abc", "", 36_000));
        assert!(!csrf_valid(&s, "session:abc", "zz.00", 36_000));
        assert!(!csrf_valid(&s, "", &csrf_token(&s, "", 36_000), 36_000));
    }

    #[test]
    fn secret_file_is_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("nuvol-page-secret-{}", std::process::id()));
        let path = dir.join("sub/page.secret");
        let a = load_or_create_secret(&path).unwrap();
        let b = load_or_create_secret(&path).unwrap();
        assert_eq!(a, b);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn page_section_is_read_with_defaults() {
        let cfg = nuvol_uci::parse(
            "config page 'page'\n\tlist allowed_user 'admin'\n\tlist allowed_user 'ops'\n\toption secret_file '/tmp/x'\n\toption session_timeout '600'\n",
        )
        .unwrap();
        let p = PageConfig::from_uci(&cfg, Path::new("/run/n.sock"), Path::new("/var/lib/nuvol"))
            .unwrap();
        assert_eq!(p.allowed_users, vec!["admin", "ops"]);
        assert!(p.user_allowed("ops") && !p.user_allowed("root") && !p.user_allowed(""));
        assert_eq!(p.secret_file, PathBuf::from("/tmp/x"));
        assert_eq!(p.session_timeout_s, 600);
        let empty = nuvol_uci::parse("").unwrap();
        let d = PageConfig::from_uci(&empty, Path::new("/s"), Path::new("/var/lib/nuvol")).unwrap();
        assert_eq!(d.allowed_users, vec!["root"]);
        assert_eq!(d.secret_file, PathBuf::from("/var/lib/nuvol/page.secret"));
        let bad = nuvol_uci::parse("config page 'page'\n\toption password_hash 'plain'\n").unwrap();
        let e = PageConfig::from_uci(&bad, Path::new("/s"), Path::new("/d")).unwrap_err();
        assert_eq!(e.line, 2);
    }
}
