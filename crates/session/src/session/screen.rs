//! Screen share: a second video track, source screen share, beside the camera. It has its
//! own capture thread, encoder and counters, so a closed window ends the sharing, not the
//! stream, and the camera's figures stay the camera's.

use std::sync::Arc;

use streamit_livekit_publish as lk;
use streamit_media::compose::PipLayout;
use streamit_media::screen::{CancelOpen, OpenShare, ScreenTarget, desktop_picks};
use streamit_media::{Layer, MediaError, Quality};

use super::{Live, Reply, Task};
use crate::error::{Result, SessionError};
use crate::media::{Counters, EncoderControl, Feed, RecordTap, VideoPipeline, VideoSourceSpec};
use crate::state::ScreenShareState;

/// What exists of the screen share while on air.
pub(super) struct ScreenLive {
    pub track: lk::VideoTrackSender,
    pub encoders: Vec<Arc<EncoderControl>>,
}

/// The bitrate a screen share of `width × height` at `fps` is sent at: LiveKit's screen
/// presets (1080p15 at 2.5 Mbit/s, 720p15 at 1.5, 360p15 at 0.4) as a curve in the pixel
/// count, so any window size gets one.
pub(crate) fn screen_bitrate(width: u32, height: u32, fps: u32) -> u32 {
    let pixels = f64::from(width) * f64::from(height) / (1920.0 * 1080.0);
    let rate = (f64::from(fps.max(1)) / 15.0).sqrt();
    (2_500_000.0 * pixels.powf(0.75) * rate).clamp(150_000.0, 8_000_000.0) as u32
}

/// A share being opened on a blocking thread: the capture's start may wait for the user
/// (Wayland's portal asks in the desktop's own dialog), and the loop goes on meanwhile.
pub(super) struct Opening {
    task: tokio::task::JoinHandle<std::result::Result<VideoPipeline, MediaError>>,
    /// Closes the desktop's dialog when the creator moves on before answering it.
    _cancel: CancelOnDrop,
    spec: VideoSourceSpec,
    target: ScreenTarget,
    pip: Option<PipLayout>,
    reply: Option<Reply>,
}

/// Gives up on the opening when the [`Opening`] goes: stopped, replaced, or the session
/// ended before it opened. (Once it has opened, giving up does nothing.)
struct CancelOnDrop(CancelOpen);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// The opening's outcome, once there is one; pending while there is none.
pub(super) async fn opened(
    opening: &mut Option<Opening>,
) -> (Opening, std::result::Result<VideoPipeline, MediaError>) {
    let Some(o) = opening.as_mut() else {
        return std::future::pending().await;
    };
    let r = match (&mut o.task).await {
        Ok(r) => r,
        Err(e) => Err(MediaError::Device(format!("screen share: {e}"))),
    };
    let Some(o) = opening.take() else {
        return std::future::pending().await;
    };
    (o, r)
}

impl Task {
    /// Starts opening the capture; `reply` is answered once it is open or has failed.
    pub(super) fn start_screen_share(
        &mut self,
        target: ScreenTarget,
        fps: u32,
        pip: Option<PipLayout>,
        choose_again: bool,
        reply: Option<Reply>,
    ) {
        self.stop_screen_share();
        let spec = VideoSourceSpec::Screen {
            target: target.clone(),
            fps,
        };
        let (t_spec, clock, events) = (spec.clone(), self.clock.clone(), self.media_tx.clone());
        let open = OpenShare {
            cancel: CancelOpen::default(),
            grants: self.config.screen_grants.clone(),
        };
        let cancel = open.cancel.clone();
        let task = tokio::task::spawn_blocking(move || {
            // Here, not on the loop: the OS keyring's calls block.
            if let Some(grants) = open.grants.as_ref().filter(|_| choose_again) {
                grants.save(None);
            }
            let counters = Arc::new(Counters::default());
            VideoPipeline::start(&t_spec, clock, Feed::Screen, counters, events, &open)
        });
        self.state.screen_share = ScreenShareState::Starting {
            target: target.clone(),
        };
        self.screen_opening = Some(Opening {
            task,
            _cancel: CancelOnDrop(cancel),
            spec,
            target,
            pip,
            reply,
        });
    }

    /// The capture is open (or failed to): sharing starts, on air at once while live.
    pub(super) async fn on_screen_opened(
        &mut self,
        (opening, r): (Opening, std::result::Result<VideoPipeline, MediaError>),
    ) {
        let Opening {
            spec,
            target,
            pip,
            reply,
            ..
        } = opening;
        let r = match r {
            Ok(pipeline) => {
                self.state.screen_share = ScreenShareState::Sharing {
                    source: spec.to_string(),
                    width: pipeline.width,
                    height: pipeline.height,
                    fps: pipeline.fps,
                    on_air: false,
                    desktop_chose: target == ScreenTarget::Screen && desktop_picks(),
                    target,
                    pip,
                };
                self.screen = Some(pipeline);
                self.screen_pip = pip;
                self.apply_pip();
                if self.live.is_some() {
                    self.publish_screen().await
                } else {
                    Ok(())
                }
            }
            Err(e) => {
                let e = SessionError::from(e);
                self.state.screen_share = ScreenShareState::Ended {
                    reason: e.user_message(),
                };
                Err(e)
            }
        };
        self.finish(r, reply);
    }

