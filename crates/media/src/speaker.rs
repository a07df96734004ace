//! Playback of a short mono clip on the default output device via `cpal`: the mic check
//! plays the creator's own processed voice back so they hear what viewers will hear.
//! The cpal stream is not `Send`, so one thread owns it for the clip's length.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use crossbeam_channel::bounded;

use crate::audio::Resampler48k;
use crate::error::{MediaError, Result};
use crate::frame::AUDIO_RATE;

fn dev_err(e: impl std::fmt::Display) -> MediaError {
    MediaError::Device(e.to_string())
}

/// A clip being played; [`Playback::wait`] blocks until its end (or an error).
pub struct Playback {
    thread: Option<JoinHandle<Result<()>>>,
}

impl Playback {
    /// Waits for the clip's end; the device's error if it failed on the way.
    pub fn wait(mut self) -> Result<()> {
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(MediaError::Device("the playback thread panicked".into())),
            None => Ok(()),
        }
    }
}

/// How long the clip may stand still after a device error before the error counts: cpal's
/// ALSA worker goes on after most errors (PulseAudio's ALSA plugin answered one
/// `snd_pcm_avail_delay` with EIO now and then, and the next period played).
const STALLED: Duration = Duration::from_secs(1);

/// The device's config to use: 48 kHz if it takes it (no resampling), else its default.
fn output_config(device: &cpal::Device) -> Result<cpal::SupportedStreamConfig> {
    let wanted = [
        cpal::SampleFormat::F32,
        cpal::SampleFormat::I16,
        cpal::SampleFormat::I32,
    ];
    if let Ok(ranges) = device.supported_output_configs() {
        let at_48k = ranges
            .filter(|r| wanted.contains(&r.sample_format()))
            .filter(|r| r.min_sample_rate() <= AUDIO_RATE && AUDIO_RATE <= r.max_sample_rate())
            .min_by_key(|r| {
                (
                    r.channels().abs_diff(2),
                    wanted.iter().position(|f| *f == r.sample_format()),
                )
            });
        if let Some(r) = at_48k {
            return Ok(r.with_sample_rate(AUDIO_RATE));
        }
    }
    device.default_output_config().map_err(dev_err)
}

/// On Linux, ALSA (a desktop's PulseAudio or PipeWire is reached through ALSA's pulse
/// plugin): with cpal 0.18's own PulseAudio host the clip went into the server's buffer
/// at once and a null sink's monitor heard only 0.02-0.3 s of a 1.5 s clip; through ALSA
/// it heard all of it. Elsewhere the platform's default host (WASAPI, CoreAudio).
fn output_host() -> Result<cpal::Host> {
    #[cfg(target_os = "linux")]
    {
        cpal::host_from_id(cpal::HostId::Alsa).map_err(dev_err)
    }
    #[cfg(not(target_os = "linux"))]
    {
        Ok(cpal::default_host())
    }
}

