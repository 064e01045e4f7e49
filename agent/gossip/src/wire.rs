//! The CBOR wire format, versioned, with a hand-written codec.
//!
//! A datagram, once opened by the keyring, is `[version, [message, …]]`; each
//! message is a flat array `[type, field0, field1, …]`. A push-pull stream is
//! one [`PushPull`]. Field indexes are never renumbered: new fields are only
//! appended and old decoders ignore them; an unknown message type inside a
//! datagram is skipped, not fatal. docs/protocol.md specifies every message
//! with golden byte vectors (checked both ways by the tests).
//!
//! Decoding untrusted bytes never panics, and what it builds is charged
//! against a budget as it goes (`Dec`): a fixed one per datagram, the
//! caller's per push-pull ([`crate::Config::decode_budget`], a multiple of
//! [`crate::Config::max_stream_len`], which bounds the input). A few bytes
//! can name a value of hundreds (a 5-byte catalog tombstone is a 200-byte
//! entry), so bounding the input alone would not bound the memory.
//!
//! The codec is written out rather than derived: the derived code, one
//! generic copy per type and field, was 13 KiB of the aarch64 binary more.
//! It writes through a small `Writer` and reads with minicbor's
//! [`Decoder`], calling the same decoder primitives in the same order as the
//! `minicbor` derive it replaced, so it writes the same bytes and accepts and
//! refuses the same inputs. A struct's index `i` is its position `i` in the
//! array, as in docs/protocol.md.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use minicbor::data::Type;
use minicbor::decode::Error;
use minicbor::Decoder;

// `CatalogEntry` lives beside the catalog that applies it; it is re-exported
// here because it is part of the wire format.
pub use crate::catalog::CatalogEntry;
use crate::catalog::{Health, ServiceRecord};
use crate::vivaldi::WireCoordinate;

/// Wire format version carried by every datagram and stream.
pub const VERSION: u8 = 1;

// ----- bounds -----
//
// Every field a peer sends has a bound, enforced while decoding: a message
// with one value over it is refused whole ([`WireError::OutOfBounds`]), so
// no hostile length reaches the member table, the catalog or a join reply.
// The bounds are fixed by the protocol, not by a node's `mtu`, so every
// node refuses the same messages, and a node refuses to send what its
// peers would refuse (see [`fits_bounds`]).

/// Member names, and the names of a `from`, an origin or a query's node
/// list: a node name, or a federation pool's `MICROCLOUD/NAME`.
pub const MAX_NAME: usize = 128;
/// Service types, tag and TXT keys.
pub const MAX_KEY: usize = 64;
/// Tag and TXT values, and a record's description, host and microcloud.
pub const MAX_VALUE: usize = 255;
/// A record's IP as text (an IPv6 address with a zone fits).
pub const MAX_IP: usize = 64;
/// Pairs in one tag set, TXT or query tag filter.
pub const MAX_PAIRS: usize = 32;
/// Keys and values of one tag set or TXT together.
pub const MAX_PAIRS_BYTES: usize = 1024;
/// Event and query names.
pub const MAX_EVENT_NAME: usize = 128;
/// Event, query and answer payloads (Serf's default event limit is 512).
pub const MAX_PAYLOAD: usize = 1024;
/// Nodes a query names.
pub const MAX_QUERY_NODES: usize = 64;
/// Entries in one catalog: [`crate::catalog::MAX_SLOTS`].
pub const MAX_ENTRIES: usize = crate::catalog::MAX_SLOTS;
/// No believable counter is ever this high (it takes 2^31 forged jumps of
/// [`MAX_JUMP`]); a message carrying one is refused at decode.
pub const MAX_COUNTER: u64 = 1 << 63;

// Every counter a peer can move (incarnations, catalog versions, tag and
// event Lamport times) only ever moves up, and a claim may move it at most
// [`MAX_JUMP`] above what the receiver holds (0 for a name it does not
// know): a forged value near `u64::MAX` is refused by everyone instead of
// pinning the counter where its owner can no longer outbid it. Reaching
// `u64::MAX` in believable steps takes 2^32 forged messages in a row.
// docs/protocol.md §13 states these rules.

/// The largest step up a received counter may take over the value held.
pub const MAX_JUMP: u64 = 1 << 32;

/// Whether `claimed` is a believable successor of `held`: at most
/// [`MAX_JUMP`] above it. Anything lower is believable (and usually stale).
pub fn believable(held: u64, claimed: u64) -> bool {
    claimed <= held.saturating_add(MAX_JUMP)
}

/// Why bytes were refused. Nothing was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// Not valid CBOR for the expected shape.
    Malformed,
    /// A version this node does not speak.
    Version(u8),
    /// Larger than the configured bound.
    TooLarge,
    /// A field over its protocol bound (named; see the bounds above).
    OutOfBounds(&'static str),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Malformed => f.write_str("malformed gossip message"),
            WireError::Version(v) => write!(f, "unsupported gossip wire version {v}"),
            WireError::TooLarge => f.write_str("gossip message too large"),
            WireError::OutOfBounds(field) => {
                write!(f, "gossip message refused: {field} over its bound")
            }
        }
    }
}

impl From<minicbor::decode::Error> for WireError {
    fn from(_: minicbor::decode::Error) -> WireError {
        WireError::Malformed
    }
}

/// Membership state as gossiped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireState {
    Alive = 0,
    Suspect = 1,
    Dead = 2,
    Left = 3,
}

