//! Samples in, fragmented MP4 bytes out. No files, threads or clocks: the caller writes
//! what [`Muxer::push`] returns, so every layout decision is testable in memory.
//!
//! Layout: `ftyp` + `moov` (with `mvex`, no sample tables) once the first video key frame
//! arrives, then a `moof` + `mdat` fragment every half second holding both tracks. A
//! sample's duration is the gap to the next sample of its track, so a sample is written
//! only once its successor has arrived (or at [`Muxer::finish`]).

use std::time::Duration;

use bytes::Bytes;
use mp4_atom::{
    Audio, Avc1, Avcc, Dinf, Dops, Dref, Encode, Ftyp, Hdlr, Mdhd, Mdia, Mfhd, Minf, Moof, Moov,
    Mvex, Mvhd, Opus, Smhd, Stbl, Stco, Stsd, Tfdt, Tfhd, Tkhd, Traf, Trak, Trex, Trun, TrunEntry,
    TrunSamples, Url, Visual, Vmhd, Vp08, VpcC,
};

use crate::RecordError;
use crate::annexb;

/// How often a fragment is closed: what a crash can cost at most (plus the writer's
/// queue). Half a second keeps "at most about a second" even when the encoder runs late;
/// a fragment header costs about 100 bytes.
const FRAGMENT: Duration = Duration::from_millis(500);
const VIDEO_TIMESCALE: u32 = 90_000;
const AUDIO_TIMESCALE: u32 = 48_000;
const VIDEO_TRACK: u32 = 1;
const AUDIO_TRACK: u32 = 2;
/// `sample_depends_on = 2` (independent): a sync sample.
const SYNC: u32 = 0x0200_0000;
/// `sample_depends_on = 1`, `sample_is_non_sync_sample`.
const NON_SYNC: u32 = 0x0101_0000;

/// The video codec of the recorded layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// Annex B access units with SPS and PPS before every IDR (what openh264 emits).
    H264,
    Vp8,
}

/// The video track: codec and the size of the layer being recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoTrack {
    pub codec: VideoCodec,
    pub width: u32,
    pub height: u32,
}

/// The Opus track (48 kHz).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioTrack {
    pub channels: u8,
    /// Samples the decoder drops at the start (the encoder's lookahead).
    pub pre_skip: u16,
}

/// One encoded frame or packet, timed on the session's media clock.
#[derive(Debug, Clone)]
pub struct Sample {
    pub data: Bytes,
    pub pts: Duration,
    /// Always true for audio.
    pub keyframe: bool,
}

/// A sample ready to be written: its payload as stored, its decode time in track ticks.
struct Pending {
    data: Vec<u8>,
    ticks: u64,
    sync: bool,
}

/// Samples with their durations (track ticks).
type Timed = Vec<(Pending, u32)>;

/// One track's share of a fragment.
struct Run {
    track: u32,
    /// Decode time of the first sample (`tfdt`).
    first: u64,
    samples: Timed,
}

/// One track's queue: samples whose duration is known, and the last one, waiting for its
/// successor.
struct TrackQueue {
    timescale: u32,
    done: Timed,
    last: Option<Pending>,
    /// Decode time of the first sample in `done` (the fragment's `tfdt`).
    first_ticks: Option<u64>,
    last_duration: u32,
}

impl TrackQueue {
    fn new(timescale: u32, nominal: u32) -> Self {
        TrackQueue {
            timescale,
            done: Vec::new(),
            last: None,
            first_ticks: None,
            last_duration: nominal,
        }
    }

    fn ticks(&self, since_start: Duration) -> u64 {
        (since_start.as_nanos() * self.timescale as u128 / 1_000_000_000) as u64
    }

    /// Queues a sample at `ticks`; a time at or before the previous one (a clock that
    /// stepped back) is moved one tick after it, so decode times stay strictly increasing.
    fn push(&mut self, data: Vec<u8>, ticks: u64, sync: bool) {
        let ticks = match &self.last {
            Some(prev) if ticks <= prev.ticks => prev.ticks + 1,
            _ => ticks,
        };
        if let Some(prev) = self.last.take() {
            let duration = u32::try_from(ticks - prev.ticks).unwrap_or(u32::MAX);
            self.last_duration = duration;
            self.first_ticks.get_or_insert(prev.ticks);
            self.done.push((prev, duration));
        }
        self.last = Some(Pending { data, ticks, sync });
    }

