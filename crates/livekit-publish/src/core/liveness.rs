//! Noticing a frozen or vanished server from the media plane, long before the
//! signal connection's ping timeout (15 s) or ICE consent (~8.5 s) would.
//!
//! While media goes out, the SFU answers on the publisher transport all the
//! time: TWCC feedback every ~100 ms, receiver reports, STUN consent checks.
//! When nothing at all has come back for [`FEEDBACK_SILENCE`] while we kept
//! sending, the core asks the server over the signal connection (a `PingReq`,
//! after [`PING_AFTER`] of silence). If that ping stays unanswered too (no
//! signal message of any kind since), the server is frozen or gone: the
//! transport counts as lost and the driver resumes/rejoins. A server that
//! still answers on the signal connection is alive, and a media-path-only
//! outage is left to ICE (its restart is what a resume does anyway).
//!
//! Only armed while `Connected`; time comes in as `Instant`.

use std::time::{Duration, Instant};

/// Silence on the publisher transport, while sending, after which (with the
/// signal silent too) the transport counts as lost.
pub const FEEDBACK_SILENCE: Duration = Duration::from_secs(2);
/// Silence after which the server is pinged over the signal connection.
pub const PING_AFTER: Duration = Duration::from_secs(1);
/// Media counts as "being sent" if the last write is at most this old.
const SENDING_RECENTLY: Duration = Duration::from_millis(500);

/// What [`FeedbackWatch::poll`] wants done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to do.
    Fine,
    /// Ask the server over the signal connection (send a `PingReq`).
    Ping,
    /// Neither media feedback nor the signal answered: the transport is lost.
    /// `silent_for`: since the last datagram from the SFU (or since we started
    /// sending without hearing anything).
    Lost {
        /// How long the publisher transport had been silent.
        silent_for: Duration,
    },
}

/// The watchdog's state (see the module docs).
#[derive(Debug, Default)]
pub struct FeedbackWatch {
    armed: bool,
    /// Last datagram from the SFU on the publisher transport (since armed).
    last_feedback: Option<Instant>,
    /// First media write since the last feedback (or since armed).
    sending_since: Option<Instant>,
    /// Last media write.
    last_media: Option<Instant>,
    /// Last message of any kind on the signal connection.
    last_signal: Option<Instant>,
    /// When the server was pinged because of this silence.
    ping_sent: Option<Instant>,
}

impl FeedbackWatch {
    /// Start watching (the session is `Connected`), from a clean slate.
    pub fn arm(&mut self) {
        *self = Self {
            armed: true,
            last_signal: self.last_signal,
            ..Self::default()
        };
    }

    /// Stop watching (recovering, or gone).
    pub fn disarm(&mut self) {
        self.armed = false;
    }

    /// A datagram from the SFU arrived on the publisher transport.
    pub fn feedback(&mut self, now: Instant) {
        self.last_feedback = Some(now);
        self.sending_since = None;
        self.ping_sent = None;
    }

    /// A media packet was handed to the publisher transport.
    pub fn media_sent(&mut self, now: Instant) {
        self.last_media = Some(now);
        if self.sending_since.is_none() {
            self.sending_since = Some(now);
        }
    }

    /// A message arrived on the signal connection (a pong among them).
    pub fn signal(&mut self, now: Instant) {
        self.last_signal = Some(now);
    }

    /// The decision at `now`. `Lost` is reported once (the watch disarms).
    pub fn poll(&mut self, now: Instant) -> Verdict {
        if !self.armed {
            return Verdict::Fine;
        }
        // Only a silence while we were sending all along means anything: media
        // that stopped (mute) or started just now (after a stall of this
        // process) is no evidence.
        let (Some(since), Some(last_media)) = (self.sending_since, self.last_media) else {
            return Verdict::Fine;
        };
        if now.saturating_duration_since(last_media) > SENDING_RECENTLY {
            return Verdict::Fine;
        }
        let quiet_from = self.last_feedback.map_or(since, |f| f.max(since));
        let silent_for = now.saturating_duration_since(self.last_feedback.unwrap_or(since));
        let sending_for = now.saturating_duration_since(quiet_from);
        match self.ping_sent {
            None if sending_for >= PING_AFTER => {
                self.ping_sent = Some(now);
                Verdict::Ping
            }
            None => Verdict::Fine,
            Some(p) if self.last_signal.is_some_and(|s| s >= p) => {
                // The server answered: alive. Watch the silence afresh (a
                // media-path outage is ICE's to notice).
                self.ping_sent = None;
                self.sending_since = Some(now);
                Verdict::Fine
            }
            Some(p)
                if now.saturating_duration_since(p) >= PING_AFTER
                    && sending_for >= FEEDBACK_SILENCE =>
            {
                self.armed = false;
                Verdict::Lost { silent_for }
            }
            Some(_) => Verdict::Fine,
        }
    }

