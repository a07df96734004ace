//! The health bar while on air (frames, bitrate, loss, RTT, CPU steps, from the media
//! counters and the transport's stats) and the split of the target bitrate over layers.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use streamit_livekit_publish as lk;

use super::{Live, Task};
use crate::media::EncoderControl;
use crate::state::{CpuLimited, Health, NetworkLimited, StreamState};

impl Task {
    pub(super) fn refresh_health(&mut self) {
        if let Some(live) = self.live.take() {
            self.refresh_health_from(&live);
            self.live = Some(live);
        }
    }

    pub(super) fn refresh_health_from(&mut self, live: &Live) {
        let c = &self.counters;
        let s = &live.last_stats;
        let transport_dropped = live.video.as_ref().map(|v| v.dropped()).unwrap_or(0);
        let encoded = c.encoded.load(Ordering::Relaxed) - live.base_encoded;
        let step = self.video.as_ref().map(|v| v.status.get());
        self.state.health = Health {
            frames_captured: c.captured.load(Ordering::Relaxed) - live.base_captured,
            frames_sent: encoded.saturating_sub(transport_dropped),
            frames_dropped: c.encoder_dropped.load(Ordering::Relaxed) - live.base_dropped
                + transport_dropped,
            audio_packets_sent: c.audio_packets.load(Ordering::Relaxed) - live.base_audio,
            audio_redundancy: s.audio_redundancy,
            bitrate_bps: s.egress_bitrate.bps(),
            target_bitrate_bps: s.bandwidth_estimate.map(|b| b.bps()),
            rtt: s.rtt,
            packet_loss: packet_loss(&s.layers),
            keyframe_requests: live.keyframe_requests,
            nacks_received: s.layers.iter().map(|l| l.nacks).sum(),
            video_packets_lost: live.video.as_ref().and_then(|v| {
                s.layers
                    .iter()
                    .filter(|l| &l.track == v.cid())
                    .filter_map(|l| l.lost)
                    .reduce(|a, b| a + b)
            }),
            reconnects: live.reconnects,
            connection_quality: quality_now(
                &self.state.stream_state,
                s.connection_quality,
                packet_loss(&s.layers),
                s.rtt,
            )
            .map(|q| capped_by_silence(q, s.feedback_silence)),
            transport: s.transport.map(lk::TransportProtocol::name),
            relay_packets_sent: s.relay_packets_sent,
            relay_channel_data_sent: s.relay_channel_data_sent,
            cpu_limited: step.filter(|s| s.limited).map(|s| CpuLimited {
                width: s.width,
                height: s.height,
                fps: s.fps,
            }),
            cpu_adaptations: step.map_or(0, |s| s.step_downs),
            frames_skipped_for_network: c.network_skipped.load(Ordering::Relaxed)
                - live.base_network_skipped,
            send_queue_delay: s.send_queue_delay,
            network_limited: live
                .allocation
                .filter(|(_, a)| a.limited && live.ramp.is_over())
                .map(|(estimate_bps, a)| NetworkLimited {
                    estimate_bps,
                    paused_layers: a.paused,
                    watched_layers: live.encoders.iter().filter(|e| e.is_wanted()).count(),
                    scaled_to: step
                        .filter(|s| s.network_scaled)
                        .map(|s| s.height.min(s.width)),
                }),
        };
    }
}

/// Loss or RTT above these cannot read "excellent" (a call with 5 % loss or 400 ms of
/// RTT is noticeably worse, whatever LiveKit last scored).
const GOOD_AT_MOST_LOSS: f32 = 0.05;
const GOOD_AT_MOST_RTT: Duration = Duration::from_millis(400);
/// Loss or RTT above these read "poor" at best.
const POOR_AT_MOST_LOSS: f32 = 0.15;
const POOR_AT_MOST_RTT: Duration = Duration::from_millis(1000);

