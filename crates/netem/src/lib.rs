//! Bad networks on demand, for tests and for QA rehearsals.
//!
//! A creator's uplink loses, delays and caps packets; loopback does none of that, and this
//! kernel has no `netem`. [`Impairment`] describes one direction of a bad link (parsed from
//! `delay=75ms,loss=5%,rate=300kbit`), applied by `str0m-netem`'s seeded sans-IO model so a
//! run can be repeated. On Linux, [`ImpairedLink`] puts that model on the only path between a
//! network namespace and the host: whatever runs inside (our publisher, the Python SDK, a
//! browser) sees the impairment on UDP and TCP alike, without knowing about it.

mod spec;
pub use spec::{Impairment, ParseError};

#[cfg(target_os = "linux")]
mod link;
#[cfg(target_os = "linux")]
pub use link::{Direction, ImpairedLink, LinkError, LinkStats};
