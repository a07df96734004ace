//! Microphone capture via `cpal` (ALSA on Linux; PulseAudio/PipeWire through ALSA's pulse
//! plugin), converted to 48 kHz f32 frames of 10 ms.

use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use crossbeam_channel::{RecvTimeoutError, bounded};

use crate::audio::{AudioFramer, Resampler48k};
use crate::clock::{MediaClock, MediaTime};
use crate::error::{MediaError, Result};
use crate::frame::AudioFrame;
use crate::source::{AUDIO_SOURCE_QUEUE, AudioSource, SourceHandle, spawn_source};

/// An input device as listed by [`list_microphones`].
#[derive(Clone, Debug, PartialEq)]
pub struct MicInfo {
    /// id to pass to [`MicSource::device`] (cpal's `DeviceId` as text)
    pub id: String,
    /// the device's name as other apps show it (PulseAudio's source description, or the
    /// ALSA card's name)
    pub name: String,
    /// the system's default input (PulseAudio's default source, or ALSA's `default`)
    pub is_default: bool,
    /// default sample rate
    pub sample_rate: u32,
    /// default channel count
    pub channels: u16,
}

fn dev_err(e: impl std::fmt::Display) -> MediaError {
    MediaError::Device(e.to_string())
}

/// What an input device is, from its id and the name its host gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// a microphone or line input a creator would pick
    Capture,
    /// a sink's monitor (what the machine plays), a null or discard device: not listed
    Hidden,
}

/// Sorts out devices nobody records a show from: PulseAudio monitors (`….monitor`, "Monitor
/// of …"), null sources and sinks, and ALSA's `null` PCM ("Discard all samples …").
pub fn classify_input(id: &str, name: &str) -> InputKind {
    // cpal's ids are "<host>:<device>"; the device part is what PulseAudio or ALSA calls it
    let dev = id
        .split_once(':')
        .map_or(id, |(_, d)| d)
        .to_ascii_lowercase();
    let name_l = name.to_ascii_lowercase();
    let null_word = |s: &str| {
        s.split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| w == "null")
    };
    if dev.ends_with(".monitor")
        || name_l.starts_with("monitor of ")
        || null_word(&dev)
        || null_word(&name_l)
        || name_l.contains("discard all samples")
    {
        InputKind::Hidden
    } else {
        InputKind::Capture
    }
}

/// The name to show for an ALSA PCM whose description is the plugin's, not a device's.
fn alsa_name(pcm: &str, desc: &str) -> String {
    match pcm {
        "default" => "System default".into(),
        "pulse" => "PulseAudio".into(),
        "pipewire" => "PipeWire".into(),
        "jack" => "JACK".into(),
        _ => desc.to_string(),
    }
}

/// Lists the capture devices of the default host (PulseAudio when a server runs, else ALSA),
/// by the names other apps show, without monitors, null and discard devices, and once each
/// (ALSA lists one card under several PCMs).
pub fn list_microphones() -> Result<Vec<MicInfo>> {
    let host = cpal::default_host();
    // ALSA names devices by PCM; it exists on Linux only.
    #[cfg(target_os = "linux")]
    let is_alsa = host.id() == cpal::HostId::Alsa;
    #[cfg(not(target_os = "linux"))]
    let is_alsa = false;
    let default_id = host
        .default_input_device()
        .and_then(|d| d.id().ok())
        .map(|i| i.to_string());
    let mut out: Vec<MicInfo> = Vec::new();
    for d in host.input_devices().map_err(dev_err)? {
        let id = d.id().map(|i| i.to_string()).unwrap_or_default();
        let raw = d
            .description()
            .map(|x| x.name().to_string())
            .unwrap_or_else(|_| id.clone());
        if classify_input(&id, &raw) == InputKind::Hidden {
            continue;
        }
        let name = if is_alsa {
            alsa_name(id.split_once(':').map_or(id.as_str(), |(_, p)| p), &raw)
        } else {
            raw
        };
        if out.iter().any(|m| m.name == name) {
            continue;
        }
        let Ok(cfg) = d.default_input_config() else {
            continue;
        };
        out.push(MicInfo {
            is_default: default_id.as_deref() == Some(id.as_str()),
            id,
            name,
            sample_rate: cfg.sample_rate(),
            channels: cfg.channels(),
        });
    }
    Ok(out)
}

