//! Request and response bodies of every endpoint.
//!
//! Field names are camelCase on the wire (`isLive`, `isChatEnabled`, …), as in
//! the seed guide. Request bodies reject unknown fields, so a typo in a client
//! is a 422 instead of a silently ignored setting. Timestamps are Unix epoch
//! milliseconds (`i64`).

use serde::{Deserialize, Serialize};

/// What the backend puts into LiveKit tokens and rooms, and what every client
/// (watch page, studio, Python test viewer) reads back. LiveKit stamps the
/// sender of every data packet and viewers cannot change their own
/// attributes (no `canUpdateOwnMetadata`), so these marks cannot be forged.
pub mod room {
    /// Participant attribute naming who a participant is: one of the `ROLE_*` values.
    pub const ATTR_ROLE: &str = "streamit.role";
    pub const ROLE_CREATOR: &str = "creator";
    pub const ROLE_VIEWER: &str = "viewer";
    pub const ROLE_GUEST: &str = "guest";
    /// Chat: LiveKit text streams on this topic (what the JS and Python SDKs use).
    pub const CHAT_TOPIC: &str = "lk.chat";
    /// Moderation events from the creator: JSON [`super::ModerationEvent`] on the
    /// reliable channel, sent by the studio; clients honour them only when the
    /// sender's role attribute is `creator`.
    pub const MODERATION_TOPIC: &str = "streamit.moderation";
}

/// Why a stream session ended: the values of [`StreamSession::end_reason`].
pub mod end_reason {
    /// The creator called `POST /api/stream/end-stream`.
    pub const END_STREAM: &str = "end-stream";
    /// LiveKit closed the room (`room_finished` webhook).
    pub const ROOM_FINISHED: &str = "room-finished";
    /// The creator's participant left the room (or unpublished every track)
    /// and did not come back within the backend's grace period.
    pub const PUBLISHER_LOST: &str = "publisher_lost";
    /// An admin withdrew the creator's approval while live.
    pub const REVOKED: &str = "revoked";
}

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Creator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Creator => "creator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "creator" => Some(Role::Creator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `POST /api/auth/register`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterRequest {
    /// 3–32 characters of `a-z`, `A-Z`, `0-9`, `_`; stored lower-case.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::limits::schema::username))]
    pub username: String,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::limits::schema::password))]
    pub password: String,
    /// Shown to viewers; defaults to the username. At most 64 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::limits::schema::display_name))]
    pub display_name: Option<String>,
    /// `viewer` (default) or `creator`. Creators must be approved by an admin
    /// before they can set up a stream or go live. `admin` is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

/// `POST /api/auth/login`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::limits::schema::login_username))]
    pub username: String,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::limits::schema::login_password))]
    pub password: String,
}

/// An account as others (and its owner) see it. Never carries secrets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    /// Creators must be approved before Setup / Go Live.
    pub is_approved: bool,
    pub created_at: i64,
}

/// Answer of register and login: a bearer token for `Authorization: Bearer …`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AuthResponse {
    pub token: String,
    pub expires_at: i64,
    pub user: User,
}

/// The public part of the creator who owns a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct StreamUser {
    pub id: String,
    pub username: String,
    pub display_name: String,
}

/// A creator's stream (one per creator), as in the guide's `Stream` model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Stream {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
    pub thumbnail: Option<String>,
    pub is_live: bool,
    pub is_chat_enabled: bool,
    pub is_chat_delayed: bool,
    pub is_chat_followers_only: bool,
    /// The creator's user id; also the LiveKit room name and a viewer's `hostId`.
    pub user_id: String,
    pub user: StreamUser,
    /// Viewers in the room now (from LiveKit webhooks; 0 when offline).
    pub viewer_count: i64,
    /// Where viewers watch this stream: `{publicWebUrl}/{username}` (server config).
    #[serde(default)]
    pub watch_url: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// `POST /api/stream/setup`: create the stream or update it. Chat settings left
