//! Real processes under a real [`Supervisor`]: restarts, SIGTERM/SIGKILL,
//! rlimits and accounts seen from inside the child, health checks against a
//! real TCP server, re-adoption after the agent dies, bad definitions.
//!
//! Every wait is bounded; temp directories are per test.
#![cfg(feature = "os")]

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use nuvol_control::{Health, InstanceView};
use nuvol_supervise::os::{self, Notice, Options, Supervisor};
use nuvol_supervise::policy::{HealthTiming, PublishRecord, Respawn};
use nuvol_supervise::service::{Limit, Probe, Resource, ServiceDef};

/// A per-test directory, removed when the test ends.
struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(test: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("nuvol-supervise-{test}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

fn sh(name: &str, script: &str) -> ServiceDef {
    ServiceDef::new(name, vec!["/bin/sh".into(), "-c".into(), script.into()])
}

/// Polls `cond` every 20 ms until it holds or `limit` passes.
fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    cond()
}

fn status(sup: &Supervisor, name: &str) -> InstanceView {
    sup.status(name).expect("service exists")
}

fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s[s.rfind(')').unwrap() + 1..].split_whitespace().next();
            !matches!(state, Some("Z" | "X") | None)
        })
        .unwrap_or(false)
}

fn supervise(dir: &Path, defs: Vec<ServiceDef>) -> (Supervisor, Receiver<Notice>) {
    let (tx, rx) = mpsc::channel();
    let sup = Supervisor::spawn(Options::new(dir.join("state")), defs, move |n| {
        let _ = tx.send(n);
    })
    .expect("supervisor starts");
    (sup, rx)
}

#[test]
fn service_exiting_at_once_is_restarted_retry_times_then_failed() {
    let dir = temp_dir("crashloop");
    let mut def = sh("crashloop", "echo started; exit 3");
    def.policy.respawn = Some(Respawn {
        threshold: Duration::from_secs(10),
        timeout: Duration::ZERO,
        retry: 2,
    });
    let started = Instant::now();
    let (sup, _) = supervise(&dir, vec![def]);
    assert!(
        wait_until(Duration::from_secs(10), || status(&sup, "crashloop").state
            == "failed"),
        "still {:?}",
        status(&sup, "crashloop")
    );
    let elapsed = started.elapsed();
    let view = status(&sup, "crashloop");
    assert_eq!(view.restarts, 2);
    assert_eq!(view.pid, None);
    let logs = sup.logs("crashloop", 100).unwrap();
    assert_eq!(
        logs.iter().filter(|l| *l == "started").count(),
        3,
        "{logs:?}"
    );
    // Three spawns at least a second apart: never a tight fork loop.
    assert!(elapsed >= Duration::from_millis(1900), "{elapsed:?}");
    // Failed stays failed: no spawn after the verdict.
    thread::sleep(Duration::from_millis(1200));
    assert_eq!(sup.logs("crashloop", 100).unwrap().len(), logs.len());
    sup.shutdown();
}

#[test]
fn service_ignoring_sigterm_is_killed_after_term_timeout() {
    let dir = temp_dir("stubborn");
    let mut def = sh(
        "stubborn",
        "trap '' TERM; echo ready; while :; do sleep 0.1; done",
    );
    def.policy.term_timeout = Duration::from_secs(1);
    let (sup, _) = supervise(&dir, vec![def]);
    assert!(wait_until(Duration::from_secs(5), || sup
        .logs("stubborn", 10)
        .unwrap()
        .contains(&"ready".to_string())));
    let pid = status(&sup, "stubborn").pid.expect("running");
    let asked = Instant::now();
    sup.stop("stubborn").unwrap();
    assert!(wait_until(Duration::from_secs(5), || status(
        &sup, "stubborn"
    )
    .state
        == "stopped"));
    let took = asked.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "stopped after {took:?}: SIGTERM was not ignored?"
    );
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert!(!alive(pid), "pid {pid} survived SIGKILL");
    sup.shutdown();
}

