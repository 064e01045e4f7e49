//! A frame from the control socket is untrusted: a length inside it that claims
//! billions of entries or bytes must fail on the missing input, not reserve
//! memory for what it claims. This test binary counts the largest single
//! allocation while decoding such frames (its own binary, so no other test's
//! allocations are counted).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use nuvol_control::{frame, Request, Response};

struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged and only
// records the requested size.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller upholds `alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: the caller upholds `realloc`'s contract, which we pass on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("test vectors are hex"))
        .collect()
}

#[test]
fn huge_length_claims_fail_without_allocating_what_they_claim() {
    let requests = [
        // Event whose payload claims 2^64 - 1 elements.
        "8207 82 60 9bffffffffffffffff 01",
        // Join whose address list claims 2^32 entries.
        "8209 81 9b0000000100000000 626e31",
        // Rtt whose node name claims 4 GiB of text.
        "8206 81 7affffffff 6e",
        // Unpublish with an unknown third field claiming 2^32 map entries.
        "8204 83 63737368 16 bb0000000100000000 0102",
        // The request's own field list claiming 2^40 fields.
        "8204 9b0000010000000000 63737368 16",
    ];
    let responses = [
        // Members claiming 2^32 views, then one byte.
        "8203 81 9b0000000100000000 80",
        // A query answer whose payload claims 2^62 bytes.
        "8206 81 81 82 626e33 9b4000000000000000 00",
        // Apps with a port list claiming 2^32 pairs.
        "820d 81 81 88 61 61 61 62 61 63 80 9b0000000100000000",
    ];
    let before = LARGEST.load(Ordering::Relaxed);
    for h in requests {
        let body = unhex(h);
        assert!(frame::decode::<Request>(&body).is_err(), "{h}");
    }
    for h in responses {
        let body = unhex(h);
        assert!(frame::decode::<Response>(&body).is_err(), "{h}");
    }
    let largest = LARGEST.load(Ordering::Relaxed);
    // The harness's own allocations stay well under this; a decoder that
    // trusted any of the claims above would ask for gigabytes.
    assert!(
        largest <= before.max(64 * 1024),
        "largest allocation {largest} bytes"
    );
}
