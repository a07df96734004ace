//! Cameras via `nokhwa` (V4L2 on Linux): enumeration, opening at a requested
//! resolution/frame rate, and decoding MJPEG / YUYV / NV12 / RGB frames to I420.
//!
//! Decoding is a separate, pure function ([`decode_camera_frame`]) so that the code after
//! capture is tested on recorded frames (no camera exists in CI).

use std::time::Duration;

use crossbeam_channel::bounded;
use nokhwa::Camera;
use nokhwa::pixel_format::RgbFormat;
use nokhwa::utils::{
    ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
    Resolution,
};

use crate::clock::{MediaClock, MediaTime};
use crate::convert::{mjpeg_to_i420, nv12_to_i420, rgb_to_i420, yuyv_to_i420};
use crate::error::{MediaError, Result};
use crate::frame::VideoFrame;
use crate::source::{SourceHandle, VIDEO_SOURCE_QUEUE, VideoSource, spawn_source};

/// Pixel formats cameras deliver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CameraPixelFormat {
    /// Motion-JPEG: one JPEG per frame
    Mjpeg,
    /// packed 4:2:2 `Y0 U Y1 V`
    Yuyv,
    /// Y plane + interleaved UV plane
    Nv12,
    /// packed 8-bit RGB
    Rgb,
}

impl CameraPixelFormat {
    fn from_nokhwa(f: FrameFormat) -> Option<Self> {
        match f {
            FrameFormat::MJPEG => Some(Self::Mjpeg),
            FrameFormat::YUYV => Some(Self::Yuyv),
            FrameFormat::NV12 => Some(Self::Nv12),
            FrameFormat::RAWRGB => Some(Self::Rgb),
            _ => None,
        }
    }
}

impl std::fmt::Display for CameraMode {
    /// "MJPEG 1280x720@30"
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.format {
            Some(CameraPixelFormat::Mjpeg) => "MJPEG",
            Some(CameraPixelFormat::Yuyv) => "YUYV",
            Some(CameraPixelFormat::Nv12) => "NV12",
            Some(CameraPixelFormat::Rgb) => "RGB",
            None => "other",
        };
        write!(f, "{name} {}x{}@{}", self.width, self.height, self.fps)
    }
}

/// Picks the camera mode nearest to `width × height @ fps` among `modes`:
/// 1. the size: the wanted one, else the smallest larger one (scaled down, never up),
///    else the largest smaller one;
/// 2. at that size the frame rate: the lowest one that reaches `fps`, else the highest;
/// 3. at that size and rate YUYV before NV12 before MJPEG (raw costs no decoding) before
///    RGB.
///
/// `None` when the camera offers no mode in a format the studio decodes.
pub fn choose_camera_mode(
    modes: &[CameraMode],
    width: u32,
    height: u32,
    fps: u32,
) -> Option<CameraMode> {
    let modes: Vec<CameraMode> = modes
        .iter()
        .filter(|m| m.format.is_some())
        .cloned()
        .collect();
    let modes = modes.as_slice();
    let area = |m: &CameraMode| m.width as u64 * m.height as u64;
    let fits = |m: &CameraMode| m.width >= width && m.height >= height;
    // 1. size
    let size = modes
        .iter()
        .filter(|m| fits(m))
        .min_by_key(|m| (area(m), m.width))
        .or_else(|| modes.iter().max_by_key(|m| (area(m), m.width)))
        .map(|m| (m.width, m.height))?;
    let at_size: Vec<&CameraMode> = modes
        .iter()
        .filter(|m| (m.width, m.height) == size)
        .collect();
    // 2. rate
    let rate = at_size
        .iter()
        .filter(|m| m.fps >= fps)
        .map(|m| m.fps)
        .min()
        .or_else(|| at_size.iter().map(|m| m.fps).max())?;
    // 3. format
    let rank = |f: Option<CameraPixelFormat>| match f {
        Some(CameraPixelFormat::Yuyv) => 0,
        Some(CameraPixelFormat::Nv12) => 1,
        Some(CameraPixelFormat::Mjpeg) => 2,
        _ => 3,
    };
    at_size
        .into_iter()
        .filter(|m| m.fps == rate)
        .min_by_key(|m| rank(m.format))
        .cloned()
}

