//! The app's pages. Each submodule holds its handlers and the templates they render.

pub mod assets;
pub mod health;
pub mod profile;
pub mod signin;
pub mod signout;

use axum::{
    Router,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};

use crate::{
    AppState,
    error::AppError,
    session::{AppSession, Ended, Presence, SignedIn},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(signin::start))
        .route("/authorize/", get(signin::callback))
        .route("/profile/", get(profile::show))
        .route("/profile/reload", post(profile::reload))
        .route("/logout", post(signout::logout))
        .route("/signed-out/", get(signout::signed_out))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route(assets::STYLESHEET_PATH, get(assets::stylesheet))
        .route(assets::FAVICON_PATH, get(assets::favicon))
        .fallback(|| async { AppError::NotFound })
        .method_not_allowed_fallback(|| async { AppError::MethodNotAllowed })
}

/// A signed-in person, or the response for a visitor who is not (any more).
enum SignedInOr {
    SignedIn(Box<SignedIn>),
    Respond(Response),
}

/// The signed-in person; a signed-out visitor is sent to sign in, and a session past its absolute
/// lifetime is ended with a page that says so.
async fn require_signed_in(state: &AppState, session: &AppSession) -> Result<SignedInOr, AppError> {
    Ok(match session.presence(state.config.session_max).await? {
        Presence::SignedIn(s) => SignedInOr::SignedIn(Box::new(s)),
        Presence::Anonymous => SignedInOr::Respond(Redirect::to("/").into_response()),
        Presence::Expired(s) => {
            SignedInOr::Respond(signout::ended(state, session, &s, Ended::Expired).await?)
        }
    })
}

/// The `csrf` field of a posted form; empty when there is none (which matches no session).
fn submitted_csrf(body: &[u8]) -> String {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}
