//! `POST /oauth2/access_token[/]`, the token endpoint, and `POST /oauth2/revoke_token[/]`
//! (`openedx.md` §2, §3, §8, §9).

use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{
    IssuedToken, LmsUser, RecordedTokenRequest, RefreshGrant, RegisteredClient, Shared,
    random_token,
};
use crate::lms::unix_now;

/// An OAuth 2 error answer, exactly as oauthlib writes it.
fn oauth_error(status: StatusCode, error: &str, description: Option<&str>) -> Response {
    let mut body = json!({ "error": error });
    if let Some(d) = description {
        body["error_description"] = Value::String(d.to_owned());
    }
    let mut response = (status, no_store(), Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer error=\"invalid_client\""),
        );
    }
    response
}

fn no_store() -> [(header::HeaderName, &'static str); 2] {
    [
        (header::CACHE_CONTROL, "no-store"),
        (header::PRAGMA, "no-cache"),
    ]
}

pub async fn access_token(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let request = record(&s, &headers, &body);
    let Some(client) = authenticate(&s, &request) else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", None);
    };
    match request.field("grant_type") {
        Some("authorization_code") => authorization_code(&s, &client, &request),
        Some("refresh_token") => refresh(&s, &client, &request),
        _ => oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", None),
    }
}

/// oauthlib's `RevocationEndpoint`: client authentication, then 200 with an empty body whether or
/// not the token existed. Revoking a refresh token deletes its access token too; a JWT is not
/// revocable (nothing is stored for it) and is silently accepted.
pub async fn revoke_token(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let request = record(&s, &headers, &body);
    let Some(client) = authenticate(&s, &request) else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", None);
    };
    let Some(token) = request.field("token") else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", None);
    };
    let mut inner = s.lock();
    if inner
        .refresh_tokens
        .get(token)
        .is_some_and(|r| r.client_id == client.client_id)
        && let Some(grant) = inner.refresh_tokens.remove(token)
    {
        inner.opaque_tokens.remove(&grant.access_token);
    }
    inner.opaque_tokens.remove(token);
    (StatusCode::OK, no_store()).into_response()
}

/// Parses and records a token or revocation request.
fn record(s: &Shared, headers: &HeaderMap, body: &[u8]) -> RecordedTokenRequest {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let request = RecordedTokenRequest {
        basic_auth: basic_auth(headers),
        x_token_type: headers
            .get("x-token-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        form,
    };
    s.lock().token_requests.push(request.clone());
    request
}

/// HTTP Basic credentials, base64-decoded and then URL-decoded (`unquote_plus`), as DOT reads them.
fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unquote = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .ok()
            .map(|c| c.into_owned())
    };
    Some((unquote(id)?, unquote(secret)?))
}

/// Confidential clients authenticate by HTTP Basic or with both fields in the body.
fn authenticate(s: &Shared, request: &RecordedTokenRequest) -> Option<RegisteredClient> {
    let (id, secret) = match &request.basic_auth {
        Some((id, secret)) => (id.as_str(), secret.as_str()),
        None => (request.field("client_id")?, request.field("client_secret")?),
    };
    let client = s.lock().clients.get(id).cloned()?;
    let matches: bool =
        subtle::ConstantTimeEq::ct_eq(client.client_secret.as_bytes(), secret.as_bytes()).into();
    matches.then_some(client)
}

fn authorization_code(
    s: &Shared,
    client: &RegisteredClient,
    request: &RecordedTokenRequest,
) -> Response {
    let bad = |error: &str, description: Option<&str>| {
        oauth_error(StatusCode::BAD_REQUEST, error, description)
    };
    let Some(code) = request.field("code") else {
        return bad("invalid_request", Some("Missing code parameter."));
    };
    let mut inner = s.lock();
    let now = tokio::time::Instant::now();
    let Some(grant) = inner.grants.get(code) else {
        return bad("invalid_grant", None);
    };
    if grant.client_id != client.client_id || grant.expires_at <= now {
        return bad("invalid_grant", None);
    }
    if let Some((challenge, method)) = &grant.challenge {
        let Some(verifier) = request.field("code_verifier") else {
            return bad("invalid_request", Some("Code verifier required."));
        };
        let computed = match method.as_str() {
            "S256" => URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
            _ => verifier.to_owned(),
        };
        if computed != *challenge {
            return bad("invalid_grant", None);
        }
    }
    if grant.redirect_uri_sent && request.field("redirect_uri") != Some(grant.redirect_uri.as_str())
    {
        return bad("invalid_request", Some("Mismatching redirect URI."));
    }
    let Some(grant) = inner.grants.remove(code) else {
        return bad("invalid_grant", None);
    };
    let Some(user) = inner.users.get(&grant.username).cloned() else {
        return bad("invalid_grant", None);
    };
    drop(inner);
    issue(s, client, &user, grant.scopes, request)
}