/// Decodes one captured camera frame to I420 stamped `pts`.
pub fn decode_camera_frame(
    format: CameraPixelFormat,
    data: &[u8],
    width: u32,
    height: u32,
    pts: MediaTime,
) -> Result<VideoFrame> {
    let need = |n: usize| -> Result<()> {
        if data.len() < n {
            return Err(MediaError::Conversion(format!(
                "{format:?} {width}x{height} frame needs {n} bytes, got {}",
                data.len()
            )));
        }
        Ok(())
    };
    let (w, h) = (width as usize, height as usize);
    match format {
        CameraPixelFormat::Mjpeg => mjpeg_to_i420(data, pts),
        CameraPixelFormat::Yuyv => {
            need(w * h * 2)?;
            yuyv_to_i420(data, width, height, width * 2, pts)
        }
        CameraPixelFormat::Nv12 => {
            need(w * h * 3 / 2)?;
            nv12_to_i420(data, width, height, pts)
        }
        CameraPixelFormat::Rgb => {
            need(w * h * 3)?;
            rgb_to_i420(data, width, height, width * 3, pts)
        }
    }
}

/// One mode a camera supports.
#[derive(Clone, Debug, PartialEq)]
pub struct CameraMode {
    /// width
    pub width: u32,
    /// height
    pub height: u32,
    /// frames per second
    pub fps: u32,
    /// pixel format (`None`: one this crate cannot decode)
    pub format: Option<CameraPixelFormat>,
}

/// A camera as listed by [`list_cameras`].
#[derive(Clone, Debug, PartialEq)]
pub struct CameraInfo {
    /// index to open it with ([`CameraSource::index`])
    pub index: u32,
    /// human-readable name
    pub name: String,
    /// backend description (e.g. the V4L2 path)
    pub description: String,
    /// supported modes (empty when the camera could not be queried)
    pub modes: Vec<CameraMode>,
}

fn cam_err(e: impl std::fmt::Display) -> MediaError {
    MediaError::Device(format!("camera: {e}"))
}

