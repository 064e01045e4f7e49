//! SWIM + Lifeguard membership, service catalog dissemination and Vivaldi
//! coordinates for nuvol, as a sans-IO state machine (`no_std + alloc`).
//!
//! A [`Node`] is one member of a microcloud. The shell (the `nuvol` agent, or
//! the [`sim`] simulator) feeds it time, datagrams and streams, and drains
//! datagrams, streams, events and the next deadline:
//!
//! ```
//! use nuvol_gossip::{Config, Identity, Instant, Key, Keyring, Node, Transmit};
//! let key = Key::from_bytes([1; 32]);
//! let mut a = Node::new(Identity::new("a", "10.0.0.1:7946".parse().unwrap()),
//!                       Config::lan(), Keyring::new(key.clone()), 1);
//! let mut b = Node::new(Identity::new("b", "10.0.0.2:7946".parse().unwrap()),
//!                       Config::lan(), Keyring::new(key), 2);
//! let now = Instant::from_millis(0);
//! a.join(now, &[b.addr()]);
//! // The shell would carry this over TCP; here we hand it over directly.
//! let Some(Transmit::Stream { bytes, .. }) = a.poll_transmit() else { panic!() };
//! let reply = b.handle_stream(now, a.addr(), &bytes).unwrap().unwrap();
//! assert_eq!(a.handle_stream(now, b.addr(), &reply).unwrap(), None);
//! assert_eq!(a.num_live(), 2);
//! assert_eq!(b.num_live(), 2);
//! ```
//!
//! Guarantees: no clock, no IO, randomness only from the seed; decoding of
//! untrusted bytes never panics and allocates at most in proportion to the
//! input; everything sent is sealed under the keyring's primary key. The wire
//! format is specified in `docs/protocol.md`.
#![no_std]
extern crate alloc;

mod broadcast;
pub mod catalog;
pub mod config;
pub mod keyring;
mod node;
mod rng;
pub mod sim;
mod sorted;
mod suspicion;
pub mod time;
pub mod vivaldi;
pub mod wire;

pub use catalog::{Health, SearchFilter, SearchResult, ServiceRecord, MAX_OWN_RECORDS, MAX_SLOTS};
pub use config::{Config, ConfigError};
pub use keyring::{Key, KeyError, Keyring, OpenError};
pub use node::{
    Event, Identity, InputError, Member, MemberState, Node, OpError, QueryId, QueryParams, Stats,
    Transmit,
};
pub use time::Instant;
pub use vivaldi::Coordinate;
pub use wire::WireError;
