//! The audio side: one thread makes 20 ms mono frames from the tone, a WAV file or a
//! microphone, meters them for the level bar and, while live and not muted, encodes Opus.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use streamit_livekit_publish as lk;
use streamit_media::denoise::NoiseSuppressor;
use streamit_media::encode::{ExpectedLoss, OpusEncoder};
use streamit_media::gain::AutoGain;
use streamit_media::mic::{MicSource, list_microphones};
use streamit_media::source::{AudioSource, SourceHandle};
use streamit_media::{
    AUDIO_RATE, AudioFrame, AudioLevel, AudioSamples, MediaClock, MediaError, MediaTime,
};
use tokio::sync::mpsc;

use super::{AudioSourceSpec, Counters, MediaEvent, RecordTap, drain_device};

/// Samples of one 20 ms mono frame.
const AUDIO_FRAME: usize = (AUDIO_RATE / 50) as usize;

/// The mic check's clip: 3 s.
pub(crate) const MIC_CHECK_SAMPLES: usize = 3 * AUDIO_RATE as usize;

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

/// Adds `samples` to the mic check's clip if one is being recorded; a full clip goes to
/// the session (kept for the next frame if its queue is full). The share recorded, while
/// recording.
fn take_mic_check(
    check: &Mutex<Option<Vec<f32>>>,
    samples: &[f32],
    events: &mpsc::Sender<MediaEvent>,
) -> Option<f32> {
    let mut c = check.lock().ok()?;
    let clip = c.as_mut()?;
    let room = MIC_CHECK_SAMPLES.saturating_sub(clip.len());
    clip.extend_from_slice(&samples[..room.min(samples.len())]);
    if clip.len() < MIC_CHECK_SAMPLES {
        return Some(clip.len() as f32 / MIC_CHECK_SAMPLES as f32);
    }
    let clip = c.take()?;
    if let Err(mpsc::error::TrySendError::Full(MediaEvent::MicCheckRecorded(clip))) =
        events.try_send(MediaEvent::MicCheckRecorded(clip))
    {
        *c = Some(clip);
    }
    None
}

/// The running audio side: source, meter and (while live) Opus encoding on one thread.
pub(crate) struct AudioPipeline {
    stop: Arc<AtomicBool>,
    pub muted: Arc<AtomicBool>,
    /// RNNoise on the samples before the meter and the encoder (switchable while running).
    pub denoise: Arc<AtomicBool>,
    /// Automatic gain after the noise filter (switchable while running).
    pub auto_gain: Arc<AtomicBool>,
    /// The mic check's clip while one is being recorded (see [`AudioPipeline::start_mic_check`]).
    mic_check: Arc<Mutex<Option<Vec<f32>>>>,
    sender: Arc<Mutex<Option<lk::AudioTrackSender>>>,
    /// Opus's expected loss (percent), from the receivers' reports.
    expected_loss: Arc<AtomicU8>,
    loss_policy: Mutex<ExpectedLoss>,
    /// Opus's target and packet length, from the uplink's estimate ([`opus_plan_for`]).
    bitrate: Arc<AtomicU32>,
    packet_ms: Arc<AtomicU32>,
    thread: Option<JoinHandle<()>>,
}

