//! How video send streams answer NACKs. str0m's default drops every queued resend while
//! resends exceed 15 % of a stream's last second, which 5 % loss on a low-rate stream
//! (a lost packet NACKed twice, a key frame's burst) crosses: the SFU never gets the
//! packet, and a libwebrtc viewer then stalls up to 3 s until it asks for a key frame.

use std::time::Duration;

use str0m::Rtc;
use str0m::media::{Mid, Rid};

/// How long a sent packet stays answerable: three round trips at 1 s RTT, like
/// libwebrtc's packet history (`kPacketCullingDelayFactor` 3).
pub(super) const HISTORY_AGE: Duration = Duration::from_secs(3);

/// Enough for `HISTORY_AGE` at about 1,300 packets a second (1080p at 10 Mbit/s).
pub(super) const HISTORY_PACKETS: usize = 4096;

/// Resends may take as many bytes as first sends over the last second (share 0.5 of the
/// total). libwebrtc caps retransmissions at the target bitrate; this is the same bound
/// when the encoder sends its target, and still stops a NACK storm on a congested link.
pub(super) const MAX_RESEND_SHARE: f32 = 0.5;

/// Sets the resend policy on the (mid, rid) send stream once it exists; false until then
/// (the caller tries again with the next frame). Call once per stream: str0m starts a
/// new, empty history each time.
pub(super) fn configure(rtc: &mut Rtc, mid: Mid, rid: Option<Rid>) -> bool {
    let mut api = rtc.direct_api();
    let Some(stream) = api.stream_tx_by_mid(mid, rid) else {
        return false;
    };
    stream.set_rtx_cache(HISTORY_PACKETS, HISTORY_AGE, Some(MAX_RESEND_SHARE));
    true
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Duration;

    use str0m::Event;

    use crate::test_support::Harness;
    use crate::types::*;

    /// One single-packet H.264 frame (a key frame first), numbered by its timestamp.
    fn frame(n: u64) -> EncodedVideo {
        let mut data = vec![0, 0, 0, 1, if n == 0 { 0x65 } else { 0x41 }];
        data.resize(900, (n % 251) as u8 | 1);
        EncodedVideo {
            layer: None,
            data: data.into(),
            keyframe: n == 0,
            timestamp: Duration::from_millis(n * 33),
        }
    }

    /// A quarter of the media lost on the way for 2 s: str0m's default would drop the
    /// resends once they pass 15 % of the stream's last second; with our policy every
    /// NACKed packet comes again, so the SFU ends up with every frame.
    #[test]
    fn a_quarter_of_the_packets_lost_is_all_repaired() {
        let mut h = Harness::new();
        h.connected();
        let cid = h.publish(&VideoTrackOptions::new(VideoCodec::H264, 640, 360, 30));
        h.sfu_events.clear();
        let frames = 150;
        for n in 0..frames {
            h.lose_every_nth_rtp = if (30..90).contains(&n) { 4 } else { 0 };
            assert!(h.core.write_video(&cid, &frame(n), h.now));
            h.pump(33);
        }
        h.pump(2_000);
        let got: HashSet<u64> = h
            .sfu_events
            .iter()
            .filter_map(|e| match e {
                Event::MediaData(d) => {
                    Some(d.time.rebase(str0m::media::Frequency::NINETY_KHZ).numer())
                }
                _ => None,
            })
            .collect();
        assert!(h.rtp_lost() > 10, "the link lost {} packets", h.rtp_lost());
        assert_eq!(
            got.len() as u64,
            frames,
            "frames the SFU assembled, of {frames} sent ({} datagrams lost)",
            h.rtp_lost()
        );
    }
}
