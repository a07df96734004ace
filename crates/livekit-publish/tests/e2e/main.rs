//! The participant end to end against a real livekit-server, with the official Python SDK
//! (or a second Rust participant) on the other side. One test binary for all of it: each
//! integration-test file is its own binary that compiles the helpers and links the whole
//! crate graph again, which cost CI minutes for nothing.

#[path = "../common/mod.rs"]
mod common;

mod attributes;
mod ice_tcp;
mod media;
mod participants;
mod reconnect;
mod subscribe;
mod subscribe_reconnect;