/// `grant_type=refresh_token`: the refresh token is spent (DOT's `ROTATE_REFRESH_TOKEN`) and a new
/// pair issued with the same scopes.
fn refresh(s: &Shared, client: &RegisteredClient, request: &RecordedTokenRequest) -> Response {
    let bad = |error: &str, description: Option<&str>| {
        oauth_error(StatusCode::BAD_REQUEST, error, description)
    };
    let Some(refresh_token) = request.field("refresh_token") else {
        return bad("invalid_request", Some("Missing refresh token parameter."));
    };
    let mut inner = s.lock();
    let valid = inner
        .refresh_tokens
        .get(refresh_token)
        .is_some_and(|r| r.client_id == client.client_id && r.expires_at > unix_now());
    let Some(grant) = valid
        .then(|| inner.refresh_tokens.remove(refresh_token))
        .flatten()
    else {
        return bad("invalid_grant", None);
    };
    inner.opaque_tokens.remove(&grant.access_token);
    let Some(user) = inner.users.get(&grant.username).cloned() else {
        return bad("invalid_grant", None);
    };
    drop(inner);
    issue(s, client, &user, grant.scopes, request)
}

/// The token response: a JWT when `token_type=jwt` (body or `X-Token-Type`), else the opaque
/// access token; always a new opaque refresh token.
fn issue(
    s: &Shared,
    client: &RegisteredClient,
    user: &LmsUser,
    scopes: Vec<String>,
    request: &RecordedTokenRequest,
) -> Response {
    let access_token = random_token(30);
    let refresh_token = random_token(30);
    let opaque_expires_in = s.settings.opaque_lifetime.as_secs() as i64;
    let now = unix_now();
    let wants_jwt = request
        .field("token_type")
        .map(str::to_owned)
        .or_else(|| request.x_token_type.clone())
        .is_some_and(|t| t.eq_ignore_ascii_case("jwt"));
    let scope = scopes.join(" ");
    let body = {
        let mut inner = s.lock();
        inner.opaque_tokens.insert(
            access_token.clone(),
            IssuedToken {
                username: user.username.clone(),
                expires_at: now + opaque_expires_in,
            },
        );
        inner.refresh_tokens.insert(
            refresh_token.clone(),
            RefreshGrant {
                client_id: client.client_id.clone(),
                username: user.username.clone(),
                scopes: scopes.clone(),
                expires_at: now + s.settings.refresh_lifetime.as_secs() as i64,
                access_token: access_token.clone(),
            },
        );
        inner.issued.refresh_tokens.push(refresh_token.clone());
        if wants_jwt {
            let lifetime = inner.jwt_lifetime.unwrap_or(s.settings.jwt_lifetime);
            let expires_in = lifetime.as_secs() as i64;
            let jwt = jwt(s, user, &scopes, expires_in);
            inner.issued.access_tokens.push(jwt.clone());
            json!({
                "access_token": jwt,
                "expires_in": expires_in,
                "token_type": "JWT",
                "scope": scope,
                "refresh_token": refresh_token,
            })
        } else {
            inner.issued.access_tokens.push(access_token.clone());
            json!({
                "access_token": access_token,
                "expires_in": opaque_expires_in,
                "token_type": "Bearer",
                "scope": scope,
                "refresh_token": refresh_token,
            })
        }
    };
    (StatusCode::OK, no_store(), Json(body)).into_response()
}

/// An HS256 JWT with the claims `oauth_dispatch/jwt.py` writes (§3).
fn jwt(s: &Shared, user: &LmsUser, scopes: &[String], expires_in: i64) -> String {
    let iat = unix_now();
    let mut claims = json!({
        "aud": s.settings.jwt_audience,
        "exp": iat + expires_in,
        "grant_type": "authorization-code",
        "iat": iat,
        "iss": s.issuer(),
        "preferred_username": user.username,
        "scopes": scopes,
        "version": "1.2.0",
        "sub": anonymous_id(&s.settings.jwt_secret, &user.username),
        "filters": ["user:me"],
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
    sign(&s.settings.jwt_secret, &claims)
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