/// A datagram message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Are you alive? `target` is the name the prober expects at this address.
    Ping { seq: u32, target: String },
    /// Please probe `target` for me; answer with an ack (and a nack if asked
    /// and the target stays silent).
    IndirectPing {
        seq: u32,
        target: String,
        target_addr: SocketAddr,
        nack: bool,
    },
    /// Alive; carries the responder's Vivaldi coordinate on direct acks.
    Ack {
        seq: u32,
        coord: Option<WireCoordinate>,
    },
    /// The intermediary got no answer from the target (Lifeguard).
    Nack { seq: u32 },
    Alive {
        name: String,
        addr: SocketAddr,
        incarnation: u64,
    },
    Suspect {
        name: String,
        incarnation: u64,
        from: String,
    },
    /// Declared dead by `from`; `from == name` means it left gracefully.
    Dead {
        name: String,
        incarnation: u64,
        from: String,
    },
    /// A node's tags, Lamport-stamped by their owner (newest wins).
    Tags {
        name: String,
        lamport: u64,
        tags: Vec<(String, String)>,
    },
    /// One catalog slot of `node` changed.
    Service { node: String, entry: CatalogEntry },
    UserEvent {
        lamport: u64,
        origin: String,
        name: String,
        payload: Vec<u8>,
    },
    Query {
        id: u32,
        lamport: u64,
        origin: String,
        origin_addr: SocketAddr,
        name: String,
        payload: Vec<u8>,
        /// Only these nodes answer (all when empty).
        nodes: Vec<String>,
        /// Only nodes whose tags match every pair answer.
        tags: Vec<(String, String)>,
        timeout_ms: u32,
    },
    /// Sent straight to the asker.
    QueryResponse {
        id: u32,
        from: String,
        payload: Vec<u8>,
    },
}

/// Highest message type this version knows; higher ones are skipped.
const MAX_MESSAGE_TYPE: u32 = 11;

/// A member as exchanged by push-pull.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberRecord {
    pub name: String,
    pub addr: SocketAddr,
    pub incarnation: u64,
    pub state: WireState,
    /// 0: no tags carried (none set, or left out of a reply), never merged.
    pub tags_lamport: u64,
    pub tags: Vec<(String, String)>,
    /// The sender's own always; other members' only in join push-pulls.
    pub coord: Option<WireCoordinate>,
}

/// The full catalog of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogState {
    pub node: String,
    pub version: u64,
    pub entries: Vec<CatalogEntry>,
}

/// Push-pull anti-entropy over a stream: a request carries its sender's
/// whole state, the reply only what the request did not show
/// (docs/protocol.md §5).
#[derive(Debug, Clone, PartialEq)]
pub struct PushPull {
    pub version: u8,
    /// Sent by a joining node; the answer echoes it (with `reply` set).
    pub join: bool,
    /// An answer; never answered again.
    pub reply: bool,
    pub from: String,
    pub members: Vec<MemberRecord>,
    pub catalogs: Vec<CatalogState>,
    pub event_clock: u64,
    pub query_clock: u64,
    /// A stream probe (wire version 1, added later; absent otherwise): the
    /// request carries the prober's sequence number and nothing else, the
    /// reply echoes it as the ack. Never merged as state. A node that does
    /// not know this field answers with its full state instead, which the
    /// prober merges as an ordinary push-pull.
    pub ping: Option<u32>,
}

/// What a node persists to rejoin after a restart.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedState {
    pub version: u8,
    pub name: String,
    pub incarnation: u64,
    pub tags_lamport: u64,
    pub tags: Vec<(String, String)>,
    pub catalog: CatalogState,
    /// Known peers `(name, addr)`, rejoined through on start.
    pub peers: Vec<Peer>,
    pub event_clock: u64,
    pub query_clock: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    pub addr: SocketAddr,
}

/// Whether one encoded message is within every bound: a node checks its
/// own records, tags, events and queries before sending them, so that it
/// never sends what its peers refuse. `Err` names the field over.
pub fn fits_bounds(message: &[u8]) -> Result<(), &'static str> {
    let mut d = Dec::new(Decoder::new(message), PACKET_BUDGET);
    match self::message(&mut d) {
        Ok(_) => Ok(()),
        Err(_) => Err(d.over.unwrap_or("message")),
    }
}

/// Encode one message (for packing under the MTU).
pub fn encode_message(m: &Message) -> Vec<u8> {
    let mut w = Writer::default();
    w.message(m);
    w.0
}

/// Start a datagram payload: `[version, [_` (messages follow, each already
/// encoded, then [`finish_packet`]). The message list is an indefinite-length
/// array so messages can be appended as they are chosen.
pub fn begin_packet(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0x82, VERSION, 0x9f]);
}

/// Close a payload started with [`begin_packet`].
pub fn finish_packet(out: &mut Vec<u8>) {
    out.push(0xff);
}

/// Bytes [`begin_packet`] and [`finish_packet`] add around the messages.
pub const PACKET_OVERHEAD: usize = 4;

/// Encode a datagram payload.
pub fn encode_packet(messages: &[Message]) -> Vec<u8> {
    let mut w = Writer::default();
    begin_packet(&mut w.0);
    for m in messages {
        w.message(m);
    }
    finish_packet(&mut w.0);
    w.0
}

/// What decoding one datagram may charge (see [`Dec`]): honest ones, at
/// most an MTU long, take a small part of it; a hostile 64 KiB one of
/// minimal messages is refused past it.
const PACKET_BUDGET: usize = 1 << 20;

/// Decode a datagram payload. Messages of unknown types are skipped.
pub fn decode_packet(bytes: &[u8]) -> Result<Vec<Message>, WireError> {
    let mut d = Dec::new(Decoder::new(bytes), PACKET_BUDGET);
    let r = packet(&mut d);
    r.map_err(|e| d.refuse(e))
}