    /// How long the SFU has been silent while we kept sending (`None`: not armed, or
    /// not sending, so silence means nothing). A health display reads it before the
    /// verdict: a second of silence is already a bad connection.
    pub fn silent_for(&self, now: Instant) -> Option<Duration> {
        if !self.armed {
            return None;
        }
        let (since, last_media) = (self.sending_since?, self.last_media?);
        if now.saturating_duration_since(last_media) > SENDING_RECENTLY {
            return None;
        }
        let quiet_from = self.last_feedback.map_or(since, |f| f.max(since));
        Some(now.saturating_duration_since(quiet_from))
    }

    /// When [`FeedbackWatch::poll`] should run next (none: nothing is pending).
    pub fn next_check(&self) -> Option<Instant> {
        if !self.armed {
            return None;
        }
        let since = self.sending_since?;
        let quiet_from = self.last_feedback.map_or(since, |f| f.max(since));
        Some(match self.ping_sent {
            None => quiet_from + PING_AFTER,
            Some(p) => (p + PING_AFTER).max(quiet_from + FEEDBACK_SILENCE),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends media every 20 ms from `from` for `ms`, polling as the core would
    /// (after each write); returns the verdicts other than `Fine` with their time
    /// offset from `from`.
    fn send_for(
        w: &mut FeedbackWatch,
        from: Instant,
        ms: u64,
        mut each: impl FnMut(&mut FeedbackWatch, Instant),
    ) -> Vec<(u64, Verdict)> {
        let mut out = Vec::new();
        for t in (0..ms).step_by(20) {
            let now = from + Duration::from_millis(t);
            w.media_sent(now);
            each(w, now);
            match w.poll(now) {
                Verdict::Fine => {}
                v => out.push((t, v)),
            }
        }
        out
    }

    #[test]
    fn silence_is_measured_only_while_sending() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut w = FeedbackWatch::default();
        assert_eq!(w.silent_for(t0), None);
        w.arm();
        assert_eq!(w.silent_for(t0), None, "nothing sent yet");
        w.media_sent(t0);
        w.feedback(t0 + ms(100));
        // silent from the first packet sent after the last feedback
        w.media_sent(t0 + ms(200));
        w.media_sent(t0 + ms(900));
        assert_eq!(w.silent_for(t0 + ms(900)), Some(ms(700)));
        // media stopped (muted): silence means nothing
        assert_eq!(w.silent_for(t0 + ms(2000)), None);
        w.disarm();
        assert_eq!(w.silent_for(t0 + ms(900)), None);
    }

    #[test]
    fn steady_feedback_is_fine() {
        let t0 = Instant::now();
        let mut w = FeedbackWatch::default();
        w.arm();
        let seen = send_for(&mut w, t0, 10_000, |w, now| w.feedback(now));
        assert!(seen.is_empty(), "{seen:?}");
    }

    #[test]
    fn silence_while_sending_pings_then_is_lost_if_the_signal_is_silent_too() {
        let t0 = Instant::now();
        let mut w = FeedbackWatch::default();
        w.arm();
        let silent_at = 3_000;
        let seen = send_for(&mut w, t0, 6_000, |w, now| {
            if now < t0 + Duration::from_millis(silent_at) {
                w.feedback(now);
            }
        });
        // The last feedback came at 2980 ms: ping 1 s later, lost 2 s later.
        assert_eq!(
            seen,
            vec![
                (4_000, Verdict::Ping),
                (
                    5_000,
                    Verdict::Lost {
                        silent_for: Duration::from_millis(2_020)
                    }
                ),
            ]
        );
        assert_eq!(w.poll(t0 + Duration::from_secs(7)), Verdict::Fine, "once");
        assert_eq!(w.next_check(), None);
    }

    #[test]
    fn a_signal_answer_keeps_the_session_a_media_path_outage_is_left_to_ice() {
        let t0 = Instant::now();
        let mut w = FeedbackWatch::default();
        w.arm();
        w.feedback(t0);
        let mut pinged = None;
        let seen = send_for(&mut w, t0, 5_000, |w, now| {
            // The server answers each ping 50 ms later (a pong).
            if let Some(p) = pinged
                && now >= p + Duration::from_millis(50)
            {
                w.signal(now);
                pinged = None;
            }
            if pinged.is_none() && w.ping_sent.is_some() {
                pinged = w.ping_sent;
            }
        });
        assert!(
            seen.iter().all(|(_, v)| *v == Verdict::Ping),
            "pings, never lost: {seen:?}"
        );
        assert!(seen.len() >= 2, "{seen:?}");
    }

    #[test]
    fn no_verdict_unless_media_goes_out_all_along() {
        let t0 = Instant::now();
        let mut w = FeedbackWatch::default();
        w.arm();
        // Nothing sent (muted): silence means nothing.
        assert_eq!(w.poll(t0 + Duration::from_secs(10)), Verdict::Fine);
        assert_eq!(w.next_check(), None);
        // Media after a stall of this process: the first write starts the clock,
        // it does not count the stall as silence.
        let t1 = t0 + Duration::from_secs(20);
        w.media_sent(t1);
        assert_eq!(w.poll(t1), Verdict::Fine);
        assert_eq!(w.next_check(), Some(t1 + PING_AFTER));
        // Media stopped 600 ms ago: no verdict either.
        assert_eq!(w.poll(t1 + Duration::from_millis(1_600)), Verdict::Fine);
    }

    #[test]
    fn disarmed_says_nothing_and_arming_starts_afresh() {
        let t0 = Instant::now();
        let mut w = FeedbackWatch::default();
        let seen = send_for(&mut w, t0, 5_000, |_, _| {});
        assert!(seen.is_empty(), "not armed: {seen:?}");
        w.arm();
        let t1 = t0 + Duration::from_secs(5);
        let seen = send_for(&mut w, t1, 2_100, |_, _| {});
        assert_eq!(seen.first(), Some(&(1_000, Verdict::Ping)));
        assert!(
            matches!(seen.last(), Some((2_000, Verdict::Lost { .. }))),
            "{seen:?}"
        );
    }

    /// The same decision inside the core, against a fake SFU: frames go out
    /// every 33 ms; the SFU falls silent.
    mod in_the_core {
        use livekit_protocol as proto;
        use proto::signal_request::Message as Req;
        use proto::signal_response::Message as Resp;

        use crate::test_support::Harness;
        use crate::types::*;

        fn frame(n: u64) -> EncodedVideo {
            EncodedVideo {
                layer: None,
                data: vec![
                    0,
                    0,
                    0,
                    1,
                    if n == 0 { 0x65 } else { 0x41 },
                    0x88,
                    0x84,
                    0x21,
                ]
                .into(),
                keyframe: n == 0,
                timestamp: std::time::Duration::from_millis(n * 33),
            }
        }

        /// Sends frames for `ms`; `answer_pings`: the server's signal answers each
        /// ping. Returns the loss notice, if any, and when (ms into the run).
        fn run(
            h: &mut Harness,
            cid: &TrackCid,
            n: &mut u64,
            ms: u64,
            answer_pings: bool,
        ) -> (Option<(u64, crate::core::LossNotice)>, usize) {
            let mut pings = 0;
            for step in 0..ms / 33 {
                h.core.write_video(cid, &frame(*n), h.now);
                *n += 1;
                h.pump(33);
                let new_pings = h
                    .signals
                    .drain(..)
                    .filter(|s| matches!(s, Req::PingReq(_)))
                    .count();
                pings += new_pings;
                if answer_pings && new_pings > 0 {
                    h.core
                        .handle_signal(Resp::PongResp(proto::Pong::default()), h.now);
                }
                if let Some(l) = h.core.take_reconnect_request() {
                    return (Some((step * 33, l)), pings);
                }
            }
            (None, pings)
        }

        #[test]
        fn a_silent_server_is_lost_after_2_s_one_that_answers_pings_is_not() {
            let mut h = Harness::new();
            h.connected();
            let cid = h.publish(&VideoTrackOptions::new(VideoCodec::H264, 640, 360, 30));
            let mut n = 0;
            let (lost, _) = run(&mut h, &cid, &mut n, 4_000, false);
            assert!(lost.is_none(), "the SFU answers: {lost:?}");

            // Silent media plane, but the signal answers: alive (ICE's business).
            h.sfu_silent = true;
            let (lost, pings) = run(&mut h, &cid, &mut n, 5_000, true);
            assert!(lost.is_none(), "{lost:?}");
            assert!(pings >= 2, "the server was asked: {pings}");

            // Both silent: lost about 2 s into the silence.
            h.sfu_silent = false;
            let (lost, _) = run(&mut h, &cid, &mut n, 2_000, false);
            assert!(lost.is_none(), "{lost:?}");
            h.sfu_silent = true;
            let (lost, pings) = run(&mut h, &cid, &mut n, 5_000, false);
            let (at, notice) = lost.expect("lost");
            assert_eq!(notice.cause, LossCause::ServerSilent);
            assert_eq!(pings, 1);
            let silent = notice.silent_for.expect("silence");
            assert!(
                (1_800..=2_700).contains(&at) && silent.as_millis() >= 2_000,
                "noticed {at} ms into the silence, silent for {silent:?}: {}",
                notice.detail
            );
        }
    }
}