/// macOS asks the user for camera access once, and nokhwa must be initialised (with access
/// granted) before it sees or opens any camera. Other systems have nothing to ask here.
fn ensure_camera_access() -> Result<()> {
    #[cfg(target_os = "macos")]
    {
        use std::sync::OnceLock;
        static GRANTED: OnceLock<bool> = OnceLock::new();
        let granted = *GRANTED.get_or_init(|| {
            if nokhwa::nokhwa_check() {
                return true;
            }
            let (tx, rx) = std::sync::mpsc::channel();
            nokhwa::nokhwa_initialize(move |ok| {
                let _ = tx.send(ok);
            });
            // The user answers a system dialog; do not wait forever.
            rx.recv_timeout(std::time::Duration::from_secs(120))
                .unwrap_or(false)
        });
        if !granted {
            return Err(MediaError::Device(
                "camera access was not granted (System Settings → Privacy & Security → Camera)"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// Lists cameras with their supported modes. An empty list when there are none.
pub fn list_cameras() -> Result<Vec<CameraInfo>> {
    if let Err(e) = ensure_camera_access() {
        tracing::warn!(error = %e, "no camera access; reporting no cameras");
        return Ok(Vec::new());
    }
    let infos = match nokhwa::query(ApiBackend::Auto) {
        Ok(i) => i,
        Err(e) => {
            tracing::debug!(error = %e, "camera query failed; reporting no cameras");
            return Ok(Vec::new());
        }
    };
    let mut out = Vec::new();
    for info in infos {
        let Ok(index) = info.index().as_index() else {
            continue;
        };
        let modes = Camera::new(
            info.index().clone(),
            RequestedFormat::new::<RgbFormat>(RequestedFormatType::None),
        )
        .and_then(|mut c| c.compatible_camera_formats())
        .map(|fs| {
            fs.into_iter()
                .map(|f| CameraMode {
                    width: f.width(),
                    height: f.height(),
                    fps: f.frame_rate(),
                    format: CameraPixelFormat::from_nokhwa(f.format()),
                })
                .collect()
        })
        .unwrap_or_default();
        out.push(CameraInfo {
            index,
            name: info.human_name(),
            description: info.description().to_string(),
            modes,
        });
    }
    Ok(out)
}

/// A camera source: opens camera `index` at the mode closest to `width × height @ fps`
/// (MJPEG preferred), decodes every frame to I420 on its own thread. A camera that fails
/// while streaming ends the source with [`MediaError::DeviceLost`].
#[derive(Clone, Debug)]
pub struct CameraSource {
    /// camera index (see [`list_cameras`])
    pub index: u32,
    /// requested width
    pub width: u32,
    /// requested height
    pub height: u32,
    /// requested frame rate
    pub fps: u32,
    /// queue bound
    pub queue: usize,
}

impl CameraSource {
    /// Camera `index` at about `width × height @ fps`.
    pub fn new(index: u32, width: u32, height: u32, fps: u32) -> Self {
        CameraSource {
            index,
            width,
            height,
            fps,
            queue: VIDEO_SOURCE_QUEUE,
        }
    }
}

impl VideoSource for CameraSource {
    fn name(&self) -> String {
        format!("camera {}", self.index)
    }

    fn start(self: Box<Self>, clock: MediaClock) -> Result<SourceHandle<VideoFrame>> {
        ensure_camera_access()?;
        let s = *self;
        let (ready_tx, ready_rx) = bounded::<Result<()>>(1);
        let handle = spawn_source("camera", clock, s.queue, move |ctx| {
            let wanted = CameraFormat::new(
                Resolution {
                    width_x: s.width,
                    height_y: s.height,
                },
                FrameFormat::MJPEG,
                s.fps,
            );
            let requested = RequestedFormat::new::<RgbFormat>(RequestedFormatType::Closest(wanted));
            let mut cam = match Camera::new(CameraIndex::Index(s.index), requested) {
                Ok(c) => c,
                Err(e) => {
                    let _ = ready_tx.send(Err(MediaError::Device(format!(
                        "camera {} cannot be opened: {e}",
                        s.index
                    ))));
                    return;
                }
            };
            // Negotiate: the nearest mode the camera lists, in a format we decode.
            let modes: Vec<CameraMode> = cam
                .compatible_camera_formats()
                .unwrap_or_default()
                .into_iter()
                .map(|f| CameraMode {
                    format: CameraPixelFormat::from_nokhwa(f.format()),
                    width: f.width(),
                    height: f.height(),
                    fps: f.frame_rate(),
                })
                .collect();
            if let Some(mode) = choose_camera_mode(&modes, s.width, s.height, s.fps) {
                let format = match mode.format {
                    Some(CameraPixelFormat::Yuyv) => FrameFormat::YUYV,
                    Some(CameraPixelFormat::Nv12) => FrameFormat::NV12,
                    Some(CameraPixelFormat::Rgb) => FrameFormat::RAWRGB,
                    _ => FrameFormat::MJPEG,
                };
                let exact = CameraFormat::new(
                    Resolution {
                        width_x: mode.width,
                        height_y: mode.height,
                    },
                    format,
                    mode.fps,
                );
                match cam.set_camera_requset(RequestedFormat::new::<RgbFormat>(
                    RequestedFormatType::Exact(exact),
                )) {
                    Ok(_) => tracing::info!(
                        camera = s.index,
                        wanted = %format!("{}x{}@{}", s.width, s.height, s.fps),
                        chosen = %mode,
                        "camera mode"
                    ),
                    Err(e) => {
                        tracing::warn!(camera = s.index, chosen = %mode, "camera mode not taken: {e}")
                    }
                }
            }
            if let Err(e) = cam.open_stream() {
                let _ = ready_tx.send(Err(MediaError::Device(format!(
                    "camera {} cannot stream: {e}",
                    s.index
                ))));
                return;
            }
            let fmt = cam.camera_format();
            let Some(pix) = CameraPixelFormat::from_nokhwa(fmt.format()) else {
                let _ = ready_tx.send(Err(cam_err(format!(
                    "unsupported pixel format {}",
                    fmt.format()
                ))));
                return;
            };
            let _ = ready_tx.send(Ok(()));
            let (w, h) = (fmt.width() & !1, fmt.height() & !1);
            while !ctx.stopped() {
                match cam.frame_raw() {
                    Ok(raw) => {
                        let pts = ctx.clock.now();
                        match decode_camera_frame(pix, &raw, w, h, pts) {
                            Ok(f) => ctx.emit(f),
                            // one corrupt frame (common with MJPEG) is skipped, not fatal
                            Err(e) => tracing::debug!(error = %e, "undecodable camera frame"),
                        }
                    }
                    Err(e) => {
                        ctx.error(MediaError::DeviceLost(format!("camera {}: {e}", s.index)));
                        return;
                    }
                }
            }
            let _ = cam.stop_stream();
        })?;
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(handle),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(MediaError::Device(format!(
                "camera {} did not start within 10 s",
                s.index
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(format: CameraPixelFormat, width: u32, height: u32, fps: u32) -> CameraMode {
        CameraMode {
            format: Some(format),
            width,
            height,
            fps,
        }
    }

    /// A typical UVC webcam: YUYV only fast at small sizes, MJPEG up to 1080p30.
    fn webcam() -> Vec<CameraMode> {
        use CameraPixelFormat::*;
        vec![
            m(Yuyv, 640, 480, 30),
            m(Yuyv, 640, 360, 30),
            m(Yuyv, 1280, 720, 10),
            m(Yuyv, 1920, 1080, 5),
            m(Mjpeg, 640, 360, 30),
            m(Mjpeg, 1280, 720, 30),
            m(Mjpeg, 1280, 720, 60),
            m(Mjpeg, 1920, 1080, 30),
        ]
    }

    #[test]
    fn camera_mode_is_negotiated_to_the_nearest() {
        use CameraPixelFormat::*;
        let cam = webcam();
        // 720p30: YUYV only does 10 fps there, so MJPEG
        let c = choose_camera_mode(&cam, 1280, 720, 30).unwrap();
        assert_eq!(c, m(Mjpeg, 1280, 720, 30));
        assert_eq!(c.to_string(), "MJPEG 1280x720@30");
        // 720p60 exists
        assert_eq!(
            choose_camera_mode(&cam, 1280, 720, 60),
            Some(m(Mjpeg, 1280, 720, 60))
        );
        // 360p30: both formats reach it, raw YUYV needs no decoding
        assert_eq!(
            choose_camera_mode(&cam, 640, 360, 30),
            Some(m(Yuyv, 640, 360, 30))
        );
        // 1080p60 is not offered: 1080p at the best rate it has
        assert_eq!(
            choose_camera_mode(&cam, 1920, 1080, 60),
            Some(m(Mjpeg, 1920, 1080, 30))
        );
        // 960x540: the smallest larger size, scaled down later
        assert_eq!(
            choose_camera_mode(&cam, 960, 540, 30),
            Some(m(Mjpeg, 1280, 720, 30))
        );
        // larger than anything: the largest
        assert_eq!(
            choose_camera_mode(&cam, 3840, 2160, 30),
            Some(m(Mjpeg, 1920, 1080, 30))
        );
        // a camera that only does 640x480 YUYV: that, scaled
        let small = [m(Yuyv, 640, 480, 30)];
        assert_eq!(
            choose_camera_mode(&small, 1280, 720, 30),
            Some(small[0].clone())
        );
        // modes in formats the studio cannot decode are never chosen
        let odd = [CameraMode {
            format: None,
            width: 1280,
            height: 720,
            fps: 30,
        }];
        assert_eq!(choose_camera_mode(&odd, 1280, 720, 30), None);
        assert_eq!(choose_camera_mode(&[], 1280, 720, 30), None);
    }
}
