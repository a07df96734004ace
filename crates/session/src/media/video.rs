//! The video side's source: a source thread reading the test pattern, a Y4M file or a
//! camera on the media clock, fanning frames out to the preview and the encoder slots.
//! Kept apart from the encoders because the preview runs without them.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use streamit_media::camera::CameraSource;
use streamit_media::compose::{Compositor, PipLayout};
use streamit_media::screen::{OpenShare, ScreenSource};
use streamit_media::source::{SourceHandle, VideoSource};
use streamit_media::{Layer, MediaClock, MediaError, MediaTime, Quality, VideoFrame};
use tokio::sync::mpsc;

use super::encode::{EncodeStatus, EncoderWorker, Slot};
use super::{Counters, Feed, MediaEvent, VideoSourceSpec, drain_device};

/// Video frames from a source, paced on the media clock.
enum VideoReader {
    Synthetic {
        width: u32,
        height: u32,
        n: u32,
    },
    Y4m {
        path: PathBuf,
        reader: BufReader<File>,
        width: u32,
        height: u32,
        data_start: u64,
    },
    /// A self-paced device source (camera).
    Device(SourceHandle<VideoFrame>),
    /// A screen or window capture, and the first frame it gave (read to learn its size).
    Screen(SourceHandle<VideoFrame>, Option<VideoFrame>),
}

impl VideoReader {
    fn open(
        spec: &VideoSourceSpec,
        clock: &MediaClock,
        open: &OpenShare,
    ) -> Result<(Self, u32, u32, u32), MediaError> {
        match spec {
            VideoSourceSpec::Camera {
                index,
                width,
                height,
                fps,
            } => {
                let (w, h, fps) = (
                    (*width).max(160) & !1,
                    (*height).max(2) & !1,
                    (*fps).clamp(1, 120),
                );
                let src: Box<dyn VideoSource> = Box::new(CameraSource::new(*index, w, h, fps));
                Ok((VideoReader::Device(src.start(clock.clone())?), w, h, fps))
            }
            VideoSourceSpec::Screen { target, fps } => {
                let fps = (*fps).clamp(1, 60);
                let src = Box::new(ScreenSource {
                    target: target.clone(),
                    fps,
                    open: open.clone(),
                });
                let handle = src.start(clock.clone())?;
                // The first frame tells the size the encoders are built for.
                let first = match handle.events().recv_timeout(Duration::from_secs(5)) {
                    Ok(streamit_media::SourceEvent::Frame(f)) => f,
                    Ok(streamit_media::SourceEvent::Error(e)) => return Err(e),
                    _ => {
                        return Err(MediaError::Device(format!(
                            "{target}: no picture within 5 s"
                        )));
                    }
                };
                let (w, h) = (first.width, first.height);
                Ok((VideoReader::Screen(handle, Some(first)), w, h, fps))
            }
            VideoSourceSpec::Synthetic { width, height, fps } => {
                if *width < 160 || width % 2 != 0 || height % 2 != 0 || *fps == 0 || *fps > 120 {
                    return Err(MediaError::Geometry(format!(
                        "synthetic source {width}x{height}@{fps}: width ≥ 160, even sizes, 1–120 fps"
                    )));
                }
                Ok((
                    VideoReader::Synthetic {
                        width: *width,
                        height: *height,
                        n: 0,
                    },
                    *width,
                    *height,
                    *fps,
                ))
            }
            VideoSourceSpec::Y4m(path) => {
                let file_err = |m: String| MediaError::File {
                    path: path.display().to_string(),
                    message: m,
                };
                let file = File::open(path).map_err(|e| file_err(e.to_string()))?;
                let mut reader = BufReader::new(file);
                let mut header = String::new();
                reader
                    .read_line(&mut header)
                    .map_err(|e| file_err(e.to_string()))?;
                let (w, h, fps) = parse_y4m_header(&header).map_err(file_err)?;
                let data_start = header.len() as u64;
                Ok((
                    VideoReader::Y4m {
                        path: path.clone(),
                        reader,
                        width: w,
                        height: h,
                        data_start,
                    },
                    w,
                    h,
                    fps,
                ))
            }
        }
    }

