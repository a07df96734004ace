//! The decoder thread: frames come through a bounded queue from the async side, are decoded
//! per track (waiting for a key frame after any loss) and measured.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use streamit_livekit_publish as lk;
use streamit_media::encode::{OpusDecoder, new_video_decoder};
use streamit_media::{MediaTime, VideoCodec, VideoDecoder, read_pattern_code};

use super::DecodeMode;
use super::measure::{AudioMeasure, VideoMeasure};

/// One frame on its way to the decoder thread.
pub(super) struct Queued {
    pub(super) media: lk::ReceivedMedia,
}

/// What the decoder thread shares with the async side while it runs.
#[derive(Default)]
pub(super) struct Shared {
    /// The publisher's media clock epoch in Unix µs, 0 until known (see [`EpochChoice`]).
    pub(super) epoch_us: AtomicU64,
    /// A frame was dropped before the decoder: skip to the next key frame.
    pub(super) lost: AtomicBool,
    pub(super) queue_drops: AtomicU64,
    pub(super) live: Mutex<LiveFigures>,
}

impl Shared {
    pub(super) fn epoch(&self) -> Option<SystemTime> {
        match self.epoch_us.load(Ordering::Acquire) {
            0 => None,
            us => Some(UNIX_EPOCH + Duration::from_micros(us)),
        }
    }
}

#[derive(Default, Clone, Copy)]
pub(super) struct LiveFigures {
    pub(super) frames_decoded: u64,
    pub(super) resolution: Option<(u32, u32)>,
    pub(super) last_latency_ms: Option<f64>,
    pub(super) audio_packets: u64,
    pub(super) first_frame: Option<Instant>,
}

/// One decoder per video track, waiting for a key frame after any loss.
struct TrackDecoder {
    decoder: Box<dyn VideoDecoder>,
    waiting_for_key: bool,
}

/// The decoder thread: decodes until the queue's sender is dropped.
pub(super) fn decode_loop(
    rx: std_mpsc::Receiver<Queued>,
    shared: Arc<Shared>,
    handle: lk::PublisherHandle,
    started: Instant,
    mode: DecodeMode,
) -> (VideoMeasure, AudioMeasure) {
    // Instants → wall-clock times, read back to back once.
    let (anchor_instant, anchor_wall) = (Instant::now(), SystemTime::now());
    let wall = |t: Instant| match t.checked_duration_since(anchor_instant) {
        Some(d) => anchor_wall + d,
        None => anchor_wall - anchor_instant.duration_since(t),
    };
    let mut video = VideoMeasure {
        origin: Some(wall(started)),
        ..Default::default()
    };
    let mut audio = AudioMeasure::default();
    let mut decoders: HashMap<lk::TrackSid, TrackDecoder> = HashMap::new();
    let mut opus: Option<OpusDecoder> = None;
    while let Ok(Queued { media }) = rx.recv() {
        match media {
            lk::ReceivedMedia::Video(f) => {
                video.frames_received += 1;
                if f.keyframe {
                    video.keyframes += 1;
                }
                let lost = shared.lost.swap(false, Ordering::AcqRel);
                let td = match decoders.entry(f.track.clone()) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        let codec = match f.codec {
                            lk::VideoCodec::H264 => VideoCodec::H264,
                            lk::VideoCodec::Vp8 => VideoCodec::Vp8,
                        };
                        match new_video_decoder(codec) {
                            Ok(decoder) => v.insert(TrackDecoder {
                                decoder,
                                waiting_for_key: true,
                            }),
                            Err(e) => {
                                tracing::warn!("no {codec:?} decoder: {e}");
                                video.decode_errors += 1;
                                continue;
                            }
                        }
                    }
                };
                if lost || !f.contiguous {
                    td.waiting_for_key = true;
                }
                let decodable = !td.waiting_for_key || f.keyframe;
                video.arrived(f.timestamp, f.data.len(), decodable, wall(f.received_at));
                if !decodable {
                    video.frames_skipped += 1;
                    let _ = handle.request_keyframe(&f.track);
                    continue;
                }
                td.waiting_for_key = false;
                if mode == DecodeMode::KeyFrames && !f.keyframe {
                    continue;
                }
                let pts = MediaTime::from_micros(f.timestamp.as_micros() as u64);
                match td.decoder.decode(&f.data, pts) {
                    Ok(Some(frame)) => {
                        let decoded_at = SystemTime::now();
                        let epoch = shared.epoch();
                        let code = read_pattern_code(&frame);
                        video.decoded(
                            frame.width,
                            frame.height,
                            code,
                            epoch,
                            wall(f.received_at),
                            decoded_at,
                        );
                        if let Ok(mut l) = shared.live.lock() {
                            l.frames_decoded = video.frames_decoded;
                            l.resolution = Some((frame.width, frame.height));
                            if code.is_some() && epoch.is_some() {
                                l.last_latency_ms = video.latencies_ms.last().copied();
                            }
                            l.first_frame.get_or_insert_with(Instant::now);
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        video.decode_errors += 1;
                        tracing::debug!("video decode error: {e}");
                        td.waiting_for_key = true;
                        let _ = handle.request_keyframe(&f.track);
                    }
                }
            }
            lk::ReceivedMedia::Audio(p) => {
                audio.packets_received += 1;
                if mode == DecodeMode::KeyFrames {
                    continue;
                }
                if opus.is_none() {
                    match OpusDecoder::new(1) {
                        Ok(d) => opus = Some(d),
                        Err(e) => {
                            tracing::warn!("no Opus decoder: {e}");
                            audio.decode_errors += 1;
                            continue;
                        }
                    }
                }
                let Some(dec) = opus.as_mut() else { continue };
                let pts = MediaTime::from_micros(p.timestamp.as_micros() as u64);
                match dec.decode(&p.data, pts) {
                    Ok(frame) => audio.decoded(&frame.samples.to_f32(), frame.channels),
                    Err(e) => {
                        audio.decode_errors += 1;
                        tracing::debug!("audio decode error: {e}");
                    }
                }
                if let Ok(mut l) = shared.live.lock() {
                    l.audio_packets = audio.packets_received;
                }
            }
        }
    }
    (video, audio)
}
