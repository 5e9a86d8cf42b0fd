//! Probes for orchestrators and load balancers, and the Prometheus scrape. No authentication, no
//! session, and logged at debug only.

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::AppState;

/// `GET /healthz`: the process is up and serving. Checks nothing else, so a database outage does
/// not get healthy replicas restarted.
pub async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

/// `GET /readyz`: ready when the database answers and every migration is applied (503 otherwise).
/// The LMS is reported but does not decide: without it nobody can sign in, but pages and sign-out
/// still work, and taking every replica out of rotation would not bring it back.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let database = state.store.check().await;
    let lms = state.lms.probe().await;
    let ready = database.is_ok();
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "database": {
            "backend": state.store.backend(),
            "ok": database.is_ok(),
            "error": database.err(),
        },
        "lms": {
            "url": state.config.lms_internal_url.as_str(),
            "reachable": lms.is_ok(),
            "status": lms.as_ref().ok(),
            "error": lms.err(),
        },
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// `GET /metrics`: Prometheus text exposition (OpenMetrics).
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
