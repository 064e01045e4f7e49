//! Real containers on this host: the shipped offline template installed,
//! started, reached over HTTP through its published (DNATed) address, limited
//! by its cgroup, restarted by the supervisor policy when its init is killed,
//! adopted (not restarted) after an agent restart, stopped and uninstalled
//! without leaving anything behind.
//!
//! Each test runs in its own network namespace (the test thread unshares
//! one; every `lxc-*`, `ip` and `nft` it spawns inherits it), with its own
//! bridge, subnet, nftables table and lxcpath, so the host's network and its
//! own containers are never touched. Tests need root and the LXC tools; when
//! they are missing each test says why and passes without running
//! (`tests/suite/lxc-live.sh` turns that into exit 77).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nuvol_lxc::apps::{http_get, Apps, Check, Settings};
use nuvol_lxc::driver::State;
use nuvol_lxc::host::{HostFacts, Need};
use nuvol_lxc::net::Mode;
use nuvol_supervise::policy::{
    Action, Event, ExitStatus, HealthTiming, Instance, PublishRecord, Respawn, Signal,
};

/// Why these tests cannot run here, if they cannot.
fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (LXC containers, network namespaces)".into());
    }
    let problems = HostFacts::gather(Path::new("/usr/share/lxc/templates")).check(&[
        Need::Core,
        Need::Busybox,
        Need::Memory,
        Need::Forward,
    ]);
    if !problems.is_empty() {
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Some(text.join("; "));
    }
    None
}

