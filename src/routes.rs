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
    session::{AppSession, Current, Ended, Presence},
    tokens,
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
        .route(assets::STYLESHEET_PATH, get(assets::stylesheet))
        .route(assets::FAVICON_PATH, get(assets::favicon))
}

/// A signed-in person, or the response for a visitor who is not (any more).
enum SignedInOr {
    SignedIn(Box<Current>),
    Respond(Response),
}

/// The signed-in person; a signed-out visitor is sent to sign in, and a session past its absolute
/// lifetime is ended with a page that says so.
async fn require_signed_in(state: &AppState, session: &AppSession) -> Result<SignedInOr, AppError> {
    Ok(match session.presence(&state.config).await? {
        Presence::SignedIn(current) => SignedInOr::SignedIn(current),
        Presence::Anonymous => SignedInOr::Respond(Redirect::to("/").into_response()),
        Presence::Expired(current) => SignedInOr::Respond(
            ended(
                state,
                session,
                &current.key,
                &current.signed_in.account.username,
                Ended::Expired,
            )
            .await?,
        ),
    })
}

/// Ends a session the app decided to end (absolute lifetime, a refused renewal) and sends the
/// person to a page that says why, with a way to sign in again.
async fn ended(
    state: &AppState,
    session: &AppSession,
    key: &str,
    username: &str,
    why: Ended,
) -> Result<Response, AppError> {
    end(state, session, key).await?;
    tracing::info!(username = %username, why = why.as_query(), "session ended");
    Ok(Redirect::to(&format!("/signed-out/?why={}", why.as_query())).into_response())
}

/// Revokes the session's token at the LMS, deletes it with the session, forgets the cookie.
async fn end(state: &AppState, session: &AppSession, key: &str) -> Result<(), AppError> {
    tokens::end_session(state, key).await?;
    session.forget().await
}

/// The `csrf` field of a posted form; empty when there is none (which matches no session).
fn submitted_csrf(body: &[u8]) -> String {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}
