//! SWIM + Lifeguard membership, service catalog dissemination and Vivaldi
//! coordinates for nuvol, as a sans-IO state machine (`no_std + alloc`).
#![no_std]
extern crate alloc;
