//! Camera and microphone lists for the setup pickers, enumerated on a blocking thread of the
//! runtime (device queries may take a while; the UI thread never waits for them), the
//! sources a first start picks (the system's devices, test sources only when there is no
//! device) and the creator's choice, remembered across restarts in `devices.json` in the
//! config directory.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use streamit_session::{AudioSourceSpec, VideoSourceSpec};

/// One entry of a picker.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice<T> {
    pub spec: T,
    /// The device's name (what is remembered).
    pub name: String,
    /// What the picker shows.
    pub label: String,
}

/// What the last scan found, and what the creator chose last time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceList {
    pub cameras: Vec<Choice<VideoSourceSpec>>,
    pub microphones: Vec<Choice<AudioSourceSpec>>,
    /// The system's default input among `microphones`.
    pub default_microphone: Option<usize>,
    /// Monitors and windows to share.
    pub screens: Vec<streamit_session::ScreenInfo>,
    pub remembered: Remembered,
}

/// The creator's camera choice, by device name (indices change when devices come and go).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "name")]
pub enum CameraChoice {
    Device(String),
    TestPattern,
    Off,
}

/// The creator's microphone choice, by device name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "name")]
pub enum MicChoice {
    Device(String),
    TestTone,
    None,
}

/// What is remembered across restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Remembered {
    #[serde(default)]
    pub camera: Option<CameraChoice>,
    #[serde(default)]
    pub microphone: Option<MicChoice>,
    /// The noise filter switched on or off by hand (`None`: the default, on for a mic).
    #[serde(default)]
    pub noise_filter: Option<bool>,
    /// Auto level switched on or off by hand.
    #[serde(default)]
    pub auto_level: Option<bool>,
    /// "Record while live" ticked or unticked.
    #[serde(default)]
    pub record: Option<bool>,
}

/// The sources to start with.
#[derive(Debug, Clone, PartialEq)]
pub struct Initial {
    pub video: VideoSourceSpec,
    pub camera_off: bool,
    pub audio: AudioSourceSpec,
}

/// The test pattern the pickers offer (720p30, the size a webcam gives).
pub fn test_pattern() -> VideoSourceSpec {
    VideoSourceSpec::default()
}

/// The sources a start picks: what the creator chose last time if it is still there, else the
/// system's devices (the first camera, the default input); the test sources only where no
/// device exists.
pub fn initial(list: &DeviceList) -> Initial {
    let camera_named = |name: &str| {
        list.cameras
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.spec.clone())
    };
    let first_camera = list.cameras.first().map(|c| c.spec.clone());
    let (video, camera_off) = match &list.remembered.camera {
        Some(CameraChoice::Device(name)) if camera_named(name).is_some() => {
            (camera_named(name).unwrap_or_default(), false)
        }
        Some(CameraChoice::TestPattern) => (test_pattern(), false),
        Some(CameraChoice::Off) => (first_camera.unwrap_or_else(test_pattern), true),
        _ => (first_camera.unwrap_or_else(test_pattern), false),
    };
    let mic_named = |name: &str| {
        list.microphones
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.spec.clone())
    };
    let system_mic = list
        .default_microphone
        .and_then(|i| list.microphones.get(i))
        .or(list.microphones.first())
        .map(|m| m.spec.clone());
    let audio = match &list.remembered.microphone {
        Some(MicChoice::Device(name)) if mic_named(name).is_some() => {
            mic_named(name).unwrap_or_default()
        }
        Some(MicChoice::TestTone) => AudioSourceSpec::Tone,
        Some(MicChoice::None) => AudioSourceSpec::None,
        _ => system_mic.unwrap_or(AudioSourceSpec::Tone),
    };
    Initial {
        video,
        camera_off,
        audio,
    }
}

/// Where the choice is kept: `$STREAMIT_STUDIO_CONFIG_DIR` or the user's config directory
/// (`~/.config/streamit-studio` on Linux).
fn remembered_path() -> Option<PathBuf> {
    let dir = match std::env::var_os("STREAMIT_STUDIO_CONFIG_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => directories::ProjectDirs::from("", "", "streamit-studio")?
            .config_dir()
            .to_path_buf(),
    };
    Some(dir.join("devices.json"))
}

fn load_remembered() -> Remembered {
    let Some(path) = remembered_path() else {
        return Remembered::default();
    };
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!("ignoring {}: {e}", path.display());
            Remembered::default()
        }),
        Err(_) => Remembered::default(),
    }
}

fn store_remembered(r: &Remembered) {
    let Some(path) = remembered_path() else {
        return;
    };
    let result = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| {
            let json = serde_json::to_vec_pretty(r).map_err(std::io::Error::other)?;
            std::fs::write(&path, json)
        });
    if let Err(e) = result {
        tracing::warn!(
            "cannot remember the device choice in {}: {e}",
            path.display()
        );
    }
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

