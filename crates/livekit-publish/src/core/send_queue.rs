//! How long video waits in str0m's pacer before it goes out. The pacer sends at the
//! estimate and keeps what it cannot send yet (up to 2 s, then it bursts), so frames
//! encoded for a link that just narrowed sit there and reach viewers late. Like
//! libwebrtc's encoder pushback, the encoder skips frames while the oldest packet has
//! waited longer than [`SEND_QUEUE_BOUND`]: no frame is made that would only queue.

use std::time::{Duration, Instant};

use str0m::Rtc;
use str0m::media::{Mid, Rid};

use super::Participant;
use crate::types::*;

/// The longest a layer's oldest unsent packet may wait before its encoder skips frames:
/// the 200 ms, about six frames at 30 fps. A 180p key frame at 100 kbit/s takes
/// longer than this to leave, so the frames after it are skipped until it has gone.
pub const SEND_QUEUE_BOUND: Duration = Duration::from_millis(200);

impl Participant {
    /// How long the oldest packet of the track's `layer` (`None`: its single stream) has
    /// waited in the pacer, as of str0m's last look at the queue; zero when nothing waits.
    /// `None` before the stream exists. The stats' peak ([`StatsSnapshot::send_queue_delay`])
    /// is the longest of these readings since the last snapshot.
    pub fn send_queue_delay(
        &mut self,
        cid: &TrackCid,
        layer: Option<VideoQuality>,
        now: Instant,
    ) -> Option<Duration> {
        let t = self.tracks.iter().find(|t| &t.cid == cid)?;
        let (mid, rid) = (t.mid?, t.rid(layer));
        let waited = queue_wait(self.publisher.as_mut()?, mid, rid, now)?;
        self.send_queue_peak = Some(self.send_queue_peak.unwrap_or_default().max(waited));
        Some(waited)
    }

    /// Whether any sending layer of the track has had a packet waiting longer than
    /// [`SEND_QUEUE_BOUND`]: its encoder should skip frames until the pacer catches up.
    /// Runs on every driver timer, so it allocates nothing.
    pub fn video_congested(&mut self, cid: &TrackCid, now: Instant) -> bool {
        if !self.is_connected() {
            return false;
        }
        let Some(t) = self.tracks.iter().find(|t| &t.cid == cid) else {
            return false;
        };
        let (Some(mid), Some(rtc)) = (t.mid, self.publisher.as_mut()) else {
            return false;
        };
        let mut congested = false;
        for l in t.layers.iter().filter(|l| t.is_wanted(l.quality)) {
            if let Some(waited) = queue_wait(rtc, mid, t.rid(Some(l.quality)), now) {
                self.send_queue_peak = Some(self.send_queue_peak.unwrap_or_default().max(waited));
                congested |= waited > SEND_QUEUE_BOUND;
            }
        }
        congested
    }

    /// The longest wait seen since the last call (for the stats), then forgets it.
    pub(super) fn take_send_queue_peak(&mut self) -> Option<Duration> {
        self.send_queue_peak.take()
    }
}

/// How long the oldest unsent packet of stream `(mid, rid)` has waited, as of str0m's
/// last look at the queue; zero when nothing waits, `None` before the stream exists.
fn queue_wait(rtc: &mut Rtc, mid: Mid, rid: Option<Rid>, now: Instant) -> Option<Duration> {
    let mut api = rtc.direct_api();
    let info = api.stream_tx_by_mid(mid, rid)?.queue_info()?;
    Some(
        info.first_unsent()
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t)),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::test_support::{Harness, last_stats};
    use crate::types::*;

    /// A 100 KB key frame leaves the pacer at about the 1 Mbit/s start estimate, so for
    /// most of a second its last packets wait: the track is congested while they do, not
    /// once they are gone, and the stats carry the longest wait.
    #[test]
    fn a_frame_bigger_than_the_pacer_sends_in_200_ms_congests_the_track_until_it_left() {
        let mut h = Harness::new();
        h.connected();
        let cid = h.publish(&VideoTrackOptions::new(VideoCodec::H264, 640, 360, 30));
        assert!(!h.core.video_congested(&cid, h.now), "nothing sent yet");
        let mut data = vec![0, 0, 0, 1, 0x65];
        data.resize(100_000, 0x11);
        let key = EncodedVideo {
            layer: None,
            data: data.into(),
            keyframe: true,
            timestamp: Duration::ZERO,
        };
        assert!(h.core.write_video(&cid, &key, h.now));
        h.pump(300);
        let waited = h.core.send_queue_delay(&cid, None, h.now);
        assert!(
            waited.is_some_and(|d| d > super::SEND_QUEUE_BOUND),
            "after 300 ms the oldest packet waited {waited:?}"
        );
        assert!(h.core.video_congested(&cid, h.now));
        h.pump(2_000);
        assert_eq!(
            h.core.send_queue_delay(&cid, None, h.now),
            Some(Duration::ZERO)
        );
        assert!(!h.core.video_congested(&cid, h.now), "the frame has gone");
        h.core.emit_stats(h.now);
        h.pump(0);
        let peaks: Vec<Option<Duration>> = h
            .events
            .iter()
            .filter_map(|e| match e {
                PublisherEvent::Stats(s) => Some(s.send_queue_delay),
                _ => None,
            })
            .collect();
        assert!(
            peaks
                .iter()
                .flatten()
                .any(|d| *d > Duration::from_millis(250)),
            "the stats' longest waits: {peaks:?}"
        );
        assert_eq!(
            last_stats(&h.events).send_queue_delay,
            None,
            "nothing sampled since the stats before"
        );
    }
}