#[test]
fn child_sees_its_nofile_limit_user_dir_and_env() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: switching to user nobody needs root");
        return;
    }
    let dir = temp_dir("limits");
    let work = dir.join("work");
    fs::create_dir_all(&work).unwrap();
    let mut def = sh(
        "limits",
        "echo \"nofile=$(ulimit -n) uid=$(id -u) user=$USER pwd=$(pwd) greeting=$GREETING\"; sleep 30",
    );
    def.user = Some("nobody".into());
    def.dir = Some(work.display().to_string());
    def.env.push(("GREETING".into(), "hello world".into()));
    def.limits.push(Limit {
        resource: Resource::Nofile,
        soft: Some(123),
        hard: Some(123),
    });
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let (sup, _) = supervise(&dir, vec![def]);
    let mut line = String::new();
    assert!(wait_until(Duration::from_secs(5), || {
        line = sup.logs("limits", 10).unwrap().join("\n");
        line.contains("nofile=")
    }));
    assert_eq!(
        line,
        format!(
            "nofile=123 uid={} user=nobody pwd={} greeting=hello world",
            nobody.uid,
            work.display()
        )
    );
    sup.shutdown();
}

fn health_checked(name: &str, port: u16) -> ServiceDef {
    let mut def = sh(name, "exec sleep 60");
    def.probe = Some(Probe::Tcp {
        host: "127.0.0.1".into(),
        port,
    });
    def.policy.health = Some(HealthTiming {
        interval: Duration::from_millis(200),
        timeout: Duration::from_millis(500),
        failures: 2,
        successes: 1,
    });
    def.policy.publish = Some(PublishRecord {
        service_type: "http".into(),
        port,
        description: "test web".into(),
        txt: vec![("path".into(), "/".into())],
    });
    def
}

#[test]
fn tcp_health_check_flips_healthy_and_publishes_and_unpublishes() {
    let dir = temp_dir("health");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (sup, notices) = supervise(&dir, vec![health_checked("health", port)]);

    let up = notices
        .recv_timeout(Duration::from_secs(5))
        .expect("published");
    match &up {
        Notice::Publish { service, record } => {
            assert_eq!(service, "health");
            assert_eq!((record.service_type.as_str(), record.port), ("http", port));
        }
        other => panic!("expected a publish, got {other:?}"),
    }
    let view = status(&sup, "health");
    assert_eq!((view.health, view.published), (Health::Healthy, true));

    let went_down = Instant::now();
    drop(listener);
    let down = notices
        .recv_timeout(Duration::from_secs(5))
        .expect("unpublished");
    assert!(matches!(down, Notice::Unpublish { .. }), "{down:?}");
    assert!(went_down.elapsed() < Duration::from_secs(4));
    let view = status(&sup, "health");
    assert_eq!((view.health, view.published), (Health::Unhealthy, false));
    assert_eq!(
        view.state, "running",
        "unhealthy is not a reason to restart"
    );

    let _back = TcpListener::bind(("127.0.0.1", port)).expect("port is free again");
    let up = notices
        .recv_timeout(Duration::from_secs(5))
        .expect("published again");
    assert!(matches!(up, Notice::Publish { .. }), "{up:?}");

    // Stopping withdraws the record before the process is gone.
    sup.stop("health").unwrap();
    let down = notices
        .recv_timeout(Duration::from_secs(5))
        .expect("unpublished on stop");
    assert!(matches!(down, Notice::Unpublish { .. }), "{down:?}");
    sup.shutdown();
}

#[test]
fn http_health_check_expects_the_configured_status() {
    let dir = temp_dir("http");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        use std::io::{Read, Write};
        // Answers 204 to the first three probes, then 500: healthy, then not.
        for (n, stream) in listener.incoming().take(8).enumerate() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf);
            let status = if n < 3 { "204 No Content" } else { "500 Oops" };
            let _ = write!(s, "HTTP/1.0 {status}\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let mut def = health_checked("http", port);
    def.probe = Some(Probe::Http {
        host: "127.0.0.1".into(),
        port,
        path: "/health".into(),
        status: 204,
    });
    let (sup, notices) = supervise(&dir, vec![def]);
    let up = notices
        .recv_timeout(Duration::from_secs(5))
        .expect("published");
    assert!(matches!(up, Notice::Publish { .. }), "{up:?}");
    let down = notices
        .recv_timeout(Duration::from_secs(5))
        .expect("unpublished");
    assert!(matches!(down, Notice::Unpublish { .. }), "{down:?}");
    sup.shutdown();
    // The server thread may still wait for a probe that will never come; it
    // ends with the test process.
    drop(server);
}

