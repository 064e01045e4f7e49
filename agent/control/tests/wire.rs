//! The control protocol's wire contract, pinned byte for byte.
//!
//! An old CLI or CGI talks to a new agent (and the other way round) while opkg
//! upgrades the package, so the CBOR of every request, response and view must
//! never change. The golden vectors (`vectors/`) were produced by the first
//! implementation (minicbor's derive); every later codec must reproduce them
//! exactly and decode what that implementation decoded, which these tests
//! check case by case and `derive_oracle.rs` checks against the derive itself.

mod vectors;

use nuvol_control::*;
use vectors::{REQUESTS, RESPONSES};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex to bytes; spaces are allowed between items for readability.
fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("test vectors are hex"))
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn member() -> MemberView {
    MemberView {
        name: "n1".into(),
        addr: "10.0.0.1:7946".into(),
        state: MemberState::Suspect,
        microcloud: "gracia".into(),
        incarnation: 300,
        rtt_us: Some(70_000),
        since_change_s: 5,
        tags: pairs(&[("board", "rpi4"), ("role", "edge")]),
    }
}

fn service() -> ServiceView {
    ServiceView {
        service_type: "http".into(),
        description: "wiki".into(),
        host: "n2".into(),
        ip: "10.0.0.2".into(),
        port: 8080,
        microcloud: "gracia".into(),
        txt: pairs(&[("path", "/")]),
        health: Health::Unhealthy,
        rtt_us: None,
        load_x100: 250,
        quality: 77,
    }
}

fn requests() -> Vec<(&'static str, Request)> {
    vec![
        ("info", Request::Info),
        ("members", Request::Members),
        ("services", Request::Services),
        (
            "publish",
            Request::Publish(PublishSpec {
                service_type: "http".into(),
                port: 80,
                description: "wiki".into(),
                txt: pairs(&[("path", "/"), ("v", "2")]),
            }),
        ),
        (
            "unpublish",
            Request::Unpublish {
                service_type: "ssh".into(),
                port: 22,
            },
        ),
        (
            "search_any",
            Request::Search {
                service_type: None,
                scope: Scope::Global,
            },
        ),
        (
            "search_type",
            Request::Search {
                service_type: Some("http".into()),
                scope: Scope::Microcloud,
            },
        ),
        ("rtt", Request::Rtt { node: "n9".into() }),
        (
            "event",
            Request::Event {
                name: "deploy".into(),
                payload: vec![0, 1, 24, 255],
            },
        ),
        (
            "query",
            Request::Query(QuerySpec {
                name: "uptime".into(),
                payload: vec![7],
                nodes: vec!["n1".into(), "n2".into()],
                tags: pairs(&[("role", "edge")]),
                timeout_ms: 1500,
            }),
        ),
        (
            "join",
            Request::Join {
                addrs: vec!["10.0.0.1:7946".into(), "[fd00::1]:7946".into()],
            },
        ),
        ("leave", Request::Leave),
        ("keys_generate", Request::Keys(KeyCommand::Generate)),
        (
            "keys_install",
            Request::Keys(KeyCommand::Install("a2V5".into())),
        ),
        ("keys_use", Request::Keys(KeyCommand::Use("a2V5".into()))),
        (
            "keys_remove",
            Request::Keys(KeyCommand::Remove("b2xk".into())),
        ),
        ("keys_list", Request::Keys(KeyCommand::List)),
        ("monitor", Request::Monitor),
        ("service_list", Request::ServiceList),
        (
            "service_status",
            Request::ServiceStatus { name: "web".into() },
        ),
        (
            "service_control",
            Request::ServiceControl {
                name: "web".into(),
                action: Action::Restart,
            },
        ),
        (
            "service_logs",
            Request::ServiceLogs {
                name: "web".into(),
                lines: 100_000,
            },
        ),
        ("app_templates", Request::AppTemplates),
        ("app_list", Request::AppList),
        (
            "app_install",
            Request::AppInstall {
                template: "nextcloud".into(),
                name: "".into(),
            },
        ),
        (
            "app_control",
            Request::AppControl {
                name: "cloud".into(),
                action: Action::Uninstall,
            },
        ),
        (
            "app_status",
            Request::AppStatus {
                name: "cloud".into(),
            },
        ),
    ]
}

