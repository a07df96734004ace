//! Camera and microphone lists for the setup pickers, enumerated on a blocking thread of the
//! runtime (device queries may take a while; the UI thread never waits for them).

use std::sync::{Arc, Mutex};

use streamit_session::{AudioSourceSpec, VideoSourceSpec};

/// One entry of a picker.
#[derive(Debug, Clone)]
pub struct Choice<T> {
    pub spec: T,
    pub label: String,
}

/// What the last scan found.
#[derive(Debug, Clone, Default)]
pub struct DeviceList {
    pub cameras: Vec<Choice<VideoSourceSpec>>,
    pub microphones: Vec<Choice<AudioSourceSpec>>,
}

/// The latest scan, shared with the scanning thread.
#[derive(Default)]
pub struct Devices {
    found: Arc<Mutex<Option<DeviceList>>>,
    scanning: bool,
}

/// The camera mode to ask for: the largest one up to 1280×720 (30 fps preferred).
fn pick_mode(modes: &[streamit_media::camera::CameraMode]) -> (u32, u32, u32) {
    modes
        .iter()
        .filter(|m| m.format.is_some() && m.width <= 1280 && m.height <= 720)
        .max_by_key(|m| (m.width * m.height, m.fps.min(30)))
        .map(|m| (m.width, m.height, m.fps.min(30)))
        .unwrap_or((1280, 720, 30))
}

impl Devices {
    /// Starts a scan unless one is running; `ctx` is repainted when it is done.
    pub fn scan(&mut self, runtime: &tokio::runtime::Handle, ctx: &egui::Context) {
        if self.scanning {
            return;
        }
        self.scanning = true;
        let found = self.found.clone();
        let ctx = ctx.clone();
        runtime.spawn_blocking(move || {
            let cameras = streamit_media::camera::list_cameras()
                .unwrap_or_default()
                .into_iter()
                .map(|c| {
                    let (width, height, fps) = pick_mode(&c.modes);
                    Choice {
                        spec: VideoSourceSpec::Camera {
                            index: c.index,
                            width,
                            height,
                            fps,
                        },
                        label: format!("{} · {width}×{height}", c.name),
                    }
                })
                .collect();
            let mut microphones = Vec::new();
            if let Ok(mics) = streamit_media::mic::list_microphones() {
                if !mics.is_empty() {
                    microphones.push(Choice {
                        spec: AudioSourceSpec::Mic(None),
                        label: "Default microphone".into(),
                    });
                }
                for (n, m) in mics.into_iter().enumerate() {
                    microphones.push(Choice {
                        spec: AudioSourceSpec::Mic(Some(n)),
                        label: m.name,
                    });
                }
            }
            if let Ok(mut f) = found.lock() {
                *f = Some(DeviceList {
                    cameras,
                    microphones,
                });
            }
            ctx.request_repaint();
        });
    }

    /// The latest list (`None` until the first scan finished). Never blocks for long: the
    /// scanning thread holds the lock only to store its result.
    pub fn list(&mut self) -> Option<DeviceList> {
        let list = self.found.lock().ok()?.clone();
        if list.is_some() {
            self.scanning = false;
        }
        list
    }
}
