//! The admin API under `/_standin/`: not part of the LMS. It lets a test written in any language
//! steer the stand-in over HTTP (applications, learners, faults, token expiry, the journal). Each
//! handler calls the same `Shared` method the Rust API ([`crate::StandIn`]) calls, so the two
//! cannot drift apart.

use std::time::Duration;

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    AccountPrivacy, ENDPOINTS, Fault, GrantType, LmsUser, RegisteredClient,
    state::{Shared, random_secret},
};

pub(crate) fn router() -> Router<Shared> {
    Router::new()
        .route("/", get(index))
        .route("/clients", post(add_client))
        .route("/users", post(add_user))
        .route("/faults/{endpoint}", put(set_fault).delete(clear_fault))
        .route("/jwt-lifetime", put(set_jwt_lifetime))
        .route("/tokens/expire", post(expire_tokens))
        .route("/tokens/revoke", post(revoke_tokens))
        .route("/journal", get(journal))
        .route("/calls", get(calls))
        .route("/jwks", get(jwks))
}

/// A refusal of the admin API: a status and a JSON `{"error": ...}` saying what to fix.
fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn index() -> Json<Value> {
    Json(json!({
        "what": "the admin API of openedx-standin, a development stand-in for the Open edX LMS; \
                 not part of the LMS",
        "routes": [
            "POST /_standin/clients",
            "POST /_standin/users",
            "PUT|DELETE /_standin/faults/{endpoint}",
            "PUT /_standin/jwt-lifetime",
            "POST /_standin/tokens/expire",
            "POST /_standin/tokens/revoke",
            "GET /_standin/journal",
            "GET /_standin/calls",
            "GET /_standin/jwks",
        ],
        "endpoints": ENDPOINTS,
    }))
}

/// `POST /_standin/clients`: what `create_dot_application` takes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientSpec {
    client_id: String,
    client_secret: Option<String>,
    #[serde(default)]
    grant_type: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    skip_authorization: bool,
    scopes: Option<Vec<String>>,
    owner: Option<String>,
    #[serde(default)]
    public: bool,
}

async fn add_client(State(s): State<Shared>, body: Option<Json<ClientSpec>>) -> Response {
    let Some(Json(spec)) = body else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "send JSON such as {\"client_id\": \"my-app\", \"redirect_uris\": [\"http://127.0.0.1:3000/callback\"]}",
        );
    };
    let grant_type = match spec.grant_type.as_deref() {
        None => GrantType::AuthorizationCode,
        Some(name) => match GrantType::from_name(name) {
            Some(g) => g,
            None => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "grant_type {name:?}: use authorization-code, client-credentials or password"
                    ),
                );
            }
        },
    };
    if grant_type == GrantType::AuthorizationCode && spec.redirect_uris.is_empty() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "an authorization-code application needs redirect_uris",
        );
    }
    if spec.public && spec.client_secret.is_some() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "a public client has no client_secret",
        );
    }
    let secret = match (spec.public, spec.client_secret) {
        (true, _) => String::new(),
        (false, Some(secret)) if !secret.is_empty() => secret,
        (false, _) => random_secret(),
    };
    let client = RegisteredClient {
        grant_type,
        skip_authorization: spec.skip_authorization,
        scopes: spec.scopes.unwrap_or_else(|| vec!["user_id".into()]),
        owner: spec
            .owner
            .unwrap_or_else(|| format!("{}-service", spec.client_id)),
        ..RegisteredClient::authorization_code(&spec.client_id, &secret, spec.redirect_uris)
    };
    let answer = json!({
        "client_id": client.client_id,
        // The caller made this application: telling it its own secret is the point.
        "client_secret": (!client.is_public()).then_some(&secret),
        "public": client.is_public(),
        "grant_type": client.grant_type.claim(),
        "redirect_uris": client.redirect_uris,
        "owner": client.owner,
    });
    s.register_client(client);
    (StatusCode::CREATED, Json(answer)).into_response()
}

/// `POST /_standin/users`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserSpec {
    username: String,
    password: Option<String>,
    email: Option<String>,
    name: Option<String>,
    id: Option<i64>,
    #[serde(default)]
    is_staff: bool,
    account_privacy: Option<String>,
}

async fn add_user(State(s): State<Shared>, body: Option<Json<UserSpec>>) -> Response {
    let Some(Json(spec)) = body else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "send JSON such as {\"username\": \"grace\", \"password\": \"grace-password\"}",
        );
    };
    let account_privacy = match spec.account_privacy.as_deref() {
        None => None,
        Some("private") => Some(AccountPrivacy::Private),
        Some("all_users") => Some(AccountPrivacy::AllUsers),
        Some(other) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("account_privacy {other:?}: use private or all_users"),
            );
        }
    };
    let user = LmsUser {
        id: spec.id.unwrap_or_else(|| s.next_user_id()),
        password: spec
            .password
            .unwrap_or_else(|| format!("{}-password", spec.username)),
        email: spec
            .email
            .unwrap_or_else(|| format!("{}@example.com", spec.username)),
        name: spec.name.unwrap_or_else(|| spec.username.clone()),
        is_staff: spec.is_staff,
        account_privacy,
        ..LmsUser::named(&spec.username)
    };
    let answer = json!({ "username": user.username, "id": user.id, "email": user.email });
    s.add_user(user);
    (StatusCode::CREATED, Json(answer)).into_response()
}

