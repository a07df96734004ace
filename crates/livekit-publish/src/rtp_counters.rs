//! Counters of one RTP stream (a layer we send, a (mid, rid) we receive) from
//! str0m's periodic stats, with the bitrate between two reports. The publisher's
//! egress and the subscriber's ingress stats keep the same figures, so they share
//! this one accumulator.

use std::time::{Duration, Instant};

use str0m::stats::{MediaEgressStats, MediaIngressStats};

use crate::types::Bitrate;

/// The shortest span a stream's bitrate is read over: a second of frames, so one key frame
/// does not read as a burst.
const BITRATE_SPAN: Duration = Duration::from_millis(900);

#[derive(Debug, Default, Clone)]
pub(crate) struct RtpCounters {
    pub(crate) bytes: u64,
    pub(crate) packets: u64,
    pub(crate) nacks: u64,
    pub(crate) plis: u64,
    pub(crate) firs: u64,
    pub(crate) loss: Option<f32>,
    pub(crate) rtt: Option<Duration>,
    /// Egress only: packets the receiver still counts lost in its last report (RFC 3550
    /// cumulative lost), i.e. losses no retransmission repaired.
    pub(crate) lost: Option<u64>,
    /// Between the last two reports.
    pub(crate) bitrate: Bitrate,
    prev_bytes: u64,
    prev_at: Option<Instant>,
}

/// `RtpCounters::update_from_*`, one for each of str0m's report types: its
/// `MediaEgressStats` and `MediaIngressStats` carry the same figures by the
/// same names.
macro_rules! update_from {
    ($($name:ident: $stats:ty),*) => {
        impl RtpCounters {$(
            /// Takes one of str0m's periodic reports of the stream.
            pub(crate) fn $name(&mut self, s: &$stats) {
                self.bytes = s.bytes;
                self.packets = s.packets;
                self.nacks = s.nacks;
                self.plis = s.plis;
                self.firs = s.firs;
                // str0m leaves these out of a report made before the next receiver report.
                self.loss = s.loss.or(self.loss);
                self.rtt = s.rtt.or(self.rtt);
                self.sample_bitrate(s.timestamp);
            }
        )*}
    };
}

update_from!(update_common: MediaEgressStats, update_from_ingress: MediaIngressStats);

impl RtpCounters {
    /// Takes one of str0m's periodic reports of a stream we send.
    pub(crate) fn update_from_egress(&mut self, s: &MediaEgressStats) {
        self.update_common(s);
        if let Some(r) = &s.remote {
            self.lost = Some(r.packets_lost);
        }
    }
}

impl RtpCounters {
    /// The bitrate over the last [`BITRATE_SPAN`] or more, at a report made at `timestamp`
    /// (str0m reports more often than that, for the core's overload guard).
    fn sample_bitrate(&mut self, timestamp: Instant) {
        if let Some(prev) = self.prev_at {
            let dt = timestamp.saturating_duration_since(prev);
            if dt < BITRATE_SPAN {
                return;
            }
            self.bitrate = Bitrate(
                (self.bytes.saturating_sub(self.prev_bytes) as f64 * 8.0 / dt.as_secs_f64()) as u64,
            );
        }
        self.prev_at = Some(timestamp);
        self.prev_bytes = self.bytes;
    }
}
