//! The supervisor thread: one `poll(2)` loop that feeds every instance's
//! [`Instance`] policy with time, commands, exits, output and probe verdicts,
//! and carries out the actions it returns.
//!
//! Wake-ups come from four kinds of descriptors only: the command/probe wake
//! pipe, the SIGCHLD self-pipe, each adopted process's pidfd, and each running
//! instance's output FIFOs. The poll timeout is the earliest policy deadline;
//! with nothing to do the thread sleeps.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal as NixSignal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use nuvol_control::{Health as ViewHealth, InstanceView, PublishSpec};

use super::adopt::{self, Record};
use super::cgroup::{Group, Hierarchy};
use super::output::{LineSplitter, Ring};
use super::probe::{self, Verdict};
use super::reply::{self, Answer};
use super::{sigchld, spawn};
use crate::policy::{Action, Event, ExitStatus, Health, Instance, Level, PublishRecord, Signal};
use crate::service::{Probe, ServiceDef};

/// How the supervisor runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Pid records and output FIFOs. Put it on tmpfs (`/var/run/nuvol/supervise`
    /// on OpenWRT): it is rewritten at every spawn, and after a reboot its
    /// contents are meaningless anyway.
    pub state_dir: PathBuf,
    /// Lines kept per instance for `nuvol service logs`.
    pub log_lines: usize,
    /// Lines of that buffer shown in [`InstanceView::last_log`].
    pub view_lines: usize,
    /// Place instances in cgroups when the hierarchy is writable.
    pub cgroups: bool,
}

impl Options {
    pub fn new(state_dir: impl Into<PathBuf>) -> Options {
        Options {
            state_dir: state_dir.into(),
            log_lines: 200,
            view_lines: 5,
            cgroups: true,
        }
    }
}

/// What the agent must act on: catalog records of healthy instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Publish {
        service: String,
        record: PublishSpec,
    },
    Unpublish {
        service: String,
        record: PublishSpec,
    },
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    UnknownService(String),
    /// The action does not apply to a supervised service (`uninstall`).
    Unsupported(&'static str),
    /// The supervisor thread has ended.
    Gone,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::UnknownService(n) => write!(f, "no service named '{n}'"),
            Error::Unsupported(a) => write!(f, "'{a}' does not apply to a service"),
            Error::Gone => f.write_str("the supervisor has stopped"),
        }
    }
}

impl std::error::Error for Error {}

enum Command {
    Event {
        name: String,
        event: Event,
        reply: Answer<Result<(), Error>>,
    },
    Views {
        name: Option<String>,
        reply: Answer<Result<Vec<InstanceView>, Error>>,
    },
    Logs {
        name: String,
        lines: usize,
        reply: Answer<Result<Vec<String>, Error>>,
    },
    Apply {
        defs: Vec<ServiceDef>,
        reply: Answer<Result<(), Error>>,
    },
    /// A health probe's verdict, from its thread.
    Verdict(Verdict),
    Shutdown {
        stop: bool,
        keep: Box<dyn Fn(&str) -> bool + Send>,
    },
}

/// Requests waiting for the loop: pushed by the handle and by probe threads
/// (each push pokes the wake pipe), taken by the loop. A list behind a mutex
/// rather than a channel, for the reason [`reply`] gives.
#[derive(Clone)]
struct Inbox(Arc<Mutex<Option<Vec<Command>>>>);

impl Inbox {
    fn new() -> Inbox {
        Inbox(Arc::new(Mutex::new(Some(Vec::new()))))
    }

    /// Queues `cmd`; [`Error::Gone`] once the loop has ended.
    fn push(&self, cmd: Command) -> Result<(), Error> {
        let mut queue = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        queue.as_mut().ok_or(Error::Gone)?.push(cmd);
        Ok(())
    }

