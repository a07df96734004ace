//! H.264 as openh264 emits it (Annex B: start codes) into what MP4 stores (each NAL unit
//! behind a 4-byte length), and the parameter sets an `avcC` box needs.

/// The NAL units of an Annex B access unit, without their start codes.
pub(crate) fn nal_units(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::with_capacity(starts.len());
    for (n, &s) in starts.iter().enumerate() {
        let mut end = starts.get(n + 1).map_or(data.len(), |&next| next - 3);
        // a four-byte start code leaves one zero behind the previous unit
        while end > s && data[end - 1] == 0 && n + 1 < starts.len() {
            end -= 1;
        }
        if end > s {
            out.push(&data[s..end]);
        }
    }
    out
}

/// The access unit with every NAL unit behind a big-endian 4-byte length.
pub(crate) fn to_length_prefixed(data: &[u8]) -> Vec<u8> {
    let units = nal_units(data);
    let mut out = Vec::with_capacity(data.len() + 4 * units.len());
    for u in units {
        out.extend_from_slice(&(u.len() as u32).to_be_bytes());
        out.extend_from_slice(u);
    }
    out
}

/// The first SPS (type 7) and PPS (type 8) of an access unit.
pub(crate) fn parameter_sets(data: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let units = nal_units(data);
    let find = |t: u8| {
        units
            .iter()
            .find(|u| u.first().is_some_and(|b| b & 0x1f == t))
            .map(|u| u.to_vec())
    };
    Some((find(7)?, find(8)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_and_four_byte_start_codes_split_into_units() {
        let au = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5, 0,
        ];
        let units = nal_units(&au);
        assert_eq!(units, vec![&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4, 5, 0]]);
        let (sps, pps) = parameter_sets(&au).expect("sps and pps");
        assert_eq!((sps, pps), (vec![0x67, 1, 2], vec![0x68, 3]));
        assert_eq!(
            to_length_prefixed(&au),
            vec![
                0, 0, 0, 3, 0x67, 1, 2, 0, 0, 0, 2, 0x68, 3, 0, 0, 0, 4, 0x65, 4, 5, 0
            ]
        );
    }

    #[test]
    fn a_unit_without_parameter_sets_has_none() {
        assert!(parameter_sets(&[0, 0, 1, 0x41, 9]).is_none());
        assert!(nal_units(&[1, 2, 3]).is_empty());
    }
}
