//! The bounded capture → convert → encode → sink pipeline.
//!
//! ```text
//! video source thread ──[source queue, drop-oldest, 4]──▶ video encode thread ──[encoded video, bounded]──▶ sink
//!                                                             │ (scale per layer, one encoder per layer)
//!                                                             └─▶ preview tap (latest frame, shared, no copy)
//! audio source thread ──[source queue, drop-oldest, 100]──▶ audio encode thread ──[encoded audio, bounded]──▶ sink
//! ```
//! - Capture never blocks: sources push into drop-oldest queues.
//! - When the sink stalls and the encoded-video queue is full, everything still queued is
//!   dropped (the oldest frames), counted, and every layer's next frame is forced to be a key
//!   frame, so what the sink gets later is decodable. Memory stays bounded.
//! - Audio is never dropped silently: an overflow drops the oldest packet, counts it in
//!   [`PipelineStats::audio_dropped`] and logs a warning.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, unbounded};

use crate::clock::MediaClock;
use crate::encode::opus::OpusEncoder;
use crate::encode::{
    EncodedAudio, EncodedVideo, Layer, Quality, VideoCodec, VideoEncoder, VideoEncoderConfig,
    new_video_encoder,
};
use crate::error::{MediaError, Result};
use crate::frame::VideoFrame;
use crate::queue::{DropOldestQueue, drop_oldest};
use crate::source::{AudioSource, SourceEvent, SourceHandle, VideoSource};

/// Pipeline settings.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// video codec of every layer
    pub codec: VideoCodec,
    /// simulcast layers (one encoder each); see [`Layer::ladder`]
    pub layers: Vec<Layer>,
    /// nominal frame rate
    pub fps: f32,
    /// bound of the encoded-video queue (packets of all layers)
    pub encoded_video_queue: usize,
    /// audio channels (1|2) for Opus
    pub audio_channels: u16,
    /// Opus bitrate
    pub opus_bitrate_bps: u32,
    /// bound of the encoded-audio queue (20 ms packets)
    pub encoded_audio_queue: usize,
}

impl PipelineConfig {
    /// Defaults for a source of `width × height` at `fps`: the simulcast ladder, 1 s of video
    /// and 1 s of audio buffering, stereo Opus at 64 kbps.
    pub fn new(codec: VideoCodec, width: u32, height: u32, fps: f32) -> Self {
        let layers = Layer::ladder(width, height);
        PipelineConfig {
            codec,
            encoded_video_queue: (fps.round() as usize).max(1) * layers.len().max(1),
            layers,
            fps,
            audio_channels: 2,
            opus_bitrate_bps: 64_000,
            encoded_audio_queue: 50,
        }
    }
}

/// An encoded video packet of one layer.
#[derive(Clone, Debug)]
pub struct LayerPacket {
    /// the layer
    pub quality: Quality,
    /// the packet
    pub video: EncodedVideo,
}

/// Commands to the video encoder thread.
#[derive(Clone, Debug)]
pub enum VideoControl {
    /// change a layer's bitrate
    SetBitrate(Quality, u32),
    /// next frame of every layer is a key frame (e.g. on a PLI/FIR)
    ForceKeyframe,
    /// stop or resume encoding a layer (dynacast)
    SetLayerActive(Quality, bool),
}

/// Something the sink should know about.
#[derive(Debug)]
pub enum PipelineEvent {
    /// a source failed (device lost, …); the media of that kind stops
    SourceError {
        /// "video" or "audio"
        kind: &'static str,
        /// the error
        error: MediaError,
    },
    /// a finite source ended
    SourceEnded {
        /// "video" or "audio"
        kind: &'static str,
    },
}

/// Counters, readable at any time.
#[derive(Debug, Default)]
pub struct PipelineStats {
    /// raw frames received from the video source
    pub video_frames_in: AtomicU64,
    /// video packets produced (all layers)
    pub video_packets: AtomicU64,
    /// encoded video packets dropped because the sink was behind
    pub video_dropped: AtomicU64,
    /// frames the encoder's rate control skipped
    pub video_skipped: AtomicU64,
    /// audio frames received from the audio source
    pub audio_frames_in: AtomicU64,
    /// Opus packets produced
    pub audio_packets: AtomicU64,
    /// Opus packets dropped (sink behind; logged)
    pub audio_dropped: AtomicU64,
}

impl PipelineStats {
    fn get(a: &AtomicU64) -> u64 {
        a.load(Ordering::Relaxed)
    }
}

/// A running pipeline. Dropping it stops every thread.
pub struct Pipeline {
    /// encoded video of all layers, for the publisher
    pub video: Receiver<LayerPacket>,
    /// encoded audio, for the publisher
    pub audio: Receiver<EncodedAudio>,
    /// errors and ends of sources
    pub events: Receiver<PipelineEvent>,
    preview: Arc<Mutex<Option<VideoFrame>>>,
    control: Sender<VideoControl>,
    stats: Arc<PipelineStats>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    video_source: Arc<Mutex<Option<SourceHandle<VideoFrame>>>>,
    video_queue: Option<DropOldestQueue<LayerPacket>>,
    audio_queue: Option<DropOldestQueue<EncodedAudio>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("stats", &self.stats)
            .finish()
    }
}