fn packet(d: &mut Dec<'_>) -> Result<Vec<Message>, WireError> {
    let outer = d.array()?;
    if outer.is_some_and(|n| n < 2) {
        return Err(WireError::Malformed);
    }
    let version = d.u8()?;
    if version != VERSION {
        return Err(WireError::Version(version));
    }
    // Definite or indefinite; each message takes at least two bytes, so a
    // definite count beyond the input length is a lie.
    let count = d.array()?;
    if count.is_some_and(|n| n > d.input().len() as u64) {
        return Err(WireError::Malformed);
    }
    let mut out = Vec::new();
    let mut seen = 0u64;
    loop {
        match count {
            Some(n) if seen == n => break,
            None if d.datatype()? == Type::Break => {
                d.skip()?;
                break;
            }
            _ => {}
        }
        seen += 1;
        let mut probe = d.probe();
        probe.array()?;
        let kind = probe.u32()?;
        if kind > MAX_MESSAGE_TYPE {
            d.skip()?;
        } else {
            d.charge(size_of::<Message>())?;
            out.push(message(d)?);
        }
    }
    Ok(out)
}

/// Encode a push-pull stream payload.
pub fn encode_push_pull(p: &PushPull) -> Vec<u8> {
    let mut w = Writer::default();
    w.push_pull(p);
    w.0
}

/// Decode a push-pull stream payload whose values may take at most
/// `budget` bytes (as [`Dec`] counts them); beyond, it is refused as
/// [`WireError::TooLarge`] before it is all built.
pub fn decode_push_pull(bytes: &[u8], budget: usize) -> Result<PushPull, WireError> {
    let mut d = Dec::new(Decoder::new(bytes), budget);
    let p = push_pull(&mut d).map_err(|e| d.refuse(e.into()))?;
    if p.version != VERSION {
        return Err(WireError::Version(p.version));
    }
    Ok(p)
}

pub fn encode_saved_state(s: &SavedState) -> Vec<u8> {
    let mut w = Writer::default();
    w.saved_state(s);
    w.0
}

/// Decode the node's own state file (written by this node, read from its
/// own disk: no budget beyond the file's length).
pub fn decode_saved_state(bytes: &[u8]) -> Result<SavedState, WireError> {
    let s = saved_state(&mut Dec::new(Decoder::new(bytes), usize::MAX))?;
    if s.version != VERSION {
        return Err(WireError::Version(s.version));
    }
    Ok(s)
}

// ----- writing -----

