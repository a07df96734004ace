//! One encoder for every simulcast layer of a source, driven once per source frame.
//!
//! All layers of a frame are encoded in the same call from one downscale chain (each layer's
//! picture is scaled from the next larger one), so they carry the same capture time and
//! the same frames: under CPU pressure the session lowers the frame rate of the whole
//! ladder instead of layers losing frames at random. VP8 uses libvpx's multi-resolution
//! encoder ([`Vp8Simulcast`]), which shares motion analysis between layers; H.264 runs one
//! openh264 encoder per layer in sequence (openh264 has no simulcast mode that shares
//! analysis).

use super::h264::H264Encoder;
use super::vp8::Vp8Simulcast;
use super::{
    ContentHint, EncodedVideo, Layer, Quality, VideoCodec, VideoEncoder, VideoEncoderConfig,
};
use crate::convert::scale_i420;
use crate::error::{Result, enc_err};
use crate::frame::VideoFrame;

/// One encoded frame of one layer.
#[derive(Clone, Debug)]
pub struct LayerFrame {
    /// which layer
    pub quality: Quality,
    /// the compressed frame
    pub video: EncodedVideo,
}

enum Backend {
    Vp8(Vp8Simulcast),
    H264(Vec<H264Encoder>),
}

/// Encodes all layers of a simulcast ladder (or a single layer) from one source frame.
pub struct SimulcastEncoder {
    codec: VideoCodec,
    /// low → high
    layers: Vec<Layer>,
    backend: Backend,
    active: Vec<bool>,
    /// the last picture of each layer, for paused layers libvpx still wants a picture for
    pictures: Vec<Option<VideoFrame>>,
    fps: f32,
    content: ContentHint,
    /// whether a frame went in (libvpx says quantiser 0 before)
    encoded: bool,
}

impl std::fmt::Debug for SimulcastEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulcastEncoder")
            .field("codec", &self.codec)
            .field("layers", &self.layers)
            .field("active", &self.active)
            .field("fps", &self.fps)
            .finish()
    }
}

/// Seconds between key frames nobody asked for. The SFU asks (PLI) whenever a viewer joins,
/// switches layer or loses the picture, so periodic key frames are only a safety net; at
/// 720p one is 20–40 KB, and every 2 s (the old period) that alone is ~100 kbit/s, which on a
/// 300 kbit/s uplink overflows the bottleneck queue and stalls the picture. libwebrtc sends
/// none at all.
pub const KEYFRAME_PERIOD_SECS: f32 = 10.0;

impl SimulcastEncoder {
    /// Creates encoders for `layers` (low → high, each no larger than the next) at about
    /// `fps`, with a key frame at least every [`KEYFRAME_PERIOD_SECS`].
    pub fn new(codec: VideoCodec, layers: &[Layer], fps: f32) -> Result<Self> {
        Self::with_content(codec, layers, fps, ContentHint::Motion)
    }

    /// As [`SimulcastEncoder::new`], tuned for `content`.
    pub fn with_content(
        codec: VideoCodec,
        layers: &[Layer],
        fps: f32,
        content: ContentHint,
    ) -> Result<Self> {
        if layers.is_empty() {
            return Err(enc_err(codec_name(codec), "no layers to encode"));
        }
        let fps = fps.max(1.0);
        let keyframe_interval = (fps * KEYFRAME_PERIOD_SECS).round() as u32;
        let backend = match codec {
            VideoCodec::Vp8 => {
                let spec: Vec<(u32, u32, u32)> = layers
                    .iter()
                    .map(|l| (l.width, l.height, l.bitrate_bps))
                    .collect();
                Backend::Vp8(Vp8Simulcast::new(&spec, fps, keyframe_interval, content)?)
            }
            VideoCodec::H264 => Backend::H264(
                layers
                    .iter()
                    .map(|l| {
                        let mut cfg =
                            VideoEncoderConfig::new(l.width, l.height, fps, l.bitrate_bps);
                        cfg.keyframe_interval = keyframe_interval;
                        cfg.content = content;
                        H264Encoder::new(cfg)
                    })
                    .collect::<Result<_>>()?,
            ),
        };
        Ok(SimulcastEncoder {
            codec,
            layers: layers.to_vec(),
            backend,
            active: vec![true; layers.len()],
            pictures: vec![None; layers.len()],
            fps,
            content,
            encoded: false,
        })
    }

