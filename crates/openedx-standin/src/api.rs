//! `/api/user/v1/me` and `/api/user/v1/accounts/{username}`, with the LMS's two authentication
//! schemes (`openedx_client::wire`, the user APIs).

use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::{
    AccountPrivacy, LmsUser, RecordedApiRequest,
    jwt::{hmac, rs512_public_key},
    state::{Shared, unix_now},
};

/// `JWT_AUTH['JWT_LEEWAY']`.
const LEEWAY_SECS: i64 = 1;

pub async fn me(State(s): State<Shared>, headers: HeaderMap) -> Response {
    match authenticate(&s, &headers, "/api/user/v1/me") {
        Ok(user) => Json(json!({ "username": user.username })).into_response(),
        Err(unauthorized) => unauthorized.into_response(),
    }
}

pub async fn account(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(username): Path<String>,
) -> Response {
    let caller = match authenticate(&s, &headers, &format!("/api/user/v1/accounts/{username}")) {
        Ok(user) => user,
        Err(unauthorized) => return unauthorized.into_response(),
    };
    let Some(user) = s.lock().users.get(&username).cloned() else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "detail": "Not found." })),
        )
            .into_response();
    };
    let full = full_account(&s, &user);
    if caller.username == user.username || caller.is_staff {
        return Json(full).into_response();
    }
    // Someone else's account: the fields their privacy setting shares
    // (`ACCOUNT_VISIBILITY_CONFIGURATION`'s `public_fields`, or `bulk_shareable_fields` for
    // `all_users`, the default visibility).
    let shared: &[&str] = match user.account_privacy.unwrap_or(AccountPrivacy::AllUsers) {
        AccountPrivacy::Private => &PUBLIC_FIELDS,
        AccountPrivacy::AllUsers => &BULK_SHAREABLE_FIELDS,
    };
    let visible: serde_json::Map<String, Value> = shared
        .iter()
        .map(|field| ((*field).to_owned(), full[*field].clone()))
        .collect();
    Json(Value::Object(visible)).into_response()
}

/// `ACCOUNT_VISIBILITY_CONFIGURATION['public_fields']`.
const PUBLIC_FIELDS: [&str; 3] = ["account_privacy", "profile_image", "username"];

/// `ACCOUNT_VISIBILITY_CONFIGURATION['bulk_shareable_fields']`: the public fields and the profile
/// a learner shares with everyone.
const BULK_SHAREABLE_FIELDS: [&str; 11] = [
    "account_privacy",
    "profile_image",
    "username",
    "bio",
    "course_certificates",
    "country",
    "date_joined",
    "language_proficiencies",
    "level_of_education",
    "social_links",
    "time_zone",
];

/// `GET /static/images/profiles/default_{size}.png`: the placeholder image the account API points
/// at for learners without a photo, as the LMS serves it (one transparent pixel here).
pub async fn default_profile_image(Path(file): Path<String>) -> Response {
    const PIXEL: &[u8] = &[
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44,
        0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f,
        0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0a, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00,
        0x01, 0x00, 0x00, 0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49,
        0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
    ];
    let sizes = [
        "default_500.png",
        "default_120.png",
        "default_50.png",
        "default_30.png",
    ];
    if sizes.contains(&file.as_str()) {
        ([(header::CONTENT_TYPE, "image/png")], PIXEL).into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

/// `GET /api/enrollment/v1/enrollment`: the caller's enrollments, in the enrollment API's shape.
pub async fn enrollments(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let user = match authenticate(&s, &headers, "/api/enrollment/v1/enrollment") {
        Ok(user) => user,
        Err(unauthorized) => return unauthorized.into_response(),
    };
    let list: Vec<Value> = user
        .enrollments
        .iter()
        .map(|course_id| {
            json!({
                "created": "2024-01-16T09:30:00Z",
                "mode": "audit",
                "is_active": true,
                "course_details": {
                    "course_id": course_id,
                    "course_name": "Open edX Demo Course",
                    "enrollment_start": null,
                    "enrollment_end": null,
                    "course_start": "2024-01-01T00:00:00Z",
                    "course_end": null,
                    "invite_only": false,
                    "course_modes": [{ "slug": "audit", "name": "Audit", "min_price": 0 }],
                },
                "user": user.username,
            })
        })
        .collect();
    Json(list).into_response()
}

/// Who the `Authorization` header belongs to, or the 401 DRF would send.
fn authenticate(s: &Shared, headers: &HeaderMap, path: &str) -> Result<LmsUser, Unauthorized> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    s.lock().api_requests.push(RecordedApiRequest {
        path: path.to_owned(),
        authorization: authorization.map(str::to_owned),
    });
    let (scheme, credentials) = authorization
        .and_then(|a| a.split_once(' '))
        .unwrap_or(("", ""));
    let username = if scheme.eq_ignore_ascii_case("jwt") {
        verify_jwt(s, credentials.trim())
            .map_err(|detail| unauthorized(json!(detail), "JWT realm=\"api\""))?
    } else if scheme.eq_ignore_ascii_case("bearer") {
        opaque_token_owner(s, credentials.trim())?
    } else {
        return Err(unauthorized(
            json!("Authentication credentials were not provided."),
            "JWT realm=\"api\"",
        ));
    };
    s.lock()
        .users
        .get(&username)
        .cloned()
        .ok_or_else(|| unauthorized(json!("User not found."), "JWT realm=\"api\""))
}

/// What edx-drf-extensions checks: signature (RS512 with the public JWK set, or HS256 with the
/// LMS secret), `aud`, `iss`, `exp`, and a supported `version`.
fn verify_jwt(s: &Shared, jwt: &str) -> Result<String, &'static str> {
    let invalid = "Error decoding token.";
    let (signing_input, signature) = jwt.rsplit_once('.').ok_or(invalid)?;
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| invalid)?;
    let (header, payload) = signing_input.split_once('.').ok_or(invalid)?;
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).map_err(|_| invalid)?)
            .map_err(|_| invalid)?;
    let valid = match header["alg"].as_str() {
        Some("HS256") => {
            let expected = hmac(&s.settings.jwt_secret, signing_input);
            bool::from(expected.ct_eq(&signature))
        }
        Some("RS512") => {
            use rsa::signature::Verifier;
            let key = rsa::pkcs1v15::VerifyingKey::<sha2::Sha512>::new(rs512_public_key());
            rsa::pkcs1v15::Signature::try_from(signature.as_slice())
                .is_ok_and(|sig| key.verify(signing_input.as_bytes(), &sig).is_ok())
        }
        _ => false,
    };
    if !valid {
        return Err(invalid);
    }
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).map_err(|_| invalid)?)
            .map_err(|_| invalid)?;
    if claims["aud"] != json!(s.settings.jwt_audience) || claims["iss"] != json!(s.issuer()) {
        return Err(invalid);
    }
    let exp = claims["exp"].as_i64().ok_or(invalid)?;
    if exp + LEEWAY_SECS < unix_now() {
        return Err("Signature has expired.");
    }
    if !claims["version"]
        .as_str()
        .is_some_and(|v| v.starts_with("1."))
    {
        return Err(invalid);
    }
    claims["preferred_username"]
        .as_str()
        .map(str::to_owned)
        .ok_or(invalid)
}

