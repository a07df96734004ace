//! The encoders: one thread encodes every layer of a frame in one call, fed through a
//! bounded drop-oldest [`Slot`], steered by per-layer [`EncoderControl`]s (key frames,
//! bitrate, dynacast), stepped down by the [`CpuAdapter`] when the CPU falls behind, and a
//! single layer sized for its bitrate by the [`ResolutionScaler`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use streamit_livekit_publish as lk;
use streamit_media::adapt::{CpuAdapter, FrameRateGate};
use streamit_media::encode::SimulcastEncoder;
use streamit_media::resolution::ResolutionScaler;
use streamit_media::{Layer, MediaError, Quality, VideoFrame};
use tokio::sync::mpsc;

use super::video::VideoPipeline;
use super::{Codec, Feed, MediaEvent, RecordTap};

/// A bounded queue of frames that drops the oldest when full.
pub(super) struct Slot {
    frames: Mutex<VecDeque<VideoFrame>>,
    ready: Condvar,
    cap: usize,
    /// frames dropped since the consumer last asked ([`Slot::take_dropped`])
    dropped: AtomicU64,
}

impl Slot {
    fn new(cap: usize) -> Arc<Self> {
        Arc::new(Slot {
            frames: Mutex::new(VecDeque::with_capacity(cap)),
            ready: Condvar::new(),
            cap,
            dropped: AtomicU64::new(0),
        })
    }
    /// Returns true when a frame had to be dropped.
    pub(super) fn push(&self, f: VideoFrame) -> bool {
        let mut dropped = false;
        if let Ok(mut q) = self.frames.lock() {
            if q.len() >= self.cap {
                q.pop_front();
                dropped = true;
            }
            q.push_back(f);
        }
        self.ready.notify_one();
        if dropped {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        dropped
    }
    /// Frames dropped since the last call.
    fn take_dropped(&self) -> u64 {
        self.dropped.swap(0, Ordering::Relaxed)
    }
    fn pop(&self, wait: Duration) -> Option<VideoFrame> {
        let q = self.frames.lock().ok()?;
        let (mut q, _) = self
            .ready
            .wait_timeout_while(q, wait, |q| q.is_empty())
            .ok()?;
        q.pop_front()
    }
}

/// Per-encoder controls the session sets from publisher events.
#[derive(Debug)]
pub(crate) struct EncoderControl {
    pub quality: Option<lk::VideoQuality>,
    pub nominal_bps: u32,
    keyframe: AtomicBool,
    bitrate_bps: AtomicU32,
    /// False while no viewer wants this simulcast layer (dynacast): frames are skipped.
    wanted: AtomicBool,
    /// False while the uplink's estimate cannot carry this layer on top of the ones below
    /// it: frames are skipped, the SFU moves its viewers to a lower layer.
    fits: AtomicBool,
}

impl EncoderControl {
    pub fn new(quality: Option<lk::VideoQuality>, nominal_bps: u32) -> Self {
        EncoderControl {
            quality,
            nominal_bps,
            keyframe: AtomicBool::new(true),
            bitrate_bps: AtomicU32::new(nominal_bps),
            wanted: AtomicBool::new(true),
            fits: AtomicBool::new(true),
        }
    }
    /// Takes a pending key frame request.
    pub fn take_keyframe(&self) -> bool {
        self.keyframe.swap(false, Ordering::AcqRel)
    }
    pub fn bitrate(&self) -> u32 {
        self.bitrate_bps.load(Ordering::Acquire)
    }
    /// Pause or resume this layer; resuming starts with a key frame.
    pub fn set_wanted(&self, wanted: bool) {
        self.switch(&self.wanted, wanted);
    }
    /// Sets one of the layer's two pause flags; a flag turning on asks for a key frame.
    fn switch(&self, flag: &AtomicBool, on: bool) {
        if on && !flag.swap(true, Ordering::AcqRel) {
            self.request_keyframe();
        } else if !on {
            flag.store(false, Ordering::Release);
        }
    }
    pub fn is_wanted(&self) -> bool {
        self.wanted.load(Ordering::Acquire)
    }
    /// Pause or resume this layer for the uplink's capacity; resuming starts with a key
    /// frame.
    pub fn set_fits(&self, fits: bool) {
        self.switch(&self.fits, fits);
    }
    pub fn fits(&self) -> bool {
        self.fits.load(Ordering::Acquire)
    }
    /// Encoded and sent: someone watches it and the uplink carries it.
    pub fn is_active(&self) -> bool {
        self.is_wanted() && self.fits()
    }
    pub fn request_keyframe(&self) {
        self.keyframe.store(true, Ordering::Release);
    }
    pub fn set_bitrate(&self, bps: u32) {
        self.bitrate_bps.store(bps, Ordering::Release);
    }
}

pub(super) struct EncoderWorker {
    slot: Arc<Slot>,
    thread: Option<JoinHandle<()>>,
}

/// What the encoder thread sends at, for the health bar: the top layer's size and the
/// frame rate, and whether that is below the source because the CPU cannot keep up.
#[derive(Debug, Default)]
pub(crate) struct EncodeStatus {
    /// frames per second encoded, ×100
    fps_centi: AtomicU32,
    width: AtomicU32,
    height: AtomicU32,
    limited: AtomicBool,
    step_downs: AtomicU32,
    /// smaller than the source because the uplink's bitrate cannot carry full size
    network_scaled: AtomicBool,
}

/// A snapshot of [`EncodeStatus`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct EncodeStep {
    pub fps: f32,
    pub width: u32,
    pub height: u32,
    pub limited: bool,
    pub step_downs: u32,
    pub network_scaled: bool,
}