/// A CBOR writer into memory (it cannot fail). Every head takes its
/// shortest form, as minicbor's encoder writes it. A struct is an array of
/// its fields in index order; a trailing absent optional field is left out.
#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    /// The head of a data item: major type and argument, shortest form.
    fn head(&mut self, major: u8, n: u64) {
        let (info, width) = match n {
            0..=23 => (n as u8, 0),
            24..=0xff => (24, 1),
            0x100..=0xffff => (25, 2),
            0x1_0000..=0xffff_ffff => (26, 4),
            _ => (27, 8),
        };
        self.0.push(major << 5 | info);
        self.0.extend_from_slice(&n.to_be_bytes()[8 - width..]);
    }

    fn uint(&mut self, n: impl Into<u64>) {
        self.head(0, n.into());
    }

    /// A byte string (major type 2) or a text string (3).
    fn string(&mut self, major: u8, b: &[u8]) {
        self.head(major, b.len() as u64);
        self.0.extend_from_slice(b);
    }

    fn bytes(&mut self, b: &[u8]) {
        self.string(2, b);
    }

    fn text(&mut self, s: &str) {
        self.string(3, s.as_bytes());
    }

    fn array(&mut self, len: usize) {
        self.head(4, len as u64);
    }

    fn bool(&mut self, b: bool) {
        self.0.push(0xf4 | u8::from(b));
    }

    fn f32(&mut self, x: f32) {
        self.0.push(0xfa);
        self.0.extend_from_slice(&x.to_be_bytes());
    }

    /// A struct of `required` fields plus one optional last field, if present.
    fn fields(&mut self, required: usize, optional: bool) {
        self.array(required + usize::from(optional));
    }

    /// A message's head: `[type, …]` followed by `fields` fields.
    fn kind(&mut self, kind: u8, fields: usize) {
        self.array(fields + 1);
        self.uint(kind);
    }

    fn addr(&mut self, a: &SocketAddr) {
        self.array(2);
        match a.ip() {
            IpAddr::V4(ip) => self.bytes(&ip.octets()),
            IpAddr::V6(ip) => self.bytes(&ip.octets()),
        }
        self.uint(a.port());
    }

    fn texts(&mut self, list: &[String]) {
        self.array(list.len());
        for s in list {
            self.text(s);
        }
    }

    fn pairs(&mut self, list: &[(String, String)]) {
        self.array(list.len());
        for (k, v) in list {
            self.array(2);
            self.text(k);
            self.text(v);
        }
    }

    fn coordinate(&mut self, c: &WireCoordinate) {
        self.array(3);
        self.array(c.vec.len());
        for x in &c.vec {
            self.f32(*x);
        }
        self.f32(c.error);
        self.f32(c.height);
    }

    fn record(&mut self, r: &ServiceRecord) {
        self.array(8);
        self.text(&r.service_type);
        self.text(&r.description);
        self.text(&r.host);
        self.text(&r.ip);
        self.uint(r.port);
        self.text(&r.microcloud);
        self.pairs(&r.txt);
        self.uint(r.health as u8);
    }

    fn entry(&mut self, e: &CatalogEntry) {
        self.fields(3, e.record.is_some());
        self.uint(e.version);
        self.text(&e.service_type);
        self.uint(e.port);
        if let Some(r) = &e.record {
            self.record(r);
        }
    }

    fn catalog(&mut self, c: &CatalogState) {
        self.array(3);
        self.text(&c.node);
        self.uint(c.version);
        self.array(c.entries.len());
        for e in &c.entries {
            self.entry(e);
        }
    }

    fn member(&mut self, m: &MemberRecord) {
        self.fields(6, m.coord.is_some());
        self.text(&m.name);
        self.addr(&m.addr);
        self.uint(m.incarnation);
        self.uint(m.state as u8);
        self.uint(m.tags_lamport);
        self.pairs(&m.tags);
        if let Some(c) = &m.coord {
            self.coordinate(c);
        }
    }

    fn message(&mut self, m: &Message) {
        match m {
            Message::Ping { seq, target } => {
                self.kind(0, 2);
                self.uint(*seq);
                self.text(target);
            }
            Message::IndirectPing {
                seq,
                target,
                target_addr,
                nack,
            } => {
                self.kind(1, 4);
                self.uint(*seq);
                self.text(target);
                self.addr(target_addr);
                self.bool(*nack);
            }
            Message::Ack { seq, coord } => {
                self.kind(2, 1 + usize::from(coord.is_some()));
                self.uint(*seq);
                if let Some(c) = coord {
                    self.coordinate(c);
                }
            }
            Message::Nack { seq } => {
                self.kind(3, 1);
                self.uint(*seq);
            }
            Message::Alive {
                name,
                addr,
                incarnation,
            } => {
                self.kind(4, 3);
                self.text(name);
                self.addr(addr);
                self.uint(*incarnation);
            }
            Message::Suspect {
                name,
                incarnation,
                from,
            }
            | Message::Dead {
                name,
                incarnation,
                from,
            } => {
                let kind = if matches!(m, Message::Suspect { .. }) {
                    5
                } else {
                    6
                };
                self.kind(kind, 3);
                self.text(name);
                self.uint(*incarnation);
                self.text(from);
            }
            Message::Tags {
                name,
                lamport,
                tags,
            } => {
                self.kind(7, 3);
                self.text(name);
                self.uint(*lamport);
                self.pairs(tags);
            }
            Message::Service { node, entry } => {
                self.kind(8, 2);
                self.text(node);
                self.entry(entry);
            }
            Message::UserEvent {
                lamport,
                origin,
                name,
                payload,
            } => {
                self.kind(9, 4);
                self.uint(*lamport);
                self.text(origin);
                self.text(name);
                self.bytes(payload);
            }
            Message::Query {
                id,
                lamport,
                origin,
                origin_addr,
                name,
                payload,
                nodes,
                tags,
                timeout_ms,
            } => {
                self.kind(10, 9);
                self.uint(*id);
                self.uint(*lamport);
                self.text(origin);
                self.addr(origin_addr);
                self.text(name);
                self.bytes(payload);
                self.texts(nodes);
                self.pairs(tags);
                self.uint(*timeout_ms);
            }
            Message::QueryResponse { id, from, payload } => {
                self.kind(11, 3);
                self.uint(*id);
                self.text(from);
                self.bytes(payload);
            }
        }
    }

    fn push_pull(&mut self, p: &PushPull) {
        self.fields(8, p.ping.is_some());
        self.uint(p.version);
        self.bool(p.join);
        self.bool(p.reply);
        self.text(&p.from);
        self.array(p.members.len());
        for m in &p.members {
            self.member(m);
        }
        self.array(p.catalogs.len());
        for c in &p.catalogs {
            self.catalog(c);
        }
        self.uint(p.event_clock);
        self.uint(p.query_clock);
        if let Some(seq) = p.ping {
            self.uint(seq);
        }
    }

    fn saved_state(&mut self, s: &SavedState) {
        self.array(9);
        self.uint(s.version);
        self.text(&s.name);
        self.uint(s.incarnation);
        self.uint(s.tags_lamport);
        self.pairs(&s.tags);
        self.catalog(&s.catalog);
        self.array(s.peers.len());
        for p in &s.peers {
            self.array(2);
            self.text(&p.name);
            self.addr(&p.addr);
        }
        self.uint(s.event_clock);
        self.uint(s.query_clock);
    }
}

// ----- reading -----
//
// Each reader takes the same steps as the derived decoder it replaced, so
// the same inputs are accepted and refused: structs are definite or
// indefinite arrays, elements past the known fields are skipped, a missing
// field is an error unless it is optional; lists are definite or
// indefinite; a message is a definite array.

/// A decoder that charges what the values it builds will take against a
/// budget, so that a hostile input cannot decode into many times its size
/// (a 5-byte catalog tombstone is a 200-byte entry): list elements cost
/// their `size_of` before they are read, strings and byte strings their
/// length and a heap block. Lists may hold up to twice their elements'
/// size while they grow, so the heap used stays within about twice the
/// budget.
struct Dec<'b> {
    d: Decoder<'b>,
    left: usize,
    /// The budget ran out: the input is refused as too large.
    spent: bool,
    /// A field over its protocol bound: the input is refused as such.
    over: Option<&'static str>,
}

/// What one heap block costs beyond its bytes (allocator header and
/// rounding).
const HEAP_BLOCK: usize = 16;

