//! The app's integration tests, in one binary (linking the app, the stand-in and reqwest once):
//! the real router over HTTP against the LMS stand-in, each test with its own app, database and
//! cookie jar ([`helpers`]).
//!
//! `cargo test --workspace --locked` runs them all but the ignored ones, which need a service of
//! the machine: `browser` (Chromium and chromedriver) and `replicas` (PostgreSQL and MySQL servers
//! named by `PROFILES_TEST_POSTGRES_URL` and `PROFILES_TEST_MYSQL_URL`); `.ci/run` provides them
//! and runs `cargo test --locked --test app -- --ignored`.
//!
//! Every module is `#[cfg(test)]`, as this binary is: clippy then reads the shared helpers as
//! test code, where `unwrap` and `expect` are the way to fail (clippy.toml).

#[cfg(test)]
mod browser;
#[cfg(test)]
mod failures;
#[cfg(test)]
mod helpers;
#[cfg(test)]
mod layering;
#[cfg(test)]
mod lms_signout;
#[cfg(test)]
mod logs;
#[cfg(test)]
mod operations;
#[cfg(test)]
mod proxy;
#[cfg(test)]
mod replicas;
#[cfg(test)]
mod sessions;
#[cfg(test)]
mod signin;
#[cfg(test)]
mod startup;
#[cfg(test)]
mod token_life;
