//! Revocations that survive faults: a revocation the LMS does not confirm is kept, sealed, and
//! retried until it does, by this process after a restart or by another replica; a sign-in that
//! cannot be stored revokes its token.

use std::time::{Duration, Instant};

use openedx_standin::Fault;
use reqwest::StatusCode;

use crate::helpers::{Options, TestApp, revoked_refresh_tokens, spawn_app_with};

/// An app signed in, whose kept revocations are retried at least every second.
async fn signed_in_with_fast_retries() -> TestApp {
    let app = spawn_app_with(Options {
        vars: vec![("REVOCATION_RETRY_MAX_SECS", "1".into())],
        ..Options::default()
    })
    .await;
    app.sign_in().await;
    app
}

/// The LMS's revocation endpoint down, as behind a proxy whose upstream is gone.
fn lms_down(app: &TestApp) {
    let fault = Fault::Respond {
        status: 503,
        content_type: "text/html",
        body: "<html><body><h1>503 Service Unavailable</h1></body></html>".into(),
    };
    app.standin.set_fault("revoke", Some(fault));
}

fn lms_back(app: &TestApp) {
    app.standin.set_fault("revoke", None);
}

/// Revocation requests the LMS answered with 200: confirmed.
fn confirmed_revocations(app: &TestApp) -> usize {
    app.standin
        .journal()
        .iter()
        .filter(|e| e.path.starts_with("/oauth2/revoke_token") && e.status == 200)
        .count()
}

async fn kept(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM revocations")
        .fetch_one(&mut app.database().await)
        .await
        .unwrap()
}

/// Waits (up to `limit`) until the LMS has no live refresh token left.
async fn until_revoked_at_the_lms(app: &TestApp, limit: Duration) -> Duration {
    let started = Instant::now();
    while app.standin.live_refresh_tokens() > 0 {
        assert!(
            started.elapsed() < limit,
            "the refresh token is still alive at the LMS after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

/// Signs out while the LMS cannot revoke: the session ends here, the token is kept.
async fn sign_out_during_the_outage(app: &TestApp) {
    lms_down(app);
    let response = app.post_with_csrf("/logout").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.sessions_stored().await, 0);
    assert_eq!(kept(app).await, 1, "the revocation is kept");
    assert_eq!(app.standin.live_refresh_tokens(), 1);
}

#[tokio::test]
async fn a_sign_out_during_a_30_second_lms_outage_is_revoked_once_the_lms_is_back() {
    let app = signed_in_with_fast_retries().await;
    sign_out_during_the_outage(&app).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let tries_during_the_outage = app.standin.calls("revoke");
    assert!(
        (3..=40).contains(&tries_during_the_outage),
        "retried with back-off, not hammered: {tries_during_the_outage}"
    );
    assert_eq!(app.standin.live_refresh_tokens(), 1);
    lms_back(&app);
    let took = until_revoked_at_the_lms(&app, Duration::from_secs(5)).await;
    eprintln!("revoked {took:?} after the LMS came back");
    assert_eq!(confirmed_revocations(&app), 1, "exactly once");
    // Confirmed, the row goes (just after the LMS answered).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(kept(&app).await, 0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(confirmed_revocations(&app), 1, "never tried again");
}

#[tokio::test]
async fn a_kept_revocation_is_confirmed_after_a_restart() {
    let mut app = signed_in_with_fast_retries().await;
    sign_out_during_the_outage(&app).await;
    app.stop();
    lms_back(&app);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(app.standin.live_refresh_tokens(), 1, "nobody is running");
    app.restart().await;
    until_revoked_at_the_lms(&app, Duration::from_secs(15)).await;
    assert_eq!(confirmed_revocations(&app), 1);
}

#[tokio::test]
async fn a_revocation_kept_by_one_replica_is_confirmed_by_another() {
    let app = signed_in_with_fast_retries().await;
    let other = app.replica_with("REVOCATION_RETRY_MAX_SECS", "1").await;
    sign_out_during_the_outage(&app).await;
    app.stop();
    lms_back(&app);
    until_revoked_at_the_lms(&app, Duration::from_secs(15)).await;
    assert_eq!(confirmed_revocations(&app), 1);
    drop(other);
}

/// The database refuses session rows (a full disk, a lost connection...), and nothing else.
async fn refuse_session_rows(app: &TestApp) {
    sqlx::query(
        "CREATE TRIGGER refuse_sessions BEFORE INSERT ON sessions
         BEGIN SELECT RAISE(ABORT, 'disk full'); END",
    )
    .execute(&mut app.database().await)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_sign_in_whose_session_cannot_be_written_revokes_its_token() {
    let app = spawn_app_with(Options::default()).await;
    refuse_session_rows(&app).await;
    let callback = app.approved_callback().await;
    let response = app.client.get(callback).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Something went wrong")
    );
    assert_eq!(app.sessions_stored().await, 0);
    assert_eq!(revoked_refresh_tokens(&app), 1);
    assert_eq!(app.standin.live_refresh_tokens(), 0);
}

#[tokio::test]
async fn a_token_that_can_be_neither_stored_nor_revoked_is_kept_until_the_lms_confirms() {
    let app = spawn_app_with(Options {
        vars: vec![("REVOCATION_RETRY_MAX_SECS", "1".into())],
        ..Options::default()
    })
    .await;
    refuse_session_rows(&app).await;
    lms_down(&app);
    let callback = app.approved_callback().await;
    let response = app.client.get(callback).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(kept(&app).await, 1);
    lms_back(&app);
    until_revoked_at_the_lms(&app, Duration::from_secs(15)).await;
}