/// The LMS's `BearerAuthentication`: a database lookup, so a JWT sent as `Bearer` is simply not
/// found.
fn opaque_token_owner(s: &Shared, token: &str) -> Result<String, Unauthorized> {
    let inner = s.lock();
    let www = "Bearer realm=\"api\"";
    match inner.opaque_tokens.get(token) {
        Some(t) if t.expires_at > unix_now() => Ok(t.username.clone()),
        Some(_) => Err(unauthorized(
            json!({ "error_code": "token_expired", "developer_message": "The provided access token has expired and is no longer valid." }),
            www,
        )),
        None => Err(unauthorized(
            json!({ "error_code": "token_nonexistent", "developer_message": "The provided access token does not match any valid tokens." }),
            www,
        )),
    }
}

/// DRF's 401: `{"detail": ...}` and the challenge of the scheme that refused.
struct Unauthorized {
    detail: Value,
    www_authenticate: &'static str,
}

fn unauthorized(detail: Value, www_authenticate: &'static str) -> Unauthorized {
    Unauthorized {
        detail,
        www_authenticate,
    }
}

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        let mut response = (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "detail": self.detail })),
        )
            .into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(self.www_authenticate),
        );
        response
    }
}

/// The owner's view: the `admin_fields` of `ACCOUNT_VISIBILITY_CONFIGURATION`, with `null` for
/// what the learner never filled in.
fn full_account(s: &Shared, user: &LmsUser) -> Value {
    let root = s.base.as_str().trim_end_matches('/');
    let image = |size: u32| format!("{root}/static/images/profiles/default_{size}.png");
    json!({
        "account_privacy": user.account_privacy.unwrap_or(AccountPrivacy::AllUsers).as_str(),
        "profile_image": {
            "has_image": false,
            "image_url_full": image(500),
            "image_url_large": image(120),
            "image_url_medium": image(50),
            "image_url_small": image(30),
        },
        "username": user.username,
        "bio": user.bio,
        "course_certificates": null,
        "country": user.country,
        "date_joined": user.date_joined,
        "language_proficiencies": user.languages.iter().map(|code| json!({ "code": code })).collect::<Vec<_>>(),
        "level_of_education": null,
        "social_links": [],
        "time_zone": null,
        "name": user.name,
        "email": user.email,
        "id": user.id,
        "verified_name": null,
        "extended_profile": [],
        "gender": null,
        "state": null,
        "goals": null,
        "is_active": true,
        "last_login": null,
        "mailing_address": null,
        "requires_parental_consent": false,
        "secondary_email": null,
        "secondary_email_enabled": null,
        "year_of_birth": null,
        "phone_number": null,
        "pending_name_change": null,
    })
}
