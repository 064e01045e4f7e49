//! The CBOR form of every request, response and view, written out by hand.
//!
//! The bytes are exactly those minicbor's derive produced for the first version
//! of this crate (`tests/wire.rs` pins one vector per variant), because an old
//! CLI or CGI talks to a new agent while opkg upgrades the package. Written
//! out, the codec is a fraction of the derive's code: the derive generated a
//! decoding loop with an `Option` and an error message per field for every
//! type and variant; here one loop ([`fields`]) serves them all, and each
//! struct is a table of its fields by index ([`wire_struct`]).
//!
//! The format, as the derive defined it:
//! - a struct is the array of its fields in index order; trailing `None`s are
//!   left out (`Response::Rtt`'s, and `NodeInfo`'s fields added later);
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
    /// What a field holds before its value is read, and keeps when a peer
    /// leaves it out: `None`, empty, zero, `false`, the first variant. Only
    /// optional fields can be left out (`None`) and fields appended after the
    /// first version (an older peer does not know them); for any other
    /// missing field decoding fails.
    fn blank() -> Self;
    /// Whether this is a `None`, which a struct leaves out at its end.
    fn is_none(&self) -> bool {
        false
    }
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

/// Decodes the fields of one struct or variant, an array (definite or
/// indefinite) whose positions are the field indexes: `field(d, index)` reads
/// the field at `index` into place, or skips it when this version does not
/// know it (a newer peer's). Fails when fewer than `required` fields came.
///
/// One loop for every type, each adding only its `match` (measured on the
/// aarch64 binary: a cursor whose steps got inlined into every type, or a
/// struct literal with a `?` per field, came out 2-5 KiB larger).
fn fields<'b>(
    d: &mut Decoder<'b>,
    required: u64,
    what: &'static str,
    field: &mut dyn FnMut(&mut Decoder<'b>, u64) -> Decoded<()>,
) -> Decoded<()> {
    let at = d.position();
    let len = d.array()?;
    let mut index = 0;
    loop {
        match len {
            Some(n) if index == n => break,
            None if d.datatype()? == Type::Break => {
                d.skip()?;
                break;
            }
            _ => field(d, index)?,
        }
        index += 1;
    }
    if index < required {
        let missing = i64::try_from(index).unwrap_or(i64::MAX);
        return Err(decode::Error::missing_value(missing)
            .with_message(what)
            .at(at));
    }
    Ok(())
}

/// A variant with one field.
fn one<T: Wire>(d: &mut Decoder<'_>, what: &'static str) -> Decoded<T> {
    let mut v = T::blank();
    fields(d, 1, what, &mut |d, i| {
        match i {
            0 => v = take(d)?,
            _ => d.skip()?,
        }
        Ok(())
    })?;
    Ok(v)
}