    /// The codec.
    pub fn codec(&self) -> VideoCodec {
        self.codec
    }

    /// What it is tuned for.
    pub fn content(&self) -> ContentHint {
        self.content
    }

    /// The layers, low → high.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The frame rate the rate control plans for.
    pub fn frame_rate(&self) -> f32 {
        self.fps
    }

    /// Whether layer `i` (0 = lowest) is encoded.
    pub fn is_active(&self, i: usize) -> bool {
        self.active.get(i).copied().unwrap_or(false)
    }

    /// Sets the target bitrate of layer `i`.
    pub fn set_bitrate(&mut self, i: usize, bps: u32) -> Result<()> {
        match &mut self.backend {
            Backend::Vp8(v) => v.set_bitrate(i, bps),
            Backend::H264(encs) => match encs.get_mut(i) {
                Some(e) if e.config().bitrate_bps != bps => e.set_bitrate(bps),
                Some(_) => Ok(()),
                None => Err(enc_err("h264", format!("no layer {i}"))),
            },
        }
    }

    /// Pauses or resumes layer `i` (dynacast: nobody watches it). Ask for a key frame of
    /// the layer when it resumes.
    pub fn set_active(&mut self, i: usize, on: bool) -> Result<()> {
        if i >= self.layers.len() {
            return Err(enc_err(codec_name(self.codec), format!("no layer {i}")));
        }
        if let Backend::Vp8(v) = &mut self.backend {
            v.set_active(i, on)?;
        }
        self.active[i] = on;
        Ok(())
    }

    /// Tells the rate control the frame rate the encoder now gets.
    pub fn set_frame_rate(&mut self, fps: f32) -> Result<()> {
        let fps = fps.max(1.0);
        if (fps - self.fps).abs() < 0.01 {
            return Ok(());
        }
        match &mut self.backend {
            Backend::Vp8(v) => v.set_frame_rate(fps),
            Backend::H264(encs) => {
                for e in encs {
                    e.set_frame_rate(fps)?;
                }
            }
        }
        self.fps = fps;
        Ok(())
    }

    /// The quantiser of layer `i`'s last frame, in the codec's own scale; `None` before
    /// one was encoded or when the codec cannot say.
    pub fn last_qp(&mut self, i: usize) -> Option<u32> {
        if !self.encoded {
            return None;
        }
        match &mut self.backend {
            Backend::Vp8(v) => v.last_qp(i),
            Backend::H264(encs) => encs.get_mut(i)?.last_qp(),
        }
    }

