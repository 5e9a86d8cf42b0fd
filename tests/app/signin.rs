//! The sign-in flow end to end: the real router over HTTP against the LMS stand-in.

use std::collections::HashMap;

use crate::helpers::{
    CLIENT_ID, CLIENT_SECRET, Options, anonymous, assert_refused_before_the_lms, location,
    query_param, spawn_app, spawn_app_approved_at_lms, spawn_app_with,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use reqwest::{StatusCode, header};
use sha2::{Digest, Sha256};

fn query(url: &url::Url) -> HashMap<String, String> {
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[tokio::test]
async fn a_cookie_keeping_browser_that_follows_redirects_ends_on_the_learners_profile() {
    let app = spawn_app().await;
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();

    let login_page = browser.get(app.url.clone()).send().await.unwrap();
    assert_eq!(login_page.status(), StatusCode::OK);
    assert_eq!(login_page.url().path(), "/login");
    let next = query(login_page.url())["next"].clone();

    let form = [
        ("username", "learner"),
        ("password", "learner-password"),
        ("next", &next),
    ];
    let consent = browser
        .post(app.standin.url().join("/login").unwrap())
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(consent.url().path(), "/oauth2/authorize/");
    let consent_url = consent.url().clone();
    assert!(
        consent
            .text()
            .await
            .unwrap()
            .contains("Know your user identifier")
    );

    let profile = browser
        .post(consent_url)
        .form(&[("allow", "Authorize")])
        .send()
        .await
        .unwrap();
    assert_eq!(profile.status(), StatusCode::OK);
    assert_eq!(
        profile.url().as_str(),
        app.url.join("/profile/").unwrap().as_str()
    );
    let html = profile.text().await.unwrap();
    for expected in [
        "<h1 id=\"name\">Ada Lovelace</h1>",
        "@learner",
        "learner@example.com",
        "15 January 2024",
        "English, French",
        "United Kingdom",
        "Writes the first programs for an engine that does not exist yet.",
        "<code>JWT</code>",
        "<code>user_id email profile</code>",
        "the signature is <strong>not checked</strong>",
        "<code>preferred_username</code>",
    ] {
        assert!(html.contains(expected), "missing {expected:?} in:\n{html}");
    }
}

#[tokio::test]
async fn the_authorize_redirect_carries_every_parameter_and_an_s256_challenge_of_the_verifier() {
    let app = spawn_app().await;
    let authorize = app.start_sign_in().await;
    assert_eq!(
        authorize.as_str().split('?').next().unwrap(),
        app.standin
            .url()
            .join("/oauth2/authorize/")
            .unwrap()
            .as_str()
    );
    let params = query(&authorize);
    assert_eq!(params["response_type"], "code");
    assert_eq!(params["client_id"], CLIENT_ID);
    assert_eq!(
        params["redirect_uri"],
        app.url.join("/authorize/").unwrap().as_str()
    );
    assert_eq!(params["scope"], "user_id email profile");
    assert_eq!(params["code_challenge_method"], "S256");
    assert!(params["state"].len() >= 22, "state has at least 128 bits");

    let callback = app.approve_at_lms(authorize).await;
    let response = app.client.get(callback).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);

    let token_request = app.standin.token_requests().pop().unwrap();
    let verifier = token_request
        .field("code_verifier")
        .expect("a code_verifier");
    assert_eq!(
        URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
        params["code_challenge"]
    );
}

#[tokio::test]
async fn every_sign_in_starts_with_a_fresh_state_and_challenge() {
    let app = spawn_app().await;
    let first = query(&app.start_sign_in().await);
    let second = query(&app.start_sign_in().await);
    assert_ne!(first["state"], second["state"]);
    assert_ne!(first["code_challenge"], second["code_challenge"]);
}

#[tokio::test]
async fn the_token_request_asks_for_a_jwt_and_authenticates_with_http_basic() {
    let app = spawn_app().await;
    let response = app.sign_in().await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);

    let request = app.standin.token_requests().pop().unwrap();
    assert_eq!(request.field("grant_type"), Some("authorization_code"));
    assert_eq!(request.field("token_type"), Some("jwt"));
    assert_eq!(
        request.field("redirect_uri"),
        Some(app.url.join("/authorize/").unwrap().as_str())
    );
    assert_eq!(
        request.basic_auth,
        Some((CLIENT_ID.into(), CLIENT_SECRET.into()))
    );
    assert_eq!(
        request.field("client_secret"),
        None,
        "the secret is not also in the body"
    );
}

