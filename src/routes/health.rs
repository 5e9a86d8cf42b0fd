//! Probes for orchestrators and load balancers, and the Prometheus scrape. No authentication, no
//! session, and logged at debug only.
//!
//! The public address answers `/healthz` and a `/readyz` that says ready or not and nothing more:
//! the LMS's internal address and raw connection errors are not for anyone who asks. The details
//! (database, LMS heartbeat) and `/metrics` are on the internal address, `METRICS_BIND`.

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;

use crate::state::AppState;

/// `GET /healthz`: the process is up and serving. Checks nothing else, so a database outage does
/// not get healthy replicas restarted.
pub async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

/// `GET /readyz` on the public address: 200 `{"status":"ready"}` when the database answers and
/// every migration is applied (as the database watcher last found, at most half a second ago), else
/// 503 `{"status":"not_ready"}`. The LMS is not asked: it does
/// not decide readiness (below), and a public probe must not turn into calls to the LMS.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let ready = state.store.readiness().await.is_ok();
    (status_of(ready), Json(json!({ "status": word(ready) }))).into_response()
}

/// `GET /readyz` on the internal address: the same verdict, with the database's and the LMS's
/// state. The LMS is reported but does not decide: without it nobody can sign in, but pages and
/// sign-out still work, and taking every replica out of rotation would not bring it back. Its
/// heartbeat is cached for a few seconds, so probes at any rate cost the LMS little.
pub async fn readyz_details(State(state): State<AppState>) -> Response {
    let database = state.store.readiness().await;
    let lms = state.lms.heartbeat().await;
    let ready = database.is_ok();
    let body = json!({
        "status": word(ready),
        "database": {
            "backend": state.store.backend(),
            "ok": database.is_ok(),
            "error": database.err(),
        },
        "lms": {
            "url": state.config.lms.internal_url.as_str(),
            "reachable": lms.is_ok(),
            "status": lms.as_ref().ok(),
            "error": lms.err(),
        },
    });
    (status_of(ready), Json(body)).into_response()
}

fn word(ready: bool) -> &'static str {
    if ready { "ready" } else { "not_ready" }
}

fn status_of(ready: bool) -> StatusCode {
    if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
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

/// What the internal address (`METRICS_BIND`) serves: `/metrics` and the detailed `/readyz`.
pub fn internal_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/readyz", get(readyz_details))
        .with_state(state)
}
