//! Raw frame types: I420 video and interleaved PCM audio.

use bytes::Bytes;

use crate::clock::MediaTime;
use crate::error::{MediaError, Result};

/// A raw video frame in I420 (YUV 4:2:0 planar, BT.601 limited range), tightly packed:
/// the Y plane (`width*height` bytes, stride `width`), then U and V
/// (`(width/2)*(height/2)` bytes each, stride `width/2`).
///
/// The pixel buffer is a [`Bytes`] (reference counted), so cloning a frame — for the preview tap,
/// for several simulcast layers — never copies pixels. Width and height are even.
#[derive(Clone, Debug)]
pub struct VideoFrame {
    /// width in pixels (even)
    pub width: u32,
    /// height in pixels (even)
    pub height: u32,
    /// capture time on the session's [`crate::MediaClock`]
    pub pts: MediaTime,
    data: Bytes,
}

/// Size in bytes of a packed I420 frame.
pub const fn i420_len(width: u32, height: u32) -> usize {
    let (w, h) = (width as usize, height as usize);
    w * h + 2 * (w / 2) * (h / 2)
}

impl VideoFrame {
    /// Wraps a packed I420 buffer (see the type's layout). Errors on odd sizes or a wrong length.
    pub fn from_i420(
        width: u32,
        height: u32,
        data: impl Into<Bytes>,
        pts: MediaTime,
    ) -> Result<Self> {
        let data = data.into();
        if width == 0 || height == 0 || !width.is_multiple_of(2) || !height.is_multiple_of(2) {
            return Err(MediaError::Geometry(format!(
                "I420 frames need even, non-zero sizes, got {width}x{height}"
            )));
        }
        if data.len() != i420_len(width, height) {
            return Err(MediaError::Geometry(format!(
                "I420 {width}x{height} needs {} bytes, got {}",
                i420_len(width, height),
                data.len()
            )));
        }
        Ok(VideoFrame {
            width,
            height,
            pts,
            data,
        })
    }

    /// Copies three strided planes into a packed frame.
    #[allow(clippy::too_many_arguments)]
    pub fn from_planes(
        width: u32,
        height: u32,
        y: &[u8],
        y_stride: usize,
        u: &[u8],
        u_stride: usize,
        v: &[u8],
        v_stride: usize,
        pts: MediaTime,
    ) -> Result<Self> {
        let (w, h) = (width as usize, height as usize);
        let (cw, ch) = (w / 2, h / 2);
        let mut out = Vec::with_capacity(i420_len(width, height));
        let copy =
            |out: &mut Vec<u8>, p: &[u8], stride: usize, pw: usize, ph: usize| -> Result<()> {
                for r in 0..ph {
                    let row = p.get(r * stride..r * stride + pw).ok_or_else(|| {
                        MediaError::Geometry("plane shorter than its stride says".into())
                    })?;
                    out.extend_from_slice(row);
                }
                Ok(())
            };
        copy(&mut out, y, y_stride, w, h)?;
        copy(&mut out, u, u_stride, cw, ch)?;
        copy(&mut out, v, v_stride, cw, ch)?;
        Self::from_i420(width, height, out, pts)
    }

    /// A frame of one colour.
    pub fn solid(width: u32, height: u32, y: u8, u: u8, v: u8, pts: MediaTime) -> Result<Self> {
        let ylen = width as usize * height as usize;
        let clen = (width as usize / 2) * (height as usize / 2);
        let mut buf = vec![y; ylen + 2 * clen];
        buf[ylen..ylen + clen].fill(u);
        buf[ylen + clen..].fill(v);
        Self::from_i420(width, height, buf, pts)
    }

    /// The whole packed buffer (shared, no copy).
    pub fn data(&self) -> &Bytes {
        &self.data
    }
    /// Luma plane, stride [`VideoFrame::y_stride`].
    pub fn y(&self) -> &[u8] {
        &self.data[..self.width as usize * self.height as usize]
    }
    /// Cb plane, stride [`VideoFrame::uv_stride`].
    pub fn u(&self) -> &[u8] {
        let ylen = self.width as usize * self.height as usize;
        &self.data[ylen..ylen + self.chroma_len()]
    }
    /// Cr plane, stride [`VideoFrame::uv_stride`].
    pub fn v(&self) -> &[u8] {
        let ylen = self.width as usize * self.height as usize;
        &self.data[ylen + self.chroma_len()..]
    }
    /// Luma stride (= width).
    pub fn y_stride(&self) -> usize {
        self.width as usize
    }
    /// Chroma stride (= width / 2).
    pub fn uv_stride(&self) -> usize {
        self.width as usize / 2
    }
    fn chroma_len(&self) -> usize {
        (self.width as usize / 2) * (self.height as usize / 2)
    }
    /// The same pixels with another timestamp (no copy).
    pub fn with_pts(&self, pts: MediaTime) -> Self {
        VideoFrame {
            pts,
            ..self.clone()
        }
    }
}

impl openh264::formats::YUVSource for VideoFrame {
    fn dimensions(&self) -> (usize, usize) {
        (self.width as usize, self.height as usize)
    }
    fn strides(&self) -> (usize, usize, usize) {
        (self.y_stride(), self.uv_stride(), self.uv_stride())
    }
    fn y(&self) -> &[u8] {
        VideoFrame::y(self)
    }
    fn u(&self) -> &[u8] {
        VideoFrame::u(self)
    }
    fn v(&self) -> &[u8] {
        VideoFrame::v(self)
    }
}