/// The microphone to use when the creator has not chosen one: the system's default input when
/// it is a real device, else the first listed (a hidden null source may be PulseAudio's
/// default on a machine without a sound card).
pub fn default_microphone(mics: &[MicInfo]) -> Option<usize> {
    mics.iter()
        .position(|m| m.is_default)
        .or_else(|| (!mics.is_empty()).then_some(0))
}

#[cfg(test)]
mod list_tests {
    use super::*;

    #[test]
    fn monitors_null_and_discard_devices_are_hidden() {
        for (id, name) in [
            (
                "pulseaudio:alsa_output.pci.analog-stereo.monitor",
                "Monitor of Built-in Audio",
            ),
            ("pulseaudio:source.null", "Null Input"),
            ("pulseaudio:null.monitor", "Monitor of Null Output"),
            (
                "alsa:null",
                "Discard all samples (playback) or generate zero samples (capture)",
            ),
        ] {
            assert_eq!(classify_input(id, name), InputKind::Hidden, "{id}");
        }
        for (id, name) in [
            (
                "pulseaudio:alsa_input.usb-Blue_Yeti.analog-stereo",
                "Yeti Stereo Microphone Analog Stereo",
            ),
            ("alsa:sysdefault:CARD=PCH", "HDA Intel PCH, ALC3232 Analog"),
            (
                "alsa:default",
                "Default ALSA Output (currently PulseAudio Sound Server)",
            ),
        ] {
            assert_eq!(classify_input(id, name), InputKind::Capture, "{id}");
        }
        assert_eq!(
            alsa_name(
                "pulse",
                "Playback/recording through the PulseAudio sound server"
            ),
            "PulseAudio"
        );
    }
}

/// Microphone source: captures from a cpal input device, resamples to 48 kHz, mixes to the
/// requested channel count and emits 10 ms f32 frames. The stream's error callback turns a
/// vanished device into [`crate::source::SourceEvent::Error`] (`DeviceLost`).
#[derive(Clone, Debug)]
pub struct MicSource {
    /// device id (see [`list_microphones`]); `None` = the host's default input
    pub device: Option<String>,
    /// output channels, 1 or 2
    pub channels: u16,
    /// queue bound
    pub queue: usize,
}

impl Default for MicSource {
    fn default() -> Self {
        MicSource {
            device: None,
            channels: 1,
            queue: AUDIO_SOURCE_QUEUE,
        }
    }
}

fn remix(input: &[f32], in_ch: usize, out_ch: usize) -> Vec<f32> {
    if in_ch == out_ch {
        return input.to_vec();
    }
    let mut out = Vec::with_capacity(input.len() / in_ch.max(1) * out_ch);
    for frame in input.chunks(in_ch.max(1)) {
        if out_ch == 1 {
            out.push(frame.iter().sum::<f32>() / frame.len() as f32);
        } else {
            let l = frame[0];
            let r = if frame.len() > 1 { frame[1] } else { l };
            out.push(l);
            out.push(r);
        }
    }
    out
}

impl AudioSource for MicSource {
    fn name(&self) -> String {
        format!("microphone {}", self.device.as_deref().unwrap_or("default"))
    }

