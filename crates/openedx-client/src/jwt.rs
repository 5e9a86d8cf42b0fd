//! Reading the claims of an LMS JWT, and verifying one when the operator supplies the key (see
//! [`wire`](crate::wire#the-jwt); verifying needs the `verify` feature, on by default).
//!
//! An app that got the token straight from the LMS token endpoint, over a channel it chose, may
//! read the claims without checking the signature, as the LMS's own relying party
//! (`auth-backends`) does; a service handed a JWT by someone else must [`Jwt::verify`] it.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Secret;

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

/// A JWT from the LMS: its header and claims decoded, the whole kept for [`Jwt::verify`].
#[derive(Clone, Debug)]
pub struct Jwt {
    header: Map<String, Value>,
    claims: UnverifiedClaims,
    /// The JWT as it came; a credential, hence redacted in `Debug`.
    #[cfg_attr(
        not(feature = "verify"),
        expect(dead_code, reason = "only verification reads it")
    )]
    raw: Secret,
}

/// What verifies an LMS JWT. The LMS publishes no key URL ([`wire`](crate::wire#the-jwt)): the operator copies
/// `JWT_SECRET_KEY` (HS256, the default) or `JWT_PUBLIC_SIGNING_JWK_SET` (RS512, for tokens asked
/// for with `asymmetric_jwt`) out of the LMS settings.
#[cfg(feature = "verify")]
#[derive(Clone)]
pub enum JwtKey {
    /// The LMS's `JWT_SECRET_KEY`, for the default HS256 JWTs.
    Hs256(Secret),
    /// The RSA keys of the JWK set; a JWT signed by any of them verifies.
    Rs512(Vec<jsonwebtoken::DecodingKey>),
}

#[cfg(feature = "verify")]
impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Hs256(secret) => f.debug_tuple("Hs256").field(secret).finish(),
            Self::Rs512(keys) => write!(f, "Rs512([{} public keys])", keys.len()),
        }
    }
}

#[cfg(feature = "verify")]
impl JwtKey {
    /// The RSA keys of a JWK set (`{"keys": [{"kty": "RSA", "n": ..., "e": ...}]}`).
    pub fn from_jwk_set(json: &str) -> Result<Self, JwtError> {
        let set: Value = serde_json::from_str(json).map_err(|_| JwtError::BadKey)?;
        let keys = set["keys"]
            .as_array()
            .ok_or(JwtError::BadKey)?
            .iter()
            .filter(|k| k["kty"] == "RSA")
            .map(|k| match (k["n"].as_str(), k["e"].as_str()) {
                (Some(n), Some(e)) => jsonwebtoken::DecodingKey::from_rsa_components(n, e)
                    .map_err(|_| JwtError::BadKey),
                _ => Err(JwtError::BadKey),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(JwtError::BadKey);
        }
        Ok(Self::Rs512(keys))
    }
}

/// Why a JWT is not acceptable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwtError {
    /// Not `header.payload.signature` with JSON objects inside.
    Malformed,
    /// `exp` is in the past (beyond the leeway).
    Expired,
    /// No `exp` at all: such a JWT never expires, and the LMS never issues one.
    NoExpiry,
    /// The signature does not match the key: tampered, or signed with another key.
    BadSignature,
    /// The header's `alg` is not the key's (`HS256` for a secret, `RS512` for a JWK set).
    WrongAlgorithm(String),
    /// `iss` is not [`Expected::issuer`].
    WrongIssuer,
    /// `aud` is not, or does not hold, [`Expected::audience`].
    WrongAudience,
    /// The configured key is not usable (not a JWK set with RSA keys).
    BadKey,
}

