//! Signing out, and every other way a signed-in session ends: revoke what the LMS can revoke,
//! delete the token and the session, and say so on a page.

use askama::Template;
use axum::{
    extract::{RawForm, State},
    http::Uri,
    response::{IntoResponse, Redirect, Response},
};

use super::{SignedInOr, end, require_signed_in, submitted_csrf};
use crate::{
    AppState,
    config::join,
    error::AppError,
    session::{AppSession, Ended},
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
    let current = match require_signed_in(&state, &session).await? {
        SignedInOr::SignedIn(s) => s,
        // Nothing to end (signed out in another tab, or expired): the outcome is the same.
        SignedInOr::Respond(_) => return Ok(Redirect::to("/signed-out/").into_response()),
    };
    if !current.signed_in.csrf_matches(&submitted_csrf(&body)) {
        return Err(AppError::Csrf);
    }
    end(&state, &session, &current.key).await?;
    tracing::info!(username = %current.signed_in.account.username, "signed out");
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
