//! VP8 packetization: our own RTP payload descriptor with a PictureID, which
//! str0m's VP8 packetizer does not send (see [`Vp8Sender`]). Apart from the
//! tracks because it is RTP-level detail no other concern needs.

use std::time::Instant;

use str0m::Rtc;
use str0m::media::{MediaTime, Mid, Pt, Rid};
use str0m::rtp::{RtpWrite, SeqNo};

/// VP8 goes out through str0m's RTP-level API with our own payload descriptor:
/// str0m 0.25's VP8 packetizer never sends a PictureID (the switch is private),
/// and libwebrtc's receiver assembles and references VP8 frames without one far
/// worse (sequence-number based frame finding, RFC 7741 §4.2 makes it optional but
/// every browser sends it). We send a 15-bit PictureID incrementing per frame.
#[derive(Debug, Clone)]
pub(super) struct Vp8Sender {
    seq: u64,
    picture_id: u16,
}

impl Vp8Sender {
    pub(super) fn new() -> Self {
        Vp8Sender {
            seq: u64::from(fastrand::u16(..)),
            picture_id: fastrand::u16(..) & 0x7fff,
        }
    }
}

/// Writes one VP8 frame as RTP packets on the (mid, rid) send stream.
#[allow(clippy::too_many_arguments)]
pub(super) fn write_vp8(
    rtc: &mut Rtc,
    mid: Mid,
    rid: Option<Rid>,
    pt: Pt,
    rtp: MediaTime,
    data: &[u8],
    now: Instant,
    state: &mut Vp8Sender,
) -> bool {
    let mut api = rtc.direct_api();
    let Some(stream) = api.stream_tx_by_mid(mid, rid) else {
        return false;
    };
    let time = rtp.rebase(str0m::media::Frequency::NINETY_KHZ).numer() as u32;
    let payloads = vp8_payloads(data, state.picture_id, VP8_MAX_PAYLOAD);
    let n = payloads.len();
    for (i, payload) in payloads.into_iter().enumerate() {
        let seq: SeqNo = state.seq.into();
        state.seq += 1;
        stream.write_rtp(
            RtpWrite::new(pt, seq, time, now, payload)
                .marker(i + 1 == n)
                .nackable(true),
        );
    }
    state.picture_id = (state.picture_id + 1) & 0x7fff;
    true
}

/// Largest VP8 RTP payload (descriptor included) we emit: below str0m's default
/// MTU after SRTP overhead and header extensions.
const VP8_MAX_PAYLOAD: usize = 1100;

/// Splits one VP8 frame into RTP payloads, each with a 4-byte payload descriptor
/// (X=1, S on the first, PID 0; I=1; M=1 + 15-bit PictureID), RFC 7741 §4.2.
pub(crate) fn vp8_payloads(frame: &[u8], picture_id: u16, max_payload: usize) -> Vec<Vec<u8>> {
    const DESC: usize = 4;
    let chunk = max_payload.saturating_sub(DESC).max(1);
    let pid = picture_id & 0x7fff;
    frame
        .chunks(chunk)
        .enumerate()
        .map(|(i, part)| {
            let mut p = Vec::with_capacity(DESC + part.len());
            p.push(if i == 0 { 0x90 } else { 0x80 });
            p.push(0x80);
            p.push(0x80 | (pid >> 8) as u8);
            p.push((pid & 0xff) as u8);
            p.extend_from_slice(part);
            p
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_payloads_carry_a_15_bit_picture_id_and_start_bit_on_the_first_only() {
        let frame: Vec<u8> = (0..2500u32).map(|i| i as u8).collect();
        let p = vp8_payloads(&frame, 0x1234, 1000);
        assert_eq!(p.len(), 3);
        assert_eq!(&p[0][..4], &[0x90, 0x80, 0x92, 0x34]);
        assert_eq!(&p[1][..4], &[0x80, 0x80, 0x92, 0x34]);
        assert!(p.iter().all(|x| x.len() <= 1000));
        let body: Vec<u8> = p.iter().flat_map(|x| x[4..].to_vec()).collect();
        assert_eq!(body, frame);
        // str0m's own parser reads it back.
        let d = str0m::rtp::Vp8Descriptor::parse(&p[0]).expect("descriptor");
        assert_eq!(d.picture_id(), Some(0x1234));
        // Only 15 bits.
        assert_eq!(
            &vp8_payloads(&[1], 0xffff, 1000)[0][..4],
            &[0x90, 0x80, 0xff, 0xff]
        );
    }
}