/// The connection's quality as the health bar shows it, from what is happening now:
/// "lost" while the transport is being recovered (LiveKit's last word is stale then: it
/// said "excellent" through a whole outage); otherwise LiveKit's score, capped by the
/// loss and RTT the receivers report.
fn quality_now(
    stream: &StreamState,
    livekit: Option<lk::ConnectionQuality>,
    loss: Option<f32>,
    rtt: Option<Duration>,
) -> Option<&'static str> {
    use lk::ConnectionQuality as Q;
    if matches!(stream, StreamState::Reconnecting { .. }) {
        return Some("lost");
    }
    let rank = |q: Q| match q {
        Q::Lost => 0,
        Q::Poor => 1,
        Q::Good => 2,
        Q::Excellent => 3,
    };
    let loss = loss.unwrap_or(0.0);
    let rtt = rtt.unwrap_or_default();
    let cap = if loss > POOR_AT_MOST_LOSS || rtt > POOR_AT_MOST_RTT {
        Q::Poor
    } else if loss > GOOD_AT_MOST_LOSS || rtt > GOOD_AT_MOST_RTT {
        Q::Good
    } else {
        Q::Excellent
    };
    livekit.map(|q| {
        let q = if rank(q) > rank(cap) { cap } else { q };
        match q {
            Q::Excellent => "excellent",
            Q::Good => "good",
            Q::Poor => "poor",
            Q::Lost => "lost",
        }
    })
}

/// Silence from the server while sending, after which the connection reads "poor" (its
/// feedback comes every ~100 ms; the watchdog calls the transport lost at 2 s).
const SILENCE_IS_POOR: Duration = Duration::from_millis(700);

/// "poor" at best while the server has been silent for [`SILENCE_IS_POOR`].
fn capped_by_silence(quality: &'static str, silence: Option<Duration>) -> &'static str {
    match quality {
        "excellent" | "good" if silence.is_some_and(|s| s >= SILENCE_IS_POOR) => "poor",
        q => q,
    }
}

/// The estimate's first climb, after going live or reconnecting: str0m starts from its
/// initial estimate (1.5 Mbit/s), holds it a few seconds, then climbs to what the tracks
/// want, and being short of it meanwhile is no news of the network. The bar read "Network
/// limited: 1041 kbit/s, sending at a lower bitrate" on loopback 5 s into a stream that
/// shared a screen beside the camera, while the estimate went 1.5 → 2.5 → 4.2 Mbit/s. The
/// climb is over once the estimate falls a tenth under where it last rose to (a link
/// narrower than that), or has not risen a tenth for [`RAMP_FLAT_FOR`] (it found the
/// link's rate, or what the tracks want). Later climbs (after a cap lifts) keep the bar's
/// word: quality is still reduced then.
#[derive(Debug, Default)]
pub(super) struct Ramp {
    /// The estimate when it last rose a tenth, and when.
    rose: Option<(u64, Instant)>,
    over: bool,
}

const RAMP_FLAT_FOR: Duration = Duration::from_secs(5);
const RAMP_STEP: f64 = 0.1;

impl Ramp {
    /// The estimate now (each stats tick).
    pub fn observe(&mut self, now: Instant, estimate_bps: Option<u64>) {
        let Some(bps) = estimate_bps.filter(|_| !self.over) else {
            return;
        };
        let bps_f = bps as f64;
        match self.rose {
            Some((from, _)) if bps_f >= from as f64 * (1.0 + RAMP_STEP) => {
                self.rose = Some((bps, now));
            }
            Some((from, at)) => {
                self.over = bps_f < from as f64 * (1.0 - RAMP_STEP)
                    || now.saturating_duration_since(at) >= RAMP_FLAT_FOR;
            }
            None => self.rose = Some((bps, now)),
        }
    }

    pub fn is_over(&self) -> bool {
        self.over
    }
}

/// What the uplink's estimate leaves for video once the audio's share is taken: packet
/// headers and retransmissions ride on the same link, and an encoder overshoots its target
/// on busy scenes; sending at the estimate itself fills the bottleneck's queue until the
/// picture lags by seconds.
const VIDEO_SHARE: f64 = 0.85;
/// A layer below this share of its nominal rate is paused instead. Low on purpose: on a
/// busy machine the estimate dips on loopback too, and a paused layer comes back only as
/// fast as the estimate climbs (str0m probes slowly), while the SFU moves viewers down at
/// once.
const MIN_LAYER_SHARE: f64 = 0.15;
/// Video below this share of the watched layers' nominal rates is worth telling the
/// creator about; above it the picture is as good to the eye, and the estimate passes
/// through it on every start while it ramps up (the bar read "Network limited: 1591
/// kbit/s" on loopback 10 s into a stream).
const LIMITED_BELOW: f64 = 0.7;
/// No layer is encoded below this while the estimate leaves it (libwebrtc's minimum video
/// bitrate).
const FLOOR_BPS: u32 = 30_000;
/// The least the lowest layer gets when not even [`FLOOR_BPS`] fits: what goes out beyond
/// str0m's pacing rate (1.1× the estimate) waits in its queue, up to 2 s of it, and the
/// picture lags by that much (1.4-2.0 s under a 300 kbit/s cap whose estimate sank to 40).
const MIN_VIDEO_BPS: u32 = 10_000;

/// How the estimate was spent, for the health bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Allocation {
    /// The bitrate given to video, all layers.
    pub video_bps: u64,
    /// Layers someone watches that the uplink cannot carry now (paused from the top).
    pub paused: usize,
    /// Whether video gets less than the watched layers' nominal rates.
    pub limited: bool,
}