    fn next(&mut self, pts: MediaTime) -> Result<VideoFrame, MediaError> {
        match self {
            VideoReader::Device(_) | VideoReader::Screen(..) => Err(MediaError::Closed),
            VideoReader::Synthetic { width, height, n } => {
                let f = streamit_media::pattern::generate_pattern(*width, *height, *n, pts);
                *n = n.wrapping_add(1);
                f
            }
            VideoReader::Y4m {
                path,
                reader,
                width,
                height,
                data_start,
            } => {
                use std::io::Seek;
                let file_err = |m: String| MediaError::File {
                    path: path.display().to_string(),
                    message: m,
                };
                let mut line = String::new();
                let n = reader
                    .read_line(&mut line)
                    .map_err(|e| file_err(e.to_string()))?;
                if n == 0 {
                    // loop
                    reader
                        .seek(std::io::SeekFrom::Start(*data_start))
                        .map_err(|e| file_err(e.to_string()))?;
                    line.clear();
                    reader
                        .read_line(&mut line)
                        .map_err(|e| file_err(e.to_string()))?;
                }
                if !line.starts_with("FRAME") {
                    return Err(file_err("expected a FRAME marker".into()));
                }
                let mut buf = vec![0u8; streamit_media::frame::i420_len(*width, *height)];
                reader
                    .read_exact(&mut buf)
                    .map_err(|e| file_err(format!("truncated frame: {e}")))?;
                VideoFrame::from_i420(*width, *height, buf, pts)
            }
        }
    }
}

/// `YUV4MPEG2 W640 H360 F30:1 Ip A1:1 C420jpeg` → (640, 360, 30).
pub(crate) fn parse_y4m_header(line: &str) -> Result<(u32, u32, u32), String> {
    let mut parts = line.split_ascii_whitespace();
    if parts.next() != Some("YUV4MPEG2") {
        return Err("not a YUV4MPEG2 file".into());
    }
    let (mut w, mut h, mut fps) = (None, None, 30u32);
    for p in parts {
        let (tag, val) = p.split_at(1);
        match tag {
            "W" => w = val.parse().ok(),
            "H" => h = val.parse().ok(),
            "F" => {
                if let Some((n, d)) = val.split_once(':') {
                    let (n, d): (u32, u32) = (
                        n.parse().map_err(|_| "bad F tag")?,
                        d.parse().map_err(|_| "bad F tag")?,
                    );
                    if d > 0 && n / d > 0 {
                        fps = (n as f64 / d as f64).round() as u32;
                    }
                }
            }
            "C" if !val.starts_with("420") => {
                return Err(format!("only 4:2:0 is supported, not C{val}"));
            }
            _ => {}
        }
    }
    match (w, h) {
        (Some(w), Some(h)) if w >= 2 && h >= 2 && w % 2 == 0 && h % 2 == 0 => {
            Ok((w, h, fps.clamp(1, 120)))
        }
        _ => Err("missing or odd W/H".into()),
    }
}

/// The running video side: a source thread, and while live one encoder per layer.
pub(crate) struct VideoPipeline {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// The camera's pipeline or the screen share's.
    pub feed: Feed,
    stop: Arc<AtomicBool>,
    /// Stops the encoders only (when the stream ends the preview goes on).
    pub(super) enc_stop: Arc<AtomicBool>,
    camera_off: Arc<AtomicBool>,
    pub(super) sinks: Arc<Mutex<Vec<Arc<Slot>>>>,
    source: Option<JoinHandle<()>>,
    pub(super) encoders: Vec<EncoderWorker>,
    pub counters: Arc<Counters>,
    /// what the encoder sends at (CPU adaptation)
    pub status: Arc<EncodeStatus>,
    /// The last frame captured (the screen share's, for "camera over screen").
    pub latest: LatestFrame,
    /// "Camera over screen": the camera's frames composited over this screen before they go
    /// anywhere (preview, encoders), so the camera track carries the layout.
    pip: Arc<Mutex<Option<Pip>>>,
}

/// The last frame a pipeline captured (a frame clone shares its pixels).
pub(crate) type LatestFrame = Arc<Mutex<Option<VideoFrame>>>;

struct Pip {
    compositor: Compositor,
    screen: LatestFrame,
    failed: bool,
}

impl Pip {
    /// The composite, or the camera alone while the screen has no frame or composing fails.
    fn apply(&mut self, camera: VideoFrame) -> VideoFrame {
        let screen = self.screen.lock().ok().and_then(|s| s.clone());
        let Some(screen) = screen else {
            return camera;
        };
        match self.compositor.compose(&screen, &camera) {
            Ok(f) => f,
            Err(e) => {
                if !std::mem::replace(&mut self.failed, true) {
                    tracing::warn!("camera over screen: {e}; sending the camera alone");
                }
                camera
            }
        }
    }
}

