//! The router: every LMS route the stand-in serves, the layer that counts requests and plays
//! faults in front of them, and the admin API nested under `/_standin` behind it.

use axum::{Router, http::StatusCode, routing::get};

use crate::{
    admin, api, authorize, faults::count_and_play_faults, page::page, state::Shared, token,
};

pub(crate) fn router(shared: Shared) -> Router {
    Router::new()
        .route("/", get(authorize::home))
        .route("/login", get(authorize::login_form).post(authorize::login))
        .route(
            "/oauth2/authorize",
            get(authorize::authorize).post(authorize::consent),
        )
        .route(
            "/oauth2/authorize/",
            get(authorize::authorize).post(authorize::consent),
        )
        .route(
            "/oauth2/access_token",
            axum::routing::post(token::access_token),
        )
        .route(
            "/oauth2/access_token/",
            axum::routing::post(token::access_token),
        )
        .route(
            "/oauth2/revoke_token",
            axum::routing::post(token::revoke_token),
        )
        .route(
            "/oauth2/revoke_token/",
            axum::routing::post(token::revoke_token),
        )
        .route("/logout", get(authorize::logout).post(authorize::logout))
        // The LMS's own health check (edx-django-utils' heartbeat view).
        .route(
            "/heartbeat",
            get(|| async {
                axum::Json(serde_json::json!({
                    "sql": { "status": true, "message": "OK" },
                    "modulestore": { "status": true, "message": "OK" },
                }))
            }),
        )
        .route("/api/enrollment/v1/enrollment", get(api::enrollments))
        .route("/api/user/v1/me", get(api::me))
        .route("/api/user/v1/accounts/{username}", get(api::account))
        .route(
            "/static/images/profiles/{file}",
            get(api::default_profile_image),
        )
        .fallback(|| async {
            page(
                StatusCode::NOT_FOUND,
                "Page not found",
                "No such page on this LMS.",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            count_and_play_faults,
        ))
        // After the layer: admin requests are not the LMS's, so neither counted nor journaled.
        .nest("/_standin", admin::router())
        .with_state(shared)
}
