//! The CBOR form of every request, response and view, written out by hand.
//!
//! The bytes are exactly those minicbor's derive produced for the first version
//! of this crate (`tests/wire.rs` pins one vector per variant), because an old
//! CLI or CGI talks to a new agent while opkg upgrades the package. Written
//! out, the codec is a fraction of the derive's code: the derive generated a
//! decoding loop with an `Option` and an error message per field for every
//! type and variant; here a struct is decoded by a struct literal that reads
//! its fields in order ([`record`]), and one [`Fields`] cursor serves them all.
//!
//! The format, as the derive defined it:
//! - a struct is the array of its fields in index order; a trailing `None` is
//!   left out (only `Response::Rtt` has one);
//! - an enum is `[index, [fields…]]`, a unit variant `[index, []]`;
//! - `Vec<T>` (including the `Vec<u8>` payloads) is an array of its items, a
//!   pair an array of two, `None` is `null`.
//!
//! Decoding accepts what the derive accepted: definite or indefinite arrays,
//! fields past those this version knows are skipped, a missing or `null`
//! `Option` is `None`, any other missing field is an error, and a unit variant
//! ignores whatever follows its index. Nothing is reserved ahead of the input:
//! a list grows as its items decode, so a length that claims 2^64 items fails
//! on the missing bytes.

use minicbor::data::Type;
use minicbor::decode::{self, Decoder};
use minicbor::encode::{self, Encoder, Write};

use crate::proto::*;

type Decoded<T> = Result<T, decode::Error>;
type Encoded<W> = Result<(), encode::Error<<W as Write>::Error>>;

/// One protocol type's CBOR form.
trait Wire: Sized {
    fn put<W: Write>(&self, e: &mut Encoder<W>) -> Encoded<W>;
    fn take(d: &mut Decoder<'_>) -> Decoded<Self>;
    /// What a field holds before its value is read. Never seen by callers: a
    /// missing field that is not an `Option` is an error.
    fn blank() -> Self;
}

fn take<T: Wire>(d: &mut Decoder<'_>) -> Decoded<T> {
    T::take(d)
}

/// Gives each protocol type minicbor's traits, for any context, through [`Wire`].
macro_rules! minicbor_via_wire {
    ($($t:ty),* $(,)?) => {$(
        impl<C> minicbor::Encode<C> for $t {
            fn encode<W: Write>(&self, e: &mut Encoder<W>, _: &mut C) -> Encoded<W> {
                self.put(e)
            }
        }

        impl<'b, C> minicbor::Decode<'b, C> for $t {
            fn decode(d: &mut Decoder<'b>, _: &mut C) -> Decoded<Self> {
                Self::take(d)
            }
        }
    )*};
}

minicbor_via_wire!(
    Request,
    Action,
    Scope,
    PublishSpec,
    QuerySpec,
    KeyCommand,
    Response,
    NodeInfo,
    MemberState,
    MemberView,
    Health,
    ServiceView,
    QueryAnswer,
    KeyView,
    ChangeView,
    InstanceView,
    TemplateView,
    AppView,
);

// ---- Shapes: structs, variants, lists, options, pairs ----

/// The fields of one struct or variant being decoded: an array, definite or
/// indefinite, whose positions are the field indexes.
struct Fields<'a, 'b> {
    d: &'a mut Decoder<'b>,
    /// Items in the array; set when an indefinite one ends.
    len: Option<u64>,
    /// Items read so far.
    read: u64,
}

impl Fields<'_, '_> {
    /// The next field, or `T::blank()` when the array ended before it
    /// ([`record`] then decides whether that field could be missing).
    fn field<T: Wire>(&mut self) -> Decoded<T> {
        if self.next()? {
            take(self.d)
        } else {
            Ok(T::blank())
        }
    }

