//! procd-style supervisor policy as a pure state machine; the process shell
//! lives behind the `os` feature.
#![cfg_attr(not(feature = "os"), no_std)]
extern crate alloc;

pub mod policy;