impl VideoPipeline {
    /// Opens the source and starts its thread (preview only, no encoders yet). `open` is
    /// what a screen share's opening needs: a way to give up on the desktop's dialog, and
    /// where the desktop's consent is kept.
    pub fn start(
        spec: &VideoSourceSpec,
        clock: MediaClock,
        feed: Feed,
        counters: Arc<Counters>,
        events: mpsc::Sender<MediaEvent>,
        open: &OpenShare,
    ) -> Result<Self, MediaError> {
        let (mut reader, width, height, fps) = VideoReader::open(spec, &clock, open)?;
        let stop = Arc::new(AtomicBool::new(false));
        let camera_off = Arc::new(AtomicBool::new(false));
        let sinks: Arc<Mutex<Vec<Arc<Slot>>>> = Arc::default();
        let latest = LatestFrame::default();
        let pip: Arc<Mutex<Option<Pip>>> = Arc::default();
        let (t_stop, t_off, t_sinks, t_counters, t_clock, t_latest, t_pip) = (
            stop.clone(),
            camera_off.clone(),
            sinks.clone(),
            counters.clone(),
            clock.clone(),
            latest.clone(),
            pip.clone(),
        );
        let source = std::thread::Builder::new()
            .name("video-source".into())
            .spawn(move || {
                let mut last_preview = Instant::now() - Duration::from_secs(1);
                let fan_out = |mut frame: VideoFrame, last_preview: &mut Instant| {
                    t_counters.captured.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut pip) = t_pip.lock()
                        && let Some(pip) = pip.as_mut()
                    {
                        frame = pip.apply(frame);
                    }
                    if feed == Feed::Screen
                        && let Ok(mut latest) = t_latest.lock()
                    {
                        *latest = Some(frame.clone());
                    }
                    if let Ok(sinks) = t_sinks.lock() {
                        for s in sinks.iter() {
                            if s.push(frame.clone()) {
                                t_counters.encoder_dropped.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    if last_preview.elapsed() >= Duration::from_millis(66) {
                        *last_preview = Instant::now();
                        let _ = events.try_send(feed.preview(frame));
                    }
                };
                if let VideoReader::Screen(_, first) = &mut reader
                    && let Some(frame) = first.take()
                {
                    fan_out(frame, &mut last_preview);
                }
                if let VideoReader::Device(handle) | VideoReader::Screen(handle, _) = &reader {
                    let lost = match feed {
                        Feed::Camera => "the camera stopped",
                        Feed::Screen => "the screen capture stopped",
                    };
                    let failed = |e| feed.failed(e);
                    drain_device(handle, &t_stop, &events, lost, failed, |frame| {
                        if !t_off.load(Ordering::Acquire) {
                            fan_out(frame, &mut last_preview);
                        }
                        true
                    });
                    return;
                }
                let period = Duration::from_micros(1_000_000 / fps as u64);
                let mut next = t_clock.now();
                while !t_stop.load(Ordering::Acquire) {
                    t_clock.sleep_until(next);
                    next = next.plus(period);
                    let now = t_clock.now();
                    if now.as_micros() > next.as_micros() + 5 * period.as_micros() as u64 {
                        // fell far behind (suspended?): skip ahead instead of bursting
                        next = now.plus(period);
                    }
                    if t_off.load(Ordering::Acquire) {
                        continue;
                    }
                    let frame = match reader.next(now) {
                        Ok(f) => f,
                        Err(e) => {
                            let _ = events.try_send(feed.failed(e));
                            return;
                        }
                    };
                    fan_out(frame, &mut last_preview);
                }
            })
            .map_err(MediaError::Io)?;
        Ok(VideoPipeline {
            width,
            height,
            fps,
            feed,
            stop,
            enc_stop: Arc::new(AtomicBool::new(false)),
            camera_off,
            sinks,
            source: Some(source),
            encoders: Vec::new(),
            counters,
            status: Arc::default(),
            latest,
            pip,
        })
    }

    /// Composites this (camera) pipeline's frames over `screen`'s latest, or stops doing so.
    pub fn set_pip(&self, pip: Option<(PipLayout, LatestFrame)>) {
        if let Ok(mut slot) = self.pip.lock() {
            *slot = pip.map(|(layout, screen)| Pip {
                compositor: Compositor::new(layout),
                screen,
                failed: false,
            });
        }
    }

    /// The layers to encode: the simulcast ladder, or one full-size layer.
    pub fn layers(&self, simulcast: bool) -> Vec<Layer> {
        let ladder = Layer::ladder(self.width, self.height);
        if simulcast && ladder.len() > 1 {
            ladder
        } else {
            ladder
                .into_iter()
                .filter(|l| l.quality == Quality::High)
                .collect()
        }
    }

    pub fn set_camera_off(&self, off: bool) {
        self.camera_off.store(off, Ordering::Release);
    }
}

impl Drop for VideoPipeline {
    fn drop(&mut self) {
        self.stop_encoders();
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.source.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn y4m_header_parses() {
        assert_eq!(
            parse_y4m_header("YUV4MPEG2 W640 H360 F30000:1001 Ip A1:1 C420jpeg\n"),
            Ok((640, 360, 30))
        );
        assert!(parse_y4m_header("YUV4MPEG2 W640 H360 C444").is_err());
        assert!(parse_y4m_header("RIFF").is_err());
    }
}