    /// Whether another item follows; consumes the break of an indefinite array.
    fn next(&mut self) -> Decoded<bool> {
        match self.len {
            Some(n) if self.read == n => return Ok(false),
            None if self.d.datatype()? == Type::Break => {
                self.d.skip()?;
                self.len = Some(self.read);
                return Ok(false);
            }
            _ => {}
        }
        self.read += 1;
        Ok(true)
    }
}

/// Decodes one struct or variant: `build` takes its fields in index order
/// with [`Fields::field`]. Fields after those (from a newer peer) are
/// skipped; fewer than `required` (every field up to the last one that is not
/// an `Option`) is an error.
fn record<'b, T>(
    d: &mut Decoder<'b>,
    required: u64,
    what: &'static str,
    build: impl FnOnce(&mut Fields<'_, 'b>) -> Decoded<T>,
) -> Decoded<T> {
    let at = d.position();
    let len = d.array()?;
    let mut f = Fields { d, len, read: 0 };
    let v = build(&mut f)?;
    if f.read < required {
        let missing = i64::try_from(f.read).unwrap_or(i64::MAX);
        return Err(decode::Error::missing_value(missing)
            .with_message(what)
            .at(at));
    }
    while f.next()? {
        f.d.skip()?;
    }
    Ok(v)
}

/// A variant with one field.
fn one<T: Wire>(d: &mut Decoder<'_>, what: &'static str) -> Decoded<T> {
    record(d, 1, what, |f| f.field())
}

/// Reads an enum's `[index, ` and returns the index and where it was.
fn variant(d: &mut Decoder<'_>) -> Decoded<(i64, usize)> {
    let at = d.position();
    if d.array()? != Some(2) {
        return Err(decode::Error::message("expected enum (2-element array)").at(at));
    }
    let at = d.position();
    Ok((d.i64()?, at))
}

fn unknown_variant(index: i64, at: usize) -> decode::Error {
    decode::Error::unknown_variant(index).at(at)
}

/// A unit variant: whatever follows its index is skipped, as the derive did.
fn unit<T>(d: &mut Decoder<'_>, v: T) -> Decoded<T> {
    d.skip()?;
    Ok(v)
}

/// An enum whose variants are all units, listed in index order in `all`.
fn unit_enum<T: Copy>(d: &mut Decoder<'_>, all: &[T]) -> Decoded<T> {
    let i = unit_index(d, all.len())?;
    // In bounds: `unit_index` returns only indexes below `all.len()`.
    Ok(all[i])
}

/// Reads a unit variant's index, which must be below `count`.
fn unit_index(d: &mut Decoder<'_>, count: usize) -> Decoded<usize> {
    let (index, at) = variant(d)?;
    match usize::try_from(index) {
        Ok(i) if i < count => unit(d, i),
        _ => Err(unknown_variant(index, at)),
    }
}

/// Writes an enum's `[index, [` for a variant with `fields` fields.
fn head<W: Write>(e: &mut Encoder<W>, index: u64, fields: u64) -> Encoded<W> {
    e.array(2)?.u64(index)?.array(fields)?;
    Ok(())
}

impl<T: Wire> Wire for Vec<T> {
    fn put<W: Write>(&self, e: &mut Encoder<W>) -> Encoded<W> {
        e.array(self.len() as u64)?;
        self.iter().try_for_each(|v| v.put(e))
    }

    fn take(d: &mut Decoder<'_>) -> Decoded<Self> {
        // No `with_capacity`: the length is the peer's claim, the input is the fact.
        let mut items = Vec::new();
        match d.array()? {
            Some(n) => {
                for _ in 0..n {
                    items.push(take(d)?);
                }
            }
            None => {
                while d.datatype()? != Type::Break {
                    items.push(take(d)?);
                }
                d.skip()?;
            }
        }
        Ok(items)
    }

    fn blank() -> Self {
        Vec::new()
    }
}

impl<T: Wire> Wire for Option<T> {
    fn put<W: Write>(&self, e: &mut Encoder<W>) -> Encoded<W> {
        match self {
            Some(v) => v.put(e),
            None => e.null().map(drop),
        }
    }

    fn take(d: &mut Decoder<'_>) -> Decoded<Self> {
        if d.datatype()? == Type::Null {
            d.skip()?;
            return Ok(None);
        }
        take(d).map(Some)
    }

    fn blank() -> Self {
        None
    }
}

impl<A: Wire, B: Wire> Wire for (A, B) {
    fn put<W: Write>(&self, e: &mut Encoder<W>) -> Encoded<W> {
        e.array(2)?;
        self.0.put(e)?;
        self.1.put(e)
    }

    fn take(d: &mut Decoder<'_>) -> Decoded<Self> {
        let at = d.position();
        if d.array()? != Some(2) {
            return Err(decode::Error::message("invalid 2-tuple length").at(at));
        }
        Ok((take(d)?, take(d)?))
    }

