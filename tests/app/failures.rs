//! Every way a sign-in can fail or be attacked, each ending on a specific page with the right
//! status, a request id and a way to start again; never a 500 or a hang.

use std::time::{Duration, Instant};

use crate::{
    helpers::{
        Options, TestApp, location, query_param, spawn_app, spawn_app_approved_at_lms,
        spawn_app_with,
    },
    proxy::Mode,
};
use openedx_standin::{Fault, LmsUser, Settings};
use reqwest::{StatusCode, header};
use url::Url;

async fn with_timeout_of_one_second() -> TestApp {
    spawn_app_with(Options {
        vars: vec![("LMS_TIMEOUT_SECS", "1".into())],
        ..Options::default()
    })
    .await
}

/// Runs the sign-in up to the callback and returns the callback's response and its page.
async fn callback(app: &TestApp) -> (StatusCode, String) {
    let response = app.sign_in().await;
    let status = response.status();
    (status, response.text().await.unwrap())
}

fn respond(status: u16, content_type: &'static str, body: &str) -> Option<Fault> {
    Some(Fault::Respond {
        status,
        content_type,
        body: body.into(),
    })
}

/// An error page as it must be: a title, a way to start again, and the request id of its log line.
fn assert_error_page(page: &str, title: &str) {
    assert!(page.contains(title), "expected {title:?} in {page}");
    assert!(page.contains("href=\"/\""), "a way to start again: {page}");
    assert!(page.contains("request id <code>"), "a request id: {page}");
}

#[tokio::test]
async fn a_slow_token_endpoint_gives_a_504_page_within_the_timeout() {
    let app = with_timeout_of_one_second().await;
    app.standin
        .set_fault("token", Some(Fault::Delay(Duration::from_secs(10))));
    let started = Instant::now();
    let (status, page) = callback(&app).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() < Duration::from_secs(5), "no hang");
    assert_error_page(&page, "The LMS is not answering");
    assert!(page.contains("127.0.0.1"), "names the LMS");
}

#[tokio::test]
async fn a_slow_user_api_gives_a_504_page() {
    let app = with_timeout_of_one_second().await;
    app.standin
        .set_fault("me", Some(Fault::Delay(Duration::from_secs(10))));
    let (status, page) = callback(&app).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_error_page(&page, "The LMS is not answering");
}

