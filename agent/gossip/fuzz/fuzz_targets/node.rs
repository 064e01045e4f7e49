//! The whole node on hostile input: datagrams, streams and saved state, with
//! plaintext sealing so the fuzzer reaches the protocol logic. Must never
//! panic, whatever the order.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nuvol_gossip::{Config, Identity, Instant, Keyring, Node};

fuzz_target!(|data: &[u8]| {
    let me = Identity::new("a", "10.0.0.1:7946".parse().unwrap());
    let mut node = Node::new(me, Config::lan(), Keyring::plaintext(), 1);
    let from = "10.0.0.2:7946".parse().unwrap();
    // Split the input into chunks: the first byte of each says what it is.
    let mut t = 0u64;
    for chunk in data.split(|&b| b == 0xfe) {
        let Some((&kind, rest)) = chunk.split_first() else { continue };
        t += u64::from(kind) * 37;
        let now = Instant::from_millis(t);
        let mut framed = vec![0u8];
        framed.extend_from_slice(rest);
        match kind % 4 {
            0 => drop(node.handle_packet(now, from, &framed)),
            1 => drop(node.handle_stream(now, from, &framed)),
            2 => drop(node.import_state(rest)),
            _ => node.handle_timeout(now),
        }
        while node.poll_transmit().is_some() {}
        while node.poll_event().is_some() {}
        let _ = node.poll_timeout();
    }
});
