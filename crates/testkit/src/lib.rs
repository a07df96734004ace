//! Test harness (see tests/README.md).
pub mod postgres;
