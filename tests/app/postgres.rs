//! Several replicas on one PostgreSQL: nothing may assume one process. Each test gets a fresh
//! database on the server named by `PROFILES_TEST_POSTGRES_URL` (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`); `.ci/run` sets it.
//!
//! Run with `PROFILES_TEST_POSTGRES_URL=... cargo test --locked --test postgres -- --ignored`.

use std::time::Duration;

use crate::helpers::{Options, TestApp, location, spawn_app_with};
use openedx_standin::Fault;
use profiles::{AppState, config::Config};
use reqwest::{StatusCode, header};
use sqlx::{Connection, PgConnection};
use url::Url;

const VARIABLE: &str = "PROFILES_TEST_POSTGRES_URL";

/// A new, empty database on the test server; its URL.
async fn fresh_database() -> String {
    let server = std::env::var(VARIABLE).unwrap_or_else(|_| {
        panic!(
            "{VARIABLE} is not set: point it at a PostgreSQL server the tests may create \
             databases on, e.g. {VARIABLE}=postgres://postgres@127.0.0.1:5432/test"
        )
    });
    let mut admin = PgConnection::connect(&server)
        .await
        .unwrap_or_else(|e| panic!("{VARIABLE}={server}: cannot connect: {e}"));
    let name = format!("profiles_test_{:016x}", rand::random::<u64>());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let mut url = Url::parse(&server).unwrap();
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// One key for every replica of a test, as an operator sets the same `SECRET_KEYS` on each.
fn shared_key() -> String {
    profiles::keys::KeyRing::generate_key()
}

async fn app_on_postgres() -> TestApp {
    spawn_app_with(Options {
        vars: vec![
            ("DATABASE_URL", fresh_database().await),
            ("SECRET_KEYS", shared_key()),
        ],
        ..Options::default()
    })
    .await
}

/// `url` moved to another replica's address.
fn on(replica: &Url, url: &Url) -> Url {
    let mut moved = url.clone();
    moved.set_port(replica.port()).unwrap();
    moved
}

#[tokio::test]
#[ignore = "needs PostgreSQL; run with --ignored and PROFILES_TEST_POSTGRES_URL (see the README)"]
async fn replicas_starting_together_migrate_once() {
    let url = fresh_database().await;
    let key = shared_key();
    let vars = |url: &str| {
        [
            ("LMS_URL", "http://127.0.0.1:9/"),
            ("LMS_CLIENT_ID", "x"),
            ("LMS_CLIENT_SECRET", "y"),
            ("DATABASE_URL", url),
            ("SECRET_KEYS", key.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    };
    let starts = (0..4).map(|_| {
        let config = Config::from_vars(&vars(&url)).unwrap();
        tokio::spawn(AppState::new(config))
    });
    for start in starts.collect::<Vec<_>>() {
        let state = start.await.unwrap().expect("every replica starts");
        state.store.check().await.expect("fully migrated");
        assert_eq!(state.store.backend(), "postgres");
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL; run with --ignored and PROFILES_TEST_POSTGRES_URL (see the README)"]
async fn a_sign_in_started_on_one_replica_completes_on_another() {
    let app = app_on_postgres().await;
    let (b, _task) = app.replica().await;

    let authorize = app.start_sign_in().await; // on A
    let callback = app.approve_at_lms(authorize).await;
    let done = app.client.get(on(&b, &callback)).send().await.unwrap(); // on B
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(done.headers()[header::LOCATION], "/profile/");

    for replica in [&app.url, &b] {
        let profile = app
            .client
            .get(replica.join("/profile/").unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(profile.status(), StatusCode::OK, "{replica}");
        assert!(profile.text().await.unwrap().contains("Ada Lovelace"));
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL; run with --ignored and PROFILES_TEST_POSTGRES_URL (see the README)"]
async fn a_sign_out_on_one_replica_ends_the_session_on_another() {
    let app = app_on_postgres().await;
    let (b, _task) = app.replica().await;
    app.sign_in().await; // on A
    let csrf = app.csrf().await;
    let out = app
        .client
        .post(b.join("/logout").unwrap())
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&out).path(), "/signed-out/");
    assert_eq!(app.standin.calls("revoke"), 1);
    let on_a = app.get("/profile/").await;
    assert_eq!(on_a.status(), StatusCode::SEE_OTHER, "signed out on A too");
    assert_eq!(on_a.headers()[header::LOCATION], "/");
}

#[tokio::test]
#[ignore = "needs PostgreSQL; run with --ignored and PROFILES_TEST_POSTGRES_URL (see the README)"]
async fn the_lms_front_channel_call_on_one_replica_ends_a_session_signed_in_on_another() {
    let app = app_on_postgres().await;
    let (b, _task) = app.replica().await;
    app.sign_in().await; // on A
    let from_lms = b.join("/frontchannel-logout/?no_redirect=1").unwrap();
    let response = app.client.get(from_lms).send().await.unwrap(); // on B
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.standin.calls("revoke"), 1);
    assert_eq!(app.standin.live_refresh_tokens(), 0);
    let on_a = app.get("/profile/").await;
    assert_eq!(on_a.status(), StatusCode::SEE_OTHER, "signed out on A too");
    assert_eq!(on_a.headers()[header::LOCATION], "/");
}

#[tokio::test]
#[ignore = "needs PostgreSQL; run with --ignored and PROFILES_TEST_POSTGRES_URL (see the README)"]
async fn a_refresh_raced_by_two_replicas_happens_once() {
    let app = app_on_postgres().await;
    let (b, _task) = app.replica().await;
    app.standin.set_jwt_lifetime(Duration::from_secs(30));
    app.sign_in().await;
    app.standin.set_jwt_lifetime(Duration::from_secs(3600));
    let csrf = app.csrf().await;
    app.standin
        .set_fault("token", Some(Fault::Delay(Duration::from_millis(300))));

    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let url = if i % 2 == 0 { &app.url } else { &b };
            tokio::spawn(
                app.client
                    .post(url.join("/profile/reload").unwrap())
                    .form(&[("csrf", csrf.as_str())])
                    .send(),
            )
        })
        .collect();
    for task in tasks {
        let response = task.await.unwrap().unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(response.headers()[header::LOCATION], "/profile/");
    }
    let refreshes = app
        .standin
        .token_requests()
        .iter()
        .filter(|r| r.field("grant_type") == Some("refresh_token"))
        .count();
    assert_eq!(refreshes, 1);
    assert_eq!(app.standin.live_refresh_tokens(), 1);
}

#[tokio::test]
#[ignore = "needs PostgreSQL; run with --ignored and PROFILES_TEST_POSTGRES_URL (see the README)"]
async fn signed_in_sessions_and_profiles_live_in_postgres() {
    let app = app_on_postgres().await;
    app.sign_in().await;
    let mut db = PgConnection::connect(&app.vars["DATABASE_URL"])
        .await
        .unwrap();
    let sessions: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
        .fetch_one(&mut db)
        .await
        .unwrap();
    let tokens: Vec<String> = sqlx::query_scalar("SELECT token FROM sessions")
        .fetch_all(&mut db)
        .await
        .unwrap();
    let issued = app.standin.issued();
    let count: i64 =
        sqlx::query_scalar("SELECT sign_in_count FROM profiles WHERE username = 'learner'")
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!(sessions, 1);
    assert_eq!(tokens.len(), 1);
    for secret in issued.access_tokens.iter().chain(&issued.refresh_tokens) {
        assert!(!tokens[0].contains(secret.as_str()), "tokens are sealed");
    }
    assert_eq!(count, 1);
}
