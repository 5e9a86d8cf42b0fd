//! Signing out of the LMS signs out here too: the front-channel sign-out the LMS's logout page
//! loads in a hidden iframe, the stand-in's logout page that loads it, and what the signed-out
//! page says about the LMS session.

use std::time::Duration;

use crate::helpers::{
    Options, TestApp, revoked_refresh_tokens, spawn_app, spawn_app_with, spawn_signed_in_with,
};
use openedx_standin::Settings;
use reqwest::{StatusCode, header};

/// What the LMS's logout page loads for this app: `IDA_LOGOUT_URI_LIST`'s URL plus `no_redirect=1`.
const FROM_THE_LMS: &str = "/frontchannel-logout/?no_redirect=1";

fn lms_origin(app: &TestApp) -> String {
    app.standin.url().origin().ascii_serialization()
}

#[tokio::test]
async fn the_lms_front_channel_call_ends_the_session_and_revokes_its_refresh_token() {
    let app = spawn_app().await;
    app.sign_in().await;
    let response = app.get(FROM_THE_LMS).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("You are signed out of profiles.")
    );
    assert_eq!(revoked_refresh_tokens(&app), 1);
    assert_eq!(app.standin.live_refresh_tokens(), 0);
    assert_eq!(app.sessions_stored().await, 0);
    let profile = app.get("/profile/").await;
    assert_eq!(profile.status(), StatusCode::SEE_OTHER);
    assert_eq!(profile.headers()[header::LOCATION], "/", "sent to sign in");
}

#[tokio::test]
async fn only_the_lms_origin_may_frame_the_front_channel_sign_out() {
    let app = spawn_app().await;
    let response = app.get(FROM_THE_LMS).await;
    let headers = response.headers();
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        csp.contains(&format!("frame-ancestors {};", lms_origin(&app))),
        "{csp}"
    );
    assert!(csp.contains("default-src 'none'") && !csp.contains("script-src"));
    assert!(
        headers.get(header::X_FRAME_OPTIONS).is_none(),
        "it would deny the LMS"
    );
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");

    let elsewhere = app.get("/signed-out/").await;
    let csp = elsewhere.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(elsewhere.headers()[header::X_FRAME_OPTIONS], "DENY");
}

#[tokio::test]
async fn without_a_session_the_front_channel_sign_out_changes_nothing() {
    let app = spawn_app().await;
    let response = app.get(FROM_THE_LMS).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get(header::SET_COOKIE).is_none());
    assert_eq!(app.sessions_stored().await, 0);
    assert_eq!(app.standin.calls("revoke"), 0);
}

#[tokio::test]
async fn a_second_front_channel_call_finds_nothing_more_to_end() {
    let app = spawn_app().await;
    app.sign_in().await;
    assert_eq!(app.get(FROM_THE_LMS).await.status(), StatusCode::OK);
    let again = app.get(FROM_THE_LMS).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert!(
        again
            .text()
            .await
            .unwrap()
            .contains("signed out of profiles")
    );
    assert_eq!(app.standin.calls("revoke"), 1, "revoked once");
}

#[tokio::test]
async fn a_session_past_its_lifetime_is_ended_and_revoked_by_the_front_channel_call() {
    let app = spawn_signed_in_with(|config| config.session_max = Duration::from_secs(1)).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = app.get(FROM_THE_LMS).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the page, not a redirect"
    );
    assert_eq!(revoked_refresh_tokens(&app), 1);
    assert_eq!(app.sessions_stored().await, 0);
}

#[tokio::test]
async fn opened_as_a_page_it_signs_out_and_says_the_lms_session_may_remain() {
    let app = spawn_app().await;
    app.sign_in().await;
    let response = app.get("/frontchannel-logout/").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()[header::LOCATION],
        "/signed-out/?why=here"
    );
    assert_eq!(app.standin.calls("revoke"), 1);
    assert_eq!(app.standin.calls("logout"), 0, "never goes on to the LMS");
}

