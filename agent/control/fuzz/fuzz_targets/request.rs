//! A request frame as the agent reads it from its control socket: any bytes
//! must give a request or an error, never a panic or an allocation beyond the
//! frame limit; a request that decodes must encode to bytes that decode to the
//! same bytes again (the codec has one form per value).
#![no_main]
use libfuzzer_sys::fuzz_target;
use nuvol_control::{frame, Request};

fuzz_target!(|data: &[u8]| {
    let Ok(Some(body)) = frame::read_body(&mut &data[..], frame::MAX_REQUEST) else {
        return;
    };
    if let Ok(req) = frame::decode::<Request>(&body) {
        let once = frame::encode(&req).expect("encoding into memory cannot fail");
        let again: Request = frame::decode(&once[4..]).expect("an encoded request decodes");
        assert_eq!(frame::encode(&again).unwrap(), once);
    }
});