    /// Everything queued, oldest first.
    fn take(&self) -> Vec<Command> {
        let mut queue = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        queue.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Refuses further requests and drops the queued ones, which answers
    /// their callers with [`Error::Gone`].
    fn close(&self) {
        let queued = self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
        drop(queued);
    }
}

/// Handle to the supervisor thread. All methods are cheap request/answer
/// round trips (the thread answers between two loop turns, in well under a
/// millisecond unless it is busy forking), so they can be called from async
/// code directly or through `smol::unblock`.
pub struct Supervisor {
    inbox: Inbox,
    wake: Arc<OwnedFd>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Supervisor {
    /// Starts the thread: re-adopts instances that outlived a previous agent
    /// (matched by pid and start time), then starts every enabled service
    /// that is not already running. `notify` is called on the supervisor
    /// thread; it must not block (send into a channel).
    pub fn spawn(
        options: Options,
        defs: Vec<ServiceDef>,
        notify: impl FnMut(Notice) + Send + 'static,
    ) -> io::Result<Supervisor> {
        fs::create_dir_all(&options.state_dir)?;
        let (wake_read, wake_write) = super::nonblocking_pipe()?;
        let wake = Arc::new(wake_write);
        let inbox = Inbox::new();
        let sigchld = sigchld::register()?;
        let cgroups = if options.cgroups {
            match Hierarchy::detect() {
                Ok(h) => Some(h),
                Err(why) => {
                    log::info!("supervise: running services without cgroups: {why}");
                    None
                }
            }
        } else {
            None
        };
        let mut lp = Loop {
            options,
            origin: Instant::now(),
            slots: Vec::new(),
            inbox: inbox.clone(),
            wake_read,
            wake: wake.clone(),
            sigchld,
            cgroups,
            notify: Box::new(notify),
            exiting: None,
            stop_deadline: None,
            dying_groups: Vec::new(),
        };
        // The loop keeps its buffers small and on the heap; 256 KiB of stack
        // instead of the default 2 MiB matters on a 64 MB router.
        let thread = thread::Builder::new()
            .name("nuvol-supervise".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                lp.apply(defs, true);
                lp.run();
            })?;
        Ok(Supervisor {
            inbox,
            wake,
            thread: Mutex::new(Some(thread)),
        })
    }

    fn send(&self, cmd: Command) -> Result<(), Error> {
        self.inbox.push(cmd)?;
        poke(&self.wake);
        Ok(())
    }

    fn event(&self, name: &str, event: Event) -> Result<(), Error> {
        let (reply, answer) = reply::slot();
        self.send(Command::Event {
            name: name.into(),
            event,
            reply,
        })?;
        answer.wait().ok_or(Error::Gone)?
    }

    pub fn start(&self, name: &str) -> Result<(), Error> {
        self.event(name, Event::Start)
    }

    pub fn stop(&self, name: &str) -> Result<(), Error> {
        self.event(name, Event::Stop)
    }

    pub fn restart(&self, name: &str) -> Result<(), Error> {
        self.event(name, Event::Restart)
    }

    pub fn reload(&self, name: &str) -> Result<(), Error> {
        self.event(name, Event::Reload)
    }

    /// Allows or withdraws the service's publish block (it is still only a
    /// record while the instance is up and healthy).
    pub fn set_publish(&self, name: &str, allowed: bool) -> Result<(), Error> {
        self.event(name, Event::SetPublish(allowed))
    }

    /// `Request::ServiceControl` as the control protocol names it.
    pub fn control(&self, name: &str, action: nuvol_control::Action) -> Result<(), Error> {
        use nuvol_control::Action as A;
        match action {
            A::Start => self.start(name),
            A::Stop => self.stop(name),
            A::Restart => self.restart(name),
            A::Reload => self.reload(name),
            A::Publish => self.set_publish(name, true),
            A::Unpublish => self.set_publish(name, false),
            A::Uninstall => Err(Error::Unsupported("uninstall")),
        }
    }

    /// Every instance, in definition order.
    pub fn list(&self) -> Result<Vec<InstanceView>, Error> {
        let (reply, answer) = reply::slot();
        self.send(Command::Views { name: None, reply })?;
        answer.wait().ok_or(Error::Gone)?
    }

    pub fn status(&self, name: &str) -> Result<InstanceView, Error> {
        let (reply, answer) = reply::slot();
        self.send(Command::Views {
            name: Some(name.into()),
            reply,
        })?;
        let mut views = answer.wait().ok_or(Error::Gone)??;
        views
            .pop()
            .ok_or_else(|| Error::UnknownService(name.into()))
    }

    /// The last `lines` output lines of the service, oldest first.
    pub fn logs(&self, name: &str, lines: usize) -> Result<Vec<String>, Error> {
        let (reply, answer) = reply::slot();
        self.send(Command::Logs {
            name: name.into(),
            lines,
            reply,
        })?;
        answer.wait().ok_or(Error::Gone)?
    }

    /// Replaces the set of definitions (config reload): new services start
    /// (when enabled), removed ones stop and disappear, changed ones are
    /// restarted if what they run changed.
    pub fn apply(&self, defs: Vec<ServiceDef>) -> Result<(), Error> {
        let (reply, answer) = reply::slot();
        self.send(Command::Apply { defs, reply })?;
        answer.wait().ok_or(Error::Gone)?
    }

