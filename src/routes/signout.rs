//! Signing out, and every other way a signed-in session ends: revoke what the LMS can revoke,
//! delete the token and the session, and say so on a page. Signing out of the LMS ends the
//! session here too, through the front-channel sign-out its logout page loads.

use askama::Template;
use axum::{
    extract::{RawForm, State},
    http::Uri,
    response::{IntoResponse, Redirect, Response},
};
use url::Url;

use crate::{
    error::AppError,
    middleware::FramableByLms,
    session::{AppSession, Ended, Presence},
    signed_in::{self, SignedInOr, end, submitted_csrf},
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
    session: AppSession,
    RawForm(body): RawForm,
) -> Result<Response, AppError> {
    let current = match signed_in::require(&state, &session).await? {
        SignedInOr::SignedIn(s) => s,
        // Nothing to end (signed out in another tab, or expired): the outcome is the same.
        SignedInOr::Respond(_) => return Ok(Redirect::to(SIGNED_OUT_HERE).into_response()),
    };
    if !current.signed_in.csrf_matches(&submitted_csrf(&body)) {
        return Err(AppError::Csrf);
    }
    end(&state, &session, &current.key).await?;
    tracing::info!(username = %current.signed_in.account.username, "signed out");
    if !state.config.lms_logout {
        return Ok(Redirect::to(SIGNED_OUT_HERE).into_response());
    }
    Ok(Redirect::to(lms_logout_url(&state).as_str()).into_response())
}

/// `{LMS_URL}/logout`, asked to come back to `/signed-out/` (which it does only if that address is
/// part of a registered redirect URI, `openedx.md` §8).
fn lms_logout_url(state: &AppState) -> Url {
    state.lms.logout_url(&state.config.after_lms_logout_url())
}

/// `GET /frontchannel-logout/[?no_redirect=1]`: the LMS's logout page loads this in a hidden
/// iframe, as it does every URL in its `IDA_LOGOUT_URI_LIST` (`openedx.md` §8), so that signing
/// out of the LMS ends this browser's session here as our own sign-out does: the refresh token
/// revoked, the session deleted. The browser sends the session cookie with that iframe's request
/// only when the app is same-site with the LMS (`SameSite=Lax`).
///
/// A GET that any page can make the browser send, with no CSRF token to check: so it is an
/// unwanted sign-out at worst, and it does exactly that much. It never goes on to the LMS, and a
/// visitor without a session gets no cookie and no row.
pub async fn frontchannel(
    State(state): State<AppState>,
    session: AppSession,
    uri: Uri,
) -> Result<Response, AppError> {
    match session.presence(&state.config).await? {
        Presence::SignedIn(current) | Presence::Expired(current) => {
            end(&state, &session, &current.key).await?;
            tracing::info!(
                username = %current.signed_in.account.username,
                "signed out through the front-channel sign-out"
            );
        }
        Presence::Anonymous => {}
    }
    if !wants_no_redirect(&uri) {
        // Opened as a page, not by the LMS: we cannot tell whether the LMS session ended.
        return Ok(Redirect::to(SIGNED_OUT_HERE).into_response());
    }
    let mut response = render(&FrontChannelPage);
    response.extensions_mut().insert(FramableByLms);
    Ok(response)
}

/// `HEAD /frontchannel-logout/`: a link checker or prefetcher must not sign anyone out (axum
/// would otherwise run the GET handler for it).
pub async fn frontchannel_head() -> AppError {
    AppError::MethodNotAllowed
}

/// `no_redirect` with a value, as the LMS appends it (`no_redirect=1`).
fn wants_no_redirect(uri: &Uri) -> bool {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .any(|(k, v)| k == "no_redirect" && !v.is_empty())
}

/// `GET /signed-out/[?why=here|expired|renewal]`. The app cannot see the LMS's cookie, so what
/// the page says about the LMS session follows from how the person got here: without `why`, back
/// from the LMS's logout (the address the app gives it); with one, from the app alone, which
/// leaves the LMS session as it was.
pub async fn signed_out(State(state): State<AppState>, uri: Uri) -> Response {
    let why = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "why")
        .map(|(_, v)| v.into_owned());
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
