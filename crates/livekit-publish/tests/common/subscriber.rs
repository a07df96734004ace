//! The receive side's test helpers: an event log, a decoding reader that reads
//! the pattern's codes back, and a paced H.264 sender of the test pattern.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use streamit_livekit_publish::*;
use streamit_media::MediaTime;
use streamit_media::encode::{
    OpusDecoder, OpusEncoder, VideoEncoderConfig, new_video_decoder, new_video_encoder,
};
use streamit_media::pattern::{generate_pattern, read_pattern_code};
use tokio::sync::mpsc::Receiver;

/// Logs through libtest's capture: a failing test prints the driver's account of it (a
/// reconnect that failed under CI's load once left nothing else to read), a passing one
/// nothing. `RUST_LOG` overrides the default.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "warn,streamit_livekit_publish=info,streamit_livekit_publish::tcp=debug,\
             livekit_signaling=info",
        )
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .with_ansi(false)
        .try_init();
}

pub fn media_codec(c: VideoCodec) -> streamit_media::encode::VideoCodec {
    match c {
        VideoCodec::H264 => streamit_media::encode::VideoCodec::H264,
        VideoCodec::Vp8 => streamit_media::encode::VideoCodec::Vp8,
    }
}

/// Every event a participant emitted, collected by a background task.
#[derive(Clone, Default)]
pub struct EventLog(Arc<Mutex<Vec<PublisherEvent>>>);

