//! Encoders produce decodable output with good quality, and the pattern code survives.

use std::time::Duration;

use streamit_media::encode::{
    OpusDecoder, OpusEncoder, VideoEncoder, new_video_decoder, new_video_encoder,
};
use streamit_media::frame::psnr_y;
use streamit_media::pattern::generate_pattern;
use streamit_media::{
    AUDIO_RATE, AudioFrame, AudioSamples, Layer, MediaTime, Quality, VideoCodec,
    VideoEncoderConfig, VideoFrame, read_pattern_code,
};

const FPS: f32 = 30.0;

/// Encodes `n` pattern frames at `w×h`/`bps`, decodes them, returns (min PSNR, frames decoded).
fn round_trip(
    codec: VideoCodec,
    src_w: u32,
    src_h: u32,
    w: u32,
    h: u32,
    bps: u32,
    n: u32,
) -> (f64, usize) {
    let mut enc = new_video_encoder(codec, VideoEncoderConfig::new(w, h, FPS, bps)).unwrap();
    let mut dec = new_video_decoder(codec).unwrap();
    let mut min_psnr = f64::INFINITY;
    let mut decoded = 0;
    let mut bytes = 0usize;
    for i in 0..n {
        let pts = MediaTime::from_micros(1_000_000 + i as u64 * 33_333);
        let src = generate_pattern(src_w, src_h, i, pts).unwrap();
        let reference = streamit_media::convert::scale_i420(&src, w, h).unwrap();
        let Some(pkt) = enc.encode(&src, i == 5).unwrap() else {
            continue;
        };
        assert_eq!((pkt.width, pkt.height, pkt.pts), (w, h, pts));
        if i == 0 || i == 5 {
            assert!(pkt.keyframe, "{codec:?} frame {i} should be a key frame");
        }
        if codec == VideoCodec::H264 {
            assert_eq!(&pkt.data[..4], &[0, 0, 0, 1], "Annex-B start code");
        }
        bytes += pkt.data.len();
        let out = dec
            .decode(&pkt.data, pkt.pts)
            .unwrap()
            .expect("a decoded picture per packet");
        decoded += 1;
        assert_eq!((out.width, out.height), (w, h));
        let p = psnr_y(&reference, &out).unwrap();
        min_psnr = min_psnr.min(p);
        assert_eq!(
            read_pattern_code(&out),
            Some((i, pts.as_micros())),
            "{codec:?} {w}x{h} frame {i}: code must read back exactly"
        );
    }
    let kbps = bytes as f64 * 8.0 * FPS as f64 / n as f64 / 1000.0;
    println!(
        "{codec:?} {w}x{h} @ {} kbps: min PSNR-Y {min_psnr:.2} dB, actual {kbps:.0} kbps",
        bps / 1000
    );
    (min_psnr, decoded)
}

#[test]
fn h264_720p_2mbps_psnr_and_code() {
    let (psnr, n) = round_trip(VideoCodec::H264, 1280, 720, 1280, 720, 2_000_000, 12);
    assert_eq!(n, 12);
    assert!(psnr >= 35.0, "PSNR {psnr}");
}

#[test]
fn vp8_720p_2mbps_psnr_and_code() {
    let (psnr, n) = round_trip(VideoCodec::Vp8, 1280, 720, 1280, 720, 2_000_000, 12);
    assert_eq!(n, 12);
    assert!(psnr >= 35.0, "PSNR {psnr}");
}

#[test]
fn simulcast_layers_keep_the_code() {
    for codec in [VideoCodec::H264, VideoCodec::Vp8] {
        for layer in Layer::ladder(1280, 720)
            .into_iter()
            .filter(|l| l.quality != Quality::High)
        {
            let (_, n) = round_trip(
                codec,
                1280,
                720,
                layer.width,
                layer.height,
                layer.bitrate_bps,
                10,
            );
            assert_eq!(n, 10);
        }
    }
}

/// Encodes 640x360 noise in stretches of 30 frames, setting `rates[k]` before stretch k;
/// returns the bytes of each stretch's last 20 frames (the first 10: rate control settling,
/// the first frame's key frame).
fn bytes_per_stretch(enc: &mut dyn VideoEncoder, rates: &[Option<u32>]) -> Vec<usize> {
    let mut sizes = vec![0usize; rates.len()];
    for i in 0..30 * rates.len() as u32 {
        let stretch = (i / 30) as usize;
        if i % 30 == 0
            && let Some(bps) = rates[stretch]
        {
            enc.set_bitrate(bps).unwrap();
            assert_eq!(enc.config().bitrate_bps, bps);
        }
        let f = noisy_frame(640, 360, i, MediaTime::from_micros(i as u64 * 33_333));
        if let Some(p) = enc.encode(&f, false).unwrap()
            && i % 30 >= 10
        {
            sizes[stretch] += p.data.len();
        }
    }
    sizes
}

