//! The devices before and while on air: starting the sources (preview and mic meter),
//! choosing source and codec while off air, mute and camera, and what the media threads
//! report (preview frames, the mic level, a failed device), and the mic check.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Task;
use crate::error::{Result, SessionError};
use crate::media::{
    AudioPipeline, AudioSourceSpec, Codec, Feed, MediaEvent, VideoPipeline, VideoSourceSpec,
};
use crate::state::{MediaSelection, MicCheck};
use streamit_media::screen::OpenShare;
use streamit_media::{AUDIO_RATE, AudioLevel};

impl Task {
    pub(super) fn selection(&self) -> MediaSelection {
        MediaSelection {
            video: self.config.video.clone(),
            audio: self.config.audio.clone(),
            noise_suppression: self.noise_filter_on(),
            auto_gain: self.auto_gain_on(),
            codec: self.config.codec,
            simulcast: self.config.simulcast,
            mic_muted: self.mic_muted,
            camera_off: self.camera_off,
        }
    }

    pub(super) fn not_on_air(&self, what: &str) -> Result<()> {
        if self.live.is_some() || self.state.stream_state.is_on_air() {
            return Err(SessionError::Invalid(format!(
                "cannot {what} while on air; end the stream first"
            )));
        }
        Ok(())
    }

    /// Starts the sources (preview, meter) if they are not running.
    pub(super) fn ensure_sources(&mut self) -> Result<()> {
        if self.video.is_none() {
            let v = VideoPipeline::start(
                &self.config.video,
                self.clock.clone(),
                Feed::Camera,
                self.counters.clone(),
                self.media_tx.clone(),
                &OpenShare::default(),
            )?;
            v.set_camera_off(self.camera_off);
            self.video = Some(v);
            self.apply_pip();
        }
        if self.audio.is_none() {
            self.audio = AudioPipeline::start(
                &self.config.audio,
                self.noise_filter_on(),
                self.auto_gain_on(),
                self.record_tap.clone(),
                self.clock.clone(),
                self.counters.clone(),
                self.media_tx.clone(),
            )?;
            if let Some(a) = &self.audio {
                a.muted.store(self.mic_muted, Ordering::Release);
            }
        }
        Ok(())
    }

    pub(super) fn select_video_source(&mut self, spec: VideoSourceSpec) -> Result<()> {
        self.not_on_air("change the video source")?;
        let previewing = self.video.is_some();
        self.video = None;
        self.state.preview = None;
        self.config.video = spec;
        self.state.media = Some(self.selection());
        if previewing {
            self.ensure_sources()?;
        }
        Ok(())
    }

    pub(super) fn select_audio_source(&mut self, spec: AudioSourceSpec) -> Result<()> {
        self.not_on_air("change the audio source")?;
        let previewing = self.video.is_some() || self.audio.is_some();
        self.audio = None;
        self.state.mic_level = 0.0;
        self.config.audio = spec;
        self.state.media = Some(self.selection());
        if previewing {
            self.ensure_sources()?;
        }
        Ok(())
    }

    /// Whether the noise filter runs on the current audio source.
    fn noise_filter_on(&self) -> bool {
        self.config.noise_suppression.applies_to(&self.config.audio)
    }

    /// Whether automatic gain runs on the current audio source.
    fn auto_gain_on(&self) -> bool {
        self.config.auto_gain.applies_to(&self.config.audio)
    }

    pub(super) fn set_auto_gain(&mut self, g: crate::media::AutoGain) {
        self.config.auto_gain = g;
        if let Some(a) = &self.audio {
            a.auto_gain.store(self.auto_gain_on(), Ordering::Relaxed);
        }
        self.state.media = Some(self.selection());
    }

    pub(super) fn set_noise_suppression(&mut self, n: crate::media::NoiseSuppression) {
        self.config.noise_suppression = n;
        if let Some(a) = &self.audio {
            a.denoise.store(self.noise_filter_on(), Ordering::Relaxed);
        }
        self.state.media = Some(self.selection());
    }

    pub(super) fn select_codec(&mut self, codec: Codec, simulcast: bool) -> Result<()> {
        self.not_on_air("change the codec")?;
        self.config.codec = codec;
        self.config.simulcast = simulcast;
        self.state.media = Some(self.selection());
        Ok(())
    }

    pub(super) fn toggle_mic(&mut self) -> Result<()> {
        self.mic_muted = !self.mic_muted;
        if let Some(a) = &self.audio {
            a.muted.store(self.mic_muted, Ordering::Release);
        }
        if let Some(live) = &self.live
            && let Some(t) = &live.audio
        {
            live.handle.set_muted(t.cid(), self.mic_muted)?;
        }
        self.state.media = Some(self.selection());
        Ok(())
    }