impl EncodeStatus {
    fn set(&self, s: EncodeStep) {
        self.fps_centi
            .store((s.fps * 100.0).round() as u32, Ordering::Relaxed);
        self.width.store(s.width, Ordering::Relaxed);
        self.height.store(s.height, Ordering::Relaxed);
        self.limited.store(s.limited, Ordering::Relaxed);
        self.step_downs.store(s.step_downs, Ordering::Relaxed);
        self.network_scaled
            .store(s.network_scaled, Ordering::Relaxed);
    }
    pub fn get(&self) -> EncodeStep {
        EncodeStep {
            fps: self.fps_centi.load(Ordering::Relaxed) as f32 / 100.0,
            width: self.width.load(Ordering::Relaxed),
            height: self.height.load(Ordering::Relaxed),
            limited: self.limited.load(Ordering::Relaxed),
            step_downs: self.step_downs.load(Ordering::Relaxed),
            network_scaled: self.network_scaled.load(Ordering::Relaxed),
        }
    }
}

/// The encoder's quantiser averaged over windows of a second or more, judged against the
/// codec's "bits to spare" line ([`streamit_media::VideoCodec::low_qp`]).
#[derive(Debug, Default)]
struct QpWindow {
    start: Option<Instant>,
    sum: u64,
    frames: u32,
    last: Option<bool>,
}

impl QpWindow {
    fn add(&mut self, qp: u32, now: Instant) {
        self.start.get_or_insert(now);
        self.sum += u64::from(qp);
        self.frames += 1;
    }
    /// Whether the last complete window's average was low; `None` until one has passed.
    fn low(&mut self, low_qp: u32, now: Instant) -> Option<bool> {
        let start = *self.start.get_or_insert(now);
        if now.saturating_duration_since(start) >= Duration::from_secs(1) && self.frames > 0 {
            let avg = self.sum / u64::from(self.frames);
            tracing::debug!(
                avg,
                low_qp,
                frames = self.frames,
                "quantiser over the last second"
            );
            self.last = Some(avg < u64::from(low_qp));
            self.start = Some(now);
            self.sum = 0;
            self.frames = 0;
        }
        self.last
    }
}

/// The frame rate a layer's bitrate affords: below 40 kbit/s a picture at 30 fps gets
/// under 170 bytes a frame, so the rate control starves every frame or skips at random;
/// fewer, better frames at an even pace read better (the issue's "a readable picture at a
/// lower frame rate").
fn fps_for_bitrate(bps: u32, source_fps: f32) -> f32 {
    let cap = match bps {
        0..20_000 => 10.0,
        20_000..40_000 => 15.0,
        _ => source_fps,
    };
    source_fps.min(cap)
}

