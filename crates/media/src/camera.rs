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