fn responses() -> Vec<(&'static str, Response)> {
    vec![
        ("ok", Response::Ok),
        (
            "error",
            Response::Error {
                message: "no such node".into(),
            },
        ),
        (
            "info",
            Response::Info(NodeInfo {
                name: "n1".into(),
                microcloud: "gracia".into(),
                board: "turris-omnia".into(),
                arch: "arm_cortex-a9_vfpv3-d16".into(),
                version: "0.1.0".into(),
                addr: "10.0.0.1:7946".into(),
                uptime_s: 86_400,
                mem_total_kb: 1_048_576,
                mem_free_kb: 524_288,
                load_x100: 42,
                members_alive: 9,
                members_total: 10,
                keys_installed: 2,
                encrypted: true,
                health_score: 1,
                incarnation: 5_000_000_000,
                agent_rss_kb: 2_100,
                packets_rejected: 3,
                // What a first-version agent sent: none of the later fields.
                members_refused: None,
                services_refused: None,
                max_members: None,
                packets_malformed: None,
            }),
        ),
        ("info_default", Response::Info(NodeInfo::default())),
        ("members", Response::Members(vec![member()])),
        (
            "members_no_rtt",
            Response::Members(vec![MemberView {
                rtt_us: None,
                tags: Vec::new(),
                state: MemberState::Left,
                ..member()
            }]),
        ),
        (
            "services",
            Response::Services(vec![
                service(),
                ServiceView {
                    health: Health::Healthy,
                    rtt_us: Some(1_234),
                    txt: Vec::new(),
                    ..service()
                },
            ]),
        ),
        ("services_empty", Response::Services(Vec::new())),
        (
            "rtt_known",
            Response::Rtt {
                node: "n2".into(),
                rtt_us: Some(1_500),
            },
        ),
        // The derive leaves a trailing `None` out of the array: `[5, ["n2"]]`.
        (
            "rtt_unknown",
            Response::Rtt {
                node: "n2".into(),
                rtt_us: None,
            },
        ),
        (
            "query_responses",
            Response::QueryResponses(vec![QueryAnswer {
                node: "n3".into(),
                payload: b"up 3d".to_vec(),
            }]),
        ),
        (
            "keys",
            Response::Keys(vec![
                KeyView {
                    fingerprint: "ab12cd34".into(),
                    primary: true,
                },
                KeyView {
                    fingerprint: "ef56".into(),
                    primary: false,
                },
            ]),
        ),
        ("key", Response::Key("c2VjcmV0".into())),
        (
            "change_member",
            Response::Change(ChangeView::Member(member())),
        ),
        (
            "change_service_up",
            Response::Change(ChangeView::ServiceUp(service())),
        ),
        (
            "change_service_down",
            Response::Change(ChangeView::ServiceDown(service())),
        ),
        (
            "change_event",
            Response::Change(ChangeView::Event {
                from: "n4".into(),
                name: "deploy".into(),
                payload: vec![1, 2],
                lamport: 17,
            }),
        ),
        (
            "instances",
            Response::Instances(vec![
                InstanceView {
                    name: "web".into(),
                    state: "running".into(),
                    pid: Some(4242),
                    health: Health::Healthy,
                    restarts: 2,
                    published: true,
                    uptime_s: Some(3600),
                    last_log: vec!["listening".into()],
                    kind: "service".into(),
                },
                InstanceView {
                    name: "cloud".into(),
                    state: "failed".into(),
                    pid: None,
                    health: Health::Unknown,
                    restarts: 0,
                    published: false,
                    uptime_s: None,
                    last_log: Vec::new(),
                    kind: "app".into(),
                },
            ]),
        ),
        (
            "logs",
            Response::Logs(vec!["line one".into(), "line two".into()]),
        ),
        (
            "templates",
            Response::Templates(vec![TemplateView {
                name: "nextcloud".into(),
                description: "files".into(),
                version: "28".into(),
                architectures: vec!["aarch64".into(), "x86_64".into()],
                supported: true,
                installed: false,
            }]),
        ),
        (
            "apps",
            Response::Apps(vec![
                AppView {
                    name: "cloud".into(),
                    template: "nextcloud".into(),
                    state: "RUNNING".into(),
                    ips: vec!["10.0.3.5".into()],
                    ports: vec![(80, 8080), (443, 8443)],
                    memory_bytes: Some(104_857_600),
                    health: Health::Healthy,
                    published: true,
                },
                AppView {
                    name: "db".into(),
                    template: "postgres".into(),
                    state: "STOPPED".into(),
                    ips: Vec::new(),
                    ports: Vec::new(),
                    memory_bytes: None,
                    health: Health::Unknown,
                    published: false,
                },
            ]),
        ),
        ("info_refusals", Response::Info(info_with_refusals())),
        (
            "info_refusals_partial",
            Response::Info(NodeInfo {
                services_refused: Some(3),
                ..NodeInfo::default()
            }),
        ),
    ]
}

