//! Real containers on this host: the shipped offline template installed,
//! started, reached over HTTP through its published (DNATed) address, limited
//! by its cgroup, stopped and uninstalled without leaving anything behind;
//! bad templates refused before anything exists, failures rolled back; a
//! local rootfs tarball as a source. (The app under the supervisor is
//! `tests/supervised.rs`.)
//!
//! Each test runs in its own network namespace (the test thread unshares
//! one; every `lxc-*`, `ip` and `nft` it spawns inherits it), with its own
//! bridge, subnet, nftables table and lxcpath, so the host's network and its
//! own containers are never touched. Tests need root and the LXC tools; when
//! they are missing each test says why and passes without running
//! (`tests/suite/lxc-live.sh` turns that into exit 77).

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    enter_private_network, page, sh, shipped_templates, unique, wait_for, Env, PUBLISHED,
};
use nuvol_lxc::apps::Check;

#[test]
fn website_installs_answers_on_its_published_port_and_uninstalls_without_trace() {
    require_lxc!();
    enter_private_network();
    let mut env = Env::new("web", Some(&shipped_templates()));
    // A long grace, so "stopped by SIGTERM at once" and "killed after the
    // grace" stay far apart even on a loaded machine.
    env.apps.lxc.timeouts.stop_grace = Duration::from_secs(30);
    let name = unique("web");

    let started = Instant::now();
    let view = env.apps.install("website", &name).expect("install");
    let install_time = started.elapsed();
    assert_eq!(view.state, "STOPPED");
    assert_eq!(view.ports, vec![(80, 8080)]);
    assert_eq!(view.ips, vec!["10.213.0.2"]);
    assert!(env
        .apps
        .templates()
        .iter()
        .any(|t| t.name == "website" && t.installed && t.supported));

    let started = Instant::now();
    let view = env.apps.start(&name).expect("start");
    assert_eq!(view.state, "RUNNING");
    wait_for(
        "the page through the published address",
        Duration::from_secs(15),
        || page(PUBLISHED).is_some(),
    );
    let start_time = started.elapsed();
    assert!(page(PUBLISHED).unwrap().contains("Hello from nuvol"));
    let direct = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 213, 0, 2)), 80);
    assert!(
        page(direct).is_some(),
        "the container answers on its own address too"
    );

    // The health check probes the published address.
    let check = env
        .apps
        .check(&name)
        .unwrap()
        .expect("the template has a health check");
    assert_eq!(
        check,
        Check::Http {
            addr: PUBLISHED,
            path: "/".into()
        }
    );
    assert!(check.run(Duration::from_secs(2)));

    // Limits from the manifest, read back from the container's own cgroup files.
    let lxc = &env.apps.lxc;
    let cg = &env.apps.cgroups;
    let mem = match cg.get("memory") {
        Some(nuvol_lxc::host::Hierarchy::V1(_)) => {
            lxc.cgroup_file(&name, cg, "memory", "memory.limit_in_bytes")
        }
        _ => lxc.cgroup_file(&name, cg, "memory", "memory.max"),
    };
    assert_eq!(mem.unwrap(), (16u64 << 20).to_string());
    if let Some(nuvol_lxc::host::Hierarchy::V1(_)) = cg.get("cpu") {
        assert_eq!(
            lxc.cgroup_file(&name, cg, "cpu", "cpu.cfs_quota_us")
                .unwrap(),
            "50000"
        );
    }
    if cg.get("pids").is_some() {
        assert_eq!(
            lxc.cgroup_file(&name, cg, "pids", "pids.max").unwrap(),
            "32"
        );
    }
    // attach-run: a command inside the running container.
    let out = lxc
        .attach_run(
            &name,
            &["/bin/cat", "/srv/www/index.html"],
            Duration::from_secs(10),
        )
        .unwrap();
    assert!(
        out.success() && out.stdout.contains("Hello from nuvol"),
        "{out:?}"
    );
    let status = env.apps.status(&name).unwrap();
    assert!(status.memory_bytes.unwrap_or(0) > 0, "{status:?}");

    let started = Instant::now();
    let view = env.apps.stop(&name).expect("stop");
    let stop_time = started.elapsed();
    assert_eq!(view.state, "STOPPED");
    assert!(page(PUBLISHED).is_none(), "nothing answers once stopped");
    assert!(
        stop_time < Duration::from_secs(15),
        "SIGTERM stops the app at once, not after the 30 s grace: {stop_time:?}"
    );

    env.apps.uninstall(&name).expect("uninstall");
    assert_eq!(
        env.lxcpath_entries(),
        Vec::<String>::new(),
        "uninstall leaves nothing in the lxcpath"
    );
    assert!(env.apps.list().is_empty());
    let table = Command::new("nft")
        .args(["list", "table", "ip", &env.apps.settings.nft_table])
        .output()
        .unwrap();
    assert!(
        !table.status.success(),
        "the forward table is gone with the last app"
    );
    eprintln!("measured: install {install_time:?}, start to first HTTP answer {start_time:?}, stop {stop_time:?}");
}

