//! Pixel-format conversion and scaling.
//!
//! Colour conversion uses [`yuvutils_rs`] (BT.601, limited range — what H.264/VP8 encoders
//! expect by default), scaling uses [`fast_image_resize`] (convolution, so downscaling is
//! anti-aliased), JPEG (MJPEG camera frames) uses [`zune_jpeg`]. The only hand-written step is
//! NV12 → I420, which is a pure byte de-interleave (no arithmetic).

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use yuvutils_rs::{
    BufferStoreMut, YuvConversionMode, YuvPackedImage, YuvPlanarImage, YuvPlanarImageMut, YuvRange,
    YuvStandardMatrix,
};

use crate::clock::MediaTime;
use crate::error::{MediaError, Result};
use crate::frame::{VideoFrame, i420_len};

const RANGE: YuvRange = YuvRange::Limited;
const MATRIX: YuvStandardMatrix = YuvStandardMatrix::Bt601;

fn conv_err(e: impl std::fmt::Display) -> MediaError {
    MediaError::Conversion(e.to_string())
}

fn check_even(width: u32, height: u32) -> Result<()> {
    if width == 0 || height == 0 || !width.is_multiple_of(2) || !height.is_multiple_of(2) {
        return Err(MediaError::Geometry(format!(
            "need even, non-zero sizes, got {width}x{height}"
        )));
    }
    Ok(())
}

/// The Y, U and V planes of a packed I420 buffer.
fn planes_mut(buf: &mut [u8], width: u32, height: u32) -> (&mut [u8], &mut [u8], &mut [u8]) {
    let ylen = width as usize * height as usize;
    let clen = (width as usize / 2) * (height as usize / 2);
    let (y, rest) = buf.split_at_mut(ylen);
    let (u, v) = rest.split_at_mut(clen);
    (y, u, v)
}

/// Splits a packed I420 buffer into mutable planes for yuvutils.
fn planar_mut(buf: &mut [u8], width: u32, height: u32) -> YuvPlanarImageMut<'_, u8> {
    let (y, u, v) = planes_mut(buf, width, height);
    YuvPlanarImageMut {
        y_plane: BufferStoreMut::Borrowed(y),
        y_stride: width,
        u_plane: BufferStoreMut::Borrowed(u),
        u_stride: width / 2,
        v_plane: BufferStoreMut::Borrowed(v),
        v_stride: width / 2,
        width,
        height,
    }
}

fn planar(frame: &VideoFrame) -> YuvPlanarImage<'_, u8> {
    YuvPlanarImage {
        y_plane: frame.y(),
        y_stride: frame.y_stride() as u32,
        u_plane: frame.u(),
        u_stride: frame.uv_stride() as u32,
        v_plane: frame.v(),
        v_stride: frame.uv_stride() as u32,
        width: frame.width,
        height: frame.height,
    }
}

/// RGBA (8 bit, `stride` bytes per row) → I420.
pub fn rgba_to_i420(
    rgba: &[u8],
    width: u32,
    height: u32,
    stride: u32,
    pts: MediaTime,
) -> Result<VideoFrame> {
    check_even(width, height)?;
    let mut buf = vec![0u8; i420_len(width, height)];
    {
        let mut img = planar_mut(&mut buf, width, height);
        yuvutils_rs::rgba_to_yuv420(
            &mut img,
            rgba,
            stride,
            RANGE,
            MATRIX,
            YuvConversionMode::Balanced,
        )
        .map_err(conv_err)?;
    }
    VideoFrame::from_i420(width, height, buf, pts)
}

/// BGRX / BGRA (8 bit, `stride` bytes per row; X11's 32-bit ZPixmap) → I420. The fourth
/// byte is ignored.
pub fn bgrx_to_i420(
    bgrx: &[u8],
    width: u32,
    height: u32,
    stride: u32,
    pts: MediaTime,
) -> Result<VideoFrame> {
    check_even(width, height)?;
    if bgrx.len() < stride as usize * height as usize || stride < width * 4 {
        return Err(MediaError::Geometry(format!(
            "BGRX {width}x{height}, stride {stride}: {} bytes",
            bgrx.len()
        )));
    }
    let mut buf = vec![0u8; i420_len(width, height)];
    {
        let mut img = planar_mut(&mut buf, width, height);
        yuvutils_rs::bgra_to_yuv420(
            &mut img,
            bgrx,
            stride,
            RANGE,
            MATRIX,
            YuvConversionMode::Balanced,
        )
        .map_err(conv_err)?;
    }
    VideoFrame::from_i420(width, height, buf, pts)
}

