//! TURN over TCP and TLS carries STUN messages and ChannelData back to back on
//! one stream, and RFC 8656 §12.5 pads each ChannelData there to a multiple of
//! four bytes (STUN messages always are). `turn-client-proto` 0.7 neither writes
//! nor expects that padding: its ChannelData broke the stream to LiveKit's TURN
//! server, and a padded one from the server would break ours. So what goes out
//! is padded here, and what comes in is cut into whole messages with the padding
//! dropped before the client sees them, which its stream parser takes as is.

use thiserror::Error;

/// A STUN message's fixed header; its length field counts what follows.
const STUN_HEADER: usize = 20;
/// ChannelData's header: channel number and length.
const CHANNEL_HEADER: usize = 4;

/// The stream carried something that is neither STUN nor ChannelData, so its
/// framing is lost (RFC 8656: the connection is then closed).
#[derive(Debug, Error, PartialEq, Eq)]
#[error("not TURN framing: a message starting with byte {0:#04x}")]
pub(crate) struct FramingError(u8);

enum Kind {
    Stun,
    Channel,
}

/// What a message's first byte says it is: STUN starts 0b00, ChannelData 0b01
/// (channel numbers 0x4000–0x7FFF).
fn kind(first: u8) -> Result<Kind, FramingError> {
    match first >> 6 {
        0b00 => Ok(Kind::Stun),
        0b01 => Ok(Kind::Channel),
        _ => Err(FramingError(first)),
    }
}

/// Whether a wrapped packet is ChannelData rather than a STUN message (a Send
/// indication), by its first byte.
pub(crate) fn is_channel_data(wrapped: &[u8]) -> bool {
    matches!(wrapped.first().map(|&b| kind(b)), Some(Ok(Kind::Channel)))
}

/// Pads a wrapped packet for a stream: ChannelData to a multiple of four bytes.
pub(crate) fn pad_for_stream(wrapped: &mut Vec<u8>) {
    if is_channel_data(wrapped) {
        wrapped.resize(wrapped.len().next_multiple_of(4), 0);
    }
}

/// Cuts a TURN stream into whole STUN messages and ChannelData (without the
/// padding), however the reads split them.
#[derive(Debug, Default)]
pub(crate) struct StreamDeframer {
    buf: Vec<u8>,
}

impl StreamDeframer {
    /// Adds what was read and returns the messages it completed, in order.
    pub(crate) fn push(&mut self, data: &[u8]) -> Result<Vec<Vec<u8>>, FramingError> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        let mut at = 0;
        while let Some(head) = self.buf.get(at..at + CHANNEL_HEADER) {
            let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
            let (whole, on_stream) = match kind(head[0])? {
                Kind::Stun => (STUN_HEADER + len, STUN_HEADER + len),
                Kind::Channel => {
                    let whole = CHANNEL_HEADER + len;
                    (whole, whole.next_multiple_of(4))
                }
            };
            if self.buf.len() - at < on_stream {
                break;
            }
            out.push(self.buf[at..at + whole].to_vec());
            at += on_stream;
        }
        self.buf.drain(..at);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(id: u16, payload: &[u8]) -> Vec<u8> {
        let mut m = id.to_be_bytes().to_vec();
        m.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        m.extend_from_slice(payload);
        m
    }

    fn stun(body_len: u16) -> Vec<u8> {
        // A Binding indication's type, the length, the magic cookie, a transaction id.
        let mut m = vec![0x00, 0x11];
        m.extend_from_slice(&body_len.to_be_bytes());
        m.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        m.extend_from_slice(&[7; 12]);
        m.extend(std::iter::repeat_n(0xab, usize::from(body_len)));
        m
    }

    #[test]
    fn channel_data_is_told_from_stun_by_its_first_byte() {
        assert!(is_channel_data(&channel(0x4000, &[1])));
        assert!(is_channel_data(&channel(0x7fff, &[])));
        assert!(!is_channel_data(&stun(0)));
        assert!(
            !is_channel_data(&[0x80, 0, 0, 0]),
            "neither: RTP's first byte"
        );
        assert!(!is_channel_data(&[]));
    }

    #[test]
    fn channel_data_is_padded_to_four_bytes_and_stun_is_left_alone() {
        for (payload, padded) in [(0, 4), (1, 8), (3, 8), (4, 8), (5, 12), (1200, 1204)] {
            let mut m = channel(0x4000, &vec![9; payload]);
            pad_for_stream(&mut m);
            assert_eq!(m.len(), padded, "payload {payload}");
            assert!(m[CHANNEL_HEADER + payload..].iter().all(|&b| b == 0));
        }
        let mut s = stun(8);
        let before = s.clone();
        pad_for_stream(&mut s);
        assert_eq!(s, before);
    }

    #[test]
    fn a_stream_of_padded_messages_comes_apart_whatever_the_reads() {
        let msgs = vec![
            stun(12),
            channel(0x4001, &[1, 2, 3]),
            channel(0x4001, &[4; 1201]),
            stun(0),
            channel(0x7fff, &[]),
            channel(0x4002, &[5; 8]),
        ];
        let mut stream = Vec::new();
        for m in &msgs {
            let mut m = m.clone();
            pad_for_stream(&mut m);
            stream.extend(m);
        }
        for chunk in [1, 2, 3, 5, 7, 64, 1000, stream.len()] {
            let mut d = StreamDeframer::default();
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                got.extend(d.push(piece).expect("TURN framing"));
            }
            assert_eq!(got, msgs, "reads of {chunk} bytes");
            assert!(d.buf.is_empty(), "reads of {chunk} bytes left bytes behind");
        }
    }

    #[test]
    fn unpadded_channel_data_waits_for_its_padding() {
        // A peer that does not pad (like turn-client-proto itself) cannot be told
        // apart on a stream; what we can promise is not to hand out a message early.
        let mut d = StreamDeframer::default();
        assert_eq!(
            d.push(&channel(0x4000, &[1, 2, 3])).unwrap(),
            Vec::<Vec<u8>>::new()
        );
        assert_eq!(d.push(&[0]).unwrap(), vec![channel(0x4000, &[1, 2, 3])]);
    }

    #[test]
    fn bytes_that_are_not_turn_end_the_stream() {
        let mut d = StreamDeframer::default();
        assert_eq!(d.push(&[0x80, 0, 0, 0]), Err(FramingError(0x80)));
        let mut d = StreamDeframer::default();
        let mut s = stun(0);
        s.extend_from_slice(&[0xc0, 1, 0, 0]);
        assert_eq!(d.push(&s), Err(FramingError(0xc0)));
    }
}
