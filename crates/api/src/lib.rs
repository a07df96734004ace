//! The StreamIt REST contract, shared by the backend and every client.
//!
//! Every response is an envelope: `{"success": true, "data": …}` or
//! `{"success": false, "error": "…"}`. Keeping the envelope in one type means
//! the server cannot emit a shape the client does not parse.

use serde::{Deserialize, Serialize};

#[cfg(feature = "client")]
pub mod client;
pub mod limits;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod types;

pub use types::*;

/// The response envelope of every endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Envelope<T> {
    Ok { success: True, data: T },
    Err { success: False, error: String },
}

impl<T> Envelope<T> {
    pub fn ok(data: T) -> Self {
        Envelope::Ok {
            success: True,
            data,
        }
    }

    pub fn err(error: impl Into<String>) -> Self {
        Envelope::Err {
            success: False,
            error: error.into(),
        }
    }

    /// The payload, or the server's error message.
    pub fn into_result(self) -> Result<T, String> {
        match self {
            Envelope::Ok { data, .. } => Ok(data),
            Envelope::Err { error, .. } => Err(error),
        }
    }
}

/// Serialises as the literal `true`, and only accepts `true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct True;

/// Serialises as the literal `false`, and only accepts `false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct False;

macro_rules! bool_literal {
    ($ty:ident, $value:literal) => {
        impl Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bool($value)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                match bool::deserialize(d)? {
                    $value => Ok($ty),
                    other => Err(serde::de::Error::custom(format!(
                        "expected {}, got {other}",
                        $value
                    ))),
                }
            }
        }
    };
}
bool_literal!(True, true);
bool_literal!(False, false);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn success_envelope_has_the_contract_shape() {
        let v = serde_json::to_value(Envelope::ok(json!({"isLive": true}))).unwrap();
        assert_eq!(v, json!({"success": true, "data": {"isLive": true}}));
    }

    #[test]
    fn error_envelope_round_trips() {
        let text = r#"{"success":false,"error":"Stream not found"}"#;
        let env: Envelope<serde_json::Value> = serde_json::from_str(text).unwrap();
        assert_eq!(
            env.clone().into_result(),
            Err("Stream not found".to_string())
        );
        assert_eq!(serde_json::to_string(&env).unwrap(), text);
    }

    #[test]
    fn success_flag_must_match_the_payload() {
        let bad = r#"{"success":false,"data":{}}"#;
        assert!(serde_json::from_str::<Envelope<serde_json::Value>>(bad).is_err());
    }
}