fn counting(name: &str, dir: &Path) -> ServiceDef {
    let starts = dir.join("starts");
    sh(
        name,
        &format!("echo $$ >> '{}'; exec sleep 60", starts.display()),
    )
}

fn starts(dir: &Path) -> usize {
    fs::read_to_string(dir.join("starts"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[test]
fn fresh_supervisor_adopts_the_child_a_detached_one_left_running() {
    let dir = temp_dir("adopt");
    let (sup, _) = supervise(&dir, vec![counting("adopt", &dir)]);
    assert!(wait_until(Duration::from_secs(5), || starts(&dir) == 1));
    let pid = status(&sup, "adopt").pid.expect("running");
    sup.detach();
    assert!(alive(pid), "detaching must leave the service running");

    let (sup, _) = supervise(&dir, vec![counting("adopt", &dir)]);
    let view = status(&sup, "adopt");
    assert_eq!((view.state.as_str(), view.pid), ("running", Some(pid)));
    thread::sleep(Duration::from_millis(1500));
    assert_eq!(starts(&dir), 1, "started twice");

    // The adopted process is not our child: its exit still reaches the policy.
    sup.stop("adopt").unwrap();
    assert!(wait_until(Duration::from_secs(8), || status(&sup, "adopt")
        .state
        == "stopped"));
    sup.shutdown();
    // It was this test process's child before the adoption: reap the zombie.
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid as i32), None);
}

#[test]
fn shutdown_except_stops_services_and_leaves_apps_for_the_next_supervisor() {
    let dir = temp_dir("except");
    let (sup, _) = supervise(
        &dir,
        vec![sh("plain", "exec sleep 60"), sh("app-web", "exec sleep 60")],
    );
    assert!(wait_until(Duration::from_secs(5), || {
        status(&sup, "plain").pid.is_some() && status(&sup, "app-web").pid.is_some()
    }));
    assert_eq!(status(&sup, "app-web").kind, "app");
    assert_eq!(status(&sup, "plain").kind, "service");
    let plain = status(&sup, "plain").pid.unwrap();
    let app = status(&sup, "app-web").pid.unwrap();
    sup.shutdown_except(|name| name.starts_with("app-"));
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(plain as i32), None);
    assert!(
        !alive(plain),
        "the plain service must stop with the supervisor"
    );
    assert!(alive(app), "the app must keep running");

    let (sup, _) = supervise(&dir, vec![sh("app-web", "exec sleep 60")]);
    assert_eq!(
        status(&sup, "app-web").pid,
        Some(app),
        "adopted, not restarted"
    );
    sup.shutdown();
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(app as i32), None);
}

/// Runs as a separate process for the kill -9 test: a supervisor that never
/// exits on its own. Does nothing in a normal test run.
#[test]
fn helper_agent_process() {
    let Ok(dir) = std::env::var("NUVOL_SUPERVISE_HELPER_DIR") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let (_sup, _) = supervise(&dir, vec![counting("killed", &dir)]);
    thread::sleep(Duration::from_secs(60));
}

#[test]
fn kill_9_of_the_agent_does_not_duplicate_the_service() {
    let dir = temp_dir("kill9");
    let mut agent = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "helper_agent_process", "--nocapture"])
        .env("NUVOL_SUPERVISE_HELPER_DIR", dir.as_os_str())
        .spawn()
        .unwrap();
    let record = dir.join("state").join("killed.pid");
    assert!(wait_until(Duration::from_secs(10), || record.exists()
        && starts(&dir) == 1));
    let pid: u32 = fs::read_to_string(&record)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    agent.kill().unwrap(); // SIGKILL
    agent.wait().unwrap();
    assert!(alive(pid), "the service died with its agent");

    let (sup, _) = supervise(&dir, vec![counting("killed", &dir)]);
    assert_eq!(status(&sup, "killed").pid, Some(pid));
    // Output written while no agent was listening is not lost, and the
    // service never got SIGPIPE.
    thread::sleep(Duration::from_millis(1500));
    assert_eq!(starts(&dir), 1, "started twice");
    assert!(alive(pid));
    sup.shutdown();
    assert!(wait_until(Duration::from_secs(3), || !alive(pid)));
}

