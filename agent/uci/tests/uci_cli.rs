//! Our reader against OpenWRT's own `uci` program, built from the pinned
//! upstream sources by `tests/lib/upstream.sh`.
//!
//! For every file in `tests/corpus/` (and the shipped `/etc/config/nuvol`):
//! `uci export` must refuse it exactly when [`nuvol_uci::parse`] does, and when
//! both accept it, the sections, names, options and values we read must be
//! the ones `uci export` prints (read back with our reader, which also proves
//! we read uci's own output). File names say what is expected: `valid-*` both
//! accept, `invalid-*` both refuse, `differs-*` uci accepts and we refuse on
//! purpose (the file's comment says why: uci would silently drop text there). Then a config edited with `uci set`, `uci
//! add_list`, `uci delete` and `uci commit` is read as uci reads it.
//!
//! `uci` is found at `$NUVOL_UCI`, else through `tests/lib/upstream.sh
//! --prefix`; without it the tests say so and pass (tests/run.sh builds it
//! before the cargo tests).

use nuvol_uci::{parse, Config, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn uci_program() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NUVOL_UCI") {
        return Some(PathBuf::from(p));
    }
    let out = Command::new(workspace().join("tests/lib/upstream.sh"))
        .arg("--prefix")
        .output()
        .ok()?;
    let prefix = String::from_utf8(out.stdout).ok()?;
    let uci = Path::new(prefix.trim()).join("bin/uci");
    (out.status.success() && uci.is_file()).then_some(uci)
}

/// A config folder of its own, removed on drop.
struct ConfDir(PathBuf);

