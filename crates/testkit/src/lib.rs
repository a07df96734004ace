//! The test harness every StreamIt integration test uses: real processes on loopback.
//!
//! - [`LiveKit`]: a livekit-server on free loopback ports, with keys made up by the test.
//! - [`Backend`]: the `streamit-server` binary on a temporary SQLite file (or a given database).
//! - [`viewer::Viewer`]: the official LiveKit Python SDK as an independent viewer.
//! - [`Stack`]: LiveKit and the backend wired together (webhooks), with accounts on demand.
//! - [`SignalProxy`]: cuts signal WebSockets on demand (a signal-only outage).
//! - [`Browser`]: headless Debian chromium (playwright-core) on the watch pages.
//! - [`Cluster`]: the scaled-out system (`scripts/scale-out.sh`): PostgreSQL, Redis, two
//!   LiveKit nodes, two backend instances and haproxy in front of them.
//!
//! Every process is stopped when its handle is dropped, also when the test panics, and is
//! told by the kernel to die with the test process (Linux `PR_SET_PDEATHSIG`) if the test
//! is killed outright. See tests/README.md.

mod backend;
pub mod balancer;
pub mod browser;
/// Linux only, like [`postgres`].
#[cfg(target_os = "linux")]
mod cluster;
mod livekit;
mod paths;
/// Linux only: a Wayland desktop's screen sharing (portal, PipeWire) for share tests.
#[cfg(target_os = "linux")]
pub mod portal;
/// Linux only: it runs Debian's PostgreSQL binaries under another uid with a parent-death signal.
#[cfg(target_os = "linux")]
pub mod postgres;
mod process;
mod proxy;
pub mod redis;
mod stack;
pub mod viewer;
#[cfg(target_os = "linux")]
pub mod xdisplay;

pub use backend::{Backend, BackendOptions, server_bin};
pub use balancer::{Balancer, ServerState};
pub use browser::{Browser, Page, PageSample};
#[cfg(target_os = "linux")]
pub use cluster::{Cluster, ClusterOptions, StartupTimes};
pub use livekit::{Grants, LiveKit, LiveKitOptions, TurnInfo, TurnOptions, new_keys};
pub use paths::{
    browser_node_modules, chromium_bin, livekit_server_bin, repo_root, schemathesis_bin,
    viewer_python, web_node_modules,
};
pub use process::{children_cpu_time, free_tcp_port, free_udp_port, process_cpu_time, tie_to_test};
pub use proxy::SignalProxy;
pub use redis::Redis;
pub use stack::{Account, Stack, TEST_PASSWORD};
/// Bad networks on demand: [`netem::ImpairedLink`] (Linux, root) puts a process behind a
/// seeded model of delay, loss and a rate cap; see [`Stack::start_reachable_at`].
pub use streamit_netem as netem;
pub use viewer::{DataMessage, PatternReport, PsnrReport, Viewer, ViewerOptions, ViewerReport};
