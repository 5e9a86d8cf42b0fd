//! Signing out of the LMS signs out here too: the front-channel sign-out the LMS's logout page
//! loads in a hidden iframe (and only that iframe: any other request gets a button), the
//! stand-in's logout page that loads it, and what the signed-out page says about the LMS session.

use std::time::Duration;

use crate::helpers::{
    Options, TestApp, revoked_refresh_tokens, spawn_app, spawn_app_with, spawn_signed_in_with,
};
use openedx_standin::Settings;
use reqwest::{StatusCode, header};

/// What the LMS's logout page loads for this app: `IDA_LOGOUT_URI_LIST`'s URL plus `no_redirect=1`.
const FROM_THE_LMS: &str = "/frontchannel-logout/?no_redirect=1";

/// The Fetch Metadata a browser sends with the LMS logout page's iframe when the LMS is on the
/// app's site, as the stand-in is (both on 127.0.0.1; ports do not count). No `Referer`: the
/// LMS's referrer policy may keep it from another origin.
const LMS_IFRAME: [(&str, &str); 3] = [
    ("sec-fetch-dest", "iframe"),
    ("sec-fetch-mode", "navigate"),
    ("sec-fetch-site", "same-site"),
];

/// A link to the address on another site, followed: a top-level navigation, which carries the
/// `SameSite=Lax` cookie.
const CROSS_SITE_LINK: [(&str, &str); 5] = [
    ("sec-fetch-dest", "document"),
    ("sec-fetch-mode", "navigate"),
    ("sec-fetch-site", "cross-site"),
    ("sec-fetch-user", "?1"),
    ("referer", "https://attacker.example/"),
];

/// What the page offering a sign-out says, the LMS being the stand-in at 127.0.0.1.
const NOT_SIGNED_OUT: &str = "<p>This address signs you out when 127.0.0.1 loads it as you sign \
                              out there. You reached it\n  some other way (a link, a bookmark or \
                              another site), so you are still signed in.</p>";

fn lms_origin(app: &TestApp) -> String {
    app.standin.url().origin().ascii_serialization()
}

async fn get_with(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app.client.get(app.url.join(path).unwrap());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// The front-channel sign-out as the LMS's logout page loads it.
async fn from_the_lms_iframe(app: &TestApp) -> reqwest::Response {
    get_with(app, FROM_THE_LMS, &LMS_IFRAME).await
}

/// The session is as it was: its refresh token alive and never revoked, its row and cookie
/// kept, the profile still shown.
async fn assert_nothing_ended(app: &TestApp) {
    assert_eq!(
        revoked_refresh_tokens(app),
        0,
        "the journal shows no revocation"
    );
    assert_eq!(app.standin.calls("revoke"), 0);
    assert_eq!(app.standin.live_refresh_tokens(), 1);
    assert_eq!(app.sessions_stored().await, 1);
    assert!(app.session_cookie().is_some(), "the cookie is kept");
    assert_eq!(app.get("/profile/").await.status(), StatusCode::OK);
}

/// The response is the page with a sign-out button, which nobody may frame; returns the CSRF
/// token its form carries.
async fn assert_sign_out_button(response: reqwest::Response) -> String {
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::X_FRAME_OPTIONS], "DENY");
    let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let html = response.text().await.unwrap();
    assert!(
        html.contains("<h1 id=\"heading\">Sign out of profiles?</h1>"),
        "{html}"
    );
    assert!(html.contains(NOT_SIGNED_OUT), "{html}");
    assert!(
        html.contains("<form method=\"post\" action=\"/logout\">"),
        "{html}"
    );
    assert!(
        html.contains("<button type=\"submit\">Sign out</button>"),
        "{html}"
    );
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("a csrf field") + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn the_lms_front_channel_call_ends_the_session_and_revokes_its_refresh_token() {
    let app = spawn_app().await;
    app.sign_in().await;
    let response = from_the_lms_iframe(&app).await;
    assert_signed_out_and_revoked(&app, response).await;
    assert_eq!(app.standin.live_refresh_tokens(), 0);
    assert_eq!(app.sessions_stored().await, 0);
    let profile = app.get("/profile/").await;
    assert_eq!(profile.status(), StatusCode::SEE_OTHER);
    assert_eq!(profile.headers()[header::LOCATION], "/", "sent to sign in");
}

#[tokio::test]
async fn a_cross_site_get_of_the_front_channel_sign_out_ends_nothing() {
    let app = spawn_app().await;
    app.sign_in().await;
    for path in ["/frontchannel-logout/", FROM_THE_LMS] {
        let response = get_with(&app, path, &CROSS_SITE_LINK).await;
        assert_sign_out_button(response).await;
        assert_nothing_ended(&app).await;
    }
}

#[tokio::test]
async fn a_top_level_navigation_gets_a_sign_out_button_not_a_sign_out() {
    let app = spawn_app().await;
    app.sign_in().await;
    // An address typed or bookmarked, and a link on the LMS's own site.
    let lms = lms_origin(&app);
    let typed = [("sec-fetch-dest", "document"), ("sec-fetch-site", "none")];
    let linked = [
        ("sec-fetch-dest", "document"),
        ("sec-fetch-site", "same-site"),
        ("referer", lms.as_str()),
    ];
    for headers in [&typed[..], &linked[..]] {
        let response = get_with(&app, "/frontchannel-logout/", headers).await;
        assert_sign_out_button(response).await;
        assert_nothing_ended(&app).await;
    }
    assert_eq!(app.standin.calls("logout"), 0, "never goes on to the LMS");
}

