//! Signing out, and every other way a signed-in session ends: revoke what the LMS can revoke,
//! delete the token and the session, and say so on a page.

use askama::Template;
use axum::{
    extract::{RawForm, State},
    http::Uri,
    response::{IntoResponse, Redirect, Response},
};

use super::{SignedInOr, require_signed_in, submitted_csrf};
use crate::{
    AppState,
    config::join,
    error::AppError,
    session::{AppSession, Ended, SignedIn},
    templates::render,
};

#[derive(Template)]
#[template(path = "signed_out.html")]
struct SignedOutPage {
    title: &'static str,
    message: &'static str,
}

/// `POST /logout`: a POST with the session's CSRF token, so neither a link nor a form on another
/// site can sign anyone out. With `LMS_LOGOUT=true` the browser then goes on to the LMS's own
/// logout, which sends it back to `/signed-out/`.
pub async fn logout(
    State(state): State<AppState>,
    session: AppSession,
    RawForm(body): RawForm,
) -> Result<Response, AppError> {
    let signed_in = match require_signed_in(&state, &session).await? {
        SignedInOr::SignedIn(s) => *s,
        // Nothing to end (signed out in another tab, or expired): the outcome is the same.
        SignedInOr::Respond(_) => return Ok(Redirect::to("/signed-out/").into_response()),
    };
    if !signed_in.csrf_matches(&submitted_csrf(&body)) {
        return Err(AppError::Csrf);
    }
    end(&state, &session, &signed_in).await?;
    tracing::info!(username = %signed_in.account.username, "signed out");
    if !state.config.lms_logout {
        return Ok(Redirect::to("/signed-out/").into_response());
    }
    let mut lms_logout = join(&state.config.lms_url, "logout");
    lms_logout
        .query_pairs_mut()
        .append_pair("client_id", &state.config.client_id)
        .append_pair("redirect_url", state.config.after_lms_logout_url().as_str());
    Ok(Redirect::to(lms_logout.as_str()).into_response())
}

/// Ends a session the app decided to end (absolute lifetime, a refused renewal) and sends the
/// person to a page that says why, with a way to sign in again.
pub async fn ended(
    state: &AppState,
    session: &AppSession,
    signed_in: &SignedIn,
    why: Ended,
) -> Result<Response, AppError> {
    end(state, session, signed_in).await?;
    tracing::info!(username = %signed_in.account.username, why = why.as_query(), "session ended");
    Ok(Redirect::to(&format!("/signed-out/?why={}", why.as_query())).into_response())
}

/// Revokes the token at the LMS, deletes it and the session. A revocation that fails is logged and
/// signs the person out here all the same: keeping them signed in would not make the LMS listen.
async fn end(state: &AppState, session: &AppSession, signed_in: &SignedIn) -> Result<(), AppError> {
    revoke_token(state, &signed_in.token_id).await?;
    session.sign_out().await
}

/// Deletes a session's token and revokes it at the LMS; a failed revocation is only logged.
pub async fn revoke_token(state: &AppState, token_id: &str) -> Result<(), AppError> {
    if let Some(token) = state.store.take_token(token_id).await?
        && let Err(e) = state.lms.revoke(&token).await
    {
        tracing::warn!(error = %e, "could not revoke the token at the LMS; signed out here anyway");
    }
    Ok(())
}

/// `GET /signed-out/[?why=expired|renewal]`.
pub async fn signed_out(uri: Uri) -> Response {
    let why = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "why")
        .and_then(|(_, v)| Ended::from_query(&v));
    let (title, message) = match why {
        None => (
            "You are signed out",
            "This app no longer holds your LMS token or profile.",
        ),
        Some(Ended::Expired) => (
            "Your session has ended",
            "You were signed in for longer than this app allows, so you were signed out. Sign \
             in again to carry on.",
        ),
        Some(Ended::Renewal) => (
            "Please sign in again",
            "The LMS no longer accepts this app's access on your behalf (it was revoked or has \
             run out), so you were signed out.",
        ),
    };
    render(&SignedOutPage { title, message })
}
