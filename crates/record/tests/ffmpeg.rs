//! The muxer's files against a real reader: real openh264/libvpx/Opus output muxed in
//! memory, then probed and decoded by ffmpeg (installed by `scripts/install.sh`).

use std::path::Path;
use std::process::Command;

use streamit_media::encode::{OpusEncoder, VideoEncoderConfig, new_video_encoder};
use streamit_media::pattern::{generate_pattern, read_pattern_code_luma};
use streamit_media::{AudioFrame, AudioSamples, MediaTime, VideoCodec};
use streamit_record::{AudioTrack, Muxer, Sample, VideoTrack};

const W: u32 = 320;
const H: u32 = 180;

/// `secs` of 30 fps pattern and 20 ms Opus packets, muxed; returns the file's bytes as
/// written fragment by fragment, and where each fragment ended.
fn record(codec: VideoCodec, secs: u32, start_ms: u64) -> (Vec<u8>, Vec<usize>) {
    let mut enc = new_video_encoder(codec, VideoEncoderConfig::new(W, H, 30.0, 400_000))
        .expect("video encoder");
    let mut opus = OpusEncoder::new(1, 48_000).expect("opus");
    let track = VideoTrack {
        codec: match codec {
            VideoCodec::H264 => streamit_record::VideoCodec::H264,
            VideoCodec::Vp8 => streamit_record::VideoCodec::Vp8,
        },
        width: W,
        height: H,
    };
    let mut mux = Muxer::new(
        Some(track),
        Some(AudioTrack {
            channels: 1,
            pre_skip: 312,
        }),
    );
    let mut out = Vec::new();
    let mut ends = Vec::new();
    let mut append = |bytes: Vec<u8>, out: &mut Vec<u8>| {
        if !bytes.is_empty() {
            out.extend(bytes);
            ends.push(out.len());
        }
    };
    // audio first: packets before the first key frame are left out
    for ms in (0..secs as u64 * 1000).step_by(20) {
        let pts = MediaTime((start_ms + ms) * 1000);
        let frame = AudioFrame {
            sample_rate: 48_000,
            channels: 1,
            samples: AudioSamples::F32(vec![0.05; 960]),
            pts,
        };
        let packets = opus.push(&frame).expect("opus encode");
        if ms % 100 == 0 {
            let n = (ms / 100) as u32 * 3;
            for i in 0..3 {
                // capture jitter as a loaded machine has it: frame 50 comes 8 ms after 49
                let k = (n + i) as u64;
                let at = if k == 50 {
                    49 * 33_333 + 8_000
                } else {
                    k * 33_333
                };
                let vpts = MediaTime(start_ms * 1000 + at);
                let f = generate_pattern(W, H, n + i, vpts).expect("pattern");
                if let Some(v) = enc.encode(&f, n + i == 0).expect("encode") {
                    let s = Sample {
                        data: v.data,
                        pts: v.pts.as_duration(),
                        keyframe: v.keyframe,
                    };
                    append(mux.push_video(s).expect("mux video"), &mut out);
                }
            }
        }
        for p in packets {
            let s = Sample {
                data: p.data,
                pts: p.pts.as_duration(),
                keyframe: true,
            };
            append(mux.push_audio(s).expect("mux audio"), &mut out);
        }
    }
    append(mux.finish().expect("finish"), &mut out);
    (out, ends)
}

fn probe(path: &Path, entries: &str, stream: &str) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", stream])
        .args(["-show_entries", entries, "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs (scripts/install.sh installs ffmpeg)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// ffmpeg decoding the file's video to grey frames, logging at `level`.
fn decode_grey(path: &Path, level: &str) -> std::process::Output {
    Command::new("ffmpeg")
        .args(["-v", level, "-i"])
        .arg(path)
        // every decoded frame once: no frame-rate conversion (duplicates or drops), and
        // the file's own 1/90000 time base, so two frames closer than 1/30 s stay apart
        .args([
            "-map",
            "0:v:0",
            "-fps_mode",
            "passthrough",
            "-enc_time_base",
            "-1",
        ])
        .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .expect("ffmpeg runs")
}

/// Every frame ffmpeg decodes from the file, as its pattern frame number.
fn decoded_codes(path: &Path) -> Vec<Option<u32>> {
    let out = decode_grey(path, "error");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffmpeg decoded with errors: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .chunks_exact((W * H) as usize)
        .map(|y| read_pattern_code_luma(y, W as usize, W, H).map(|(n, _)| n))
        .collect()
}

fn check(codec: VideoCodec, name: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rec.mp4");
    // a media clock that is 7 s in when recording starts: the file still starts at zero
    let (bytes, ends) = record(codec, 4, 7_000);
    std::fs::write(&path, &bytes).expect("write");
    assert!(ends.len() >= 8, "a fragment each half second: {ends:?}");

    let v = probe(
        &path,
        "stream=codec_name,width,height,nb_read_frames",
        "v:0",
    );
    assert_eq!(v, format!("{name},{W},{H},120"), "video stream");
    let a = probe(&path, "stream=codec_name,sample_rate,nb_read_frames", "a:0");
    assert_eq!(a, "opus,48000,200", "audio stream");
    let d: f64 = probe(&path, "format=duration", "v:0")
        .parse()
        .expect("duration is a number");
    assert!((d - 4.0).abs() < 0.1, "duration {d} s");

    let codes = decoded_codes(&path);
    assert_eq!(codes.len(), 120);
    let read: Vec<u32> = codes.iter().flatten().copied().collect();
    assert_eq!(read, (0..120).collect::<Vec<_>>(), "every frame, in order");

    // cut after the third fragment, as a crash would leave it: still plays, ~1.5 s
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &bytes[..ends[3]]).expect("write");
    let frames: u32 = probe(&cut, "stream=nb_read_frames", "v:0")
        .parse()
        .expect("frame count");
    assert!(
        (40..=55).contains(&frames),
        "{frames} frames survive the cut"
    );
    assert!(decoded_codes(&cut).iter().all(Option::is_some));
}

#[test]
fn h264_and_opus_play_back_frame_for_frame() {
    check(VideoCodec::H264, "h264");
}

#[test]
fn vp8_and_opus_play_back_frame_for_frame() {
    check(VideoCodec::Vp8, "vp8");
}

#[test]
fn a_file_cut_mid_fragment_plays_up_to_the_last_whole_fragment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (bytes, ends) = record(VideoCodec::Vp8, 3, 0);
    let path = dir.path().join("torn.mp4");
    // a fragment half written when the power went
    let torn = ends[2] + (ends[3] - ends[2]) / 2;
    std::fs::write(&path, &bytes[..torn]).expect("write");
    let out = decode_grey(&path, "quiet");
    let frames = out.stdout.len() / (W * H) as usize;
    assert!(frames >= 25, "{frames} frames before the torn fragment");
}
