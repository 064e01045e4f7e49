//! Base64 key text (from a config file or the CLI): must never panic, and a
//! key that parses must print back to text that parses to the same key.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nuvol_gossip::Key;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = core::str::from_utf8(data) {
        if let Ok(key) = Key::from_base64(text) {
            assert_eq!(Key::from_base64(&key.to_base64()), Ok(key));
        }
    }
});