#[test]
fn bad_definitions_are_reported_and_the_good_one_still_starts() {
    let dir = temp_dir("baddefs");
    let services = dir.join("services.d");
    fs::create_dir_all(&services).unwrap();
    fs::write(
        services.join("broken"),
        "config service 'olduser'\n\toption command 'sleep 30'\n\toption user 'no-such-user-nuvol'\n",
    )
    .unwrap();
    fs::write(services.join("garbage"), "config service 'x\n").unwrap();
    let cfg = nuvol_uci::parse(
        "config agent 'main'

config service 'typo'
	option command 'sleep 30'
	option comand 'x'

config service 'nocmd'
	option dir '/'

config service 'good'
	option command 'sleep 30'
",
    )
    .unwrap();
    let loaded = os::load(Some((&cfg, "/etc/config/nuvol")), Some(&services));
    let errors: Vec<String> = loaded.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert_eq!(
        errors[0],
        "/etc/config/nuvol: line 5: service 'typo': unknown option 'comand'"
    );
    assert_eq!(
        errors[1],
        "/etc/config/nuvol: line 7: service 'nocmd': missing command"
    );
    assert!(
        errors[2].contains("garbage: line 1: service 'garbage'"),
        "{}",
        errors[2]
    );
    assert!(
        errors[3].ends_with(
            "broken: line 3: service 'olduser': bad user 'no-such-user-nuvol': no such account"
        ),
        "{}",
        errors[3]
    );
    let names: Vec<_> = loaded.services.iter().map(|d| d.name.clone()).collect();
    assert_eq!(names, ["good"]);
    let (sup, _) = supervise(&dir, loaded.services);
    assert!(wait_until(Duration::from_secs(5), || status(&sup, "good")
        .state
        == "running"));
    sup.shutdown();
}

