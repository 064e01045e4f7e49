//! The restart and health policy of one supervised instance, as a pure state
//! machine: `(state, event) → state + actions`, with time passed in.
//!
//! This is procd's instance logic without procd's clock: the caller feeds
//! [`Instance::handle`] with `now` (a monotonic [`Duration`] since any origin it
//! likes) and an [`Event`], then drains [`Instance::poll_action`] and arms one
//! timer at [`Instance::poll_timeout`]. The machine never reads a clock, spawns
//! or signals anything, so every policy rule is a plain unit test.
//!
//! Rules (procd's names and defaults, s6's spawn spacing):
//! - respawn `threshold timeout retry` = 3600 s, 5 s, 5: a run shorter than
//!   `threshold` is a crash; after more than `retry` consecutive crashes the
//!   instance is failed (`retry` 0 = restart forever); a run at least
//!   `threshold` long resets the count; a respawn waits `timeout`.
//! - optional exponential backoff on top: the wait doubles with every
//!   consecutive crash, starting at `timeout`, and never exceeds the cap.
//! - at least [`MIN_SPAWN_GAP`] (1 s) between two spawns, whatever asked for them.
//! - stop: SIGTERM to the process group, SIGKILL after `term_timeout`.
//! - health: a probe every `interval`, failed after `timeout`; `failures`
//!   consecutive failures make the instance unhealthy, `successes` consecutive
//!   successes healthy. The publish block is a catalog record exactly while the
//!   instance runs and (when a check is configured) is healthy.
//!
//! Timers and probes carry a [`Token`]; a timer or probe result whose token is
//! no longer current is ignored, so a late answer can never act on a newer run.
//!
//! ```
//! use core::time::Duration;
//! use nuvol_supervise::policy::{Action, Event, Instance, Policy};
//! let mut web = Instance::new("web", Policy::default());
//! web.handle(Duration::ZERO, Event::Start);
//! assert_eq!(web.poll_action(), Some(Action::Spawn));
//! web.handle(Duration::ZERO, Event::Spawned { pid: 42 });
//! assert_eq!(web.status().state.as_str(), "running");
//! ```

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

/// s6-supervise's guarantee: never two spawns of one instance within a second,
/// so a service that dies at once cannot make the router fork in a tight loop.
pub const MIN_SPAWN_GAP: Duration = Duration::from_secs(1);

/// Identity of a timer or a health probe. A token that is no longer current
/// is stale: acting on it would touch a newer run than the one it was set for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Token(pub u64);

/// When the caller must deliver [`Event::Timer`] with this token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    pub at: Duration,
    pub token: Token,
}

/// Signals the policy asks for, by name: their numbers differ between
/// architectures (SIGUSR1 is 10 on x86 and arm, 16 on MIPS), so only the
/// shell turns them into numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Term,
    Kill,
    Hup,
    Int,
    Quit,
    Usr1,
    Usr2,
}

impl Signal {
    /// Accepts `HUP`, `SIGHUP` and `hup` alike.
    pub fn from_name(name: &str) -> Option<Signal> {
        let upper = name.trim();
        let bare = upper
            .strip_prefix("SIG")
            .or_else(|| upper.strip_prefix("sig"))
            .unwrap_or(upper);
        Some(match bare.to_ascii_uppercase().as_str() {
            "TERM" => Signal::Term,
            "KILL" => Signal::Kill,
            "HUP" => Signal::Hup,
            "INT" => Signal::Int,
            "QUIT" => Signal::Quit,
            "USR1" => Signal::Usr1,
            "USR2" => Signal::Usr2,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Term => "TERM",
            Signal::Kill => "KILL",
            Signal::Hup => "HUP",
            Signal::Int => "INT",
            Signal::Quit => "QUIT",
            Signal::Usr1 => "USR1",
            Signal::Usr2 => "USR2",
        }
    }
}

/// procd's `respawn threshold timeout retry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Respawn {
    /// A run shorter than this is a crash.
    pub threshold: Duration,
    /// Wait before a respawn.
    pub timeout: Duration,
    /// Crashes tolerated in a row; 0 = forever.
    pub retry: u32,
}

impl Default for Respawn {
    /// procd's defaults: `3600 5 5`.
    fn default() -> Self {
        Respawn {
            threshold: Duration::from_secs(3600),
            timeout: Duration::from_secs(5),
            retry: 5,
        }
    }
}

/// How often and how strictly the health probe runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthTiming {
    pub interval: Duration,
    /// A probe without an answer by then has failed.
    pub timeout: Duration,
    /// Consecutive failures before the instance is unhealthy (at least 1).
    pub failures: u32,
    /// Consecutive successes before the instance is healthy (at least 1).
    pub successes: u32,
}

impl Default for HealthTiming {
    fn default() -> Self {
        HealthTiming {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            failures: 3,
            successes: 1,
        }
    }
}

impl HealthTiming {
    /// The first probe runs soon after the spawn (one second, or `interval`
    /// if shorter) so a healthy service is announced without waiting a whole
    /// interval.
    fn first_delay(&self) -> Duration {
        self.interval.min(Duration::from_secs(1))
    }
}

