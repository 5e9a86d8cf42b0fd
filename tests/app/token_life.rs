//! The token's life against the stand-in: refresh before expiry (once, however many requests ask),
//! rotation, a refused refresh, reload from the LMS, and sign-out with revocation.

use std::time::Duration;

use crate::helpers::{Options, location, spawn_app, spawn_app_with};
use openedx_standin::Fault;
use reqwest::{StatusCode, header};

/// Under the default 60 s leeway a 30 s token is stale the moment it arrives.
const STALE: Duration = Duration::from_secs(30);
const FRESH: Duration = Duration::from_secs(3600);

fn refresh_requests(app: &crate::helpers::TestApp) -> Vec<openedx_standin::RecordedTokenRequest> {
    app.standin
        .token_requests()
        .into_iter()
        .filter(|r| r.field("grant_type") == Some("refresh_token"))
        .collect()
}

#[tokio::test]
async fn a_fresh_token_is_used_as_it_is() {
    let app = spawn_app().await;
    app.sign_in().await;
    let response = app.post_with_csrf("/profile/reload").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[header::LOCATION], "/profile/");
    assert!(refresh_requests(&app).is_empty());
    assert_eq!(app.standin.calls("me"), 2, "sign-in and reload");
}

#[tokio::test]
async fn a_stale_token_is_refreshed_as_a_jwt_before_the_reload() {
    let app = spawn_app().await;
    app.standin.set_jwt_lifetime(STALE);
    app.sign_in().await;
    app.standin.set_jwt_lifetime(FRESH);
    let first_refresh_token = app.standin.issued().refresh_tokens[0].clone();

    let response = app.post_with_csrf("/profile/reload").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);

    let refreshes = refresh_requests(&app);
    assert_eq!(refreshes.len(), 1);
    assert_eq!(refreshes[0].field("token_type"), Some("jwt"));
    assert_eq!(
        refreshes[0].field("refresh_token"),
        Some(first_refresh_token.as_str())
    );
    assert!(refreshes[0].basic_auth.is_some(), "client authentication");
    let new_jwt = app.standin.issued().access_tokens[1].clone();
    let last_api = app.standin.api_requests().pop().unwrap();
    assert_eq!(
        last_api.authorization.as_deref(),
        Some(format!("JWT {new_jwt}").as_str())
    );
}

#[tokio::test]
async fn each_refresh_sends_the_rotated_refresh_token() {
    let app = spawn_app().await;
    app.standin.set_jwt_lifetime(STALE);
    app.sign_in().await;
    for _ in 0..3 {
        let response = app.post_with_csrf("/profile/reload").await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(response.headers()[header::LOCATION], "/profile/");
    }
    let issued = app.standin.issued().refresh_tokens;
    let sent: Vec<String> = refresh_requests(&app)
        .iter()
        .map(|r| r.field("refresh_token").unwrap().to_owned())
        .collect();
    assert_eq!(sent, issued[..3].to_vec(), "always the newest one");
    assert_eq!(app.standin.live_refresh_tokens(), 1);
}

#[tokio::test]
async fn concurrent_requests_with_a_stale_token_cause_exactly_one_refresh() {
    let app = spawn_app().await;
    app.standin.set_jwt_lifetime(STALE);
    app.sign_in().await;
    app.standin.set_jwt_lifetime(FRESH);
    let csrf = app.csrf().await;
    // A slow token endpoint, so that every request finds the token stale while one refreshes.
    app.standin
        .set_fault("token", Some(Fault::Delay(Duration::from_millis(300))));
    // Half of the requests go to a second replica on the same database.
    let (replica, _task) = app.replica().await;

    let requests = (0..8).map(|i| {
        let url = if i % 2 == 0 { &app.url } else { &replica };
        app.client
            .post(url.join("/profile/reload").unwrap())
            .form(&[("csrf", csrf.as_str())])
            .send()
    });
    for response in futures_util_join_all(requests).await {
        let response = response.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(response.headers()[header::LOCATION], "/profile/");
    }
    assert_eq!(refresh_requests(&app).len(), 1);
    assert_eq!(app.standin.live_refresh_tokens(), 1);
}