#[test]
fn runtime_bitrate_change_takes_effect() {
    for codec in [VideoCodec::H264, VideoCodec::Vp8] {
        let mut enc =
            new_video_encoder(codec, VideoEncoderConfig::new(640, 360, FPS, 1_500_000)).unwrap();
        let sizes = bytes_per_stretch(enc.as_mut(), &[None, Some(150_000)]);
        println!(
            "{codec:?}: bytes at 1.5 Mbps {} / at 150 kbps {}",
            sizes[0], sizes[1]
        );
        assert!(sizes[1] * 3 < sizes[0], "{codec:?}: {sizes:?}");
    }
}

/// The session sets the estimate's bitrate as soon as it has one, which can be before the
/// first frame; openh264 refused that (code 4, not yet initialised) and publish failed.
#[test]
fn a_bitrate_set_before_the_first_frame_governs_what_follows() {
    for codec in [VideoCodec::H264, VideoCodec::Vp8] {
        let mut sizes = [0usize; 2];
        for (slot, early) in [(0, 1_500_000), (1, 150_000)] {
            let mut enc =
                new_video_encoder(codec, VideoEncoderConfig::new(640, 360, FPS, 1_500_000))
                    .unwrap();
            enc.set_bitrate(early).unwrap();
            assert_eq!(enc.config().bitrate_bps, early);
            for i in 0..40u32 {
                let f = noisy_frame(640, 360, i, MediaTime::from_micros(i as u64 * 33_333));
                if let Some(p) = enc.encode(&f, false).unwrap()
                    && i >= 10
                {
                    sizes[slot] += p.data.len();
                }
            }
        }
        println!(
            "{codec:?}: bytes in frames 10-39 at 1.5 Mbps {} / at 150 kbps set early {}",
            sizes[0], sizes[1]
        );
        assert!(sizes[1] * 3 < sizes[0], "{codec:?}: {sizes:?}");
    }
}

/// The estimate climbs after a cap lifts or a stream starts low: a bitrate raised above
/// the one the encoder started at must take effect. openh264 kept its layer's ceiling at
/// the start value and refused every raise above it ("code 1"), so a 180p stream scaled
/// down on a capped link stayed under 154 kbit/s with 240 allowed.
#[test]
fn a_bitrate_raised_above_the_start_takes_effect() {
    for codec in [VideoCodec::H264, VideoCodec::Vp8] {
        let mut enc =
            new_video_encoder(codec, VideoEncoderConfig::new(640, 360, FPS, 1_500_000)).unwrap();
        // Set before the first frame (the encoder is built again at it), then raised twice:
        // back to where it was built, and above that.
        let rates = [Some(150_000), Some(1_500_000), Some(3_000_000)];
        let sizes = bytes_per_stretch(enc.as_mut(), &rates);
        println!(
            "{codec:?}: bytes in the last 20 frames at 150 kbit/s, 1.5 and 3 Mbit/s: {sizes:?}"
        );
        assert!(sizes[0] * 3 < sizes[1], "{codec:?}: {sizes:?}");
        assert!(sizes[1] * 5 < sizes[2] * 4, "{codec:?}: {sizes:?}");
    }
}

/// The pattern with a moving diagonal luma texture (harder to code than the flat bars).
fn textured(w: u32, h: u32, n: u32) -> VideoFrame {
    let base = generate_pattern(w, h, n, MediaTime(n as u64 * 33_333)).unwrap();
    let mut buf = base.data().to_vec();
    // smooth diagonal gradient texture moving with the frame
    for y in 0..h as usize {
        for x in 0..w as usize {
            let i = y * w as usize + x;
            let t = ((x + y + n as usize * 3) % 64) as u8 / 4;
            buf[i] = buf[i].saturating_add(t);
        }
    }
    VideoFrame::from_i420(w, h, buf, base.pts).unwrap()
}

#[test]
fn textured_720p_2mbps_psnr_and_code() {
    for codec in [VideoCodec::H264, VideoCodec::Vp8] {
        let mut enc =
            new_video_encoder(codec, VideoEncoderConfig::new(1280, 720, 30.0, 2_000_000)).unwrap();
        let mut dec = new_video_decoder(codec).unwrap();
        let mut min = f64::INFINITY;
        let mut bytes = 0;
        for n in 0..12 {
            let f = textured(1280, 720, n);
            let p = enc.encode(&f, false).unwrap().unwrap();
            bytes += p.data.len();
            let d = dec.decode(&p.data, p.pts).unwrap().unwrap();
            min = min.min(psnr_y(&f, &d).unwrap());
            assert_eq!(read_pattern_code(&d), Some((n, f.pts.as_micros())));
        }
        println!(
            "{codec:?} textured 720p @ 2 Mbps: min PSNR-Y {min:.2} dB, {} kbps",
            bytes * 8 * 30 / 12 / 1000
        );
        assert!(min >= 35.0, "{codec:?}: {min}");
    }
}