    /// Stops every instance (SIGTERM, SIGKILL after each `term_timeout`),
    /// waits for them to exit, and ends the thread.
    pub fn shutdown(self) {
        self.finish(true, Box::new(|_| false));
    }

    /// Like [`shutdown`](Self::shutdown), but the instances for which `keep`
    /// answers true are left running, as [`detach`](Self::detach) leaves
    /// them: the next supervisor over the same state directory adopts them.
    /// The agent keeps its LXC apps this way, so restarting the agent does
    /// not restart every container.
    pub fn shutdown_except(self, keep: impl Fn(&str) -> bool + Send + 'static) {
        self.finish(true, Box::new(keep));
    }

    /// Ends the thread but leaves the services running, exactly as a crash
    /// of the agent would: the next supervisor over the same state directory
    /// adopts them. Dropping the handle does the same.
    pub fn detach(self) {
        self.finish(false, Box::new(|_| true));
    }

    fn finish(&self, stop: bool, keep: Box<dyn Fn(&str) -> bool + Send>) {
        let _ = self.send(Command::Shutdown { stop, keep });
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.finish(false, Box::new(|_| true));
    }
}

fn poke(fd: &OwnedFd) {
    // A full pipe already holds a pending wake-up; nothing is lost.
    // SAFETY: write of one byte from a valid buffer on a descriptor we own.
    unsafe {
        libc::write(fd.as_raw_fd(), b"w".as_ptr().cast(), 1);
    }
}

fn drain(fd: RawFd) {
    let mut buf = [0u8; 64];
    // Bounded: the pipe is non-blocking and holds at most 64 KiB.
    for _ in 0..1024 {
        // SAFETY: read into a local buffer of the stated length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
    }
}

/// The read ends of an instance's output FIFOs.
struct Fifos {
    out: OwnedFd,
    err: OwnedFd,
    out_path: PathBuf,
    err_path: PathBuf,
    /// Cleared at end-of-file (no writer left) so a closed stream is not
    /// polled in a loop; set again at the next spawn.
    out_open: bool,
    err_open: bool,
}

struct Slot {
    def: ServiceDef,
    machine: Instance,
    pid: Option<u32>,
    /// Our own child (reaped with waitpid), not an adopted process.
    child: bool,
    pidfd: Option<OwnedFd>,
    adopted_record: Option<Record>,
    fifos: Option<Fifos>,
    split_out: LineSplitter,
    split_err: LineSplitter,
    ring: Ring,
    cgroup: Option<Group>,
    /// Removed from the config: forgotten once stopped.
    removing: bool,
    /// A probe thread of this instance is running.
    probe_busy: Arc<AtomicBool>,
    /// Left running by a stopping shutdown (`shutdown_except`).
    kept: bool,
}

struct Loop {
    options: Options,
    origin: Instant,
    slots: Vec<Slot>,
    /// Requests, and the verdicts of probe threads: one queue (and one
    /// wake-up pipe) carries everything the loop is told.
    inbox: Inbox,
    wake_read: OwnedFd,
    wake: Arc<OwnedFd>,
    sigchld: sigchld::Registration,
    cgroups: Option<Hierarchy>,
    notify: Box<dyn FnMut(Notice) + Send>,
    /// `Some(stop)` once a shutdown was asked for.
    exiting: Option<bool>,
    /// When a stopping shutdown gives up waiting: the longest `term_timeout`
    /// plus time for SIGKILL to land.
    stop_deadline: Option<Duration>,
    /// Groups whose last processes were still dying at the exit, with how
    /// many loop turns they have been retried.
    dying_groups: Vec<(Group, u8)>,
}

#[derive(Clone, Copy)]
enum Source {
    Wake,
    Child,
    Pidfd(usize),
    Out(usize),
    Err(usize),
}

impl Drop for Loop {
    /// However the loop ends, requests still queued are answered
    /// [`Error::Gone`] and new ones refused, so no caller waits forever.
    fn drop(&mut self) {
        self.inbox.close();
    }
}

impl Loop {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn run(mut self) {
        loop {
            match self.exiting {
                Some(false) => break,
                Some(true) if self.stopped_but_kept() => break,
                Some(true) if self.stop_deadline.is_some_and(|d| self.now() >= d) => {
                    // A process stuck in the kernel (state D) survives even
                    // SIGKILL; the agent must still be able to exit.
                    log::error!("supervise: instances still running at exit; leaving them");
                    break;
                }
                _ => {}
            }
            let (mut fds, sources) = self.poll_set();
            let timeout = self.poll_timeout_ms();
            // SAFETY: fds is a valid array of pollfd of the given length.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                log::error!("supervise: poll failed: {}", io::Error::last_os_error());
                thread::sleep(Duration::from_millis(100));
            }
            for (fd, source) in fds.iter().zip(sources) {
                if fd.revents == 0 {
                    continue;
                }
                match source {
                    Source::Wake => {
                        drain(fd.fd);
                        self.commands();
                    }
                    Source::Child => {
                        drain(fd.fd);
                        self.reap();
                    }
                    Source::Pidfd(i) => self.adopted_exit(i),
                    Source::Out(i) => self.read_output(i, false),
                    Source::Err(i) => self.read_output(i, true),
                }
            }
            // A lost pidfd (old kernel) or a missed wake-up must not leave an
            // exit unnoticed: these checks are cheap and bounded.
            self.check_adopted();
            self.timers();
            self.forget_removed();
            self.retry_groups();
        }
        for _ in 0..25 {
            if self.dying_groups.is_empty() {
                break;
            }
            thread::sleep(Duration::from_millis(20));
            self.retry_groups();
        }
        // Descriptors close on drop; services left running keep their state
        // files and FIFOs for the next agent.
    }

