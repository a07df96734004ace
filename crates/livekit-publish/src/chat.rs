//! Data packets: text streams (`lk.chat`), legacy chat and user packets.

use std::collections::HashMap;

use livekit_protocol as proto;
use livekit_protocol::data_stream;
use prost::Message;

/// The topic every current LiveKit SDK uses for chat.
pub const CHAT_TOPIC: &str = "lk.chat";

/// Largest chunk content we send (the SDKs use 15 000 bytes).
const CHUNK_SIZE: usize = 15_000;

/// A random id like the SDKs' stream ids.
pub fn random_id(prefix: &str) -> String {
    let mut s = String::with_capacity(prefix.len() + 12);
    s.push_str(prefix);
    for _ in 0..12 {
        s.push(fastrand::alphanumeric());
    }
    s
}

/// A reliable `DataPacket` from `identity` carrying `value`.
pub fn packet(identity: &str, value: proto::data_packet::Value) -> proto::DataPacket {
    #[allow(deprecated)]
    proto::DataPacket {
        kind: proto::data_packet::Kind::Reliable as i32,
        participant_identity: identity.to_string(),
        value: Some(value),
        ..Default::default()
    }
}

/// Encode `text` as a text stream: header, chunks, trailer. Each item is one
/// encoded `DataPacket` for the `_reliable` channel.
pub fn encode_text_stream(
    identity: &str,
    topic: &str,
    text: &str,
    stream_id: &str,
    timestamp_ms: i64,
) -> Vec<Vec<u8>> {
    text_stream_packets(identity, topic, text, stream_id, timestamp_ms)
        .iter()
        .map(Message::encode_to_vec)
        .collect()
}

/// The `DataPacket`s of a text stream: header, chunks, trailer.
pub fn text_stream_packets(
    identity: &str,
    topic: &str,
    text: &str,
    stream_id: &str,
    timestamp_ms: i64,
) -> Vec<proto::DataPacket> {
    let bytes = text.as_bytes();
    let header = data_stream::Header {
        stream_id: stream_id.to_string(),
        timestamp: timestamp_ms,
        topic: topic.to_string(),
        mime_type: "text/plain".to_string(),
        total_length: Some(bytes.len() as u64),
        content_header: Some(data_stream::header::ContentHeader::TextHeader(
            data_stream::TextHeader {
                operation_type: data_stream::OperationType::Create as i32,
                ..Default::default()
            },
        )),
        ..Default::default()
    };
    let mut out = vec![packet(
        identity,
        proto::data_packet::Value::StreamHeader(header),
    )];
    // Split on char boundaries so every chunk is valid UTF-8 on its own.
    let mut start = 0;
    let mut index = 0u64;
    while start < bytes.len() {
        let mut end = (start + CHUNK_SIZE).min(bytes.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let chunk = data_stream::Chunk {
            stream_id: stream_id.to_string(),
            chunk_index: index,
            content: bytes[start..end].to_vec(),
            ..Default::default()
        };
        out.push(packet(
            identity,
            proto::data_packet::Value::StreamChunk(chunk),
        ));
        start = end;
        index += 1;
    }
    let trailer = data_stream::Trailer {
        stream_id: stream_id.to_string(),
        ..Default::default()
    };
    out.push(packet(
        identity,
        proto::data_packet::Value::StreamTrailer(trailer),
    ));
    out
}

/// Encode a user packet.
#[allow(deprecated)]
pub fn user_packet(
    identity: &str,
    payload: &[u8],
    topic: Option<&str>,
    lossy: bool,
) -> proto::DataPacket {
    let user = proto::UserPacket {
        payload: payload.to_vec(),
        topic: topic.map(str::to_string),
        ..Default::default()
    };
    let mut p = packet(identity, proto::data_packet::Value::User(user));
    if lossy {
        p.kind = proto::data_packet::Kind::Lossy as i32;
    }
    p
}

/// Something complete that arrived over the data channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A finished text stream.
    Text {
        /// Sender identity.
        from: String,
        /// The text stream's id (what a chat moderation event names).
        stream_id: String,
        /// Stream topic.
        topic: String,
        /// Full text.
        text: String,
        /// Header timestamp (ms).
        timestamp: i64,
    },
    /// A legacy `ChatMessage`.
    LegacyChat {
        /// Sender identity.
        from: String,
        /// The message id.
        id: String,
        /// Text.
        text: String,
        /// Timestamp (ms).
        timestamp: i64,
    },
    /// A user packet.
    User {
        /// Sender identity.
        from: String,
        /// Topic.
        topic: Option<String>,
        /// Payload.
        payload: Vec<u8>,
    },
}

struct OpenStream {
    from: String,
    stream_id: String,
    topic: String,
    timestamp: i64,
    chunks: Vec<(u64, Vec<u8>)>,
    is_text: bool,
}

/// Reassembles text streams from data packets.
#[derive(Default)]
pub struct DataReceiver {
    open: HashMap<String, OpenStream>,
}

/// Open streams kept at most (protects memory against a misbehaving peer).
const MAX_OPEN_STREAMS: usize = 64;

