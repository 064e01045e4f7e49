//! Datagram payload decoder (after opening): must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(first) = nuvol_gossip::wire::decode_packet(data) {
        // What decodes must re-encode to bytes that decode and re-encode to
        // the same bytes (compared as bytes: coordinates may hold NaN).
        let bytes = nuvol_gossip::wire::encode_packet(&first);
        let second = nuvol_gossip::wire::decode_packet(&bytes).expect("own encoding decodes");
        assert_eq!(nuvol_gossip::wire::encode_packet(&second), bytes);
    }
});
