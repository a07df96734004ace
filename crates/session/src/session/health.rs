//! The health bar while on air (frames, bitrate, loss, RTT, CPU steps, from the media
//! counters and the transport's stats) and the split of the target bitrate over layers.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use streamit_livekit_publish as lk;

use super::{Live, Task};
use crate::media::EncoderControl;
use crate::state::{CpuLimited, Health};

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
            bitrate_bps: s.egress_bitrate.bps(),
            target_bitrate_bps: s.bandwidth_estimate.map(|b| b.bps()),
            rtt: s.rtt,
            packet_loss: packet_loss(&s.layers),
            keyframe_requests: live.keyframe_requests,
            nacks_received: s.layers.iter().map(|l| l.nacks).sum(),
            reconnects: live.reconnects,
            connection_quality: s.connection_quality.map(|q| match q {
                lk::ConnectionQuality::Excellent => "excellent",
                lk::ConnectionQuality::Good => "good",
                lk::ConnectionQuality::Poor => "poor",
                lk::ConnectionQuality::Lost => "lost",
            }),
            transport: s.transport.map(lk::TransportProtocol::name),
            cpu_limited: step.filter(|s| s.limited).map(|s| CpuLimited {
                width: s.width,
                height: s.height,
                fps: s.fps,
            }),
            cpu_adaptations: step.map_or(0, |s| s.step_downs),
        };
    }
}

/// Splits the transport's target bitrate over the layers someone watches (dynacast; the
/// transport's target covers only those) in proportion to their nominal rates, never
/// above nominal and never below 30 kbit/s. Paused layers keep their last rate.
pub(super) fn distribute_bitrate(encoders: &[Arc<EncoderControl>], target_bps: u64) {
    let nominal: u64 = encoders
        .iter()
        .filter(|e| e.is_wanted())
        .map(|e| e.nominal_bps as u64)
        .sum();
    if nominal == 0 {
        return;
    }
    let factor = (target_bps as f64 / nominal as f64).min(1.0);
    for e in encoders.iter().filter(|e| e.is_wanted()) {
        let bps = ((e.nominal_bps as f64 * factor) as u32).max(30_000);
        e.set_bitrate(bps);
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

    #[test]
    fn target_bitrate_is_split_in_proportion_and_capped_at_nominal() {
        let layers = [
            Arc::new(EncoderControl::new(Some(lk::VideoQuality::Low), 100_000)),
            Arc::new(EncoderControl::new(Some(lk::VideoQuality::Medium), 300_000)),
            Arc::new(EncoderControl::new(Some(lk::VideoQuality::High), 1_000_000)),
        ];
        distribute_bitrate(&layers, 700_000);
        let got: Vec<u32> = layers.iter().map(|l| l.bitrate()).collect();
        assert_eq!(got, vec![50_000, 150_000, 500_000]);
        distribute_bitrate(&layers, 10_000_000);
        let got: Vec<u32> = layers.iter().map(|l| l.bitrate()).collect();
        assert_eq!(got, vec![100_000, 300_000, 1_000_000]);
        distribute_bitrate(&layers, 0);
        assert!(layers.iter().all(|l| l.bitrate() == 30_000));
        // only the high layer is watched: it gets the whole target
        layers[0].set_wanted(false);
        layers[1].set_wanted(false);
        distribute_bitrate(&layers, 800_000);
        let got: Vec<u32> = layers.iter().map(|l| l.bitrate()).collect();
        assert_eq!(got, vec![30_000, 30_000, 800_000]);
    }
}