impl DataReceiver {
    /// Feed one encoded `DataPacket`; returns what it completes, if anything.
    pub fn receive(&mut self, buf: &[u8]) -> Result<Option<Incoming>, prost::DecodeError> {
        let p = proto::DataPacket::decode(buf)?;
        #[allow(deprecated)]
        let from = if p.participant_identity.is_empty() {
            match &p.value {
                Some(proto::data_packet::Value::User(u)) => u.participant_identity.clone(),
                _ => String::new(),
            }
        } else {
            p.participant_identity.clone()
        };
        let Some(value) = p.value else {
            return Ok(None);
        };
        Ok(match value {
            proto::data_packet::Value::User(u) => Some(Incoming::User {
                from,
                topic: u.topic,
                payload: u.payload,
            }),
            proto::data_packet::Value::ChatMessage(c) => Some(Incoming::LegacyChat {
                from,
                id: c.id,
                text: c.message,
                timestamp: c.timestamp,
            }),
            proto::data_packet::Value::StreamHeader(h) => {
                let is_text = matches!(
                    h.content_header,
                    Some(data_stream::header::ContentHeader::TextHeader(_))
                );
                if let Some(inline) = h.inline_content.filter(|_| is_text) {
                    return Ok(Some(Incoming::Text {
                        from,
                        stream_id: h.stream_id,
                        topic: h.topic,
                        text: String::from_utf8_lossy(&inline).into_owned(),
                        timestamp: h.timestamp,
                    }));
                }
                if self.open.len() >= MAX_OPEN_STREAMS {
                    self.open.clear();
                }
                self.open.insert(
                    h.stream_id.clone(),
                    OpenStream {
                        from,
                        stream_id: h.stream_id,
                        topic: h.topic,
                        timestamp: h.timestamp,
                        chunks: Vec::new(),
                        is_text,
                    },
                );
                None
            }
            proto::data_packet::Value::StreamChunk(c) => {
                if let Some(s) = self.open.get_mut(&c.stream_id) {
                    s.chunks.push((c.chunk_index, c.content));
                }
                None
            }
            proto::data_packet::Value::StreamTrailer(t) => {
                let Some(mut s) = self.open.remove(&t.stream_id) else {
                    return Ok(None);
                };
                if !s.is_text {
                    return Ok(None);
                }
                s.chunks.sort_by_key(|(i, _)| *i);
                let bytes: Vec<u8> = s.chunks.into_iter().flat_map(|(_, c)| c).collect();
                Some(Incoming::Text {
                    from: s.from,
                    stream_id: s.stream_id,
                    topic: s.topic,
                    text: String::from_utf8_lossy(&bytes).into_owned(),
                    timestamp: s.timestamp,
                })
            }
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_stream_round_trip() {
        let text = "hello 👋 ".repeat(3000); // > one chunk, multi-byte chars
        let packets = encode_text_stream("me", CHAT_TOPIC, &text, "s1", 42);
        assert!(packets.len() >= 4, "header + ≥2 chunks + trailer");
        let mut rx = DataReceiver::default();
        let mut got = None;
        for p in &packets {
            if let Some(done) = rx.receive(p).expect("decodes") {
                got = Some(done);
            }
        }
        assert_eq!(
            got,
            Some(Incoming::Text {
                from: "me".into(),
                stream_id: "s1".into(),
                topic: CHAT_TOPIC.into(),
                text,
                timestamp: 42
            })
        );
    }

    #[test]
    fn header_fields_match_the_sdks() {
        let packets = encode_text_stream("me", CHAT_TOPIC, "hi", "s1", 7);
        let p = proto::DataPacket::decode(packets[0].as_slice()).expect("decodes");
        let Some(proto::data_packet::Value::StreamHeader(h)) = p.value else {
            panic!("header")
        };
        assert_eq!(h.topic, "lk.chat");
        assert_eq!(h.mime_type, "text/plain");
        assert_eq!(h.total_length, Some(2));
        assert!(matches!(
            h.content_header,
            Some(data_stream::header::ContentHeader::TextHeader(_))
        ));
        #[allow(deprecated)]
        let kind = p.kind;
        assert_eq!(kind, proto::data_packet::Kind::Reliable as i32);
        assert_eq!(packets.len(), 3);
    }

    #[test]
    fn legacy_chat_and_inline_text() {
        let mut rx = DataReceiver::default();
        let legacy = packet(
            "v1",
            proto::data_packet::Value::ChatMessage(proto::ChatMessage {
                id: "m1".into(),
                message: "yo".into(),
                timestamp: 5,
                ..Default::default()
            }),
        )
        .encode_to_vec();
        assert_eq!(
            rx.receive(&legacy).expect("decodes"),
            Some(Incoming::LegacyChat {
                from: "v1".into(),
                id: "m1".into(),
                text: "yo".into(),
                timestamp: 5
            })
        );
        let inline = packet(
            "v2",
            proto::data_packet::Value::StreamHeader(data_stream::Header {
                stream_id: "x".into(),
                topic: CHAT_TOPIC.into(),
                inline_content: Some(b"inline".to_vec()),
                content_header: Some(data_stream::header::ContentHeader::TextHeader(
                    Default::default(),
                )),
                ..Default::default()
            }),
        )
        .encode_to_vec();
        assert!(
            matches!(rx.receive(&inline), Ok(Some(Incoming::Text { text, stream_id, .. })) if text == "inline" && stream_id == "x")
        );
        assert!(rx.receive(b"\xff\xff\xff").is_err());
    }
}