impl ConfDir {
    fn new(tag: &str) -> ConfDir {
        // Tests run in parallel threads: one folder per call.
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("nuvol-uci-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("temp dir is writable");
        ConfDir(dir)
    }
}

impl Drop for ConfDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// `uci -c DIR ARGS...`: stdout on success, stderr on failure.
fn uci(prog: &Path, dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(prog)
        .arg("-c")
        .arg(dir)
        .args(args)
        .output()
        .expect("uci runs");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// What a config says, without the line numbers: (type, name, options).
type Shape = Vec<(String, Option<String>, Vec<(String, Value)>)>;

fn shape(cfg: &Config) -> Shape {
    cfg.sections
        .iter()
        .map(|s| {
            let opts = s
                .options
                .iter()
                .map(|o| (o.name.clone(), o.value.clone()))
                .collect();
            (s.kind.clone(), s.name.clone(), opts)
        })
        .collect()
}

/// Checks one file; returns a line describing a disagreement, if any.
fn compare(prog: &Path, label: &str, text: &[u8]) -> Option<String> {
    let dir = ConfDir::new("corpus");
    fs::write(dir.0.join("t"), text).expect("write");
    let theirs = uci(prog, &dir.0, &["export", "t"]);
    let ours = std::str::from_utf8(text)
        .map_err(|e| e.to_string())
        .and_then(|t| parse(t).map_err(|e| e.to_string()));
    match (theirs, ours) {
        (Err(_), Err(_)) => None,
        (Err(e), Ok(_)) => Some(format!("{label}: uci refuses ({}), we accept", e.trim())),
        (Ok(_), Err(e)) => Some(format!("{label}: uci accepts, we refuse ({e})")),
        (Ok(export), Ok(cfg)) => match parse(&export) {
            Err(e) => Some(format!(
                "{label}: we cannot read uci's export: {e}\n{export}"
            )),
            Ok(back) if shape(&back) != shape(&cfg) => Some(format!(
                "{label}: values differ\n  uci: {:?}\n  ours: {:?}",
                shape(&back),
                shape(&cfg)
            )),
            Ok(_) => None,
        },
    }
}

#[test]
fn corpus_reads_as_uci_reads_it() {
    let Some(prog) = uci_program() else {
        eprintln!("skipped: no uci program (tests/lib/upstream.sh builds it)");
        return;
    };
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<PathBuf> = fs::read_dir(&corpus)
        .expect("corpus folder")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files.push(workspace().join("openwrt-feed/net/nuvol/files/nuvol.config"));
    let mut problems = Vec::new();
    let (mut valid, mut invalid) = (0, 0);
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let text = fs::read(f).expect("read corpus file");
        if name.starts_with("differs-") {
            let dir = ConfDir::new("differs");
            fs::write(dir.0.join("t"), &text).expect("write");
            if uci(&prog, &dir.0, &["export", "t"]).is_err() {
                problems.push(format!("{name}: uci refuses it now; rename it invalid-"));
            }
            assert!(
                parse(std::str::from_utf8(&text).unwrap()).is_err(),
                "{name} is accepted"
            );
            continue;
        }
        if let Some(p) = compare(&prog, &name, &text) {
            problems.push(p);
        }
        // The file names promise which way uci goes; keep them honest.
        if name.starts_with("invalid-") {
            invalid += 1;
            assert!(
                parse(std::str::from_utf8(&text).unwrap()).is_err(),
                "{name} is accepted"
            );
        } else {
            valid += 1;
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        valid >= 10 && invalid >= 8,
        "corpus too small: {valid} valid, {invalid} invalid"
    );
}

#[test]
fn config_edited_with_uci_commit_is_read_as_uci_reads_it() {
    let Some(prog) = uci_program() else {
        eprintln!("skipped: no uci program (tests/lib/upstream.sh builds it)");
        return;
    };
    let dir = ConfDir::new("commit");
    let shipped = workspace().join("openwrt-feed/net/nuvol/files/nuvol.config");
    fs::copy(&shipped, dir.0.join("nuvol")).expect("copy the shipped config");
    let edits: &[&[&str]] = &[
        &["set", "nuvol.main.name=attic router's"],
        &["set", "nuvol.main.microcloud=sants"],
        &["add_list", "nuvol.main.join=10.0.0.1:7946"],
        &["add_list", "nuvol.main.join=node2.lan:7946"],
        &["delete", "nuvol.main.beacon_port"],
        &["add", "nuvol", "key"],
        &["set", "nuvol.@key[0].secret=AAAA\"quoted\"=="],
        &["set", "nuvol.web=service"],
        &["set", "nuvol.web.command=/usr/sbin/uhttpd -f -p 8080"],
        &["set", "nuvol.web.publish_description=wiki; with # and ;"],
    ];
    for e in edits {
        uci(&prog, &dir.0, e).unwrap_or_else(|err| panic!("uci {e:?}: {err}"));
    }
    uci(&prog, &dir.0, &["commit", "nuvol"]).expect("uci commit");
    let text = fs::read_to_string(dir.0.join("nuvol")).expect("committed file");
    let cfg = parse(&text).unwrap_or_else(|e| panic!("we refuse uci's own file: {e}\n{text}"));
    let main = cfg.named("main").expect("main section");
    assert_eq!(main.get_str("name"), Some("attic router's"));
    assert_eq!(main.get_str("microcloud"), Some("sants"));
    assert_eq!(
        main.get_list("join"),
        vec!["10.0.0.1:7946", "node2.lan:7946"]
    );
    assert_eq!(main.get("beacon_port"), None);
    let key = cfg
        .sections_of("key")
        .next()
        .expect("anonymous key section");
    assert_eq!(key.name, None);
    assert_eq!(key.get_str("secret"), Some("AAAA\"quoted\"=="));
    let web = cfg.named("web").expect("web section");
    assert_eq!(web.get_str("command"), Some("/usr/sbin/uhttpd -f -p 8080"));
    assert_eq!(
        web.get_str("publish_description"),
        Some("wiki; with # and ;")
    );
    // And each value the way `uci get` prints it.
    for (path, want) in [
        ("nuvol.main.name", "attic router's"),
        ("nuvol.@key[0].secret", "AAAA\"quoted\"=="),
        ("nuvol.web.publish_description", "wiki; with # and ;"),
    ] {
        let got = uci(&prog, &dir.0, &["get", path]).expect("uci get");
        assert_eq!(got.trim_end_matches('\n'), want, "{path}");
    }
    if let Some(p) = compare(&prog, "committed", text.as_bytes()) {
        panic!("{p}");
    }
}