impl std::fmt::Display for JwtError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Malformed => f.write_str("not a JWT"),
            Self::Expired => f.write_str("the JWT has expired"),
            Self::NoExpiry => f.write_str("the JWT has no expiry (no exp claim)"),
            Self::BadSignature => f.write_str("the JWT's signature does not match the key"),
            Self::WrongAlgorithm(alg) => {
                write!(f, "the JWT is signed with {alg:?}, not the key's algorithm")
            }
            Self::WrongIssuer => f.write_str("the JWT's iss is not the expected issuer"),
            Self::WrongAudience => f.write_str("the JWT's aud is not the expected audience"),
            Self::BadKey => f.write_str("the key is not an HS256 secret or an RSA JWK set"),
        }
    }
}

impl std::error::Error for JwtError {}

/// What [`Jwt::verify`] checks besides the signature.
#[derive(Clone, Debug, Default)]
pub struct Expected {
    /// `JWT_ISSUER`, e.g. `http://local.openedx.io/oauth2`.
    pub issuer: Option<String>,
    /// `JWT_AUDIENCE`: `lms-key` on devstack, `openedx` on Tutor.
    pub audience: Option<String>,
    /// Clock skew allowed on `exp` (edx-drf-extensions allows 1 s).
    pub leeway_secs: i64,
}