    /// Closes the queue: the last sample gets the previous sample's duration.
    fn flush_last(&mut self) {
        if let Some(prev) = self.last.take() {
            self.first_ticks.get_or_insert(prev.ticks);
            self.done.push((prev, self.last_duration.max(1)));
        }
    }

    fn take(&mut self, track: u32) -> Option<Run> {
        let first = self.first_ticks.take()?;
        Some(Run {
            track,
            first,
            samples: std::mem::take(&mut self.done),
        })
    }
}

/// The fragmented MP4 muxer.
pub struct Muxer {
    video: Option<VideoTrack>,
    audio: Option<AudioTrack>,
    /// Media-clock time of the recording's first sample: time zero in the file.
    start: Option<Duration>,
    fragment_start: Duration,
    sequence: u32,
    v: TrackQueue,
    a: TrackQueue,
    /// Video samples skipped because no key frame had come since the start or a gap.
    skipped: u64,
    need_keyframe: bool,
    /// Time of the newest sample in the file.
    newest: Duration,
}

impl Muxer {
    /// A muxer for a video track, an audio track, or both.
    pub fn new(video: Option<VideoTrack>, audio: Option<AudioTrack>) -> Self {
        Muxer {
            video,
            audio,
            start: None,
            fragment_start: Duration::ZERO,
            sequence: 0,
            v: TrackQueue::new(VIDEO_TIMESCALE, VIDEO_TIMESCALE / 30),
            a: TrackQueue::new(AUDIO_TIMESCALE, AUDIO_TIMESCALE / 50),
            skipped: 0,
            need_keyframe: true,
            newest: Duration::ZERO,
        }
    }

    /// True until a video key frame has started the file (or after [`Muxer::gap`]): the
    /// encoder should be asked for one.
    pub fn needs_keyframe(&self) -> bool {
        self.video.is_some() && self.need_keyframe
    }

    /// Video frames left out after a gap while waiting for the next key frame.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// How much media the file holds so far (up to the newest sample).
    pub fn duration(&self) -> Duration {
        self.newest
    }

    /// Some video frames never reached the muxer (the writer fell behind): what follows
    /// is undecodable until the next key frame, so skip to it.
    pub fn gap(&mut self) {
        self.need_keyframe = true;
    }

    /// Adds a video frame; returns bytes to append to the file (often none).
    pub fn push_video(&mut self, s: Sample) -> Result<Vec<u8>, RecordError> {
        let Some(track) = self.video else {
            return Ok(Vec::new());
        };
        if self.need_keyframe {
            if !s.keyframe {
                // before the first key frame nothing is lost: the file has not begun
                self.skipped += u64::from(self.start.is_some());
                return Ok(Vec::new());
            }
            self.need_keyframe = false;
        }
        let mut out = Vec::new();
        if self.start.is_none() {
            out = self.init(track, &s.data)?;
            self.start = Some(s.pts);
            self.fragment_start = Duration::ZERO;
        }
        let since = s.pts.saturating_sub(self.start.unwrap_or_default());
        if since >= self.fragment_start + FRAGMENT {
            out.extend(self.fragment()?);
            self.fragment_start = since;
        }
        let data = match track.codec {
            VideoCodec::H264 => annexb::to_length_prefixed(&s.data),
            VideoCodec::Vp8 => s.data.to_vec(),
        };
        let ticks = self.v.ticks(since);
        self.v.push(data, ticks, s.keyframe);
        self.newest = self.newest.max(since);
        Ok(out)
    }

    /// Adds an Opus packet; returns bytes to append to the file (often none).
    pub fn push_audio(&mut self, s: Sample) -> Result<Vec<u8>, RecordError> {
        if self.audio.is_none() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let start = match (self.start, self.video) {
            (Some(start), _) => start,
            // audio waits for the first video key frame: it sets time zero
            (None, Some(_)) => return Ok(out),
            (None, None) => {
                out = self.init_audio_only()?;
                self.start = Some(s.pts);
                s.pts
            }
        };
        if s.pts < start {
            return Ok(out);
        }
        let since = s.pts - start;
        if self.video.is_none() && since >= self.fragment_start + FRAGMENT {
            out.extend(self.fragment()?);
            self.fragment_start = since;
        }
        let ticks = self.a.ticks(since);
        self.a.push(s.data.to_vec(), ticks, true);
        self.newest = self.newest.max(since);
        Ok(out)
    }