    /// Every instance a stopping shutdown stops has exited.
    fn stopped_but_kept(&self) -> bool {
        self.slots.iter().all(|s| s.pid.is_none() || s.kept)
    }

    fn retry_groups(&mut self) {
        // 50 turns of at most 100 ms: then a group is left for the next run
        // of the instance, which reuses it.
        self.dying_groups.retain_mut(|(g, tries)| {
            *tries += 1;
            !g.remove() && *tries < 50
        });
    }

    fn poll_set(&self) -> (Vec<libc::pollfd>, Vec<Source>) {
        let mut fds = Vec::new();
        let mut sources = Vec::new();
        let mut add = |fd: RawFd, source: Source| {
            fds.push(libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            });
            sources.push(source);
        };
        add(self.wake_read.as_raw_fd(), Source::Wake);
        add(self.sigchld.read, Source::Child);
        for (i, s) in self.slots.iter().enumerate() {
            if let Some(p) = &s.pidfd {
                add(p.as_raw_fd(), Source::Pidfd(i));
            }
            if let Some(f) = &s.fifos {
                if f.out_open {
                    add(f.out.as_raw_fd(), Source::Out(i));
                }
                if f.err_open {
                    add(f.err.as_raw_fd(), Source::Err(i));
                }
            }
        }
        (fds, sources)
    }

    fn poll_timeout_ms(&self) -> i32 {
        let now = self.now();
        let mut wait: Option<Duration> = None;
        for s in &self.slots {
            if let Some(d) = s.machine.poll_timeout() {
                let left = d.at.saturating_sub(now);
                wait = Some(wait.map_or(left, |w| w.min(left)));
            }
            if s.pid.is_some() && !s.child && s.pidfd.is_none() {
                wait = Some(wait.map_or(Duration::from_secs(1), |w| w.min(Duration::from_secs(1))));
            }
        }
        if !self.dying_groups.is_empty() {
            let step = Duration::from_millis(100);
            wait = Some(wait.map_or(step, |w| w.min(step)));
        }
        if let Some(d) = self.stop_deadline {
            let left = d.saturating_sub(now);
            wait = Some(wait.map_or(left, |w| w.min(left)));
        }
        match wait {
            None => -1,
            // Round up so the loop never wakes just before a deadline and spins.
            Some(w) => i32::try_from(w.as_micros().div_ceil(1000)).unwrap_or(i32::MAX),
        }
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.slots.iter().position(|s| s.def.name == name)
    }

    fn commands(&mut self) {
        for cmd in self.inbox.take() {
            match cmd {
                Command::Event { name, event, reply } => {
                    let r = match self.find(&name) {
                        Some(i) => {
                            self.feed(i, event);
                            Ok(())
                        }
                        None => Err(Error::UnknownService(name)),
                    };
                    reply.send(r);
                }
                Command::Views { name, reply } => {
                    let r = match name {
                        None => Ok((0..self.slots.len()).map(|i| self.view(i)).collect()),
                        Some(n) => match self.find(&n) {
                            Some(i) => Ok(vec![self.view(i)]),
                            None => Err(Error::UnknownService(n)),
                        },
                    };
                    reply.send(r);
                }
                Command::Logs { name, lines, reply } => {
                    let r = match self.find(&name) {
                        Some(i) => Ok(self.slots[i].ring.tail(lines)),
                        None => Err(Error::UnknownService(name)),
                    };
                    reply.send(r);
                }
                Command::Apply { defs, reply } => {
                    self.apply(defs, false);
                    reply.send(Ok(()));
                }
                Command::Verdict(v) => {
                    if let Some(i) = self.find(&v.instance) {
                        self.feed(
                            i,
                            Event::HealthResult {
                                token: v.token,
                                healthy: v.healthy,
                            },
                        );
                    }
                }
                Command::Shutdown { stop, keep } => {
                    self.exiting = Some(stop);
                    for s in &mut self.slots {
                        s.kept = keep(&s.def.name);
                    }
                    if stop {
                        let longest = self
                            .slots
                            .iter()
                            .filter(|s| !s.kept)
                            .map(|s| s.def.policy.term_timeout)
                            .max()
                            .unwrap_or_default();
                        self.stop_deadline = Some(self.now() + longest + Duration::from_secs(5));
                        for i in 0..self.slots.len() {
                            if !self.slots[i].kept {
                                self.feed(i, Event::Stop);
                            }
                        }
                    }
                }
            }
        }
    }

    fn view(&self, i: usize) -> InstanceView {
        let s = &self.slots[i];
        let st = s.machine.status();
        let now = self.now();
        InstanceView {
            name: s.def.name.clone(),
            state: st.state.as_str().into(),
            pid: st.pid,
            health: match st.health {
                Health::Healthy => ViewHealth::Healthy,
                Health::Unhealthy => ViewHealth::Unhealthy,
                Health::Unknown => ViewHealth::Unknown,
            },
            restarts: st.restarts,
            published: st.published,
            // From /proc when possible: an adopted process keeps its real age.
            uptime_s: st.running_since.map(|t| {
                st.pid
                    .and_then(adopt::age)
                    .unwrap_or_else(|| now.saturating_sub(t))
                    .as_secs()
            }),
            last_log: s.ring.tail(self.options.view_lines),
            // The agent names an LXC app's instance `app-NAME` (nuvol-lxc).
            kind: if s.def.name.starts_with("app-") {
                "app"
            } else {
                "service"
            }
            .into(),
        }
    }

    /// Installs a new set of definitions; `boot` also re-adopts survivors.
    fn apply(&mut self, defs: Vec<ServiceDef>, boot: bool) {
        // Names seen so far; a list: a node runs a handful of services.
        let mut seen: Vec<String> = Vec::new();
        for def in defs {
            // Names become file and cgroup names: refuse what could escape
            // the state directory, whoever built the definition.
            if !crate::config::valid_name(&def.name) {
                log::error!(
                    "supervise: service name {:?} refused: letters, digits, '-', '_', '.' only",
                    def.name
                );
                continue;
            }
            if seen.contains(&def.name) {
                log::error!("{}: defined twice; the first definition is kept", def.name);
                continue;
            }
            seen.push(def.name.clone());
            match self.find(&def.name) {
                Some(i) => {
                    let slot = &mut self.slots[i];
                    // Removed, then back before it was forgotten: up again.
                    let revived = std::mem::take(&mut slot.removing) && def.enabled;
                    if slot.def == def {
                        if revived {
                            self.feed(i, Event::Start);
                        }
                        continue;
                    }
                    let rerun = !same_process(&slot.def, &def);
                    let now_enabled = revived || def.enabled && !slot.def.enabled;
                    slot.machine.set_policy(def.policy.clone());
                    slot.def = def;
                    if rerun && slot.pid.is_some() {
                        self.feed(i, Event::Restart);
                    } else if now_enabled {
                        self.feed(i, Event::Start);
                    } else {
                        self.run_actions(i);
                    }
                }
                None => {
                    let slot = Slot {
                        machine: Instance::new(&def.name, def.policy.clone()),
                        def,
                        pid: None,
                        child: false,
                        pidfd: None,
                        adopted_record: None,
                        fifos: None,
                        split_out: LineSplitter::default(),
                        split_err: LineSplitter::default(),
                        ring: Ring::new(self.options.log_lines),
                        cgroup: None,
                        removing: false,
                        probe_busy: Arc::new(AtomicBool::new(false)),
                        kept: false,
                    };
                    self.slots.push(slot);
                    let i = self.slots.len() - 1;
                    if boot && self.adopt(i) {
                        continue;
                    }
                    if self.slots[i].def.enabled {
                        self.feed(i, Event::Start);
                    }
                }
            }
        }
        for i in 0..self.slots.len() {
            if !seen.contains(&self.slots[i].def.name) && !self.slots[i].removing {
                self.slots[i].removing = true;
                self.feed(i, Event::Stop);
            }
        }
    }

    /// Re-adopts a process recorded by a previous agent, if it still lives.
    fn adopt(&mut self, i: usize) -> bool {
        let dir = self.options.state_dir.clone();
        let name = self.slots[i].def.name.clone();
        let Some(record) = adopt::load(&dir, &name) else {
            return false;
        };
        if !adopt::alive(record) {
            adopt::remove(&dir, &name);
            return false;
        }
        let slot = &mut self.slots[i];
        slot.pid = Some(record.pid);
        slot.child = false;
        slot.pidfd = adopt::pidfd(record.pid);
        slot.adopted_record = Some(record);
        match open_fifos(&dir, &name) {
            Ok(f) => slot.fifos = Some(f),
            Err(e) => log::warn!("{name}: output of the adopted process is lost: {e}"),
        }
        if let Some(h) = &self.cgroups {
            // The same limits again: the group already holds the process.
            slot.cgroup = h
                .instance(&name, slot.def.memory, slot.def.cpu_percent)
                .ok()
                .map(|(g, _)| g);
        }
        self.feed(i, Event::Adopted { pid: record.pid });
        true
    }

    fn feed(&mut self, i: usize, event: Event) {
        let now = self.now();
        self.slots[i].machine.handle(now, event);
        self.run_actions(i);
    }

    fn run_actions(&mut self, i: usize) {
        // Bounded: every action chain ends in a state that waits for a timer
        // or an exit; the cap only guards against a policy bug.
        for _ in 0..1000 {
            let Some(action) = self.slots[i].machine.poll_action() else {
                return;
            };
            let name = self.slots[i].def.name.clone();
            match action {
                Action::Spawn => {
                    let now = self.now();
                    let event = match self.spawn(i) {
                        Ok(pid) => Event::Spawned { pid },
                        Err(e) => {
                            log::error!("{name}: cannot start: {e}");
                            self.slots[i]
                                .ring
                                .push(format!("[nuvol] cannot start: {e}"));
                            Event::SpawnFailed
                        }
                    };
                    self.slots[i].machine.handle(now, event);
                }
                Action::Signal { pid, signal, group } => {
                    let sig = nix_signal(signal);
                    let target = Pid::from_raw(pid as i32);
                    let sent = if group {
                        killpg(target, sig).or_else(|_| kill(target, sig))
                    } else {
                        kill(target, sig)
                    };
                    if let Err(e) = sent {
                        log::warn!("{name}: SIG{} to {pid}: {e}", signal.as_str());
                    }
                }
                Action::RunHealthCheck { token } => {
                    let slot = &self.slots[i];
                    let Some(p) = slot.def.probe.clone() else {
                        // Timing without a probe: nothing can fail.
                        let now = self.now();
                        let healthy = Event::HealthResult {
                            token,
                            healthy: true,
                        };
                        self.slots[i].machine.handle(now, healthy);
                        continue;
                    };
                    let timeout = slot.def.policy.health.unwrap_or_default().timeout;
                    // One probe thread per instance at most: a probe stuck
                    // past its timeout (a DNS lookup) is not joined by more.
                    if slot.probe_busy.swap(true, Ordering::AcqRel) {
                        continue;
                    }
                    let account = match &p {
                        Probe::Exec { .. } => spawn::account(&slot.def).ok().flatten(),
                        _ => None,
                    };
                    let wake = self.wake.clone();
                    let busy = slot.probe_busy.clone();
                    let inbox = self.inbox.clone();
                    let started =
                        probe::start(name.clone(), token, p, timeout, account, move |verdict| {
                            // After the loop ended nobody needs the verdict.
                            let _ = inbox.push(Command::Verdict(verdict));
                            busy.store(false, Ordering::Release);
                            poke(&wake);
                        });
                    if let Err(e) = started {
                        self.slots[i].probe_busy.store(false, Ordering::Release);
                        // Counted as failed when its timeout passes.
                        log::warn!("{name}: cannot start a health probe: {e}");
                    }
                }
                Action::Publish(record) => (self.notify)(Notice::Publish {
                    service: name,
                    record: spec(record),
                }),
                Action::Unpublish(record) => (self.notify)(Notice::Unpublish {
                    service: name,
                    record: spec(record),
                }),
                Action::Log { level, message } => match level {
                    Level::Info => log::info!("{name}: {message}"),
                    Level::Warn => log::warn!("{name}: {message}"),
                    Level::Error => log::error!("{name}: {message}"),
                },
            }
        }
    }

    fn spawn(&mut self, i: usize) -> Result<u32, String> {
        let dir = self.options.state_dir.clone();
        let slot = &mut self.slots[i];
        let name = slot.def.name.clone();
        let account = spawn::account(&slot.def)?;
        if slot.fifos.is_none() {
            slot.fifos = Some(open_fifos(&dir, &name).map_err(|e| format!("output FIFO: {e}"))?);
        }
        let fifos = slot.fifos.as_mut().expect("opened just above");
        let stdio = spawn::Stdio {
            stdout: open_writer(&fifos.out_path).map_err(|e| format!("output FIFO: {e}"))?,
            stderr: open_writer(&fifos.err_path).map_err(|e| format!("output FIFO: {e}"))?,
        };
        fifos.out_open = true;
        fifos.err_open = true;
        let mut procs = Vec::new();
        if let Some(h) = &self.cgroups {
            match h.instance(&name, slot.def.memory, slot.def.cpu_percent) {
                Ok((g, warnings)) => {
                    for w in warnings {
                        log::warn!("{name}: {w}");
                    }
                    procs = g.procs_fds().unwrap_or_default();
                    slot.cgroup = Some(g);
                }
                Err(e) => log::warn!("{name}: running without its cgroup: {e}"),
            }
        }
        let pid = spawn::spawn(&slot.def, account, stdio, procs)?;
        slot.pid = Some(pid);
        slot.child = true;
        slot.pidfd = None;
        match adopt::start_time(pid) {
            Some(start_time) => {
                if let Err(e) = adopt::save(&dir, &name, Record { pid, start_time }) {
                    log::warn!("{name}: cannot record pid {pid} for re-adoption: {e}");
                }
            }
            // Already exited: the SIGCHLD pipe will tell; nothing to re-adopt.
            None => adopt::remove(&dir, &name),
        }
        Ok(pid)
    }

    /// A process of instance `i` is gone: tidy up, then tell the policy.
    fn exited(&mut self, i: usize, pid: u32, status: ExitStatus) {
        self.read_output(i, false);
        self.read_output(i, true);
        let dir = self.options.state_dir.clone();
        let slot = &mut self.slots[i];
        let name = slot.def.name.clone();
        let Slot {
            split_out,
            split_err,
            ring,
            ..
        } = slot;
        split_out.flush(|l| ring.push(l));
        split_err.flush(|l| ring.push(l));
        slot.pid = None;
        slot.child = false;
        slot.pidfd = None;
        slot.adopted_record = None;
        if let Some(f) = &mut slot.fifos {
            f.out_open = false;
            f.err_open = false;
        }
        // What the main process leaves in its process group (workers, a
        // shell's children) would collide with the next run (ports, lock
        // files), so it goes with it. Processes that made their own session
        // (an LXC monitor started with `lxc-start -d`) are left alone, as
        // procd does. The group id cannot name a new process while that
        // group still exists.
        let _ = killpg(Pid::from_raw(pid as i32), NixSignal::SIGKILL);
        if let Some(g) = &slot.cgroup {
            if !g.remove() {
                // SIGKILLed processes take a moment to leave the group.
                self.dying_groups.push((g.clone(), 0));
            }
        }
        adopt::remove(&dir, &name);
        self.feed(i, Event::Exited { pid, status });
    }

    fn reap(&mut self) {
        for i in 0..self.slots.len() {
            let slot = &self.slots[i];
            let (Some(pid), true) = (slot.pid, slot.child) else {
                continue;
            };
            // Only our own pids: waitpid(-1) would also reap children that
            // other parts of the agent wait for (lxc-* tools, probes).
            let status = match waitpid(Pid::from_raw(pid as i32), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => ExitStatus::Code(code),
                Ok(WaitStatus::Signaled(_, sig, _)) => ExitStatus::Signaled(sig as i32),
                Ok(_) => continue,
                Err(nix::errno::Errno::ECHILD) => ExitStatus::Unknown,
                Err(_) => continue,
            };
            self.exited(i, pid, status);
        }
    }

    fn adopted_exit(&mut self, i: usize) {
        if let Some(pid) = self.slots[i].pid {
            self.exited(i, pid, ExitStatus::Unknown);
        }
    }

    fn check_adopted(&mut self) {
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if let (Some(pid), false, Some(rec)) = (s.pid, s.child, s.adopted_record) {
                if s.pidfd.is_none() && !adopt::alive(rec) {
                    self.exited(i, pid, ExitStatus::Unknown);
                }
            }
        }
    }

    fn read_output(&mut self, i: usize, stderr: bool) {
        let slot = &mut self.slots[i];
        let Some(f) = &mut slot.fifos else { return };
        let (fd, open) = if stderr {
            (f.err.as_raw_fd(), &mut f.err_open)
        } else {
            (f.out.as_raw_fd(), &mut f.out_open)
        };
        let mut buf = [0u8; 4096];
        // At most 64 KiB per wake-up, so one chatty service cannot starve
        // the others; the rest is read at the next turn.
        for _ in 0..16 {
            // SAFETY: read into a local buffer of the stated length.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n == 0 {
                *open = false;
                break;
            }
            if n < 0 {
                break;
            }
            let name = &slot.def.name;
            let forward = if stderr {
                slot.def.stderr
            } else {
                slot.def.stdout
            };
            let ring = &mut slot.ring;
            let splitter = if stderr {
                &mut slot.split_err
            } else {
                &mut slot.split_out
            };
            splitter.feed(&buf[..n as usize], |line| {
                if forward {
                    if stderr {
                        log::warn!("{name}: {line}");
                    } else {
                        log::info!("{name}: {line}");
                    }
                }
                ring.push(line);
            });
        }
    }

    fn timers(&mut self) {
        for i in 0..self.slots.len() {
            // Bounded: each timer event clears or moves its deadline forward.
            for _ in 0..16 {
                let now = self.now();
                match self.slots[i].machine.poll_timeout() {
                    Some(d) if d.at <= now => self.feed(i, Event::Timer(d.token)),
                    _ => break,
                }
            }
        }
    }

    fn forget_removed(&mut self) {
        let dir = self.options.state_dir.clone();
        self.slots.retain(|s| {
            let gone = s.removing && s.pid.is_none() && s.machine.poll_timeout().is_none();
            if gone {
                let _ = fs::remove_file(dir.join(format!("{}.stdout", s.def.name)));
                let _ = fs::remove_file(dir.join(format!("{}.stderr", s.def.name)));
            }
            !gone
        });
    }
}