/// Writes `text` as template `name` into `dir`.
fn template(dir: &Path, name: &str, text: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(format!("{name}.app")), text).unwrap();
}

const HEAD: &str = "config template\n\toption description 'test'\n\toption version '1'\n\toption source 'busybox'\n";

#[test]
fn bad_manifests_are_refused_naming_the_field_and_leave_nothing_behind() {
    require_lxc!();
    enter_private_network();
    let env = Env::new("bad", None);
    let tdir = env.templates().to_path_buf();
    let held = TcpListener::bind("0.0.0.0:0").unwrap();
    let busy = held.local_addr().unwrap().port();

    let cases: Vec<(&str, String, &str)> = vec![
        ("unknown", format!("{HEAD}\toption name 'unknown'\n\tlist architecture 'all'\n\toption memroy '16M'\n"), "memroy"),
        ("missing", format!("{HEAD}\toption name 'missing'\n"), "architecture"),
        ("wrongtype", format!("{HEAD}\toption name 'wrongtype'\n\tlist architecture 'all'\n\toption memory 'plenty'\n"), "memory"),
        (
            "otherarch",
            "config template\n\toption name 'otherarch'\n\toption description 'd'\n\toption version '1'\n\tlist architecture 'mips'\n\toption source 'download'\n\toption dist 'alpine'\n\toption release '3.19'\n".into(),
            "architecture",
        ),
        ("portbusy", format!("{HEAD}\toption name 'portbusy'\n\tlist architecture 'all'\n\tlist port '80:{busy}'\n"), "port"),
    ];
    for (name, text, field) in &cases {
        template(&tdir, name, text);
        let err = env.apps.install(name, "").expect_err(name);
        let msg = err.to_string();
        match &err {
            nuvol_lxc::apps::AppError::Manifest { error, .. } => {
                assert_eq!(&error.field, field, "{msg}")
            }
            other => panic!("{name}: expected a manifest error naming {field}, got {other}"),
        }
        assert!(msg.contains("line "), "{msg}");
        assert_eq!(err.exit_code(), 100);
        assert!(
            env.lxcpath_entries().is_empty(),
            "{name} left {:?}",
            env.lxcpath_entries()
        );
    }

    // A failure after the container exists (a setup step fails) rolls back.
    template(&tdir, "setupfails", &format!("{HEAD}\toption name 'setupfails'\n\tlist architecture 'all'\n\tlist port '80:8080'\n\tlist setup 'touch /made-it'\n\tlist setup 'exit 3'\n"));
    let name = unique("rb");
    let err = env
        .apps
        .install("setupfails", &name)
        .expect_err("setup fails");
    assert!(err.to_string().contains("exit 3"), "{err}");
    assert!(
        env.lxcpath_entries().is_empty(),
        "rollback left {:?}",
        env.lxcpath_entries()
    );
    let table = Command::new("nft")
        .args(["list", "table", "ip", &env.apps.settings.nft_table])
        .output()
        .unwrap();
    assert!(!table.status.success(), "rollback removes the forwards");

    // Installing twice under one name is refused without touching the first.
    template(
        &tdir,
        "plain",
        &format!("{HEAD}\toption name 'plain'\n\tlist architecture 'all'\n"),
    );
    let name = unique("twice");
    env.apps.install("plain", &name).unwrap();
    let err = env.apps.install("plain", &name).unwrap_err();
    assert!(
        matches!(err, nuvol_lxc::apps::AppError::AlreadyInstalled(_)),
        "{err}"
    );
    assert!(env.apps.status(&name).is_ok());
    env.apps.uninstall(&name).unwrap();
    assert!(env.lxcpath_entries().is_empty());
    drop(held);
}

#[test]
fn a_local_rootfs_tarball_becomes_a_running_app() {
    require_lxc!();
    enter_private_network();
    let env = Env::new("tar", None);
    let tdir = env.templates().to_path_buf();
    let tree = env.dir.join("tree");
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap();
    sh(&format!(
        "mkdir -p {t}/bin {t}/proc {t}/sys {t}/dev {t}/tmp {t}/etc {t}/srv && cp {busybox} {t}/bin/busybox && \
         for a in sh httpd sleep kill; do ln -s busybox {t}/bin/$a; done && echo rootfs-ok > {t}/srv/index.html && \
         mkdir -p {d} && tar -C {t} -czf {d}/rootfs.tar.gz .",
        t = tree.display(),
        d = tdir.display()
    ));
    template(
        &tdir,
        "tarball",
        &format!(
            "config template\n\toption name 'tarball'\n\toption description 'd'\n\toption version '1'\n\tlist architecture 'all'\n\
             \toption source 'rootfs'\n\toption rootfs '{}/rootfs.tar.gz'\n\toption command 'exec httpd -f -p 80 -h /srv'\n\tlist port '80:8080'\n",
            tdir.display()
        ),
    );
    let name = unique("tar");
    env.apps
        .install("tarball", &name)
        .expect("install from a tarball");
    env.apps.start(&name).expect("start");
    wait_for("the tarball's page", Duration::from_secs(15), || {
        page(PUBLISHED).is_some_and(|b| b.contains("rootfs-ok"))
    });
    env.apps.uninstall(&name).unwrap();
    assert!(env.lxcpath_entries().is_empty());
}