/// Spends the transport's estimate on the layers someone watches (dynacast), from the
/// lowest up, as libwebrtc does: each layer first gets [`MIN_LAYER_SHARE`] of its nominal
/// rate, and a layer that cannot get that is paused with every layer above it; what is
/// left is shared in proportion to nominal rates, never above nominal. The lowest watched
/// layer is always sent: at [`FLOOR_BPS`] at least, or what the budget leaves down to
/// [`MIN_VIDEO_BPS`]. `audio_bps` is what the audio takes on the wire.
pub(super) fn distribute_bitrate(
    encoders: &[Arc<EncoderControl>],
    target_bps: u64,
    audio_bps: u64,
) -> Allocation {
    let mut watched: Vec<&Arc<EncoderControl>> =
        encoders.iter().filter(|e| e.is_wanted()).collect();
    if watched.is_empty() {
        return Allocation::default();
    }
    // Low → high, whatever order the encoders came in.
    watched.sort_by_key(|e| e.nominal_bps);
    let budget = (target_bps as f64 * VIDEO_SHARE - audio_bps as f64).max(0.0);
    let mut fitting = 0;
    let mut committed = 0.0;
    for (i, e) in watched.iter().enumerate() {
        let min = e.nominal_bps as f64 * MIN_LAYER_SHARE;
        if i > 0 && committed + min > budget {
            break;
        }
        committed += min;
        fitting = i + 1;
    }
    let nominal: f64 = watched[..fitting]
        .iter()
        .map(|e| e.nominal_bps as f64)
        .sum();
    let factor = if nominal > 0.0 {
        (budget / nominal).clamp(MIN_LAYER_SHARE, 1.0)
    } else {
        1.0
    };
    let floor = FLOOR_BPS.min((budget as u32).max(MIN_VIDEO_BPS));
    let mut video_bps = 0;
    for (i, e) in watched.iter().enumerate() {
        if i < fitting {
            let bps = ((e.nominal_bps as f64 * factor) as u32)
                .min(budget.max(floor as f64) as u32)
                .max(floor);
            e.set_bitrate(bps);
            e.set_fits(true);
            video_bps += bps as u64;
        } else {
            e.set_fits(false);
        }
    }
    // Layers nobody watches keep their rate and stay ready to resume.
    for e in encoders.iter().filter(|e| !e.is_wanted()) {
        e.set_fits(true);
    }
    Allocation {
        video_bps,
        paused: watched.len() - fitting,
        limited: factor < LIMITED_BELOW || fitting < watched.len(),
    }
}