/// Hard-to-code content (the pattern plus moving luma noise), so the rate control has to work.
fn noisy_frame(w: u32, h: u32, seed: u32, pts: MediaTime) -> streamit_media::VideoFrame {
    let base = generate_pattern(w, h, seed, pts).unwrap();
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let mut buf = base.data().to_vec();
    for p in &mut buf[..(w * h) as usize] {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *p = p.saturating_add((x >> 28) as u8 * 2);
    }
    streamit_media::VideoFrame::from_i420(w, h, buf, pts).unwrap()
}

fn tone(freq: f64, amp: f64, channels: u16, start: usize, n: usize) -> Vec<i16> {
    (start..start + n)
        .flat_map(|i| {
            let s = (amp
                * (2.0 * std::f64::consts::PI * freq * i as f64 / AUDIO_RATE as f64).sin()
                * 32767.0) as i16;
            std::iter::repeat_n(s, channels as usize)
        })
        .collect()
}

/// Frequency by zero crossings over a mono signal.
fn zero_cross_freq(x: &[f32], rate: f64) -> f64 {
    let crossings = x.windows(2).filter(|w| w[0] <= 0.0 && w[1] > 0.0).count();
    crossings as f64 * rate / x.len() as f64
}

#[test]
fn opus_encode_decode_keeps_tone_and_timing() {
    for channels in [1u16, 2] {
        let mut enc = OpusEncoder::new(channels, 64_000).unwrap();
        let mut dec = OpusDecoder::new(channels).unwrap();
        let mut packets = Vec::new();
        // 10 ms frames in, 20 ms packets out
        for k in 0..50usize {
            let frame = AudioFrame {
                sample_rate: AUDIO_RATE,
                channels,
                samples: AudioSamples::I16(tone(1000.0, 0.5, channels, k * 480, 480)),
                pts: MediaTime::from_micros(k as u64 * 10_000),
            };
            packets.extend(enc.push(&frame).unwrap());
        }
        assert_eq!(packets.len(), 25);
        for (i, p) in packets.iter().enumerate() {
            assert_eq!(p.pts, MediaTime::from_micros(i as u64 * 20_000));
            assert_eq!(p.duration_us, 20_000);
        }
        let mut pcm = Vec::new();
        for p in &packets {
            let f = dec.decode(&p.data, p.pts).unwrap();
            assert_eq!(f.frames(), 960);
            pcm.extend(
                f.samples
                    .to_f32()
                    .iter()
                    .step_by(channels as usize)
                    .copied(),
            );
        }
        let tail = &pcm[4800..];
        let freq = zero_cross_freq(tail, AUDIO_RATE as f64);
        let level = streamit_media::AudioLevel::measure(tail);
        println!("opus x{channels}: {freq:.1} Hz, rms {:.3}", level.rms);
        assert!((freq - 1000.0).abs() < 10.0, "{freq}");
        assert!((level.rms - 0.3536).abs() < 0.05, "{}", level.rms);
    }
    let _ = Duration::ZERO;
}

/// On a narrow uplink the packets get longer (fewer headers); the audio stays the same.
#[test]
fn opus_packets_of_60_ms_keep_tone_and_timing() {
    let mut enc = OpusEncoder::new(1, 16_000).unwrap();
    let mut dec = OpusDecoder::new(1).unwrap();
    let mut packets = Vec::new();
    for k in 0..100usize {
        // 20 ms packets for the first 200 ms, then 60 ms
        if k == 20 {
            enc.set_packet_ms(60);
        }
        let frame = AudioFrame {
            sample_rate: AUDIO_RATE,
            channels: 1,
            samples: AudioSamples::I16(tone(1000.0, 0.5, 1, k * 480, 480)),
            pts: MediaTime::from_micros(k as u64 * 10_000),
        };
        packets.extend(enc.push(&frame).unwrap());
    }
    assert_eq!(enc.packet_ms(), 60);
    let lengths: Vec<u64> = packets.iter().map(|p| p.duration_us / 1000).collect();
    assert_eq!(lengths, [&[20; 10][..], &[60; 13][..]].concat());
    let mut pcm = Vec::new();
    let mut t = 0;
    for p in &packets {
        assert_eq!(
            p.pts,
            MediaTime::from_micros(t),
            "packets follow each other"
        );
        t += p.duration_us;
        let f = dec.decode(&p.data, p.pts).unwrap();
        assert_eq!(f.frames() as u64, p.duration_us * 48 / 1000);
        pcm.extend(f.samples.to_f32());
    }
    let tail = &pcm[24_000..];
    let freq = zero_cross_freq(tail, AUDIO_RATE as f64);
    let level = streamit_media::AudioLevel::measure(tail);
    assert!((freq - 1000.0).abs() < 10.0, "{freq}");
    assert!((level.rms - 0.3536).abs() < 0.05, "{}", level.rms);
}
