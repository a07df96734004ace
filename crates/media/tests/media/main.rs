//! Capture, conversion, encoding and the pipeline, without a network. One test binary:
//! each integration-test file is its own binary, compiled and linked again for nothing.
//! The PulseAudio tests set process-wide environment and `pipeline_stall` measures the
//! process's RSS, so those stay binaries of their own.

mod camera;
mod codecs;
mod pipeline_flow;
mod sources;