#[tokio::test]
async fn head_of_the_front_channel_sign_out_signs_nobody_out() {
    let app = spawn_app().await;
    app.sign_in().await;
    let response = app
        .client
        .head(app.url.join(FROM_THE_LMS).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(app.get("/profile/").await.status(), StatusCode::OK);
    assert_eq!(app.standin.calls("revoke"), 0);
}

#[tokio::test]
async fn the_lms_logout_page_loads_each_listed_url_with_no_redirect_then_moves_on() {
    let app = spawn_app_with(Options {
        frontchannel_logout: true,
        settings: Settings {
            ida_logout_uri_list: vec!["http://studio.example/logout/?next=/x&no_redirect=0".into()],
            ..Settings::default()
        },
        ..Options::default()
    })
    .await;
    let logout = app.standin.url().join("/logout").unwrap();
    let page = app.client.get(logout.clone()).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK, "a page, not a redirect");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("src=\"http://studio.example/logout/?next=%2Fx&#38;no_redirect=1\""),
        "{html}"
    );
    let ours = app.url.join(FROM_THE_LMS).unwrap();
    assert!(html.contains(&format!("src=\"{ours}\"")), "{html}");
    assert!(html.contains("data-redirect-url=\"/\""), "{html}");

    // An app whose own logout sent the browser here is not loaded again.
    let referred = app
        .client
        .get(logout)
        .header(header::REFERER, app.url.as_str())
        .send()
        .await
        .unwrap();
    let html = referred.text().await.unwrap();
    assert!(!html.contains(ours.as_str()), "{html}");
    assert!(html.contains("studio.example"), "{html}");
}

#[tokio::test]
async fn signing_out_here_offers_to_sign_out_of_the_lms_too() {
    let app = spawn_app_with(Options {
        register_signed_out: true,
        ..Options::default()
    })
    .await;
    app.sign_in().await;
    let response = app.post_with_csrf("/logout").await;
    assert_eq!(
        response.headers()[header::LOCATION],
        "/signed-out/?why=here"
    );
    let html = app.get("/signed-out/?why=here").await.text().await.unwrap();
    let lms = app.standin.url().host_str().unwrap().to_owned();
    assert!(
        html.contains(&format!(
            "This app did not sign you out of {lms}. Unless you\n  have signed out there too, you \
             are still signed in to it in this browser"
        )),
        "{html}"
    );
    let marker = format!("<a class=\"button\" href=\"{}logout?", app.standin.url());
    let start = html.find(&marker).expect("a link to the LMS's logout") + marker.len() - 1;
    let href = html[start..]
        .split('"')
        .next()
        .unwrap()
        .replace("&#38;", "&");
    let lms_logout = app.standin.url().join(&format!("/logout{href}")).unwrap();
    let pairs: Vec<(String, String)> = lms_logout.query_pairs().into_owned().collect();
    let back = format!("{}signed-out/", app.url);
    assert_eq!(
        pairs,
        [
            ("client_id".to_owned(), crate::helpers::CLIENT_ID.to_owned()),
            ("redirect_url".to_owned(), back.clone())
        ]
    );
    assert!(html.contains(&format!("Sign out of {lms} too")));

    // The LMS sends the browser back to the page without `why`, which knows it has been there.
    let at_lms = app
        .client
        .get(lms_logout)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        at_lms.contains(&format!("data-redirect-url=\"{back}\"")),
        "{at_lms}"
    );
    let back = app.get("/signed-out/").await.text().await.unwrap();
    assert!(
        back.contains(&format!("You have signed out of {lms} too.")),
        "{back}"
    );
    assert!(!back.contains("Sign out of"), "nothing left to offer");
}

#[tokio::test]
async fn a_session_the_app_ended_offers_to_sign_out_of_the_lms_too() {
    let app = spawn_app().await;
    for why in ["expired", "renewal", "anything-else"] {
        let html = app
            .get(&format!("/signed-out/?why={why}"))
            .await
            .text()
            .await
            .unwrap();
        assert!(
            html.contains("This app did not sign you out of"),
            "{why}: {html}"
        );
        assert!(html.contains("Sign out of 127.0.0.1 too"), "{why}");
    }
}
