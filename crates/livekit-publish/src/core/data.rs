//! Data channels and chat: user packets and chat go out on `_reliable` or
//! `_lossy` (queued until the channels open); received packets become chat
//! messages (held until their sender's name is known) or data events.

use std::collections::VecDeque;
use std::time::Instant;

use livekit_protocol as proto;

use super::{CHAT_NAME_WAIT, CoreOutput, Participant, PendingChat};
use crate::chat::{self, Incoming};
use crate::types::*;

impl Participant {
    /// Send a chat message as an `lk.chat` text stream.
    pub fn send_chat(&mut self, text: &str, timestamp_ms: i64, now: Instant) {
        let id = chat::random_id("");
        for p in
            chat::text_stream_packets(&self.identity, chat::CHAT_TOPIC, text, &id, timestamp_ms)
        {
            self.send_data_packet(Reliability::Reliable, p);
        }
        self.drive(now);
    }

    /// Send a user data packet.
    pub fn send_data(
        &mut self,
        payload: &[u8],
        reliability: Reliability,
        topic: Option<&str>,
        now: Instant,
    ) {
        let p = chat::user_packet(
            &self.identity,
            payload,
            topic,
            reliability == Reliability::Lossy,
        );
        self.send_data_packet(reliability, p);
        self.drive(now);
    }

    fn send_data_packet(&mut self, reliability: Reliability, p: proto::DataPacket) {
        if self.data_queue.len() >= MAX_QUEUED_DATA {
            self.data_queue.pop_front();
        }
        self.data_queue.push_back((reliability, p));
        self.flush_data();
    }

    pub(super) fn flush_data(&mut self) {
        let Some(rtc) = self.publisher.as_mut() else {
            return;
        };
        while let Some((rel, _)) = self.data_queue.front() {
            let (id, open) = match rel {
                Reliability::Reliable => (self.reliable, self.reliable_open),
                Reliability::Lossy => (self.lossy, self.lossy_open),
            };
            let (Some(id), true) = (id, open) else { return };
            let Some(mut ch) = rtc.channel(id) else {
                return;
            };
            let Some((_, mut p)) = self.data_queue.pop_front() else {
                return;
            };
            // Packets queued before the join carry no identity yet.
            if p.participant_identity.is_empty() {
                p.participant_identity = self.identity.clone();
            }
            if let Err(e) = ch.write(true, &prost::Message::encode_to_vec(&p)) {
                self.out
                    .push_back(CoreOutput::Event(PublisherEvent::Error(format!(
                        "data send: {e}"
                    ))));
            }
        }
    }

    pub(super) fn handle_incoming(&mut self, incoming: Incoming, now: Instant) {
        match incoming {
            Incoming::Text {
                from,
                stream_id,
                topic,
                text,
                timestamp,
            } if topic == chat::CHAT_TOPIC => {
                self.receive_chat(stream_id, from, text, timestamp, now)
            }
            Incoming::LegacyChat {
                from,
                id,
                text,
                timestamp,
            } => self.receive_chat(id, from, text, timestamp, now),
            Incoming::Text {
                from, topic, text, ..
            } => self.emit(PublisherEvent::DataReceived {
                from_identity: ParticipantIdentity(from),
                topic: Some(topic),
                payload: text.into_bytes().into(),
            }),
            Incoming::User {
                from,
                topic,
                payload,
            } => self.emit(PublisherEvent::DataReceived {
                from_identity: ParticipantIdentity(from),
                topic,
                payload: payload.into(),
            }),
        }
    }

    /// A chat message is announced with its sender's display name. LiveKit may
    /// deliver a new viewer's first message before the ParticipantUpdate that
    /// names them: such messages (and later ones from the same sender, to keep
    /// their order) wait for it, at most [`CHAT_NAME_WAIT`].
    fn receive_chat(
        &mut self,
        id: String,
        from: String,
        text: String,
        timestamp: i64,
        now: Instant,
    ) {
        self.pending_chats.push_back(PendingChat {
            until: now + CHAT_NAME_WAIT,
            id,
            from,
            text,
            timestamp,
        });
        self.release_chats(now);
    }

    /// Emits the waiting chat messages whose sender is known now or whose wait is over.
    pub(super) fn release_chats(&mut self, now: Instant) {
        let mut waiting = VecDeque::new();
        for c in std::mem::take(&mut self.pending_chats) {
            let known = self.participants.get(&c.from).map(|p| p.name.clone());
            let behind_earlier = waiting.iter().any(|w: &PendingChat| w.from == c.from);
            match known {
                Some(name) if !behind_earlier => self.emit_chat(c, name),
                None if c.until <= now && !behind_earlier => self.emit_chat(c, String::new()),
                _ => waiting.push_back(c),
            }
        }
        self.pending_chats = waiting;
    }

