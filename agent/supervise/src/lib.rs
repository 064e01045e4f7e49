//! procd-style supervisor policy as a pure state machine; the process shell
//! lives behind the `os` feature.
#![cfg_attr(not(feature = "uci"), no_std)]
extern crate alloc;

#[cfg(feature = "uci")]
pub mod config;
#[cfg(feature = "os")]
pub mod os;
pub mod policy;
pub mod service;