    fn blank() -> Self {
        (A::blank(), B::blank())
    }
}

impl Wire for String {
    fn put<W: Write>(&self, e: &mut Encoder<W>) -> Encoded<W> {
        e.str(self).map(drop)
    }

    fn take(d: &mut Decoder<'_>) -> Decoded<Self> {
        d.str().map(String::from)
    }

    fn blank() -> Self {
        String::new()
    }
}

impl Wire for bool {
    fn put<W: Write>(&self, e: &mut Encoder<W>) -> Encoded<W> {
        e.bool(*self).map(drop)
    }

    fn take(d: &mut Decoder<'_>) -> Decoded<Self> {
        d.bool()
    }

    fn blank() -> Self {
        false
    }
}

macro_rules! wire_unsigned {
    ($($t:ident),*) => {$(
        impl Wire for $t {
            // CBOR has one unsigned integer type; minicbor writes every width
            // in its shortest form, so one encoder serves them all.
            fn put<W: Write>(&self, e: &mut Encoder<W>) -> Encoded<W> {
                e.u64(u64::from(*self)).map(drop)
            }

            fn take(d: &mut Decoder<'_>) -> Decoded<Self> {
                d.$t()
            }

            fn blank() -> Self {
                0
            }
        }
    )*};
}

wire_unsigned!(u8, u16, u32, u64);

/// Encodes a struct: the array of its fields, in index order.
macro_rules! put_fields {
    ($e:expr; $($field:expr),+ $(,)?) => {{
        let e = $e;
        e.array(<[&str]>::len(&[$(stringify!($field)),+]) as u64)?;
        $($field.put(e)?;)+
        Ok(())
    }};
}

// ---- Unit enums: the discriminant is the wire index ----

macro_rules! wire_unit_enum {
    ($($t:ident [$($v:ident),+ $(,)?]),* $(,)?) => {$(
        impl Wire for $t {
            fn put<W: Write>(&self, e: &mut Encoder<W>) -> Encoded<W> {
                head(e, *self as u64, 0)
            }

            fn take(d: &mut Decoder<'_>) -> Decoded<Self> {
                unit_enum(d, &[$($t::$v),+])
            }

            fn blank() -> Self {
                [$($t::$v),+][0]
            }
        }
    )*};
}

wire_unit_enum!(
    Action [Start, Stop, Restart, Publish, Unpublish, Uninstall, Reload],
    Scope [Microcloud, Global],
    MemberState [Alive, Suspect, Failed, Left],
    Health [Healthy, Unhealthy, Unknown],
);

// ---- Requests ----

impl Wire for Request {
    fn put<W: Write>(&self, e: &mut Encoder<W>) -> Encoded<W> {
        use Request as R;
        match self {
            R::Info => head(e, 0, 0),
            R::Members => head(e, 1, 0),
            R::Services => head(e, 2, 0),
            R::Publish(spec) => {
                head(e, 3, 1)?;
                spec.put(e)
            }
            R::Unpublish { service_type, port } => {
                head(e, 4, 2)?;
                service_type.put(e)?;
                port.put(e)
            }
            R::Search {
                service_type,
                scope,
            } => {
                head(e, 5, 2)?;
                service_type.put(e)?;
                scope.put(e)
            }
            R::Rtt { node } => {
                head(e, 6, 1)?;
                node.put(e)
            }
            R::Event { name, payload } => {
                head(e, 7, 2)?;
                name.put(e)?;
                payload.put(e)
            }
            R::Query(spec) => {
                head(e, 8, 1)?;
                spec.put(e)
            }
            R::Join { addrs } => {
                head(e, 9, 1)?;
                addrs.put(e)
            }
            R::Leave => head(e, 10, 0),
            R::Keys(command) => {
                head(e, 11, 1)?;
                command.put(e)
            }
            R::Monitor => head(e, 12, 0),
            R::ServiceList => head(e, 13, 0),
            R::ServiceStatus { name } => {
                head(e, 14, 1)?;
                name.put(e)
            }
            R::ServiceControl { name, action } => {
                head(e, 15, 2)?;
                name.put(e)?;
                action.put(e)
            }
            R::ServiceLogs { name, lines } => {
                head(e, 16, 2)?;
                name.put(e)?;
                lines.put(e)
            }
            R::AppTemplates => head(e, 17, 0),
            R::AppList => head(e, 18, 0),
            R::AppInstall { template, name } => {
                head(e, 19, 2)?;
                template.put(e)?;
                name.put(e)
            }
            R::AppControl { name, action } => {
                head(e, 20, 2)?;
                name.put(e)?;
                action.put(e)
            }
            R::AppStatus { name } => {
                head(e, 21, 1)?;
                name.put(e)
            }
        }
    }