#[test]
fn instance_gets_its_own_cgroup_with_a_memory_limit_when_writable() {
    if let Err(why) = os::cgroup_support() {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = temp_dir("cgroup");
    // Unique per test process: cgroups are shared by the whole host.
    let name = format!("cgtest-{}", std::process::id());
    let mut def = sh(&name, "exec sleep 30");
    def.memory = Some(64 << 20);
    let (sup, _) = supervise(&dir, vec![def]);
    assert!(wait_until(Duration::from_secs(5), || status(&sup, &name)
        .pid
        .is_some()));
    let pid = status(&sup, &name).pid.unwrap();
    let groups = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let line = groups
        .lines()
        .find(|l| l.ends_with(&format!("/nuvol/{name}")))
        .unwrap_or_else(|| panic!("not in its own cgroup: {groups}"));
    let rel = line.splitn(3, ':').nth(2).unwrap().trim_start_matches('/');
    let ctrls = line.split(':').nth(1).unwrap();
    let limit = if ctrls.is_empty() {
        fs::read_to_string(Path::new("/sys/fs/cgroup").join(rel).join("memory.max"))
    } else if ctrls.split(',').any(|c| c == "memory") {
        fs::read_to_string(
            Path::new("/sys/fs/cgroup/memory")
                .join(rel)
                .join("memory.limit_in_bytes"),
        )
    } else {
        let mem = groups.lines().find(|l| l.contains(":memory:")).unwrap();
        let rel = mem.splitn(3, ':').nth(2).unwrap().trim_start_matches('/');
        fs::read_to_string(
            Path::new("/sys/fs/cgroup/memory")
                .join(rel)
                .join("memory.limit_in_bytes"),
        )
    };
    assert_eq!(limit.unwrap().trim(), (64u64 << 20).to_string());
    sup.shutdown();
}

#[test]
fn restart_and_reload_reach_the_process() {
    let dir = temp_dir("reload");
    let def = sh(
        "reload",
        "trap 'echo reloaded' HUP; echo up; while :; do sleep 0.1; done",
    );
    let (sup, _) = supervise(&dir, vec![def]);
    assert!(wait_until(Duration::from_secs(5), || sup
        .logs("reload", 10)
        .unwrap()
        .contains(&"up".into())));
    let first = status(&sup, "reload").pid.unwrap();
    sup.reload("reload").unwrap();
    assert!(wait_until(Duration::from_secs(5), || sup
        .logs("reload", 10)
        .unwrap()
        .contains(&"reloaded".into())));
    assert_eq!(
        status(&sup, "reload").pid,
        Some(first),
        "reload must not restart"
    );
    sup.restart("reload").unwrap();
    assert!(wait_until(Duration::from_secs(8), || {
        let v = status(&sup, "reload");
        v.state == "running" && v.pid.is_some_and(|p| p != first)
    }));
    assert_eq!(status(&sup, "reload").restarts, 1);
    assert!(matches!(
        sup.start("nope"),
        Err(os::Error::UnknownService(_))
    ));
    sup.shutdown();
}

#[test]
fn apply_starts_new_stops_removed_and_restarts_changed_services() {
    let dir = temp_dir("apply");
    let keep = sh("apply-keep", "exec sleep 60");
    let gone = sh("apply-gone", "exec sleep 60");
    let (sup, _) = supervise(&dir, vec![keep.clone(), gone.clone()]);
    let running = |sup: &Supervisor, n: &str| status(sup, n).state == "running";
    assert!(wait_until(Duration::from_secs(5), || running(
        &sup,
        "apply-keep"
    ) && running(
        &sup,
        "apply-gone"
    )));
    let keep_pid = status(&sup, "apply-keep").pid;
    let gone_pid = status(&sup, "apply-gone").pid.unwrap();

    let mut changed_policy = keep.clone();
    changed_policy.policy.term_timeout = Duration::from_secs(2);
    let new = sh("apply-new", "echo on stderr >&2; exec sleep 60");
    sup.apply(vec![changed_policy.clone(), new]).unwrap();
    assert!(wait_until(Duration::from_secs(5), || running(
        &sup,
        "apply-new"
    )));
    assert!(wait_until(Duration::from_secs(5), || sup
        .status("apply-gone")
        .is_err()));
    assert!(!alive(gone_pid));
    assert_eq!(
        status(&sup, "apply-keep").pid,
        keep_pid,
        "a policy change alone does not restart"
    );
    assert!(wait_until(Duration::from_secs(5), || sup
        .logs("apply-new", 5)
        .unwrap()
        .contains(&"on stderr".to_string())));

    let mut changed_command = changed_policy;
    changed_command.command = vec!["sleep".into(), "61".into()];
    sup.apply(vec![
        changed_command,
        sh("apply-new", "echo on stderr >&2; exec sleep 60"),
    ])
    .unwrap();
    assert!(wait_until(Duration::from_secs(8), || {
        let v = status(&sup, "apply-keep");
        v.state == "running" && v.pid != keep_pid
    }));
    let names: Vec<_> = sup.list().unwrap().into_iter().map(|v| v.name).collect();
    assert_eq!(names, ["apply-keep", "apply-new"]);
    sup.shutdown();
}

#[test]
fn exec_health_check_runs_as_the_service_user() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: switching to user nobody needs root");
        return;
    }
    let dir = temp_dir("execprobe");
    let mut def = health_checked("execprobe", 1);
    def.user = Some("nobody".into());
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    def.probe = Some(Probe::Exec {
        command: vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("test \"$(id -u)\" = {}", nobody.uid),
        ],
    });
    let (sup, notices) = supervise(&dir, vec![def]);
    let up = notices
        .recv_timeout(Duration::from_secs(5))
        .expect("published: the probe ran as nobody");
    assert!(matches!(up, Notice::Publish { .. }), "{up:?}");
    sup.shutdown();
}
