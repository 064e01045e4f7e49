//! Benchmark (not a test): time per page view with a large microcloud.
//!
//! `page-bench [MEMBERS SERVICES ROUNDS]` (default 100 300 200) starts the fake
//! agent in this process and times, per view, the whole handler (connect to
//! the control socket, CBOR request and answer, render) and the render alone.
//! The fake agent runs in the same process, so its share is included; run it
//! natively and under `qemu-arm-static -cpu cortex-a9` to compare boards.

#[path = "../tests/support/fake_agent.rs"]
mod fake_agent;

use fake_agent::{FakeAgent, Model};
use nuvol_control::json::ToJson;
use nuvol_control::Scope;
use nuvol_page::route::{handle, Agent, HttpRequest};
use nuvol_page::views::{self, Page};
use std::time::Instant;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (members, services, rounds) = match args.as_slice() {
        [m, s, r] => (*m, *s, *r),
        _ => (100, 300, 200),
    };
    let dir = std::env::temp_dir().join(format!("nuvol-page-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let model = Model::scaled(members, services);
    let fake = FakeAgent::start(&dir.join("nuvol.sock"), model.clone(), None);
    let agent = Agent::new(&fake.path);
    let secret = [9u8; 32];
    println!("{members} members, {services} services, {rounds} rounds per view");
    println!(
        "{:<28} {:>12} {:>12} {:>10}",
        "view", "handler µs", "render µs", "page kB"
    );
    let views: [(&str, &str, &str); 6] = [
        ("overview", "/", ""),
        ("members", "/members", ""),
        ("search (global, all)", "/search", "scope=global"),
        ("search (global, http)", "/search", "scope=global&type=http"),
        ("search json", "/search", "scope=global&format=json"),
        ("services", "/services", ""),
    ];
    for (name, path, query) in views {
        let req = HttpRequest {
            method: "GET",
            path,
            query,
            base: "/cgi-bin/nuvol",
            binding: "user:root",
            same_origin: true,
            ..HttpRequest::default()
        };
        let mut size = 0;
        let t = Instant::now();
        for _ in 0..rounds {
            let r = handle(&req, &agent, &secret, 1_700_000_000);
            assert_eq!(r.status, 200, "{name}: {}", r.body);
            size = r.body.len();
        }
        let handler_us = t.elapsed().as_micros() as f64 / rounds as f64;
        let t = Instant::now();
        for _ in 0..rounds {
            if query.contains("json") {
                std::hint::black_box(model.catalog.to_json());
                continue;
            }
            let mut p = Page::start("/cgi-bin/nuvol", "token", None, name, false);
            let selected = if query.contains("http") { "http" } else { "" };
            match path {
                "/members" => views::members(&mut p, &model.members),
                "/search" => views::search(&mut p, &model.catalog, Scope::Global, selected, false),
                "/services" => views::services(&mut p, &model.instances, &model.own),
                _ => views::overview(&mut p, &model.info),
            }
            std::hint::black_box(p.finish());
        }
        let render_us = t.elapsed().as_micros() as f64 / rounds as f64;
        println!(
            "{name:<28} {handler_us:>12.0} {render_us:>12.0} {:>10.1}",
            size as f64 / 1024.0
        );
    }
    let hash =
        nuvol_page::auth::PasswordHash::parse(&nuvol_page::hash_password("pw").expect("urandom"))
            .expect("own format");
    let t = Instant::now();
    assert!(hash.verify("pw"));
    println!(
        "login: PBKDF2-HMAC-SHA256 with {} iterations: {} ms",
        hash.iterations,
        t.elapsed().as_millis()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
