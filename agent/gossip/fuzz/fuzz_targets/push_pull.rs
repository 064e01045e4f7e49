//! Push-pull stream decoder (after opening): must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let budget = nuvol_gossip::Config::lan().decode_budget();
    if let Ok(first) = nuvol_gossip::wire::decode_push_pull(data, budget) {
        // What decodes must re-encode to bytes that decode (within the
        // same budget: the same values cost the same) and re-encode to the
        // same bytes (compared as bytes: coordinates may hold NaN).
        let bytes = nuvol_gossip::wire::encode_push_pull(&first);
        let second =
            nuvol_gossip::wire::decode_push_pull(&bytes, budget).expect("own encoding decodes");
        assert_eq!(nuvol_gossip::wire::encode_push_pull(&second), bytes);
    }
});