/// out keep their current value (defaults on create: enabled, not delayed, not
/// followers-only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetupStreamRequest {
    /// 1–140 characters.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::limits::schema::title))]
    pub title: String,
    /// At most 5,000 characters; empty clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(schema_with = crate::limits::schema::description_nullable)
    )]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_chat_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_chat_delayed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_chat_followers_only: Option<bool>,
}

/// `PUT /api/stream/info`: edit title and/or description (also while live).
/// At least one of them; a field left out keeps its value (`null` is not a
/// value here).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(min_properties = 1))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateStreamInfoRequest {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::limits::schema::title))]
    pub title: Option<String>,
    /// Empty clears it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::limits::schema::description))]
    pub description: Option<String>,
}

/// Integer fields of request bodies. JSON has one kind of number, and JSON
/// Schema's `integer` is any number without a fractional part: `5.0` is the
/// integer 5, as a client that writes every number as a double sends it. A
/// fraction or a value out of the type's range is refused.
mod integer {
    use serde::Deserializer;
    use serde::de::{Error, Unexpected, Visitor};
    use std::fmt;
    use std::marker::PhantomData;

    struct Integer<T>(PhantomData<T>);

    impl<'de, T: TryFrom<i128>> Visitor<'de> for Integer<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an integer")
        }

        fn visit_i64<E: Error>(self, v: i64) -> Result<T, E> {
            T::try_from(i128::from(v))
                .map_err(|_| E::invalid_value(Unexpected::Signed(v), &"an integer in range"))
        }

        fn visit_u64<E: Error>(self, v: u64) -> Result<T, E> {
            T::try_from(i128::from(v))
                .map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &"an integer in range"))
        }

        fn visit_f64<E: Error>(self, v: f64) -> Result<T, E> {
            // Integral and far beyond every target type's range at most, so
            // the cast is exact; the target type decides the range.
            if v.fract() == 0.0
                && v.abs() < 1.0e30
                && let Ok(t) = T::try_from(v as i128)
            {
                return Ok(t);
            }
            Err(E::invalid_value(
                Unexpected::Float(v),
                &"an integer in range",
            ))
        }
    }

    pub fn required<'de, D: Deserializer<'de>, T: TryFrom<i128>>(d: D) -> Result<T, D::Error> {
        d.deserialize_any(Integer(PhantomData))
    }

    /// `null` is `None` (as when left out).
    pub fn optional<'de, D: Deserializer<'de>, T: TryFrom<i128>>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        struct Optional<T>(PhantomData<T>);
        impl<'de, T: TryFrom<i128>> Visitor<'de> for Optional<T> {
            type Value = Option<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer or null")
            }
            fn visit_none<E: Error>(self) -> Result<Option<T>, E> {
                Ok(None)
            }
            fn visit_unit<E: Error>(self) -> Result<Option<T>, E> {
                Ok(None)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
                required(d).map(Some)
            }
        }
        d.deserialize_option(Optional(PhantomData))
    }
}

/// An optional field that, when present, must be a value: `null` is refused
/// (a field left out is `None` through `#[serde(default)]`).
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// `PUT /api/stream/chat-settings`: fields left out keep their value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChatSettingsRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_chat_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_chat_delayed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_chat_followers_only: Option<bool>,
}

/// `POST /api/stream/go-live`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct GoLiveResponse {
    /// LiveKit access token with publish rights (TTL: server config, 24 h default).
    pub token: String,
    /// The LiveKit WebSocket URL to connect to.
    pub ws_url: String,
    /// The LiveKit room: the creator's user id.
    pub room_id: String,
    pub stream: Stream,
    /// The stream session this go-live opened (or the one still open).
    pub session_id: String,
}