/// One loss figure for the connection from the per-layer fractions the receiver reports
/// carry (0..1): the layers' average weighted by their current bitrate, so a lossy
/// high layer counts for more than a lossy thumbnail; a plain average while no layer has
/// a bitrate yet. Layers without a report (and nonsense values) are left out; `None` when
/// no layer has one.
fn packet_loss(layers: &[lk::LayerStats]) -> Option<f32> {
    let reported: Vec<(f64, f64)> = layers
        .iter()
        .filter_map(|l| {
            let loss = l.loss.filter(|f| f.is_finite())?;
            Some((f64::from(loss.clamp(0.0, 1.0)), l.bitrate.bps() as f64))
        })
        .collect();
    if reported.is_empty() {
        return None;
    }
    let weight: f64 = reported.iter().map(|(_, w)| w).sum();
    let loss = if weight > 0.0 {
        reported.iter().map(|(f, w)| f * w).sum::<f64>() / weight
    } else {
        reported.iter().map(|(f, _)| f).sum::<f64>() / reported.len() as f64
    };
    Some(loss.clamp(0.0, 1.0) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seconds (1 s stats ticks) after which the ramp is over, for estimates per tick.
    fn ramp_over_at(estimates: &[Option<u64>]) -> Option<usize> {
        let (mut r, t0) = (Ramp::default(), Instant::now());
        estimates.iter().enumerate().find_map(|(s, e)| {
            r.observe(t0 + Duration::from_secs(s as u64), *e);
            r.is_over().then_some(s)
        })
    }

    #[test]
    fn network_limited_waits_for_the_estimate_s_first_climb() {
        let kbit = |ks: &[u64]| ks.iter().map(|k| Some(k * 1_000)).collect::<Vec<_>>();
        // Loopback with a share beside the camera, as measured: 1.5 Mbit/s held 3 s, then
        // up to what the tracks want. Over 5 s after the last rise of a tenth.
        let mut lo = kbit(&[1_500, 1_500, 1_500, 2_450, 4_170, 4_170, 4_200]);
        lo.extend([Some(4_200_000); 5]);
        assert_eq!(ramp_over_at(&lo), Some(9));
        // A link narrower than the start: over at the first fall of a tenth.
        assert_eq!(ramp_over_at(&kbit(&[1_500, 1_450, 900, 400])), Some(2));
        // A link wider than the start but narrower than the want: climbs, then holds.
        let mut mid = kbit(&[1_500, 1_700, 1_900, 2_000]);
        mid.extend([Some(2_000_000); 6]);
        assert_eq!(ramp_over_at(&mid), Some(7));
        // No estimate yet: nothing to judge.
        assert_eq!(ramp_over_at(&[None; 8]), None);
        // Once over, a later climb (a cap lifted) does not hide the bar's word again.
        let (mut r, t0) = (Ramp::default(), Instant::now());
        let later = kbit(&[1_500, 900, 300, 300, 600, 1_200, 2_400]);
        for (s, e) in later.iter().enumerate() {
            r.observe(t0 + Duration::from_secs(s as u64), *e);
        }
        assert!(r.is_over());
    }

    fn layer(rid: &str, bps: u64, loss: Option<f32>) -> lk::LayerStats {
        lk::LayerStats {
            rid: Some(rid.into()),
            bitrate: lk::Bitrate(bps),
            loss,
            ..Default::default()
        }
    }

    #[test]
    fn packet_loss_is_the_bitrate_weighted_receiver_report_fraction() {
        // nothing reported yet
        assert_eq!(packet_loss(&[]), None);
        assert_eq!(packet_loss(&[layer("f", 1_000_000, None)]), None);
        // one layer: its fraction
        assert_eq!(
            packet_loss(&[layer("f", 1_000_000, Some(0.05))]),
            Some(0.05)
        );
        // weighted by bitrate: 10 % on 900 kbit/s, 0 % on 100 kbit/s → 9 %
        let l = packet_loss(&[
            layer("f", 900_000, Some(0.10)),
            layer("q", 100_000, Some(0.0)),
            layer("h", 300_000, None),
        ])
        .unwrap();
        assert!((l - 0.09).abs() < 1e-6, "{l}");
        // no bitrate yet: plain average
        let l = packet_loss(&[layer("f", 0, Some(0.2)), layer("q", 0, Some(0.0))]).unwrap();
        assert!((l - 0.1).abs() < 1e-6, "{l}");
        // out-of-range and non-finite values never leave 0..1
        assert_eq!(packet_loss(&[layer("f", 1000, Some(1.5))]), Some(1.0));
        assert_eq!(packet_loss(&[layer("f", 1000, Some(-0.5))]), Some(0.0));
        assert_eq!(packet_loss(&[layer("f", 1000, Some(f32::NAN))]), None);
    }

    /// Opus at speech quality with its headers.
    const AUDIO: u64 = 40_000;

    fn ladder() -> [Arc<EncoderControl>; 3] {
        [
            Arc::new(EncoderControl::new(Some(lk::VideoQuality::Low), 150_000)),
            Arc::new(EncoderControl::new(Some(lk::VideoQuality::Medium), 500_000)),
            Arc::new(EncoderControl::new(Some(lk::VideoQuality::High), 1_700_000)),
        ]
    }

    fn rates(layers: &[Arc<EncoderControl>]) -> Vec<(u32, bool)> {
        layers.iter().map(|l| (l.bitrate(), l.fits())).collect()
    }

    #[test]
    fn a_generous_estimate_sends_every_layer_at_nominal() {
        let layers = ladder();
        let a = distribute_bitrate(&layers, 10_000_000, AUDIO);
        assert_eq!(
            rates(&layers),
            vec![(150_000, true), (500_000, true), (1_700_000, true)]
        );
        assert_eq!((a.paused, a.limited, a.video_bps), (0, false, 2_350_000));
    }

    #[test]
    fn a_falling_estimate_shrinks_then_pauses_layers_from_the_top() {
        let layers = ladder();
        // 2 Mbit/s: 1.66 M for video, all three at 70 % of nominal: not worth a warning.
        let a = distribute_bitrate(&layers, 2_000_000, AUDIO);
        assert_eq!(a.paused, 0);
        assert!(!a.limited);
        // 1.5 Mbit/s: 1.235 M for video, all three at 53 % of nominal.
        let a = distribute_bitrate(&layers, 1_500_000, AUDIO);
        assert_eq!(a.paused, 0);
        assert!(a.limited);
        assert!(a.video_bps <= 1_660_000, "{a:?}");
        assert!(layers.iter().all(|l| l.fits()));
        // 400 kbit/s: 300 k for video; the high layer's 15 % (255 k) does not fit on top of
        // the two below (97.5 k).
        let a = distribute_bitrate(&layers, 400_000, AUDIO);
        assert_eq!(a.paused, 1);
        assert!(!layers[2].fits());
        assert!(layers[0].fits() && layers[1].fits());
        assert!(a.video_bps <= 300_000, "{a:?}");
        // 150 kbit/s: 87.5 k for video: only the low layer.
        let a = distribute_bitrate(&layers, 150_000, AUDIO);
        assert_eq!(a.paused, 2);
        assert_eq!(rates(&layers)[0], (87_500, true));
        // 80 kbit/s: 28 k for video, below the usual floor: the low layer gets what there is
        let a = distribute_bitrate(&layers, 80_000, AUDIO);
        assert_eq!(rates(&layers)[0], (28_000, true));
        assert_eq!(a.video_bps, 28_000);
        // Nothing at all: the low layer still goes, at the least there is.
        let a = distribute_bitrate(&layers, 0, AUDIO);
        assert_eq!(rates(&layers)[0], (10_000, true));
        assert_eq!(a.video_bps, 10_000);
    }

    #[test]
    fn a_resumed_layer_starts_with_a_key_frame() {
        let layers = ladder();
        for l in &layers {
            l.take_keyframe();
        }
        distribute_bitrate(&layers, 150_000, AUDIO);
        assert!(!layers[2].fits() && !layers[2].take_keyframe());
        distribute_bitrate(&layers, 10_000_000, AUDIO);
        assert!(layers[2].fits() && layers[2].take_keyframe());
        // Already sending: no extra key frame.
        distribute_bitrate(&layers, 10_000_000, AUDIO);
        assert!(!layers[2].take_keyframe());
    }

    #[test]
    fn only_watched_layers_share_the_estimate() {
        let layers = ladder();
        layers[0].set_wanted(false);
        layers[1].set_wanted(false);
        let a = distribute_bitrate(&layers, 1_000_000, AUDIO);
        // 810 k for video, all to the high layer (above its 15 %), nothing paused.
        assert_eq!(a.paused, 0);
        assert_eq!(layers[2].bitrate(), 810_000);
        assert!(layers.iter().all(|l| l.fits()));
    }

    #[test]
    fn a_single_layer_is_never_paused() {
        let one = [Arc::new(EncoderControl::new(None, 1_700_000))];
        let a = distribute_bitrate(&one, 100_000, AUDIO);
        assert!(one[0].fits());
        assert_eq!(one[0].bitrate(), 45_000);
        assert!(a.limited);
    }

    #[test]
    fn quality_is_lost_while_reconnecting_whatever_livekit_said_last() {
        let excellent = Some(lk::ConnectionQuality::Excellent);
        let q = |s: &StreamState, lk| quality_now(s, lk, None, None);
        assert_eq!(q(&StreamState::Live, excellent), Some("excellent"));
        assert_eq!(
            q(&StreamState::Reconnecting { attempt: 2, max: 5 }, excellent),
            Some("lost")
        );
        assert_eq!(
            q(&StreamState::Reconnecting { attempt: 1, max: 5 }, None),
            Some("lost")
        );
        assert_eq!(
            q(&StreamState::Live, Some(lk::ConnectionQuality::Poor)),
            Some("poor")
        );
        assert_eq!(q(&StreamState::Live, None), None);
    }

    #[test]
    fn a_silent_server_reads_poor_before_the_watchdog_calls_it_lost() {
        let ms = |n| Some(Duration::from_millis(n));
        assert_eq!(capped_by_silence("excellent", None), "excellent");
        assert_eq!(capped_by_silence("excellent", ms(200)), "excellent");
        assert_eq!(capped_by_silence("excellent", ms(700)), "poor");
        assert_eq!(capped_by_silence("good", ms(1500)), "poor");
        assert_eq!(capped_by_silence("lost", ms(1500)), "lost");
    }

    #[test]
    fn loss_and_rtt_cap_what_livekit_scored() {
        let live = &StreamState::Live;
        let excellent = Some(lk::ConnectionQuality::Excellent);
        let ms = Duration::from_millis;
        // within bounds: LiveKit's word
        assert_eq!(
            quality_now(live, excellent, Some(0.01), Some(ms(80))),
            Some("excellent")
        );
        // 6 % loss, or 450 ms: good at most
        assert_eq!(
            quality_now(live, excellent, Some(0.06), Some(ms(80))),
            Some("good")
        );
        assert_eq!(
            quality_now(live, excellent, None, Some(ms(450))),
            Some("good")
        );
        // 20 % loss, or over a second: poor at most
        assert_eq!(quality_now(live, excellent, Some(0.2), None), Some("poor"));
        assert_eq!(
            quality_now(live, excellent, Some(0.0), Some(ms(1500))),
            Some("poor")
        );
        // a cap never raises LiveKit's own worse word
        assert_eq!(
            quality_now(live, Some(lk::ConnectionQuality::Lost), Some(0.06), None),
            Some("lost")
        );
    }
}