#[tokio::test]
async fn post_client_authentication_puts_the_credentials_in_the_body() {
    let app = spawn_app_with(Options {
        vars: vec![("LMS_CLIENT_AUTH", "post".into())],
        ..Default::default()
    })
    .await;
    assert_eq!(app.sign_in().await.status(), StatusCode::SEE_OTHER);

    let request = app.standin.token_requests().pop().unwrap();
    assert_eq!(request.basic_auth, None);
    assert_eq!(request.field("client_id"), Some(CLIENT_ID));
    assert_eq!(request.field("client_secret"), Some(CLIENT_SECRET));
}

#[tokio::test]
async fn a_jwt_is_sent_to_the_user_apis_with_the_jwt_scheme() {
    let app = spawn_app().await;
    assert_eq!(app.sign_in().await.status(), StatusCode::SEE_OTHER);

    let calls = app.standin.api_requests();
    let paths: Vec<&str> = calls.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["/api/user/v1/me", "/api/user/v1/accounts/learner"]);
    for call in &calls {
        let authorization = call.authorization.as_deref().unwrap();
        assert!(
            authorization.starts_with("JWT eyJ"),
            "{}",
            &authorization[..10]
        );
    }
}

#[tokio::test]
async fn an_opaque_token_is_sent_with_the_bearer_scheme() {
    let app = spawn_app_with(Options {
        vars: vec![("LMS_TOKEN_TYPE", "bearer".into())],
        ..Default::default()
    })
    .await;
    assert_eq!(app.sign_in().await.status(), StatusCode::SEE_OTHER);

    assert_eq!(
        app.standin
            .token_requests()
            .pop()
            .unwrap()
            .field("token_type"),
        None
    );
    for call in app.standin.api_requests() {
        let authorization = call.authorization.unwrap();
        assert!(authorization.starts_with("Bearer ") && !authorization.contains('.'));
    }
    let html = app.get("/profile/").await.text().await.unwrap();
    assert!(html.contains("<code>Bearer</code>"));
    assert!(html.contains("The LMS issued an opaque token, so there are no claims to show."));
}