/// PSNR of the luma planes of two frames of equal size, in dB (`f64::INFINITY` when identical).
pub fn psnr_y(a: &VideoFrame, b: &VideoFrame) -> Result<f64> {
    if a.width != b.width || a.height != b.height {
        return Err(MediaError::Geometry(format!(
            "PSNR of {}x{} against {}x{}",
            a.width, a.height, b.width, b.height
        )));
    }
    Ok(psnr(a.y(), b.y()))
}

/// PSNR of two equally long 8-bit sample buffers in dB.
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let n = a.len().min(b.len());
    if n == 0 {
        return f64::INFINITY;
    }
    let sse: u64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = x as i64 - y as i64;
            (d * d) as u64
        })
        .sum();
    if sse == 0 {
        return f64::INFINITY;
    }
    let mse = sse as f64 / n as f64;
    10.0 * (255.0f64 * 255.0 / mse).log10()
}

/// Interleaved PCM samples.
#[derive(Clone, Debug, PartialEq)]
pub enum AudioSamples {
    /// signed 16 bit
    I16(Vec<i16>),
    /// float in -1.0..=1.0
    F32(Vec<f32>),
}

impl AudioSamples {
    /// Number of values (frames × channels).
    pub fn len(&self) -> usize {
        match self {
            AudioSamples::I16(v) => v.len(),
            AudioSamples::F32(v) => v.len(),
        }
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// As i16 (converting floats with clipping).
    pub fn to_i16(&self) -> Vec<i16> {
        match self {
            AudioSamples::I16(v) => v.clone(),
            AudioSamples::F32(v) => v.iter().map(|&s| f32_to_i16(s)).collect(),
        }
    }
    /// As f32.
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            AudioSamples::I16(v) => v.iter().map(|&s| s as f32 / 32768.0).collect(),
            AudioSamples::F32(v) => v.clone(),
        }
    }
}

pub(crate) fn f32_to_i16(s: f32) -> i16 {
    (s * 32767.0).round().clamp(-32768.0, 32767.0) as i16
}

/// The only audio sample rate inside the pipeline.
pub const AUDIO_RATE: u32 = 48_000;

/// A raw audio frame: 48 kHz, 1 or 2 channels, interleaved, 10 ms (480 frames) or 20 ms
/// (960 frames) long. `pts` is the capture time of the first sample on the session's
/// [`crate::MediaClock`].
#[derive(Clone, Debug, PartialEq)]
pub struct AudioFrame {
    /// always [`AUDIO_RATE`] (48 000)
    pub sample_rate: u32,
    /// 1 or 2
    pub channels: u16,
    /// interleaved samples
    pub samples: AudioSamples,
    /// capture time of the first sample
    pub pts: MediaTime,
}

impl AudioFrame {
    /// Samples per channel.
    pub fn frames(&self) -> usize {
        self.samples.len() / self.channels.max(1) as usize
    }
    /// Duration in microseconds.
    pub fn duration_us(&self) -> u64 {
        self.frames() as u64 * 1_000_000 / self.sample_rate.max(1) as u64
    }
    /// RMS and peak level of all samples, linear, 0.0..=1.0 (for a level meter).
    pub fn level(&self) -> AudioLevel {
        AudioLevel::measure(&self.samples.to_f32())
    }
}

/// A level-meter reading.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct AudioLevel {
    /// root mean square, linear 0..=1
    pub rms: f32,
    /// absolute peak, linear 0..=1
    pub peak: f32,
}

impl AudioLevel {
    /// Measures samples in -1..=1.
    pub fn measure(samples: &[f32]) -> Self {
        if samples.is_empty() {
            return AudioLevel::default();
        }
        let mut sum = 0.0f64;
        let mut peak = 0.0f32;
        for &s in samples {
            sum += (s as f64) * (s as f64);
            peak = peak.max(s.abs());
        }
        AudioLevel {
            rms: (sum / samples.len() as f64).sqrt() as f32,
            peak,
        }
    }
    /// RMS in dBFS.
    pub fn rms_dbfs(&self) -> f32 {
        20.0 * self.rms.max(1e-9).log10()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_layout_and_sharing() {
        let f = VideoFrame::solid(4, 2, 10, 20, 30, MediaTime(5)).unwrap();
        assert_eq!(f.y(), &[10; 8]);
        assert_eq!(f.u(), &[20; 2]);
        assert_eq!(f.v(), &[30; 2]);
        let g = f.clone();
        assert_eq!(
            f.data().as_ptr(),
            g.data().as_ptr(),
            "clone shares the buffer"
        );
        assert!(VideoFrame::from_i420(3, 2, vec![0; 9], MediaTime(0)).is_err());
        assert!(VideoFrame::from_i420(4, 2, vec![0; 11], MediaTime(0)).is_err());
    }

    #[test]
    fn psnr_and_level() {
        assert!(psnr(&[1, 2, 3], &[1, 2, 3]).is_infinite());
        let p = psnr(&[0; 100], &[1; 100]);
        assert!((p - 48.13).abs() < 0.01, "{p}");
        let l = AudioLevel::measure(&[0.5, -0.5, 0.5, -0.5]);
        assert!((l.rms - 0.5).abs() < 1e-6 && (l.peak - 0.5).abs() < 1e-6);
    }
}
