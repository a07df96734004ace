//! Test harness (see tests/README.md).