/// A variant with two fields, of which the first `required` must be there.
fn two<A: Wire, B: Wire>(
    d: &mut Decoder<'_>,
    required: u64,
    what: &'static str,
) -> Decoded<(A, B)> {
    let mut v = (A::blank(), B::blank());
    fields(d, required, what, &mut |d, i| {
        match i {
            0 => v.0 = take(d)?,
            1 => v.1 = take(d)?,
            _ => d.skip()?,
        }
        Ok(())
    })?;
    Ok(v)
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

/// Decodes the items of a list, an array (definite or indefinite), calling
/// `item` for each. One loop for every item type, like [`fields`].
fn items_of<'b>(
    d: &mut Decoder<'b>,
    item: &mut dyn FnMut(&mut Decoder<'b>) -> Decoded<()>,
) -> Decoded<()> {
    match d.array()? {
        Some(n) => {
            for _ in 0..n {
                item(d)?;
            }
        }
        None => {
            while d.datatype()? != Type::Break {
                item(d)?;
            }
            d.skip()?;
        }
    }
    Ok(())
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
        items_of(d, &mut |d| {
            items.push(take(d)?);
            Ok(())
        })?;
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

    fn is_none(&self) -> bool {
        Option::is_none(self)
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

/// A struct's CBOR form, from the table of its fields by index (what was
/// `#[n(i)]` on each field): an array of the fields in index order. List the
/// fields in index order, without gaps. `required` is how many fields a peer
/// must send: those up to the last one that is not an `Option`. Keep it when
/// appending a field, so an older peer's message, which lacks the new field,
/// still decodes, with the new field blank.
macro_rules! wire_struct {
    ($t:ident, required $required:literal: $($i:literal $field:ident),+ $(,)?) => {
        impl Wire for $t {
            fn put<W: Write>(&self, e: &mut Encoder<W>) -> Encoded<W> {
                // The derive leaves trailing `None`s out rather than write `null`s.
                let present = [$(!self.$field.is_none()),+];
                let len = present.iter().rposition(|p| *p).map_or(0, |i| i + 1);
                e.array(len as u64)?;
                $(if $i < len {
                    self.$field.put(e)?;
                })+
                Ok(())
            }

            fn take(d: &mut Decoder<'_>) -> Decoded<Self> {
                let mut v = Self::blank();
                fields(d, $required, stringify!($t), &mut |d, i| {
                    match i {
                        $($i => v.$field = take(d)?,)+
                        _ => d.skip()?,
                    }
                    Ok(())
                })?;
                Ok(v)
            }

            fn blank() -> Self {
                $t {
                    $($field: Wire::blank(),)+
                }
            }
        }
    };
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
            4 => {
                let (service_type, port) = two(d, 2, "Request::Unpublish")?;
                R::Unpublish { service_type, port }
            }
            5 => {
                let (service_type, scope) = two(d, 2, "Request::Search")?;
                R::Search {
                    service_type,
                    scope,
                }
            }
            6 => R::Rtt {
                node: one(d, "Request::Rtt")?,
            },
            7 => {
                let (name, payload) = two(d, 2, "Request::Event")?;
                R::Event { name, payload }
            }
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
            15 => {
                let (name, action) = two(d, 2, "Request::ServiceControl")?;
                R::ServiceControl { name, action }
            }
            16 => {
                let (name, lines) = two(d, 2, "Request::ServiceLogs")?;
                R::ServiceLogs { name, lines }
            }
            17 => unit(d, R::AppTemplates)?,
            18 => unit(d, R::AppList)?,
            19 => {
                let (template, name) = two(d, 2, "Request::AppInstall")?;
                R::AppInstall { template, name }
            }
            20 => {
                let (name, action) = two(d, 2, "Request::AppControl")?;
                R::AppControl { name, action }
            }
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

wire_struct!(PublishSpec, required 4:
    0 service_type,
    1 port,
    2 description,
    3 txt,
);

wire_struct!(QuerySpec, required 5:
    0 name,
    1 payload,
    2 nodes,
    3 tags,
    4 timeout_ms,
);

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
            5 => {
                let (node, rtt_us) = two(d, 1, "Response::Rtt")?;
                R::Rtt { node, rtt_us }
            }
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

wire_struct!(NodeInfo, required 18:
    0 name,
    1 microcloud,
    2 board,
    3 arch,
    4 version,
    5 addr,
    6 uptime_s,
    7 mem_total_kb,
    8 mem_free_kb,
    9 load_x100,
    10 members_alive,
    11 members_total,
    12 keys_installed,
    13 encrypted,
    14 health_score,
    15 incarnation,
    16 agent_rss_kb,
    17 packets_rejected,
    18 members_refused,
    19 services_refused,
    20 max_members,
    21 packets_malformed,
);

wire_struct!(MemberView, required 8:
    0 name,
    1 addr,
    2 state,
    3 microcloud,
    4 incarnation,
    5 rtt_us,
    6 since_change_s,
    7 tags,
);

wire_struct!(ServiceView, required 11:
    0 service_type,
    1 description,
    2 host,
    3 ip,
    4 port,
    5 microcloud,
    6 txt,
    7 health,
    8 rtt_us,
    9 load_x100,
    10 quality,
);

wire_struct!(QueryAnswer, required 2:
    0 node,
    1 payload,
);

wire_struct!(KeyView, required 2:
    0 fingerprint,
    1 primary,
);

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
            3 => {
                let (mut from, mut name, mut payload, mut lamport) =
                    (String::new(), String::new(), Vec::new(), 0);
                fields(d, 4, "ChangeView::Event", &mut |d, i| {
                    match i {
                        0 => from = take(d)?,
                        1 => name = take(d)?,
                        2 => payload = take(d)?,
                        3 => lamport = take(d)?,
                        _ => d.skip()?,
                    }
                    Ok(())
                })?;
                ChangeView::Event {
                    from,
                    name,
                    payload,
                    lamport,
                }
            }
            n => return Err(unknown_variant(n, at)),
        })
    }

    fn blank() -> Self {
        ChangeView::Member(MemberView::blank())
    }
}

wire_struct!(InstanceView, required 9:
    0 name,
    1 state,
    2 pid,
    3 health,
    4 restarts,
    5 published,
    6 uptime_s,
    7 last_log,
    8 kind,
);

wire_struct!(TemplateView, required 6:
    0 name,
    1 description,
    2 version,
    3 architectures,
    4 supported,
    5 installed,
);

wire_struct!(AppView, required 8:
    0 name,
    1 template,
    2 state,
    3 ips,
    4 ports,
    5 memory_bytes,
    6 health,
    7 published,
);