#[tokio::test]
async fn a_successful_callback_redirects_to_the_profile_and_its_reload_is_refused() {
    let (app, callback) = spawn_app_approved_at_lms().await;
    let response = app.client.get(callback.clone()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[header::LOCATION], "/profile/");

    let reload = app.client.get(callback).send().await.unwrap();
    assert_eq!(reload.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        app.standin.calls("token"),
        1,
        "the replayed code never reached the LMS"
    );
    let html = reload.text().await.unwrap();
    assert!(html.contains("Sign-in was interrupted"), "{html}");
    assert!(html.contains("href=\"/\""), "a way to start again");
    // The person who did sign in stays signed in.
    assert_eq!(app.get("/profile/").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn callback_with_a_wrong_state_is_rejected_and_signs_nobody_in() {
    let (app, mut callback) = spawn_app_approved_at_lms().await;
    let code = query(&callback)["code"].clone();
    callback
        .query_pairs_mut()
        .clear()
        .append_pair("code", &code)
        .append_pair("state", "forged-state");

    let response = app.client.get(callback).send().await.unwrap();
    assert_refused_before_the_lms(
        &app,
        response,
        StatusCode::BAD_REQUEST,
        "does not belong to a sign-in started in this browser",
    )
    .await;
    assert_eq!(app.get("/profile/").await.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn callback_with_a_missing_state_is_rejected_and_signs_nobody_in() {
    let (app, callback) = spawn_app_approved_at_lms().await;
    let code = query(&callback)["code"].clone();
    let response = app.get(&format!("/authorize/?code={code}")).await;
    assert_refused_before_the_lms(
        &app,
        response,
        StatusCode::BAD_REQUEST,
        "it carries no state",
    )
    .await;
    assert_eq!(app.get("/profile/").await.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn callback_in_a_browser_without_the_session_cookie_is_rejected() {
    let (app, callback) = spawn_app_approved_at_lms().await;
    let other_browser = anonymous();

    let response = other_browser.get(callback).send().await.unwrap();
    assert_refused_before_the_lms(
        &app,
        response,
        StatusCode::BAD_REQUEST,
        "came back from the LMS without this site",
    )
    .await;
}

#[tokio::test]
async fn declining_consent_shows_a_page_that_says_so_with_a_way_to_try_again() {
    let app = spawn_app().await;
    let callback = app.answer_at_lms(app.start_sign_in().await, false).await;
    assert_eq!(query(&callback)["error"], "access_denied");

    let response = app.client.get(callback).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("You declined to share your profile"),
        "{html}"
    );
    assert!(html.contains("<a class=\"button\" href=\"/\">Start again</a>"));
    assert_eq!(app.get("/profile/").await.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_planted_session_id_is_never_adopted_at_sign_in() {
    let app = spawn_app().await;
    let planted = "profiles_session=AAAAAAAAAAAAAAAAAAAAAA; Path=/";
    app.jar.add_cookie_str(planted, &app.url);
    let response = app.sign_in().await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let after = app
        .session_cookie()
        .expect("a session cookie after sign-in");
    assert_ne!(after, "AAAAAAAAAAAAAAAAAAAAAA");
    assert_eq!(app.get("/profile/").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_session_id_changes_when_a_second_tab_completes_its_sign_in() {
    let app = spawn_app().await;
    let first_tab = app.start_sign_in().await;
    let second_tab = app.start_sign_in().await;
    let callback = app.approve_at_lms(first_tab).await;
    app.client.get(callback).send().await.unwrap();
    let before = app.session_cookie().expect("signed in by the first tab");
    let callback = app.approve_at_lms(second_tab).await;
    let response = app.client.get(callback).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let after = app.session_cookie().expect("signed in by the second tab");
    assert_ne!(before, after);
    assert_eq!(app.get("/profile/").await.status(), StatusCode::OK);
    assert_eq!(
        app.standin.calls("revoke"),
        1,
        "the first tab's token, now unreachable, is revoked"
    );
}

/// The `Set-Cookie` values of a response whose cookie name starts with `prefix`.
fn set_cookies(response: &reqwest::Response, prefix: &str) -> Vec<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .filter(|v| v.starts_with(prefix))
        .collect()
}

#[tokio::test]
async fn the_session_cookie_is_http_only_and_same_site_lax() {
    let app = spawn_app().await;
    let response = app.sign_in().await;
    let set_cookie = set_cookies(&response, "profiles_session=").remove(0);
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Lax"), "{set_cookie}");
    assert!(set_cookie.contains("Path=/"), "{set_cookie}");
    assert!(
        !set_cookie.contains("Secure"),
        "plain-http development keeps working: {set_cookie}"
    );
}

#[tokio::test]
async fn the_pending_sign_in_cookie_is_sealed_http_only_same_site_lax_and_short_lived() {
    let app = spawn_app().await;
    let response = app.get("/").await;
    let authorize = location(&response);
    let set_cookie = set_cookies(&response, "profiles_signin_").remove(0);
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=600"] {
        assert!(set_cookie.contains(attribute), "{attribute}: {set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "{set_cookie}");
    let state = query(&authorize)["state"].clone();
    assert!(
        !set_cookie.contains(&state),
        "the state is not readable: {set_cookie}"
    );
    assert!(
        set_cookies(&response, "profiles_session=").is_empty(),
        "no session before a sign-in completes"
    );
}

#[tokio::test]
async fn the_session_cookie_lasts_as_long_as_the_configured_idle_time() {
    let app = spawn_app_with(Options {
        vars: vec![("SESSION_IDLE_MINUTES", "5".into())],
        ..Options::default()
    })
    .await;
    let response = app.sign_in().await;
    let set_cookie = set_cookies(&response, "profiles_session=").remove(0);
    let max_age: i64 = set_cookie
        .split("; ")
        .find_map(|a| a.strip_prefix("Max-Age="))
        .map(|v| v.parse().unwrap())
        .or_else(|| {
            let expires = set_cookie
                .split("; ")
                .find_map(|a| a.strip_prefix("Expires="))?;
            let at = time::OffsetDateTime::parse(
                expires,
                &time::format_description::well_known::Rfc2822,
            )
            .ok()?;
            Some((at - time::OffsetDateTime::now_utc()).whole_seconds())
        })
        .unwrap_or_else(|| panic!("an expiry in {set_cookie}"));
    assert!((290..=300).contains(&max_age), "{max_age} s: {set_cookie}");
}

#[tokio::test]
async fn an_https_public_url_gets_secure_host_prefixed_cookies() {
    let app = spawn_app_with(Options {
        vars: vec![("PUBLIC_URL", "https://profiles.example.org/".into())],
        ..Default::default()
    })
    .await;
    let response = app.get("/").await;
    let set_cookie = set_cookies(&response, "__Host-profiles_signin_").remove(0);
    assert!(
        set_cookie.contains("Secure") && set_cookie.contains("Path=/"),
        "{set_cookie}"
    );
    assert!(!set_cookie.contains("Domain="), "host-only: {set_cookie}");
    assert_eq!(
        profiles::session::cookie_name(true),
        "__Host-profiles_session"
    );
}

#[tokio::test]
async fn the_token_never_appears_in_a_cookie_or_in_the_page_source() {
    let app = spawn_app().await;
    let response = app.sign_in().await;
    let set_cookies: Vec<String> = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let html = app.get("/profile/").await.text().await.unwrap();

    let api_call = app.standin.api_requests().pop().unwrap();
    let token = api_call
        .authorization
        .unwrap()
        .strip_prefix("JWT ")
        .unwrap()
        .to_owned();
    let jwt_parts: Vec<&str> = token.split('.').collect();
    for cookie in &set_cookies {
        assert!(cookie.len() < 100, "the cookie holds an id only: {cookie}");
        for part in &jwt_parts {
            assert!(!cookie.contains(part));
        }
    }
    assert!(!html.contains(&token));
    assert!(!html.contains(jwt_parts[2]), "not even the signature");
    assert!(!html.contains(CLIENT_SECRET));
}

#[tokio::test]
async fn signed_in_sessions_survive_a_restart_of_the_app() {
    let mut app = spawn_app().await;
    assert_eq!(app.sign_in().await.status(), StatusCode::SEE_OTHER);
    app.restart().await;
    let response = app.get("/profile/").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("Ada Lovelace"));
    assert!(app.db_path.exists(), "the session lives in the SQLite file");
}

#[tokio::test]
async fn the_profile_sends_a_signed_out_visitor_to_sign_in() {
    let app = spawn_app().await;
    let response = app.get("/profile/").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[header::LOCATION], "/");
}

#[tokio::test]
async fn a_same_origin_next_is_where_the_sign_in_ends() {
    let app = spawn_app().await;
    let start = app.get("/?next=/profile/%3Ftab%3Dhow").await;
    let callback = app.approve_at_lms(location(&start)).await;
    let response = app.client.get(callback).send().await.unwrap();
    assert_eq!(response.headers()[header::LOCATION], "/profile/?tab=how");
}

#[tokio::test]
async fn a_next_pointing_elsewhere_is_ignored() {
    for next in [
        "//evil.example/",
        "https://evil.example/",
        "/%5Cevil.example",
        "/\\evil.example",
    ] {
        let app = spawn_app().await;
        let response = app.sign_in_with_next(next).await;
        assert_eq!(response.headers()[header::LOCATION], "/profile/", "{next}");
    }
}

#[tokio::test]
async fn a_sign_in_is_recorded_in_the_profiles_table() {
    let app = spawn_app().await;
    app.sign_in().await;
    app.post_with_csrf("/logout").await;
    app.sign_in().await;
    let sql = "SELECT user_id, sign_in_count, first_signed_in_at, last_signed_in_at
               FROM profiles WHERE username = 'learner'";
    let record: (Option<i64>, i64, i64, i64) = sqlx::query_as(sql)
        .fetch_one(&mut app.database().await)
        .await
        .expect("a row for the learner");
    let (user_id, sign_in_count, first_signed_in_at, last_signed_in_at) = record;
    assert_eq!(user_id, Some(7));
    assert_eq!(sign_in_count, 2);
    assert!(first_signed_in_at <= last_signed_in_at);
    let details = app.state.store.profile_details("learner").await.unwrap();
    let details = details.expect("email and name recorded");
    assert_eq!(details.email.as_deref(), Some("learner@example.com"));
    assert_eq!(details.name.as_deref(), Some("Ada Lovelace"));
}

#[tokio::test]
async fn an_lms_that_cannot_be_reached_gives_a_502_page_not_a_hang() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    let app = spawn_app_with(Options {
        vars: vec![("LMS_INTERNAL_URL", dead)],
        ..Default::default()
    })
    .await;
    let response = app.sign_in().await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let html = response.text().await.unwrap();
    assert!(html.contains("The LMS cannot be reached"), "{html}");
    assert!(html.contains("request id"));
}

#[tokio::test]
async fn pages_carry_the_security_headers() {
    let app = spawn_app().await;
    app.sign_in().await;
    let response = app.get("/profile/").await;
    let headers = response.headers();
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("script-src"), "no script is allowed at all");
}

#[tokio::test]
async fn an_unknown_page_is_a_404_page() {
    let app = spawn_app().await;
    let response = app.get("/nope").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.text().await.unwrap().contains("Page not found"));
}

#[tokio::test]
async fn a_thousand_made_up_callbacks_cause_no_token_request() {
    let app = spawn_app().await;
    let authorize = app.start_sign_in().await;
    let state = query_param(&authorize, "state");
    // The attacker keeps sending the pending cookie the app removed after the first callback.
    let cookie = reqwest::cookie::CookieStore::cookies(&*app.jar, &app.url).unwrap();
    let mut callbacks = tokio::task::JoinSet::new();
    for i in 0..1000 {
        let url = app
            .url
            .join(&format!("/authorize/?code=garbage{i}&state={state}"))
            .unwrap();
        let request = anonymous().get(url).header(header::COOKIE, cookie.clone());
        callbacks.spawn(async move { request.send().await.unwrap().status() });
    }
    while let Some(status) = callbacks.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::BAD_REQUEST);
    }
    assert_eq!(app.standin.calls("token"), 0);
}

#[tokio::test]
async fn an_https_session_cookie_that_matches_no_session_is_removed_with_its_secure_flag() {
    let app = spawn_app_with(Options {
        vars: vec![("PUBLIC_URL", "https://profiles.example.org/".into())],
        ..Default::default()
    })
    .await;
    let stale = format!(
        "__Host-profiles_session={}",
        tower_sessions::session::Id::default()
    );
    let response = anonymous()
        .get(app.url.join("/profile/").unwrap())
        .header(header::COOKIE, stale)
        .send()
        .await
        .unwrap();
    let removal = set_cookies(&response, "__Host-profiles_session=").remove(0);
    // Browsers drop a __Host- cookie only when the removal itself is Secure, Path=/.
    for attribute in ["Secure", "Path=/", "Max-Age=0"] {
        assert!(removal.contains(attribute), "{attribute}: {removal}");
    }
}
