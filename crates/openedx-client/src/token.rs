//! The token the LMS hands out at `/oauth2/access_token` ([`wire`](crate::wire#the-token-endpoint)), as an app
//! keeps it server-side in the session.

use serde::{Deserialize, Serialize};

use crate::{Secret, UnverifiedClaims};

/// What kind of access token the LMS returned: it decides the `Authorization` scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenKind {
    /// `"token_type": "JWT"`; sent as `Authorization: JWT <token>`.
    Jwt,
    /// `"token_type": "Bearer"`; an opaque DOT token sent as `Authorization: Bearer <token>`.
    /// A JWT sent this way is looked up as an opaque token and rejected by the LMS.
    Bearer,
}

impl TokenKind {
    /// Reads the response's `token_type`, which the LMS writes as `JWT` or `Bearer` (compared
    /// case-insensitively, as RFC 6749 §5.1 asks).
    pub fn from_token_type(token_type: &str) -> Option<Self> {
        match token_type.to_ascii_lowercase().as_str() {
            "jwt" => Some(Self::Jwt),
            "bearer" => Some(Self::Bearer),
            _ => None,
        }
    }

    /// The scheme word for the `Authorization` header.
    pub fn scheme(self) -> &'static str {
        match self {
            Self::Jwt => "JWT",
            Self::Bearer => "Bearer",
        }
    }
}

/// An access token from the LMS, with what came with it. Serializable, so that an app can keep
/// it server-side (in its session store); its `Debug` shows no secret.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Token {
    /// The JWT or opaque token itself.
    pub access_token: Secret,
    /// Which of the two it is, and so its `Authorization` scheme.
    pub kind: TokenKind,
    /// Unix seconds; from `expires_in` at the time the token arrived.
    pub expires_at: Option<i64>,
    /// The scopes the LMS says it granted (`scope` in the response).
    pub scopes: Vec<String>,
    /// Opaque DOT refresh token; 90-day lifetime, rotated on every use.
    pub refresh_token: Option<Secret>,
}

impl Token {
    /// The value for the `Authorization` header on LMS API calls.
    pub fn authorization(&self) -> String {
        format!("{} {}", self.kind.scheme(), self.access_token.expose())
    }

    /// Expired, or close enough to expiry (`leeway`) that the LMS may see it expired. A token
    /// whose expiry the LMS did not state is used until the LMS refuses it.
    pub fn is_stale(&self, now: i64, leeway: std::time::Duration) -> bool {
        self.expires_at
            .is_some_and(|at| at - leeway.as_secs() as i64 <= now)
    }

    /// The JWT's claims, read without checking the signature; `None` for opaque tokens.
    pub fn claims(&self) -> Option<UnverifiedClaims> {
        match self.kind {
            TokenKind::Jwt => UnverifiedClaims::decode(self.access_token.expose()),
            TokenKind::Bearer => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authorization_scheme_follows_the_token_kind() {
        let mut token = Token {
            access_token: Secret::new("abc"),
            kind: TokenKind::Jwt,
            expires_at: None,
            scopes: vec![],
            refresh_token: None,
        };
        assert_eq!(token.authorization(), "JWT abc");
        token.kind = TokenKind::Bearer;
        assert_eq!(token.authorization(), "Bearer abc");
    }

    #[test]
    fn token_type_is_read_case_insensitively() {
        assert_eq!(TokenKind::from_token_type("JWT"), Some(TokenKind::Jwt));
        assert_eq!(
            TokenKind::from_token_type("bearer"),
            Some(TokenKind::Bearer)
        );
        assert_eq!(TokenKind::from_token_type("mac"), None);
    }

    #[test]
    fn debug_output_of_a_token_hides_both_tokens() {
        let token = Token {
            access_token: Secret::new("access-123"),
            kind: TokenKind::Bearer,
            expires_at: Some(1),
            scopes: vec!["email".into()],
            refresh_token: Some(Secret::new("refresh-456")),
        };
        let shown = format!("{token:?}");
        assert!(
            !shown.contains("access-123") && !shown.contains("refresh-456"),
            "{shown}"
        );
    }
}