/// RGB (8 bit, `stride` bytes per row) → I420.
pub fn rgb_to_i420(
    rgb: &[u8],
    width: u32,
    height: u32,
    stride: u32,
    pts: MediaTime,
) -> Result<VideoFrame> {
    check_even(width, height)?;
    let mut buf = vec![0u8; i420_len(width, height)];
    {
        let mut img = planar_mut(&mut buf, width, height);
        yuvutils_rs::rgb_to_yuv420(
            &mut img,
            rgb,
            stride,
            RANGE,
            MATRIX,
            YuvConversionMode::Balanced,
        )
        .map_err(conv_err)?;
    }
    VideoFrame::from_i420(width, height, buf, pts)
}

/// Extra pixels of padding for the YUYV conversion (see [`yuyv_to_i420`]).
const YUYV_PAD: u32 = 32;

/// YUYV 4:2:2 packed (`Y0 U Y1 V`, `stride` bytes per row) → I420.
///
/// yuvutils-rs 0.8.3 leaves the last ≤ 16 pixels of each row unwritten after its SIMD pass
/// (its scalar tail skips pixel *pairs* by a pixel count). The rows are therefore padded by
/// 32 pixels before converting and cropped after, so the SIMD pass covers every real pixel.
pub fn yuyv_to_i420(
    yuyv: &[u8],
    width: u32,
    height: u32,
    stride: u32,
    pts: MediaTime,
) -> Result<VideoFrame> {
    check_even(width, height)?;
    let (w, h, s) = (width as usize, height as usize, stride as usize);
    if s < 2 * w || yuyv.len() < s * (h - 1) + 2 * w {
        return Err(MediaError::Geometry(format!(
            "YUYV {width}x{height} stride {stride} needs {} bytes, got {}",
            s * (h - 1) + 2 * w,
            yuyv.len()
        )));
    }
    let pw = width + YUYV_PAD;
    let prow = 2 * pw as usize;
    let mut padded = vec![0u8; prow * h];
    for (dst, src) in padded.chunks_exact_mut(prow).zip(yuyv.chunks(s)) {
        dst[..2 * w].copy_from_slice(&src[..2 * w]);
        for px in dst[2 * w..].chunks_exact_mut(4) {
            px.copy_from_slice(&[16, 128, 16, 128]);
        }
    }
    let mut buf = vec![0u8; i420_len(pw, height)];
    {
        let mut img = planar_mut(&mut buf, pw, height);
        let packed = YuvPackedImage {
            yuy: &padded,
            yuy_stride: prow as u32,
            width: pw,
            height,
        };
        yuvutils_rs::yuyv422_to_yuv420(&mut img, &packed).map_err(conv_err)?;
    }
    let ylen = pw as usize * h;
    let clen = (pw as usize / 2) * (h / 2);
    let (y, rest) = buf.split_at(ylen);
    let (u, v) = rest.split_at(clen);
    VideoFrame::from_planes(
        width,
        height,
        y,
        pw as usize,
        u,
        pw as usize / 2,
        v,
        pw as usize / 2,
        pts,
    )
}

/// NV12 (Y plane, then interleaved `U V` plane; strides = width) → I420. A pure de-interleave.
pub fn nv12_to_i420(nv12: &[u8], width: u32, height: u32, pts: MediaTime) -> Result<VideoFrame> {
    check_even(width, height)?;
    let ylen = width as usize * height as usize;
    let clen = ylen / 4;
    if nv12.len() < ylen + 2 * clen {
        return Err(MediaError::Geometry(format!(
            "NV12 {width}x{height} needs {} bytes, got {}",
            ylen + 2 * clen,
            nv12.len()
        )));
    }
    let mut buf = Vec::with_capacity(ylen + 2 * clen);
    buf.extend_from_slice(&nv12[..ylen]);
    let uv = &nv12[ylen..ylen + 2 * clen];
    buf.extend(uv.iter().step_by(2));
    buf.extend(uv.iter().skip(1).step_by(2));
    VideoFrame::from_i420(width, height, buf, pts)
}

/// A JPEG (one MJPEG camera frame) → I420. Odd sizes are cropped to even.
pub fn mjpeg_to_i420(jpeg: &[u8], pts: MediaTime) -> Result<VideoFrame> {
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;
    let opts = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut dec = zune_jpeg::JpegDecoder::new_with_options(std::io::Cursor::new(jpeg), opts);
    let rgb = dec
        .decode()
        .map_err(|e| MediaError::Conversion(format!("JPEG: {e:?}")))?;
    let info = dec
        .info()
        .ok_or_else(|| MediaError::Conversion("JPEG without header info".into()))?;
    let (w, h) = (info.width as u32, info.height as u32);
    let (ew, eh) = (w & !1, h & !1);
    rgb_to_i420(&rgb, ew, eh, w * 3, pts)
}