    fn emit_chat(&mut self, c: PendingChat, from_name: String) {
        self.emit(PublisherEvent::ChatReceived {
            id: c.id,
            from_identity: ParticipantIdentity(c.from),
            from_name,
            text: c.text,
            timestamp: c.timestamp,
        });
    }
}

/// Data packets queued until the channels open, at most.
const MAX_QUEUED_DATA: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    use proto::signal_response::Message as Resp;
    use std::time::Duration;
    use str0m::Event;

    use crate::chat::DataReceiver;
    use crate::core::RELIABLE_LABEL;
    use crate::test_support::{Harness, ME, join_response, participant, test_participant};

    #[test]
    fn chat_goes_out_on_reliable_as_a_text_stream() {
        let mut h = Harness::new();
        h.core.send_chat("queued before join", 1, h.now); // queued until the channel opens
        h.connected();
        h.core.send_chat("hello", 2, h.now);
        h.pump(200);
        let reliable = h
            .sfu_events
            .iter()
            .find_map(|e| match e {
                Event::ChannelOpen(id, l) if l == RELIABLE_LABEL => Some(*id),
                _ => None,
            })
            .expect("_reliable");
        let mut rx = DataReceiver::default();
        let mut texts = Vec::new();
        for e in &h.sfu_events {
            if let Event::ChannelData(d) = e {
                assert_eq!(d.id, reliable);
                if let Ok(Some(Incoming::Text {
                    text, topic, from, ..
                })) = rx.receive(&d.data)
                {
                    assert_eq!(topic, chat::CHAT_TOPIC);
                    assert_eq!(from, ME);
                    texts.push(text);
                }
            }
        }
        assert_eq!(
            texts,
            vec!["queued before join".to_string(), "hello".to_string()]
        );
    }

    #[test]
    fn chat_before_the_senders_participant_update_waits_for_the_name() {
        let mut now = Instant::now();
        let mut core = test_participant(IceTransport::UdpOnly);
        let known = participant(
            "early",
            "PA_e",
            false,
            proto::participant_info::State::Active,
        );
        core.handle_join(&join_response(vec![known]), now);
        let chats = |core: &mut Participant| -> Vec<(String, String, String)> {
            std::iter::from_fn(|| core.poll_output())
                .filter_map(|o| match o {
                    CoreOutput::Event(PublisherEvent::ChatReceived {
                        from_identity,
                        from_name,
                        text,
                        ..
                    }) => Some((from_identity.0, from_name, text)),
                    _ => None,
                })
                .collect()
        };
        chats(&mut core);
        let text = |from: &str, text: &str| Incoming::Text {
            from: from.into(),
            stream_id: format!("{from}-{text}"),
            topic: chat::CHAT_TOPIC.into(),
            text: text.into(),
            timestamp: 1,
        };
        // A known sender's chat goes out at once, with the name.
        core.handle_incoming(text("early", "hi"), now);
        assert_eq!(
            chats(&mut core),
            vec![("early".into(), "early name".into(), "hi".into())]
        );
        // An unknown sender's two messages wait for the ParticipantUpdate …
        core.handle_incoming(text("late", "one"), now);
        core.handle_incoming(text("late", "two"), now);
        assert!(
            core.poll_timeout()
                .is_some_and(|t| t <= now + CHAT_NAME_WAIT)
        );
        now += Duration::from_millis(300);
        core.handle_timeout(now);
        assert_eq!(chats(&mut core), Vec::new());
        let late = participant(
            "late",
            "PA_l",
            false,
            proto::participant_info::State::Joined,
        );
        core.handle_signal(
            Resp::Update(proto::ParticipantUpdate {
                participants: vec![late],
            }),
            now,
        );
        // … and then carry the name, in order.
        assert_eq!(
            chats(&mut core),
            vec![
                ("late".into(), "late name".into(), "one".into()),
                ("late".into(), "late name".into(), "two".into())
            ]
        );
        // A sender that never shows up is announced without a name after the wait.
        core.handle_incoming(text("ghost", "boo"), now);
        core.handle_timeout(now + CHAT_NAME_WAIT - Duration::from_millis(1));
        assert_eq!(chats(&mut core), Vec::new());
        core.handle_timeout(now + CHAT_NAME_WAIT);
        assert_eq!(
            chats(&mut core),
            vec![("ghost".into(), String::new(), "boo".into())]
        );
        // Every message carries its text stream's id (what moderation names).
        core.handle_incoming(text("early", "again"), now);
        let ids: Vec<String> = std::iter::from_fn(|| core.poll_output())
            .filter_map(|o| match o {
                CoreOutput::Event(PublisherEvent::ChatReceived { id, .. }) => Some(id),
                _ => None,
            })
            .collect();
        assert_eq!(ids, vec!["early-again".to_string()]);
    }
}