    fn start(self: Box<Self>, clock: MediaClock) -> Result<SourceHandle<AudioFrame>> {
        let s = *self;
        if !(s.channels == 1 || s.channels == 2) {
            return Err(MediaError::Geometry(format!(
                "microphone channels {}",
                s.channels
            )));
        }
        // open the device here so a missing device is a clear error from `start`
        let host = cpal::default_host();
        let device = match &s.device {
            None => host
                .default_input_device()
                .ok_or_else(|| MediaError::Device("no default input device".into()))?,
            Some(id) => host
                .input_devices()
                .map_err(dev_err)?
                .find(|d| d.id().map(|i| i.to_string()).as_deref() == Ok(id.as_str()))
                .ok_or_else(|| MediaError::Device(format!("no input device with id {id:?}")))?,
        };
        let supported = device.default_input_config().map_err(dev_err)?;
        let in_rate = supported.sample_rate();
        let in_ch = supported.channels() as usize;
        let format = supported.sample_format();
        let config: cpal::StreamConfig = supported.config();
        let out_ch = s.channels;
        let (raw_tx, raw_rx) = bounded::<(Vec<f32>, MediaTime)>(256);
        let (err_tx, err_rx) = bounded::<String>(4);
        let (ready_tx, ready_rx) = bounded::<Result<()>>(1);
        let handle = spawn_source("mic", clock.clone(), s.queue, move |ctx| {
            // the cpal stream is not Send: build and own it on this thread
            let cb_clock = clock.clone();
            let tx = raw_tx.clone();
            let push = move |data: Vec<f32>| {
                let frames = data.len() / in_ch.max(1);
                let dur = frames as u64 * 1_000_000 / in_rate.max(1) as u64;
                let now = cb_clock.now().as_micros();
                let _ = tx.try_send((data, MediaTime(now.saturating_sub(dur))));
            };
            let err_fn = move |e: cpal::Error| {
                let _ = err_tx.try_send(e.to_string());
            };
            let stream = match format {
                cpal::SampleFormat::F32 => device.build_input_stream(
                    config,
                    move |d: &[f32], _: &cpal::InputCallbackInfo| push(d.to_vec()),
                    err_fn,
                    None,
                ),
                cpal::SampleFormat::I16 => device.build_input_stream(
                    config,
                    move |d: &[i16], _: &cpal::InputCallbackInfo| {
                        push(d.iter().map(|&v| v as f32 / 32768.0).collect())
                    },
                    err_fn,
                    None,
                ),
                cpal::SampleFormat::I32 => device.build_input_stream(
                    config,
                    move |d: &[i32], _: &cpal::InputCallbackInfo| {
                        push(d.iter().map(|&v| v as f32 / 2_147_483_648.0).collect())
                    },
                    err_fn,
                    None,
                ),
                other => {
                    let _ = ready_tx.send(Err(MediaError::Device(format!(
                        "unsupported sample format {other}"
                    ))));
                    return;
                }
            };
            let stream = match stream {
                Ok(st) => st,
                Err(e) => {
                    let _ = ready_tx.send(Err(dev_err(e)));
                    return;
                }
            };
            if let Err(e) = stream.play() {
                let _ = ready_tx.send(Err(dev_err(e)));
                return;
            }
            let _ = ready_tx.send(Ok(()));
            let mut resampler = match Resampler48k::new(in_rate, out_ch) {
                Ok(r) => r,
                Err(e) => return ctx.error(e),
            };
            let mut framer = AudioFramer::new(out_ch, 480);
            // timestamps continue from the first chunk's capture time by sample count
            let mut next_pts: Option<u64> = None;
            let mut produced: u64 = 0;
            while !ctx.stopped() {
                if let Ok(e) = err_rx.try_recv() {
                    ctx.error(MediaError::DeviceLost(e));
                    return;
                }
                match raw_rx.recv_timeout(Duration::from_millis(50)) {
                    Ok((data, pts)) => {
                        let base = *next_pts.get_or_insert(pts.as_micros());
                        let mixed = remix(&data, in_ch, out_ch as usize);
                        let pcm = match resampler.process(&mixed) {
                            Ok(p) => p,
                            Err(e) => return ctx.error(e),
                        };
                        let at = MediaTime(base + produced * 1_000_000 / 48_000);
                        produced += (pcm.len() / out_ch as usize) as u64;
                        for f in framer.push(&pcm, at) {
                            ctx.emit(f);
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
            drop(stream);
        })?;
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(handle),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(MediaError::Device(
                "microphone did not start within 10 s".into(),
            )),
        }
    }
}
