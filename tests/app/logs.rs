//! The log of a whole sign-in, refresh and sign-out, captured at the most verbose level, holds
//! none of the secrets that went by: client secret, codes, PKCE verifiers, states, tokens and
//! session ids. (Its own test binary: the log subscriber is process-wide.)

use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::helpers::{CLIENT_SECRET, Options, query_param, spawn_app, spawn_app_with};
use openedx_standin::Fault;
use reqwest::StatusCode;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_reaches_the_log_of_a_whole_session() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let app = spawn_app().await;
    let mut session_ids = vec![];
    app.standin.set_jwt_lifetime(Duration::from_secs(30));
    app.get("/").await;
    session_ids.extend(app.session_cookie());
    let authorize = app.start_sign_in().await;
    let state = query_param(&authorize, "state");
    let callback = app.approve_at_lms(authorize).await;
    let signed_in = app.client.get(callback).send().await.unwrap();
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    session_ids.extend(app.session_cookie());
    app.standin.set_jwt_lifetime(Duration::from_secs(3600));
    let reload = app.post_with_csrf("/profile/reload").await;
    assert_eq!(reload.status(), StatusCode::SEE_OTHER);
    let csrf = app.csrf().await;
    let logout = app.post("/logout", &[("csrf", csrf.as_str())]).await;
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    // Failures too: error paths log more, and must say what to check.
    let refused = app.get("/authorize/?state=forged&code=forged-code").await;
    let request_id = refused.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    app.standin.set_fault(
        "token",
        Some(Fault::Respond {
            status: 500,
            content_type: "text/html",
            body: "<h1>Server Error (500)</h1>".into(),
        }),
    );
    assert_eq!(app.sign_in().await.status(), StatusCode::BAD_GATEWAY);
    app.standin.set_fault("token", None);
    let misconfigured = spawn_app_with(Options {
        vars: vec![("LMS_CLIENT_SECRET", "wrong-secret-value".into())],
        ..Options::default()
    })
    .await;
    assert_eq!(
        misconfigured.sign_in().await.status(),
        StatusCode::BAD_GATEWAY
    );

    let issued = app.standin.issued();
    let mut secrets: Vec<String> = vec![
        CLIENT_SECRET.to_owned(),
        "wrong-secret-value".to_owned(),
        csrf,
        state,
    ];
    secrets.extend(session_ids);
    secrets.extend(issued.codes);
    secrets.extend(issued.access_tokens);
    secrets.extend(issued.refresh_tokens);
    for request in app.standin.token_requests() {
        secrets.extend(request.field("code_verifier").map(str::to_owned));
    }
    assert!(secrets.len() >= 9, "{} secrets", secrets.len());

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("signed in"), "the capture works");
    assert!(log.contains("refreshed the access token"));
    assert!(log.contains("signed out"));
    assert!(
        log.contains(&format!("id={request_id}")),
        "the error page's request id is on its log line"
    );
    assert!(
        log.contains("HTTP 500") && log.contains("Server Error (500)"),
        "a 5xx is logged with its status and an excerpt"
    );
    assert!(
        log.contains("check LMS_CLIENT_ID, LMS_CLIENT_SECRET"),
        "invalid_client names the settings to check"
    );
    for secret in &secrets {
        // Also the JWT's signature alone, and a prefix of opaque values.
        let probe = secret.rsplit('.').next().unwrap();
        assert!(
            !log.contains(probe),
            "a secret ({}...) is in the log",
            &probe[..6.min(probe.len())]
        );
    }
}
