//! One gossip host: a [`nuvol_gossip::Node`] with the socket, clock, wake-up
//! channel and saved-state file the IO loops ([`crate::shell`]) run it with.
//! The agent's LAN node and a super node's federation pool node are each
//! one `GossipHost`, opened the same way ([`GossipHost::open`]: seeded from
//! the OS, saved state imported, a corrupt state file moved aside) and
//! saved the same way ([`GossipHost::save_if_changed`]); they differ only in
//! what they do with the node's events.
//!
//! The node sits in a `RefCell` that a task borrows only between awaits:
//! no borrow is ever held across IO.

use std::cell::{Cell, Ref, RefCell, RefMut};
use std::net::UdpSocket;
use std::rc::Rc;
use std::time::Duration;

use nuvol_gossip as g;
use smol::channel::{self, Receiver, Sender};
use smol::Async;

use crate::executor::Executor;
use crate::exit::{temporary, Exit};
use crate::log;
use crate::state::{Loaded, StateDir};

/// What a host is opened with.
pub struct HostSpec {
    pub identity: g::Identity,
    pub config: g::Config,
    pub keyring: g::Keyring,
    /// The node's own tags, set after its saved state is imported.
    pub tags: Vec<(String, String)>,
    /// The node's file in the state directory.
    pub state_file: &'static str,
    /// Bound on one push-pull exchange, connect to reply.
    pub stream_timeout: Duration,
    /// Names the node in log lines ("" for the LAN node, "federation: ").
    pub log_prefix: &'static str,
    /// A RAM copy of the state file ([`crate::state::volatile_dir`]): it gets
    /// every change and is read first; the state directory (flash) gets
    /// the state at most every [`FLASH_INTERVAL`] and on [`GossipHost::persist`].
    pub volatile: Option<StateDir>,
}

/// How often at most a changed state reaches the state directory while a
/// RAM copy takes every change (the file changes with each join, leave and
/// refutation: too often for a router's flash).
pub const FLASH_INTERVAL: Duration = Duration::from_secs(3600);

pub struct GossipHost {
    node: RefCell<g::Node>,
    udp: Async<UdpSocket>,
    pub ex: Rc<Executor>,
    wake: Sender<()>,
    /// The node's clock starts with the host.
    clock: std::time::Instant,
    refusals: Refusals,
    last_saved: RefCell<Vec<u8>>,
    volatile: Option<StateDir>,
    last_volatile: RefCell<Vec<u8>>,
    /// When the state directory was last written (time since the host opened).
    flashed_at: Cell<Duration>,
    /// Whether the state came from the RAM copy (a restart, not a boot).
    pub from_ram: bool,
    state_file: &'static str,
    pub stream_timeout: Duration,
    pub log_prefix: &'static str,
}

impl GossipHost {
    /// Builds the node with a fresh random seed, restores its saved state
    /// from `dir` and sets its tags. A state file of another node name is
    /// ignored; one that does not import is moved aside (`NAME.corrupt`)
    /// and the node starts fresh. The receiver wakes the host's timer loop.
    pub fn open(
        spec: HostSpec,
        udp: UdpSocket,
        ex: Rc<Executor>,
        dir: &StateDir,
    ) -> Result<(GossipHost, Receiver<()>), Exit> {
        let mut seed = [0u8; 8];
        getrandom::getrandom(&mut seed)
            .map_err(|e| Exit::Temporary(format!("no randomness: {e}")))?;
        let name = spec.identity.name.clone();
        let mut node = g::Node::new(
            spec.identity,
            spec.config,
            spec.keyring,
            u64::from_le_bytes(seed),
        );
        let file = spec.state_file;
        // The RAM copy, when this boot has one, is as new as flash or newer.
        let from_ram = spec
            .volatile
            .as_ref()
            .and_then(|v| match v.load_raw(file) {
                Loaded::Ok(bytes) => Some(bytes),
                _ => None,
            })
            .is_some_and(|bytes| node.import_state(&bytes).is_ok());
        match if from_ram {
            Loaded::Missing
        } else {
            dir.load_raw(file)
        } {
            Loaded::Ok(bytes) => match node.import_state(&bytes) {
                Ok(()) => {}
                Err(g::InputError::OtherNode) => log::warn(&format!(
                    "{}state in {} belongs to another node name; starting fresh as {name}",
                    spec.log_prefix,
                    dir.path().display(),
                )),
                Err(e) => {
                    dir.move_aside(file);
                    dir.warn_corrupt(file, &e.to_string());
                }
            },
            Loaded::Missing => {}
            Loaded::Corrupt(why) => dir.warn_corrupt(file, &why),
        }
        // Tags are tiny; they cannot exceed a datagram.
        let _ = node.set_tags(spec.tags);
        let (wake, wake_rx) = channel::bounded(1);
        let prefix = spec.log_prefix;
        let udp = Async::new(udp).map_err(temporary(format!("{prefix}UDP socket")))?;
        let host = GossipHost {
            node: RefCell::new(node),
            udp,
            ex,
            wake,
            clock: std::time::Instant::now(),
            refusals: Refusals::default(),
            last_saved: RefCell::new(Vec::new()),
            volatile: spec.volatile,
            last_volatile: RefCell::new(Vec::new()),
            flashed_at: Cell::new(Duration::ZERO),
            from_ram,
            state_file: file,
            stream_timeout: spec.stream_timeout,
            log_prefix: prefix,
        };
        Ok((host, wake_rx))
    }