impl EventLog {
    pub fn spawn(mut rx: Receiver<PublisherEvent>) -> Self {
        let log = EventLog::default();
        let l = log.clone();
        tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                if let Ok(mut v) = l.0.lock() {
                    v.push(e);
                }
            }
        });
        log
    }

    pub fn snapshot(&self) -> Vec<PublisherEvent> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Waits until an event matches `f` and returns it.
    pub async fn wait(
        &self,
        within: Duration,
        what: &str,
        f: impl Fn(&PublisherEvent) -> bool,
    ) -> anyhow::Result<PublisherEvent> {
        let deadline = Instant::now() + within;
        loop {
            let events = self.snapshot();
            if let Some(e) = events.iter().find(|e| f(e)) {
                return Ok(e.clone());
            }
            if let Some(PublisherEvent::StateChanged(ConnectionState::Failed { error })) =
                events.iter().find(|e| {
                    matches!(
                        e,
                        PublisherEvent::StateChanged(ConnectionState::Failed { .. })
                    )
                })
            {
                anyhow::bail!("failed while waiting for {what}: {error}");
            }
            if Instant::now() > deadline {
                anyhow::bail!("timed out waiting for {what}; saw {events:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// What the viewer's decode thread saw.
#[derive(Default)]
pub struct Decoded {
    /// (frame number, capture µs on the test's media clock, when decoded).
    pub video: Vec<(u32, u64, Instant)>,
    /// Size of every decoded picture, and when.
    pub sizes: Vec<(u32, u32, Instant)>,
    /// Frames the decoder produced whose code did not read.
    pub unreadable: u64,
    pub decode_errors: u64,
    pub frames_in: u64,
    pub keyframes_in: u64,
    pub non_contiguous: u64,
    pub audio_packets: u64,
    pub audio_samples: u64,
    pub audio_rates: Vec<u32>,
    pub tracks_seen: Vec<TrackSid>,
}

/// Drains the media channel on a plain thread (decoding blocks), like `watch` would.
pub fn spawn_decoder(
    mut media: Receiver<ReceivedMedia>,
    out: Arc<Mutex<Decoded>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut video_dec = None;
        let mut opus = OpusDecoder::new(1).ok();
        while let Some(m) = media.blocking_recv() {
            match m {
                ReceivedMedia::Video(v) => {
                    let dec = match &mut video_dec {
                        Some(d) => d,
                        None => match new_video_decoder(media_codec(v.codec)) {
                            Ok(d) => video_dec.insert(d),
                            Err(_) => return,
                        },
                    };
                    let pts = MediaTime::from_micros(v.timestamp.as_micros() as u64);
                    let res = dec.decode(&v.data, pts);
                    let now = Instant::now();
                    let Ok(mut o) = out.lock() else { return };
                    o.frames_in += 1;
                    o.keyframes_in += u64::from(v.keyframe);
                    o.non_contiguous += u64::from(!v.contiguous);
                    if !o.tracks_seen.contains(&v.track) {
                        o.tracks_seen.push(v.track.clone());
                    }
                    match res {
                        Ok(Some(frame)) => {
                            o.sizes.push((frame.width, frame.height, now));
                            match read_pattern_code(&frame) {
                                Some((n, us)) => o.video.push((n, us, now)),
                                None => o.unreadable += 1,
                            }
                        }
                        Ok(None) => {}
                        Err(_) => o.decode_errors += 1,
                    }
                }
                ReceivedMedia::Audio(a) => {
                    let Some(opus) = opus.as_mut() else { continue };
                    let res = opus.decode(&a.data, MediaTime::ZERO);
                    let Ok(mut o) = out.lock() else { return };
                    o.audio_packets += 1;
                    if !o.tracks_seen.contains(&a.track) {
                        o.tracks_seen.push(a.track.clone());
                    }
                    if let Ok(f) = res {
                        o.audio_samples += f.frames() as u64;
                        if !o.audio_rates.contains(&f.sample_rate) {
                            o.audio_rates.push(f.sample_rate);
                        }
                    }
                }
            }
        }
    })
}

/// `spawn_decoder` into a fresh `Decoded`, returned with the thread.
pub fn spawn_decoding(
    media: Receiver<ReceivedMedia>,
) -> (Arc<Mutex<Decoded>>, std::thread::JoinHandle<()>) {
    let decoded = Arc::new(Mutex::new(Decoded::default()));
    let decoder = spawn_decoder(media, decoded.clone());
    (decoded, decoder)
}

/// Sends H.264 (the layers the SFU wants; one layer for a single-stream track)
/// from a plain thread until `stop`, at 30 fps on its own clock.
pub fn spawn_sender(
    video: VideoTrackSender,
    layers: Vec<LayerSpec>,
    pub_log: EventLog,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<anyhow::Result<u64>> {
    std::thread::spawn(move || {
        let mut encoders = Vec::new();
        for l in &layers {
            encoders.push((
                l.quality,
                new_video_encoder(
                    streamit_media::encode::VideoCodec::H264,
                    VideoEncoderConfig::new(l.width, l.height, 30.0, l.bitrate.bps() as u32),
                )?,
            ));
        }
        let t0 = Instant::now();
        let mut n = 0u64;
        let mut seen = 0usize;
        let mut force_key = true;
        let mut wanted: Option<Vec<VideoQuality>> = None;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let slot = t0 + Duration::from_micros(n * 33_333);
            if let Some(wait) = slot.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let events = pub_log.snapshot();
            for e in &events[seen..] {
                match e {
                    PublisherEvent::KeyframeRequested { .. } => force_key = true,
                    PublisherEvent::LayersWanted { layers, .. } => wanted = Some(layers.clone()),
                    _ => {}
                }
            }
            seen = events.len();
            let pts = MediaTime::from_micros(n * 33_333);
            for ((q, enc), l) in encoders.iter_mut().zip(&layers) {
                if wanted.as_ref().is_some_and(|w| !w.contains(q)) {
                    continue;
                }
                let pic = generate_pattern(l.width, l.height, n as u32, pts)?;
                if let Some(e) = enc.encode(&pic, force_key)? {
                    video.send(EncodedVideo {
                        layer: Some(*q),
                        data: e.data,
                        keyframe: e.keyframe,
                        timestamp: pts.as_duration(),
                    });
                }
            }
            force_key = false;
            n += 1;
        }
        Ok(n)
    })
}

/// Joins `ws_url` as a publisher (default options) and waits, 10 s at most,
/// until it is connected; its events go to an `EventLog`.
pub async fn connect_publisher(
    ws_url: &str,
    token: &str,
) -> anyhow::Result<(PublisherHandle, EventLog)> {
    let (publisher, events) = Publisher::connect(ws_url, token, PublishOptions::default()).await?;
    let log = EventLog::spawn(events);
    log.wait(Duration::from_secs(10), "publisher connected", |e| {
        matches!(e, PublisherEvent::StateChanged(ConnectionState::Connected))
    })
    .await?;
    Ok((publisher, log))
}

/// Joins `ws_url` with subscribe on (a viewer's token): `media_queue` is the
/// media receiver's depth, `None` the default. Does not wait for Connected.
pub async fn connect_subscriber(
    ws_url: &str,
    token: &str,
    media_queue: Option<usize>,
) -> anyhow::Result<(PublisherHandle, EventLog)> {
    let mut opts = PublishOptions {
        subscribe: true,
        ..Default::default()
    };
    if let Some(q) = media_queue {
        opts.media_queue = q;
    }
    let (viewer, events) = Publisher::connect(ws_url, token, opts).await?;
    Ok((viewer, EventLog::spawn(events)))
}

/// `spawn_sender` of one 640×360 H.264 layer at 1 Mbit/s; set the flag to stop it.
pub fn spawn_single_layer_sender(
    video: VideoTrackSender,
    pub_log: EventLog,
) -> (
    Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<anyhow::Result<u64>>,
) {
    let layer = LayerSpec {
        quality: VideoQuality::High,
        width: 640,
        height: 360,
        bitrate: Bitrate::from_kbps(1000),
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = spawn_sender(video, vec![layer], pub_log, stop.clone());
    (stop, sender)
}

/// A 440 Hz tone sent as Opus (mono, 32 kbit/s) in 20 ms frames on the test's clock.
pub struct ToneSender {
    opus: OpusEncoder,
    /// The next frame's number.
    next: u64,
}

impl ToneSender {
    pub fn new() -> anyhow::Result<Self> {
        Ok(ToneSender {
            opus: OpusEncoder::new(1, 32_000)?,
            next: 0,
        })
    }

    /// Sends every frame due `elapsed` after the first.
    pub fn send_due(&mut self, audio: &AudioTrackSender, elapsed: Duration) -> anyhow::Result<()> {
        while Duration::from_millis(self.next * 20) <= elapsed {
            for p in self.opus.push(&tone_frame(self.next))? {
                audio.send(EncodedAudio {
                    data: p.data,
                    timestamp: p.pts.as_duration(),
                })?;
            }
            self.next += 1;
        }
        Ok(())
    }
}

/// Audio frame `n` of a 440 Hz tone: 20 ms, mono 48 kHz.
fn tone_frame(n: u64) -> streamit_media::AudioFrame {
    let samples: Vec<f32> = (0..960)
        .map(|i| {
            let t = (n * 960 + i) as f32 / 48_000.0;
            (t * 440.0 * std::f32::consts::TAU).sin() * 0.3
        })
        .collect();
    streamit_media::AudioFrame {
        sample_rate: 48_000,
        channels: 1,
        samples: streamit_media::AudioSamples::F32(samples),
        pts: MediaTime::from_micros(n * 20_000),
    }
}