/// One broadcast: opened by go-live, closed by end-stream, by LiveKit's
/// `room_finished` webhook, by the creator's participant staying away from
/// the room longer than the grace period, or by an admin's revocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct StreamSession {
    pub id: String,
    pub stream_id: String,
    pub started_at: i64,
    /// `None` while live.
    pub ended_at: Option<i64>,
    /// Seconds from start to end (or to now while live).
    pub duration_secs: i64,
    /// Most viewers in the room at once (LiveKit webhooks; the creator is not counted).
    pub peak_viewers: i64,
    /// Viewers in the room now.
    pub current_viewers: i64,
    /// Chat messages, as reported by the studio.
    pub chat_messages: i64,
    /// Video frames the studio sent (all layers), as reported by the studio;
    /// `None` until it reports them.
    #[serde(default)]
    pub frames_sent: Option<i64>,
    /// Video frames the studio dropped (queues full, encoder behind), as
    /// reported by the studio; `None` until it reports them.
    #[serde(default)]
    pub frames_dropped: Option<i64>,
    /// Average bitrate over the session in bits per second, as reported by
    /// the studio; `None` until it reports it.
    #[serde(default)]
    pub average_bitrate_bps: Option<i64>,
    /// Reconnects to LiveKit during the session, as reported by the studio;
    /// `None` until it reports them.
    #[serde(default)]
    pub reconnects: Option<i64>,
    /// Why it ended (see [`end_reason`]): `end-stream`, `room-finished`,
    /// `publisher_lost` (the creator's participant left LiveKit and did not come
    /// back within the grace period), `revoked` (an admin withdrew the creator's
    /// approval), or `None` while live.
    pub end_reason: Option<String>,
}

/// `POST /api/stream/sessions/{id}/stats`: figures the studio measured itself.
///
/// All are running totals for the session (the bitrate an average over it).
/// The media figures are optional so that older studios, which send only
/// `chatMessages`, keep working; a field left out leaves the stored value
/// alone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionStatsReport {
    /// Chat messages the studio saw in this session (0..=1e9).
    #[serde(deserialize_with = "integer::required")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::limits::schema::chat_messages))]
    pub chat_messages: i64,
    /// Video frames sent, all layers (0..=1e12).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "integer::optional"
    )]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::limits::schema::frames_sent))]
    pub frames_sent: Option<i64>,
    /// Video frames dropped before sending (0..=1e12).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "integer::optional"
    )]
    #[cfg_attr(
        feature = "openapi",
        schema(schema_with = crate::limits::schema::frames_dropped)
    )]
    pub frames_dropped: Option<i64>,
    /// Average bitrate over the session, bits per second (0..=1e10).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "integer::optional"
    )]
    #[cfg_attr(
        feature = "openapi",
        schema(schema_with = crate::limits::schema::average_bitrate_bps)
    )]
    pub average_bitrate_bps: Option<i64>,
    /// Reconnects to LiveKit (0..=1e6).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "integer::optional"
    )]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::limits::schema::reconnects))]
    pub reconnects: Option<i64>,
}

/// `POST /api/viewer/token`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ViewerTokenRequest {
    /// The creator's user id (= room name).
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::limits::schema::host_id))]
    pub host_id: String,
    /// Guests only: shown name, at most 64 characters (default "Guest").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::limits::schema::guest_name))]
    pub guest_name: Option<String>,
}

/// Answer of `POST /api/viewer/token`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ViewerTokenResponse {
    pub token: String,
    pub ws_url: String,
    /// The viewer's user id, or `guest-…` for guests.
    pub identity: String,
    pub name: String,
    /// `viewer` or `guest` (the token's `streamit.role` attribute).
    #[serde(default)]
    pub role: String,
    /// Whether this token may send chat now, and if not, why.
    #[serde(default)]
    pub chat: ChatAccess,
}

/// The chat rule in force for one viewer; the grant in the token says the same
/// (`canPublishData`), this is what the page shows instead of a dead input.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ChatAccess {
    pub can_send: bool,
    /// Why not, in words for the viewer ("Chat is for followers only").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Slow mode: seconds between two messages of one viewer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_mode_secs: Option<u64>,
    /// Timed out: may send again from then (epoch ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timed_out_until: Option<i64>,
}

