//! Saved-state decoder (a file on disk that may be corrupt): must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = nuvol_gossip::wire::decode_saved_state(data);
});
