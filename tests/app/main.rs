//! The app's integration tests, in one binary (linking the app, the stand-in and reqwest once):
//! the real router over HTTP against the LMS stand-in, each test with its own app, database and
//! cookie jar ([`helpers`]).
//!
//! `cargo test --workspace --locked` runs them all but the ignored ones, which need a service of
//! the machine: `browser` (Chromium and chromedriver) and `postgres` (a PostgreSQL server named by
//! `PROFILES_TEST_POSTGRES_URL`); `.ci/run` provides both and runs
//! `cargo test --locked --test app -- --ignored`.

mod browser;
mod failures;
mod helpers;
mod layering;
mod lms_signout;
mod logs;
mod operations;
mod postgres;
mod proxy;
mod sessions;
mod signin;
mod startup;
mod token_life;