    /// Encodes `frame` into every active layer; `keyframe[i]` forces a key frame on layer
    /// `i` (missing entries: no). Returns the layers' frames, low → high; a layer whose
    /// rate control skipped the frame is missing.
    pub fn encode(&mut self, frame: &VideoFrame, keyframe: &[bool]) -> Result<Vec<LayerFrame>> {
        let n = self.layers.len();
        let pictures = self.pictures(frame)?;
        let key = |i: usize| keyframe.get(i).copied().unwrap_or(false);
        let mut out = Vec::with_capacity(n);
        self.encoded = true;
        match &mut self.backend {
            Backend::Vp8(v) => {
                let keys: Vec<bool> = (0..n).map(key).collect();
                for (i, video) in v.encode(&pictures, &keys)?.into_iter().enumerate() {
                    if let Some(video) = video {
                        out.push(LayerFrame {
                            quality: self.layers[i].quality,
                            video,
                        });
                    }
                }
            }
            Backend::H264(encs) => {
                for (i, enc) in encs.iter_mut().enumerate() {
                    if !self.active[i] {
                        continue;
                    }
                    if let Some(video) = enc.encode(&pictures[i], key(i))? {
                        out.push(LayerFrame {
                            quality: self.layers[i].quality,
                            video,
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    /// One picture per layer, low → high: the top one is the frame (scaled if the source
    /// delivers another size), each lower one scaled from the next larger one. A paused
    /// layer reuses its last picture (libvpx wants one but does not read it).
    fn pictures(&mut self, frame: &VideoFrame) -> Result<Vec<VideoFrame>> {
        let n = self.layers.len();
        let mut out: Vec<Option<VideoFrame>> = vec![None; n];
        let top = &self.layers[n - 1];
        let mut above = scale_i420(frame, top.width, top.height)?;
        out[n - 1] = Some(above.clone());
        for i in (0..n - 1).rev() {
            let l = &self.layers[i];
            let reuse = (!self.active[i])
                .then(|| self.pictures[i].as_ref().map(|p| p.with_pts(frame.pts)))
                .flatten();
            let pic = match reuse {
                Some(p) => p,
                None => scale_i420(&above, l.width, l.height)?,
            };
            above = pic.clone();
            out[i] = Some(pic);
        }
        let out: Vec<VideoFrame> = out.into_iter().flatten().collect();
        for (slot, pic) in self.pictures.iter_mut().zip(&out) {
            *slot = Some(pic.clone());
        }
        Ok(out)
    }
}

fn codec_name(codec: VideoCodec) -> &'static str {
    match codec {
        VideoCodec::H264 => "h264",
        VideoCodec::Vp8 => "vp8",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::MediaTime;
    use crate::encode::new_video_decoder;
    use crate::frame::psnr_y;
    use crate::pattern::generate_pattern;

    fn encode_ladder(codec: VideoCodec) {
        let layers = Layer::ladder(1280, 720);
        let mut enc = SimulcastEncoder::new(codec, &layers, 30.0).unwrap();
        let mut decoders: Vec<_> = (0..3).map(|_| new_video_decoder(codec).unwrap()).collect();
        let mut got = [0usize; 3];
        let mut keys = [0usize; 3];
        let mut last_psnr = [0.0f64; 3];
        for n in 0..45u32 {
            let pts = MediaTime::from_micros(n as u64 * 33_333);
            let frame = generate_pattern(1280, 720, n, pts).unwrap();
            // pause the medium layer for frames 15..30, ask for a key frame on resume
            if n == 15 {
                enc.set_active(1, false).unwrap();
            }
            let resume = n == 30;
            if resume {
                enc.set_active(1, true).unwrap();
            }
            let out = enc.encode(&frame, &[false, resume, false]).unwrap();
            for lf in out {
                let i = layers.iter().position(|l| l.quality == lf.quality).unwrap();
                assert_eq!(lf.video.pts, pts, "every layer carries the frame's time");
                assert_eq!(
                    (lf.video.width, lf.video.height),
                    (layers[i].width, layers[i].height)
                );
                got[i] += 1;
                keys[i] += lf.video.keyframe as usize;
                if let Some(pic) = decoders[i].decode(&lf.video.data, pts).unwrap() {
                    let src = scale_i420(&frame, layers[i].width, layers[i].height).unwrap();
                    last_psnr[i] = psnr_y(&pic, &src).unwrap();
                }
            }
        }
        assert_eq!(got[0], 45, "low layer: every frame");
        assert_eq!(got[2], 45, "high layer: every frame");
        assert_eq!(got[1], 30, "medium layer: paused for 15 frames");
        assert_eq!(
            keys[1], 2,
            "medium: first frame and the resume are key frames"
        );
        assert_eq!(keys[2], 1, "high: only the first frame is a key frame");
        for (i, p) in last_psnr.iter().enumerate() {
            assert!(*p > 25.0, "layer {i} decodes to the source: PSNR {p:.1} dB");
        }
    }

    #[test]
    fn vp8_multi_resolution_encodes_every_layer_of_every_frame() {
        encode_ladder(VideoCodec::Vp8);
    }

    #[test]
    fn h264_layers_encode_every_layer_of_every_frame() {
        encode_ladder(VideoCodec::H264);
    }

    #[test]
    fn vp8_single_layer_and_bad_input() {
        let layers = Layer::ladder(320, 180);
        let mut enc = SimulcastEncoder::new(VideoCodec::Vp8, &layers, 30.0).unwrap();
        let f = generate_pattern(320, 180, 0, MediaTime::ZERO).unwrap();
        let out = enc.encode(&f, &[]).unwrap();
        assert_eq!(out.len(), 1);
        assert!(out[0].video.keyframe);
        assert!(enc.set_bitrate(3, 100_000).is_err());
        assert!(SimulcastEncoder::new(VideoCodec::Vp8, &[], 30.0).is_err());
        let mut wrong = Layer::ladder(1280, 720);
        wrong.reverse();
        assert!(SimulcastEncoder::new(VideoCodec::Vp8, &wrong, 30.0).is_err());
    }

    /// Bytes after the first (key) frame and the last picture's PSNR, for 45 frames of a
    /// still picture (a shared document) at `content`, one 1280x720 layer at 1 Mbit/s.
    fn still_screen(codec: VideoCodec, content: ContentHint) -> (usize, f64) {
        let layer = Layer {
            bitrate_bps: 1_000_000,
            ..Layer::ladder(1280, 720)[2]
        };
        let mut enc = SimulcastEncoder::with_content(codec, &[layer], 15.0, content).unwrap();
        assert_eq!(enc.content(), content);
        let mut dec = new_video_decoder(codec).unwrap();
        let (mut bytes, mut psnr) = (0, 0.0);
        for n in 0..45u32 {
            let pts = MediaTime::from_micros(n as u64 * 66_667);
            let frame = generate_pattern(1280, 720, 7, pts).unwrap();
            for lf in enc.encode(&frame, &[false]).unwrap() {
                if n > 0 {
                    bytes += lf.video.data.len();
                }
                if let Some(pic) = dec.decode(&lf.video.data, pts).unwrap() {
                    psnr = psnr_y(&pic, &frame).unwrap();
                }
            }
        }
        (bytes, psnr)
    }

    #[test]
    fn screen_content_spends_little_on_a_still_screen_and_keeps_it_sharp() {
        for codec in [VideoCodec::H264, VideoCodec::Vp8] {
            let (motion_bytes, motion_psnr) = still_screen(codec, ContentHint::Motion);
            let (detail_bytes, detail_psnr) = still_screen(codec, ContentHint::Detail);
            println!(
                "{codec:?} still screen, 44 frames after the key frame: motion {motion_bytes} B \
                 PSNR {motion_psnr:.1} dB, detail {detail_bytes} B PSNR {detail_psnr:.1} dB"
            );
            // Measured (2-core machine): H.264 7730 → 4937 B, VP8 65399 → 43581 B; PSNR
            // 56–64 dB either way.
            assert!(
                detail_bytes * 10 < motion_bytes * 9,
                "{codec:?}: screen mode spent {detail_bytes} B on a still screen, camera mode \
                 {motion_bytes} B"
            );
            assert!(
                detail_psnr > 45.0,
                "{codec:?}: the still screen decodes at {detail_psnr:.1} dB"
            );
        }
    }

    /// The quantiser after 30 frames of the pattern at `w`x`h` and `bps`, one layer.
    fn qp_after_a_second(codec: VideoCodec, w: u32, h: u32, bps: u32) -> u32 {
        let layer = Layer {
            width: w,
            height: h,
            bitrate_bps: bps,
            ..Layer::ladder(w, h)[0]
        };
        let mut enc = SimulcastEncoder::new(codec, &[layer], 30.0).unwrap();
        assert_eq!(enc.last_qp(0), None, "no frame yet");
        for n in 0..30u32 {
            let pts = MediaTime::from_micros(n as u64 * 33_333);
            enc.encode(&generate_pattern(w, h, n, pts).unwrap(), &[false])
                .unwrap();
        }
        enc.last_qp(0).expect("a quantiser after 30 frames")
    }

    #[test]
    fn the_quantiser_says_whether_a_size_has_bits_to_spare() {
        for codec in [VideoCodec::H264, VideoCodec::Vp8] {
            let roomy = qp_after_a_second(codec, 320, 180, 400_000);
            let starved = qp_after_a_second(codec, 1280, 720, 60_000);
            assert!(
                roomy < codec.low_qp() && starved > codec.low_qp(),
                "{codec:?}: 180p at 400 kbit/s QP {roomy}, 720p at 60 kbit/s QP {starved} \
                 (low below {})",
                codec.low_qp()
            );
        }
    }
}