/// A catalog record to announce while the instance is up (and healthy).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishRecord {
    pub service_type: String,
    pub port: u16,
    pub description: String,
    /// `key=value` pairs, in order.
    pub txt: Vec<(String, String)>,
}

/// Everything the policy needs to know about one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `None`: never respawn; an exit leaves the instance stopped (status 0)
    /// or failed (anything else).
    pub respawn: Option<Respawn>,
    /// Cap of the exponential backoff; `None` waits `timeout` every time.
    pub backoff_max: Option<Duration>,
    pub term_timeout: Duration,
    pub reload_signal: Signal,
    pub health: Option<HealthTiming>,
    pub publish: Option<PublishRecord>,
    /// Whether `publish` is allowed when the instance is created; `false`
    /// waits for [`Event::SetPublish`] (an app manifest's `publish '0'`).
    pub publish_by_default: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            respawn: Some(Respawn::default()),
            backoff_max: None,
            term_timeout: Duration::from_secs(5),
            reload_signal: Signal::Hup,
            health: None,
            publish: None,
            publish_by_default: true,
        }
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    /// Killed by this signal number.
    Signaled(i32),
    /// An adopted process that is not our child: it is gone, but nobody can
    /// tell us how it ended.
    Unknown,
}

impl ExitStatus {
    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }
}

impl core::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit status {c}"),
            ExitStatus::Signaled(s) => write!(f, "killed by signal {s}"),
            ExitStatus::Unknown => f.write_str("exit status unknown"),
        }
    }
}

/// What happened: requests from the owner, and reports from the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Start,
    Stop,
    Restart,
    Reload,
    /// The owner allows (`true`) or withdraws (`false`) the publish block.
    SetPublish(bool),
    /// The shell ran [`Action::Spawn`] and the process exists.
    Spawned {
        pid: u32,
    },
    /// The shell could not start the process (exec failed, bad user, …);
    /// it counts as a crash.
    SpawnFailed,
    /// A process of this instance outlived the previous agent and runs now.
    Adopted {
        pid: u32,
    },
    Exited {
        pid: u32,
        status: ExitStatus,
    },
    /// Answer of the probe started by [`Action::RunHealthCheck`] with `token`.
    HealthResult {
        token: Token,
        healthy: bool,
    },
    /// The deadline from [`Instance::poll_timeout`] with this token passed.
    Timer(Token),
}

/// Log levels the shell maps to its logger (info → stdout, warn/error → stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start the process, then report [`Event::Spawned`] or [`Event::SpawnFailed`].
    Spawn,
    /// `group`: signal the whole process group (stop), not only the pid (reload).
    Signal {
        pid: u32,
        signal: Signal,
        group: bool,
    },
    /// Probe once, then report [`Event::HealthResult`] with this token.
    RunHealthCheck {
        token: Token,
    },
    Publish(PublishRecord),
    Unpublish(PublishRecord),
    /// A line for the agent log, without the instance name (the shell adds it).
    Log {
        level: Level,
        message: String,
    },
}

/// Health as the page and CLI show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Healthy,
    Unhealthy,
    /// No check configured, or no verdict yet for this run.
    Unknown,
}

/// The state names of `nuvol service list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateName {
    Stopped,
    Starting,
    Running,
    Stopping,
    Backoff,
    Failed,
}

impl StateName {
    pub fn as_str(self) -> &'static str {
        match self {
            StateName::Stopped => "stopped",
            StateName::Starting => "starting",
            StateName::Running => "running",
            StateName::Stopping => "stopping",
            StateName::Backoff => "backoff",
            StateName::Failed => "failed",
        }
    }
}

/// A snapshot for views.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub state: StateName,
    pub pid: Option<u32>,
    pub health: Health,
    /// Respawns since the owner last started it.
    pub restarts: u32,
    /// Consecutive short runs so far.
    pub crashes: u32,
    pub published: bool,
    /// When the current process started (or was adopted), on the caller's clock.
    pub running_since: Option<Duration>,
}

/// Whether the instance should be up once the current transition ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Goal {
    Up,
    Down,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Stopped,
    /// [`Action::Spawn`] was emitted; waiting for the shell's answer.
    Starting {
        then: Goal,
    },
    Running {
        pid: u32,
        since: Duration,
    },
    /// SIGTERM sent (and SIGKILL too when `killed`), waiting for the exit.
    Stopping {
        pid: u32,
        killed: bool,
        then: Goal,
    },
    /// Waiting for the life timer to respawn.
    Backoff,
    Failed,
}

#[derive(Debug, Default)]
struct HealthState {
    verdict: Option<bool>,
    in_flight: Option<Token>,
    ok_in_row: u32,
    failed_in_row: u32,
    timer: Option<Deadline>,
}

/// One supervised instance.
#[derive(Debug)]
pub struct Instance {
    name: String,
    policy: Policy,
    state: State,
    crashes: u32,
    restarts: u32,
    last_spawn: Option<Duration>,
    next_token: u64,
    life_timer: Option<Deadline>,
    health: HealthState,
    published: bool,
    publish_enabled: bool,
    actions: VecDeque<Action>,
}

