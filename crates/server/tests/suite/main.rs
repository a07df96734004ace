//! The backend end to end: the real `streamit-server` binary on loopback with real
//! databases, a real LiveKit server and the Python SDK viewer. One test binary: each
//! integration-test file is its own binary, compiled and linked again for nothing.
//! `contract.rs` (schemathesis, CPU-heavy) stays a binary of its own.

#[path = "../common/mod.rs"]
mod common;

mod chat_rules;
mod cli;
mod http;
mod livekit;
mod presence;
mod web;
