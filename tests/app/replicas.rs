//! Several replicas on one database server: nothing may assume one process. Every test here runs
//! on PostgreSQL and on MySQL (MariaDB here), each with a fresh database on the server its
//! variable names: `PROFILES_TEST_POSTGRES_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`)
//! and `PROFILES_TEST_MYSQL_URL` (e.g. `mysql://root@127.0.0.1:3306/test`); `.ci/run` sets both.
//!
//! Run with `cargo test --locked --test app -- --ignored replicas::` (or `replicas::mysql::`).

use std::time::Duration;

use crate::helpers::{Options, TestApp, location, spawn_app_with};
use openedx_standin::Fault;
use profiles::{AppState, config::Config};
use reqwest::{StatusCode, header};
use sqlx::Connection;
use url::Url;

/// A database server the tests may create databases on.
#[derive(Clone, Copy)]
pub enum Backend {
    Postgres,
    MySql,
}

impl Backend {
    fn variable(self) -> &'static str {
        match self {
            Self::Postgres => "PROFILES_TEST_POSTGRES_URL",
            Self::MySql => "PROFILES_TEST_MYSQL_URL",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::MySql => "mysql",
        }
    }

    fn server(self) -> String {
        let variable = self.variable();
        let example = match self {
            Self::Postgres => "postgres://postgres@127.0.0.1:5432/test",
            Self::MySql => "mysql://root@127.0.0.1:3306/test",
        };
        std::env::var(variable).unwrap_or_else(|_| {
            panic!(
                "{variable} is not set: point it at a server the tests may create databases on, \
                 e.g. {variable}={example}"
            )
        })
    }

    /// A new, empty database on the test server; its URL.
    async fn fresh_database(self) -> String {
        let server = self.server();
        let name = format!("profiles_test_{:016x}", rand::random::<u64>());
        let create = sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"));
        let variable = self.variable();
        match self {
            Self::Postgres => {
                let mut admin = sqlx::PgConnection::connect(&server)
                    .await
                    .unwrap_or_else(|e| panic!("{variable}={server}: {e}"));
                sqlx::query(create).execute(&mut admin).await.unwrap();
            }
            Self::MySql => {
                let mut admin = sqlx::MySqlConnection::connect(&server)
                    .await
                    .unwrap_or_else(|e| panic!("{variable}={server}: {e}"));
                sqlx::query(create).execute(&mut admin).await.unwrap();
            }
        }
        let mut url = Url::parse(&server).unwrap();
        url.set_path(&format!("/{name}"));
        url.to_string()
    }

    /// The one number `sql` selects in the database at `url`.
    async fn count(self, url: &str, sql: &'static str) -> i64 {
        match self {
            Self::Postgres => {
                let mut db = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut db).await.unwrap()
            }
            Self::MySql => {
                let mut db = sqlx::MySqlConnection::connect(url).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut db).await.unwrap()
            }
        }
    }

    /// The texts `sql` selects in the database at `url`.
    async fn texts(self, url: &str, sql: &'static str) -> Vec<String> {
        match self {
            Self::Postgres => {
                let mut db = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query_scalar(sql).fetch_all(&mut db).await.unwrap()
            }
            Self::MySql => {
                let mut db = sqlx::MySqlConnection::connect(url).await.unwrap();
                sqlx::query_scalar(sql).fetch_all(&mut db).await.unwrap()
            }
        }
    }
}

/// One key for every replica of a test, as an operator sets the same `SECRET_KEYS` on each.
fn shared_key() -> String {
    profiles::keys::KeyRing::generate_key()
}

async fn app_on(backend: Backend) -> TestApp {
    app_on_with(backend, None).await
}