    /// Writes out every queued sample; the file is complete after these bytes.
    pub fn finish(&mut self) -> Result<Vec<u8>, RecordError> {
        if self.start.is_none() {
            return Ok(Vec::new());
        }
        self.v.flush_last();
        self.a.flush_last();
        self.fragment()
    }

    fn init_audio_only(&mut self) -> Result<Vec<u8>, RecordError> {
        self.moov(None)
    }

    fn init(&mut self, track: VideoTrack, keyframe: &[u8]) -> Result<Vec<u8>, RecordError> {
        let visual = Visual {
            width: track.width.min(u16::MAX as u32) as u16,
            height: track.height.min(u16::MAX as u32) as u16,
            ..Visual::default()
        };
        let entry = match track.codec {
            VideoCodec::H264 => {
                let (sps, pps) =
                    annexb::parameter_sets(keyframe).ok_or(RecordError::NoParameterSets)?;
                let profile = |i: usize| sps.get(i).copied().unwrap_or_default();
                Avc1 {
                    visual,
                    avcc: Avcc {
                        configuration_version: 1,
                        avc_profile_indication: profile(1),
                        profile_compatibility: profile(2),
                        avc_level_indication: profile(3),
                        length_size: 4,
                        sequence_parameter_sets: vec![sps],
                        picture_parameter_sets: vec![pps],
                        ext: None,
                    },
                    btrt: None,
                    colr: None,
                    pasp: None,
                    taic: None,
                    fiel: None,
                    spatial: None,
                }
                .into()
            }
            VideoCodec::Vp8 => Vp08 {
                visual,
                vpcc: VpcC {
                    profile: 0,
                    level: 10,
                    bit_depth: 8,
                    chroma_subsampling: 1,
                    video_full_range_flag: false,
                    color_primaries: 1,
                    transfer_characteristics: 1,
                    matrix_coefficients: 1,
                    codec_initialization_data: Vec::new(),
                },
                btrt: None,
                colr: None,
                pasp: None,
                spatial: None,
            }
            .into(),
        };
        let trak = Trak {
            tkhd: Tkhd {
                track_id: VIDEO_TRACK,
                enabled: true,
                in_movie: true,
                width: (track.width.min(u16::MAX as u32) as u16).into(),
                height: (track.height.min(u16::MAX as u32) as u16).into(),
                ..Tkhd::default()
            },
            mdia: Mdia {
                mdhd: Mdhd {
                    timescale: VIDEO_TIMESCALE,
                    language: "und".into(),
                    ..Mdhd::default()
                },
                hdlr: Hdlr {
                    handler: b"vide".into(),
                    name: "StreamIt Studio video".into(),
                },
                minf: Minf {
                    vmhd: Some(Vmhd::default()),
                    dinf: dinf(),
                    stbl: stbl(entry),
                    ..Minf::default()
                },
            },
            ..Trak::default()
        };
        self.moov(Some(trak))
    }

    fn moov(&self, video: Option<Trak>) -> Result<Vec<u8>, RecordError> {
        let mut trak: Vec<Trak> = video.into_iter().collect();
        if let Some(a) = self.audio {
            trak.push(audio_trak(a));
        }
        let trex = trak
            .iter()
            .map(|t| Trex {
                track_id: t.tkhd.track_id,
                default_sample_description_index: 1,
                ..Trex::default()
            })
            .collect();
        let moov = Moov {
            mvhd: Mvhd {
                timescale: 1000,
                rate: 1.into(),
                volume: 1.into(),
                next_track_id: AUDIO_TRACK + 1,
                ..Mvhd::default()
            },
            mvex: Some(Mvex { mehd: None, trex }),
            trak,
            ..Moov::default()
        };
        let ftyp = Ftyp {
            major_brand: b"iso6".into(),
            minor_version: 0,
            compatible_brands: vec![b"iso6".into(), b"mp41".into(), b"dash".into()],
        };
        let mut out = Vec::new();
        ftyp.encode(&mut out)?;
        moov.encode(&mut out)?;
        Ok(out)
    }

