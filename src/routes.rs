//! The app's pages: which handler answers which path. Each submodule holds its handlers and the
//! templates they render; none calls another (what pages share is below them, in
//! [`crate::signed_in`], [`crate::session`] and [`crate::tokens`]).

pub mod assets;
pub mod health;
pub mod profile;
pub mod signin;
pub mod signout;

use axum::{
    Router,
    routing::{get, post},
};

use crate::{
    error::AppError,
    state::AppState,
    templates::{FAVICON_PATH, STYLESHEET_PATH},
};

/// Where the LMS's logout page loads this app in a hidden iframe (`IDA_LOGOUT_URI_LIST`, with
/// `?no_redirect=1` appended), to end the session of the person signing out there.
pub const FRONTCHANNEL_LOGOUT_PATH: &str = "/frontchannel-logout/";

/// The pages, which run inside the session layer.
pub fn pages() -> Router<AppState> {
    Router::new()
        .route("/", get(signin::start))
        .route(
            "/authorize/",
            get(signin::callback).head(signin::callback_head),
        )
        .route("/profile/", get(profile::show))
        .route("/profile/reload", post(profile::reload))
        .route("/logout", post(signout::logout))
        .route("/signed-out/", get(signout::signed_out))
        .route(
            FRONTCHANNEL_LOGOUT_PATH,
            get(signout::frontchannel).head(signout::frontchannel_head),
        )
        .fallback(|| async { AppError::NotFound })
        .method_not_allowed_fallback(|| async { AppError::MethodNotAllowed })
}

/// Static files and probes: outside the session layer, so they read no cookie, set none, and
/// never touch the database for a session.
pub fn outside_sessions() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route(STYLESHEET_PATH, get(assets::stylesheet))
        .route(FAVICON_PATH, get(assets::favicon))
}
