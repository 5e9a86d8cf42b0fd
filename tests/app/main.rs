//! The app's integration tests, in one binary (linking the app, the stand-in and reqwest once):
//! the real router over HTTP against the LMS stand-in, each test with its own app, database and
//! cookie jar ([`helpers`]).
//!
//! `cargo test --workspace --locked` runs them all but the ignored ones, which need a service of
//! the machine: `browser` (Chromium and chromedriver) and `replicas` (PostgreSQL and MySQL servers
//! named by `PROFILES_TEST_POSTGRES_URL` and `PROFILES_TEST_MYSQL_URL`); `.ci/run` provides them
//! and runs `cargo test --locked --test app -- --ignored`.
//!
//! The crate is `#![cfg(test)]`, as a test binary is anyway: clippy then reads the shared helpers
//! as test code too, where `unwrap` and `expect` are the way to fail (clippy.toml).

#![cfg(test)]

mod browser;
mod connections;
mod failures;
mod helpers;
mod layering;
mod lms_signout;
mod logs;
mod operations;
mod proxy;
mod replicas;
mod revocations;
mod sessions;
mod signin;
mod startup;
mod tcp_cut;
mod token_life;