#[tokio::test]
async fn a_cross_site_iframe_ends_nothing() {
    let app = spawn_app().await;
    app.sign_in().await;
    let framed = [
        ("sec-fetch-dest", "iframe"),
        ("sec-fetch-mode", "navigate"),
        ("sec-fetch-site", "cross-site"),
    ];
    let named = [&framed[..], &[("referer", "https://attacker.example/")][..]].concat();
    for headers in [&framed[..], &named[..]] {
        assert_sign_out_button(get_with(&app, FROM_THE_LMS, headers).await).await;
        assert_nothing_ended(&app).await;
    }
}

#[tokio::test]
async fn a_same_site_iframe_naming_another_origin_ends_nothing() {
    let app = spawn_app().await;
    app.sign_in().await;
    // Another host on the LMS's site (here another port of 127.0.0.1), which its Referer gives away.
    let sibling = [&LMS_IFRAME[..], &[("referer", "http://127.0.0.1:9/")][..]].concat();
    assert_sign_out_button(get_with(&app, FROM_THE_LMS, &sibling).await).await;
    assert_nothing_ended(&app).await;
}

#[tokio::test]
async fn an_iframe_from_the_lms_origin_ends_the_session() {
    let app = spawn_app().await;
    app.sign_in().await;
    // Even cross-site (which would bring no cookie in a browser) the LMS's origin is believed.
    let logout_page = format!("{}/logout", lms_origin(&app));
    let framed = [
        ("sec-fetch-dest", "iframe"),
        ("sec-fetch-mode", "navigate"),
        ("sec-fetch-site", "cross-site"),
        ("referer", logout_page.as_str()),
    ];
    let response = get_with(&app, FROM_THE_LMS, &framed).await;
    assert_signed_out_and_revoked(&app, response).await;
    assert_eq!(app.sessions_stored().await, 0);
}

#[tokio::test]
async fn a_browser_without_fetch_metadata_is_believed_only_when_the_lms_is_its_referer() {
    let app = spawn_app().await;
    app.sign_in().await;
    assert_sign_out_button(app.get(FROM_THE_LMS).await).await;
    assert_nothing_ended(&app).await;

    let lms = format!("{}/logout", lms_origin(&app));
    let response = get_with(&app, FROM_THE_LMS, &[("referer", lms.as_str())]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(revoked_refresh_tokens(&app), 1);
    assert_eq!(app.sessions_stored().await, 0);
}

#[tokio::test]
async fn the_sign_out_button_signs_out() {
    let app = spawn_app().await;
    app.sign_in().await;
    let page = get_with(&app, "/frontchannel-logout/", &CROSS_SITE_LINK).await;
    let csrf = assert_sign_out_button(page).await;
    assert_eq!(csrf, app.csrf().await, "the session's own token");
    let response = app.post("/logout", &[("csrf", csrf.as_str())]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()[header::LOCATION],
        "/signed-out/?why=here"
    );
    assert_eq!(revoked_refresh_tokens(&app), 1);
    assert_eq!(app.sessions_stored().await, 0);
}

#[tokio::test]
async fn only_the_lms_origin_may_frame_the_front_channel_sign_out() {
    let app = spawn_app().await;
    let response = from_the_lms_iframe(&app).await;
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
    for headers in [&LMS_IFRAME[..], &CROSS_SITE_LINK[..], &[][..]] {
        let response = get_with(&app, FROM_THE_LMS, headers).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().get(header::SET_COOKIE).is_none());
        assert!(
            response
                .text()
                .await
                .unwrap()
                .contains("You are signed out of profiles.")
        );
    }
    assert_eq!(app.sessions_stored().await, 0);
    assert_eq!(app.standin.calls("revoke"), 0);
}

#[tokio::test]
async fn a_second_front_channel_call_finds_nothing_more_to_end() {
    let app = spawn_app().await;
    app.sign_in().await;
    assert_eq!(from_the_lms_iframe(&app).await.status(), StatusCode::OK);
    let again = from_the_lms_iframe(&app).await;
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
    let response = from_the_lms_iframe(&app).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the page, not a redirect"
    );
    assert_eq!(revoked_refresh_tokens(&app), 1);
    assert_eq!(app.sessions_stored().await, 0);
}

#[tokio::test]
async fn a_session_past_its_lifetime_reached_from_elsewhere_ends_as_on_any_page() {
    let app = spawn_signed_in_with(|config| config.session_max = Duration::from_secs(1)).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = get_with(&app, FROM_THE_LMS, &CROSS_SITE_LINK).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()[header::LOCATION],
        "/signed-out/?why=expired",
        "as /profile/ would have"
    );
    assert_eq!(revoked_refresh_tokens(&app), 1);
    assert_eq!(app.sessions_stored().await, 0);
}

#[tokio::test]
async fn loaded_by_the_lms_without_no_redirect_it_signs_out_and_says_the_lms_session_may_remain() {
    let app = spawn_app().await;
    app.sign_in().await;
    let response = get_with(&app, "/frontchannel-logout/", &LMS_IFRAME).await;
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
    let mut request = app.client.head(app.url.join(FROM_THE_LMS).unwrap());
    for (name, value) in LMS_IFRAME {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
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

/// The front-channel call ended the session here: the page says so, and the refresh token was
/// revoked at the LMS.
async fn assert_signed_out_and_revoked(app: &TestApp, response: reqwest::Response) {
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("You are signed out of profiles.")
    );
    assert_eq!(revoked_refresh_tokens(app), 1);
}