#[tokio::test]
async fn garbage_from_the_lms_gives_a_502_page() {
    let cases: [(&'static str, u16, &'static str, &str); 6] = [
        ("token", 500, "text/html", "<h1>Server Error (500)</h1>"),
        ("token", 502, "text/html", "<html>Bad Gateway</html>"),
        ("token", 200, "text/html", "<html>Not JSON</html>"),
        ("token", 200, "application/json", r#"{"token_type": "JWT"}"#),
        ("me", 200, "application/json", "{}"),
        ("accounts", 503, "application/json", r#"{"detail": "down"}"#),
    ];
    for (endpoint, status, content_type, body) in cases {
        let app = spawn_app().await;
        app.standin
            .set_fault(endpoint, respond(status, content_type, body));
        let (got, page) = callback(&app).await;
        assert_eq!(got, StatusCode::BAD_GATEWAY, "{endpoint} {status} {body}");
        assert_error_page(&page, "The LMS gave an answer this app cannot use");
        assert!(!page.contains(body), "the LMS's body stays in the log");
    }
}

#[tokio::test]
async fn wrong_client_credentials_say_the_app_is_misconfigured() {
    let app = spawn_app_with(Options {
        vars: vec![("LMS_CLIENT_SECRET", "not-the-registered-secret".into())],
        ..Options::default()
    })
    .await;
    let (status, page) = callback(&app).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_error_page(&page, "This app is not set up correctly");
    assert!(!page.contains("not-the-registered-secret"));
}

#[tokio::test]
async fn another_token_error_is_named_on_the_page() {
    let app = spawn_app().await;
    app.standin.set_fault(
        "token",
        respond(
            400,
            "application/json",
            r#"{"error": "unauthorized_client"}"#,
        ),
    );
    let (status, page) = callback(&app).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_error_page(&page, "unauthorized_client");
}

#[tokio::test]
async fn a_code_used_after_its_60_seconds_says_start_again() {
    let app = spawn_app_with(Options {
        settings: Settings {
            code_lifetime: Duration::from_millis(100),
            ..Settings::default()
        },
        ..Options::default()
    })
    .await;
    let callback = app.approved_callback().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let response = app.client.get(callback).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let page = response.text().await.unwrap();
    assert_error_page(&page, "took too long or was already used");
}

/// A callback carrying the `state` of a sign-in this browser really started.
async fn callback_with(app: &TestApp, params: &[(&str, &str)]) -> reqwest::Response {
    let state = query_param(&app.start_sign_in().await, "state");
    let mut url = app.url.join("/authorize/").unwrap();
    url.query_pairs_mut()
        .extend_pairs(params)
        .append_pair("state", &state);
    app.client.get(url).send().await.unwrap()
}

#[tokio::test]
async fn authorize_errors_get_their_own_4xx_pages() {
    let app = spawn_app().await;
    let cases = [
        ("access_denied", StatusCode::FORBIDDEN, "You declined"),
        (
            "invalid_scope",
            StatusCode::BAD_REQUEST,
            "refused the requested permissions",
        ),
        (
            "invalid_request",
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "temporarily_unavailable",
            StatusCode::BAD_REQUEST,
            "temporarily_unavailable",
        ),
        (
            "<b>made-up</b>",
            StatusCode::BAD_REQUEST,
            "&#60;b&#62;made-up&#60;/b&#62;",
        ),
    ];
    for (error, status, says) in cases {
        let response = callback_with(&app, &[("error", error)]).await;
        assert_eq!(response.status(), status, "{error}");
        assert_error_page(&response.text().await.unwrap(), says);
    }
}

#[tokio::test]
async fn a_callback_with_both_or_neither_code_and_error_is_a_400() {
    let app = spawn_app().await;
    for params in [vec![("code", "abc"), ("error", "access_denied")], vec![]] {
        let response = callback_with(&app, &params).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{params:?}");
        assert_error_page(&response.text().await.unwrap(), "not a sign-in link");
    }
    assert_eq!(app.standin.calls("token"), 0);
}

#[tokio::test]
async fn oversized_malformed_and_non_utf8_callbacks_are_4xx_not_500() {
    let app = spawn_app().await;
    app.start_sign_in().await;
    let long = "a".repeat(10_000);
    for query in [
        format!("code=x&state={long}"),
        "state=%FF%FE&code=x".to_owned(),
        "state=%&code=%%".to_owned(),
        "state&code".to_owned(),
        "state=a&state=b&code=x".to_owned(),
    ] {
        let url = format!("{}authorize/?{query}", app.url);
        let response = app.client.get(url).send().await.unwrap();
        assert!(
            response.status().is_client_error(),
            "{query:.40}: {}",
            response.status()
        );
        assert_error_page(&response.text().await.unwrap(), "Start again");
    }
    // Raw bytes that are not UTF-8 at all, past what a client library would encode.
    let mut stream = tokio::net::TcpStream::connect(app.url.socket_addrs(|| None).unwrap()[0])
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /authorize/?state=\xff\xfe&code=x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let status_line = String::from_utf8_lossy(&answer[..12]).into_owned();
    assert!(status_line.starts_with("HTTP/1.1 4"), "{status_line}");
    assert_eq!(app.standin.calls("token"), 0);
}

#[tokio::test]
async fn every_error_page_shows_the_request_id_of_its_response() {
    let app = spawn_app().await;
    let response = app.get("/authorize/?state=forged&code=x").await;
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let page = response.text().await.unwrap();
    assert!(page.contains(&format!("<code>{id}</code>")), "{page}");
}

#[tokio::test]
async fn a_code_from_another_browser_fails_pkce_and_signs_nobody_in() {
    let app = spawn_app().await;
    // The victim's browser gets a code...
    let victim_callback = app.approved_callback().await;
    let stolen_code = query_param(&victim_callback, "code");
    // ...and the attacker injects it into their own sign-in, with their own valid state.
    let attacker = spawn_attacker(&app).await;
    let authorize = {
        let response = attacker.get(app.url.clone()).send().await.unwrap();
        location(&response)
    };
    let state = query_param(&authorize, "state");
    let mut injected = app.url.join("/authorize/").unwrap();
    injected
        .query_pairs_mut()
        .append_pair("code", &stolen_code)
        .append_pair("state", &state);
    let response = attacker.get(injected).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let token = app.standin.token_requests().pop().unwrap();
    assert!(token.field("code_verifier").is_some());
    let profile = attacker
        .get(app.url.join("/profile/").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(profile.status(), StatusCode::SEE_OTHER, "nobody signed in");
}

async fn spawn_attacker(_app: &TestApp) -> reqwest::Client {
    crate::helpers::browser(&std::sync::Arc::new(reqwest::cookie::Jar::default()))
}

#[tokio::test]
async fn a_replayed_callback_url_signs_nobody_in() {
    let (app, callback) = spawn_app_approved_at_lms().await;
    assert_eq!(
        app.client
            .get(callback.clone())
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::SEE_OTHER
    );
    // The same URL in another browser (e.g. from history or a log): no session, no sign-in.
    let other = spawn_attacker(&app).await;
    let replay = other.get(callback).send().await.unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.standin.calls("token"), 1);
}

#[tokio::test]
async fn markup_in_profile_fields_is_escaped() {
    let app = spawn_app().await;
    app.standin.add_user(LmsUser {
        name: "<script>alert(1)</script>".into(),
        bio: Some("<img src=x onerror=alert(2)>".into()),
        ..LmsUser::demo_learner()
    });
    app.sign_in().await;
    let page = app.get("/profile/").await.text().await.unwrap();
    assert!(!page.contains("<script>alert(1)"), "{page}");
    assert!(!page.contains("<img src=x"), "{page}");
    assert!(page.contains("&#60;script&#62;alert(1)&#60;"), "{page}");
    let csp = app.get("/profile/").await.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
}

#[tokio::test]
async fn the_callback_and_the_profile_leak_nothing_through_referrer_or_cache() {
    let app = spawn_app().await;
    let callback = app.sign_in().await;
    let profile = app.get("/profile/").await;
    for response in [&callback, &profile] {
        let headers = response.headers();
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
    }
}

#[tokio::test]
async fn next_refuses_every_form_of_another_origin() {
    for next in [
        "//evil.example/",
        "/\\evil.example",
        "https://evil.example/",
        "/%2F%2Fevil.example",
        "%2F%2Fevil.example",
        "/%09/evil.example",
        "javascript:alert(1)",
    ] {
        let app = spawn_app().await;
        let done = app.sign_in_with_next(next).await;
        let landed: Url = location(&done);
        assert_eq!(landed.path(), "/profile/", "{next}");
        assert_eq!(landed.origin(), app.url.origin(), "{next}");
    }
}

#[tokio::test]
async fn dot_segments_and_bidi_controls_in_next_are_refused() {
    for next in [
        "/.//evil.example",
        "/./profile/",
        "/profile/\u{202E}txt.exe",
        "/profile/%E2%80%AEtxt.exe",
        "/profile/\u{2066}x",
    ] {
        let app = spawn_app().await;
        let done = app.sign_in_with_next(next).await;
        assert_eq!(done.headers()[header::LOCATION], "/profile/", "{next:?}");
    }
}

#[tokio::test]
async fn a_post_that_is_not_a_form_gets_our_415_page() {
    let app = spawn_app().await;
    for path in ["/logout", "/profile/reload"] {
        let response = app
            .client
            .post(app.url.join(path).unwrap())
            .header(header::CONTENT_TYPE, "text/plain")
            .body("csrf=x")
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{path}"
        );
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let page = response.text().await.unwrap();
        assert_error_page(&page, "Use the button on the page");
        assert!(page.contains(&format!("<code>{id}</code>")), "{page}");
        assert!(page.contains("only takes a form"), "{page}");
        assert!(!page.contains("Content-Type"), "not axum's text: {page}");
    }
}

#[tokio::test]
async fn a_wrong_method_gets_a_405_page_true_for_its_route() {
    let app = spawn_app().await;
    for (method, path) in [("POST", "/healthz"), ("DELETE", "/"), ("PUT", "/profile/")] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = app
            .client
            .request(method.clone(), app.url.join(path).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert!(
            response.headers()[header::ALLOW]
                .to_str()
                .unwrap()
                .contains("GET")
        );
        let page = response.text().await.unwrap();
        assert_error_page(&page, "Open this address as a page");
        assert!(!page.contains("form"), "{method} {path}: {page}");
        assert!(page.contains("GET requests only"), "{page}");
    }
    let response = app.get("/logout").await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()[header::ALLOW], "POST");
    let page = response.text().await.unwrap();
    assert_error_page(&page, "Use the button on the page");
    assert!(page.contains("only takes a form"), "{page}");
}