/// `join_all` without a dependency: every future on its own task.
async fn futures_util_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

#[tokio::test]
async fn a_refresh_the_lms_refuses_ends_the_session_with_a_message() {
    let app = spawn_app().await;
    app.standin.set_jwt_lifetime(STALE);
    app.sign_in().await;
    app.standin.revoke_refresh_tokens();

    let response = app.post_with_csrf("/profile/reload").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()[header::LOCATION],
        "/signed-out/?why=renewal"
    );
    let page = app.client.get(location(&response)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let text = page.text().await.unwrap();
    assert!(text.contains("Please sign in again"), "{text}");
    assert!(text.contains("href=\"/\""), "a way to sign in again");
    assert_eq!(app.get("/profile/").await.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn an_lms_down_during_a_refresh_gives_a_502_and_keeps_the_session() {
    let app = spawn_app().await;
    app.standin.set_jwt_lifetime(STALE);
    app.sign_in().await;
    app.standin.set_fault(
        "token",
        Some(Fault::Respond {
            status: 503,
            content_type: "text/html",
            body: "<h1>Service Unavailable</h1>".into(),
        }),
    );
    let response = app.post_with_csrf("/profile/reload").await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);

    app.standin.set_fault("token", None);
    let response = app.post_with_csrf("/profile/reload").await;
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "the claim was let go"
    );
    assert_eq!(response.headers()[header::LOCATION], "/profile/");
}

#[tokio::test]
async fn reload_shows_what_the_lms_says_now() {
    let app = spawn_app().await;
    app.sign_in().await;
    app.standin.add_user(openedx_standin::LmsUser {
        name: "Augusta Ada King".into(),
        ..openedx_standin::LmsUser::demo_learner()
    });
    assert!(
        !app.get("/profile/")
            .await
            .text()
            .await
            .unwrap()
            .contains("Augusta")
    );
    app.post_with_csrf("/profile/reload").await;
    let page = app.get("/profile/").await.text().await.unwrap();
    assert!(page.contains("Augusta Ada King"));
}

#[tokio::test]
async fn a_form_without_the_csrf_token_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    app.sign_in().await;
    for path in ["/logout", "/profile/reload"] {
        for form in [vec![], vec![("csrf", "forged")]] {
            let response = app.post(path, &form).await;
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path} {form:?}");
            let page = response.text().await.unwrap();
            assert!(page.contains("This form has expired"));
        }
    }
    assert_eq!(app.get("/profile/").await.status(), StatusCode::OK);
    assert_eq!(app.standin.calls("revoke"), 0);
}

