//! What operators rely on: health and readiness probes (a bare verdict in public, the details on the
//! internal address), Prometheus metrics (on the internal address, beside the pages only when
//! asked), and a graceful shutdown that lets in-flight requests finish.

use std::{collections::HashMap, time::Duration};

use crate::helpers::{Options, TestApp, spawn_app, spawn_app_with};
use openedx_standin::Fault;
use profiles::{AppState, config::Config};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::net::TcpListener;

async fn json(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn healthz_says_the_process_is_up() {
    let app = spawn_app().await;
    let (status, body) = json(app.get("/healthz").await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    assert!(
        app.session_cookie().is_none(),
        "probes do not create sessions"
    );
}

/// A free loopback port for `METRICS_BIND` (serve_until binds it itself).
fn free_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Another server for `app`'s database and LMS, as `profiles serve` runs it, with `extra` settings
/// and the internal address on: its public and internal roots.
async fn serve_with_internal_address(app: &TestApp, extra: &[(&str, &str)]) -> (String, String) {
    let internal = free_port();
    let mut vars: HashMap<String, String> = app.vars.clone();
    vars.insert("METRICS_BIND".into(), internal.to_string());
    for (k, v) in extra {
        vars.insert((*k).into(), (*v).into());
    }
    let state = AppState::new(Config::from_vars(&vars).unwrap())
        .await
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(profiles::serve_until(
        listener,
        state,
        std::future::pending(),
    ));
    // serve_until binds the internal address itself: wait until it answers, for a while at most.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while reqwest::get(format!("http://{internal}/metrics"))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the internal address {internal} never answered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (public, format!("http://{internal}"))
}

#[tokio::test]
async fn public_readyz_says_ready_and_nothing_more_without_calling_the_lms() {
    let app = spawn_app_with(Options {
        vars: vec![("LMS_INTERNAL_URL", "http://127.0.0.1:9/".into())],
        ..Options::default()
    })
    .await;
    for _ in 0..3 {
        let (status, body) = json(app.get("/readyz").await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, serde_json::json!({ "status": "ready" }));
    }
    let healthy = spawn_app().await;
    let (_, body) = json(healthy.get("/readyz").await).await;
    assert_eq!(body, serde_json::json!({ "status": "ready" }));
    assert_eq!(
        healthy.standin.calls("heartbeat"),
        0,
        "a public probe is no LMS load"
    );
}

#[tokio::test]
async fn readiness_details_are_on_the_internal_address() {
    let app = spawn_app().await;
    let (_, internal) = serve_with_internal_address(&app, &[]).await;
    let (status, body) = json(reqwest::get(format!("{internal}/readyz")).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["database"]["backend"], "sqlite");
    assert_eq!(body["database"]["ok"], true);
    assert_eq!(body["lms"]["reachable"], true);
    assert_eq!(body["lms"]["status"], 200);
}

#[tokio::test]
async fn an_unreachable_lms_is_reported_internally_under_its_heartbeat_but_not_fatal() {
    let app = spawn_app().await;
    let (public, internal) =
        serve_with_internal_address(&app, &[("LMS_INTERNAL_URL", "http://127.0.0.1:9/")]).await;
    let (status, body) = json(reqwest::get(format!("{internal}/readyz")).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["lms"]["reachable"], false);
    let error = body["lms"]["error"].as_str().unwrap();
    assert!(error.contains("/heartbeat"), "{error}");
    assert!(!error.contains("/api/user/v1/me"), "{error}");
    let (status, body) = json(reqwest::get(format!("{public}/readyz")).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, serde_json::json!({ "status": "ready" }));
}

#[tokio::test]
async fn many_readiness_checks_at_once_share_one_lms_heartbeat() {
    let app = spawn_app().await;
    let (_, internal) = serve_with_internal_address(&app, &[]).await;
    let probes: Vec<_> = (0..8)
        .map(|_| tokio::spawn(reqwest::get(format!("{internal}/readyz"))))
        .collect();
    for probe in probes {
        let (status, body) = json(probe.await.unwrap().unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["lms"]["reachable"], true);
    }
    let (_, body) = json(reqwest::get(format!("{internal}/readyz")).await.unwrap()).await;
    assert_eq!(body["lms"]["status"], 200);
    assert_eq!(app.standin.calls("heartbeat"), 1);
}

#[tokio::test]
async fn readyz_is_503_when_the_database_is_gone() {
    let app = spawn_app().await;
    let config = Config::from_vars(&app.vars).unwrap();
    let state = AppState::new(config).await.unwrap();
    state.store.close().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/readyz", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, profiles::app(state)).await });
    let (status, body) = json(reqwest::get(url).await.unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body, serde_json::json!({ "status": "not_ready" }));
}

#[tokio::test]
async fn metrics_are_not_on_the_public_address_by_default() {
    let app = spawn_app().await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let page = response.text().await.unwrap();
    assert!(!page.contains("profiles_http_requests"), "{page}");
}

#[tokio::test]
async fn client_chosen_methods_never_become_metric_labels() {
    let app = spawn_app_with(Options {
        vars: vec![("METRICS_PUBLIC", "true".into())],
        ..Options::default()
    })
    .await;
    for method in ["FOO1", "FOO2", "BARBAZ", "QWERTYUIOP"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = app
            .client
            .request(method, app.url.join("/healthz").unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
    let text = app.get("/metrics").await.text().await.unwrap();
    for method in ["FOO1", "FOO2", "BARBAZ", "QWERTYUIOP"] {
        assert!(!text.contains(method), "{method} is a label in\n{text}");
    }
    assert!(
        text.contains(
            r#"profiles_http_requests_total{route="/healthz",method="other",status="405"} 4"#
        ),
        "{text}"
    );
}

#[tokio::test]
async fn metrics_count_requests_sign_ins_refreshes_and_lms_latency() {
    let app = spawn_app_with(Options {
        vars: vec![("METRICS_PUBLIC", "true".into())],
        ..Options::default()
    })
    .await;
    app.standin.set_jwt_lifetime(Duration::from_secs(30));
    app.sign_in().await;
    app.post_with_csrf("/profile/reload").await;
    app.get("/authorize/?state=forged&code=x").await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = response.text().await.unwrap();
    for line in [
        "profiles_sign_ins_started_total 1",
        "profiles_sign_ins_completed_total 1",
        r#"profiles_sign_ins_failed_total{reason="interrupted"} 1"#,
        r#"profiles_token_refreshes_total{outcome="ok"} 1"#,
        r#"profiles_http_requests_total{route="/authorize/",method="GET",status="303"} 1"#,
        r#"profiles_http_requests_total{route="/authorize/",method="GET",status="400"} 1"#,
        r#"profiles_lms_request_duration_seconds_count{endpoint="token"} 2"#,
        r#"profiles_lms_request_duration_seconds_count{endpoint="me"} 2"#,
    ] {
        assert!(text.contains(line), "{line} missing in\n{text}");
    }
}

#[tokio::test]
async fn with_metrics_bind_metrics_leave_the_public_address() {
    let app = spawn_app().await;
    let (public, internal) = serve_with_internal_address(&app, &[]).await;
    let on_public = reqwest::get(format!("{public}/metrics")).await.unwrap();
    assert_eq!(on_public.status(), StatusCode::NOT_FOUND);
    let on_own = reqwest::get(format!("{internal}/metrics")).await.unwrap();
    assert_eq!(on_own.status(), StatusCode::OK);
    assert!(
        on_own
            .text()
            .await
            .unwrap()
            .contains("profiles_http_requests")
    );
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish_then_stops_accepting() {
    let app = spawn_app().await;
    let state = AppState::new(Config::from_vars(&app.vars).unwrap())
        .await
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(profiles::serve_until(listener, state, async {
        let _ = stopped.await;
    }));

    // A sign-in whose code exchange is slow is in flight when the shutdown starts.
    app.standin
        .set_fault("token", Some(Fault::Delay(Duration::from_millis(700))));
    let callback = app.approved_callback().await;
    let mut on_server = callback.clone();
    on_server.set_port(Some(addr.port())).unwrap();
    // Signed in on the test app, but the callback goes to the server being stopped: both share
    // the database, so the pending sign-in is found there.
    let in_flight = tokio::spawn(app.client.get(on_server).send());
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(()).unwrap();

    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "finished, not cut off"
    );
    server.await.unwrap().unwrap();
    assert!(
        reqwest::get(format!("http://{addr}/healthz"))
            .await
            .is_err(),
        "no longer accepting"
    );
}