impl Jwt {
    /// Splits and decodes a JWT (header and claims), without checking its signature or expiry:
    /// fails only when it is not a JWT at all.
    ///
    /// ```
    /// use openedx_client::{Jwt, JwtError};
    ///
    /// // {"alg":"HS256","typ":"JWT"} . {"preferred_username":"learner","exp":4102444800} . sig
    /// let raw = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
    ///            eyJwcmVmZXJyZWRfdXNlcm5hbWUiOiJsZWFybmVyIiwiZXhwIjo0MTAyNDQ0ODAwfQ.c2ln";
    /// let jwt = Jwt::decode(raw)?;
    /// assert_eq!(jwt.algorithm(), Some("HS256"));
    /// assert_eq!(jwt.claims().0["preferred_username"], "learner");
    /// assert!(matches!(Jwt::decode("not-a-jwt"), Err(JwtError::Malformed)));
    /// # Ok::<(), JwtError>(())
    /// ```
    pub fn decode(raw: &str) -> Result<Self, JwtError> {
        let raw = raw.trim();
        let (signing_input, signature) = raw.rsplit_once('.').ok_or(JwtError::Malformed)?;
        let (header, _) = signing_input.split_once('.').ok_or(JwtError::Malformed)?;
        let header = match URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
        {
            Some(Value::Object(map)) => map,
            _ => return Err(JwtError::Malformed),
        };
        let claims = UnverifiedClaims::decode(raw).ok_or(JwtError::Malformed)?;
        URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| JwtError::Malformed)?;
        Ok(Self {
            header,
            claims,
            raw: Secret::new(raw),
        })
    }

    /// The header's `alg`: `HS256` or `RS512` from the LMS.
    pub fn algorithm(&self) -> Option<&str> {
        self.header.get("alg").and_then(Value::as_str)
    }

    /// The claims; trust them only after [`Jwt::verify`].
    pub fn claims(&self) -> &UnverifiedClaims {
        &self.claims
    }

    /// Whether `exp` has passed at `now`, allowing `leeway_secs` of clock skew. A JWT without
    /// `exp` has not expired: it never does ([`Jwt::verify`] refuses it for that).
    pub fn is_expired(&self, now: i64, leeway_secs: i64) -> bool {
        self.claims
            .expires_at()
            .is_some_and(|exp| exp + leeway_secs < now)
    }

    /// Checks the signature with `key` (through `jsonwebtoken`), that `exp` is present, `iss` and
    /// `aud`, as edx-drf-extensions does, then `exp` against `now`. `aud` may be one string or an
    /// array of them (RFC 7519 §4.1.3): either way it must hold the expected audience.
    ///
    /// The expiry is compared here, against the `now` given, rather than by `jsonwebtoken`, which
    /// reads the system clock: callers (and tests) decide what now is.
    ///
    /// ```
    /// use openedx_client::{ClientConfig, Expected, Jwt, JwtError, JwtKey, LmsClient, Secret, unix_now};
    /// use openedx_standin::{RegisteredClient, StandIn};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let lms = StandIn::builder()
    ///     .client(RegisteredClient::client_credentials("reports", "reports-secret", "reports-service"))
    ///     .start()
    ///     .await?;
    /// let client = LmsClient::new(ClientConfig::new(lms.url().as_str(), "reports", "reports-secret")?)?;
    /// let token = client.client_credentials().await?;
    /// let jwt = Jwt::decode(token.access_token.expose())?;
    ///
    /// // HS256, with the LMS's JWT_SECRET_KEY (the stand-in's is devstack's).
    /// let key = JwtKey::Hs256(Secret::new("lms-secret"));
    /// let expected = Expected {
    ///     issuer: Some(format!("{}oauth2", lms.url())),
    ///     audience: Some("lms-key".into()),
    ///     leeway_secs: 1,
    /// };
    /// jwt.verify(&key, &expected, unix_now())?;
    /// let forged = JwtKey::Hs256(Secret::new("guessed"));
    /// assert_eq!(jwt.verify(&forged, &expected, unix_now()), Err(JwtError::BadSignature));
    ///
    /// // RS512 (asked for with `asymmetric_jwt`), with the LMS's public JWK set.
    /// let token = client.asymmetric().client_credentials().await?;
    /// let jwks = JwtKey::from_jwk_set(&lms.public_jwks().to_string())?;
    /// Jwt::decode(token.access_token.expose())?.verify(&jwks, &expected, unix_now())?;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "verify")]
    pub fn verify(&self, key: &JwtKey, expected: &Expected, now: i64) -> Result<(), JwtError> {
        use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};

        let alg = self.algorithm().unwrap_or_default();
        let secret;
        let (algorithm, keys): (Algorithm, Vec<&DecodingKey>) = match key {
            JwtKey::Hs256(s) if alg == "HS256" => {
                secret = DecodingKey::from_secret(s.expose().as_bytes());
                (Algorithm::HS256, vec![&secret])
            }
            JwtKey::Rs512(keys) if alg == "RS512" => (Algorithm::RS512, keys.iter().collect()),
            _ => return Err(JwtError::WrongAlgorithm(alg.to_owned())),
        };
        let mut validation = Validation::new(algorithm);
        validation.validate_exp = false;
        validation.leeway = 0;
        if let Some(issuer) = &expected.issuer {
            validation.set_issuer(&[issuer]);
        }
        match &expected.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        let mut outcome = Err(JwtError::BadSignature);
        for key in keys {
            outcome = match jsonwebtoken::decode::<Value>(self.raw.expose(), key, &validation) {
                Ok(_) => Ok(()),
                Err(e) => Err(match e.kind() {
                    ErrorKind::InvalidSignature => continue,
                    ErrorKind::MissingRequiredClaim(_) => JwtError::NoExpiry,
                    ErrorKind::InvalidIssuer => JwtError::WrongIssuer,
                    ErrorKind::InvalidAudience => JwtError::WrongAudience,
                    ErrorKind::InvalidAlgorithm => JwtError::WrongAlgorithm(alg.to_owned()),
                    ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidKeyFormat => JwtError::BadKey,
                    _ => JwtError::Malformed,
                }),
            };
            break;
        }
        outcome?;
        // jsonwebtoken lets an absent `iss` or `aud` through unless required; the LMS always
        // writes both, so an expected one that is missing is refused like a wrong one.
        if expected.issuer.is_some() && !self.claims.0.contains_key("iss") {
            return Err(JwtError::WrongIssuer);
        }
        if expected.audience.is_some() && !self.claims.0.contains_key("aud") {
            return Err(JwtError::WrongAudience);
        }
        if self.is_expired(now, expected.leeway_secs) {
            return Err(JwtError::Expired);
        }
        Ok(())
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