    fn take(d: &mut Decoder<'_>) -> Decoded<Self> {
        use Request as R;
        let (index, at) = variant(d)?;
        Ok(match index {
            0 => unit(d, R::Info)?,
            1 => unit(d, R::Members)?,
            2 => unit(d, R::Services)?,
            3 => R::Publish(one(d, "Request::Publish")?),
            4 => record(d, 2, "Request::Unpublish", |f| {
                Ok(R::Unpublish {
                    service_type: f.field()?,
                    port: f.field()?,
                })
            })?,
            5 => record(d, 2, "Request::Search", |f| {
                Ok(R::Search {
                    service_type: f.field()?,
                    scope: f.field()?,
                })
            })?,
            6 => R::Rtt {
                node: one(d, "Request::Rtt")?,
            },
            7 => record(d, 2, "Request::Event", |f| {
                Ok(R::Event {
                    name: f.field()?,
                    payload: f.field()?,
                })
            })?,
            8 => R::Query(one(d, "Request::Query")?),
            9 => R::Join {
                addrs: one(d, "Request::Join")?,
            },
            10 => unit(d, R::Leave)?,
            11 => R::Keys(one(d, "Request::Keys")?),
            12 => unit(d, R::Monitor)?,
            13 => unit(d, R::ServiceList)?,
            14 => R::ServiceStatus {
                name: one(d, "Request::ServiceStatus")?,
            },
            15 => record(d, 2, "Request::ServiceControl", |f| {
                Ok(R::ServiceControl {
                    name: f.field()?,
                    action: f.field()?,
                })
            })?,
            16 => record(d, 2, "Request::ServiceLogs", |f| {
                Ok(R::ServiceLogs {
                    name: f.field()?,
                    lines: f.field()?,
                })
            })?,
            17 => unit(d, R::AppTemplates)?,
            18 => unit(d, R::AppList)?,
            19 => record(d, 2, "Request::AppInstall", |f| {
                Ok(R::AppInstall {
                    template: f.field()?,
                    name: f.field()?,
                })
            })?,
            20 => record(d, 2, "Request::AppControl", |f| {
                Ok(R::AppControl {
                    name: f.field()?,
                    action: f.field()?,
                })
            })?,
            21 => R::AppStatus {
                name: one(d, "Request::AppStatus")?,
            },
            n => return Err(unknown_variant(n, at)),
        })
    }

    fn blank() -> Self {
        Request::Info
    }
}

impl Wire for PublishSpec {
    fn put<W: Write>(&self, e: &mut Encoder<W>) -> Encoded<W> {
        put_fields!(e; self.service_type, self.port, self.description, self.txt)
    }

    fn take(d: &mut Decoder<'_>) -> Decoded<Self> {
        record(d, 4, "PublishSpec", |f| {
            Ok(PublishSpec {
                service_type: f.field()?,
                port: f.field()?,
                description: f.field()?,
                txt: f.field()?,
            })
        })
    }

    fn blank() -> Self {
        PublishSpec::default()
    }
}

impl Wire for QuerySpec {
    fn put<W: Write>(&self, e: &mut Encoder<W>) -> Encoded<W> {
        put_fields!(e; self.name, self.payload, self.nodes, self.tags, self.timeout_ms)
    }

    fn take(d: &mut Decoder<'_>) -> Decoded<Self> {
        record(d, 5, "QuerySpec", |f| {
            Ok(QuerySpec {
                name: f.field()?,
                payload: f.field()?,
                nodes: f.field()?,
                tags: f.field()?,
                timeout_ms: f.field()?,
            })
        })
    }

    fn blank() -> Self {
        QuerySpec::default()
    }
}