impl AudioPipeline {
    /// Starts the source thread; Opus packets go to the attached track while live and to
    /// the recording in `record` while there is one (silence while muted).
    pub fn start(
        spec: &AudioSourceSpec,
        denoise: bool,
        auto_gain: bool,
        record: RecordTap,
        clock: MediaClock,
        counters: Arc<Counters>,
        events: mpsc::Sender<MediaEvent>,
    ) -> Result<Option<Self>, MediaError> {
        let Some(mut reader) = AudioReader::open(spec, &clock)? else {
            return Ok(None);
        };
        // Opus as an uplink with room to spare takes it, until the first estimate.
        let mut applied = opus_plan_for(u64::MAX, false);
        let mut opus = OpusEncoder::new(1, applied.bps)?;
        opus.set_packet_ms(applied.packet_ms);
        let bitrate = Arc::new(AtomicU32::new(applied.bps));
        let packet_ms = Arc::new(AtomicU32::new(applied.packet_ms));
        let (t_bitrate, t_packet_ms) = (bitrate.clone(), packet_ms.clone());
        let stop = Arc::new(AtomicBool::new(false));
        let muted = Arc::new(AtomicBool::new(false));
        let denoise = Arc::new(AtomicBool::new(denoise));
        let t_denoise = denoise.clone();
        let auto_gain = Arc::new(AtomicBool::new(auto_gain));
        let t_gain = auto_gain.clone();
        let sender: Arc<Mutex<Option<lk::AudioTrackSender>>> = Arc::default();
        let expected_loss = Arc::new(AtomicU8::new(0));
        let (t_stop, t_muted, t_sender) = (stop.clone(), muted.clone(), sender.clone());
        let t_loss = expected_loss.clone();
        let mic_check: Arc<Mutex<Option<Vec<f32>>>> = Arc::default();
        let t_check = mic_check.clone();
        let mut loss_applied = 0u8;
        let thread = std::thread::Builder::new()
            .name("audio-source".into())
            .spawn(move || {
                let mut last_level = Instant::now();
                let mut level = AudioLevel::default();
                // Meter, then (while live and not muted) Opus → transport. False: stop.
                let mut suppressor: Option<NoiseSuppressor> = None;
                // None: off; Some(None): unavailable here (said once), audio untouched.
                let mut gain: Option<Option<AutoGain>> = None;
                let mut process = |mut samples: Vec<f32>, pts: MediaTime| -> bool {
                    let muted = t_muted.load(Ordering::Acquire);
                    if t_denoise.load(Ordering::Relaxed) {
                        suppressor
                            .get_or_insert_with(NoiseSuppressor::new)
                            .process(&mut samples);
                    } else {
                        // Switched off: a later switch-on starts from a fresh state.
                        suppressor = None;
                    }
                    if t_gain.load(Ordering::Relaxed) {
                        let agc = gain.get_or_insert_with(|| {
                            AutoGain::new()
                                .map_err(|e| tracing::warn!("{e}; the audio keeps its level"))
                                .ok()
                        });
                        if let Some(g) = agc
                            && let Err(e) = g.process(&mut samples)
                        {
                            tracing::warn!("{e}; automatic gain off");
                            *agc = None;
                        }
                    } else {
                        gain = None;
                    }
                    let l = AudioLevel::measure(&samples);
                    level.rms = level.rms.max(l.rms);
                    // The mic check hears what would go out, muted or not.
                    let checking = take_mic_check(&t_check, &samples, &events);
                    if last_level.elapsed() >= Duration::from_millis(50) {
                        last_level = Instant::now();
                        let shown = if muted { 0.0 } else { level.rms };
                        let _ = events.try_send(MediaEvent::MicLevel(shown));
                        if let Some(share) = checking {
                            let _ = events.try_send(MediaEvent::MicCheckProgress(share));
                        }
                        level = AudioLevel::default();
                    }
                    let tx = t_sender.lock().ok().and_then(|s| s.clone());
                    let recorder = record.get();
                    if tx.is_none() && recorder.is_none() {
                        return true;
                    }
                    if muted {
                        if recorder.is_none() {
                            return true;
                        }
                        // the recording keeps its time line: silence while muted
                        samples.iter_mut().for_each(|s| *s = 0.0);
                    }
                    let plan = OpusPlan {
                        bps: t_bitrate.load(Ordering::Relaxed),
                        packet_ms: t_packet_ms.load(Ordering::Relaxed),
                    };
                    if plan != applied {
                        if let Err(e) = opus.set_bitrate(plan.bps) {
                            tracing::warn!("Opus bitrate not set: {e}");
                        }
                        opus.set_packet_ms(plan.packet_ms);
                        applied = plan;
                    }
                    let loss = t_loss.load(Ordering::Relaxed);
                    if loss != loss_applied {
                        loss_applied = loss;
                        if let Err(e) = opus.set_expected_loss(loss) {
                            tracing::warn!("Opus expected loss not set: {e}");
                        }
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
                                if let Some(r) = &recorder {
                                    r.audio(streamit_record::Sample {
                                        data: Bytes::clone(&p.data),
                                        pts: p.pts.as_duration(),
                                        keyframe: true,
                                    });
                                }
                                let Some(tx) = tx.as_ref().filter(|_| !muted) else {
                                    continue;
                                };
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
                    drain_device(
                        handle,
                        &t_stop,
                        &events,
                        "the microphone stopped",
                        MediaEvent::Failed,
                        |f| {
                            let mono = mono_f32(&f);
                            process(mono, f.pts)
                        },
                    );
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
            denoise,
            auto_gain,
            mic_check,
            sender,
            expected_loss,
            loss_policy: Mutex::default(),
            bitrate,
            packet_ms,
            thread: Some(thread),
        }))
    }

    /// Starts recording the mic check's clip (again, if one was under way).
    pub fn start_mic_check(&self) {
        if let Ok(mut c) = self.mic_check.lock() {
            *c = Some(Vec::with_capacity(MIC_CHECK_SAMPLES));
        }
    }

    pub fn attach(&self, tx: Option<lk::AudioTrackSender>) {
        if tx.is_none() {
            // The stream ended: the next one starts at full quality, not at the plan the
            // last uplink ended with, until its own estimate says otherwise.
            let full = opus_plan_for(u64::MAX, false);
            self.bitrate.store(full.bps, Ordering::Relaxed);
            self.packet_ms.store(full.packet_ms, Ordering::Relaxed);
        }
        if let Ok(mut s) = self.sender.lock() {
            *s = tx;
        }
    }

    /// What Opus is set to send at now (the next packet applies it).
    #[cfg(test)]
    pub fn plan(&self) -> OpusPlan {
        OpusPlan {
            bps: self.bitrate.load(Ordering::Relaxed),
            packet_ms: self.packet_ms.load(Ordering::Relaxed),
        }
    }
}

/// What one Opus packet costs on the wire besides its payload: IP, UDP, SRTP's tag, the
/// RTP header and its extensions, about 60 bytes (24 kbit/s at 50 packets a second).
const AUDIO_PACKET_OVERHEAD_BITS: u32 = 60 * 8;

/// RED's own bytes per packet (RFC 2198): a 4-byte header for the redundant block and
/// a 1-byte one for the primary.
const RED_HEADER_BITS: u32 = 5 * 8;

/// How Opus is sent on an uplink: its bitrate and its packet length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpusPlan {
    pub bps: u32,
    pub packet_ms: u32,
}

