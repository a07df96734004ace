//! What the core's and the subscriber's unit-test harnesses share: the fixed
//! addresses of the participant under test and reading its last stats.

use std::net::SocketAddr;

use crate::core::{CoreConfig, Participant};
use crate::types::{Bitrate, IceTransport, PublisherEvent, StatsSnapshot};

pub(crate) fn addr(s: &str) -> SocketAddr {
    s.parse().expect("literal address")
}

/// The participant under test: publisher PC on 10.0.0.1:4000, subscriber PC on
/// 10.0.0.1:4001, starting at 1 Mbit/s.
pub(crate) fn test_participant(ice_transport: IceTransport) -> Participant {
    Participant::new(CoreConfig {
        publisher_addr: addr("10.0.0.1:4000"),
        subscriber_addr: addr("10.0.0.1:4001"),
        initial_bitrate: Bitrate::from_kbps(1000),
        ice_transport,
    })
}

/// The last stats snapshot among `events` (the test emitted one).
pub(crate) fn last_stats(events: &[PublisherEvent]) -> StatsSnapshot {
    events
        .iter()
        .rev()
        .find_map(|e| match e {
            PublisherEvent::Stats(s) => Some(s.clone()),
            _ => None,
        })
        .expect("stats")
}