/// I420 → RGBA (for the preview).
pub fn i420_to_rgba(frame: &VideoFrame) -> Result<Vec<u8>> {
    let mut out = vec![0u8; frame.width as usize * frame.height as usize * 4];
    yuvutils_rs::yuv420_to_rgba(&planar(frame), &mut out, frame.width * 4, RANGE, MATRIX)
        .map_err(conv_err)?;
    Ok(out)
}

/// Scales an I420 frame, each plane separately, anti-aliased when downscaling. Where each
/// side shrinks by a whole factor (the simulcast ladder's halvings), every output pixel is
/// the mean of the source pixels it covers (a box filter, as libwebrtc scales its simulcast
/// layers): at 2:1 that reads 2x2 pixels where bilinear convolution reads 4x4, about twice as
/// fast in the media bench. Other sizes use bilinear convolution.
/// Returns the same frame (no copy) when the size already matches.
pub fn scale_i420(frame: &VideoFrame, width: u32, height: u32) -> Result<VideoFrame> {
    check_even(width, height)?;
    if frame.width == width && frame.height == height {
        return Ok(frame.clone());
    }
    let whole = |from: u32, to: u32| from > to && from.is_multiple_of(to);
    let filter = if whole(frame.width, width) && whole(frame.height, height) {
        FilterType::Box
    } else {
        FilterType::Bilinear
    };
    let opts = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(filter));
    let mut resizer = Resizer::new();
    let mut out = vec![0u8; i420_len(width, height)];
    let (w, h, cw, ch) = (width, height, width / 2, height / 2);
    let (y, u, v) = planes_mut(&mut out, width, height);
    let (sw, sh) = (frame.width, frame.height);
    let planes = [
        (frame.y(), sw, sh, y, w, h),
        (frame.u(), sw / 2, sh / 2, u, cw, ch),
        (frame.v(), sw / 2, sh / 2, v, cw, ch),
    ];
    for (src, sw, sh, dst, dw, dh) in planes {
        let src = ImageRef::new(sw, sh, src, PixelType::U8).map_err(conv_err)?;
        let mut dst = Image::from_slice_u8(dw, dh, dst, PixelType::U8).map_err(conv_err)?;
        resizer.resize(&src, &mut dst, &opts).map_err(conv_err)?;
    }
    VideoFrame::from_i420(width, height, out, frame.pts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rgba_solid(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
        (0..w * h)
            .flat_map(|_| [rgb[0], rgb[1], rgb[2], 255])
            .collect()
    }

    /// Known BT.601 limited-range values: white (235,128,128), black (16,128,128),
    /// red (81,90,240), green (145,54,34), blue (41,240,110).
    #[test]
    fn rgba_to_i420_reference_values() {
        let cases = [
            ([255, 255, 255], (235, 128, 128)),
            ([0, 0, 0], (16, 128, 128)),
            ([255, 0, 0], (81, 90, 240)),
            ([0, 255, 0], (145, 54, 34)),
            ([0, 0, 255], (41, 240, 110)),
        ];
        for (rgb, (y, u, v)) in cases {
            let f = rgba_to_i420(&rgba_solid(4, 4, rgb), 4, 4, 16, MediaTime(0)).unwrap();
            let close = |a: u8, b: u8| (a as i32 - b as i32).abs() <= 1;
            assert!(close(f.y()[0], y), "{rgb:?} Y {} want {y}", f.y()[0]);
            assert!(close(f.u()[0], u), "{rgb:?} U {} want {u}", f.u()[0]);
            assert!(close(f.v()[0], v), "{rgb:?} V {} want {v}", f.v()[0]);
        }
    }

    #[test]
    fn rgb_and_rgba_agree() {
        let rgb: Vec<u8> = (0..8 * 8)
            .flat_map(|i| [(i * 3) as u8, (i * 5) as u8, (i * 7) as u8])
            .collect();
        let rgba: Vec<u8> = rgb
            .chunks(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect();
        let a = rgb_to_i420(&rgb, 8, 8, 24, MediaTime(0)).unwrap();
        let b = rgba_to_i420(&rgba, 8, 8, 32, MediaTime(0)).unwrap();
        assert_eq!(a.data(), b.data());
    }

    #[test]
    fn i420_to_rgba_reference_and_round_trip() {
        let f = VideoFrame::solid(4, 4, 81, 90, 240, MediaTime(0)).unwrap();
        let rgba = i420_to_rgba(&f).unwrap();
        assert!(
            rgba[0] >= 253 && rgba[1] <= 2 && rgba[2] <= 2 && rgba[3] == 255,
            "{:?}",
            &rgba[..4]
        );
        // a smooth colour gradient survives RGBA → I420 → RGBA within a few levels
        let (w, h) = (64u32, 32u32);
        let src: Vec<u8> = (0..h)
            .flat_map(|y| (0..w).flat_map(move |x| [(x * 4) as u8, (y * 8) as u8, 128, 255]))
            .collect();
        let f = rgba_to_i420(&src, w, h, w * 4, MediaTime(0)).unwrap();
        let back = i420_to_rgba(&f).unwrap();
        let maxdiff = src
            .iter()
            .zip(&back)
            .map(|(a, b)| (*a as i32 - *b as i32).abs())
            .max()
            .unwrap();
        assert!(maxdiff <= 8, "max diff {maxdiff}");
    }

    #[test]
    fn yuyv_reference_values() {
        // 4x2: row 0 = Y 10,20,30,40 U 100 V 200 (twice); row 1 = Y 50.. U 110 V 210
        let yuyv = [
            10, 100, 20, 200, 30, 100, 40, 200, //
            50, 110, 60, 210, 70, 110, 80, 210,
        ];
        let f = yuyv_to_i420(&yuyv, 4, 2, 8, MediaTime(0)).unwrap();
        assert_eq!(f.y(), &[10, 20, 30, 40, 50, 60, 70, 80]);
        // 4:2:2 → 4:2:0 averages (or picks) the two chroma rows
        for &u in f.u() {
            assert!((100..=110).contains(&u), "u {u}");
        }
        for &v in f.v() {
            assert!((200..=210).contains(&v), "v {v}");
        }
    }

    #[test]
    fn nv12_deinterleaves() {
        let mut nv12 = vec![7u8; 4 * 2];
        nv12.extend_from_slice(&[1, 2, 3, 4]);
        let f = nv12_to_i420(&nv12, 4, 2, MediaTime(0)).unwrap();
        assert_eq!(f.y(), &[7; 8]);
        assert_eq!(f.u(), &[1, 3]);
        assert_eq!(f.v(), &[2, 4]);
        assert!(nv12_to_i420(&nv12[..10], 4, 2, MediaTime(0)).is_err());
    }

    #[test]
    fn scaling_keeps_flat_areas_and_halves_sizes() {
        let f = VideoFrame::solid(1280, 720, 100, 60, 200, MediaTime(9)).unwrap();
        let s = scale_i420(&f, 320, 180).unwrap();
        assert_eq!((s.width, s.height, s.pts), (320, 180, MediaTime(9)));
        assert!(s.y().iter().all(|&p| p == 100));
        assert!(s.u().iter().all(|&p| p == 60));
        assert!(s.v().iter().all(|&p| p == 200));
        // a left/right split stays split
        let mut buf = vec![16u8; 64 * 16];
        for row in buf.chunks_mut(64) {
            row[32..].fill(235);
        }
        buf.extend(vec![128u8; 2 * 32 * 8]);
        let f = VideoFrame::from_i420(64, 16, buf, MediaTime(0)).unwrap();
        let s = scale_i420(&f, 16, 4).unwrap();
        assert_eq!(s.y()[0], 16);
        assert_eq!(s.y()[15], 235);
        assert!(scale_i420(&f, 15, 4).is_err());
    }

    #[test]
    fn halving_averages_each_two_by_two_block() {
        // Y: 8x4 of uneven values (a gradient would read the same through any symmetric
        // filter); U and V: 4x2
        let y: Vec<u8> = (0..32u32).map(|i| (i * i * 37 % 251) as u8).collect();
        let mut buf = y.clone();
        buf.extend((0..8u32).map(|i| (i * i * 53 % 241) as u8));
        buf.extend((0..8u8).map(|i| 250 - i * 30));
        let f = VideoFrame::from_i420(8, 4, buf, MediaTime(0)).unwrap();
        let s = scale_i420(&f, 4, 2).unwrap();
        let mean = |p: &[u8], w: usize, x: usize, r: usize| {
            let at = |xx: usize, rr: usize| p[rr * w + xx] as f64;
            (at(2 * x, 2 * r)
                + at(2 * x + 1, 2 * r)
                + at(2 * x, 2 * r + 1)
                + at(2 * x + 1, 2 * r + 1))
                / 4.0
        };
        for r in 0..2 {
            for x in 0..4 {
                let want = mean(&y, 8, x, r);
                let got = s.y()[r * 4 + x] as f64;
                assert!((got - want).abs() <= 1.0, "Y ({x},{r}): {got} vs {want}");
            }
        }
        let want_u = mean(f.u(), 4, 0, 0);
        assert!(
            (s.u()[0] as f64 - want_u).abs() <= 1.0,
            "U {} vs {want_u}",
            s.u()[0]
        );
        // not a whole factor: bilinear, still the asked size
        let s = scale_i420(&f, 6, 4).unwrap();
        assert_eq!((s.width, s.height, s.y().len()), (6, 4, 24));
    }
}