impl OpusPlan {
    /// What the audio takes on the wire, headers included, and with `red` the copy of
    /// each packet the engine adds (RED happens in the engine; Opus itself is the same).
    pub fn wire_bps(self, red: bool) -> u32 {
        let per_packet = AUDIO_PACKET_OVERHEAD_BITS + if red { RED_HEADER_BITS } else { 0 };
        self.bps * (1 + u32::from(red)) + per_packet * 1000 / self.packet_ms.max(1)
    }
}

/// Opus for an uplink estimate: full quality down to 600 kbit/s, then less, to 16 kbit/s
/// (still wideband speech) in 60 ms packets below 150 kbit/s, where 20 ms packets' headers
/// alone would take a sixth of the link. On a 100 kbit/s uplink 48 kbit/s of audio with
/// its headers (72 on the wire) would leave video almost nothing, and viewers forgive a
/// duller voice sooner than a frozen picture. 60 ms packets add 40 ms of delay.
///
/// With `red` (RED negotiated: each packet also carries the one before, so a lost one
/// costs nothing; at 150 ms RTT and 5 % loss libwebrtc's viewer concealed 4.3 % of the
/// samples without it and 0.03 % with it) the copy is paid for out of the same budget:
/// Opus gets 32 kbit/s at the top (libwebrtc's own default; 90 on the wire), about half
/// below, so the audio still takes at most a quarter of the uplink. At 48 kbit/s twice
/// (122 on the wire) the audio alone overran a link capped at 100 kbit/s while the
/// estimate came down, and the picture stood 12-16 s (2 runs of 2). RED stays on once
/// negotiated, as libwebrtc keeps it (plain Opus after RED on the same track reached a
/// viewer as 91 % concealed audio).
pub(crate) fn opus_plan_for(estimate_bps: u64, red: bool) -> OpusPlan {
    let (bps, packet_ms) = match (estimate_bps, red) {
        (600_000.., false) => (48_000, 20),
        (600_000.., true) => (32_000, 20),
        (300_000.., false) => (32_000, 20),
        (300_000.., true) => (24_000, 20),
        (150_000.., false) => (24_000, 40),
        (150_000.., true) => (12_000, 40),
        (_, false) => (16_000, 60),
        (_, true) => (8_000, 60),
    };
    OpusPlan { bps, packet_ms }
}