/// The frame rate the active layers' bitrates afford. One encoder paces every layer, so
/// the best-fed active layer (the top one: layers are low → high) decides: a thin low
/// layer beside a well-fed high one must not halve the high one's frame rate (at a 700
/// kbit/s start estimate the low layer's 37 kbit/s put a 720p picture at 15 fps). When
/// only the lowest layer fits, it is the top one, and it keeps a readable picture.
fn affordable_fps(layers: &[Arc<EncoderControl>], source_fps: f32) -> f32 {
    layers
        .iter()
        .rev()
        .find(|c| c.is_active())
        .map_or(source_fps, |c| fps_for_bitrate(c.bitrate(), source_fps))
}

/// `layers` scaled by `scale` (even sizes, at least 16 pixels), bitrates kept.
fn scaled_layers(layers: &[Layer], scale: f32) -> Vec<Layer> {
    if scale >= 0.999 {
        return layers.to_vec();
    }
    layers
        .iter()
        .map(|l| Layer {
            width: (((l.width as f32 * scale) as u32) & !1).max(16),
            height: (((l.height as f32 * scale) as u32) & !1).max(16),
            ..*l
        })
        .collect()
}

impl VideoPipeline {
    /// Starts the encoder thread for `layers` (low → high), feeding `sender`, and the top
    /// layer to the recording in `record` while there is one (encoded then even when no
    /// viewer wants it). Returns one control per layer (same order).
    pub fn start_encoders(
        &mut self,
        codec: Codec,
        layers: &[Layer],
        simulcast: bool,
        sender: lk::VideoTrackSender,
        record: RecordTap,
        events: mpsc::Sender<MediaEvent>,
    ) -> Result<Vec<Arc<EncoderControl>>, MediaError> {
        self.stop_encoders();
        self.enc_stop = Arc::new(AtomicBool::new(false));
        let fps = self.fps as f32;
        let mut encoder =
            SimulcastEncoder::with_content(codec.media(), layers, fps, self.feed.content())?;
        let controls: Vec<Arc<EncoderControl>> = layers
            .iter()
            .map(|l| {
                let quality = simulcast.then(|| quality_of(l.quality));
                Arc::new(EncoderControl::new(quality, l.bitrate_bps))
            })
            .collect();
        let top = layers.last().map_or((0, 0), |l| (l.width, l.height));
        self.status.set(EncodeStep {
            fps,
            width: top.0,
            height: top.1,
            limited: false,
            step_downs: 0,
            network_scaled: false,
        });
        let slot = Slot::new(2);
        let layers = layers.to_vec();
        let feed = self.feed;
        let (c, s, stop, counters, tx, ev, status) = (
            controls.clone(),
            slot.clone(),
            self.enc_stop.clone(),
            self.counters.clone(),
            sender,
            events,
            self.status.clone(),
        );
        let thread = std::thread::Builder::new()
            .name("video-encode".into())
            .spawn(move || {
                let mut adapter = CpuAdapter::new(fps);
                // Screen content keeps its size under a narrow uplink (detail over motion):
                // the rate control lowers quality and frame rate instead.
                let mut sizer = (layers.len() == 1 && feed == Feed::Camera)
                    .then(|| {
                        layers
                            .first()
                            .map(|l| ResolutionScaler::new(l.width, l.height))
                    })
                    .flatten();
                let mut qp = QpWindow::default();
                let mut fps_applied = fps;
                let mut gate = FrameRateGate::new(fps);
                let mut bitrates: Vec<u32> = c.iter().map(|c| c.nominal_bps).collect();
                let mut scale = 1.0f32;
                let mut rebuild_keys = false;
                while !stop.load(Ordering::Acquire) {
                    let Some(frame) = s.pop(Duration::from_millis(100)) else {
                        continue;
                    };
                    let now = Instant::now();
                    let behind = s.take_dropped();
                    if behind > 0 {
                        adapter.on_source_dropped(behind, now);
                    }
                    let cpu_step = adapter.check(now);
                    if let Some(step) = cpu_step {
                        tracing::info!(
                            fps = step.fps,
                            scale = step.scale,
                            busy = adapter.last_share(),
                            "video encoder adapts to the CPU"
                        );
                    }
                    // one layer: sized for its bitrate (simulcast pauses its top layers)
                    let bw_step = sizer.as_mut().and_then(|z| {
                        let target = c.first().map_or(0, |c| c.bitrate());
                        let s = z.update(target, qp.low(encoder.codec().low_qp(), now), now)?;
                        tracing::info!(
                            target_bps = target,
                            scale = s,
                            "video size follows the uplink's bitrate"
                        );
                        Some(s)
                    });
                    let want = adapter
                        .current()
                        .scale
                        .min(sizer.as_ref().map_or(1.0, |z| z.scale()));
                    if (want - scale).abs() > 0.01 {
                        // a new size: a new encoder (key frames on every layer)
                        match SimulcastEncoder::with_content(
                            encoder.codec(),
                            &scaled_layers(&layers, want),
                            adapter.current().fps,
                            encoder.content(),
                        ) {
                            Ok(e) => {
                                encoder = e;
                                fps_applied = adapter.current().fps;
                                scale = want;
                                qp = QpWindow::default();
                                bitrates.iter_mut().for_each(|b| *b = 0);
                                rebuild_keys = true;
                            }
                            Err(e) => tracing::warn!("resize encoder: {e}"),
                        }
                    }
                    if cpu_step.is_some() || bw_step.is_some() {
                        let top = encoder
                            .layers()
                            .last()
                            .map_or((0, 0), |l| (l.width, l.height));
                        status.set(EncodeStep {
                            fps: adapter.current().fps,
                            width: top.0,
                            height: top.1,
                            limited: adapter.is_limited(),
                            step_downs: adapter.step_downs(),
                            // the bitrate, not the CPU, set the size
                            network_scaled: sizer.as_ref().is_some_and(|z| {
                                z.is_scaled() && z.scale() < adapter.current().scale + 0.01
                            }),
                        });
                    }
                    // the lower of the CPU's rate and what the active layers' bitrates afford
                    let rate = adapter.current().fps.min(affordable_fps(&c, fps));
                    if (rate - fps_applied).abs() > 0.01 {
                        match encoder.set_frame_rate(rate) {
                            Ok(()) => fps_applied = rate,
                            Err(e) => tracing::warn!("encoder frame rate {rate}: {e}"),
                        }
                    }
                    if !gate.admit(rate) {
                        continue;
                    }
                    // The pacer still holds more than it should: a frame made now would
                    // only wait behind it (and key frame requests wait for the next one).
                    if tx.congested() {
                        counters.encoder_dropped.fetch_add(1, Ordering::Relaxed);
                        counters.network_skipped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let recorder = record.get();
                    let top = c.len().saturating_sub(1);
                    let mut keys = vec![false; c.len()];
                    let mut any = false;
                    for (i, ctl) in c.iter().enumerate() {
                        let recorded = i == top && recorder.is_some();
                        let wanted = ctl.is_active() || recorded;
                        if wanted != encoder.is_active(i)
                            && let Err(e) = encoder.set_active(i, wanted)
                        {
                            tracing::warn!("layer {i} on={wanted}: {e}");
                        }
                        let want = ctl.bitrate();
                        if want > 0 && want != bitrates[i] {
                            bitrates[i] = want;
                            if let Err(e) = encoder.set_bitrate(i, want) {
                                tracing::warn!("set_bitrate({want}): {e}");
                            }
                        }
                        keys[i] = ctl.take_keyframe() && wanted;
                        if recorded && recorder.as_ref().is_some_and(|r| r.take_keyframe_request())
                        {
                            keys[i] = true;
                        }
                        any |= wanted;
                    }
                    if !any {
                        continue;
                    }
                    if std::mem::take(&mut rebuild_keys) {
                        keys.iter_mut().for_each(|k| *k = true);
                    }
                    let forced = keys.iter().filter(|k| **k).count() as u64;
                    counters
                        .keyframes_forced
                        .fetch_add(forced, Ordering::Relaxed);
                    let t0 = Instant::now();
                    let out = encoder.encode(&frame, &keys);
                    adapter.on_encoded(t0.elapsed(), Instant::now());
                    if sizer.is_some()
                        && let Some(q) = encoder.last_qp(0)
                    {
                        qp.add(q, now);
                    }
                    match out {
                        Ok(out) => {
                            for lf in out {
                                let i = layers.iter().position(|l| l.quality == lf.quality);
                                if let Some(r) = &recorder
                                    && i == Some(top)
                                {
                                    r.video(streamit_record::Sample {
                                        data: lf.video.data.clone(),
                                        pts: lf.video.pts.as_duration(),
                                        keyframe: lf.video.keyframe,
                                    });
                                }
                                // encoded for the recording only: not for viewers
                                if !i.is_some_and(|i| c[i].is_active()) {
                                    continue;
                                }
                                counters.encoded.fetch_add(1, Ordering::Relaxed);
                                tx.send(lk::EncodedVideo {
                                    layer: simulcast.then(|| quality_of(lf.quality)),
                                    data: lf.video.data,
                                    keyframe: lf.video.keyframe,
                                    timestamp: lf.video.pts.as_duration(),
                                });
                            }
                        }
                        Err(e) => {
                            let _ = ev.try_send(feed.failed(e));
                            return;
                        }
                    }
                }
            })
            .map_err(MediaError::Io)?;
        self.encoders.push(EncoderWorker {
            slot,
            thread: Some(thread),
        });
        if let Ok(mut sinks) = self.sinks.lock() {
            *sinks = self.encoders.iter().map(|e| e.slot.clone()).collect();
        }
        Ok(controls)
    }

    pub fn stop_encoders(&mut self) {
        if let Ok(mut sinks) = self.sinks.lock() {
            sinks.clear();
        }
        self.enc_stop.store(true, Ordering::Release);
        for mut e in self.encoders.drain(..) {
            e.slot.ready.notify_all();
            if let Some(t) = e.thread.take() {
                let _ = t.join();
            }
        }
    }
}

pub(crate) fn quality_of(q: Quality) -> lk::VideoQuality {
    match q {
        Quality::Low => lk::VideoQuality::Low,
        Quality::Medium => lk::VideoQuality::Medium,
        Quality::High => lk::VideoQuality::High,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamit_media::MediaTime;

    #[test]
    fn a_starved_layer_gets_fewer_frames() {
        assert_eq!(fps_for_bitrate(1_700_000, 30.0), 30.0);
        assert_eq!(fps_for_bitrate(40_000, 30.0), 30.0);
        assert_eq!(fps_for_bitrate(30_000, 30.0), 15.0);
        assert_eq!(fps_for_bitrate(10_000, 30.0), 10.0);
        assert_eq!(fps_for_bitrate(10_000, 5.0), 5.0, "never above the source");
    }

    #[test]
    fn the_best_fed_active_layer_sets_the_frame_rate() {
        let layer = |bps| {
            let c = Arc::new(EncoderControl::new(None, bps));
            c.set_bitrate(bps);
            c
        };
        let layers = [layer(37_000), layer(123_000), layer(370_000)];
        assert_eq!(affordable_fps(&layers, 30.0), 30.0, "a thin low layer");
        // Only the low layer fits the uplink: it alone sets the rate.
        layers[1].set_fits(false);
        layers[2].set_fits(false);
        assert_eq!(affordable_fps(&layers, 30.0), 15.0);
        layers[0].set_bitrate(10_000);
        assert_eq!(affordable_fps(&layers, 30.0), 10.0);
        // Nobody watches the low layer; the watched high one is well fed.
        layers[0].set_wanted(false);
        layers[2].set_fits(true);
        assert_eq!(affordable_fps(&layers, 30.0), 30.0);
        // Nothing active: the source's rate.
        layers[2].set_wanted(false);
        assert_eq!(affordable_fps(&layers, 24.0), 24.0);
    }

    #[test]
    fn slot_drops_oldest() {
        let s = Slot::new(2);
        let f = |n| VideoFrame::solid(16, 16, 16, 128, 128, MediaTime(n)).unwrap();
        assert!(!s.push(f(1)));
        assert!(!s.push(f(2)));
        assert!(s.push(f(3)));
        assert_eq!(s.pop(Duration::ZERO).map(|f| f.pts), Some(MediaTime(2)));
    }

    #[test]
    fn a_resumed_layer_starts_with_a_key_frame() {
        let c = EncoderControl::new(Some(lk::VideoQuality::Low), 100_000);
        assert!(c.take_keyframe(), "the first frame is a key frame");
        assert!(!c.take_keyframe());
        c.set_wanted(false);
        assert!(!c.is_wanted() && !c.take_keyframe());
        c.set_wanted(true);
        assert!(c.is_wanted() && c.take_keyframe());
        c.set_wanted(true);
        assert!(
            !c.take_keyframe(),
            "no extra key frame while already wanted"
        );
    }
}