impl Wire for KeyCommand {
    fn put<W: Write>(&self, e: &mut Encoder<W>) -> Encoded<W> {
        let (index, key) = match self {
            KeyCommand::Generate => return head(e, 0, 0),
            KeyCommand::Install(key) => (1, key),
            KeyCommand::Use(key) => (2, key),
            KeyCommand::Remove(key) => (3, key),
            KeyCommand::List => return head(e, 4, 0),
        };
        head(e, index, 1)?;
        key.put(e)
    }

    fn take(d: &mut Decoder<'_>) -> Decoded<Self> {
        let (index, at) = variant(d)?;
        Ok(match index {
            0 => unit(d, KeyCommand::Generate)?,
            1 => KeyCommand::Install(one(d, "KeyCommand::Install")?),
            2 => KeyCommand::Use(one(d, "KeyCommand::Use")?),
            3 => KeyCommand::Remove(one(d, "KeyCommand::Remove")?),
            4 => unit(d, KeyCommand::List)?,
            n => return Err(unknown_variant(n, at)),
        })
    }

    fn blank() -> Self {
        KeyCommand::List
    }
}

// ---- Responses and views ----

impl Wire for Response {
    fn put<W: Write>(&self, e: &mut Encoder<W>) -> Encoded<W> {
        use Response as R;
        match self {
            R::Ok => head(e, 0, 0),
            R::Error { message } => {
                head(e, 1, 1)?;
                message.put(e)
            }
            R::Info(info) => {
                head(e, 2, 1)?;
                info.put(e)
            }
            R::Members(members) => {
                head(e, 3, 1)?;
                members.put(e)
            }
            R::Services(services) => {
                head(e, 4, 1)?;
                services.put(e)
            }
            R::Rtt { node, rtt_us } => {
                // The derive leaves a trailing `None` out rather than write `null`.
                head(e, 5, 1 + rtt_us.is_some() as u64)?;
                node.put(e)?;
                rtt_us.iter().try_for_each(|rtt| rtt.put(e))
            }
            R::QueryResponses(answers) => {
                head(e, 6, 1)?;
                answers.put(e)
            }
            R::Keys(keys) => {
                head(e, 7, 1)?;
                keys.put(e)
            }
            R::Key(key) => {
                head(e, 8, 1)?;
                key.put(e)
            }
            R::Change(change) => {
                head(e, 9, 1)?;
                change.put(e)
            }
            R::Instances(instances) => {
                head(e, 10, 1)?;
                instances.put(e)
            }
            R::Logs(lines) => {
                head(e, 11, 1)?;
                lines.put(e)
            }
            R::Templates(templates) => {
                head(e, 12, 1)?;
                templates.put(e)
            }
            R::Apps(apps) => {
                head(e, 13, 1)?;
                apps.put(e)
            }
        }
    }

    fn take(d: &mut Decoder<'_>) -> Decoded<Self> {
        use Response as R;
        let (index, at) = variant(d)?;
        Ok(match index {
            0 => unit(d, R::Ok)?,
            1 => R::Error {
                message: one(d, "Response::Error")?,
            },
            2 => R::Info(one(d, "Response::Info")?),
            3 => R::Members(one(d, "Response::Members")?),
            4 => R::Services(one(d, "Response::Services")?),
            5 => record(d, 1, "Response::Rtt", |f| {
                Ok(R::Rtt {
                    node: f.field()?,
                    rtt_us: f.field()?,
                })
            })?,
            6 => R::QueryResponses(one(d, "Response::QueryResponses")?),
            7 => R::Keys(one(d, "Response::Keys")?),
            8 => R::Key(one(d, "Response::Key")?),
            9 => R::Change(one(d, "Response::Change")?),
            10 => R::Instances(one(d, "Response::Instances")?),
            11 => R::Logs(one(d, "Response::Logs")?),
            12 => R::Templates(one(d, "Response::Templates")?),
            13 => R::Apps(one(d, "Response::Apps")?),
            n => return Err(unknown_variant(n, at)),
        })
    }

    fn blank() -> Self {
        Response::Ok
    }
}

impl Wire for NodeInfo {
    fn put<W: Write>(&self, e: &mut Encoder<W>) -> Encoded<W> {
        put_fields!(e;
            self.name,
            self.microcloud,
            self.board,
            self.arch,
            self.version,
            self.addr,
            self.uptime_s,
            self.mem_total_kb,
            self.mem_free_kb,
            self.load_x100,
            self.members_alive,
            self.members_total,
            self.keys_installed,
            self.encrypted,
            self.health_score,
            self.incarnation,
            self.agent_rss_kb,
            self.packets_rejected,
        )
    }