    /// The node, borrowed for one step (never across an await).
    pub fn node(&self) -> RefMut<'_, g::Node> {
        self.node.borrow_mut()
    }

    /// The node, borrowed to read.
    pub fn node_ref(&self) -> Ref<'_, g::Node> {
        self.node.borrow()
    }

    /// The node's clock: milliseconds since the host opened.
    pub fn now(&self) -> g::Instant {
        g::Instant::from_millis(self.clock.elapsed().as_millis() as u64)
    }

    /// Time since the host opened.
    pub fn elapsed(&self) -> Duration {
        self.clock.elapsed()
    }

    pub fn udp(&self) -> &Async<UdpSocket> {
        &self.udp
    }

    /// Wakes the timer loop (the node's deadline may have moved).
    pub fn wake(&self) {
        let _ = self.wake.try_send(());
    }

    /// Largest push-pull body accepted: the node's own bound.
    pub fn max_stream_len(&self) -> usize {
        self.node.borrow().config().max_stream_len
    }

    /// Warns of refused members and services (at most once a minute).
    pub fn check_refusals(&self) {
        self.refusals.check(self);
    }

    /// Writes the node's state, if it changed, to the RAM copy, and to `dir`
    /// when [`FLASH_INTERVAL`] has passed since its last write there (at
    /// once without a RAM copy).
    pub fn save_if_changed(&self, dir: &StateDir) {
        self.save(dir, false);
    }

    /// Writes the node's state, if it changed, to `dir` now (and the RAM
    /// copy): after a boot, an owner's publish, and at stop.
    pub fn persist(&self, dir: &StateDir) {
        self.save(dir, true);
    }

    fn save(&self, dir: &StateDir, to_flash: bool) {
        let bytes = self.node.borrow().export_state();
        let mut to_flash = to_flash || self.volatile.is_none();
        if let Some(v) = &self.volatile {
            if bytes != *self.last_volatile.borrow() {
                match v.save_raw(self.state_file, &bytes) {
                    Ok(()) => *self.last_volatile.borrow_mut() = bytes.clone(),
                    Err(_) => to_flash = true,
                }
            }
        }
        let now = self.clock.elapsed();
        let due = to_flash || now.saturating_sub(self.flashed_at.get()) >= FLASH_INTERVAL;
        if bytes == *self.last_saved.borrow() || !due {
            return;
        }
        match dir.save_raw(self.state_file, &bytes) {
            Ok(()) => {
                *self.last_saved.borrow_mut() = bytes;
                self.flashed_at.set(now);
            }
            Err(e) => log::warn(&format!(
                "{}cannot save state to {}: {e}",
                self.log_prefix,
                dir.path().display()
            )),
        }
    }
}

/// How often at most the owner is told of members or services refused.
const REFUSAL_WARNING_EVERY: Duration = Duration::from_secs(60);

/// Tells the owner why members or services are missing: the core counts
/// names it refused for a full member table (`Stats::members_refused`) and
/// services refused for a full catalog (`Stats::services_refused`); this
/// warns on the first refusal and then at most once a minute, so a flood
/// of fakes cannot flood the log too.
#[derive(Default)]
struct Refusals {
    /// The counts (members, services) at the last warning, and when it was given.
    warned: Cell<(u64, u64)>,
    at: Cell<Option<g::Instant>>,
}