    /// A `moof` + `mdat` with every sample whose duration is known.
    fn fragment(&mut self) -> Result<Vec<u8>, RecordError> {
        let tracks: Vec<Run> = [self.v.take(VIDEO_TRACK), self.a.take(AUDIO_TRACK)]
            .into_iter()
            .flatten()
            .filter(|r| !r.samples.is_empty())
            .collect();
        if tracks.is_empty() {
            return Ok(Vec::new());
        }
        self.sequence += 1;
        let mut moof = Moof {
            mfhd: Mfhd {
                sequence_number: self.sequence,
            },
            traf: tracks
                .iter()
                .map(|run| Traf {
                    tfhd: Tfhd {
                        track_id: run.track,
                        default_base_is_moof: true,
                        ..Tfhd::default()
                    },
                    tfdt: Some(Tfdt {
                        base_media_decode_time: run.first,
                    }),
                    trun: vec![Trun {
                        data_offset: Some(0),
                        samples: TrunSamples::Explicit(
                            run.samples
                                .iter()
                                .map(|(p, d)| TrunEntry {
                                    duration: Some(*d),
                                    size: Some(p.data.len() as u32),
                                    flags: Some(if p.sync { SYNC } else { NON_SYNC }),
                                    cts: None,
                                })
                                .collect(),
                        ),
                    }],
                    ..Traf::default()
                })
                .collect(),
        };
        // Offsets count from the moof's first byte; its size does not depend on them.
        let mut probe = Vec::new();
        moof.encode(&mut probe)?;
        let mut offset = probe.len() as u64 + 8;
        for (traf, run) in moof.traf.iter_mut().zip(&tracks) {
            traf.trun[0].data_offset = Some(i32::try_from(offset).unwrap_or(i32::MAX));
            offset += run
                .samples
                .iter()
                .map(|(p, _)| p.data.len() as u64)
                .sum::<u64>();
        }
        let payload = offset - probe.len() as u64;
        let mut out = Vec::with_capacity(offset as usize);
        moof.encode(&mut out)?;
        // mdat header by hand: the payload is moved in, not copied into a box value
        out.extend_from_slice(&u32::try_from(payload).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(b"mdat");
        for run in tracks {
            for (p, _) in run.samples {
                out.extend_from_slice(&p.data);
            }
        }
        Ok(out)
    }
}

fn dinf() -> Dinf {
    Dinf {
        dref: Dref {
            entries: vec![Url::default().into()],
        },
    }
}

fn stbl(entry: mp4_atom::Codec) -> Stbl {
    Stbl {
        stsd: Stsd {
            codecs: vec![entry],
        },
        stco: Some(Stco::default()),
        ..Stbl::default()
    }
}

fn audio_trak(a: AudioTrack) -> Trak {
    let entry = Opus {
        audio: Audio {
            data_reference_index: 1,
            channel_count: a.channels as u16,
            sample_size: 16,
            sample_rate: (AUDIO_TIMESCALE as u16).into(),
        },
        dops: Dops {
            output_channel_count: a.channels,
            pre_skip: a.pre_skip,
            input_sample_rate: AUDIO_TIMESCALE,
            output_gain: 0,
            channel_mapping: None,
        },
        btrt: None,
    };
    Trak {
        tkhd: Tkhd {
            track_id: AUDIO_TRACK,
            enabled: true,
            in_movie: true,
            alternate_group: 1,
            volume: 1.into(),
            ..Tkhd::default()
        },
        mdia: Mdia {
            mdhd: Mdhd {
                timescale: AUDIO_TIMESCALE,
                language: "und".into(),
                ..Mdhd::default()
            },
            hdlr: Hdlr {
                handler: b"soun".into(),
                name: "StreamIt Studio audio".into(),
            },
            minf: Minf {
                smhd: Some(Smhd::default()),
                dinf: dinf(),
                stbl: stbl(entry.into()),
                ..Minf::default()
            },
        },
        ..Trak::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp4_atom::{Any, DecodeMaybe};

    fn sample(ms: u64, keyframe: bool) -> Sample {
        Sample {
            data: Bytes::from(vec![ms as u8; 10]),
            pts: Duration::from_millis(ms),
            keyframe,
        }
    }

    fn vp8_and_opus() -> Muxer {
        Muxer::new(
            Some(VideoTrack {
                codec: VideoCodec::Vp8,
                width: 64,
                height: 36,
            }),
            Some(AudioTrack {
                channels: 1,
                pre_skip: 312,
            }),
        )
    }

    /// A track's part of a fragment: (track, tfdt, per-sample (duration, flags)).
    type Part = (u32, u64, Vec<(u32, u32)>);

    /// The fragments' parts in order.
    fn fragments(bytes: &[u8]) -> Vec<Part> {
        let mut buf = std::io::Cursor::new(bytes);
        let mut out = Vec::new();
        while let Ok(Some(atom)) = Any::decode_maybe(&mut buf) {
            if let Any::Moof(moof) = atom {
                for traf in moof.traf {
                    let samples = traf.trun[0]
                        .samples
                        .iter()
                        .map(|e| (e.duration.unwrap_or(0), e.flags.unwrap_or(0)))
                        .collect();
                    let tfdt = traf.tfdt.map_or(0, |t| t.base_media_decode_time);
                    out.push((traf.tfhd.track_id, tfdt, samples));
                }
            }
        }
        out
    }

    #[test]
    fn the_file_starts_at_the_first_key_frame_and_cuts_a_fragment_each_half_second() {
        let mut m = vp8_and_opus();
        let mut bytes = Vec::new();
        // before any key frame: nothing, and the encoder is asked for one
        bytes.extend(m.push_audio(sample(1000, true)).unwrap());
        bytes.extend(m.push_video(sample(1010, false)).unwrap());
        assert!(bytes.is_empty() && m.needs_keyframe());
        for i in 0..75u64 {
            let t = 1040 + i * 40;
            bytes.extend(m.push_video(sample(t, i % 25 == 0)).unwrap());
            bytes.extend(m.push_audio(sample(t + 5, true)).unwrap());
        }
        assert!(!m.needs_keyframe());
        bytes.extend(m.finish().unwrap());
        let f = fragments(&bytes);
        let video: Vec<_> = f.iter().filter(|t| t.0 == VIDEO_TRACK).collect();
        assert_eq!(video.len(), 6, "three seconds, a fragment each half second");
        assert_eq!(video[0].1, 0, "time zero is the first key frame");
        assert_eq!(video[0].2[0], (3600, SYNC));
        assert_eq!(video[0].2[1], (3600, NON_SYNC));
        let total: u32 = video.iter().flat_map(|t| t.2.iter().map(|s| s.0)).sum();
        assert_eq!(total, 75 * 3600, "every frame, 40 ms each");
        // each fragment begins where the last one ended
        let mut next = 0;
        for t in &video {
            assert_eq!(t.1, next);
            next += t.2.iter().map(|s| s.0 as u64).sum::<u64>();
        }
        let audio: Vec<_> = f.iter().filter(|t| t.0 == AUDIO_TRACK).collect();
        assert_eq!(audio[0].1, 240, "audio 5 ms after the key frame");
        assert_eq!(m.duration(), Duration::from_millis(74 * 40 + 5));
    }

    #[test]
    fn a_clock_stepping_back_never_makes_time_run_backwards() {
        let mut m = vp8_and_opus();
        let mut bytes = m.push_video(sample(100, true)).unwrap();
        bytes.extend(m.push_video(sample(90, false)).unwrap());
        bytes.extend(m.push_video(sample(140, false)).unwrap());
        bytes.extend(m.finish().unwrap());
        let f = fragments(&bytes);
        let durations: Vec<u32> = f[0].2.iter().map(|s| s.0).collect();
        assert_eq!(durations, vec![1, 3599, 3599]);
    }

    #[test]
    fn after_a_gap_the_video_waits_for_a_key_frame_and_counts_what_it_skips() {
        let mut m = vp8_and_opus();
        m.push_video(sample(0, true)).unwrap();
        m.gap();
        assert!(m.needs_keyframe());
        m.push_video(sample(40, false)).unwrap();
        m.push_video(sample(80, false)).unwrap();
        m.push_video(sample(120, true)).unwrap();
        assert_eq!(m.skipped(), 2);
        assert!(!m.needs_keyframe());
    }

    #[test]
    fn an_h264_key_frame_without_parameter_sets_is_refused() {
        let mut m = Muxer::new(
            Some(VideoTrack {
                codec: VideoCodec::H264,
                width: 64,
                height: 36,
            }),
            None,
        );
        let idr = Sample {
            data: Bytes::from_static(&[0, 0, 0, 1, 0x65, 1, 2]),
            pts: Duration::ZERO,
            keyframe: true,
        };
        assert!(matches!(
            m.push_video(idr),
            Err(RecordError::NoParameterSets)
        ));
    }
}