    fn take(d: &mut Decoder<'_>) -> Decoded<Self> {
        record(d, 18, "NodeInfo", |f| {
            Ok(NodeInfo {
                name: f.field()?,
                microcloud: f.field()?,
                board: f.field()?,
                arch: f.field()?,
                version: f.field()?,
                addr: f.field()?,
                uptime_s: f.field()?,
                mem_total_kb: f.field()?,
                mem_free_kb: f.field()?,
                load_x100: f.field()?,
                members_alive: f.field()?,
                members_total: f.field()?,
                keys_installed: f.field()?,
                encrypted: f.field()?,
                health_score: f.field()?,
                incarnation: f.field()?,
                agent_rss_kb: f.field()?,
                packets_rejected: f.field()?,
            })
        })
    }

    fn blank() -> Self {
        NodeInfo::default()
    }
}

impl Wire for MemberView {
    fn put<W: Write>(&self, e: &mut Encoder<W>) -> Encoded<W> {
        put_fields!(e;
            self.name,
            self.addr,
            self.state,
            self.microcloud,
            self.incarnation,
            self.rtt_us,
            self.since_change_s,
            self.tags,
        )
    }

    fn take(d: &mut Decoder<'_>) -> Decoded<Self> {
        record(d, 8, "MemberView", |f| {
            Ok(MemberView {
                name: f.field()?,
                addr: f.field()?,
                state: f.field()?,
                microcloud: f.field()?,
                incarnation: f.field()?,
                rtt_us: f.field()?,
                since_change_s: f.field()?,
                tags: f.field()?,
            })
        })
    }

    fn blank() -> Self {
        MemberView {
            name: String::new(),
            addr: String::new(),
            state: MemberState::Alive,
            microcloud: String::new(),
            incarnation: 0,
            rtt_us: None,
            since_change_s: 0,
            tags: Vec::new(),
        }
    }
}

impl Wire for ServiceView {
    fn put<W: Write>(&self, e: &mut Encoder<W>) -> Encoded<W> {
        put_fields!(e;
            self.service_type,
            self.description,
            self.host,
            self.ip,
            self.port,
            self.microcloud,
            self.txt,
            self.health,
            self.rtt_us,
            self.load_x100,
            self.quality,
        )
    }

    fn take(d: &mut Decoder<'_>) -> Decoded<Self> {
        record(d, 11, "ServiceView", |f| {
            Ok(ServiceView {
                service_type: f.field()?,
                description: f.field()?,
                host: f.field()?,
                ip: f.field()?,
                port: f.field()?,
                microcloud: f.field()?,
                txt: f.field()?,
                health: f.field()?,
                rtt_us: f.field()?,
                load_x100: f.field()?,
                quality: f.field()?,
            })
        })
    }

    fn blank() -> Self {
        ServiceView {
            service_type: String::new(),
            description: String::new(),
            host: String::new(),
            ip: String::new(),
            port: 0,
            microcloud: String::new(),
            txt: Vec::new(),
            health: Health::Unknown,
            rtt_us: None,
            load_x100: 0,
            quality: 0,
        }
    }
}

impl Wire for QueryAnswer {
    fn put<W: Write>(&self, e: &mut Encoder<W>) -> Encoded<W> {
        put_fields!(e; self.node, self.payload)
    }

    fn take(d: &mut Decoder<'_>) -> Decoded<Self> {
        record(d, 2, "QueryAnswer", |f| {
            Ok(QueryAnswer {
                node: f.field()?,
                payload: f.field()?,
            })
        })
    }

    fn blank() -> Self {
        QueryAnswer {
            node: String::new(),
            payload: Vec::new(),
        }
    }
}

impl Wire for KeyView {
    fn put<W: Write>(&self, e: &mut Encoder<W>) -> Encoded<W> {
        put_fields!(e; self.fingerprint, self.primary)
    }

    fn take(d: &mut Decoder<'_>) -> Decoded<Self> {
        record(d, 2, "KeyView", |f| {
            Ok(KeyView {
                fingerprint: f.field()?,
                primary: f.field()?,
            })
        })
    }

    fn blank() -> Self {
        KeyView {
            fingerprint: String::new(),
            primary: false,
        }
    }
}

