//! Errors: [`SessionError`] inside the crate, [`UserError`] in the state for people.

use std::time::SystemTime;

use streamit_api::client::ApiError;

/// What kind of thing went wrong: decides wording in the GUI and exit codes in the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Not logged in, bad credentials, expired session, not approved.
    Auth,
    /// The backend or the LiveKit server could not be reached or dropped us.
    Network,
    /// A camera, microphone or media file could not be opened or was lost.
    Device,
    /// The backend or LiveKit answered with an error.
    Server,
    /// The request itself was invalid (empty title, command in the wrong state).
    Invalid,
    /// An encoder failed.
    Media,
}

/// An error as shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserError {
    pub kind: ErrorKind,
    pub message: String,
    pub at: SystemTime,
}

impl std::fmt::Display for UserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UserError {}

/// Errors of session operations.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("not logged in")]
    NotLoggedIn,
    #[error("{0}")]
    Api(#[from] ApiError),
    #[error("LiveKit: {0}")]
    Publish(#[from] streamit_livekit_publish::Error),
    #[error("could not connect to the LiveKit server within {0} s")]
    ConnectTimeout(u64),
    #[error("LiveKit connection failed: {0}")]
    Transport(String),
    #[error("{0}")]
    Media(#[from] streamit_media::MediaError),
    #[error("{0}")]
    Invalid(String),
    #[error("the StreamIt server did not answer within {0} s")]
    BackendTimeout(u64),
    #[error("the session task has stopped")]
    Closed,
}

impl SessionError {
    /// The kind, for wording and exit codes.
    pub fn kind(&self) -> ErrorKind {
        use streamit_media::MediaError as M;
        match self {
            SessionError::NotLoggedIn => ErrorKind::Auth,
            SessionError::Api(e) => match e.status() {
                Some(401) | Some(403) => ErrorKind::Auth,
                Some(_) => ErrorKind::Server,
                None => ErrorKind::Network,
            },
            SessionError::Publish(streamit_livekit_publish::Error::Signal(m)) => {
                let m = m.to_ascii_lowercase();
                if m.contains("401") || m.contains("unauthorized") || m.contains("token") {
                    ErrorKind::Auth
                } else {
                    ErrorKind::Network
                }
            }
            SessionError::Publish(_) | SessionError::ConnectTimeout(_) => ErrorKind::Network,
            SessionError::Transport(_) | SessionError::BackendTimeout(_) => ErrorKind::Network,
            SessionError::Media(M::Device(_) | M::DeviceLost(_) | M::File { .. } | M::Io(_)) => {
                ErrorKind::Device
            }
            SessionError::Media(_) => ErrorKind::Media,
            SessionError::Invalid(_) => ErrorKind::Invalid,
            SessionError::Closed => ErrorKind::Invalid,
        }
    }

    /// A sentence for the user.
    pub fn user_message(&self) -> String {
        match self {
            SessionError::NotLoggedIn => "Please log in first.".into(),
            SessionError::Api(ApiError::Status { status, message }) => match status {
                401 => format!("Your session is no longer valid, please log in again ({message})."),
                403 => format!("Not allowed: {message}."),
                _ => format!("The StreamIt server refused: {message} (HTTP {status})."),
            },
            SessionError::Api(ApiError::Transport(e)) => {
                format!("Cannot reach the StreamIt server: {e}.")
            }
            SessionError::Api(ApiError::Decode {
                status,
                url,
                detail,
            }) => format!(
                "{url} answered HTTP {status} with {detail}; \
                 is the StreamIt server URL (--api / STREAMIT_API_URL) right?"
            ),
            other => other.to_string(),
        }
    }

    pub fn to_user(&self) -> UserError {
        UserError {
            kind: self.kind(),
            message: self.user_message(),
            at: SystemTime::now(),
        }
    }
}

pub type Result<T, E = SessionError> = std::result::Result<T, E>;
