//! Sessions that cost nothing until someone signs in, and tokens sealed at rest: the pending
//! sign-in cookie, no storage for strangers, one read per signed-in request, idle expiry with
//! skipped writes, key rotation, expiry with revocation, and safe methods that stay safe.

use std::time::Duration;

use crate::helpers::{
    Options, TestApp, anonymous, assert_refused_before_the_lms, location, query_param, spawn_app,
    spawn_app_approved_at_lms, spawn_app_with, spawn_signed_in_with,
};
use reqwest::{Method, StatusCode, header};
use tokio::task::JoinSet;

/// Sends `count` cookie-less visits to `/` at once, half GET with a long `next`, half HEAD; each
/// must answer a 303 to the LMS.
async fn strangers_visit(app: &TestApp, count: usize) {
    let client = anonymous();
    let next = format!("/{}", "n".repeat(900));
    let url = app.url.join(&format!("/?next={next}")).unwrap();
    let mut visits = JoinSet::new();
    for i in 0..count {
        let method = if i % 2 == 0 {
            Method::GET
        } else {
            Method::HEAD
        };
        visits.spawn(client.request(method, url.clone()).send());
    }
    while let Some(response) = visits.join_next().await {
        let response = response.unwrap().unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert!(
            location(&response)
                .as_str()
                .starts_with(app.standin.url().as_str())
        );
    }
}

#[tokio::test]
async fn a_thousand_strangers_store_nothing_and_are_served_with_the_database_down() {
    let app = spawn_app().await;
    strangers_visit(&app, 500).await;
    assert_eq!(app.sessions_stored().await, 0);

    app.state.store.close().await;
    strangers_visit(&app, 500).await;
}