    pub(super) fn toggle_camera(&mut self) -> Result<()> {
        self.camera_off = !self.camera_off;
        if let Some(v) = &self.video {
            v.set_camera_off(self.camera_off);
        }
        if self.camera_off {
            self.state.preview = None;
        }
        if let Some(live) = &self.live {
            if let Some(t) = &live.video {
                live.handle.set_muted(t.cid(), self.camera_off)?;
            }
            if !self.camera_off {
                live.encoders.iter().for_each(|e| e.request_keyframe());
            }
        }
        self.state.media = Some(self.selection());
        Ok(())
    }

    /// Waits for `call` (a backend call that does not borrow the task) while the preview
    /// and the mic meter go on: a slow server holds the command, never the picture.
    pub(super) async fn while_media_flows<T>(&mut self, call: impl Future<Output = T>) -> T {
        tokio::pin!(call);
        loop {
            tokio::select! {
                out = &mut call => return out,
                Some(ev) = self.media_rx.recv() => self.on_media(ev).await,
            }
        }
    }

    /// Records 3 s of the microphone as it would go out, then plays it back.
    pub(super) fn mic_check(&mut self) -> Result<()> {
        self.not_on_air("run a mic check")?;
        self.ensure_sources()?;
        let Some(audio) = &self.audio else {
            self.state.mic_check = MicCheck::Failed("no audio source is selected".into());
            return Ok(());
        };
        audio.start_mic_check();
        self.state.mic_check = MicCheck::Listening(0.0);
        Ok(())
    }

    /// Plays the mic check's clip on a thread of its own; its end comes back as an event.
    fn play_mic_check(&mut self, clip: Vec<f32>) {
        let peak_dbfs = clip
            .chunks(AUDIO_RATE as usize / 20)
            .map(|c| AudioLevel::measure(c).rms_dbfs())
            .fold(f32::NEG_INFINITY, f32::max);
        self.state.mic_check = MicCheck::Playing { peak_dbfs };
        let events = self.media_tx.clone();
        let spawned = std::thread::Builder::new()
            .name("mic-check".into())
            .spawn(move || {
                let r = streamit_media::speaker::play_mono_48k(clip).and_then(|p| p.wait());
                let _ = events.blocking_send(MediaEvent::MicCheckPlayed(r));
            });
        if let Err(e) = spawned {
            self.state.mic_check = MicCheck::Failed(format!("cannot play the clip back: {e}"));
        }
    }

    pub(super) async fn on_media(&mut self, ev: MediaEvent) {
        match ev {
            MediaEvent::MicCheckProgress(share) => {
                if matches!(self.state.mic_check, MicCheck::Listening(_)) {
                    self.state.mic_check = MicCheck::Listening(share);
                    self.publish();
                }
            }
            MediaEvent::MicCheckRecorded(clip) => {
                self.play_mic_check(clip);
                self.publish();
            }
            MediaEvent::MicCheckPlayed(r) => {
                let peak_dbfs = match self.state.mic_check {
                    MicCheck::Playing { peak_dbfs } => peak_dbfs,
                    _ => f32::NEG_INFINITY,
                };
                self.state.mic_check = match r {
                    Ok(()) => MicCheck::Done { peak_dbfs },
                    Err(e) => MicCheck::Failed(format!("playback failed: {e}")),
                };
                self.publish();
            }
            MediaEvent::Preview(f) => {
                if !self.camera_off {
                    self.state.preview = Some(f);
                    // the preview alone does not need more than ~15 snapshots a second
                    if self.last_preview_sent.elapsed() >= Duration::from_millis(60) {
                        self.last_preview_sent = Instant::now();
                        self.publish();
                    }
                }
            }
            MediaEvent::ScreenPreview(f) => {
                if self.screen.is_some() {
                    self.state.screen_preview = Some(f);
                }
            }
            MediaEvent::ScreenFailed(e) => {
                self.on_screen_failed(e);
                self.publish();
            }
            MediaEvent::MicLevel(l) => {
                self.state.mic_level = l;
            }
            MediaEvent::Failed(e) => {
                let err = SessionError::from(e);
                if self.live.is_some() {
                    self.on_transport_lost(format!("media failed: {err}"), err.kind());
                } else {
                    Arc::make_mut(&mut self.state.errors).push(err.to_user());
                }
                self.video = None;
                self.state.preview = None;
                self.publish();
            }
        }
    }
}
