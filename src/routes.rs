//! The app's pages. Each submodule holds its handlers and the templates they render.

pub mod assets;
pub mod profile;
pub mod signin;
pub mod signout;

use axum::{
    Router,
    routing::{get, post},
};

use crate::{AppState, error::AppError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(signin::start))
        .route("/authorize/", get(signin::callback))
        .route("/profile/", get(profile::show))
        .route("/signout/", post(signout::sign_out))
        .route("/signed-out/", get(signout::signed_out))
        .route(assets::STYLESHEET_PATH, get(assets::stylesheet))
        .route(assets::FAVICON_PATH, get(assets::favicon))
        .fallback(|| async { AppError::NotFound })
}