fn scan_now() -> DeviceList {
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
                name: c.name,
            }
        })
        .collect();
    let mics = streamit_media::mic::list_microphones().unwrap_or_else(|e| {
        tracing::warn!("microphones could not be listed: {e}");
        Vec::new()
    });
    let default_microphone = streamit_media::mic::default_microphone(&mics);
    let microphones = mics
        .into_iter()
        .enumerate()
        .map(|(n, m)| Choice {
            spec: AudioSourceSpec::Mic(Some(n)),
            label: m.name.clone(),
            name: m.name,
        })
        .collect();
    // Where sharing cannot work (Wayland, macOS, Windows for now) the picker says why
    // when a share is started; the list is just empty.
    let screens = streamit_session::list_screen_sources().unwrap_or_else(|e| {
        tracing::info!("screens and windows could not be listed: {e}");
        Vec::new()
    });
    DeviceList {
        cameras,
        microphones,
        default_microphone,
        screens,
        remembered: load_remembered(),
    }
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
            let list = scan_now();
            if let Ok(mut f) = found.lock() {
                *f = Some(list);
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

    /// The names of the screens and windows found (`None` before the first scan ended).
    pub fn screen_names(&self) -> Option<Vec<String>> {
        let found = self.found.lock().ok()?;
        Some(
            found
                .as_ref()?
                .screens
                .iter()
                .map(|s| s.name.clone())
                .collect(),
        )
    }

    /// Remembers the creator's choice (written off the UI thread).
    pub fn remember(&mut self, runtime: &tokio::runtime::Handle, r: Remembered) {
        if let Ok(mut f) = self.found.lock()
            && let Some(list) = f.as_mut()
        {
            list.remembered = r.clone();
        }
        runtime.spawn_blocking(move || store_remembered(&r));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn camera(index: u32, name: &str) -> Choice<VideoSourceSpec> {
        Choice {
            spec: VideoSourceSpec::Camera {
                index,
                width: 1280,
                height: 720,
                fps: 30,
            },
            name: name.into(),
            label: name.into(),
        }
    }

    fn mic(n: usize, name: &str) -> Choice<AudioSourceSpec> {
        Choice {
            spec: AudioSourceSpec::Mic(Some(n)),
            name: name.into(),
            label: name.into(),
        }
    }

    #[test]
    fn real_devices_come_first_and_test_sources_only_without_a_device() {
        let none = DeviceList::default();
        assert_eq!(
            initial(&none),
            Initial {
                video: test_pattern(),
                camera_off: false,
                audio: AudioSourceSpec::Tone
            }
        );
        let list = DeviceList {
            cameras: vec![camera(0, "Integrated Camera"), camera(2, "Logitech C920")],
            microphones: vec![mic(0, "Built-in Audio"), mic(1, "Yeti Stereo Microphone")],
            default_microphone: Some(1),
            screens: Vec::new(),
            remembered: Remembered::default(),
        };
        let i = initial(&list);
        assert_eq!(i.video, list.cameras[0].spec);
        assert_eq!(i.audio, AudioSourceSpec::Mic(Some(1)));
        assert!(!i.camera_off);

        // The remembered choice wins while the device is there…
        let mut chosen = list.clone();
        chosen.remembered = Remembered {
            camera: Some(CameraChoice::Device("Logitech C920".into())),
            microphone: Some(MicChoice::Device("Built-in Audio".into())),
            ..Default::default()
        };
        let i = initial(&chosen);
        assert_eq!(i.video, list.cameras[1].spec);
        assert_eq!(i.audio, AudioSourceSpec::Mic(Some(0)));
        // …and the system's devices take over when it is gone.
        chosen.remembered.camera = Some(CameraChoice::Device("unplugged".into()));
        chosen.remembered.microphone = Some(MicChoice::Device("unplugged".into()));
        let i = initial(&chosen);
        assert_eq!(
            (i.video, i.audio),
            (list.cameras[0].spec.clone(), AudioSourceSpec::Mic(Some(1)))
        );
        // Test sources and off are remembered too.
        chosen.remembered = Remembered {
            camera: Some(CameraChoice::Off),
            microphone: Some(MicChoice::TestTone),
            ..Default::default()
        };
        let i = initial(&chosen);
        assert!(i.camera_off);
        assert_eq!(i.audio, AudioSourceSpec::Tone);
    }

    #[test]
    fn the_choice_survives_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        // SAFETY: the only test in this binary that reads or writes this variable.
        unsafe { std::env::set_var("STREAMIT_STUDIO_CONFIG_DIR", dir.path()) };
        assert_eq!(load_remembered(), Remembered::default());
        let r = Remembered {
            camera: Some(CameraChoice::TestPattern),
            microphone: Some(MicChoice::Device("Yeti Stereo Microphone".into())),
            noise_filter: Some(false),
            auto_level: Some(true),
            record: Some(true),
        };
        store_remembered(&r);
        assert_eq!(load_remembered(), r);
        std::fs::write(dir.path().join("devices.json"), b"{not json").expect("write");
        assert_eq!(load_remembered(), Remembered::default());
        unsafe { std::env::remove_var("STREAMIT_STUDIO_CONFIG_DIR") };
    }
}