impl<'b> Dec<'b> {
    fn new(d: Decoder<'b>, budget: usize) -> Dec<'b> {
        Dec {
            d,
            left: budget,
            spent: false,
            over: None,
        }
    }

    fn charge(&mut self, n: usize) -> Result<(), Error> {
        match self.left.checked_sub(n) {
            Some(left) => self.left = left,
            None => self.spent = true,
        }
        match self.spent {
            false => Ok(()),
            true => Err(Error::message("over the decoding budget")),
        }
    }

    /// A heap block of `len` bytes (none when empty).
    fn charge_heap(&mut self, len: usize) -> Result<(), Error> {
        match len {
            0 => Ok(()),
            n => self.charge(n.saturating_add(HEAP_BLOCK)),
        }
    }

    /// `e`, or [`WireError::TooLarge`] if the budget ran out, or
    /// [`WireError::OutOfBounds`] if a field was over its bound.
    fn refuse(&self, e: WireError) -> WireError {
        match (self.spent, self.over) {
            (true, _) => WireError::TooLarge,
            (false, Some(field)) => WireError::OutOfBounds(field),
            (false, None) => e,
        }
    }

    /// Refuse the input: `field` is over its bound.
    fn over(&mut self, field: &'static str) -> Error {
        self.over = Some(field);
        Error::message("field over its bound")
    }

    /// A counter (incarnation, version, Lamport time), at most
    /// [`MAX_COUNTER`].
    fn counter(&mut self, field: &'static str) -> Result<u64, Error> {
        match self.d.u64()? {
            n if n <= MAX_COUNTER => Ok(n),
            _ => Err(self.over(field)),
        }
    }
}

impl<'b> core::ops::Deref for Dec<'b> {
    type Target = Decoder<'b>;
    fn deref(&self) -> &Decoder<'b> {
        &self.d
    }
}

impl core::ops::DerefMut for Dec<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.d
    }
}

/// Calls `field(d, i)` for element `i` of a struct or message of `len`
/// elements (`None`: indefinite, up to the break); an element `field` does
/// not take (it returns `false`) is skipped.
fn fields<'b>(
    d: &mut Dec<'b>,
    len: Option<u64>,
    field: &mut dyn FnMut(&mut Dec<'b>, u64) -> Result<bool, Error>,
) -> Result<(), Error> {
    match len {
        Some(n) => {
            for i in 0..n {
                if !field(d, i)? {
                    d.skip()?;
                }
            }
        }
        None => {
            let mut i = 0;
            while d.datatype()? != Type::Break {
                if !field(d, i)? {
                    d.skip()?;
                }
                i += 1;
            }
            d.skip()?;
        }
    }
    Ok(())
}

/// Calls `item(d)` for each element of a list, charging `size` (the
/// element's `size_of`) for each before it is read.
fn items<'b>(
    d: &mut Dec<'b>,
    size: usize,
    item: &mut dyn FnMut(&mut Dec<'b>) -> Result<(), Error>,
) -> Result<(), Error> {
    match d.array()? {
        Some(n) => {
            for _ in 0..n {
                d.charge(size)?;
                item(d)?;
            }
        }
        None => {
            while d.datatype()? != Type::Break {
                d.charge(size)?;
                item(d)?;
            }
            d.skip()?;
        }
    }
    Ok(())
}

/// A required field's value.
fn need<T>(field: Option<T>) -> Result<T, Error> {
    field.ok_or_else(|| Error::message("missing field"))
}

/// An optional value: `null` is absent.
fn optional<'b, T>(
    d: &mut Dec<'b>,
    read: fn(&mut Dec<'b>) -> Result<T, Error>,
) -> Result<Option<T>, Error> {
    if d.datatype()? == Type::Null {
        d.skip()?;
        return Ok(None);
    }
    read(d).map(Some)
}

/// A text string of at most `max` bytes (`field` names it if longer).
fn text(d: &mut Dec<'_>, max: usize, field: &'static str) -> Result<String, Error> {
    let s = d.d.str()?;
    if s.len() > max {
        return Err(d.over(field));
    }
    d.charge_heap(s.len())?;
    Ok(String::from(s))
}

fn name(d: &mut Dec<'_>) -> Result<String, Error> {
    text(d, MAX_NAME, "name")
}

/// A payload: a byte string of at most [`MAX_PAYLOAD`].
fn payload(d: &mut Dec<'_>) -> Result<Vec<u8>, Error> {
    let b = d.d.bytes()?;
    if b.len() > MAX_PAYLOAD {
        return Err(d.over("payload"));
    }
    d.charge_heap(b.len())?;
    Ok(Vec::from(b))
}

/// Calls `item(d)` for each element of a list of at most `max`.
fn bounded<'b>(
    d: &mut Dec<'b>,
    size: usize,
    max: usize,
    field: &'static str,
    item: &mut dyn FnMut(&mut Dec<'b>) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut n = 0usize;
    items(d, size, &mut |d| {
        n += 1;
        if n > max {
            return Err(d.over(field));
        }
        item(d)
    })
}

/// `[ip bytes (4 or 16), port]`.
fn addr(d: &mut Dec<'_>) -> Result<SocketAddr, Error> {
    if d.array()? != Some(2) {
        return Err(Error::message("address is [ip, port]"));
    }
    let ip = d.bytes()?;
    let ip = if let Ok(v4) = <[u8; 4]>::try_from(ip) {
        IpAddr::V4(Ipv4Addr::from(v4))
    } else if let Ok(v6) = <[u8; 16]>::try_from(ip) {
        IpAddr::V6(Ipv6Addr::from(v6))
    } else {
        return Err(Error::message("ip is 4 or 16 bytes"));
    };
    Ok(SocketAddr::new(ip, d.u16()?))
}