#[tokio::test]
async fn a_get_does_not_sign_anyone_out() {
    let app = spawn_app().await;
    app.sign_in().await;
    let response = app.get("/logout").await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(app.get("/profile/").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn sign_out_revokes_the_refresh_token_and_deletes_the_session() {
    let app = spawn_app().await;
    app.sign_in().await;
    let before = app.session_cookie().unwrap();
    let response = app.post_with_csrf("/logout").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()[header::LOCATION],
        "/signed-out/?why=here"
    );

    let revocations: Vec<_> = app
        .standin
        .token_requests()
        .into_iter()
        .filter(|r| r.field("token").is_some())
        .collect();
    assert_eq!(
        revocations.len(),
        1,
        "a JWT cannot be revoked, its refresh token can"
    );
    assert_eq!(
        revocations[0].field("token_type_hint"),
        Some("refresh_token")
    );
    assert_eq!(app.standin.live_refresh_tokens(), 0);

    assert_ne!(app.session_cookie(), Some(before.clone()), "new session id");
    assert_eq!(app.get("/profile/").await.status(), StatusCode::SEE_OTHER);
    // The old session id is dead server-side too, not just forgotten by this browser.
    let replayed = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url.join("/profile/").unwrap())
        .header(header::COOKIE, format!("profiles_session={before}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), StatusCode::SEE_OTHER);
    let page = app.get("/signed-out/").await.text().await.unwrap();
    assert!(page.contains("You are signed out"));
}

#[tokio::test]
async fn sign_out_of_an_opaque_token_revokes_the_access_and_the_refresh_token() {
    let app = spawn_app_with(Options {
        vars: vec![("LMS_TOKEN_TYPE", "bearer".into())],
        ..Options::default()
    })
    .await;
    app.sign_in().await;
    app.post_with_csrf("/logout").await;
    let hints: Vec<String> = app
        .standin
        .token_requests()
        .iter()
        .filter_map(|r| r.field("token_type_hint").map(str::to_owned))
        .collect();
    assert_eq!(hints, ["refresh_token", "access_token"]);
}

#[tokio::test]
async fn a_failed_revocation_still_signs_out_here() {
    let app = spawn_app().await;
    app.sign_in().await;
    app.standin
        .set_fault("revoke", Some(Fault::Delay(Duration::from_secs(5))));
    let app = {
        let mut app = app;
        app.vars.insert("LMS_TIMEOUT_SECS".into(), "1".into());
        app.restart().await;
        app
    };
    let started = std::time::Instant::now();
    let response = app.post_with_csrf("/logout").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()[header::LOCATION],
        "/signed-out/?why=here"
    );
    assert_eq!(app.standin.calls("revoke"), 1, "revocation was tried");
    assert!(started.elapsed() < Duration::from_secs(4), "and given up");
    assert_eq!(app.get("/profile/").await.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn signing_in_again_revokes_the_previous_sign_ins_token() {
    let app = spawn_app().await;
    // Two tabs each started a sign-in; the second to finish replaces the first.
    let first_tab = app.start_sign_in().await;
    let second_tab = app.start_sign_in().await;
    let callback = app.approve_at_lms(first_tab).await;
    app.client.get(callback).send().await.unwrap();
    let callback = app.approve_at_lms(second_tab).await;
    app.client.get(callback).send().await.unwrap();
    assert_eq!(app.standin.calls("revoke"), 1);
    assert_eq!(app.standin.live_refresh_tokens(), 1);
    assert_eq!(app.get("/profile/").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn with_lms_logout_the_browser_ends_the_lms_session_and_comes_back() {
    let app = spawn_app_with(Options {
        vars: vec![("LMS_LOGOUT", "true".into())],
        register_signed_out: true,
        ..Options::default()
    })
    .await;
    app.sign_in().await;
    let response = app.post_with_csrf("/logout").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let lms_logout = location(&response);
    assert_eq!(lms_logout.path(), "/logout", "no trailing slash");
    let back = format!("{}signed-out/", app.url);
    let pairs: Vec<(String, String)> = lms_logout.query_pairs().into_owned().collect();
    assert_eq!(
        pairs,
        [
            ("client_id".to_owned(), crate::helpers::CLIENT_ID.to_owned()),
            ("redirect_url".to_owned(), back.clone())
        ]
    );
    let page = app.client.get(lms_logout).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains(&back));
    assert_eq!(app.standin.calls("logout"), 1);
    // The LMS session is gone: the next sign-in asks for the password again.
    let authorize = app.start_sign_in().await;
    let at_lms = app.client.get(authorize).send().await.unwrap();
    assert_eq!(location(&at_lms).path(), "/login");
}

#[tokio::test]
async fn the_lms_ignores_a_logout_redirect_that_is_not_registered() {
    let app = spawn_app_with(Options {
        vars: vec![("LMS_LOGOUT", "true".into())],
        ..Options::default()
    })
    .await;
    app.sign_in().await;
    let lms_logout = location(&app.post_with_csrf("/logout").await);
    let page = app.client.get(lms_logout).send().await.unwrap();
    let text = page.text().await.unwrap();
    assert!(text.contains("href=\"/\""), "{text}");
}