macro_rules! require_lxc {
    () => {
        if let Some(why) = skip_reason() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

fn sh(cmd: &str) {
    let out = Command::new("/bin/sh")
        .args(["-c", cmd])
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Moves this test thread into a fresh network namespace with a bridge
/// `nvbr0` at 10.213.0.1/24. The namespace dies with the thread's last user.
///
/// LXC checks bridges under `/sys/class/net`, and sysfs shows the network
/// namespace of whoever mounted it, so the thread also gets its own mount
/// namespace where a sysfs mounted from the new network namespace is bound
/// over the two net directories (the rest of /sys, cgroups included, stays).
fn enter_private_network() {
    // SAFETY: unshare only changes this thread's namespaces.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET | libc::CLONE_NEWNS) };
    assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
    let sys = std::env::temp_dir().join(format!(
        "nuvol-lxc-sys-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let sys = sys.to_string_lossy().replace(['(', ')'], "");
    sh(&format!(
        "mount --make-rprivate / && mkdir -p {sys} && mount -t sysfs sysfs {sys} && \
         mount --bind {sys}/class/net /sys/class/net && mount --bind {sys}/devices/virtual/net /sys/devices/virtual/net && \
         umount -l {sys} && rmdir {sys}"
    ));
    sh("ip link set lo up && ip link add nvbr0 type bridge && ip addr add 10.213.0.1/24 dev nvbr0 && ip link set nvbr0 up");
}

/// An lxcpath and settings of one test; destroys whatever is left on drop,
/// so a failing assertion does not leave containers running.
struct Env {
    dir: PathBuf,
    apps: Apps,
}

impl Env {
    /// `templates`: the shipped ones, or `None` for a directory of the test's own.
    fn new(tag: &str, templates: Option<&Path>) -> Env {
        let dir = std::env::temp_dir().join(format!("nuvol-lxc-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let templates = templates
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.join("templates"));
        let mut s = Settings::new(dir.join("lxc"), templates);
        s.network = Mode::Bridge("nvbr0".into());
        s.subnet = Some("10.213.0.0/24".parse().unwrap());
        s.forward = true;
        s.nft_table = format!("nuvoltest{tag}");
        s.stop_grace = Duration::from_secs(5);
        Env {
            dir,
            apps: Apps::new(s),
        }
    }

    fn templates(&self) -> &Path {
        &self.apps.settings.templates
    }

    fn lxcpath_entries(&self) -> Vec<String> {
        std::fs::read_dir(&self.apps.settings.lxcpath)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for name in self.apps.lxc.list() {
            let _ = self.apps.lxc.destroy(&name);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn shipped_templates() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("templates")
}

/// A container name unique on this host: cgroups are named after containers
/// whatever their lxcpath, so two test runs must not share one.
fn unique(prefix: &str) -> String {
    format!("{prefix}{}", std::process::id())
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

const PUBLISHED: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 213, 0, 1)), 8080);

fn page(addr: SocketAddr) -> Option<String> {
    http_get(addr, "/", Duration::from_secs(2))
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
}

#[test]
fn website_installs_answers_on_its_published_port_and_uninstalls_without_trace() {
    require_lxc!();
    enter_private_network();
    let env = Env::new("web", Some(&shipped_templates()));
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
    let status = env.apps.status(&name).unwrap();
    assert!(status.memory_bytes.unwrap_or(0) > 0, "{status:?}");

    let started = Instant::now();
    let view = env.apps.stop(&name).expect("stop");
    let stop_time = started.elapsed();
    assert_eq!(view.state, "STOPPED");
    assert!(page(PUBLISHED).is_none(), "nothing answers once stopped");
    assert!(
        stop_time < Duration::from_secs(4),
        "SIGTERM stops the app at once, not after the grace: {stop_time:?}"
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

/// The agent side of the supervisor, reduced to what this test needs: spawn
/// in a new process group, signal groups, reap, fire timers, run probes.
struct MiniShell {
    inst: Instance,
    command: Vec<String>,
    child: Option<Child>,
    t0: Instant,
    check: Option<Check>,
    published: Option<PublishRecord>,
    spawns: u32,
}

impl MiniShell {
    fn new(inst: Instance, command: Vec<String>, check: Option<Check>) -> MiniShell {
        MiniShell {
            inst,
            command,
            child: None,
            t0: Instant::now(),
            check,
            published: None,
            spawns: 0,
        }
    }

    fn handle(&mut self, e: Event) {
        let now = self.t0.elapsed();
        self.inst.handle(now, e);
        self.pump();
    }

    fn pump(&mut self) {
        while let Some(a) = self.inst.poll_action() {
            let now = self.t0.elapsed();
            match a {
                Action::Spawn => {
                    let spawned = Command::new(&self.command[0])
                        .args(&self.command[1..])
                        .stdin(Stdio::null())
                        .process_group(0)
                        .spawn();
                    match spawned {
                        Ok(c) => {
                            self.spawns += 1;
                            let pid = c.id();
                            self.child = Some(c);
                            self.inst.handle(now, Event::Spawned { pid });
                        }
                        Err(_) => self.inst.handle(now, Event::SpawnFailed),
                    }
                }
                Action::Signal { pid, signal, group } => {
                    let sig = match signal {
                        Signal::Kill => libc::SIGKILL,
                        Signal::Hup => libc::SIGHUP,
                        _ => libc::SIGTERM,
                    };
                    let target = if group { -(pid as i32) } else { pid as i32 };
                    // SAFETY: kill has no memory-safety preconditions.
                    unsafe { libc::kill(target, sig) };
                }
                Action::RunHealthCheck { token } => {
                    let healthy = self
                        .check
                        .as_ref()
                        .is_some_and(|c| c.run(Duration::from_secs(2)));
                    self.inst
                        .handle(now, Event::HealthResult { token, healthy });
                }
                Action::Publish(r) => self.published = Some(r),
                Action::Unpublish(_) => self.published = None,
                Action::Log { .. } => {}
            }
        }
    }

    fn step(&mut self) {
        if let Some(c) = &mut self.child {
            if let Ok(Some(st)) = c.try_wait() {
                use std::os::unix::process::ExitStatusExt;
                let pid = c.id();
                let status = match (st.code(), st.signal()) {
                    (Some(code), _) => ExitStatus::Code(code),
                    (None, Some(sig)) => ExitStatus::Signaled(sig),
                    _ => ExitStatus::Unknown,
                };
                self.child = None;
                self.handle(Event::Exited { pid, status });
            }
        }
        if let Some(d) = self.inst.poll_timeout() {
            if self.t0.elapsed() >= d.at {
                self.handle(Event::Timer(d.token));
            }
        }
    }

    fn run_until(
        &mut self,
        what: &str,
        limit: Duration,
        mut ok: impl FnMut(&mut MiniShell) -> bool,
    ) {
        let deadline = Instant::now() + limit;
        while !ok(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            self.step();
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What a crashed agent leaves: its processes die with it (the worst case).
    fn crash(mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(-(c.id() as i32), libc::SIGKILL) };
            let _ = c.wait();
        }
    }
}

#[test]
fn killed_init_is_restarted_by_the_supervisor_and_an_agent_restart_does_not_restart_the_container()
{
    require_lxc!();
    enter_private_network();
    let env = Env::new("sup", Some(&shipped_templates()));
    let name = unique("sup");
    env.apps.install("website", &name).expect("install");

    let mut def = env.apps.service_def(&name).unwrap();
    assert_eq!(def.name, format!("app-{name}"));
    let publish = def.policy.publish.clone().expect("website publishes");
    assert_eq!(
        (publish.service_type.as_str(), publish.port),
        ("http", 8080)
    );
    // Faster than procd's defaults so the test takes seconds.
    def.policy.respawn = Some(Respawn {
        threshold: Duration::from_secs(3600),
        timeout: Duration::from_millis(500),
        retry: 5,
    });
    def.policy.health = Some(HealthTiming {
        interval: Duration::from_millis(500),
        timeout: Duration::from_secs(2),
        failures: 1,
        successes: 1,
    });
    let check = env.apps.check(&name).unwrap();
    let lxc = env.apps.lxc.clone();
    let init_pid = |lxc: &nuvol_lxc::driver::Lxc| {
        lxc.info(&name)
            .ok()
            .filter(|i| i.state == State::Running)
            .and_then(|i| i.pid)
    };

    let mut shell = MiniShell::new(
        Instance::new(&def.name, def.policy.clone()),
        def.command.clone(),
        check.clone(),
    );
    shell.handle(Event::Start);
    shell.run_until(
        "running, healthy and published",
        Duration::from_secs(20),
        |s| s.published.is_some(),
    );
    let first = init_pid(&lxc).expect("container runs");
    assert!(page(PUBLISHED).is_some());

    // Kill the container's init: the watcher sees the container stop and the
    // policy respawns it, which starts the container again.
    let killed_at = Instant::now();
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(first as i32, libc::SIGKILL) };
    shell.run_until("a new init", Duration::from_secs(20), |_| {
        init_pid(&lxc).is_some_and(|p| p != first)
    });
    let recovered = killed_at.elapsed();
    shell.run_until("the page again", Duration::from_secs(20), |_| {
        page(PUBLISHED).is_some()
    });
    assert_eq!(shell.spawns, 2);
    assert_eq!(shell.inst.status().restarts, 1);
    let second = init_pid(&lxc).unwrap();

    // The agent dies with its children; the new agent's supervisor starts
    // the watcher again, which adopts the running container.
    shell.crash();
    assert_eq!(
        init_pid(&lxc),
        Some(second),
        "the container outlives the agent"
    );
    let mut shell = MiniShell::new(
        Instance::new(&def.name, def.policy.clone()),
        def.command.clone(),
        check,
    );
    shell.handle(Event::Start);
    shell.run_until("published again", Duration::from_secs(20), |s| {
        s.published.is_some()
    });
    assert_eq!(
        init_pid(&lxc),
        Some(second),
        "an agent restart does not restart the container"
    );

    // Stop through the supervisor: SIGTERM to the watcher's group stops the container.
    let stopping = Instant::now();
    shell.handle(Event::Stop);
    shell.run_until("stopped", Duration::from_secs(20), |s| {
        s.child.is_none() && s.published.is_none()
    });
    assert_eq!(lxc.state(&name).unwrap(), State::Stopped);
    eprintln!(
        "measured: init killed → new init {recovered:?}; supervised stop {:?}",
        stopping.elapsed()
    );

    env.apps.uninstall(&name).unwrap();
    assert!(env.lxcpath_entries().is_empty());
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
