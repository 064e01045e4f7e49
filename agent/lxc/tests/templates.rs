//! The app templates shipped in `agent/lxc/templates/`: each is a valid
//! manifest, named after its file, and says what it needs. Runs anywhere
//! (no LXC, no root).

use std::path::Path;

use nuvol_lxc::apps::{Apps, Settings};
use nuvol_lxc::host::Arch;
use nuvol_lxc::manifest::{self, Architectures, HealthCheck, SourceSpec};

fn templates_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("templates")
}

fn apps_for(arch: Option<Arch>) -> Apps {
    let mut s = Settings::new("/nonexistent/lxcpath", templates_dir());
    s.arch = arch;
    Apps::new(s)
}

#[test]
fn every_shipped_template_is_valid_and_listed() {
    let views = apps_for(Some(Arch::X86_64)).templates();
    let names: Vec<&str> = views.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["fileshare", "mosquitto", "website"]);
    for v in &views {
        assert!(v.supported, "{v:?}");
        assert!(!v.installed);
        assert!(!v.description.starts_with("invalid"), "{v:?}");
    }
}

#[test]
fn the_website_runs_offline_on_every_board() {
    let (m, _) = apps_for(Some(Arch::Mips)).template("website").unwrap();
    assert_eq!(m.source, SourceSpec::Busybox);
    assert_eq!(m.architectures, Architectures::All);
    assert!(m.setup.is_empty(), "nothing to download");
    assert_eq!(
        m.health,
        Some(HealthCheck::Http {
            port: 80,
            path: "/".into()
        })
    );
    assert_eq!(m.publish.as_ref().map(|p| p.by_default), Some(true));
}

#[test]
fn download_templates_are_refused_on_boards_without_images() {
    let apps = apps_for(Some(Arch::Mipsel));
    for t in ["mosquitto", "fileshare"] {
        let view = apps.templates().into_iter().find(|v| v.name == t).unwrap();
        assert!(!view.supported, "{t} has no mipsel image");
        let err = apps.install(t, "").unwrap_err();
        assert!(
            err.to_string().contains("architecture"),
            "{t}: refused naming the field, before any download: {err}"
        );
    }
}

#[test]
fn setup_lines_write_the_intended_config_files() {
    // The printf lines go through two quoting layers (UCI double quotes,
    // then the shell); run them against a scratch root to see the result.
    let root = std::env::temp_dir().join(format!("nuvol-lxc-setup-{}", std::process::id()));
    for (template, file, expect) in [
        (
            "mosquitto",
            "/etc/mosquitto/nuvol.conf",
            "listener 1883\nallow_anonymous true\n",
        ),
        (
            "fileshare",
            "/etc/lighttpd/share.conf",
            "server.document-root = \"/srv/share\"\nserver.port = 80\n",
        ),
    ] {
        let text =
            std::fs::read_to_string(templates_dir().join(format!("{template}.app"))).unwrap();
        let m = manifest::parse(&text).unwrap();
        let line = m.setup.iter().find(|l| l.contains(file)).unwrap();
        let target = root.join(template);
        std::fs::create_dir_all(
            target.join(Path::new(file).parent().unwrap().strip_prefix("/").unwrap()),
        )
        .unwrap();
        let local = line.replace(file, &format!("{}{file}", target.display()));
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", &local])
            .output()
            .unwrap();
        assert!(out.status.success(), "{local}");
        let written = std::fs::read_to_string(format!("{}{file}", target.display())).unwrap();
        assert!(written.starts_with(expect), "{template}: {written:?}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn preflight_names_packages_for_whatever_is_missing() {
    let mut s = Settings::new("/nonexistent/lxcpath", templates_dir());
    s.lxc_templates = "/nonexistent/lxc-templates".into();
    let problems = Apps::new(s).preflight();
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|t| t.contains("busybox template") && t.contains("opkg install lxc-templates")),
        "{text:?}"
    );
}