#[test]
fn host_networking_publishes_the_container_port_on_the_node_itself() {
    require_lxc!();
    enter_private_network();
    let mut env = Env::new("host", None);
    env.apps.settings.network = nuvol_lxc::net::Mode::Host;
    env.apps.settings.forward = false;
    let tdir = env.templates().to_path_buf();
    template(
        &tdir,
        "hostweb",
        &format!(
            "{HEAD}\toption name 'hostweb'\n\tlist architecture 'all'\n\toption command 'echo host-ok > /tmp/index.html; exec httpd -f -p 8099 -h /tmp'\n\tlist port '8099:9999'\n\toption health 'exec:test -f /tmp/index.html'\n"
        ),
    );
    let name = unique("host");
    let view = env.apps.install("hostweb", &name).expect("install");
    assert_eq!(
        view.ports,
        vec![(8099, 8099)],
        "host networking cannot remap a port"
    );
    env.apps.start(&name).expect("start");
    let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8099);
    wait_for(
        "the page on the node's own port",
        Duration::from_secs(15),
        || page(local).is_some_and(|b| b.contains("host-ok")),
    );
    let check = env.apps.check(&name).unwrap().expect("exec check");
    assert!(
        matches!(check, Check::Exec(ref argv) if argv[0] == "lxc-attach"),
        "{check:?}"
    );
    assert!(
        check.run(Duration::from_secs(10)),
        "the exec check runs inside the container"
    );
    // Its port is now taken on the node: a second copy is refused, naming the field.
    let err = env.apps.install("hostweb", &unique("hosttwo")).unwrap_err();
    assert!(
        err.to_string()
            .contains(": port: 8099/tcp is already in use"),
        "{err}"
    );
    env.apps.uninstall(&name).unwrap();
    assert!(env.lxcpath_entries().is_empty());
}

#[test]
fn on_a_lan_bridge_the_address_comes_from_dhcp_and_is_published() {
    require_lxc!();
    enter_private_network();
    let mut env = Env::new("dhcp", Some(&shipped_templates()));
    env.apps.settings.subnet = None;
    env.apps.settings.forward = false;
    // The LAN's DHCP server (dnsmasq on OpenWRT): busybox udhcpd on the test bridge.
    let conf = env.dir.join("udhcpd.conf");
    std::fs::write(
        &conf,
        format!(
            "start 10.213.0.100\nend 10.213.0.150\ninterface nvbr0\nlease_file {}\noption subnet 255.255.255.0\noption router 10.213.0.1\n",
            env.dir.join("leases").display()
        ),
    )
    .unwrap();
    std::fs::write(env.dir.join("leases"), "").unwrap();
    let mut dhcpd = Command::new("busybox")
        .args(["udhcpd", "-f"])
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("udhcpd runs");

    let name = unique("dhcp");
    let view = env.apps.install("website", &name).expect("install");
    assert!(view.ips.is_empty(), "no static address: {view:?}");
    env.apps.start(&name).expect("start");
    let mut ip = None;
    wait_for("a DHCP lease", Duration::from_secs(20), || {
        ip = env
            .apps
            .status(&name)
            .unwrap()
            .ips
            .into_iter()
            .find(|i| i.starts_with("10.213.0.1"));
        ip.is_some()
    });
    let ip: Ipv4Addr = ip.unwrap().parse().unwrap();
    assert_eq!(
        env.apps.publish_ip(&name).unwrap(),
        Some(IpAddr::V4(ip)),
        "the record carries the container's own address"
    );
    let addr = SocketAddr::new(IpAddr::V4(ip), 80);
    assert_eq!(
        env.apps.check(&name).unwrap(),
        Some(Check::Http {
            addr,
            path: "/".into()
        })
    );
    wait_for(
        "the page on the leased address",
        Duration::from_secs(15),
        || page(addr).is_some(),
    );
    env.apps.uninstall(&name).unwrap();
    let _ = dhcpd.kill();
    let _ = dhcpd.wait();
    assert!(env.lxcpath_entries().is_empty());
}