#[tokio::test]
async fn hsts_is_sent_when_the_public_url_is_https_only() {
    let https = spawn_app_with(Options {
        vars: vec![("PUBLIC_URL", "https://profiles.example.org/".into())],
        ..Options::default()
    })
    .await;
    for path in ["/healthz", "/", "/no-such-page"] {
        let response = https.get(path).await;
        assert_eq!(
            response.headers()[header::STRICT_TRANSPORT_SECURITY],
            "max-age=31536000",
            "{path}"
        );
    }
    let http = spawn_app().await;
    let response = http.get("/healthz").await;
    assert!(
        !response
            .headers()
            .contains_key(header::STRICT_TRANSPORT_SECURITY)
    );
}

async fn behind_proxy() -> TestApp {
    spawn_app_with(Options {
        behind_proxy: true,
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn a_body_cut_short_says_the_connection_broke_off_not_that_the_lms_is_unreachable() {
    for path in ["/oauth2/access_token", "/api/user/v1/me"] {
        let app = behind_proxy().await;
        let proxy = app.proxy.as_ref().unwrap();
        proxy.set_mode(Mode::CutBody(path));
        let (status, page) = callback(&app).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{path}");
        assert_error_page(&page, "The connection to the LMS broke off");
        assert!(!page.contains("LMS_INTERNAL_URL"), "{path}: {page}");
        assert!(!page.contains("could not connect"), "{path}: {page}");
        assert_eq!(
            proxy.count(path),
            1,
            "{path}: a cut answer is not asked again"
        );
    }
}

#[tokio::test]
async fn an_lms_that_refuses_connections_is_still_called_unreachable() {
    let app = spawn_app_with(Options {
        vars: vec![("LMS_INTERNAL_URL", "http://127.0.0.1:9/".into())],
        ..Options::default()
    })
    .await;
    let (status, page) = callback(&app).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_error_page(&page, "The LMS cannot be reached");
    assert!(page.contains("LMS_INTERNAL_URL"), "{page}");
}

#[tokio::test]
async fn a_get_on_a_connection_the_lms_closes_unanswered_is_sent_again() {
    let app = behind_proxy().await;
    let proxy = app.proxy.as_ref().unwrap();
    proxy.set_mode(Mode::CloseOnReuse);
    let response = app.sign_in().await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "signed in");
    assert_eq!(location(&response).path(), "/profile/");
    let me: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.path == "/api/user/v1/me")
        .collect();
    assert_eq!(me.len(), 2, "{me:?}");
    assert!(me[0].reused && !me[1].reused, "{me:?}");
}

#[tokio::test]
async fn the_token_post_is_never_sent_twice() {
    let app = behind_proxy().await;
    let proxy = app.proxy.as_ref().unwrap();
    proxy.set_mode(Mode::CloseOnReuse);
    for sign_in in 1..=3 {
        let status = app.sign_in().await.status();
        let tokens: Vec<_> = proxy
            .seen()
            .into_iter()
            .filter(|s| s.path == "/oauth2/access_token")
            .collect();
        assert_eq!(tokens.len(), sign_in, "one POST per sign-in: {tokens:?}");
        let last = tokens.last().unwrap();
        // Closed unanswered on a reused connection: the code may be spent, so no second try.
        if last.reused {
            assert_eq!(status, StatusCode::BAD_GATEWAY);
        } else {
            assert_eq!(status, StatusCode::SEE_OTHER);
            // Signed in: sign out, so the next round starts a sign-in again.
            app.post_with_csrf("/logout").await;
        }
    }
}

#[tokio::test]
async fn callbacks_beyond_the_exchanges_in_flight_are_turned_away_with_a_503() {
    let app = spawn_app().await;
    let authorize = app.start_sign_in().await;
    let state = query_param(&authorize, "state");
    let cookie = reqwest::cookie::CookieStore::cookies(&*app.jar, &app.url).unwrap();
    app.standin
        .set_fault("token", Some(Fault::Delay(Duration::from_secs(4))));
    let mut callbacks = tokio::task::JoinSet::new();
    for i in 0..12 {
        // Shaped like the LMS's codes, so each one would be exchanged.
        let code = format!("{i:0>30}");
        let url = app
            .url
            .join(&format!("/authorize/?code={code}&state={state}"))
            .unwrap();
        let request = crate::helpers::anonymous()
            .get(url)
            .header(header::COOKIE, cookie.clone());
        callbacks.spawn(async move { request.send().await.unwrap() });
    }
    let mut busy = 0;
    while let Some(response) = callbacks.join_next().await {
        let response = response.unwrap();
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(response.headers()[header::RETRY_AFTER], "2");
            assert!(
                response
                    .text()
                    .await
                    .unwrap()
                    .contains("Too many sign-ins at once")
            );
            busy += 1;
        }
    }
    assert_eq!(busy, 12 - profiles::state::MAX_EXCHANGES);
    assert_eq!(app.standin.calls("token"), profiles::state::MAX_EXCHANGES);
}
