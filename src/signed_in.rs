//! A signed-in person as the pages meet them: [`require`] one, and [`end`] a sign-in, the one
//! way every page ends one (sign-out, the LMS's front-channel sign-out, a session past its
//! absolute lifetime, a token the LMS will not renew). Below the route modules, which never call
//! each other.

use axum::response::{IntoResponse, Redirect, Response};

use crate::{
    error::AppError,
    session::{AppSession, Current, Ended, Presence},
    state::AppState,
    tokens,
};

/// A signed-in person, or the response for a visitor who is not (any more).
pub enum SignedInOr {
    SignedIn(Box<Current>),
    Respond(Response),
}

/// The signed-in person; a signed-out visitor is sent to sign in, and a session past its absolute
/// lifetime is ended with a page that says so.
pub async fn require(state: &AppState, session: &AppSession) -> Result<SignedInOr, AppError> {
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
pub async fn ended(
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

/// Ends the sign-in of session `key` in this browser: its token revoked at the LMS and its row
/// deleted ([`tokens::end_session`]), then the cookie forgotten.
pub async fn end(state: &AppState, session: &AppSession, key: &str) -> Result<(), AppError> {
    tokens::end_session(state, key).await?;
    session.forget().await
}

/// The `csrf` field of a posted form; empty when there is none (which matches no session).
pub fn submitted_csrf(body: &[u8]) -> String {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}
