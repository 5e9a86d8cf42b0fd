//! `POST /oauth2/access_token[/]`, the token endpoint, and `POST /oauth2/revoke_token[/]`
//! (`openedx_client::wire`: the token endpoint, the JWT, revocation, errors); the JWTs themselves
//! are minted in `jwt.rs`.

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
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    GrantType, LmsUser, RecordedTokenRequest, RegisteredClient,
    jwt::{JwtFor, jwt},
    state::{IssuedToken, RefreshGrant, Shared, random_token, unix_now},
};

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

/// The grant a token request asks for: oauthlib picks its handler by `grant_type` before it
/// authenticates the client, so an unknown grant is `unsupported_grant_type` whoever asks.
enum Requested {
    Grant(GrantType),
    Refresh,
}

pub async fn access_token(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let request = record(&s, &headers, &body);
    let requested = match request.field("grant_type") {
        Some("authorization_code") => Requested::Grant(GrantType::AuthorizationCode),
        Some("client_credentials") => Requested::Grant(GrantType::ClientCredentials),
        Some("password") => Requested::Grant(GrantType::Password),
        Some("refresh_token") => Requested::Refresh,
        _ => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", None),
    };
    let Some(client) = authenticate(&s, &request) else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", None);
    };
    let grant = match requested {
        Requested::Grant(grant) => grant,
        // A refresh continues whatever grant issued the refresh token.
        Requested::Refresh => return refresh(&s, &client, &request),
    };
    if grant != client.grant_type {
        return oauth_error(StatusCode::BAD_REQUEST, "unauthorized_client", None);
    }
    match grant {
        GrantType::AuthorizationCode => authorization_code(&s, &client, &request),
        GrantType::ClientCredentials => client_credentials(&s, &client, &request),
        GrantType::Password => password(&s, &client, &request),
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

/// Confidential clients authenticate by HTTP Basic or with both fields in the body; public clients
/// by their `client_id` alone.
fn authenticate(s: &Shared, request: &RecordedTokenRequest) -> Option<RegisteredClient> {
    if request.basic_auth.is_none() && request.field("client_secret").is_none() {
        let client = s.lock().clients.get(request.field("client_id")?).cloned()?;
        return client.is_public().then_some(client);
    }
    let (id, secret) = match &request.basic_auth {
        Some((id, secret)) => (id.as_str(), secret.as_str()),
        None => (request.field("client_id")?, request.field("client_secret")?),
    };
    let client = s.lock().clients.get(id).cloned()?;
    if client.is_public() {
        return None;
    }
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
    let issued = Issued {
        grant_type: GrantType::AuthorizationCode,
        scopes: grant.scopes,
        refresh: true,
    };
    issue(s, client, &user, issued, request)
}

/// `grant_type=client_credentials`: a token for the application's owner, and no refresh token
/// (oauthlib never issues one for this grant): renewing means asking again.
fn client_credentials(
    s: &Shared,
    client: &RegisteredClient,
    request: &RecordedTokenRequest,
) -> Response {
    let Some(owner) = s.lock().users.get(&client.owner).cloned() else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", None);
    };
    let Some(mut scopes) = requested_scopes(client, request) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", None);
    };
    // EdxOAuth2Validator.get_default_scopes: a client-credentials request that names no scope
    // gets `user_id` too when the application may have it.
    if request.field("scope").is_none() && client.scopes.iter().any(|s| s == "user_id") {
        scopes.push("user_id".into());
    }
    let issued = Issued {
        grant_type: GrantType::ClientCredentials,
        scopes,
        refresh: false,
    };
    issue(s, client, &owner, issued, request)
}

/// `grant_type=password`, for public clients (as the LMS's mobile apps are registered) and
/// confidential ones alike (DOT authenticates the latter with their secret first); the user may
/// give their username or their email, as the LMS allows.
fn password(s: &Shared, client: &RegisteredClient, request: &RecordedTokenRequest) -> Response {
    let (Some(username), Some(password)) = (request.field("username"), request.field("password"))
    else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some("Request is missing username parameter."),
        );
    };
    let user = s
        .lock()
        .users
        .values()
        .find(|u| (u.username == username || u.email == username) && u.password == password)
        .cloned();
    let Some(user) = user else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            Some("Invalid credentials given."),
        );
    };
    let Some(mut scopes) = requested_scopes(client, request) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", None);
    };
    // The LMS appends user_id to password-grant tokens (ADR 0015).
    if !scopes.iter().any(|s| s == "user_id") {
        scopes.push("user_id".into());
    }
    let issued = Issued {
        grant_type: GrantType::Password,
        scopes,
        refresh: true,
    };
    issue(s, client, &user, issued, request)
}

/// The `scope` field (default: the LMS's default scopes), if the application may have all of it.
fn requested_scopes(
    client: &RegisteredClient,
    request: &RecordedTokenRequest,
) -> Option<Vec<String>> {
    let scopes: Vec<String> = match request.field("scope") {
        Some(scope) => scope.split_whitespace().map(str::to_owned).collect(),
        None => super::DEFAULT_SCOPES
            .iter()
            .map(|s| s.to_string())
            .collect(),
    };
    let allowed = |scope: &str| {
        super::KNOWN_SCOPES.contains(&scope)
            && (super::DEFAULT_SCOPES.contains(&scope) || client.scopes.iter().any(|s| s == scope))
    };
    scopes.iter().all(|s| allowed(s)).then_some(scopes)
}

/// What a token response is for.
struct Issued {
    grant_type: GrantType,
    scopes: Vec<String>,
    refresh: bool,
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
    let issued = Issued {
        grant_type: client.grant_type,
        scopes: grant.scopes,
        refresh: true,
    };
    issue(s, client, &user, issued, request)
}

/// The token response: a JWT when `token_type=jwt` (body or `X-Token-Type`), else the opaque
/// access token; always a new opaque refresh token.
fn issue(
    s: &Shared,
    client: &RegisteredClient,
    user: &LmsUser,
    issued: Issued,
    request: &RecordedTokenRequest,
) -> Response {
    let Issued {
        grant_type,
        scopes,
        refresh,
    } = issued;
    // Any non-empty value, even "false", selects asymmetric signing (`openedx_client::wire`).
    let asymmetric = request
        .field("asymmetric_jwt")
        .is_some_and(|v| !v.is_empty());
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
        if refresh {
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
        }
        if wants_jwt {
            let lifetime = inner.jwt_lifetime.unwrap_or(s.settings.jwt_lifetime);
            let expires_in = lifetime.as_secs() as i64;
            let claims = JwtFor {
                user,
                scopes: &scopes,
                grant_type,
                expires_in,
            };
            let jwt = jwt(s, &claims, asymmetric);
            inner.issued.access_tokens.push(jwt.clone());
            json!({
                "access_token": jwt,
                "expires_in": expires_in,
                "token_type": "JWT",
                "scope": scope,
            })
        } else {
            inner.issued.access_tokens.push(access_token.clone());
            json!({
                "access_token": access_token,
                "expires_in": opaque_expires_in,
                "token_type": "Bearer",
                "scope": scope,
            })
        }
    };
    let mut body = body;
    if refresh {
        body["refresh_token"] = Value::String(refresh_token);
    }
    (StatusCode::OK, no_store(), Json(body)).into_response()
}
