//! Reading the claims of an LMS JWT (see `../shared/openedx.md` §3).
//!
//! The app got the token straight from the LMS token endpoint over a channel it chose, so, like the
//! LMS's own relying party (`auth-backends`), it reads the claims without checking the signature;
//! the page that shows them says so.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The payload of a JWT, decoded but **not** signature-checked.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UnverifiedClaims(pub Map<String, Value>);

impl UnverifiedClaims {
    /// Decodes the middle part of `header.payload.signature`. Returns `None` for anything that is
    /// not a three-part token with a JSON object as payload (e.g. an opaque DOT token).
    pub fn decode(token: &str) -> Option<Self> {
        let mut parts = token.split('.');
        let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
        match serde_json::from_slice(&bytes).ok()? {
            Value::Object(map) => Some(Self(map)),
            _ => None,
        }
    }

    /// `exp`, in Unix seconds.
    pub fn expires_at(&self) -> Option<i64> {
        self.0.get("exp").and_then(Value::as_i64)
    }

    /// The numeric LMS user id; present only when the `user_id` scope was granted (`sub` is an
    /// anonymous id, not this).
    pub fn user_id(&self) -> Option<i64> {
        self.0.get("user_id").and_then(Value::as_i64)
    }

    /// Claims as (name, value) rows for display, in the order the LMS wrote them.
    pub fn rows(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .map(|(k, v)| {
                let shown = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), shown)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(payload: &str) -> String {
        format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn lms_claims_are_read_in_order() {
        let jwt = encode(r#"{"aud":"lms-key","exp":1700003600,"user_id":7,"scopes":["email"]}"#);
        let claims = UnverifiedClaims::decode(&jwt).expect("decodes");
        assert_eq!(claims.expires_at(), Some(1_700_003_600));
        assert_eq!(claims.user_id(), Some(7));
        assert_eq!(
            claims.rows(),
            vec![
                ("aud".into(), "lms-key".into()),
                ("exp".into(), "1700003600".into()),
                ("user_id".into(), "7".into()),
                ("scopes".into(), r#"["email"]"#.into()),
            ]
        );
    }

    #[test]
    fn opaque_tokens_and_garbage_are_not_claims() {
        assert_eq!(
            UnverifiedClaims::decode("x5Q2kT9mAbCdEfGhIjKlMnOpQrStUv"),
            None
        );
        assert_eq!(UnverifiedClaims::decode("a.b.c"), None);
        assert_eq!(UnverifiedClaims::decode(&encode("[1,2]")), None);
        assert_eq!(UnverifiedClaims::decode("a.b.c.d"), None);
    }
}