/// Whether two definitions run the same process (so a change of only the
/// policy or the publish block does not restart it).
fn same_process(a: &ServiceDef, b: &ServiceDef) -> bool {
    a.command == b.command
        && a.env == b.env
        && a.dir == b.dir
        && a.user == b.user
        && a.group == b.group
        && a.limits == b.limits
        && a.memory == b.memory
        && a.cpu_percent == b.cpu_percent
}

fn spec(r: PublishRecord) -> PublishSpec {
    PublishSpec {
        service_type: r.service_type,
        port: r.port,
        description: r.description,
        txt: r.txt,
    }
}

fn nix_signal(s: Signal) -> NixSignal {
    match s {
        Signal::Term => NixSignal::SIGTERM,
        Signal::Kill => NixSignal::SIGKILL,
        Signal::Hup => NixSignal::SIGHUP,
        Signal::Int => NixSignal::SIGINT,
        Signal::Quit => NixSignal::SIGQUIT,
        Signal::Usr1 => NixSignal::SIGUSR1,
        Signal::Usr2 => NixSignal::SIGUSR2,
    }
}

/// The instance's FIFOs (made if missing), opened for reading.
///
/// FIFOs rather than pipes so output survives an agent crash: the child holds
/// its end open read-write, so it never gets SIGPIPE while no agent reads,
/// and the next agent reopens the same FIFO by name.
fn open_fifos(dir: &Path, name: &str) -> io::Result<Fifos> {
    let out_path = dir.join(format!("{name}.stdout"));
    let err_path = dir.join(format!("{name}.stderr"));
    Ok(Fifos {
        out: open_reader(&out_path)?,
        err: open_reader(&err_path)?,
        out_path,
        err_path,
        out_open: true,
        err_open: true,
    })
}

fn open_reader(path: &Path) -> io::Result<OwnedFd> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_fifo() => {}
        Ok(_) => {
            fs::remove_file(path)?;
            make_fifo(path)?;
        }
        Err(_) => make_fifo(path)?,
    }
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    Ok(OwnedFd::from(file))
}

fn make_fifo(path: &Path) -> io::Result<()> {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(io::Error::from)
}

/// The child's end: read-write, so the child itself keeps the FIFO open.
fn open_writer(path: &Path) -> io::Result<OwnedFd> {
    let file = fs::OpenOptions::new().read(true).write(true).open(path)?;
    Ok(OwnedFd::from(file))
}

// The agent shares one handle between its tasks.
const _: fn() = || {
    fn check<T: Send + Sync>() {}
    check::<Supervisor>();
};