async fn app_on_with(backend: Backend, tweak: Option<fn(&mut Config)>) -> TestApp {
    spawn_app_with(Options {
        vars: vec![
            ("DATABASE_URL", backend.fresh_database().await),
            ("SECRET_KEYS", shared_key()),
        ],
        tweak,
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

/// The same tests for each backend, in a module named after it.
macro_rules! on_every_backend {
    ($($backend:ident: $value:expr),*) => {$(
        mod $backend {
            use super::*;

            const BACKEND: Backend = $value;

        #[tokio::test]
        #[ignore = "needs a database server; run with --ignored (see the module doc)"]
        async fn replicas_starting_together_migrate_once() {
            let url = BACKEND.fresh_database().await;
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
                assert_eq!(state.store.backend(), BACKEND.name());
            }
        }

        #[tokio::test]
        #[ignore = "needs a database server; run with --ignored (see the module doc)"]
        async fn a_sign_in_started_on_one_replica_completes_on_another() {
            let app = app_on(BACKEND).await;
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
        #[ignore = "needs a database server; run with --ignored (see the module doc)"]
        async fn a_sign_out_on_one_replica_ends_the_session_on_another() {
            let app = app_on(BACKEND).await;
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
        #[ignore = "needs a database server; run with --ignored (see the module doc)"]
        async fn the_lms_front_channel_call_on_one_replica_ends_a_session_signed_in_on_another() {
            let app = app_on(BACKEND).await;
            let (b, _task) = app.replica().await;
            app.sign_in().await; // on A
            let from_lms = b.join("/frontchannel-logout/?no_redirect=1").unwrap();
            // On B, with the Fetch Metadata of the LMS logout page's iframe on the app's site.
            let response = app
                .client
                .get(from_lms)
                .header("sec-fetch-dest", "iframe")
                .header("sec-fetch-mode", "navigate")
                .header("sec-fetch-site", "same-site")
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(app.standin.calls("revoke"), 1);
            assert_eq!(app.standin.live_refresh_tokens(), 0);
            let on_a = app.get("/profile/").await;
            assert_eq!(on_a.status(), StatusCode::SEE_OTHER, "signed out on A too");
            assert_eq!(on_a.headers()[header::LOCATION], "/");
        }

        #[tokio::test]
        #[ignore = "needs a database server; run with --ignored (see the module doc)"]
        async fn a_refresh_raced_by_two_replicas_happens_once() {
            let app = app_on(BACKEND).await;
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
        #[ignore = "needs a database server; run with --ignored (see the module doc)"]
        async fn signed_in_sessions_and_profiles_live_in_the_database() {
            let app = app_on(BACKEND).await;
            app.sign_in().await;
            let url = &app.vars["DATABASE_URL"];
            let sessions = BACKEND.count(url, "SELECT COUNT(*) FROM sessions").await;
            let tokens = BACKEND.texts(url, "SELECT token FROM sessions").await;
            let issued = app.standin.issued();
            let count = BACKEND
                .count(url, "SELECT sign_in_count FROM profiles WHERE username = 'learner'")
                .await;
            assert_eq!(sessions, 1);
            assert_eq!(tokens.len(), 1);
            for secret in issued.access_tokens.iter().chain(&issued.refresh_tokens) {
                assert!(!tokens[0].contains(secret.as_str()), "tokens are sealed");
            }
            assert_eq!(count, 1);
        }

    #[tokio::test]
    #[ignore = "needs a database server; run with --ignored (see the module doc)"]
    async fn replicas_reaping_together_end_an_expired_session_and_revoke_its_token_once() {
        let app = app_on_with(
            BACKEND,
            Some(|config| config.session_idle = Duration::from_secs(1)),
        )
        .await;
        app.sign_in().await;
        let mut other = Config::from_vars(&app.vars).unwrap();
        other.session_idle = Duration::from_secs(1);
        let other = AppState::new(other).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2_100)).await;

        let (a, b) = tokio::join!(
            profiles::tokens::reap_expired(&app.state),
            profiles::tokens::reap_expired(&other)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.revoked + b.revoked, 1, "{a:?} {b:?}");
        assert_eq!(app.standin.calls("revoke"), 1);
        assert_eq!(app.standin.live_refresh_tokens(), 0);
        let url = &app.vars["DATABASE_URL"];
        assert_eq!(BACKEND.count(url, "SELECT COUNT(*) FROM sessions").await, 0);
    }

    #[tokio::test]
    #[ignore = "needs a database server; run with --ignored (see the module doc)"]
    async fn a_revocation_the_lms_did_not_confirm_is_retried_by_another_replica() {
        let app = spawn_app_with(Options {
            vars: vec![
                ("DATABASE_URL", BACKEND.fresh_database().await),
                ("SECRET_KEYS", shared_key()),
                ("REVOCATION_RETRY_MAX_SECS", "1".into()),
            ],
            ..Options::default()
        })
        .await;
        let other = app.replica_with("REVOCATION_RETRY_MAX_SECS", "1").await;
        app.sign_in().await;
        let down = Fault::Respond {
            status: 503,
            content_type: "text/html",
            body: "<h1>503</h1>".into(),
        };
        app.standin.set_fault("revoke", Some(down));
        assert_eq!(app.post_with_csrf("/logout").await.status(), StatusCode::SEE_OTHER);
        let url = &app.vars["DATABASE_URL"];
        assert_eq!(BACKEND.count(url, "SELECT COUNT(*) FROM revocations").await, 1);
        app.stop();
        tokio::time::sleep(Duration::from_secs(3)).await;
        app.standin.set_fault("revoke", None);
        let started = std::time::Instant::now();
        while app.standin.live_refresh_tokens() > 0 {
            assert!(started.elapsed() < Duration::from_secs(15), "never revoked");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(BACKEND.count(url, "SELECT COUNT(*) FROM revocations").await, 0);
        drop(other);
    }

    #[tokio::test]
    #[ignore = "needs a database server; run with --ignored (see the module doc)"]
    async fn with_the_database_gone_pages_and_readyz_answer_503_within_a_second() {
        database_outage(BACKEND, crate::tcp_cut::TcpCut::cut).await;
    }

    #[tokio::test]
    #[ignore = "needs a database server; run with --ignored (see the module doc)"]
    async fn with_the_database_silent_pages_and_readyz_answer_503_within_a_second() {
        database_outage(BACKEND, crate::tcp_cut::TcpCut::hold).await;
    }
        }
    )*};
}

on_every_backend!(postgres: Backend::Postgres, mysql: Backend::MySql);

/// A signed-in app whose database on `backend` goes away (`outage` on a relay in front of it)
/// for four seconds, then returns: pages and `/readyz` answer 503 within a second throughout, and
/// the pages answer again soon after, with nobody signed out.
async fn database_outage(backend: Backend, outage: fn(&crate::tcp_cut::TcpCut)) {
    let mut url = Url::parse(&backend.fresh_database().await).unwrap();
    let server = (url.host_str().unwrap(), url.port().unwrap());
    let server = tokio::net::lookup_host(server)
        .await
        .unwrap()
        .next()
        .unwrap();
    let relay = crate::tcp_cut::TcpCut::spawn(server).await;
    url.set_port(Some(relay.addr.port())).unwrap();
    let app = spawn_app_with(Options {
        vars: vec![
            ("DATABASE_URL", url.to_string()),
            ("SECRET_KEYS", shared_key()),
        ],
        ..Options::default()
    })
    .await;
    app.sign_in().await;
    assert_eq!(app.get("/profile/").await.status(), StatusCode::OK);

    outage(&relay);
    // The relay notices within 20 ms.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    // /readyz, asked every 50 ms beside the pages: ready until the database watcher's next probe
    // fails (a probe every 500 ms, bounded by DATABASE_TIMEOUT_MS), not ready from then on.
    let probes = {
        let readyz = app.url.join("/readyz").unwrap();
        tokio::spawn(async move {
            let client = crate::helpers::anonymous();
            let mut not_ready_since = None;
            while started.elapsed() < Duration::from_secs(4) {
                let asked = std::time::Instant::now();
                let ready = client.get(readyz.clone()).send().await.unwrap().status();
                let took = asked.elapsed();
                assert!(took < Duration::from_secs(1), "/readyz took {took:?}");
                match ready {
                    StatusCode::OK => assert!(not_ready_since.is_none(), "ready again"),
                    StatusCode::SERVICE_UNAVAILABLE => {
                        not_ready_since.get_or_insert(started.elapsed());
                    }
                    other => panic!("/readyz answered {other}"),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            not_ready_since
        })
    };
    let mut pages = 0;
    while started.elapsed() < Duration::from_secs(4) {
        let asked = std::time::Instant::now();
        let page = app.get("/profile/").await;
        let took = asked.elapsed();
        assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(page.headers()[header::RETRY_AFTER], "5");
        assert!(took < Duration::from_secs(1), "the page took {took:?}");
        assert!(page.text().await.unwrap().contains("Briefly unavailable"));
        pages += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(pages > 10, "{pages} pages in four seconds");
    let not_ready_since = probes.await.unwrap().expect("/readyz said not ready");
    assert!(
        not_ready_since < Duration::from_secs(2),
        "{not_ready_since:?}"
    );
    eprintln!("/readyz said not ready {not_ready_since:?} into the outage");

    relay.restore();
    let back = std::time::Instant::now();
    while app.get("/profile/").await.status() != StatusCode::OK {
        assert!(
            back.elapsed() < Duration::from_secs(3),
            "not back after {:?}",
            back.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "pages were 200 again {:?} after the database returned",
        back.elapsed()
    );
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    assert_eq!(
        app.sessions_stored_on(backend).await,
        1,
        "nobody was signed out"
    );
}

impl TestApp {
    /// How many sessions the database of this app (on `backend`) holds.
    async fn sessions_stored_on(&self, backend: Backend) -> i64 {
        let url = self.vars["DATABASE_URL"].clone();
        backend.count(&url, "SELECT COUNT(*) FROM sessions").await
    }
}
