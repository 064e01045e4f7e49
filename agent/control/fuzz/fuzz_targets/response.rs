//! A response frame as the CLI and the page read it from the agent: any bytes
//! must give a response or an error, never a panic or an allocation beyond the
//! frame limit; a response that decodes must encode to bytes that decode to the
//! same bytes again (the codec has one form per value).
#![no_main]
use libfuzzer_sys::fuzz_target;
use nuvol_control::{frame, Response};

fuzz_target!(|data: &[u8]| {
    let Ok(Some(body)) = frame::read_body(&mut &data[..], frame::MAX_RESPONSE) else {
        return;
    };
    if let Ok(resp) = frame::decode::<Response>(&body) {
        let once = frame::encode(&resp).expect("encoding into memory cannot fail");
        let again: Response = frame::decode(&once[4..]).expect("an encoded response decodes");
        assert_eq!(frame::encode(&again).unwrap(), once);
    }
});