/// A query's node names, at most [`MAX_QUERY_NODES`].
fn names(d: &mut Dec<'_>) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    bounded(
        d,
        size_of::<String>(),
        MAX_QUERY_NODES,
        "query nodes",
        &mut |d| {
            out.push(name(d)?);
            Ok(())
        },
    )?;
    Ok(out)
}

/// `[[key, value], …]`; each pair is a definite array of two. Tags, TXT
/// and query tag filters: at most [`MAX_PAIRS`] pairs of [`MAX_KEY`] and
/// [`MAX_VALUE`] bytes, [`MAX_PAIRS_BYTES`] in all.
fn pairs(d: &mut Dec<'_>) -> Result<Vec<(String, String)>, Error> {
    let mut out = Vec::new();
    let mut total = 0usize;
    bounded(
        d,
        size_of::<(String, String)>(),
        MAX_PAIRS,
        "pairs",
        &mut |d| {
            if d.array()? != Some(2) {
                return Err(Error::message("a pair is [key, value]"));
            }
            let (k, v) = (text(d, MAX_KEY, "key")?, text(d, MAX_VALUE, "value")?);
            total += k.len() + v.len();
            if total > MAX_PAIRS_BYTES {
                return Err(d.over("pairs"));
            }
            out.push((k, v));
            Ok(())
        },
    )?;
    Ok(out)
}