impl Refusals {
    /// Warns if refusals grew since the last warning and that was long enough ago.
    fn check(&self, host: &GossipHost) {
        let now = host.now();
        let (members, services, cap) = {
            let node = host.node_ref();
            let st = node.stats();
            (
                st.members_refused,
                st.services_refused,
                node.config().max_members,
            )
        };
        let due = self
            .at
            .get()
            .is_none_or(|t| now.saturating_since(t) >= REFUSAL_WARNING_EVERY);
        let (warned_members, warned_services) = self.warned.get();
        if (members <= warned_members && services <= warned_services) || !due {
            return;
        }
        if members > warned_members {
            log::warn(&format!(
                "{}member table full ({cap} members): {} new member(s) refused ({members} in all); \
                 if the microcloud has grown that large, raise max_members \
                 (list gossip 'max_members=N'), else someone is sending fake members",
                host.log_prefix,
                members - warned_members
            ));
        }
        if services > warned_services {
            log::warn(&format!(
                "{}{} service record(s) refused ({services} in all): a node's catalog holds \
                 at most {} services; someone is sending fake services",
                host.log_prefix,
                services - warned_services,
                g::MAX_SLOTS
            ));
        }
        self.warned.set((members, services));
        self.at.set(Some(now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, file: &'static str) -> HostSpec {
        HostSpec {
            identity: g::Identity::new(name, "127.0.0.1:7946".parse().unwrap()),
            config: g::Config::lan(),
            keyring: g::Keyring::plaintext(),
            tags: Vec::new(),
            state_file: file,
            stream_timeout: Duration::from_secs(1),
            log_prefix: "test: ",
            volatile: None,
        }
    }

    fn open(name: &str, file: &'static str, dir: &StateDir) -> GossipHost {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("a loopback socket");
        let ex = Rc::new(Executor::new());
        GossipHost::open(spec(name, file), udp, ex, dir)
            .expect("opens")
            .0
    }

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("nuvol-host-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn state_that_does_not_import_is_moved_aside_for_either_host() {
        // The pool used to only warn and keep the file; both hosts now move
        // it aside, so the next start does not trip over it again.
        let path = temp_dir("corrupt");
        let dir = StateDir::open(&path).unwrap();
        for file in ["node", "federation"] {
            dir.save_raw(file, b"not a node state").unwrap();
            let host = open("a", file, &dir);
            assert!(!path.join(file).exists(), "{file} left in place");
            assert!(path.join(format!("{file}.corrupt")).exists());
            // And the fresh state is saved once, then not again unchanged.
            host.save_if_changed(&dir);
            assert!(path.join(file).exists());
        }
        let _ = std::fs::remove_dir_all(&path);
    }

    #[test]
    fn with_a_ram_copy_changes_reach_flash_only_when_persisted_and_restarts_read_ram() {
        let path = temp_dir("ram");
        let ram = temp_dir("ram-copy");
        let dir = StateDir::open(&path).unwrap();
        let with_ram = |name| {
            let udp = UdpSocket::bind("127.0.0.1:0").expect("a loopback socket");
            let mut s = spec(name, "node");
            s.volatile = Some(StateDir::open(&ram).unwrap());
            GossipHost::open(s, udp, Rc::new(Executor::new()), &dir)
                .expect("opens")
                .0
        };
        let first = with_ram("a");
        assert!(!first.from_ram, "nothing in RAM yet");
        first.persist(&dir); // what the agent does after a boot
        let flashed = std::fs::read(path.join("node")).unwrap();
        // A change: RAM only, the flash copy stays as it was.
        first
            .node()
            .set_tags(vec![("k".into(), "v".into())])
            .unwrap();
        first.save_if_changed(&dir);
        assert_eq!(std::fs::read(path.join("node")).unwrap(), flashed);
        assert_ne!(std::fs::read(ram.join("node")).unwrap(), flashed);
        // A restart reads the RAM copy: newer, with a higher incarnation.
        let incarnation = first.node_ref().incarnation();
        let again = with_ram("a");
        assert!(again.from_ram);
        assert!(again.node_ref().incarnation() > incarnation);
        // Persisting writes flash now.
        again.persist(&dir);
        assert_ne!(std::fs::read(path.join("node")).unwrap(), flashed);
        let _ = std::fs::remove_dir_all(&path);
        let _ = std::fs::remove_dir_all(&ram);
    }

    #[test]
    fn saved_state_comes_back_and_another_name_starts_fresh() {
        let path = temp_dir("restore");
        let dir = StateDir::open(&path).unwrap();
        let first = open("a", "node", &dir);
        let incarnation = first.node_ref().incarnation();
        first.save_if_changed(&dir);
        let again = open("a", "node", &dir);
        assert!(again.node_ref().incarnation() > incarnation);
        // Another node's file is ignored, not moved aside.
        let other = open("b", "node", &dir);
        assert_eq!(other.node_ref().name(), "b");
        assert!(!path.join("node.corrupt").exists());
        let _ = std::fs::remove_dir_all(&path);
    }
}