/// A node reporting the fields appended after the first version.
fn info_with_refusals() -> NodeInfo {
    NodeInfo {
        name: "n1".into(),
        members_total: 1024,
        packets_rejected: 3,
        members_refused: Some(12),
        services_refused: Some(0),
        max_members: Some(1024),
        packets_malformed: Some(7),
        ..NodeInfo::default()
    }
}

fn encode<T: minicbor::Encode<()>>(v: &T) -> Vec<u8> {
    minicbor::to_vec(v).expect("encoding into a Vec cannot fail")
}

/// Prints the vectors of the samples: `cargo test -p nuvol-control --test wire
/// -- --ignored --nocapture print_golden`. Append only the lines of new
/// samples to `vectors/`; existing lines never change.
#[test]
#[ignore]
fn print_golden() {
    for (name, v) in requests() {
        println!("    (\"{name}\", \"{}\"),", hex(&encode(&v)));
    }
    println!();
    for (name, v) in responses() {
        println!("    (\"{name}\", \"{}\"),", hex(&encode(&v)));
    }
}

fn check_table<T>(values: Vec<(&'static str, T)>, golden: &[(&str, &str)])
where
    T: minicbor::Encode<()> + for<'b> minicbor::Decode<'b, ()>,
{
    assert_eq!(values.len(), golden.len(), "one golden vector per sample");
    for ((name, v), (gname, ghex)) in values.iter().zip(golden) {
        assert_eq!(name, gname, "samples and vectors in the same order");
        let bytes = encode(v);
        assert_eq!(hex(&bytes), *ghex, "{name}: encoding changed");
        let back: T = minicbor::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(hex(&encode(&back)), *ghex, "{name}: decode lost data");
    }
}

#[test]
fn every_request_encodes_to_its_golden_bytes_and_back() {
    check_table(requests(), REQUESTS);
}

#[test]
fn every_response_and_view_encodes_to_its_golden_bytes_and_back() {
    check_table(responses(), RESPONSES);
}

/// `NodeInfo` as the first version declared it, decoded by the derive that
/// was that version's codec: an old CLI or page reading a newer agent.
#[derive(minicbor::Decode)]
enum OldResponse {
    #[n(2)]
    Info(#[n(0)] OldNodeInfo),
}

#[derive(minicbor::Decode)]
struct OldNodeInfo {
    #[n(0)]
    name: String,
    #[n(1)]
    _microcloud: String,
    #[n(2)]
    _board: String,
    #[n(3)]
    _arch: String,
    #[n(4)]
    _version: String,
    #[n(5)]
    _addr: String,
    #[n(6)]
    _uptime_s: u64,
    #[n(7)]
    _mem_total_kb: u64,
    #[n(8)]
    _mem_free_kb: u64,
    #[n(9)]
    _load_x100: u32,
    #[n(10)]
    _members_alive: u32,
    #[n(11)]
    members_total: u32,
    #[n(12)]
    _keys_installed: u32,
    #[n(13)]
    _encrypted: bool,
    #[n(14)]
    _health_score: u32,
    #[n(15)]
    _incarnation: u64,
    #[n(16)]
    _agent_rss_kb: u64,
    #[n(17)]
    packets_rejected: u64,
}

#[test]
fn an_old_client_reads_a_new_agents_info_and_skips_the_later_fields() {
    let bytes = encode(&Response::Info(info_with_refusals()));
    let OldResponse::Info(old) = minicbor::decode::<OldResponse>(&bytes).unwrap();
    assert_eq!(old.name, "n1");
    assert_eq!(old.members_total, 1024);
    assert_eq!(old.packets_rejected, 3);
}

#[test]
fn a_new_client_reads_an_old_agents_info_as_not_reported() {
    let old = RESPONSES.iter().find(|(n, _)| *n == "info").unwrap().1;
    match response(old).unwrap() {
        Response::Info(i) => {
            assert_eq!((i.name.as_str(), i.packets_rejected), ("n1", 3));
            assert_eq!(i.members_refused, None);
            assert_eq!(i.services_refused, None);
            assert_eq!(i.max_members, None);
            assert_eq!(i.packets_malformed, None);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn later_info_fields_are_left_out_only_when_trailing_and_none() {
    // Nothing reported: exactly the first version's 18 fields.
    let none = encode(&Response::Info(NodeInfo::default()));
    assert_eq!(none[3], 0x92, "array of 18");
    // Only the second new field: the first is written as null before it.
    let partial = NodeInfo {
        services_refused: Some(3),
        ..NodeInfo::default()
    };
    let bytes = encode(&Response::Info(partial));
    assert_eq!(bytes[3], 0x94, "array of 20");
    assert!(hex(&bytes).ends_with("f603"));
    match response(&hex(&bytes)).unwrap() {
        Response::Info(i) => {
            assert_eq!((i.members_refused, i.services_refused), (None, Some(3)));
            assert_eq!((i.max_members, i.packets_malformed), (None, None));
        }
        other => panic!("unexpected {other:?}"),
    }
    // Every field reported round-trips, zeros included.
    let all = encode(&Response::Info(info_with_refusals()));
    match response(&hex(&all)).unwrap() {
        Response::Info(i) => {
            assert_eq!((i.members_refused, i.services_refused), (Some(12), Some(0)));
            assert_eq!((i.max_members, i.packets_malformed), (Some(1024), Some(7)));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn unit_enums_encode_as_index_and_empty_array() {
    let actions = [
        Action::Start,
        Action::Stop,
        Action::Restart,
        Action::Publish,
        Action::Unpublish,
        Action::Uninstall,
        Action::Reload,
    ];
    for (i, a) in actions.into_iter().enumerate() {
        assert_eq!(hex(&encode(&a)), format!("82{i:02x}80"), "{a:?}");
        assert_eq!(minicbor::decode::<Action>(&encode(&a)).unwrap(), a);
    }
    for (i, s) in [Scope::Microcloud, Scope::Global].into_iter().enumerate() {
        assert_eq!(hex(&encode(&s)), format!("82{i:02x}80"), "{s:?}");
        assert_eq!(minicbor::decode::<Scope>(&encode(&s)).unwrap(), s);
    }
    let healths = [Health::Healthy, Health::Unhealthy, Health::Unknown];
    for (i, h) in healths.into_iter().enumerate() {
        assert_eq!(hex(&encode(&h)), format!("82{i:02x}80"), "{h:?}");
        assert_eq!(minicbor::decode::<Health>(&encode(&h)).unwrap(), h);
    }
    let states = [
        MemberState::Alive,
        MemberState::Suspect,
        MemberState::Failed,
        MemberState::Left,
    ];
    for (i, m) in states.into_iter().enumerate() {
        assert_eq!(hex(&encode(&m)), format!("82{i:02x}80"), "{m:?}");
        assert_eq!(minicbor::decode::<MemberState>(&encode(&m)).unwrap(), m);
    }
}

fn request(hexed: &str) -> Result<Request, minicbor::decode::Error> {
    minicbor::decode(&unhex(hexed))
}

fn response(hexed: &str) -> Result<Response, minicbor::decode::Error> {
    minicbor::decode(&unhex(hexed))
}

#[test]
fn indefinite_arrays_decode_like_definite_ones() {
    // Unpublish { "ssh", 22 } with its fields in an indefinite array.
    match request("8204 9f 63737368 16 ff").unwrap() {
        Request::Unpublish { service_type, port } => {
            assert_eq!((service_type.as_str(), port), ("ssh", 22))
        }
        other => panic!("unexpected {other:?}"),
    }
    // Join with an indefinite list of addresses.
    match request("8209819f626e31626e32ff").unwrap() {
        Request::Join { addrs } => assert_eq!(addrs, ["n1", "n2"]),
        other => panic!("unexpected {other:?}"),
    }
    // A view inside an indefinite list, its own fields indefinite too.
    match response("8207 81 9f 9f 626162 f5 ff 9f 626364 f4 ff ff").unwrap() {
        Response::Keys(k) => {
            assert_eq!(k.len(), 2);
            assert_eq!((k[0].fingerprint.as_str(), k[0].primary), ("ab", true));
            assert_eq!((k[1].fingerprint.as_str(), k[1].primary), ("cd", false));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn fields_a_newer_peer_adds_are_skipped() {
    // Unpublish with a third field {"x": [1, 2]} this version does not know.
    match request("8204 83 63737368 16 a1 6178 820102").unwrap() {
        Request::Unpublish { service_type, port } => {
            assert_eq!((service_type.as_str(), port), ("ssh", 22))
        }
        other => panic!("unexpected {other:?}"),
    }
    // A key view with a third field, in an indefinite array.
    match response("820781819f626162f5f6ff").unwrap() {
        Response::Keys(k) => assert!(k[0].primary),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn missing_optional_fields_decode_as_none() {
    match response("820581626e32").unwrap() {
        Response::Rtt { node, rtt_us } => assert_eq!((node.as_str(), rtt_us), ("n2", None)),
        other => panic!("unexpected {other:?}"),
    }
    match request("820582f6820180").unwrap() {
        Request::Search {
            service_type,
            scope,
        } => assert_eq!((service_type, scope), (None, Scope::Global)),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn missing_or_null_required_fields_are_errors() {
    // Unpublish without its port.
    assert!(request("8204 81 63737368").is_err());
    // Search with only its optional type: the scope is required.
    assert!(request("820581f6").is_err());
    // Unpublish with null for its port.
    assert!(request("82048263737368f6").is_err());
    // A struct variant with no fields at all.
    assert!(request("820680").is_err());
    // Error without its message.
    assert!(response("820180").is_err());
}

#[test]
fn a_unit_variant_ignores_what_follows_its_index() {
    for body in ["820080", "8200f6", "82008101", "8200a0"] {
        assert!(matches!(request(body).unwrap(), Request::Info), "{body}");
    }
    assert!(matches!(response("82000a").unwrap(), Response::Ok));
}

#[test]
fn an_enum_is_exactly_a_two_element_array() {
    for body in ["8100", "83008080", "9f0080ff", "00", "a10080"] {
        assert!(request(body).is_err(), "{body}");
    }
}

#[test]
fn unknown_variants_are_errors() {
    assert!(request("821680").is_err());
    assert!(request("822080").is_err());
    assert!(response("820e80").is_err());
    // An unknown action inside a known request.
    assert!(request("820f8263776562820780").is_err());
}

#[test]
fn integers_in_wider_encodings_decode_and_overflow_is_an_error() {
    for port in ["16", "190016", "1a00000016", "1b0000000000000016"] {
        match request(&format!("82048263737368{port}")).unwrap() {
            Request::Unpublish { port, .. } => assert_eq!(port, 22),
            other => panic!("unexpected {other:?}"),
        }
    }
    // 65,536 does not fit a port.
    assert!(request("820482637373681a00010000").is_err());
    // Nor does a negative number.
    assert!(request("8204826373736820").is_err());
    // A variant index in a wide encoding.
    assert!(matches!(
        request("821a0000000180").unwrap(),
        Request::Members
    ));
}

#[test]
fn wrong_types_are_errors() {
    // A port given as text, a name given as bytes, a bool given as 1.
    assert!(request("8204 82 63737368 623232").is_err());
    assert!(request("8206 81 42 6e39").is_err());
    assert!(response("8207 81 81 82 626162 01").is_err());
    // Text that is not UTF-8.
    assert!(request("82068162ffff").is_err());
    // An indefinite-length text string (the derive only took definite ones).
    assert!(request("8206817f626e39ff").is_err());
}

#[test]
fn every_truncation_of_every_vector_is_an_error() {
    for (name, h) in REQUESTS.iter().chain(RESPONSES) {
        let bytes = unhex(h);
        for end in 0..bytes.len() {
            let req = minicbor::decode::<Request>(&bytes[..end]);
            let resp = minicbor::decode::<Response>(&bytes[..end]);
            assert!(req.is_err() && resp.is_err(), "{name} cut at {end}");
        }
    }
}

#[test]
fn any_single_byte_change_decodes_or_errors_without_panicking() {
    for (_, h) in REQUESTS.iter().chain(RESPONSES) {
        let bytes = unhex(h);
        for i in 0..bytes.len() {
            for flip in [0x01, 0x02, 0x08, 0x10, 0x1f, 0x20, 0x40, 0x80, 0xff] {
                let mut m = bytes.clone();
                m[i] ^= flip;
                let _ = minicbor::decode::<Request>(&m);
                let _ = minicbor::decode::<Response>(&m);
            }
        }
    }
}