    /// Puts the camera over the screen (in the camera pipeline), or takes it off.
    pub(super) fn apply_pip(&self) {
        if let Some(camera) = &self.video {
            camera.set_pip(match (self.screen_pip, &self.screen) {
                (Some(layout), Some(screen)) => Some((layout, screen.latest.clone())),
                _ => None,
            });
        }
    }

    /// Publishes the running capture as a screen-share track and starts its encoder; with
    /// "camera over screen" the camera's track already carries it.
    pub(super) async fn publish_screen(&mut self) -> Result<()> {
        if self.screen_pip.is_some() {
            let live = self.live.is_some() && self.screen.is_some();
            if let ScreenShareState::Sharing { on_air, .. } = &mut self.state.screen_share {
                *on_air = live;
            }
            return Ok(());
        }
        let (Some(live), Some(screen)) = (self.live.as_mut(), self.screen.as_mut()) else {
            return Ok(());
        };
        let layer = Layer {
            quality: Quality::High,
            width: screen.width,
            height: screen.height,
            bitrate_bps: screen_bitrate(screen.width, screen.height, screen.fps),
        };
        let mut opts = lk::VideoTrackOptions::new(
            self.config.codec.publish(),
            screen.width,
            screen.height,
            screen.fps,
        );
        opts.name = "screen".into();
        opts.camera = false;
        let handle = live.handle.clone();
        let timeout = self.config.connect_timeout;
        let track = tokio::time::timeout(timeout, handle.publish_video(opts))
            .await
            .map_err(|_| SessionError::ConnectTimeout(timeout.as_secs()))??;
        let encoders = screen.start_encoders(
            self.config.codec,
            &[layer],
            false,
            track.clone(),
            RecordTap::default(),
            self.media_tx.clone(),
        )?;
        live.screen = Some(ScreenLive { track, encoders });
        if let ScreenShareState::Sharing { on_air, .. } = &mut self.state.screen_share {
            *on_air = true;
        }
        Ok(())
    }

    /// A new layout for the running share; the capture goes on. Between the two modes
    /// the screen's own track is published or unpublished while live.
    pub(super) async fn set_screen_layout(&mut self, pip: Option<PipLayout>) -> Result<()> {
        if self.screen.is_none() {
            return Err(SessionError::Invalid("no screen is being shared".into()));
        }
        let was = self.screen_pip;
        self.screen_pip = pip;
        if let ScreenShareState::Sharing { pip: p, .. } = &mut self.state.screen_share {
            *p = pip;
        }
        if was.is_none() && pip.is_some() {
            self.unpublish_screen();
            if let Some(s) = &mut self.screen {
                s.stop_encoders();
            }
        }
        self.apply_pip();
        if was.is_some() && pip.is_none() && self.live.is_some() {
            if let ScreenShareState::Sharing { on_air, .. } = &mut self.state.screen_share {
                *on_air = false;
            }
            self.publish_screen().await?;
        }
        Ok(())
    }

    /// Stops sharing: the track leaves the room, the capture stops (one still opening is
    /// given up, the desktop's dialog closed, and its caller told so).
    pub(super) fn stop_screen_share(&mut self) {
        if let Some(o) = self.screen_opening.take() {
            o.task.abort();
            if let Some(reply) = o.reply {
                let _ = reply.send(Ok(()));
            }
        }
        self.unpublish_screen();
        self.screen = None;
        self.screen_pip = None;
        self.apply_pip();
        self.state.screen_preview = None;
        self.state.screen_share = ScreenShareState::Off;
    }

    fn unpublish_screen(&mut self) {
        if let Some(live) = &mut self.live
            && let Some(s) = live.screen.take()
            && let Err(e) = live.handle.unpublish(s.track.cid())
        {
            tracing::warn!("unpublishing the screen share: {e}");
        }
    }

    /// The capture or its encoder failed: sharing ends and says why; the stream goes on.
    pub(super) fn on_screen_failed(&mut self, e: MediaError) {
        self.end_screen_share(SessionError::from(e).user_message());
    }

    /// Sharing stops by itself (capture or publishing failed) and says why.
    pub(super) fn end_screen_share(&mut self, reason: String) {
        tracing::warn!("screen share ended: {reason}");
        self.stop_screen_share();
        self.state.screen_share = ScreenShareState::Ended { reason };
    }
}

/// The screen share's encoders, for the live loop's key-frame and bitrate handling.
pub(super) fn screen_encoders(live: &Live) -> &[Arc<EncoderControl>] {
    live.screen.as_ref().map_or(&[], |s| &s.encoders[..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn screen_bitrate_follows_livekit_presets() {
        let kbps = |w, h, fps| screen_bitrate(w, h, fps) / 1000;
        assert_eq!(kbps(1920, 1080, 15), 2500);
        // LiveKit: 1500 and 400; the curve lands near them.
        assert!((1200..=1600).contains(&kbps(1280, 720, 15)));
        assert!((400..=600).contains(&kbps(640, 360, 15)));
        assert_eq!(kbps(100, 100, 5), 150);
    }
}
