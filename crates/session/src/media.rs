//! The session's media pipeline: a video source thread handing frames to one encoder
//! thread through a bounded drop-oldest slot, and an audio thread that makes 20 ms frames,
//! meters them and encodes Opus. The encoder thread encodes every simulcast layer of a
//! frame in one call ([`SimulcastEncoder`]), so all layers carry the same frames with the
//! same capture times. When the machine is short of CPU it lowers the frame rate of the
//! whole ladder evenly, then the resolution ([`CpuAdapter`]), and says so in
//! [`EncodeStatus`]. Capture never blocks: when the encoder falls behind the oldest queued
//! frame is dropped and counted; the transport's own queue does the same. All timestamps
//! come from one [`MediaClock`].

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use streamit_livekit_publish as lk;
use streamit_media::adapt::{CpuAdapter, FrameRateGate};
use streamit_media::camera::CameraSource;
use streamit_media::encode::{OpusEncoder, SimulcastEncoder};
use streamit_media::mic::{MicSource, list_microphones};
use streamit_media::source::{AudioSource, SourceEvent, SourceHandle, VideoSource};
use streamit_media::{
    AUDIO_RATE, AudioFrame, AudioLevel, AudioSamples, Layer, MediaClock, MediaError, MediaTime,
    Quality, VideoCodec, VideoFrame,
};
use tokio::sync::mpsc;

/// Where video comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoSourceSpec {
    /// The moving test pattern with the machine-readable frame code.
    Synthetic { width: u32, height: u32, fps: u32 },
    /// A YUV4MPEG2 file (4:2:0), looped.
    Y4m(PathBuf),
    /// A camera (index as listed by `devices`), asked for about this mode; encoders scale
    /// whatever it delivers to `width × height`.
    Camera {
        index: u32,
        width: u32,
        height: u32,
        fps: u32,
    },
}

/// 720p30: what creators expect from a webcam today, and what the test pattern uses.
impl Default for VideoSourceSpec {
    fn default() -> Self {
        VideoSourceSpec::Synthetic {
            width: 1280,
            height: 720,
            fps: 30,
        }
    }
}

impl std::fmt::Display for VideoSourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VideoSourceSpec::Synthetic { width, height, fps } => {
                write!(f, "test pattern {width}x{height}@{fps}")
            }
            VideoSourceSpec::Y4m(p) => write!(f, "{}", p.display()),
            VideoSourceSpec::Camera {
                index,
                width,
                height,
                fps,
            } => write!(f, "camera {index} ({width}x{height}@{fps})"),
        }
    }
}

/// Where audio comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AudioSourceSpec {
    /// A quiet 440 Hz tone with a 1 kHz beep during the first 100 ms of every second
    /// (in step with the video pattern's flash).
    #[default]
    Tone,
    /// A 48 kHz WAV file (mono or stereo, mixed to mono), looped.
    Wav(PathBuf),
    /// A microphone: `None` the default input, `Some(n)` the n-th device of `devices`.
    Mic(Option<usize>),
    /// No audio track.
    None,
}

impl std::fmt::Display for AudioSourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AudioSourceSpec::Tone => f.write_str("test tone"),
            AudioSourceSpec::Wav(p) => write!(f, "{}", p.display()),
            AudioSourceSpec::None => f.write_str("none"),
            AudioSourceSpec::Mic(None) => f.write_str("default microphone"),
            AudioSourceSpec::Mic(Some(n)) => write!(f, "microphone {n}"),
        }
    }
}

/// Video codec of the published track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Codec {
    #[default]
    H264,
    Vp8,
}

impl Codec {
    pub(crate) fn media(self) -> VideoCodec {
        match self {
            Codec::H264 => VideoCodec::H264,
            Codec::Vp8 => VideoCodec::Vp8,
        }
    }
    pub(crate) fn publish(self) -> lk::VideoCodec {
        match self {
            Codec::H264 => lk::VideoCodec::H264,
            Codec::Vp8 => lk::VideoCodec::Vp8,
        }
    }
}