/// The LiveKit room's metadata (JSON), set by the backend at go-live and on
/// every title or chat-settings change, so pages update without a reload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RoomMetadata {
    pub title: String,
    pub description: Option<String>,
    pub is_chat_enabled: bool,
    pub is_chat_delayed: bool,
    pub is_chat_followers_only: bool,
    /// Slow-mode interval when `isChatDelayed`.
    pub slow_mode_secs: u64,
}

/// A moderation event the studio sends on [`room::MODERATION_TOPIC`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ModerationEvent {
    /// Remove one chat message everywhere: `messageId` is the text stream's id.
    #[serde(rename_all = "camelCase")]
    DeleteMessage { message_id: String },
    /// Remove every message of this participant (sent with a ban).
    #[serde(rename_all = "camelCase")]
    DeleteMessagesFrom { identity: String },
}

/// `POST /api/stream/moderation/ban`: refuse this viewer tokens to the
/// creator's stream, revoke `canPublishData` and remove them from the room.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BanRequest {
    /// The participant identity (a user id, or `guest-…`).
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::limits::schema::identity))]
    pub identity: String,
    /// Optional note for the creator's list, at most 200 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::limits::schema::reason))]
    pub reason: Option<String>,
}

/// `POST /api/stream/moderation/timeout`: revoke `canPublishData` for a while.
/// Slow mode uses it too, for the rest of the interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimeoutRequest {
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::limits::schema::identity))]
    pub identity: String,
    /// `limits::TIMEOUT_SECS_MIN..=limits::TIMEOUT_SECS_MAX`.
    #[serde(deserialize_with = "integer::required")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::limits::schema::duration_secs))]
    pub duration_secs: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::limits::schema::reason))]
    pub reason: Option<String>,
}

/// One ban or timeout on a creator's stream (`GET /api/stream/moderation`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ModerationEntry {
    pub identity: String,
    /// `ban` or `timeout`.
    pub kind: String,
    /// The name the viewer had, when known.
    pub name: Option<String>,
    pub reason: Option<String>,
    /// End of a timeout (epoch ms); `None` for a ban.
    pub until: Option<i64>,
    pub created_at: i64,
}

/// Answer of follow / unfollow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct FollowResponse {
    pub username: String,
    pub following: bool,
}

/// `GET /api/health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    pub status: String,
}

/// Answer of logout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Message {
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{from_value, json};

    #[test]
    fn integers_may_be_written_as_integral_numbers() {
        let r: SessionStatsReport =
            from_value(json!({"chatMessages": 5.0, "framesSent": 1e12, "reconnects": null}))
                .unwrap();
        assert_eq!(r.chat_messages, 5);
        assert_eq!(r.frames_sent, Some(1_000_000_000_000));
        assert_eq!(r.reconnects, None);
        for bad in [
            json!({"chatMessages": 5.5}),
            json!({"chatMessages": 1e19}),
            json!({"chatMessages": "5"}),
            json!({"chatMessages": null}),
            json!({"chatMessages": 1, "framesSent": -0.5}),
        ] {
            assert!(
                from_value::<SessionStatsReport>(bad.clone()).is_err(),
                "{bad}"
            );
        }
        let t: TimeoutRequest = from_value(json!({"identity": "x", "durationSecs": 60.0})).unwrap();
        assert_eq!(t.duration_secs, 60);
        assert!(
            from_value::<TimeoutRequest>(json!({"identity": "x", "durationSecs": -1})).is_err()
        );
    }

    #[test]
    fn stream_info_fields_are_left_out_not_null() {
        let r: UpdateStreamInfoRequest = from_value(json!({"title": "t"})).unwrap();
        assert_eq!(r.title.as_deref(), Some("t"));
        assert_eq!(r.description, None);
        assert!(from_value::<UpdateStreamInfoRequest>(json!({"title": null})).is_err());
        assert_eq!(
            serde_json::to_value(UpdateStreamInfoRequest::default()).unwrap(),
            json!({})
        );
    }
}
