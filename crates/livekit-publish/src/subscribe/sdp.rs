//! The subscriber offer's media sections: which m-line carries which remote
//! track (its `a=msid`, or `mid_to_track_id`). Plain SDP text handling, apart
//! from [`super::Subscriptions`]' state.

use std::collections::HashMap;

/// One media section of an SDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpMedia {
    /// `audio`, `video` or `application`.
    pub kind: String,
    /// `a=mid`.
    pub mid: String,
    /// `sendonly`, `recvonly`, `sendrecv` or `inactive` (port 0 reads as inactive).
    pub direction: String,
    /// `a=msid` stream id (LiveKit: `PA_…|TR_…` or the participant sid).
    pub stream_id: Option<String>,
    /// `a=msid` track id (LiveKit: the track sid).
    pub track_id: Option<String>,
}

/// Splits an SDP into its media sections (mid, direction, msid of each).
pub fn parse_sdp_media(sdp: &str) -> Vec<SdpMedia> {
    let mut out: Vec<SdpMedia> = Vec::new();
    for line in sdp.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            let mut parts = m.split_whitespace();
            let kind = parts.next().unwrap_or_default().to_string();
            let port = parts.next().unwrap_or("0");
            out.push(SdpMedia {
                kind,
                mid: String::new(),
                // RFC 3264: a zero port rejects the section.
                direction: if port == "0" { "inactive" } else { "sendrecv" }.into(),
                stream_id: None,
                track_id: None,
            });
            continue;
        }
        let Some(cur) = out.last_mut() else { continue };
        let Some(attr) = line.strip_prefix("a=") else {
            continue;
        };
        match attr {
            "sendonly" | "recvonly" | "sendrecv" | "inactive" => {
                if cur.direction != "inactive" || attr == "inactive" {
                    cur.direction = attr.into();
                }
            }
            _ => {
                if let Some(mid) = attr.strip_prefix("mid:") {
                    cur.mid = mid.trim().into();
                } else if let Some(msid) = attr.strip_prefix("msid:") {
                    set_msid(cur, msid);
                } else if let Some(ssrc) = attr.strip_prefix("ssrc:")
                    && cur.track_id.is_none()
                    && let Some((_, msid)) = ssrc.split_once(" msid:")
                {
                    // Plan-B style `a=ssrc:<n> msid:<stream> <track>`.
                    set_msid(cur, msid);
                }
            }
        }
    }
    out
}

fn set_msid(m: &mut SdpMedia, msid: &str) {
    let mut p = msid.split_whitespace();
    let stream = p.next().filter(|s| *s != "-");
    let track = p.next();
    m.stream_id = stream.map(str::to_string);
    m.track_id = track.map(str::to_string);
}

/// The remote tracks the server offers on the subscriber PC, by mid:
/// `mid_to_track_id` when present, else each m-line's msid track id. Only
/// audio/video m-lines the server sends on.
pub fn offered_tracks(
    sdp: &str,
    mid_to_track_id: &HashMap<String, String>,
) -> Vec<(String, String)> {
    parse_sdp_media(sdp)
        .into_iter()
        .filter(|m| {
            (m.kind == "audio" || m.kind == "video")
                && (m.direction == "sendonly" || m.direction == "sendrecv")
        })
        .filter_map(|m| {
            let sid = mid_to_track_id
                .get(&m.mid)
                .filter(|s| !s.is_empty())
                .cloned()
                .or(m.track_id)?;
            Some((m.mid, sid))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::SUBSCRIBER_OFFER as OFFER;

    #[test]
    fn sdp_media_sections_give_mid_direction_and_msid() {
        let m = parse_sdp_media(OFFER);
        assert_eq!(m.len(), 5);
        assert_eq!(
            (m[0].kind.as_str(), m[0].mid.as_str()),
            ("application", "0")
        );
        assert_eq!(m[1].stream_id.as_deref(), Some("PA_pub|TR_video"));
        assert_eq!(m[1].track_id.as_deref(), Some("TR_video"));
        assert_eq!(m[1].direction, "sendrecv");
        // Plan-B style ssrc msid when there is no a=msid.
        assert_eq!(m[2].track_id.as_deref(), Some("TR_audio"));
        assert_eq!(m[2].direction, "sendonly");
        // Port 0: rejected, whatever the direction attribute says.
        assert_eq!(m[3].direction, "inactive");
        assert_eq!(m[4].stream_id, None);
        assert_eq!(m[4].direction, "recvonly");
    }

    #[test]
    fn offered_tracks_prefer_mid_to_track_id_and_skip_what_the_server_does_not_send() {
        let by_msid = offered_tracks(OFFER, &HashMap::new());
        assert_eq!(
            by_msid,
            vec![
                ("1".to_string(), "TR_video".to_string()),
                ("2".to_string(), "TR_audio".to_string())
            ]
        );
        let map: HashMap<String, String> = [("1".to_string(), "TR_other".to_string())].into();
        assert_eq!(
            offered_tracks(OFFER, &map)[0],
            ("1".into(), "TR_other".into())
        );
    }
}