#[tokio::test]
async fn a_signed_in_visitor_opening_the_start_page_goes_to_the_profile_and_keeps_the_token() {
    let app = spawn_app().await;
    app.sign_in().await;
    let authorizations = app.standin.calls("authorize");
    let response = app.get("/").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[header::LOCATION], "/profile/");
    assert_eq!(app.standin.calls("revoke"), 0);
    assert_eq!(
        app.standin.calls("authorize"),
        authorizations,
        "no new sign-in started"
    );
    assert_eq!(app.get("/profile/").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn two_tabs_signing_in_at_the_same_moment_both_complete() {
    let app = spawn_app().await;
    let first = app.start_sign_in().await;
    let second = app.start_sign_in().await;
    let first = app.approve_at_lms(first).await;
    let second = app.approve_at_lms(second).await;
    let (a, b) = tokio::join!(app.client.get(first).send(), app.client.get(second).send());
    for response in [a.unwrap(), b.unwrap()] {
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(response.headers()[header::LOCATION], "/profile/");
    }
    assert_eq!(app.get("/profile/").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_replayed_callback_is_refused_in_the_same_browser_without_calling_the_lms() {
    let (app, callback) = spawn_app_approved_at_lms().await;
    let first = app.client.get(callback.clone()).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let exchanges = app.standin.calls("token");
    let replay = app.client.get(callback).send().await.unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    assert!(
        replay
            .text()
            .await
            .unwrap()
            .contains("Sign-in was interrupted")
    );
    assert_eq!(
        app.standin.calls("token"),
        exchanges,
        "the LMS was not asked"
    );
}

/// The `name=value` of a `Set-Cookie` header's value.
fn name_and_value(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

/// The pending-sign-in cookie `GET /` set, as `name=value`.
fn pending_cookie(response: &reqwest::Response) -> String {
    let set_cookie = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("profiles_signin_"))
        .expect("a pending sign-in cookie");
    name_and_value(set_cookie)
}

/// `GET /authorize/?{query}` from a browser that holds only `cookie` (`name=value`).
async fn callback_holding_only(app: &TestApp, query: &str, cookie: String) -> reqwest::Response {
    anonymous()
        .get(app.url.join(&format!("/authorize/?{query}")).unwrap())
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_tampered_pending_sign_in_cookie_is_refused_without_calling_the_lms() {
    let app = spawn_app().await;
    let start = anonymous().get(app.url.clone()).send().await.unwrap();
    let cookie = pending_cookie(&start);
    let state = query_param(&location(&start), "state");
    let (name, value) = cookie.split_once('=').unwrap();
    let mut bytes = value.as_bytes().to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
    let tampered = format!("{name}={}", String::from_utf8(bytes).unwrap());
    let response =
        callback_holding_only(&app, &format!("code=anything&state={state}"), tampered).await;
    let removed = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|v| v.to_str().unwrap().starts_with(name));
    assert_refused_before_the_lms(
        &app,
        response,
        StatusCode::BAD_REQUEST,
        "Sign-in was interrupted",
    )
    .await;
    assert!(removed, "the bad cookie is removed");
}

#[tokio::test]
async fn an_expired_pending_sign_in_cookie_is_refused_without_calling_the_lms() {
    let app = spawn_app().await;
    let pending = profiles::session::PendingSignIn {
        state: openedx_client::Secret::new("an-old-state"),
        pkce_verifier: openedx_client::Secret::new("verifier"),
        next: None,
        started_at: openedx_client::unix_now() - 601,
    };
    let set = app
        .state
        .pending
        .begin(&reqwest::header::HeaderMap::new(), &pending);
    let cookie = name_and_value(set[0].to_str().unwrap());
    let response = callback_holding_only(&app, "code=c&state=an-old-state", cookie).await;
    assert_refused_before_the_lms(
        &app,
        response,
        StatusCode::BAD_REQUEST,
        "Sign-in took too long",
    )
    .await;
}

#[tokio::test]
async fn head_of_a_callback_url_does_not_spend_the_code() {
    let (app, callback) = spawn_app_approved_at_lms().await;
    let head = app.client.head(callback.clone()).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(app.standin.calls("token"), 0, "the code was not exchanged");
    let get = app.client.get(callback).send().await.unwrap();
    assert_eq!(
        get.status(),
        StatusCode::SEE_OTHER,
        "the person's own click works"
    );
    assert_eq!(app.get("/profile/").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn static_files_and_probes_neither_read_nor_set_a_session_cookie() {
    let app = spawn_app_with(Options {
        vars: vec![("METRICS_PUBLIC", "true".into())],
        ..Options::default()
    })
    .await;
    app.sign_in().await;
    for path in [
        "/static/style.css",
        "/static/favicon.svg",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(
            response.headers().get(header::SET_COOKIE).is_none(),
            "{path} sets no cookie"
        );
    }
}

/// Every file of the app's database folder, as raw bytes.
fn database_bytes(app: &TestApp) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(app.db_path.parent().unwrap()).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn the_database_files_hold_neither_the_access_nor_the_refresh_token() {
    let app = spawn_app().await;
    app.standin.set_jwt_lifetime(Duration::from_secs(30));
    app.sign_in().await;
    // A refresh stores a rotated token too.
    app.post_with_csrf("/profile/reload").await;
    let issued = app.standin.issued();
    assert_eq!(issued.refresh_tokens.len(), 2);
    let bytes = database_bytes(&app);
    for secret in issued.access_tokens.iter().chain(&issued.refresh_tokens) {
        assert!(!contains(&bytes, secret), "a token is readable on disk");
    }
    assert_eq!(app.sessions_stored().await, 1);
}

#[tokio::test]
async fn the_raw_database_bytes_hold_neither_the_learners_email_nor_name() {
    let app = spawn_app().await;
    app.sign_in().await;
    app.post_with_csrf("/profile/reload").await;
    let bytes = database_bytes(&app);
    for personal in ["learner@example.com", "Ada Lovelace", "Lovelace"] {
        assert!(
            !contains(&bytes, personal),
            "{personal} is readable on disk"
        );
    }
    let csrf = app.csrf().await;
    assert!(
        !contains(&bytes, &csrf),
        "the CSRF token is readable on disk"
    );
}

#[tokio::test]
async fn a_key_rotation_keeps_people_signed_in_and_a_server_without_their_key_answers_503() {
    let old = profiles::keys::KeyRing::generate_key();
    let new = profiles::keys::KeyRing::generate_key();
    let mut app = spawn_app_with(Options {
        vars: vec![("SECRET_KEYS", old.clone())],
        ..Options::default()
    })
    .await;
    app.sign_in().await;

    app.vars
        .insert("SECRET_KEYS".into(), format!("{new},{old}"));
    app.restart().await;
    assert_eq!(app.get("/profile/").await.status(), StatusCode::OK);
    // A reload re-seals the session's record under the new key.
    app.post_with_csrf("/profile/reload").await;

    // The old key alone (a replica not yet given the new one): an operator's mistake, answered
    // with a 503 that keeps the cookie, never a sign-out.
    app.vars.insert("SECRET_KEYS".into(), old.clone());
    app.restart().await;
    let response = app.get("/profile/").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()[header::RETRY_AFTER], "60");
    assert!(response.headers().get(header::SET_COOKIE).is_none());
    assert!(response.text().await.unwrap().contains("still signed in"));
    assert_eq!(app.sessions_stored().await, 1);
    assert_eq!(crate::helpers::revoked_refresh_tokens(&app), 0);

    app.vars
        .insert("SECRET_KEYS".into(), format!("{new},{old}"));
    app.restart().await;
    assert_eq!(app.get("/profile/").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_rolling_rotation_across_two_replicas_keeps_every_session() {
    let old = profiles::keys::KeyRing::generate_key();
    let new = profiles::keys::KeyRing::generate_key();
    let mut a = spawn_app_with(Options {
        vars: vec![("SECRET_KEYS", old.clone())],
        ..Options::default()
    })
    .await;
    // Shorter than the refresh leeway: every page refreshes the token, which re-seals it too.
    a.standin.set_jwt_lifetime(Duration::from_secs(30));
    a.sign_in().await;
    let mut b;
    // Each phase: every replica rolled, then every session read (and re-sealed) on each of them.
    let phases = [
        // 1. The new key, last, everywhere: it opens, nothing is sealed with it yet.
        (format!("{old},{new}"), old.clone()),
        (format!("{old},{new}"), format!("{old},{new}")),
        // 2. The new key first: it seals, and every replica already opens it.
        (format!("{new},{old}"), format!("{old},{new}")),
        (format!("{new},{old}"), format!("{new},{old}")),
        // 3. The old key dropped, once nothing it sealed is alive (here: re-sealed by a reload).
        (new.clone(), format!("{new},{old}")),
        (new.clone(), new.clone()),
    ];
    for (i, (keys_a, keys_b)) in phases.iter().enumerate() {
        a.vars.insert("SECRET_KEYS".into(), keys_a.clone());
        a.restart().await;
        // Replaced, the previous one stops (dropped).
        b = a.replica_with("SECRET_KEYS", keys_b).await;
        for (replica, url) in [("a", a.url.clone()), ("b", b.url.clone())] {
            let response = a
                .client
                .get(url.join("/profile/").unwrap())
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::OK,
                "phase {i}, replica {replica}"
            );
            let reload = a.post_with_csrf("/profile/reload").await;
            assert_eq!(reload.status(), StatusCode::SEE_OTHER, "phase {i}");
        }
    }
    assert_eq!(crate::helpers::revoked_refresh_tokens(&a), 0);
}

fn short_idle(config: &mut profiles::config::Config) {
    config.session_idle = Duration::from_secs(3);
}

fn one_second_idle(config: &mut profiles::config::Config) {
    config.session_idle = Duration::from_secs(1);
}

#[tokio::test]
async fn an_active_reader_stays_signed_in_past_the_idle_time_without_a_write_per_request() {
    let app = spawn_signed_in_with(short_idle).await;
    let (mut requests, mut writes) = (0, 0);
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(7) {
        let response = app.get("/profile/").await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "after {:?}",
            started.elapsed()
        );
        requests += 1;
        writes += usize::from(response.headers().get(header::SET_COOKIE).is_some());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(writes > 0, "the expiry was pushed back");
    assert!(
        writes * 2 < requests,
        "{writes} writes for {requests} requests"
    );
}

#[tokio::test]
async fn an_idle_session_ends_on_time() {
    let app = spawn_signed_in_with(short_idle).await;
    assert_eq!(app.get("/profile/").await.status(), StatusCode::OK);
    let cookie = format!("profiles_session={}", app.session_cookie().unwrap());
    tokio::time::sleep(Duration::from_millis(3_600)).await;
    // The browser has dropped its cookie by now (Max-Age); the server must not honour it either.
    let response = anonymous()
        .get(app.url.join("/profile/").unwrap())
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[header::LOCATION], "/");
    assert!(
        response.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0"),
        "the stale cookie is cleared"
    );
}

#[tokio::test]
async fn an_expired_session_has_its_refresh_token_revoked_before_its_row_goes() {
    let app = spawn_signed_in_with(one_second_idle).await;
    assert_eq!(app.standin.live_refresh_tokens(), 1);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let reaped = profiles::tokens::reap_expired(&app.state).await.unwrap();
    assert_eq!(
        reaped,
        profiles::tokens::Reaped {
            sessions: 1,
            revoked: 1,
            failed: 0
        }
    );
    assert_eq!(app.standin.live_refresh_tokens(), 0);
    assert_eq!(app.sessions_stored().await, 0);
    let again = profiles::tokens::reap_expired(&app.state).await.unwrap();
    assert_eq!(again.sessions, 0);
}

#[tokio::test]
async fn an_expired_session_goes_even_when_the_lms_cannot_revoke_its_token() {
    let app = spawn_signed_in_with(one_second_idle).await;
    app.standin.set_fault(
        "revoke",
        Some(openedx_standin::Fault::Respond {
            status: 503,
            content_type: "text/html",
            body: "down".into(),
        }),
    );
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let reaped = profiles::tokens::reap_expired(&app.state).await.unwrap();
    assert_eq!(reaped.failed, 1);
    assert_eq!(app.sessions_stored().await, 0);
}

/// A signed-in session left to expire (one-second idle time) and claimed by a reaper until
/// `now + 60`: the app, the session's key and `now`.
async fn an_expired_session_claimed_by_a_reaper() -> (TestApp, String, i64) {
    let app = spawn_signed_in_with(one_second_idle).await;
    let (key, _) = app.stored_session().await;
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let now = openedx_client::unix_now();
    let claimed = app
        .state
        .store
        .claim_expired_sessions(now, now + 60, 10)
        .await
        .unwrap();
    assert_eq!(claimed, std::slice::from_ref(&key));
    (app, key, now)
}

/// The reaper of [`an_expired_session_claimed_by_a_reaper`] ends the session `key` at `now`:
/// the token it keeps to revoke, if any.
async fn the_reaper_deletes(app: &TestApp, key: &str, now: i64) -> Option<openedx_client::Token> {
    let schedule = profiles::store::Schedule {
        next_attempt_at: now + 60,
        give_up_at: now + 3600,
    };
    let store = &app.state.store;
    let kept = store.end_reaped_session(key, now + 60, schedule, now).await;
    kept.unwrap().map(|kept| store.open_kept(&kept).unwrap())
}

#[tokio::test]
async fn a_refresh_cannot_sneak_a_new_token_past_the_reaper() {
    let (app, key, now) = an_expired_session_claimed_by_a_reaper().await;
    // A request that read the session just before it expired tries to refresh its token now.
    assert!(
        !app.state
            .store
            .claim_refresh(&key, 0, now, now + 30)
            .await
            .unwrap(),
        "an expired session's token is not refreshed"
    );
    let taken = the_reaper_deletes(&app, &key, now).await;
    assert!(taken.is_some(), "the reaper gets the token to revoke");
}

#[tokio::test]
async fn a_session_used_again_is_not_deleted_by_a_reaper_that_claimed_it() {
    let (app, key, now) = an_expired_session_claimed_by_a_reaper().await;
    // The session's expiry is pushed back by a request that read it just in time.
    app.state
        .store
        .extend_session(&key, now + 3600, now - 10)
        .await
        .unwrap();
    let taken = the_reaper_deletes(&app, &key, now).await;
    assert!(taken.is_none());
    assert_eq!(app.sessions_stored().await, 1);
}

#[tokio::test]
async fn a_flood_of_made_up_pending_cookies_gets_a_bounded_answer() {
    let app = spawn_app().await;
    let cookies: Vec<String> = (0..200)
        .map(|i| format!("profiles_signin_{i:016x}=junk"))
        .collect();
    let response = anonymous()
        .get(app.url.clone())
        .header(header::COOKIE, cookies.join("; "))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let set_cookies = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .count();
    assert!(set_cookies <= 17, "{set_cookies} Set-Cookie headers");
}

#[cfg(unix)]
#[tokio::test]
async fn the_server_creates_its_database_files_private_under_umask_022() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("profiles-umask-{:016x}", rand::random::<u64>()));
    let db = dir.join("data").join("profiles.db");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 022; exec \"$0\" serve")
        .arg(env!("CARGO_BIN_EXE_profiles"))
        .current_dir(std::env::temp_dir())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LMS_URL", "http://127.0.0.1:9/")
        .env("LMS_CLIENT_ID", "x")
        .env("LMS_CLIENT_SECRET", "y")
        .env("BIND", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ready = format!("http://127.0.0.1:{port}/healthz");
    for _ in 0..100 {
        if reqwest::get(&ready).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mode = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777);
    let modes: Vec<(String, u32)> = ["", "-wal", "-shm", ".key"]
        .iter()
        .filter_map(|suffix| {
            let file = dir.join(format!("data/profiles.db{suffix}"));
            mode(&file).ok().map(|m| (file.display().to_string(), m))
        })
        .collect();
    let folder = mode(&dir.join("data")).unwrap_or(0);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        modes.len() >= 2,
        "the database and its key exist: {modes:?}"
    );
    for (file, m) in modes {
        assert_eq!(m, 0o600, "{file}");
    }
    assert_eq!(folder, 0o700, "folder");
}
