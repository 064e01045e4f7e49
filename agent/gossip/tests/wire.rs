//! The wire format: golden byte vectors (checked both ways, and quoted in
//! docs/protocol.md) and a deterministic mutation run over every decoder.

use core::net::SocketAddr;
use core::time::Duration;
use nuvol_gossip::sim::realistic_member;
use nuvol_gossip::wire::{
    decode_packet, decode_push_pull, decode_saved_state, encode_message, encode_packet,
    encode_push_pull, CatalogEntry, MemberRecord, Message, PushPull, WireError, WireState,
};
use nuvol_gossip::{
    Config, Health, Identity, Instant, Key, Keyring, Node, ServiceRecord, Transmit,
};

/// The decoding budget of a LAN node.
fn budget() -> usize {
    Config::lan().decode_budget()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn addr() -> SocketAddr {
    "10.0.0.2:7946".parse().unwrap()
}

fn web_record() -> ServiceRecord {
    ServiceRecord {
        service_type: "web".into(),
        description: "d".into(),
        host: "b".into(),
        ip: "10.0.0.2".into(),
        port: 80,
        microcloud: "mc".into(),
        txt: vec![("k".into(), "v".into())],
        health: Health::Healthy,
    }
}

/// Every message type with its exact encoding (see docs/protocol.md).
fn golden() -> Vec<(Message, &'static str)> {
    vec![
        (
            Message::Ping {
                seq: 7,
                target: "b".into(),
            },
            "8300076162",
        ),
        (
            Message::IndirectPing {
                seq: 8,
                target: "c".into(),
                target_addr: addr(),
                nack: true,
            },
            "850108616382440a000002191f0af5",
        ),
        (
            Message::Ack {
                seq: 7,
                coord: None,
            },
            "820207",
        ),
        (Message::Nack { seq: 8 }, "820308"),
        (
            Message::Alive {
                name: "b".into(),
                addr: addr(),
                incarnation: 3,
            },
            "8404616282440a000002191f0a03",
        ),
        (
            Message::Suspect {
                name: "b".into(),
                incarnation: 3,
                from: "a".into(),
            },
            "84056162036161",
        ),
        (
            Message::Dead {
                name: "b".into(),
                incarnation: 3,
                from: "b".into(),
            },
            "84066162036162",
        ),
        (
            Message::Tags {
                name: "b".into(),
                lamport: 2,
                tags: vec![("role".into(), "web".into())],
            },
            "8407616202818264726f6c6563776562",
        ),
        (
            Message::Service {
                node: "b".into(),
                entry: CatalogEntry {
                    version: 4,
                    service_type: "web".into(),
                    port: 80,
                    record: Some(web_record()),
                },
            },
            "8308616284046377656218508863776562616461626831302e302e302e321850626d638182616b617600",
        ),
        (
            Message::Service {
                node: "b".into(),
                entry: CatalogEntry {
                    version: 5,
                    service_type: "web".into(),
                    port: 80,
                    record: None,
                },
            },
            "830861628305637765621850",
        ),
        (
            Message::UserEvent {
                lamport: 9,
                origin: "a".into(),
                name: "up".into(),
                payload: vec![1, 2],
            },
            "8509096161627570420102",
        ),
        (
            Message::Query {
                id: 1,
                lamport: 4,
                origin: "a".into(),
                origin_addr: addr(),
                name: "q".into(),
                payload: vec![],
                nodes: vec![],
                tags: vec![("role".into(), "web".into())],
                timeout_ms: 5000,
            },
            "8a0a0104616182440a000002191f0a61714080818264726f6c6563776562191388",
        ),
        (
            Message::QueryResponse {
                id: 1,
                from: "b".into(),
                payload: vec![0xff],
            },
            "840b01616241ff",
        ),
    ]
}

const GOLDEN_PACKET: &str = "82019f8300076162850108616382440a000002191f0af5820207ff";
const GOLDEN_SEALED: &str =
    "01020202020202020202020202641d6dad8da489b88e52599c54b4e5bf291b1b149b1b938f58";
const GOLDEN_PUSH_PULL: &str = "8801f5f461618186616182440a000002191f0a01000080800101";

fn golden_push_pull() -> PushPull {
    PushPull {
        version: 1,
        join: true,
        reply: false,
        from: "a".into(),
        members: vec![MemberRecord {
            name: "a".into(),
            addr: addr(),
            incarnation: 1,
            state: WireState::Alive,
            tags_lamport: 0,
            tags: vec![],
            coord: None,
        }],
        catalogs: vec![],
        event_clock: 1,
        query_clock: 1,
        ping: None,
    }
}

#[test]
fn golden_messages_encode_and_decode_exactly() {
    for (msg, want) in golden() {
        assert_eq!(hex(&encode_message(&msg)), want, "encoding {msg:?}");
        let packet = encode_packet(std::slice::from_ref(&msg));
        assert_eq!(
            decode_packet(&packet).unwrap(),
            vec![msg.clone()],
            "decoding {want}"
        );
    }
}

#[test]
fn golden_packet_push_pull_and_sealing_match_both_ways() {
    let msgs: Vec<Message> = golden().into_iter().take(3).map(|(m, _)| m).collect();
    assert_eq!(hex(&encode_packet(&msgs)), GOLDEN_PACKET);
    assert_eq!(decode_packet(&unhex(GOLDEN_PACKET)).unwrap(), msgs);

    let ring = Keyring::new(Key::from_bytes([1; 32]));
    let plain = encode_packet(&msgs[..1]);
    assert_eq!(hex(&ring.seal([2; 12], &plain)), GOLDEN_SEALED);
    assert_eq!(ring.open(&unhex(GOLDEN_SEALED)).unwrap(), plain);
    assert_eq!(Key::from_bytes([1; 32]).fingerprint(), "f492d991");

    assert_eq!(
        hex(&encode_push_pull(&golden_push_pull())),
        GOLDEN_PUSH_PULL
    );
    assert_eq!(
        decode_push_pull(&unhex(GOLDEN_PUSH_PULL), budget()).unwrap(),
        golden_push_pull()
    );
}

/// A stream probe from "a" with sequence number 7, and b's answer.
fn golden_stream_probe(from: &str, reply: bool) -> PushPull {
    PushPull {
        version: 1,
        join: false,
        reply,
        from: from.into(),
        members: vec![],
        catalogs: vec![],
        event_clock: 0,
        query_clock: 0,
        ping: Some(7),
    }
}
const GOLDEN_STREAM_PROBE: &str = "8901f4f461618080000007";
const GOLDEN_STREAM_PROBE_ACK: &str = "8901f4f561628080000007";

#[test]
fn golden_stream_probe_and_its_ack_match_both_ways() {
    for (pp, want) in [
        (golden_stream_probe("a", false), GOLDEN_STREAM_PROBE),
        (golden_stream_probe("b", true), GOLDEN_STREAM_PROBE_ACK),
    ] {
        assert_eq!(hex(&encode_push_pull(&pp)), want);
        assert_eq!(decode_push_pull(&unhex(want), budget()).unwrap(), pp);
    }
    // A push-pull without the field still decodes, as `None`.
    assert_eq!(
        decode_push_pull(&unhex(GOLDEN_PUSH_PULL), budget())
            .unwrap()
            .ping,
        None
    );
}

#[test]
fn definite_length_message_lists_decode_too() {
    // [1, [[0, 7, "b"]]] with a definite-length list.
    let bytes = unhex("8201818300076162");
    assert_eq!(
        decode_packet(&bytes).unwrap(),
        vec![Message::Ping {
            seq: 7,
            target: "b".into()
        }]
    );
}

#[test]
fn unknown_message_types_are_skipped() {
    // A packet with a message of type 99 between two pings.
    let bytes = unhex("82019f8300076162831863a10102038300086162ff");
    let got = decode_packet(&bytes).unwrap();
    assert_eq!(
        got,
        vec![
            Message::Ping {
                seq: 7,
                target: "b".into()
            },
            Message::Ping {
                seq: 8,
                target: "b".into()
            },
        ]
    );
}

#[test]
fn fields_added_by_newer_versions_are_ignored() {
    // A ping with a fourth field a future version might add.
    let bytes = unhex("82019f8400076162f5ff");
    assert_eq!(
        decode_packet(&bytes).unwrap(),
        vec![Message::Ping {
            seq: 7,
            target: "b".into()
        }]
    );
}

#[test]
fn structs_may_be_indefinite_but_messages_must_be_definite_and_complete() {
    // [8, "b", [_ 5, "web", 80]]: a tombstone entry as an indefinite array.
    assert_eq!(
        decode_packet(&unhex("82019f830861629f05637765621850ffff")).unwrap(),
        vec![Message::Service {
            node: "b".into(),
            entry: CatalogEntry {
                version: 5,
                service_type: "web".into(),
                port: 80,
                record: None,
            },
        }]
    );
    // [_ 0, 7, "b"]: a message is a definite array.
    assert_eq!(
        decode_packet(&unhex("82019f9f00076162ffff")),
        Err(WireError::Malformed)
    );
    // [0, 7]: a ping without its target.
    assert_eq!(
        decode_packet(&unhex("82019f820007ff")),
        Err(WireError::Malformed)
    );
}

#[test]
fn a_record_with_a_health_from_a_newer_version_stays_published_as_unknown() {
    // The golden Service message with health 3, then a ping: the record is
    // kept (health unknown ranks it lower) and the ping after it is read.
    let service =
        "8308616284046377656218508863776562616461626831302e302e302e321850626d638182616b617603";
    let bytes = unhex(&format!("82019f{service}8300076162ff"));
    let msgs = decode_packet(&bytes).unwrap();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    let Message::Service { entry, .. } = &msgs[0] else {
        panic!("not a service: {msgs:?}");
    };
    let record = entry.record.as_ref().expect("record kept");
    assert_eq!(record.health, Health::Unknown);
    assert_eq!((record.service_type.as_str(), record.port), ("web", 80));
}

#[test]
fn other_wire_versions_are_refused() {
    assert_eq!(
        decode_packet(&unhex("82029fff")),
        Err(WireError::Version(2))
    );
    let mut pp = unhex(GOLDEN_PUSH_PULL);
    pp[1] = 0x07;
    assert_eq!(decode_push_pull(&pp, budget()), Err(WireError::Version(7)));
}

/// A tiny deterministic generator (xorshift) so this test needs no crate.
struct Gen(u64);
impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Flip, insert, delete, truncate and splice bytes of `seed` inputs.
fn mutants(seeds: &[Vec<u8>], count: usize, gen: &mut Gen) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(count);
    for k in 0..count {
        let mut v = seeds[k % seeds.len()].clone();
        for _ in 0..1 + gen.below(4) {
            match gen.below(6) {
                0 if !v.is_empty() => {
                    let i = gen.below(v.len());
                    v[i] ^= 1 << gen.below(8);
                }
                1 if !v.is_empty() => {
                    let i = gen.below(v.len());
                    v[i] = gen.next() as u8;
                }
                2 => {
                    let i = gen.below(v.len() + 1);
                    v.insert(i, gen.next() as u8);
                }
                3 if !v.is_empty() => {
                    let i = gen.below(v.len());
                    v.remove(i);
                }
                4 => {
                    let l = gen.below(v.len() + 1);
                    v.truncate(l);
                }
                _ => {
                    // Claim a huge length: 0x9b = array, 8-byte length.
                    let i = gen.below(v.len() + 1);
                    v.splice(i..i, [0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
                }
            }
        }
        out.push(v);
    }
    for _ in 0..count / 4 {
        let len = gen.below(64);
        out.push((0..len).map(|_| gen.next() as u8).collect());
    }
    out
}

#[test]
fn every_decoder_survives_mutated_and_random_input() {
    let mut gen = Gen(0x5eed_f00d);
    let mut packet_seeds: Vec<Vec<u8>> = golden()
        .iter()
        .map(|(m, _)| encode_packet(std::slice::from_ref(m)))
        .collect();
    packet_seeds.push(unhex(GOLDEN_PACKET));
    for bytes in mutants(&packet_seeds, 20_000, &mut gen) {
        let _ = decode_packet(&bytes);
    }

    let pp_seeds = vec![unhex(GOLDEN_PUSH_PULL)];
    for bytes in mutants(&pp_seeds, 10_000, &mut gen) {
        let _ = decode_push_pull(&bytes, budget());
    }

    let node = Node::new(
        Identity::new("a", addr()),
        Config::lan(),
        Keyring::plaintext(),
        1,
    );
    let saved = node.export_state();
    for bytes in mutants(&[saved], 10_000, &mut gen) {
        let _ = decode_saved_state(&bytes);
    }

    let ring = Keyring::new(Key::from_bytes([1; 32]));
    for bytes in mutants(&[unhex(GOLDEN_SEALED)], 10_000, &mut gen) {
        // A mutated sealed packet must never open.
        if bytes != unhex(GOLDEN_SEALED) {
            assert!(ring.open(&bytes).is_err() || bytes.len() < 2);
        }
    }

    for text in mutants(
        &[Key::from_bytes([3; 32]).to_base64().into_bytes()],
        5_000,
        &mut gen,
    ) {
        let _ = Key::from_base64(&String::from_utf8_lossy(&text));
    }
}

#[test]
fn a_node_survives_mutated_packets_streams_and_state() {
    let mut gen = Gen(0xdead_beef);
    let mut a = Node::new(
        Identity::new("a", addr()),
        Config::lan(),
        Keyring::plaintext(),
        1,
    );
    let mut b = Node::new(
        Identity::new("b", "10.0.0.3:7946".parse().unwrap()),
        Config::lan(),
        Keyring::plaintext(),
        2,
    );
    let now = Instant::ZERO;
    b.join(now, &[a.addr()]);
    let Some(Transmit::Stream { bytes: stream, .. }) = b.poll_transmit() else {
        panic!("join sends a stream")
    };
    let packets: Vec<Vec<u8>> = golden()
        .iter()
        .map(|(m, _)| {
            let mut v = vec![0u8];
            v.extend(encode_packet(std::slice::from_ref(m)));
            v
        })
        .collect();
    let mut t = 0;
    for bytes in mutants(&packets, 20_000, &mut gen) {
        t += 7;
        let _ = a.handle_packet(Instant::from_millis(t), b.addr(), &bytes);
        a.handle_timeout(Instant::from_millis(t));
        while a.poll_transmit().is_some() {}
        while a.poll_event().is_some() {}
    }
    for bytes in mutants(&[stream], 5_000, &mut gen) {
        t += 7;
        let _ = a.handle_stream(Instant::from_millis(t), b.addr(), &bytes);
    }
    let saved = a.export_state();
    for bytes in mutants(&[saved], 5_000, &mut gen) {
        let mut fresh = Node::new(
            Identity::new("a", addr()),
            Config::lan(),
            Keyring::plaintext(),
            3,
        );
        let _ = fresh.import_state(&bytes);
    }
    let _ = a.poll_timeout();
    let _ = Duration::ZERO;
}

fn cluster(n: usize) -> PushPull {
    let (members, catalogs) = (0..n)
        .map(|i| realistic_member(i, WireState::Alive))
        .unzip();
    PushPull {
        version: 1,
        join: true,
        reply: false,
        from: "node-0000.mesh".into(),
        members,
        catalogs,
        event_clock: 1,
        query_clock: 1,
        ping: None,
    }
}

#[test]
fn a_large_realistic_cluster_fits_the_lan_stream_limit_and_decoding_budget() {
    let lan = Config::lan();
    let pp = cluster(400);
    let bytes = encode_push_pull(&pp);
    assert!(
        bytes.len() < lan.max_stream_len,
        "400 members of 10 services: {} bytes",
        bytes.len()
    );
    assert_eq!(decode_push_pull(&bytes, lan.decode_budget()), Ok(pp));
}

#[test]
fn a_push_pull_decoding_past_its_budget_is_refused_as_too_large() {
    let bytes = encode_push_pull(&cluster(40));
    assert!(decode_push_pull(&bytes, 1 << 20).is_ok());
    assert_eq!(decode_push_pull(&bytes, 64 << 10), Err(WireError::TooLarge));
    // A stream of the largest size made of 5-byte catalog tombstones
    // ([0, "", 0, null], a 200-byte entry each) is refused before it is
    // all built.
    let lan = Config::lan();
    // Catalogs of 500 entries each, under the per-catalog bound.
    let mut flood = unhex("9f01f4f46178809f");
    while flood.len() + 2_520 < lan.max_stream_len {
        flood.extend(unhex("83616e009f"));
        for _ in 0..500 {
            flood.extend([0x84, 0x00, 0x60, 0x00, 0xf6]);
        }
        flood.push(0xff);
    }
    flood.extend([0xff, 0xff]);
    assert_eq!(
        decode_push_pull(&flood, lan.decode_budget()),
        Err(WireError::TooLarge)
    );
    // So are datagrams of minimal messages past theirs.
    let mut packet = unhex("82019f");
    while packet.len() < 65_000 {
        packet.extend([0x82, 0x03, 0x00]);
    }
    packet.push(0xff);
    assert_eq!(decode_packet(&packet), Err(WireError::TooLarge));
}