fn coordinate(d: &mut Dec<'_>) -> Result<WireCoordinate, Error> {
    let (mut vec, mut error, mut height) = (None, None, None);
    let len = d.array()?;
    fields(d, len, &mut |d, i| {
        match i {
            0 => {
                let mut v = Vec::new();
                let dims = crate::vivaldi::DIMENSIONS;
                bounded(d, size_of::<f32>(), dims, "coordinate", &mut |d| {
                    v.push(d.f32()?);
                    Ok(())
                })?;
                vec = Some(v);
            }
            1 => error = Some(d.f32()?),
            2 => height = Some(d.f32()?),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(WireCoordinate {
        vec: need(vec)?,
        error: need(error)?,
        height: need(height)?,
    })
}

/// A health value this version does not know (a newer version's) reads as
/// `Unknown`: the record stays published, only its rank drops.
fn health(d: &mut Dec<'_>) -> Result<Health, Error> {
    Ok(match d.i64()? {
        0 => Health::Healthy,
        1 => Health::Unhealthy,
        _ => Health::Unknown,
    })
}

fn record(d: &mut Dec<'_>) -> Result<ServiceRecord, Error> {
    let (mut service_type, mut description, mut host, mut ip) = (None, None, None, None);
    let (mut port, mut microcloud, mut txt, mut health_) = (None, None, None, None);
    let len = d.array()?;
    fields(d, len, &mut |d, i| {
        match i {
            0 => service_type = Some(text(d, MAX_KEY, "service type")?),
            1 => description = Some(text(d, MAX_VALUE, "description")?),
            2 => host = Some(text(d, MAX_VALUE, "host")?),
            3 => ip = Some(text(d, MAX_IP, "ip")?),
            4 => port = Some(d.u16()?),
            5 => microcloud = Some(text(d, MAX_VALUE, "microcloud")?),
            6 => txt = Some(pairs(d)?),
            7 => health_ = Some(health(d)?),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(ServiceRecord {
        service_type: need(service_type)?,
        description: need(description)?,
        host: need(host)?,
        ip: need(ip)?,
        port: need(port)?,
        microcloud: need(microcloud)?,
        txt: need(txt)?,
        health: need(health_)?,
    })
}

fn entry(d: &mut Dec<'_>) -> Result<CatalogEntry, Error> {
    let (mut version, mut service_type, mut port, mut rec) = (None, None, None, None);
    let len = d.array()?;
    fields(d, len, &mut |d, i| {
        match i {
            0 => version = Some(d.counter("version")?),
            1 => service_type = Some(text(d, MAX_KEY, "service type")?),
            2 => port = Some(d.u16()?),
            3 => rec = optional(d, record)?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(CatalogEntry {
        version: need(version)?,
        service_type: need(service_type)?,
        port: need(port)?,
        record: rec,
    })
}

fn catalog(d: &mut Dec<'_>) -> Result<CatalogState, Error> {
    let (mut node, mut version, mut entries) = (None, None, None);
    let len = d.array()?;
    fields(d, len, &mut |d, i| {
        match i {
            0 => node = Some(name(d)?),
            1 => version = Some(d.counter("version")?),
            2 => {
                let mut v = Vec::new();
                let size = size_of::<CatalogEntry>();
                bounded(d, size, MAX_ENTRIES, "catalog entries", &mut |d| {
                    v.push(entry(d)?);
                    Ok(())
                })?;
                entries = Some(v);
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(CatalogState {
        node: need(node)?,
        version: need(version)?,
        entries: need(entries)?,
    })
}

fn wire_state(d: &mut Dec<'_>) -> Result<WireState, Error> {
    match d.i64()? {
        0 => Ok(WireState::Alive),
        1 => Ok(WireState::Suspect),
        2 => Ok(WireState::Dead),
        3 => Ok(WireState::Left),
        n => Err(Error::unknown_variant(n)),
    }
}

fn member(d: &mut Dec<'_>) -> Result<MemberRecord, Error> {
    let (mut name, mut address, mut incarnation, mut state) = (None, None, None, None);
    let (mut tags_lamport, mut tags, mut coord) = (None, None, None);
    let len = d.array()?;
    fields(d, len, &mut |d, i| {
        match i {
            0 => name = Some(self::name(d)?),
            1 => address = Some(addr(d)?),
            2 => incarnation = Some(d.counter("incarnation")?),
            3 => state = Some(wire_state(d)?),
            4 => tags_lamport = Some(d.counter("lamport")?),
            5 => tags = Some(pairs(d)?),
            6 => coord = optional(d, coordinate)?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(MemberRecord {
        name: need(name)?,
        addr: need(address)?,
        incarnation: need(incarnation)?,
        state: need(state)?,
        tags_lamport: need(tags_lamport)?,
        tags: need(tags)?,
        coord,
    })
}

/// The fields of a Suspect or Dead message: name, incarnation, from.
fn claim(d: &mut Dec<'_>, len: Option<u64>) -> Result<(String, u64, String), Error> {
    let (mut name, mut incarnation, mut from) = (None, None, None);
    fields(d, len, &mut |d, i| {
        match i {
            0 => name = Some(self::name(d)?),
            1 => incarnation = Some(d.counter("incarnation")?),
            2 => from = Some(self::name(d)?),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok((need(name)?, need(incarnation)?, need(from)?))
}

/// A message: a definite array `[type, field0, field1, …]`.
fn message(d: &mut Dec<'_>) -> Result<Message, Error> {
    let len = match d.array()? {
        Some(n) if n > 0 => Some(n - 1),
        _ => return Err(Error::message("a message is a definite, non-empty array")),
    };
    let m = match d.i64()? {
        0 => {
            let (mut seq, mut target) = (None, None);
            fields(d, len, &mut |d, i| {
                match i {
                    0 => seq = Some(d.u32()?),
                    1 => target = Some(name(d)?),
                    _ => return Ok(false),
                }
                Ok(true)
            })?;
            Message::Ping {
                seq: need(seq)?,
                target: need(target)?,
            }
        }
        1 => {
            let (mut seq, mut target, mut target_addr, mut nack) = (None, None, None, None);
            fields(d, len, &mut |d, i| {
                match i {
                    0 => seq = Some(d.u32()?),
                    1 => target = Some(name(d)?),
                    2 => target_addr = Some(addr(d)?),
                    3 => nack = Some(d.bool()?),
                    _ => return Ok(false),
                }
                Ok(true)
            })?;
            Message::IndirectPing {
                seq: need(seq)?,
                target: need(target)?,
                target_addr: need(target_addr)?,
                nack: need(nack)?,
            }
        }
        2 => {
            let (mut seq, mut coord) = (None, None);
            fields(d, len, &mut |d, i| {
                match i {
                    0 => seq = Some(d.u32()?),
                    1 => coord = optional(d, coordinate)?,
                    _ => return Ok(false),
                }
                Ok(true)
            })?;
            Message::Ack {
                seq: need(seq)?,
                coord,
            }
        }
        3 => {
            let mut seq = None;
            fields(d, len, &mut |d, i| {
                match i {
                    0 => seq = Some(d.u32()?),
                    _ => return Ok(false),
                }
                Ok(true)
            })?;
            Message::Nack { seq: need(seq)? }
        }
        4 => {
            let (mut name, mut address, mut incarnation) = (None, None, None);
            fields(d, len, &mut |d, i| {
                match i {
                    0 => name = Some(self::name(d)?),
                    1 => address = Some(addr(d)?),
                    2 => incarnation = Some(d.counter("incarnation")?),
                    _ => return Ok(false),
                }
                Ok(true)
            })?;
            Message::Alive {
                name: need(name)?,
                addr: need(address)?,
                incarnation: need(incarnation)?,
            }
        }
        5 => {
            let (name, incarnation, from) = claim(d, len)?;
            Message::Suspect {
                name,
                incarnation,
                from,
            }
        }
        6 => {
            let (name, incarnation, from) = claim(d, len)?;
            Message::Dead {
                name,
                incarnation,
                from,
            }
        }
        7 => {
            let (mut name, mut lamport, mut tags) = (None, None, None);
            fields(d, len, &mut |d, i| {
                match i {
                    0 => name = Some(self::name(d)?),
                    1 => lamport = Some(d.counter("lamport")?),
                    2 => tags = Some(pairs(d)?),
                    _ => return Ok(false),
                }
                Ok(true)
            })?;
            Message::Tags {
                name: need(name)?,
                lamport: need(lamport)?,
                tags: need(tags)?,
            }
        }
        8 => {
            let (mut node, mut ent) = (None, None);
            fields(d, len, &mut |d, i| {
                match i {
                    0 => node = Some(name(d)?),
                    1 => ent = Some(entry(d)?),
                    _ => return Ok(false),
                }
                Ok(true)
            })?;
            Message::Service {
                node: need(node)?,
                entry: need(ent)?,
            }
        }
        9 => {
            let (mut lamport, mut origin, mut name, mut payload) = (None, None, None, None);
            fields(d, len, &mut |d, i| {
                match i {
                    0 => lamport = Some(d.counter("lamport")?),
                    1 => origin = Some(self::name(d)?),
                    2 => name = Some(text(d, MAX_EVENT_NAME, "event name")?),
                    3 => payload = Some(self::payload(d)?),
                    _ => return Ok(false),
                }
                Ok(true)
            })?;
            Message::UserEvent {
                lamport: need(lamport)?,
                origin: need(origin)?,
                name: need(name)?,
                payload: need(payload)?,
            }
        }
        10 => {
            let (mut id, mut lamport, mut origin, mut origin_addr) = (None, None, None, None);
            let (mut name, mut payload, mut nodes, mut tags) = (None, None, None, None);
            let mut timeout_ms = None;
            fields(d, len, &mut |d, i| {
                match i {
                    0 => id = Some(d.u32()?),
                    1 => lamport = Some(d.counter("lamport")?),
                    2 => origin = Some(self::name(d)?),
                    3 => origin_addr = Some(addr(d)?),
                    4 => name = Some(text(d, MAX_EVENT_NAME, "query name")?),
                    5 => payload = Some(self::payload(d)?),
                    6 => nodes = Some(names(d)?),
                    7 => tags = Some(pairs(d)?),
                    8 => timeout_ms = Some(d.u32()?),
                    _ => return Ok(false),
                }
                Ok(true)
            })?;
            Message::Query {
                id: need(id)?,
                lamport: need(lamport)?,
                origin: need(origin)?,
                origin_addr: need(origin_addr)?,
                name: need(name)?,
                payload: need(payload)?,
                nodes: need(nodes)?,
                tags: need(tags)?,
                timeout_ms: need(timeout_ms)?,
            }
        }
        11 => {
            let (mut id, mut from, mut payload) = (None, None, None);
            fields(d, len, &mut |d, i| {
                match i {
                    0 => id = Some(d.u32()?),
                    1 => from = Some(name(d)?),
                    2 => payload = Some(self::payload(d)?),
                    _ => return Ok(false),
                }
                Ok(true)
            })?;
            Message::QueryResponse {
                id: need(id)?,
                from: need(from)?,
                payload: need(payload)?,
            }
        }
        n => return Err(Error::unknown_variant(n)),
    };
    Ok(m)
}

fn push_pull(d: &mut Dec<'_>) -> Result<PushPull, Error> {
    let (mut version, mut join, mut reply, mut from) = (None, None, None, None);
    let (mut members, mut catalogs, mut event_clock, mut query_clock) = (None, None, None, None);
    let mut ping = None;
    let len = d.array()?;
    fields(d, len, &mut |d, i| {
        match i {
            0 => version = Some(d.u8()?),
            1 => join = Some(d.bool()?),
            2 => reply = Some(d.bool()?),
            3 => from = Some(name(d)?),
            4 => {
                let mut v = Vec::new();
                items(d, size_of::<MemberRecord>(), &mut |d| {
                    v.push(member(d)?);
                    Ok(())
                })?;
                members = Some(v);
            }
            5 => {
                let mut v = Vec::new();
                items(d, size_of::<CatalogState>(), &mut |d| {
                    v.push(catalog(d)?);
                    Ok(())
                })?;
                catalogs = Some(v);
            }
            6 => event_clock = Some(d.counter("lamport")?),
            7 => query_clock = Some(d.counter("lamport")?),
            8 => ping = optional(d, |d| d.u32())?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(PushPull {
        version: need(version)?,
        join: need(join)?,
        reply: need(reply)?,
        from: need(from)?,
        members: need(members)?,
        catalogs: need(catalogs)?,
        event_clock: need(event_clock)?,
        query_clock: need(query_clock)?,
        ping,
    })
}

fn peer(d: &mut Dec<'_>) -> Result<Peer, Error> {
    let (mut name, mut address) = (None, None);
    let len = d.array()?;
    fields(d, len, &mut |d, i| {
        match i {
            0 => name = Some(self::name(d)?),
            1 => address = Some(addr(d)?),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(Peer {
        name: need(name)?,
        addr: need(address)?,
    })
}

fn saved_state(d: &mut Dec<'_>) -> Result<SavedState, Error> {
    let (mut version, mut name, mut incarnation, mut tags_lamport) = (None, None, None, None);
    let (mut tags, mut cat, mut peers, mut event_clock) = (None, None, None, None);
    let mut query_clock = None;
    let len = d.array()?;
    fields(d, len, &mut |d, i| {
        match i {
            0 => version = Some(d.u8()?),
            1 => name = Some(self::name(d)?),
            2 => incarnation = Some(d.u64()?),
            3 => tags_lamport = Some(d.u64()?),
            4 => tags = Some(pairs(d)?),
            5 => cat = Some(catalog(d)?),
            6 => {
                let mut v = Vec::new();
                items(d, size_of::<Peer>(), &mut |d| {
                    v.push(peer(d)?);
                    Ok(())
                })?;
                peers = Some(v);
            }
            7 => event_clock = Some(d.u64()?),
            8 => query_clock = Some(d.u64()?),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(SavedState {
        version: need(version)?,
        name: need(name)?,
        incarnation: need(incarnation)?,
        tags_lamport: need(tags_lamport)?,
        tags: need(tags)?,
        catalog: need(cat)?,
        peers: need(peers)?,
        event_clock: need(event_clock)?,
        query_clock: need(query_clock)?,
    })
}

/// The agent embeds service records in its own CBOR messages (federated
/// search answers), so a record is also a minicbor `Encode`/`Decode`.
impl<C> minicbor::Encode<C> for ServiceRecord {
    fn encode<W: minicbor::encode::Write>(
        &self,
        e: &mut minicbor::Encoder<W>,
        _: &mut C,
    ) -> Result<(), minicbor::encode::Error<W::Error>> {
        let mut w = Writer::default();
        w.record(self);
        e.writer_mut()
            .write_all(&w.0)
            .map_err(minicbor::encode::Error::write)
    }
}

impl<'b, C> minicbor::Decode<'b, C> for ServiceRecord {
    fn decode(d: &mut Decoder<'b>, _: &mut C) -> Result<ServiceRecord, Error> {
        // Inside the agent's own frames, which bound it.
        let mut r = Dec::new(d.clone(), usize::MAX);
        let rec = record(&mut r)?;
        d.set_position(r.position());
        Ok(rec)
    }
}
