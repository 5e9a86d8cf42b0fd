//! A signed-in person as the pages meet them, stated in a handler's signature: [`Visitor`] (who,
//! if anyone), [`SignedIn`] (a signed-in person, or the way to sign in), [`CsrfForm`] (a form a
//! signed-in person posted from one of our pages); and [`end`], the one way every page ends a
//! sign-in (sign-out, the LMS's front-channel sign-out, a session past its absolute lifetime, a
//! token the LMS will not renew). Below the route modules, which never call each other.

use axum::{
    Form,
    extract::{FromRequest, FromRequestParts, Request},
    http::{StatusCode, request::Parts},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;

use crate::{
    error::AppError,
    session::{AppSession, Current, Ended, Presence},
    state::AppState,
    tokens,
};

/// Who sent the request: [`Presence`], with the session cookie to act on.
pub struct Visitor {
    pub presence: Presence,
    pub session: AppSession,
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let session = AppSession::from_request_parts(parts, state).await?;
        let presence = session.presence(&state.store, &state.config).await?;
        Ok(Self { presence, session })
    }
}

/// A signed-in person. A handler that takes one never runs for anyone else: a signed-out visitor
/// is sent to sign in ([`NotSignedIn::Anonymous`]), and a session past its absolute lifetime is
/// ended with a page that says so ([`NotSignedIn::Ended`]).
pub struct SignedIn {
    pub current: Current,
    pub session: AppSession,
}

/// Why a request did not come from a signed-in person (or their form), as the response it gets.
pub enum NotSignedIn {
    Anonymous,
    /// The session was just ended, for this reason.
    Ended(Ended),
    /// A form without this session's CSRF token.
    Csrf,
    /// Not a form at all (its content type): the framework's answer, which gets our page.
    NotAForm(Response),
    Failed(AppError),
}

impl From<AppError> for NotSignedIn {
    fn from(e: AppError) -> Self {
        Self::Failed(e)
    }
}

impl IntoResponse for NotSignedIn {
    fn into_response(self) -> Response {
        match self {
            Self::Anonymous => Redirect::to("/").into_response(),
            Self::Ended(why) => ended_page(why),
            Self::Csrf => AppError::Csrf.into_response(),
            Self::NotAForm(response) => response,
            Self::Failed(e) => e.into_response(),
        }
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = NotSignedIn;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, NotSignedIn> {
        let Visitor { presence, session } = Visitor::from_request_parts(parts, state).await?;
        match presence {
            Presence::SignedIn(current) => Ok(Self {
                current: *current,
                session,
            }),
            Presence::Anonymous => Err(NotSignedIn::Anonymous),
            Presence::Expired(current) => {
                end_because(state, &session, &current, Ended::Expired).await?;
                Err(NotSignedIn::Ended(Ended::Expired))
            }
        }
    }
}

/// The `csrf` field every POST form of ours carries.
#[derive(Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

/// A form posted by a signed-in person, with their session's CSRF token: a page elsewhere cannot
/// read the token, so it cannot make the browser post this.
pub struct CsrfForm(pub SignedIn);

impl FromRequest<AppState> for CsrfForm {
    type Rejection = NotSignedIn;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, NotSignedIn> {
        let (mut parts, body) = request.into_parts();
        let signed_in = SignedIn::from_request_parts(&mut parts, state).await;
        let request = Request::from_parts(parts, body);
        let submitted = match Form::<CsrfField>::from_request(request, state).await {
            Ok(Form(field)) => field.csrf,
            // Not a form at all (its content type), too large, or cut off: the framework's status,
            // with our page.
            Err(rejection)
                if matches!(
                    rejection.status(),
                    StatusCode::UNSUPPORTED_MEDIA_TYPE
                        | StatusCode::PAYLOAD_TOO_LARGE
                        | StatusCode::BAD_REQUEST
                ) =>
            {
                return Err(NotSignedIn::NotAForm(rejection.into_response()));
            }
            // A form we cannot read (a repeated field...) carries no token we issued.
            Err(_) => String::new(),
        };
        let signed_in = signed_in?;
        if !signed_in.current.row.record.csrf_matches(&submitted) {
            return Err(NotSignedIn::Csrf);
        }
        Ok(Self(signed_in))
    }
}

/// Ends the sign-in of session `key` in this browser: its token revoked at the LMS and its row
/// deleted ([`tokens::end_session`]), then the cookie forgotten.
pub async fn end(state: &AppState, session: &AppSession, key: &str) -> Result<(), AppError> {
    tokens::end_session(state, key).await?;
    session.forget().await
}

/// Ends a session the app decided to end (absolute lifetime, a refused renewal), saying why in
/// the log; the person then gets [`ended_page`].
pub async fn end_because(
    state: &AppState,
    session: &AppSession,
    current: &Current,
    why: Ended,
) -> Result<(), AppError> {
    end(state, session, &current.key).await?;
    let username = &current.row.record.account.username;
    tracing::info!(username = %username, why = why.as_query(), "session ended");
    Ok(())
}

/// Where a person lands after the app ended their session: a page saying why, with a way to sign
/// in again.
pub fn ended_page(why: Ended) -> Response {
    Redirect::to(&format!("/signed-out/?why={}", why.as_query())).into_response()
}