impl Instance {
    /// A stopped instance; nothing happens until [`Event::Start`] or [`Event::Adopted`].
    pub fn new(name: &str, policy: Policy) -> Instance {
        let publish_enabled = policy.publish_by_default;
        Instance {
            name: name.into(),
            policy,
            state: State::Stopped,
            crashes: 0,
            restarts: 0,
            last_spawn: None,
            next_token: 0,
            life_timer: None,
            health: HealthState::default(),
            published: false,
            publish_enabled,
            actions: VecDeque::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Replaces the policy; it applies from the next transition on (a running
    /// process is not restarted by this alone).
    pub fn set_policy(&mut self, policy: Policy) {
        if self.published && self.policy.publish != policy.publish {
            self.unpublish();
        }
        self.policy = policy;
        self.update_publish();
    }

    /// The next action to carry out, in order.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The earliest deadline; deliver [`Event::Timer`] with its token when it passes.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Deadline> {
        match (self.life_timer, self.health.timer) {
            (Some(a), Some(b)) => Some(if a.at <= b.at { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    pub fn status(&self) -> Status {
        let (state, pid, running_since) = match self.state {
            State::Stopped => (StateName::Stopped, None, None),
            State::Starting { .. } => (StateName::Starting, None, None),
            State::Running { pid, since } => (StateName::Running, Some(pid), Some(since)),
            State::Stopping { pid, .. } => (StateName::Stopping, Some(pid), None),
            State::Backoff => (StateName::Backoff, None, None),
            State::Failed => (StateName::Failed, None, None),
        };
        let health = match self.health.verdict {
            Some(true) => Health::Healthy,
            Some(false) => Health::Unhealthy,
            None => Health::Unknown,
        };
        Status {
            state,
            pid,
            health,
            restarts: self.restarts,
            crashes: self.crashes,
            published: self.published,
            running_since,
        }
    }

    /// Feeds one event; the resulting actions wait in [`Instance::poll_action`].
    pub fn handle(&mut self, now: Duration, event: Event) {
        match (self.state, event) {
            (_, Event::Timer(token)) => self.handle_timer(now, token),
            (_, Event::HealthResult { token, healthy }) => {
                if self.health.in_flight == Some(token) {
                    self.health.in_flight = None;
                    self.record_probe(healthy);
                    self.arm_health(now, self.interval());
                }
            }
            (_, Event::SetPublish(allowed)) => {
                self.publish_enabled = allowed;
                self.update_publish();
            }

            (State::Stopped | State::Failed, Event::Start | Event::Restart) => {
                self.crashes = 0;
                self.restarts = 0;
                self.spawn_when_allowed(now);
            }
            (State::Backoff, Event::Start | Event::Restart) => {
                self.crashes = 0;
                self.life_timer = None;
                self.spawn_when_allowed(now);
            }
            (State::Starting { .. }, Event::Start | Event::Restart) => {
                self.state = State::Starting { then: Goal::Up };
            }
            (State::Stopping { pid, killed, .. }, Event::Start | Event::Restart) => {
                self.state = State::Stopping {
                    pid,
                    killed,
                    then: Goal::Up,
                };
            }
            (State::Running { .. }, Event::Start) => {}
            (State::Running { pid, .. }, Event::Restart) => self.terminate(now, pid, Goal::Up),

            (State::Running { pid, .. }, Event::Stop) => self.terminate(now, pid, Goal::Down),
            (State::Starting { .. }, Event::Stop) => {
                self.state = State::Starting { then: Goal::Down };
            }
            (State::Stopping { pid, killed, .. }, Event::Stop) => {
                self.state = State::Stopping {
                    pid,
                    killed,
                    then: Goal::Down,
                };
            }
            (State::Backoff | State::Failed, Event::Stop) => {
                self.life_timer = None;
                self.state = State::Stopped;
                self.log(Level::Info, "stopped".into());
            }
            (State::Stopped, Event::Stop) => {}

            (State::Running { pid, .. }, Event::Reload) => {
                let signal = self.policy.reload_signal;
                self.actions.push_back(Action::Signal {
                    pid,
                    signal,
                    group: false,
                });
                self.log(Level::Info, format!("reload: SIG{}", signal.as_str()));
            }
            (_, Event::Reload) => self.log(Level::Warn, "reload ignored: not running".into()),

            (State::Starting { then }, Event::Spawned { pid }) => {
                self.log(Level::Info, format!("started, pid {pid}"));
                self.begin_run(now, pid);
                if then == Goal::Down {
                    self.terminate(now, pid, Goal::Down);
                }
            }
            (State::Starting { then }, Event::SpawnFailed) => {
                self.last_spawn = Some(now);
                if then == Goal::Down {
                    self.state = State::Stopped;
                } else {
                    self.after_crash(now, Duration::ZERO);
                }
            }
            (State::Stopped | State::Failed | State::Backoff, Event::Adopted { pid }) => {
                self.life_timer = None;
                self.last_spawn = Some(now);
                self.log(Level::Info, format!("adopted running pid {pid}"));
                self.begin_run(now, pid);
            }

            (State::Running { pid: p, since }, Event::Exited { pid, status }) if p == pid => {
                self.end_run();
                let ran = now.saturating_sub(since);
                match self.policy.respawn {
                    None => {
                        let (state, level) = if status.success() {
                            (State::Stopped, Level::Info)
                        } else {
                            (State::Failed, Level::Error)
                        };
                        self.state = state;
                        self.log(
                            level,
                            format!("{status} after {}; not respawned", Secs(ran)),
                        );
                    }
                    Some(_) => {
                        self.log(Level::Warn, format!("{status} after {}", Secs(ran)));
                        self.after_crash(now, ran);
                    }
                }
            }
            (State::Stopping { pid: p, then, .. }, Event::Exited { pid, status }) if p == pid => {
                self.life_timer = None;
                self.log(Level::Info, format!("stopped ({status})"));
                if then == Goal::Up {
                    self.crashes = 0;
                    self.restarts = self.restarts.saturating_add(1);
                    self.spawn_when_allowed(now);
                } else {
                    self.state = State::Stopped;
                }
            }

            // Stale reports: an exit of a pid we no longer track, a spawn we
            // did not ask for, an adoption while a process already runs.
            (_, Event::Spawned { .. } | Event::SpawnFailed)
            | (_, Event::Adopted { .. })
            | (_, Event::Exited { .. }) => {}
        }
    }

    fn handle_timer(&mut self, now: Duration, token: Token) {
        let due = |t: &Deadline| t.token == token && now >= t.at;
        if self.life_timer.as_ref().is_some_and(due) {
            self.life_timer = None;
            match self.state {
                State::Backoff => self.spawn(now),
                State::Stopping {
                    pid,
                    killed: false,
                    then,
                } => {
                    self.actions.push_back(Action::Signal {
                        pid,
                        signal: Signal::Kill,
                        group: true,
                    });
                    self.log(
                        Level::Warn,
                        format!(
                            "still running {} after SIGTERM: SIGKILL",
                            Secs(self.policy.term_timeout)
                        ),
                    );
                    self.state = State::Stopping {
                        pid,
                        killed: true,
                        then,
                    };
                }
                _ => {}
            }
        } else if self.health.timer.as_ref().is_some_and(due) {
            self.health.timer = None;
            if !matches!(self.state, State::Running { .. }) {
                return;
            }
            if self.health.in_flight.take().is_some() {
                self.record_probe(false);
                self.arm_health(now, self.interval());
            } else {
                let token = self.token();
                self.health.in_flight = Some(token);
                self.actions.push_back(Action::RunHealthCheck { token });
                let timeout = self.policy.health.map(|h| h.timeout).unwrap_or_default();
                self.health.timer = Some(Deadline {
                    at: now + timeout,
                    token,
                });
            }
        }
    }

    fn token(&mut self) -> Token {
        self.next_token += 1;
        Token(self.next_token)
    }

    fn interval(&self) -> Duration {
        self.policy.health.map(|h| h.interval).unwrap_or_default()
    }

    fn arm_health(&mut self, now: Duration, after: Duration) {
        let token = self.token();
        self.health.timer = Some(Deadline {
            at: now + after,
            token,
        });
    }

    fn arm_life(&mut self, at: Duration) {
        let token = self.token();
        self.life_timer = Some(Deadline { at, token });
    }

    /// Spawns now, or enters backoff until the spawn gap allows it.
    fn spawn_when_allowed(&mut self, now: Duration) {
        match self.last_spawn.map(|t| t + MIN_SPAWN_GAP) {
            Some(earliest) if earliest > now => {
                self.state = State::Backoff;
                self.arm_life(earliest);
            }
            _ => self.spawn(now),
        }
    }

    fn spawn(&mut self, now: Duration) {
        self.state = State::Starting { then: Goal::Up };
        self.last_spawn = Some(now);
        self.actions.push_back(Action::Spawn);
    }

    fn begin_run(&mut self, now: Duration, pid: u32) {
        self.state = State::Running { pid, since: now };
        self.health = HealthState::default();
        if let Some(h) = self.policy.health {
            self.arm_health(now, h.first_delay());
        }
        self.update_publish();
    }

    /// The process is gone or going: it no longer serves anything.
    fn end_run(&mut self) {
        self.health = HealthState::default();
        self.unpublish();
    }

    fn terminate(&mut self, now: Duration, pid: u32, then: Goal) {
        self.end_run();
        self.actions.push_back(Action::Signal {
            pid,
            signal: Signal::Term,
            group: true,
        });
        self.state = State::Stopping {
            pid,
            killed: false,
            then,
        };
        self.arm_life(now + self.policy.term_timeout);
    }

    fn after_crash(&mut self, now: Duration, ran: Duration) {
        let Some(respawn) = self.policy.respawn else {
            self.state = State::Failed;
            return;
        };
        if ran < respawn.threshold {
            self.crashes = self.crashes.saturating_add(1);
        } else {
            self.crashes = 0;
        }
        if respawn.retry > 0 && self.crashes > respawn.retry {
            self.state = State::Failed;
            self.log(
                Level::Error,
                format!(
                    "in a crash loop: {} crashes in a row, each under {}; failed",
                    self.crashes,
                    Secs(respawn.threshold)
                ),
            );
            return;
        }
        self.restarts = self.restarts.saturating_add(1);
        let delay = self.respawn_delay(respawn);
        let mut at = now + delay;
        if let Some(last) = self.last_spawn {
            at = at.max(last + MIN_SPAWN_GAP);
        }
        self.state = State::Backoff;
        self.arm_life(at);
        self.log(
            Level::Info,
            format!(
                "respawn in {} (crash {} of {})",
                Secs(at - now),
                self.crashes,
                if respawn.retry == 0 {
                    String::from("unlimited")
                } else {
                    format!("{}", respawn.retry)
                }
            ),
        );
    }

    /// `timeout`, or with backoff `timeout · 2^(crashes-1)` up to the cap.
    /// The doubling starts from at least the spawn gap so that `timeout 0`
    /// still backs off.
    fn respawn_delay(&self, respawn: Respawn) -> Duration {
        let Some(cap) = self.policy.backoff_max else {
            return respawn.timeout;
        };
        let base = respawn.timeout.max(MIN_SPAWN_GAP);
        let shift = self.crashes.saturating_sub(1).min(31);
        base.checked_mul(1u32 << shift)
            .unwrap_or(Duration::MAX)
            .min(cap.max(respawn.timeout))
    }

    fn record_probe(&mut self, ok: bool) {
        let Some(h) = self.policy.health else { return };
        if ok {
            self.health.failed_in_row = 0;
            self.health.ok_in_row = self.health.ok_in_row.saturating_add(1);
            if self.health.verdict != Some(true) && self.health.ok_in_row >= h.successes.max(1) {
                self.health.verdict = Some(true);
                self.log(Level::Info, "healthy".into());
            }
        } else {
            self.health.ok_in_row = 0;
            self.health.failed_in_row = self.health.failed_in_row.saturating_add(1);
            if self.health.verdict != Some(false) && self.health.failed_in_row >= h.failures.max(1)
            {
                self.health.verdict = Some(false);
                self.log(
                    Level::Warn,
                    format!(
                        "unhealthy: {} failed checks in a row",
                        self.health.failed_in_row
                    ),
                );
            }
        }
        self.update_publish();
    }

    /// Publishes or unpublishes so that `published` equals "should be".
    fn update_publish(&mut self) {
        let should = self.publish_enabled
            && self.policy.publish.is_some()
            && matches!(self.state, State::Running { .. })
            && (self.policy.health.is_none() || self.health.verdict == Some(true));
        if should && !self.published {
            if let Some(record) = self.policy.publish.clone() {
                self.published = true;
                self.actions.push_back(Action::Publish(record));
            }
        } else if !should {
            self.unpublish();
        }
    }

    fn unpublish(&mut self) {
        if self.published {
            self.published = false;
            if let Some(record) = self.policy.publish.clone() {
                self.actions.push_back(Action::Unpublish(record));
            }
        }
    }

    fn log(&mut self, level: Level, message: String) {
        self.actions.push_back(Action::Log { level, message });
    }
}

/// Seconds with one decimal, as a router owner reads them.
struct Secs(Duration);

impl core::fmt::Display for Secs {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let ms = self.0.as_millis();
        write!(f, "{}.{} s", ms / 1000, (ms % 1000) / 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const S: Duration = Duration::from_secs(1);

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn drain(i: &mut Instance) -> Vec<Action> {
        core::iter::from_fn(|| i.poll_action()).collect()
    }

    /// Actions without log lines: the behaviour, not the wording.
    fn acts(i: &mut Instance) -> Vec<Action> {
        drain(i)
            .into_iter()
            .filter(|a| !matches!(a, Action::Log { .. }))
            .collect()
    }

    fn fire(i: &mut Instance) -> Duration {
        let d = i.poll_timeout().expect("a timer is armed");
        i.handle(d.at, Event::Timer(d.token));
        d.at
    }

    fn quick(retry: u32) -> Policy {
        Policy {
            respawn: Some(Respawn {
                threshold: secs(10),
                timeout: S,
                retry,
            }),
            ..Policy::default()
        }
    }

    fn record() -> PublishRecord {
        PublishRecord {
            service_type: "http".into(),
            port: 8080,
            description: "web".into(),
            txt: vec![("path".into(), "/".into())],
        }
    }

    fn started(policy: Policy, pid: u32) -> Instance {
        let mut i = Instance::new("svc", policy);
        i.handle(Duration::ZERO, Event::Start);
        assert_eq!(acts(&mut i), vec![Action::Spawn]);
        i.handle(Duration::ZERO, Event::Spawned { pid });
        i
    }

    /// Crash at `now`, wait out the backoff, spawn again; returns the spawn time.
    fn crash_and_respawn(i: &mut Instance, now: Duration, pid: u32) -> Duration {
        i.handle(
            now,
            Event::Exited {
                pid,
                status: ExitStatus::Code(1),
            },
        );
        assert_eq!(i.status().state, StateName::Backoff);
        let at = fire(i);
        assert_eq!(acts(i), vec![Action::Spawn]);
        i.handle(at, Event::Spawned { pid: pid + 1 });
        at
    }

    #[test]
    fn crash_loop_fails_after_retry() {
        let mut i = started(quick(3), 100);
        let mut now = Duration::ZERO;
        let mut pid = 100;
        for _ in 0..3 {
            now = crash_and_respawn(&mut i, now, pid);
            pid += 1;
        }
        assert_eq!(i.status().restarts, 3);
        i.handle(
            now,
            Event::Exited {
                pid,
                status: ExitStatus::Code(1),
            },
        );
        assert_eq!(i.status().state, StateName::Failed);
        assert_eq!(i.poll_timeout(), None);
        let logs = drain(&mut i);
        assert!(logs.iter().any(|a| matches!(a,
            Action::Log { level: Level::Error, message } if message.contains("crash loop"))));
    }

    #[test]
    fn long_run_resets_the_count() {
        let mut i = started(quick(2), 100);
        let now = crash_and_respawn(&mut i, Duration::ZERO, 100);
        let now = crash_and_respawn(&mut i, now, 101);
        assert_eq!(i.status().crashes, 2);
        // This run lasts the whole threshold: not a crash.
        let now = crash_and_respawn(&mut i, now + secs(10), 102);
        assert_eq!(i.status().crashes, 0);
        let now = crash_and_respawn(&mut i, now, 103);
        let now = crash_and_respawn(&mut i, now, 104);
        assert_eq!(i.status().crashes, 2);
        assert_eq!(i.status().state, StateName::Running);
        i.handle(
            now,
            Event::Exited {
                pid: 105,
                status: ExitStatus::Code(1),
            },
        );
        assert_eq!(i.status().state, StateName::Failed);
    }

    #[test]
    fn retry_zero_restarts_forever() {
        let mut i = started(quick(0), 100);
        let mut now = Duration::ZERO;
        for n in 0..200 {
            now = crash_and_respawn(&mut i, now, 100 + n);
        }
        assert_eq!(i.status().state, StateName::Running);
        assert_eq!(i.status().restarts, 200);
    }

    #[test]
    fn respawn_waits_timeout_and_keeps_a_second_between_spawns() {
        let mut p = quick(0);
        p.respawn = Some(Respawn {
            timeout: Duration::ZERO,
            ..p.respawn.unwrap()
        });
        let mut i = started(p, 100);
        i.handle(
            Duration::from_millis(10),
            Event::Exited {
                pid: 100,
                status: ExitStatus::Code(1),
            },
        );
        assert_eq!(i.poll_timeout().unwrap().at, S);

        let mut i = started(quick(0), 100);
        i.handle(
            secs(3),
            Event::Exited {
                pid: 100,
                status: ExitStatus::Code(1),
            },
        );
        assert_eq!(i.poll_timeout().unwrap().at, secs(4));
    }

    #[test]
    fn start_right_after_a_spawn_waits_for_the_gap() {
        let mut i = started(quick(5), 100);
        i.handle(Duration::ZERO, Event::Stop);
        i.handle(
            Duration::from_millis(100),
            Event::Exited {
                pid: 100,
                status: ExitStatus::Signaled(15),
            },
        );
        assert_eq!(i.status().state, StateName::Stopped);
        drain(&mut i);
        i.handle(Duration::from_millis(200), Event::Start);
        assert_eq!(acts(&mut i), vec![]);
        assert_eq!(i.status().state, StateName::Backoff);
        assert_eq!(fire(&mut i), S);
        assert_eq!(acts(&mut i), vec![Action::Spawn]);
    }

    #[test]
    fn backoff_grows_and_caps() {
        let mut p = quick(0);
        p.backoff_max = Some(secs(8));
        let mut i = started(p, 100);
        let mut now = Duration::ZERO;
        let mut delays = vec![];
        for n in 0..6 {
            i.handle(
                now,
                Event::Exited {
                    pid: 100 + n,
                    status: ExitStatus::Code(1),
                },
            );
            let at = fire(&mut i);
            delays.push((at - now).as_secs());
            now = at;
            i.handle(now, Event::Spawned { pid: 101 + n });
        }
        assert_eq!(delays, vec![1, 2, 4, 8, 8, 8]);
    }

    #[test]
    fn term_timeout_escalates_to_sigkill() {
        let mut p = quick(5);
        p.term_timeout = secs(3);
        let mut i = started(p, 100);
        i.handle(secs(1), Event::Stop);
        assert_eq!(
            acts(&mut i),
            vec![Action::Signal {
                pid: 100,
                signal: Signal::Term,
                group: true
            }]
        );
        assert_eq!(i.status().state, StateName::Stopping);
        assert_eq!(fire(&mut i), secs(4));
        assert_eq!(
            acts(&mut i),
            vec![Action::Signal {
                pid: 100,
                signal: Signal::Kill,
                group: true
            }]
        );
        i.handle(
            secs(4),
            Event::Exited {
                pid: 100,
                status: ExitStatus::Signaled(9),
            },
        );
        assert_eq!(i.status().state, StateName::Stopped);
        assert_eq!(i.poll_timeout(), None);
    }

    #[test]
    fn exit_after_sigterm_cancels_the_kill() {
        let mut i = started(quick(5), 100);
        i.handle(secs(1), Event::Stop);
        let stale = i.poll_timeout().unwrap();
        i.handle(
            secs(2),
            Event::Exited {
                pid: 100,
                status: ExitStatus::Signaled(15),
            },
        );
        drain(&mut i);
        i.handle(stale.at, Event::Timer(stale.token));
        assert_eq!(acts(&mut i), vec![]);
        assert_eq!(i.status().state, StateName::Stopped);
    }

    #[test]
    fn restart_stops_then_spawns_without_counting_a_crash() {
        let mut i = started(quick(1), 100);
        i.handle(secs(5), Event::Restart);
        assert!(matches!(
            acts(&mut i)[..],
            [Action::Signal {
                signal: Signal::Term,
                ..
            }]
        ));
        i.handle(
            secs(5),
            Event::Exited {
                pid: 100,
                status: ExitStatus::Signaled(15),
            },
        );
        assert_eq!(acts(&mut i), vec![Action::Spawn]);
        assert_eq!(i.status().crashes, 0);
        assert_eq!(i.status().restarts, 1);
    }

    /// Regression: a restart inside the spawn gap went through backoff and
    /// was counted twice.
    #[test]
    fn restart_within_the_spawn_gap_counts_once() {
        let mut i = started(quick(5), 100);
        i.handle(Duration::from_millis(100), Event::Restart);
        i.handle(
            Duration::from_millis(200),
            Event::Exited {
                pid: 100,
                status: ExitStatus::Signaled(15),
            },
        );
        assert_eq!(i.status().state, StateName::Backoff);
        fire(&mut i);
        assert_eq!(i.status().restarts, 1);
    }

    #[test]
    fn stop_during_backoff_cancels_the_respawn() {
        let mut i = started(quick(5), 100);
        i.handle(
            Duration::ZERO,
            Event::Exited {
                pid: 100,
                status: ExitStatus::Code(1),
            },
        );
        let stale = i.poll_timeout().unwrap();
        i.handle(Duration::ZERO, Event::Stop);
        assert_eq!(i.poll_timeout(), None);
        i.handle(stale.at, Event::Timer(stale.token));
        assert_eq!(acts(&mut i), vec![]);
        assert_eq!(i.status().state, StateName::Stopped);
    }

    #[test]
    fn stop_while_starting_terminates_once_spawned() {
        let mut i = Instance::new("svc", quick(5));
        i.handle(Duration::ZERO, Event::Start);
        i.handle(Duration::ZERO, Event::Stop);
        drain(&mut i);
        i.handle(Duration::ZERO, Event::Spawned { pid: 7 });
        assert!(matches!(
            acts(&mut i)[..],
            [Action::Signal {
                pid: 7,
                signal: Signal::Term,
                ..
            }]
        ));
    }

    #[test]
    fn spawn_failure_counts_as_a_crash() {
        let mut i = Instance::new("svc", quick(1));
        i.handle(Duration::ZERO, Event::Start);
        drain(&mut i);
        i.handle(Duration::ZERO, Event::SpawnFailed);
        assert_eq!(i.status().state, StateName::Backoff);
        let at = fire(&mut i);
        assert_eq!(acts(&mut i), vec![Action::Spawn]);
        i.handle(at, Event::SpawnFailed);
        assert_eq!(i.status().state, StateName::Failed);
    }

    #[test]
    fn exits_of_unknown_pids_are_ignored() {
        let mut i = started(quick(5), 100);
        i.handle(
            secs(1),
            Event::Exited {
                pid: 99,
                status: ExitStatus::Code(1),
            },
        );
        assert_eq!(i.status().state, StateName::Running);
        assert_eq!(i.status().pid, Some(100));
    }

    #[test]
    fn reload_sends_the_reload_signal_to_the_pid_only() {
        let mut p = quick(5);
        p.reload_signal = Signal::Usr1;
        let mut i = started(p, 100);
        i.handle(secs(1), Event::Reload);
        assert_eq!(
            acts(&mut i),
            vec![Action::Signal {
                pid: 100,
                signal: Signal::Usr1,
                group: false
            }]
        );
    }

    #[test]
    fn no_respawn_leaves_a_clean_exit_stopped_and_an_error_failed() {
        let mut p = quick(5);
        p.respawn = None;
        let mut i = started(p.clone(), 100);
        i.handle(
            secs(1),
            Event::Exited {
                pid: 100,
                status: ExitStatus::Code(0),
            },
        );
        assert_eq!(i.status().state, StateName::Stopped);
        let mut i = started(p, 100);
        i.handle(
            secs(1),
            Event::Exited {
                pid: 100,
                status: ExitStatus::Code(2),
            },
        );
        assert_eq!(i.status().state, StateName::Failed);
        assert_eq!(i.poll_timeout(), None);
    }

    fn checked(failures: u32, successes: u32) -> Policy {
        Policy {
            health: Some(HealthTiming {
                interval: secs(2),
                timeout: S,
                failures,
                successes,
            }),
            publish: Some(record()),
            ..quick(5)
        }
    }

    /// Runs one probe: waits for the interval timer, answers it.
    fn probe(i: &mut Instance, healthy: bool) -> Vec<Action> {
        let at = fire(i);
        let token = match acts(i)[..] {
            [Action::RunHealthCheck { token }] => token,
            ref other => panic!("expected a probe, got {other:?}"),
        };
        i.handle(at, Event::HealthResult { token, healthy });
        acts(i)
    }

    #[test]
    fn health_flips_publish_and_unpublish() {
        let mut i = started(checked(2, 1), 100);
        assert_eq!(acts(&mut i), vec![], "nothing published before a check");
        assert_eq!(probe(&mut i, true), vec![Action::Publish(record())]);
        assert_eq!(i.status().health, Health::Healthy);
        assert_eq!(probe(&mut i, true), vec![]);
        assert_eq!(probe(&mut i, false), vec![], "one failure is tolerated");
        assert_eq!(probe(&mut i, false), vec![Action::Unpublish(record())]);
        assert_eq!(i.status().health, Health::Unhealthy);
        assert_eq!(probe(&mut i, true), vec![Action::Publish(record())]);
    }

    #[test]
    fn successes_before_healthy_are_counted_in_a_row() {
        let mut i = started(checked(1, 2), 100);
        assert_eq!(probe(&mut i, true), vec![]);
        assert_eq!(probe(&mut i, false), vec![]);
        assert_eq!(probe(&mut i, true), vec![]);
        assert_eq!(probe(&mut i, true), vec![Action::Publish(record())]);
    }

    #[test]
    fn unanswered_probe_times_out_as_a_failure() {
        let mut i = started(checked(1, 1), 100);
        assert_eq!(probe(&mut i, true), vec![Action::Publish(record())]);
        fire(&mut i);
        let token = match acts(&mut i)[..] {
            [Action::RunHealthCheck { token }] => token,
            ref other => panic!("expected a probe, got {other:?}"),
        };
        let at = fire(&mut i);
        assert_eq!(acts(&mut i), vec![Action::Unpublish(record())]);
        // The late answer belongs to a probe that already failed.
        i.handle(
            at,
            Event::HealthResult {
                token,
                healthy: true,
            },
        );
        assert_eq!(acts(&mut i), vec![]);
        assert_eq!(i.status().health, Health::Unhealthy);
    }

    #[test]
    fn exit_unpublishes_at_once_and_a_new_run_starts_unknown() {
        let mut i = started(checked(1, 1), 100);
        probe(&mut i, true);
        i.handle(
            secs(5),
            Event::Exited {
                pid: 100,
                status: ExitStatus::Code(1),
            },
        );
        assert_eq!(acts(&mut i), vec![Action::Unpublish(record())]);
        assert_eq!(i.status().health, Health::Unknown);
    }

    #[test]
    fn stop_unpublishes_before_the_process_is_gone() {
        let mut i = started(checked(1, 1), 100);
        probe(&mut i, true);
        i.handle(secs(5), Event::Stop);
        assert_eq!(
            acts(&mut i),
            vec![
                Action::Unpublish(record()),
                Action::Signal {
                    pid: 100,
                    signal: Signal::Term,
                    group: true
                }
            ]
        );
    }

    #[test]
    fn without_a_check_running_is_enough_to_publish() {
        let mut p = quick(5);
        p.publish = Some(record());
        let mut i = Instance::new("svc", p);
        i.handle(Duration::ZERO, Event::Start);
        drain(&mut i);
        i.handle(Duration::ZERO, Event::Spawned { pid: 1 });
        assert_eq!(acts(&mut i), vec![Action::Publish(record())]);
        i.handle(Duration::ZERO, Event::SetPublish(false));
        assert_eq!(acts(&mut i), vec![Action::Unpublish(record())]);
        i.handle(Duration::ZERO, Event::SetPublish(true));
        assert_eq!(acts(&mut i), vec![Action::Publish(record())]);
    }

    #[test]
    fn publish_off_by_default_waits_for_set_publish() {
        let mut p = quick(5);
        p.publish = Some(record());
        p.publish_by_default = false;
        let mut i = Instance::new("svc", p);
        i.handle(Duration::ZERO, Event::Start);
        drain(&mut i);
        i.handle(Duration::ZERO, Event::Spawned { pid: 1 });
        assert_eq!(acts(&mut i), vec![]);
        assert!(!i.status().published);
        i.handle(Duration::ZERO, Event::SetPublish(true));
        assert_eq!(acts(&mut i), vec![Action::Publish(record())]);
    }

    #[test]
    fn adopted_process_runs_without_a_spawn() {
        let mut i = Instance::new("svc", quick(5));
        i.handle(secs(1), Event::Adopted { pid: 55 });
        assert_eq!(acts(&mut i), vec![]);
        assert_eq!(i.status().pid, Some(55));
        i.handle(
            secs(2),
            Event::Exited {
                pid: 55,
                status: ExitStatus::Unknown,
            },
        );
        assert_eq!(i.status().state, StateName::Backoff);
    }

    #[test]
    fn signal_names_parse_with_or_without_prefix() {
        assert_eq!(Signal::from_name("SIGHUP"), Some(Signal::Hup));
        assert_eq!(Signal::from_name("usr2"), Some(Signal::Usr2));
        assert_eq!(Signal::from_name("BOGUS"), None);
    }
}