impl AudioPipeline {
    /// Sets Opus's bitrate and packet length for the uplink's `estimate_bps`, with `red`
    /// where the engine sends RED; returns the plan.
    pub fn follow_estimate(&self, estimate_bps: u64, red: bool) -> OpusPlan {
        let plan = opus_plan_for(estimate_bps, red);
        let old = self.bitrate.swap(plan.bps, Ordering::Relaxed);
        let old_ms = self.packet_ms.swap(plan.packet_ms, Ordering::Relaxed);
        if (old, old_ms) != (plan.bps, plan.packet_ms) {
            tracing::info!(
                estimate_bps,
                opus_bps = plan.bps,
                packet_ms = plan.packet_ms,
                red,
                "Opus follows the uplink"
            );
        }
        plan
    }

    /// Feeds the audio track's reported loss fraction to Opus's in-band FEC.
    pub fn report_loss(&self, fraction: f32) {
        let Ok(mut policy) = self.loss_policy.lock() else {
            return;
        };
        if let Some(level) = policy.update(fraction) {
            tracing::info!(
                "Opus expects {level} % loss (in-band FEC {})",
                if level > 0 { "on" } else { "off" }
            );
            self.expected_loss.store(level, Ordering::Relaxed);
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
    fn a_new_stream_starts_opus_at_full_quality_whatever_the_last_uplink_was() {
        let (tx, _rx) = mpsc::channel(64);
        let audio = AudioPipeline::start(
            &AudioSourceSpec::Tone,
            false,
            false,
            RecordTap::default(),
            MediaClock::new(),
            Arc::default(),
            tx,
        )
        .unwrap()
        .unwrap();
        let full = opus_plan_for(u64::MAX, false);
        assert_eq!(audio.plan(), full);
        audio.follow_estimate(100_000, false);
        assert_eq!(audio.plan(), opus_plan_for(100_000, false));
        assert_ne!(audio.plan(), full);
        // The stream ends (the track detached): the plan is reset for the next one.
        audio.attach(None);
        assert_eq!(audio.plan(), full);
    }

    #[test]
    fn audio_never_takes_more_than_a_quarter_of_an_uplink_of_100_kbit_s_or_more() {
        for red in [false, true] {
            let mut last = 0;
            for kbps in (100..=2_000).step_by(10) {
                let plan = opus_plan_for(kbps * 1000, red);
                let wire = u64::from(plan.wire_bps(red));
                assert!(
                    wire * 4 <= kbps * 1000,
                    "{kbps} kbit/s: {plan:?} takes {wire}"
                );
                assert!(
                    wire >= last,
                    "more uplink never means less audio ({kbps} kbit/s, RED {red})"
                );
                last = wire;
            }
        }
        // full quality on a good uplink: 48 kbit/s in 20 ms packets, 72 on the wire; with
        // RED, 32 kbit/s twice and RED's 5-byte headers, 90
        assert_eq!(opus_plan_for(1_000_000, false).wire_bps(false), 72_000);
        assert_eq!(opus_plan_for(1_000_000, true).wire_bps(true), 90_000);
        // 60 ms packets at the bottom: 16 + 8 kbit/s; with RED 2 × 8 + 8.7
        assert_eq!(opus_plan_for(100_000, false).wire_bps(false), 24_000);
        assert_eq!(opus_plan_for(100_000, true).wire_bps(true), 24_666);
    }
}