/// What the media threads tell the session task.
#[derive(Debug)]
pub(crate) enum MediaEvent {
    Preview(VideoFrame),
    MicLevel(f32),
    /// A source or encoder failed; the pipeline part stopped.
    Failed(MediaError),
}

/// Counters shared by all media threads.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub captured: AtomicU64,
    pub encoder_dropped: AtomicU64,
    pub encoded: AtomicU64,
    pub audio_packets: AtomicU64,
    pub audio_dropped: AtomicU64,
    pub keyframes_forced: AtomicU64,
}

/// A bounded queue of frames that drops the oldest when full.
struct Slot {
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
    fn push(&self, f: VideoFrame) -> bool {
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

/// Video frames from a source, paced on the media clock.
enum VideoReader {
    Synthetic {
        width: u32,
        height: u32,
        n: u32,
    },
    Y4m {
        path: PathBuf,
        reader: BufReader<File>,
        width: u32,
        height: u32,
        data_start: u64,
    },
    /// A self-paced device source (camera).
    Device(SourceHandle<VideoFrame>),
}

impl VideoReader {
    fn open(
        spec: &VideoSourceSpec,
        clock: &MediaClock,
    ) -> Result<(Self, u32, u32, u32), MediaError> {
        match spec {
            VideoSourceSpec::Camera {
                index,
                width,
                height,
                fps,
            } => {
                let (w, h, fps) = (
                    (*width).max(160) & !1,
                    (*height).max(2) & !1,
                    (*fps).clamp(1, 120),
                );
                let src: Box<dyn VideoSource> = Box::new(CameraSource::new(*index, w, h, fps));
                Ok((VideoReader::Device(src.start(clock.clone())?), w, h, fps))
            }
            VideoSourceSpec::Synthetic { width, height, fps } => {
                if *width < 160 || width % 2 != 0 || height % 2 != 0 || *fps == 0 || *fps > 120 {
                    return Err(MediaError::Geometry(format!(
                        "synthetic source {width}x{height}@{fps}: width ≥ 160, even sizes, 1–120 fps"
                    )));
                }
                Ok((
                    VideoReader::Synthetic {
                        width: *width,
                        height: *height,
                        n: 0,
                    },
                    *width,
                    *height,
                    *fps,
                ))
            }
            VideoSourceSpec::Y4m(path) => {
                let file_err = |m: String| MediaError::File {
                    path: path.display().to_string(),
                    message: m,
                };
                let file = File::open(path).map_err(|e| file_err(e.to_string()))?;
                let mut reader = BufReader::new(file);
                let mut header = String::new();
                reader
                    .read_line(&mut header)
                    .map_err(|e| file_err(e.to_string()))?;
                let (w, h, fps) = parse_y4m_header(&header).map_err(file_err)?;
                let data_start = header.len() as u64;
                Ok((
                    VideoReader::Y4m {
                        path: path.clone(),
                        reader,
                        width: w,
                        height: h,
                        data_start,
                    },
                    w,
                    h,
                    fps,
                ))
            }
        }
    }

    fn next(&mut self, pts: MediaTime) -> Result<VideoFrame, MediaError> {
        match self {
            VideoReader::Device(_) => Err(MediaError::Closed),
            VideoReader::Synthetic { width, height, n } => {
                let f = streamit_media::pattern::generate_pattern(*width, *height, *n, pts);
                *n = n.wrapping_add(1);
                f
            }
            VideoReader::Y4m {
                path,
                reader,
                width,
                height,
                data_start,
            } => {
                use std::io::Seek;
                let file_err = |m: String| MediaError::File {
                    path: path.display().to_string(),
                    message: m,
                };
                let mut line = String::new();
                let n = reader
                    .read_line(&mut line)
                    .map_err(|e| file_err(e.to_string()))?;
                if n == 0 {
                    // loop
                    reader
                        .seek(std::io::SeekFrom::Start(*data_start))
                        .map_err(|e| file_err(e.to_string()))?;
                    line.clear();
                    reader
                        .read_line(&mut line)
                        .map_err(|e| file_err(e.to_string()))?;
                }
                if !line.starts_with("FRAME") {
                    return Err(file_err("expected a FRAME marker".into()));
                }
                let mut buf = vec![0u8; streamit_media::frame::i420_len(*width, *height)];
                reader
                    .read_exact(&mut buf)
                    .map_err(|e| file_err(format!("truncated frame: {e}")))?;
                VideoFrame::from_i420(*width, *height, buf, pts)
            }
        }
    }
}

/// `YUV4MPEG2 W640 H360 F30:1 Ip A1:1 C420jpeg` → (640, 360, 30).
pub(crate) fn parse_y4m_header(line: &str) -> Result<(u32, u32, u32), String> {
    let mut parts = line.split_ascii_whitespace();
    if parts.next() != Some("YUV4MPEG2") {
        return Err("not a YUV4MPEG2 file".into());
    }
    let (mut w, mut h, mut fps) = (None, None, 30u32);
    for p in parts {
        let (tag, val) = p.split_at(1);
        match tag {
            "W" => w = val.parse().ok(),
            "H" => h = val.parse().ok(),
            "F" => {
                if let Some((n, d)) = val.split_once(':') {
                    let (n, d): (u32, u32) = (
                        n.parse().map_err(|_| "bad F tag")?,
                        d.parse().map_err(|_| "bad F tag")?,
                    );
                    if d > 0 && n / d > 0 {
                        fps = (n as f64 / d as f64).round() as u32;
                    }
                }
            }
            "C" if !val.starts_with("420") => {
                return Err(format!("only 4:2:0 is supported, not C{val}"));
            }
            _ => {}
        }
    }
    match (w, h) {
        (Some(w), Some(h)) if w >= 2 && h >= 2 && w % 2 == 0 && h % 2 == 0 => {
            Ok((w, h, fps.clamp(1, 120)))
        }
        _ => Err("missing or odd W/H".into()),
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
}

impl EncoderControl {
    pub fn new(quality: Option<lk::VideoQuality>, nominal_bps: u32) -> Self {
        EncoderControl {
            quality,
            nominal_bps,
            keyframe: AtomicBool::new(true),
            bitrate_bps: AtomicU32::new(nominal_bps),
            wanted: AtomicBool::new(true),
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
        if wanted && !self.wanted.swap(true, Ordering::AcqRel) {
            self.request_keyframe();
        } else if !wanted {
            self.wanted.store(false, Ordering::Release);
        }
    }
    pub fn is_wanted(&self) -> bool {
        self.wanted.load(Ordering::Acquire)
    }
    pub fn request_keyframe(&self) {
        self.keyframe.store(true, Ordering::Release);
    }
    pub fn set_bitrate(&self, bps: u32) {
        self.bitrate_bps.store(bps, Ordering::Release);
    }
}

struct EncoderWorker {
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
}

/// A snapshot of [`EncodeStatus`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct EncodeStep {
    pub fps: f32,
    pub width: u32,
    pub height: u32,
    pub limited: bool,
    pub step_downs: u32,
}

impl EncodeStatus {
    fn set(&self, fps: f32, width: u32, height: u32, limited: bool, step_downs: u32) {
        self.fps_centi
            .store((fps * 100.0).round() as u32, Ordering::Relaxed);
        self.width.store(width, Ordering::Relaxed);
        self.height.store(height, Ordering::Relaxed);
        self.limited.store(limited, Ordering::Relaxed);
        self.step_downs.store(step_downs, Ordering::Relaxed);
    }
    pub fn get(&self) -> EncodeStep {
        EncodeStep {
            fps: self.fps_centi.load(Ordering::Relaxed) as f32 / 100.0,
            width: self.width.load(Ordering::Relaxed),
            height: self.height.load(Ordering::Relaxed),
            limited: self.limited.load(Ordering::Relaxed),
            step_downs: self.step_downs.load(Ordering::Relaxed),
        }
    }
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

/// The running video side: a source thread, and while live one encoder per layer.
pub(crate) struct VideoPipeline {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    stop: Arc<AtomicBool>,
    /// Stops the encoders only (when the stream ends the preview goes on).
    enc_stop: Arc<AtomicBool>,
    camera_off: Arc<AtomicBool>,
    sinks: Arc<Mutex<Vec<Arc<Slot>>>>,
    source: Option<JoinHandle<()>>,
    encoders: Vec<EncoderWorker>,
    pub counters: Arc<Counters>,
    /// what the encoder sends at (CPU adaptation)
    pub status: Arc<EncodeStatus>,
}

impl VideoPipeline {
    /// Opens the source and starts its thread (preview only, no encoders yet).
    pub fn start(
        spec: &VideoSourceSpec,
        clock: MediaClock,
        counters: Arc<Counters>,
        events: mpsc::Sender<MediaEvent>,
    ) -> Result<Self, MediaError> {
        let (mut reader, width, height, fps) = VideoReader::open(spec, &clock)?;
        let stop = Arc::new(AtomicBool::new(false));
        let camera_off = Arc::new(AtomicBool::new(false));
        let sinks: Arc<Mutex<Vec<Arc<Slot>>>> = Arc::default();
        let (t_stop, t_off, t_sinks, t_counters, t_clock) = (
            stop.clone(),
            camera_off.clone(),
            sinks.clone(),
            counters.clone(),
            clock.clone(),
        );
        let source = std::thread::Builder::new()
            .name("video-source".into())
            .spawn(move || {
                let mut last_preview = Instant::now() - Duration::from_secs(1);
                let fan_out = |frame: VideoFrame, last_preview: &mut Instant| {
                    t_counters.captured.fetch_add(1, Ordering::Relaxed);
                    if let Ok(sinks) = t_sinks.lock() {
                        for s in sinks.iter() {
                            if s.push(frame.clone()) {
                                t_counters.encoder_dropped.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    if last_preview.elapsed() >= Duration::from_millis(66) {
                        *last_preview = Instant::now();
                        let _ = events.try_send(MediaEvent::Preview(frame));
                    }
                };
                if let VideoReader::Device(handle) = &reader {
                    while !t_stop.load(Ordering::Acquire) {
                        match handle.events().recv_timeout(Duration::from_millis(100)) {
                            Ok(SourceEvent::Frame(frame)) => {
                                if !t_off.load(Ordering::Acquire) {
                                    fan_out(frame, &mut last_preview);
                                }
                            }
                            Ok(SourceEvent::Error(e)) => {
                                let _ = events.try_send(MediaEvent::Failed(e));
                                return;
                            }
                            Ok(SourceEvent::Ended) => {
                                let _ = events.try_send(MediaEvent::Failed(
                                    MediaError::DeviceLost("the camera stopped".into()),
                                ));
                                return;
                            }
                            Err(e) if e.is_timeout() => {}
                            Err(_) => return,
                        }
                    }
                    return;
                }
                let period = Duration::from_micros(1_000_000 / fps as u64);
                let mut next = t_clock.now();
                while !t_stop.load(Ordering::Acquire) {
                    t_clock.sleep_until(next);
                    next = next.plus(period);
                    let now = t_clock.now();
                    if now.as_micros() > next.as_micros() + 5 * period.as_micros() as u64 {
                        // fell far behind (suspended?): skip ahead instead of bursting
                        next = now.plus(period);
                    }
                    if t_off.load(Ordering::Acquire) {
                        continue;
                    }
                    let frame = match reader.next(now) {
                        Ok(f) => f,
                        Err(e) => {
                            let _ = events.try_send(MediaEvent::Failed(e));
                            return;
                        }
                    };
                    fan_out(frame, &mut last_preview);
                }
            })
            .map_err(MediaError::Io)?;
        Ok(VideoPipeline {
            width,
            height,
            fps,
            stop,
            enc_stop: Arc::new(AtomicBool::new(false)),
            camera_off,
            sinks,
            source: Some(source),
            encoders: Vec::new(),
            counters,
            status: Arc::default(),
        })
    }

    /// The layers to encode: the simulcast ladder, or one full-size layer.
    pub fn layers(&self, simulcast: bool) -> Vec<Layer> {
        let ladder = Layer::ladder(self.width, self.height);
        if simulcast && ladder.len() > 1 {
            ladder
        } else {
            ladder
                .into_iter()
                .filter(|l| l.quality == Quality::High)
                .collect()
        }
    }

    /// Starts the encoder thread for `layers` (low → high), feeding `sender`. Returns one
    /// control per layer (same order).
    pub fn start_encoders(
        &mut self,
        codec: Codec,
        layers: &[Layer],
        simulcast: bool,
        sender: lk::VideoTrackSender,
        events: mpsc::Sender<MediaEvent>,
    ) -> Result<Vec<Arc<EncoderControl>>, MediaError> {
        self.stop_encoders();
        self.enc_stop = Arc::new(AtomicBool::new(false));
        let fps = self.fps as f32;
        let mut encoder = SimulcastEncoder::new(codec.media(), layers, fps)?;
        let controls: Vec<Arc<EncoderControl>> = layers
            .iter()
            .map(|l| {
                let quality = simulcast.then(|| quality_of(l.quality));
                Arc::new(EncoderControl::new(quality, l.bitrate_bps))
            })
            .collect();
        let top = layers.last().map_or((0, 0), |l| (l.width, l.height));
        self.status.set(fps, top.0, top.1, false, 0);
        let slot = Slot::new(2);
        let layers = layers.to_vec();
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
                    if let Some(step) = adapter.check(now) {
                        tracing::info!(
                            fps = step.fps,
                            scale = step.scale,
                            busy = adapter.last_share(),
                            "video encoder adapts to the CPU"
                        );
                        if (step.scale - scale).abs() > 0.01 {
                            // a new size: a new encoder (key frames on every layer)
                            match SimulcastEncoder::new(
                                encoder.codec(),
                                &scaled_layers(&layers, step.scale),
                                step.fps,
                            ) {
                                Ok(e) => {
                                    encoder = e;
                                    scale = step.scale;
                                    bitrates.iter_mut().for_each(|b| *b = 0);
                                    rebuild_keys = true;
                                }
                                Err(e) => tracing::warn!("resize encoder: {e}"),
                            }
                        }
                        if let Err(e) = encoder.set_frame_rate(step.fps) {
                            tracing::warn!("encoder frame rate {}: {e}", step.fps);
                        }
                        let top = encoder
                            .layers()
                            .last()
                            .map_or((0, 0), |l| (l.width, l.height));
                        status.set(
                            step.fps,
                            top.0,
                            top.1,
                            adapter.is_limited(),
                            adapter.step_downs(),
                        );
                    }
                    if !gate.admit(adapter.current().fps) {
                        continue;
                    }
                    let mut keys = vec![false; c.len()];
                    let mut any = false;
                    for (i, ctl) in c.iter().enumerate() {
                        let wanted = ctl.is_wanted();
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
                    match out {
                        Ok(out) => {
                            for lf in out {
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
                            let _ = ev.try_send(MediaEvent::Failed(e));
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

    pub fn set_camera_off(&self, off: bool) {
        self.camera_off.store(off, Ordering::Release);
    }
}

impl Drop for VideoPipeline {
    fn drop(&mut self) {
        self.stop_encoders();
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.source.take() {
            let _ = t.join();
        }
    }
}

fn quality_of(q: Quality) -> lk::VideoQuality {
    match q {
        Quality::Low => lk::VideoQuality::Low,
        Quality::Medium => lk::VideoQuality::Medium,
        Quality::High => lk::VideoQuality::High,
    }
}

/// Samples of one 20 ms mono frame.
const AUDIO_FRAME: usize = (AUDIO_RATE / 50) as usize;

enum AudioReader {
    Tone {
        phase: f64,
    },
    Pcm {
        samples: Vec<f32>,
        pos: usize,
    },
    /// A self-paced device source (microphone).
    Device(SourceHandle<AudioFrame>),
}

/// Interleaved samples of any channel count, mixed to mono.
fn mono_f32(f: &AudioFrame) -> Vec<f32> {
    let all = f.samples.to_f32();
    let ch = f.channels.max(1) as usize;
    if ch == 1 {
        return all;
    }
    all.chunks(ch)
        .map(|c| c.iter().sum::<f32>() / ch as f32)
        .collect()
}

impl AudioReader {
    fn open(spec: &AudioSourceSpec, clock: &MediaClock) -> Result<Option<Self>, MediaError> {
        match spec {
            AudioSourceSpec::None => Ok(None),
            AudioSourceSpec::Mic(index) => {
                let device = match index {
                    None => None,
                    Some(n) => {
                        let mics = list_microphones()?;
                        let Some(m) = mics.get(*n) else {
                            return Err(MediaError::Device(format!(
                                "no microphone {n} ({} found)",
                                mics.len()
                            )));
                        };
                        Some(m.id.clone())
                    }
                };
                let src: Box<dyn AudioSource> = Box::new(MicSource {
                    device,
                    ..MicSource::default()
                });
                Ok(Some(AudioReader::Device(src.start(clock.clone())?)))
            }
            AudioSourceSpec::Tone => Ok(Some(AudioReader::Tone { phase: 0.0 })),
            AudioSourceSpec::Wav(path) => Ok(Some(AudioReader::Pcm {
                samples: read_wav_mono_48k(path)?,
                pos: 0,
            })),
        }
    }

    fn next(&mut self, pts: MediaTime) -> Vec<f32> {
        match self {
            AudioReader::Device(_) => vec![0.0; AUDIO_FRAME],
            AudioReader::Tone { phase } => {
                let beep = streamit_media::pattern::flash_on(pts);
                let (freq, amp) = if beep { (1000.0, 0.5) } else { (440.0, 0.1) };
                let step = std::f64::consts::TAU * freq / AUDIO_RATE as f64;
                (0..AUDIO_FRAME)
                    .map(|_| {
                        *phase = (*phase + step) % std::f64::consts::TAU;
                        (phase.sin() * amp) as f32
                    })
                    .collect()
            }
            AudioReader::Pcm { samples, pos } => {
                let mut out = Vec::with_capacity(AUDIO_FRAME);
                while out.len() < AUDIO_FRAME {
                    if samples.is_empty() {
                        out.resize(AUDIO_FRAME, 0.0);
                        break;
                    }
                    out.push(samples[*pos]);
                    *pos = (*pos + 1) % samples.len();
                }
                out
            }
        }
    }
}

fn read_wav_mono_48k(path: &Path) -> Result<Vec<f32>, MediaError> {
    let err = |m: String| MediaError::File {
        path: path.display().to_string(),
        message: m,
    };
    let mut r = hound::WavReader::open(path).map_err(|e| err(e.to_string()))?;
    let spec = r.spec();
    if spec.sample_rate != AUDIO_RATE {
        return Err(err(format!(
            "sample rate {} Hz: only 48000 Hz WAV files are supported",
            spec.sample_rate
        )));
    }
    let ch = spec.channels.max(1) as usize;
    let raw: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => r
            .samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(|e| err(e.to_string()))?,
        hound::SampleFormat::Int => {
            let scale = (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            r.samples::<i32>()
                .map(|s| s.map(|s| s as f32 / scale))
                .collect::<Result<_, _>>()
                .map_err(|e| err(e.to_string()))?
        }
    };
    Ok(raw
        .chunks(ch)
        .map(|c| c.iter().sum::<f32>() / ch as f32)
        .collect())
}

/// The running audio side: source, meter and (while live) Opus encoding on one thread.
pub(crate) struct AudioPipeline {
    stop: Arc<AtomicBool>,
    pub muted: Arc<AtomicBool>,
    sender: Arc<Mutex<Option<lk::AudioTrackSender>>>,
    thread: Option<JoinHandle<()>>,
}

impl AudioPipeline {
    pub fn start(
        spec: &AudioSourceSpec,
        clock: MediaClock,
        counters: Arc<Counters>,
        events: mpsc::Sender<MediaEvent>,
    ) -> Result<Option<Self>, MediaError> {
        let Some(mut reader) = AudioReader::open(spec, &clock)? else {
            return Ok(None);
        };
        let mut opus = OpusEncoder::new(1, 48_000)?;
        let stop = Arc::new(AtomicBool::new(false));
        let muted = Arc::new(AtomicBool::new(false));
        let sender: Arc<Mutex<Option<lk::AudioTrackSender>>> = Arc::default();
        let (t_stop, t_muted, t_sender) = (stop.clone(), muted.clone(), sender.clone());
        let thread = std::thread::Builder::new()
            .name("audio-source".into())
            .spawn(move || {
                let mut last_level = Instant::now();
                let mut level = AudioLevel::default();
                // Meter, then (while live and not muted) Opus → transport. False: stop.
                let mut process = |samples: Vec<f32>, pts: MediaTime| -> bool {
                    let muted = t_muted.load(Ordering::Acquire);
                    let l = AudioLevel::measure(&samples);
                    level.rms = level.rms.max(l.rms);
                    if last_level.elapsed() >= Duration::from_millis(50) {
                        last_level = Instant::now();
                        let shown = if muted { 0.0 } else { level.rms };
                        let _ = events.try_send(MediaEvent::MicLevel(shown));
                        level = AudioLevel::default();
                    }
                    let Some(tx) = t_sender.lock().ok().and_then(|s| s.clone()) else {
                        return true;
                    };
                    if muted {
                        return true;
                    }
                    let frame = AudioFrame {
                        sample_rate: AUDIO_RATE,
                        channels: 1,
                        samples: AudioSamples::F32(samples),
                        pts,
                    };
                    match opus.push(&frame) {
                        Ok(packets) => {
                            for p in packets {
                                let packet = lk::EncodedAudio {
                                    data: Bytes::clone(&p.data),
                                    timestamp: p.pts.as_duration(),
                                };
                                if tx.send(packet).is_ok() {
                                    counters.audio_packets.fetch_add(1, Ordering::Relaxed);
                                } else {
                                    counters.audio_dropped.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            true
                        }
                        Err(e) => {
                            let _ = events.try_send(MediaEvent::Failed(e));
                            false
                        }
                    }
                };
                if let AudioReader::Device(handle) = &reader {
                    while !t_stop.load(Ordering::Acquire) {
                        match handle.events().recv_timeout(Duration::from_millis(100)) {
                            Ok(SourceEvent::Frame(f)) => {
                                let mono = mono_f32(&f);
                                if !process(mono, f.pts) {
                                    return;
                                }
                            }
                            Ok(SourceEvent::Error(e)) => {
                                let _ = events.try_send(MediaEvent::Failed(e));
                                return;
                            }
                            Ok(SourceEvent::Ended) => {
                                let _ = events.try_send(MediaEvent::Failed(
                                    MediaError::DeviceLost("the microphone stopped".into()),
                                ));
                                return;
                            }
                            Err(e) if e.is_timeout() => {}
                            Err(_) => return,
                        }
                    }
                    return;
                }
                let period = Duration::from_millis(20);
                let mut next = clock.now();
                while !t_stop.load(Ordering::Acquire) {
                    clock.sleep_until(next);
                    let pts = next;
                    next = next.plus(period);
                    let samples = reader.next(pts);
                    if !process(samples, pts) {
                        return;
                    }
                }
            })
            .map_err(MediaError::Io)?;
        Ok(Some(AudioPipeline {
            stop,
            muted,
            sender,
            thread: Some(thread),
        }))
    }

    pub fn attach(&self, tx: Option<lk::AudioTrackSender>) {
        if let Ok(mut s) = self.sender.lock() {
            *s = tx;
        }
    }
}

impl Drop for AudioPipeline {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn y4m_header_parses() {
        assert_eq!(
            parse_y4m_header("YUV4MPEG2 W640 H360 F30000:1001 Ip A1:1 C420jpeg\n"),
            Ok((640, 360, 30))
        );
        assert!(parse_y4m_header("YUV4MPEG2 W640 H360 C444").is_err());
        assert!(parse_y4m_header("RIFF").is_err());
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
}
