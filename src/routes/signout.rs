//! Signing out, and every other way a signed-in session ends: revoke what the LMS can revoke,
//! delete the token and the session, and say so on a page. Signing out of the LMS ends the
//! session here too, through the front-channel sign-out its logout page loads.

use askama::Template;
use axum::{
    extract::{Query, State, rejection::QueryRejection},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;
use url::Url;

use crate::{
    error::AppError,
    middleware::FramableByLms,
    session::{Ended, Presence},
    signed_in::{CsrfForm, NotSignedIn, SignedIn, Visitor, end},
    state::AppState,
    templates::render,
};

/// Where the app sends the browser after ending a session itself without going through the
/// LMS's logout: the page then says that the LMS session may well be alive.
const SIGNED_OUT_HERE: &str = "/signed-out/?why=here";

#[derive(Template)]
#[template(path = "signed_out.html")]
struct SignedOutPage {
    title: &'static str,
    message: &'static str,
    lms: String,
    /// The LMS's logout, offered when the person may still be signed in there; `None` when they
    /// have just come back from it.
    lms_logout: Option<String>,
}

/// What the LMS's logout page finds in its iframe: nothing to see, since the iframe is hidden.
#[derive(Template)]
#[template(path = "frontchannel_logout.html")]
struct FrontChannelPage;

/// `POST /logout`: a POST with the session's CSRF token, so neither a link nor a form on another
/// site can sign anyone out. With `LMS_LOGOUT=true` the browser then goes on to the LMS's own
/// logout, which sends it back to `/signed-out/`.
pub async fn logout(
    State(state): State<AppState>,
    form: Result<CsrfForm, NotSignedIn>,
) -> Result<Response, NotSignedIn> {
    let SignedIn { current, session } = match form {
        Ok(CsrfForm(signed_in)) => signed_in,
        // Nothing to end (signed out in another tab, or just expired): the outcome is the same.
        Err(NotSignedIn::Anonymous | NotSignedIn::Ended(_)) => {
            return Ok(Redirect::to(SIGNED_OUT_HERE).into_response());
        }
        Err(refused) => return Err(refused),
    };
    end(&state, &session, &current.key).await?;
    tracing::info!(username = %current.row.record.account.username, "signed out");
    if !state.config.lms_logout {
        return Ok(Redirect::to(SIGNED_OUT_HERE).into_response());
    }
    Ok(Redirect::to(lms_logout_url(&state).as_str()).into_response())
}

/// `{LMS_URL}/logout`, asked to come back to `/signed-out/` (which it does only if that address is
/// part of a registered redirect URI: `openedx_client::wire`, logout).
fn lms_logout_url(state: &AppState) -> Url {
    state.lms.logout_url(&state.config.after_lms_logout_url())
}

/// `GET /frontchannel-logout/[?no_redirect=1]`: the LMS's logout page loads this in a hidden
/// iframe, as it does every URL in its `IDA_LOGOUT_URI_LIST` (`openedx_client::wire`, logout), so that signing
/// out of the LMS ends this browser's session here as our own sign-out does: the refresh token
/// revoked, the session deleted. The browser sends the session cookie with that iframe's request
/// only when the app is same-site with the LMS (`SameSite=Lax`).
///
/// A GET that any page can make the browser send, with no CSRF token to check: so it is an
/// unwanted sign-out at worst, and it does exactly that much. It never goes on to the LMS, and a
/// visitor without a session gets no cookie and no row.
pub async fn frontchannel(
    State(state): State<AppState>,
    Visitor { presence, session }: Visitor,
    query: Result<Query<FrontChannelQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    match presence {
        Presence::SignedIn(current) | Presence::Expired(current) => {
            end(&state, &session, &current.key).await?;
            tracing::info!(
                username = %current.row.record.account.username,
                "signed out through the front-channel sign-out"
            );
        }
        Presence::Anonymous => {}
    }
    let no_redirect = query.is_ok_and(|Query(q)| q.no_redirect.is_some_and(|v| !v.is_empty()));
    if !no_redirect {
        // Opened as a page, not by the LMS: we cannot tell whether the LMS session ended.
        return Ok(Redirect::to(SIGNED_OUT_HERE).into_response());
    }
    let mut response = render(&FrontChannelPage);
    response.extensions_mut().insert(FramableByLms);
    Ok(response)
}

/// `?no_redirect=1`, as the LMS appends it to every `IDA_LOGOUT_URI_LIST` entry.
#[derive(Deserialize)]
pub struct FrontChannelQuery {
    no_redirect: Option<String>,
}

/// `HEAD /frontchannel-logout/`: a link checker or prefetcher must not sign anyone out (axum
/// would otherwise run the GET handler for it).
pub async fn frontchannel_head() -> AppError {
    AppError::MethodNotAllowed
}

/// `GET /signed-out/[?why=here|expired|renewal]`. The app cannot see the LMS's cookie, so what
/// the page says about the LMS session follows from how the person got here: without `why`, back
/// from the LMS's logout (the address the app gives it); with one, from the app alone, which
/// leaves the LMS session as it was.
pub async fn signed_out(
    State(state): State<AppState>,
    query: Result<Query<SignedOutQuery>, QueryRejection>,
) -> Response {
    let why = query.ok().and_then(|Query(q)| q.why);
    let signed_out = (
        "You are signed out",
        "This app no longer holds your LMS token or profile.",
    );
    let (title, message) = match why.as_deref().and_then(Ended::from_query) {
        None => signed_out,
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
    let lms_logout = why.map(|_| lms_logout_url(&state).to_string());
    render(&SignedOutPage {
        title,
        message,
        lms: state.config.lms_name().to_owned(),
        lms_logout,
    })
}

/// `?why=here|expired|renewal`.
#[derive(Deserialize)]
pub struct SignedOutQuery {
    why: Option<String>,
}