impl Wire for ChangeView {
    fn put<W: Write>(&self, e: &mut Encoder<W>) -> Encoded<W> {
        match self {
            ChangeView::Member(member) => {
                head(e, 0, 1)?;
                member.put(e)
            }
            ChangeView::ServiceUp(service) => {
                head(e, 1, 1)?;
                service.put(e)
            }
            ChangeView::ServiceDown(service) => {
                head(e, 2, 1)?;
                service.put(e)
            }
            ChangeView::Event {
                from,
                name,
                payload,
                lamport,
            } => {
                head(e, 3, 4)?;
                from.put(e)?;
                name.put(e)?;
                payload.put(e)?;
                lamport.put(e)
            }
        }
    }

    fn take(d: &mut Decoder<'_>) -> Decoded<Self> {
        let (index, at) = variant(d)?;
        Ok(match index {
            0 => ChangeView::Member(one(d, "ChangeView::Member")?),
            1 => ChangeView::ServiceUp(one(d, "ChangeView::ServiceUp")?),
            2 => ChangeView::ServiceDown(one(d, "ChangeView::ServiceDown")?),
            3 => record(d, 4, "ChangeView::Event", |f| {
                Ok(ChangeView::Event {
                    from: f.field()?,
                    name: f.field()?,
                    payload: f.field()?,
                    lamport: f.field()?,
                })
            })?,
            n => return Err(unknown_variant(n, at)),
        })
    }

    fn blank() -> Self {
        ChangeView::Member(MemberView::blank())
    }
}

impl Wire for InstanceView {
    fn put<W: Write>(&self, e: &mut Encoder<W>) -> Encoded<W> {
        put_fields!(e;
            self.name,
            self.state,
            self.pid,
            self.health,
            self.restarts,
            self.published,
            self.uptime_s,
            self.last_log,
            self.kind,
        )
    }

    fn take(d: &mut Decoder<'_>) -> Decoded<Self> {
        record(d, 9, "InstanceView", |f| {
            Ok(InstanceView {
                name: f.field()?,
                state: f.field()?,
                pid: f.field()?,
                health: f.field()?,
                restarts: f.field()?,
                published: f.field()?,
                uptime_s: f.field()?,
                last_log: f.field()?,
                kind: f.field()?,
            })
        })
    }

    fn blank() -> Self {
        InstanceView {
            name: String::new(),
            state: String::new(),
            pid: None,
            health: Health::Unknown,
            restarts: 0,
            published: false,
            uptime_s: None,
            last_log: Vec::new(),
            kind: String::new(),
        }
    }
}

impl Wire for TemplateView {
    fn put<W: Write>(&self, e: &mut Encoder<W>) -> Encoded<W> {
        put_fields!(e;
            self.name,
            self.description,
            self.version,
            self.architectures,
            self.supported,
            self.installed,
        )
    }

    fn take(d: &mut Decoder<'_>) -> Decoded<Self> {
        record(d, 6, "TemplateView", |f| {
            Ok(TemplateView {
                name: f.field()?,
                description: f.field()?,
                version: f.field()?,
                architectures: f.field()?,
                supported: f.field()?,
                installed: f.field()?,
            })
        })
    }

    fn blank() -> Self {
        TemplateView {
            name: String::new(),
            description: String::new(),
            version: String::new(),
            architectures: Vec::new(),
            supported: false,
            installed: false,
        }
    }
}

impl Wire for AppView {
    fn put<W: Write>(&self, e: &mut Encoder<W>) -> Encoded<W> {
        put_fields!(e;
            self.name,
            self.template,
            self.state,
            self.ips,
            self.ports,
            self.memory_bytes,
            self.health,
            self.published,
        )
    }

    fn take(d: &mut Decoder<'_>) -> Decoded<Self> {
        record(d, 8, "AppView", |f| {
            Ok(AppView {
                name: f.field()?,
                template: f.field()?,
                state: f.field()?,
                ips: f.field()?,
                ports: f.field()?,
                memory_bytes: f.field()?,
                health: f.field()?,
                published: f.field()?,
            })
        })
    }

    fn blank() -> Self {
        AppView {
            name: String::new(),
            template: String::new(),
            state: String::new(),
            ips: Vec::new(),
            ports: Vec::new(),
            memory_bytes: None,
            health: Health::Unknown,
            published: false,
        }
    }
}