struct LayerEncoder {
    layer: Layer,
    enc: Box<dyn VideoEncoder>,
    active: bool,
    force_key: bool,
}

impl Pipeline {
    /// Starts the sources and the encoder threads.
    pub fn start(
        video: Option<Box<dyn VideoSource>>,
        audio: Option<Box<dyn AudioSource>>,
        clock: MediaClock,
        config: PipelineConfig,
    ) -> Result<Pipeline> {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(PipelineStats::default());
        let preview = Arc::new(Mutex::new(None));
        let (ev_tx, events) = unbounded();
        let (control, control_rx) = unbounded();
        let (vq, video_rx) = drop_oldest::<LayerPacket>(config.encoded_video_queue);
        let (aq, audio_rx) = drop_oldest::<EncodedAudio>(config.encoded_audio_queue);
        let mut threads = Vec::new();
        let video_source = Arc::new(Mutex::new(None));
        let mut video_queue = None;
        let mut audio_queue = None;

        if let Some(src) = video {
            let mut encoders = Vec::new();
            for layer in &config.layers {
                let cfg = VideoEncoderConfig::new(
                    layer.width,
                    layer.height,
                    config.fps,
                    layer.bitrate_bps,
                );
                encoders.push(LayerEncoder {
                    layer: *layer,
                    enc: new_video_encoder(config.codec, cfg)?,
                    active: true,
                    force_key: false,
                });
            }
            let handle = src.start(clock.clone())?;
            let events_rx = handle.events().clone();
            if let Ok(mut g) = video_source.lock() {
                *g = Some(handle);
            }
            let (stop, stats, preview, ev_tx, q) = (
                stop.clone(),
                stats.clone(),
                preview.clone(),
                ev_tx.clone(),
                vq.clone(),
            );
            video_queue = Some(vq);
            threads.push(
                std::thread::Builder::new()
                    .name("video-encode".into())
                    .spawn(move || {
                        video_encode_loop(
                            events_rx, control_rx, encoders, q, preview, stats, ev_tx, stop,
                        )
                    })?,
            );
        }

        if let Some(src) = audio {
            let mut enc = OpusEncoder::new(config.audio_channels, config.opus_bitrate_bps)?;
            let handle = src.start(clock)?;
            let (stop, stats, ev_tx, q) = (stop.clone(), stats.clone(), ev_tx.clone(), aq.clone());
            audio_queue = Some(aq);
            threads.push(std::thread::Builder::new().name("audio-encode".into()).spawn(move || {
                let handle = handle;
                while !stop.load(Ordering::Acquire) {
                    match handle.events().recv_timeout(Duration::from_millis(50)) {
                        Ok(SourceEvent::Frame(mut f)) => {
                            stats.audio_frames_in.fetch_add(1, Ordering::Relaxed);
                            if f.channels != enc.channels() {
                                f = crate::audio::remix_frame(&f, enc.channels());
                            }
                            match enc.push(&f) {
                                Ok(pkts) => {
                                    for p in pkts {
                                        stats.audio_packets.fetch_add(1, Ordering::Relaxed);
                                        let d = q.push(p);
                                        if d > 0 {
                                            stats.audio_dropped.fetch_add(d as u64, Ordering::Relaxed);
                                            tracing::warn!(dropped = d, "audio sink behind: dropped oldest Opus packets");
                                        }
                                    }
                                }
                                Err(e) => {
                                    let _ = ev_tx.send(PipelineEvent::SourceError { kind: "audio", error: e });
                                    return;
                                }
                            }
                        }
                        Ok(SourceEvent::Error(e)) => {
                            let _ = ev_tx.send(PipelineEvent::SourceError { kind: "audio", error: e });
                            return;
                        }
                        Ok(SourceEvent::Ended) => {
                            let _ = ev_tx.send(PipelineEvent::SourceEnded { kind: "audio" });
                            return;
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            })?);
        }

        Ok(Pipeline {
            video: video_rx,
            audio: audio_rx,
            events,
            preview,
            control,
            stats,
            stop,
            threads,
            video_source,
            video_queue,
            audio_queue,
        })
    }

    /// The latest captured frame for the preview (shares the pixel buffer, no copy).
    pub fn preview(&self) -> Option<VideoFrame> {
        self.preview.lock().ok().and_then(|g| g.clone())
    }

    /// Sends a command to the video encoder thread.
    pub fn control(&self, c: VideoControl) {
        let _ = self.control.send(c);
    }

    /// Counters.
    pub fn stats(&self) -> &PipelineStats {
        &self.stats
    }

    /// A snapshot of the counters and queue lengths.
    pub fn snapshot(&self) -> PipelineSnapshot {
        let s = &self.stats;
        let src = self.video_source.lock().ok();
        let (source_queued, source_dropped) = src
            .as_ref()
            .and_then(|g| g.as_ref().map(|h| (h.queued(), h.dropped())))
            .unwrap_or((0, 0));
        PipelineSnapshot {
            video_frames_in: PipelineStats::get(&s.video_frames_in),
            video_packets: PipelineStats::get(&s.video_packets),
            video_dropped: PipelineStats::get(&s.video_dropped),
            video_skipped: PipelineStats::get(&s.video_skipped),
            video_source_queued: source_queued,
            video_source_dropped: source_dropped,
            video_queued: self.video_queue.as_ref().map_or(0, |q| q.len()),
            audio_frames_in: PipelineStats::get(&s.audio_frames_in),
            audio_packets: PipelineStats::get(&s.audio_packets),
            audio_dropped: PipelineStats::get(&s.audio_dropped),
            audio_queued: self.audio_queue.as_ref().map_or(0, |q| q.len()),
        }
    }

    /// Stops everything and joins the threads.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Ok(mut g) = self.video_source.lock() {
            g.take();
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Counters and queue lengths at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PipelineSnapshot {
    /// raw video frames taken from the source queue
    pub video_frames_in: u64,
    /// encoded video packets produced
    pub video_packets: u64,
    /// encoded video packets dropped (sink behind)
    pub video_dropped: u64,
    /// frames skipped by rate control
    pub video_skipped: u64,
    /// raw frames waiting in the source queue
    pub video_source_queued: usize,
    /// raw frames the source queue dropped (encoder behind)
    pub video_source_dropped: u64,
    /// encoded video packets waiting for the sink
    pub video_queued: usize,
    /// audio frames taken from the source
    pub audio_frames_in: u64,
    /// Opus packets produced
    pub audio_packets: u64,
    /// Opus packets dropped (sink behind)
    pub audio_dropped: u64,
    /// Opus packets waiting for the sink
    pub audio_queued: usize,
}

#[allow(clippy::too_many_arguments)]
fn video_encode_loop(
    events: Receiver<SourceEvent<VideoFrame>>,
    control: Receiver<VideoControl>,
    mut encoders: Vec<LayerEncoder>,
    q: DropOldestQueue<LayerPacket>,
    preview: Arc<Mutex<Option<VideoFrame>>>,
    stats: Arc<PipelineStats>,
    ev_tx: Sender<PipelineEvent>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Acquire) {
        while let Ok(c) = control.try_recv() {
            for le in encoders.iter_mut() {
                match &c {
                    VideoControl::SetBitrate(qty, bps) if le.layer.quality == *qty => {
                        if let Err(e) = le.enc.set_bitrate(*bps) {
                            tracing::warn!(error = %e, "set bitrate");
                        }
                    }
                    VideoControl::ForceKeyframe => le.force_key = true,
                    VideoControl::SetLayerActive(qty, on) if le.layer.quality == *qty => {
                        if *on && !le.active {
                            le.force_key = true;
                        }
                        le.active = *on;
                    }
                    _ => {}
                }
            }
        }
        let frame = match events.recv_timeout(Duration::from_millis(50)) {
            Ok(SourceEvent::Frame(f)) => f,
            Ok(SourceEvent::Error(e)) => {
                let _ = ev_tx.send(PipelineEvent::SourceError {
                    kind: "video",
                    error: e,
                });
                return;
            }
            Ok(SourceEvent::Ended) => {
                let _ = ev_tx.send(PipelineEvent::SourceEnded { kind: "video" });
                return;
            }
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        stats.video_frames_in.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut g) = preview.lock() {
            *g = Some(frame.clone());
        }
        // room for one packet per layer, or the sink is behind: drop everything queued (the
        // oldest frames) and restart every layer with a key frame so the sink can decode what
        // follows
        if q.capacity() - q.len() < encoders.len() {
            let n = q.clear();
            stats.video_dropped.fetch_add(n as u64, Ordering::Relaxed);
            tracing::debug!(dropped = n, "video sink behind: dropped queued packets");
            for le in encoders.iter_mut() {
                le.force_key = true;
            }
        }
        for le in encoders.iter_mut().filter(|l| l.active) {
            let key = std::mem::take(&mut le.force_key);
            match le.enc.encode(&frame, key) {
                Ok(Some(video)) => {
                    stats.video_packets.fetch_add(1, Ordering::Relaxed);
                    let d = q.push(LayerPacket {
                        quality: le.layer.quality,
                        video,
                    });
                    stats.video_dropped.fetch_add(d as u64, Ordering::Relaxed);
                }
                Ok(None) => {
                    stats.video_skipped.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::warn!(error = %e, layer = ?le.layer.quality, "encode failed");
                    le.force_key = true;
                }
            }
        }
    }
}