/// Plays `samples` (mono, 48 kHz, -1..1) on the default output device. Returns once the
/// device is playing; the clip runs on its own thread.
pub fn play_mono_48k(samples: Vec<f32>) -> Result<Playback> {
    let host = output_host()?;
    let device = host
        .default_output_device()
        .ok_or_else(|| MediaError::Device("no default output device".into()))?;
    let supported = output_config(&device)?;
    let rate = supported.sample_rate();
    let channels = supported.channels().max(1) as usize;
    let format = supported.sample_format();
    let config: cpal::StreamConfig = supported.config();

    // Resampled and spread over the device's channels up front: a clip is seconds long.
    let mut rs = Resampler48k::between(AUDIO_RATE, rate, 1)?;
    let mut mono = rs.process(&samples)?;
    mono.extend(rs.flush()?);
    let pcm: Arc<Vec<f32>> = Arc::new(
        mono.iter()
            .flat_map(|&s| std::iter::repeat_n(s.clamp(-1.0, 1.0), channels))
            .collect(),
    );
    let total = mono.len();
    let (ready_tx, ready_rx) = bounded::<Result<()>>(1);
    let thread = std::thread::Builder::new()
        .name("speaker".into())
        .spawn(move || -> Result<()> {
            // (whether the device is gone, the error)
            let (err_tx, err_rx) = bounded::<(bool, String)>(16);
            let err_fn = move |e: cpal::Error| {
                let gone = matches!(
                    e.kind(),
                    cpal::ErrorKind::DeviceNotAvailable | cpal::ErrorKind::HostUnavailable
                );
                let _ = err_tx.try_send((gone, e.to_string()));
            };
            let pos = Arc::new(AtomicUsize::new(0));
            // When the clip's last sample reaches the speaker: known once it is written,
            // from the device's own latency (cpal's playback timestamp).
            let ends_at: Arc<Mutex<Option<Instant>>> = Arc::default();
            // Copies the next samples into the device's buffer, silence past the end.
            let fill = {
                let (pcm, pos, ends_at) = (pcm.clone(), pos.clone(), ends_at.clone());
                move |out: &mut dyn FnMut(usize, f32),
                      len: usize,
                      info: &cpal::OutputCallbackInfo| {
                    let at = pos.fetch_add(len, Ordering::Relaxed);
                    for i in 0..len {
                        out(i, pcm.get(at + i).copied().unwrap_or(0.0));
                    }
                    if at <= pcm.len() && pcm.len() <= at + len {
                        let ts = info.timestamp();
                        let latency = ts.playback.duration_since(ts.callback);
                        let rest = ((pcm.len() - at) / channels) as f64 / rate.max(1) as f64;
                        if let Ok(mut e) = ends_at.lock() {
                            *e = Some(Instant::now() + latency + Duration::from_secs_f64(rest));
                        }
                    }
                }
            };
            // A start that fails hands its error to the caller as it is, and the thread ends
            // quietly (it used to wrap it again: "device error: device error: …").
            let fail = |e: MediaError| -> Result<()> {
                let _ = ready_tx.send(Err(e));
                Ok(())
            };
            let stream = match format {
                cpal::SampleFormat::F32 => device.build_output_stream(
                    config,
                    move |d: &mut [f32], info: &cpal::OutputCallbackInfo| {
                        let n = d.len();
                        fill(&mut |i, v| d[i] = v, n, info)
                    },
                    err_fn,
                    None,
                ),
                cpal::SampleFormat::I16 => device.build_output_stream(
                    config,
                    move |d: &mut [i16], info: &cpal::OutputCallbackInfo| {
                        let n = d.len();
                        fill(&mut |i, v| d[i] = (v * 32767.0) as i16, n, info)
                    },
                    err_fn,
                    None,
                ),
                cpal::SampleFormat::I32 => device.build_output_stream(
                    config,
                    move |d: &mut [i32], info: &cpal::OutputCallbackInfo| {
                        let n = d.len();
                        fill(
                            &mut |i, v| d[i] = (v as f64 * 2_147_483_647.0) as i32,
                            n,
                            info,
                        )
                    },
                    err_fn,
                    None,
                ),
                other => return fail(dev_err(format!("unsupported sample format {other}"))),
            };
            let stream = match stream.map_err(dev_err).and_then(|s| {
                s.play().map_err(dev_err)?;
                Ok(s)
            }) {
                Ok(s) => s,
                Err(e) => return fail(e),
            };
            let _ = ready_tx.send(Ok(()));
            // Until the last sample has been played (then a little more), or a device that
            // stopped taking samples.
            let clip = Duration::from_secs_f64(total as f64 / rate.max(1) as f64);
            let give_up = Instant::now() + clip + Duration::from_secs(10);
            // The last error that did not end the stream, and how far the clip was then.
            let mut hiccup: Option<(Instant, usize, String)> = None;
            loop {
                while let Ok((gone, e)) = err_rx.try_recv() {
                    if gone {
                        return Err(MediaError::DeviceLost(e));
                    }
                    tracing::warn!(error = %e, "output device error; the clip plays on");
                    hiccup = Some((Instant::now(), pos.load(Ordering::Relaxed), e));
                }
                if let Some((at, was, e)) = &hiccup {
                    if pos.load(Ordering::Relaxed) > *was {
                        hiccup = None;
                    } else if at.elapsed() >= STALLED {
                        return Err(MediaError::DeviceLost(e.clone()));
                    }
                }
                let end = ends_at.lock().ok().and_then(|e| *e);
                if end.is_some_and(|e| Instant::now() >= e + Duration::from_millis(100)) {
                    break;
                }
                if Instant::now() > give_up {
                    return Err(MediaError::Device(
                        "the output device stopped taking samples".into(),
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            drop(stream);
            Ok(())
        })
        .map_err(MediaError::Io)?;
    match ready_rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(())) => Ok(Playback {
            thread: Some(thread),
        }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => Err(MediaError::Device(
            "the output device did not start within 10 s".into(),
        )),
    }
}