/// `PUT /_standin/faults/{endpoint}`: `{"delay_ms": 500}` or `{"status": 502, ...}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultSpec {
    delay_ms: Option<u64>,
    status: Option<u16>,
    content_type: Option<String>,
    body: Option<String>,
}

/// The endpoint's name with the `'static` lifetime faults are keyed by, if it is one.
fn endpoint(name: &str) -> Option<&'static str> {
    ENDPOINTS.iter().find(|e| **e == name).copied()
}

fn not_an_endpoint(name: &str) -> Response {
    refuse(
        StatusCode::NOT_FOUND,
        format!(
            "{name:?} is not an endpoint; use one of {}",
            ENDPOINTS.join(", ")
        ),
    )
}

async fn set_fault(
    State(s): State<Shared>,
    Path(name): Path<String>,
    body: Option<Json<FaultSpec>>,
) -> Response {
    let Some(endpoint) = endpoint(&name) else {
        return not_an_endpoint(&name);
    };
    let fault = match body.map(|Json(spec)| spec) {
        Some(FaultSpec {
            delay_ms: Some(ms),
            status: None,
            ..
        }) => Fault::Delay(Duration::from_millis(ms)),
        Some(FaultSpec {
            delay_ms: None,
            status: Some(status),
            content_type,
            body,
        }) if StatusCode::from_u16(status).is_ok() => {
            // Fault::Respond keeps a static content type (the Rust API's tests write literals);
            // the three any test needs are enough here.
            let content_type = match content_type.as_deref() {
                None | Some("application/json") => "application/json",
                Some("text/html") => "text/html",
                Some("text/plain") => "text/plain",
                Some(other) => {
                    return refuse(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "content_type {other:?}: use application/json, text/html or text/plain"
                        ),
                    );
                }
            };
            Fault::Respond {
                status,
                content_type,
                body: body.unwrap_or_default(),
            }
        }
        _ => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "send {\"delay_ms\": 500} or {\"status\": 502, \"content_type\": \"text/html\", \"body\": \"...\"}",
            );
        }
    };
    s.set_fault(endpoint, Some(fault));
    StatusCode::NO_CONTENT.into_response()
}

async fn clear_fault(State(s): State<Shared>, Path(name): Path<String>) -> Response {
    match endpoint(&name) {
        Some(endpoint) => {
            s.set_fault(endpoint, None);
            StatusCode::NO_CONTENT.into_response()
        }
        None => not_an_endpoint(&name),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Lifetime {
    seconds: u64,
}

async fn set_jwt_lifetime(State(s): State<Shared>, body: Option<Json<Lifetime>>) -> Response {
    let Some(Json(Lifetime { seconds })) = body else {
        return refuse(StatusCode::BAD_REQUEST, "send {\"seconds\": 30}");
    };
    s.set_jwt_lifetime(Duration::from_secs(seconds));
    StatusCode::NO_CONTENT.into_response()
}

async fn expire_tokens(State(s): State<Shared>) -> Json<Value> {
    Json(json!({ "expired": s.expire_tokens() }))
}

async fn revoke_tokens(State(s): State<Shared>) -> Json<Value> {
    Json(json!({ "revoked": s.revoke_refresh_tokens() }))
}

async fn journal(State(s): State<Shared>) -> Json<Value> {
    let entries: Vec<Value> = s
        .lock()
        .journal
        .iter()
        .map(|e| {
            json!({
                "method": e.method,
                "path": e.path,
                "endpoint": e.endpoint,
                "status": e.status,
            })
        })
        .collect();
    Json(Value::Array(entries))
}

async fn calls(State(s): State<Shared>) -> Json<Value> {
    let inner = s.lock();
    let counts: serde_json::Map<String, Value> = ENDPOINTS
        .iter()
        .map(|e| {
            (
                (*e).to_owned(),
                json!(inner.calls.get(e).copied().unwrap_or(0)),
            )
        })
        .collect();
    Json(Value::Object(counts))
}

/// The public JWK set of the RS512 development key, as an operator would copy it from the LMS's
/// `JWT_PUBLIC_SIGNING_JWK_SET` (the LMS itself serves no such URL).
async fn jwks() -> Json<Value> {
    Json(crate::jwt::public_jwks())
}
