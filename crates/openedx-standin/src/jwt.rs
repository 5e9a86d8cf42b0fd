//! The JWTs the stand-in issues (`openedx_client::wire`: the JWT): the claims
//! `oauth_dispatch/jwt.py` writes, HS256 signing with the LMS secret, and RS512 signing with the
//! development key, whose public half is the JWK set an operator shares.

use std::sync::LazyLock;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use rsa::{
    RsaPrivateKey, RsaPublicKey,
    pkcs1::DecodeRsaPrivateKey,
    pkcs1v15::SigningKey,
    signature::{SignatureEncoding, Signer},
    traits::PublicKeyParts,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha512};

use crate::{
    GrantType, LmsUser,
    state::{Shared, unix_now},
};

/// The stand-in's RS512 signing key (`JWT_PRIVATE_SIGNING_JWK` on a real LMS). A development key,
/// public by nature, like devstack's: nothing signed with it may be trusted outside tests.
static SIGNING_KEY: LazyLock<RsaPrivateKey> = LazyLock::new(|| {
    #[expect(
        clippy::expect_used,
        reason = "a constant key compiled into the binary"
    )]
    RsaPrivateKey::from_pkcs1_pem(include_str!("dev_signing_key.pem")).expect("a valid PEM key")
});

/// `JWT_PUBLIC_SIGNING_JWK_SET`: what an operator shares with services that verify RS512 JWTs.
pub(super) fn public_jwks() -> Value {
    let public = RsaPublicKey::from(&*SIGNING_KEY);
    json!({
        "keys": [{
            "kty": "RSA",
            "alg": "RS512",
            "use": "sig",
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        }]
    })
}

pub(super) fn rs512_public_key() -> RsaPublicKey {
    RsaPublicKey::from(&*SIGNING_KEY)
}

/// Whose JWT, for what.
pub(crate) struct JwtFor<'a> {
    pub(crate) user: &'a LmsUser,
    pub(crate) scopes: &'a [String],
    pub(crate) grant_type: GrantType,
    pub(crate) expires_in: i64,
}

/// A JWT with the claims `oauth_dispatch/jwt.py` writes (§3): HS256 with the LMS secret, or RS512
/// with its signing key when `asymmetric_jwt` was posted.
pub(crate) fn jwt(s: &Shared, what: &JwtFor<'_>, asymmetric: bool) -> String {
    let JwtFor {
        user,
        scopes,
        grant_type,
        expires_in,
    } = *what;
    let iat = unix_now();
    // `user:me` marks tokens that act for a user, which client-credentials tokens do not.
    let filters = match grant_type {
        GrantType::ClientCredentials => json!([]),
        _ => json!(["user:me"]),
    };
    let mut claims = json!({
        "aud": s.settings.jwt_audience,
        "exp": iat + expires_in,
        "grant_type": grant_type.claim(),
        "iat": iat,
        "iss": s.issuer(),
        "preferred_username": user.username,
        "scopes": scopes,
        "version": "1.2.0",
        "sub": anonymous_id(&s.settings.jwt_secret, &user.username),
        "filters": filters,
        "is_restricted": false,
        "email_verified": true,
    });
    let has = |scope: &str| scopes.iter().any(|s| s == scope);
    if has("user_id") {
        claims["user_id"] = json!(user.id);
    }
    if has("email") {
        claims["email"] = json!(user.email);
    }
    if has("profile") {
        claims["name"] = json!(user.name);
        claims["given_name"] = json!(user.first_name);
        claims["family_name"] = json!(user.last_name);
        claims["administrator"] = json!(user.is_staff);
        claims["superuser"] = json!(false);
    }
    if asymmetric {
        sign_rs512(&claims)
    } else {
        sign(&s.settings.jwt_secret, &claims)
    }
}

/// RS512 (RSASSA-PKCS1-v1_5 with SHA-512); the header has no `kid`, as the LMS writes it.
fn sign_rs512(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS512","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let signature = SigningKey::<Sha512>::new(SIGNING_KEY.clone()).sign(signing_input.as_bytes());
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    )
}

pub(super) fn sign(secret: &str, claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(hmac(secret, &signing_input))
    )
}

pub(super) fn hmac(secret: &str, input: &str) -> Vec<u8> {
    #[expect(clippy::expect_used, reason = "HMAC takes keys of any length")]
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(input.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Like `anonymous_id_for_user`: a stable, opaque per-user id that is not the numeric id.
fn anonymous_id(secret: &str, username: &str) -> String {
    Sha256::digest(format!("{secret}{username}").as_bytes())[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
