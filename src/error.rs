//! The one error type handlers return, as one table: each variant maps once, in [`AppError::entry`],
//! to its status, title, message, log level, operator hint and metrics label.
//!
//! Failures a person causes or meets keep a specific 4xx/5xx status and a plain message with a
//! way forward; internal detail goes to the log only, next to the request id the page shows.
//! Nothing here formats a token, the client secret or a session id.
//!
//! How a failure becomes a page, as in axum's `error-handling` example: an [`AppError`] answers
//! its bare status with itself attached to the response (an extension), and one layer of the
//! middleware stack, [`page::error_page`], logs it and renders its page, with what only the stack
//! knows (the request id, the LMS's name). So this module knows nothing of the middleware or the
//! session: they use it.

pub mod page;

use std::{borrow::Cow, sync::Arc};

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use openedx_client::LmsError;
use tracing::Level;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The callback's `state` matches no sign-in this browser started.
    #[error("sign-in interrupted: {}", .0.as_str())]
    SignInInterrupted(Interrupted),
    /// The person pressed Cancel on the LMS consent page (`error=access_denied`).
    #[error("the person declined consent (access_denied)")]
    Declined,
    /// Any other `error=` the LMS sent back to the callback. Debug-quoted in the log: these come
    /// from the query string, and must not forge log lines.
    #[error("authorize error {code:?}: {description:?}")]
    AuthorizeError {
        code: String,
        description: Option<String>,
    },
    /// A callback URL that is not one the LMS sends.
    #[error("bad callback: {0}")]
    BadCallback(&'static str),
    /// Every place among the code exchanges in flight stayed taken (`crate::state::MAX_EXCHANGES`).
    #[error("too many sign-ins at once: no place among the code exchanges in flight")]
    Busy,
    /// `invalid_grant`: the code expired (60 s), was used already, or the PKCE verifier differs.
    #[error("the LMS answered invalid_grant to the code exchange")]
    CodeRejected,
    #[error(transparent)]
    Lms(LmsError),
    /// A POST form without this session's CSRF token: forged elsewhere, or from a session that
    /// has since ended.
    #[error("a form without this session's CSRF token")]
    Csrf,
    #[error("not found")]
    NotFound,
    /// E.g. a GET of `/logout`, which only a form may POST to. Its page is the one of its status
    /// (`page::page_for_status`): the right message depends on the `Allow` header axum adds after
    /// the handler.
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("session cookie: {0}")]
    Session(#[from] tower_sessions::session::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

impl From<LmsError> for AppError {
    fn from(e: LmsError) -> Self {
        match e {
            LmsError::OAuth { ref error, .. } if error == "invalid_grant" => Self::CodeRejected,
            other => Self::Lms(other),
        }
    }
}

/// Why a callback's `state` could not be matched to a sign-in this browser started
/// (`crate::session::PendingCookies::take` finds out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interrupted {
    /// The browser sent no cookie of this app at all: blocked cookies, another browser, or a
    /// host mismatch (`localhost` versus `127.0.0.1`).
    NoCookie,
    /// Cookies, but no sign-in waiting under this `state`: already completed (a replay), expired,
    /// or started in another browser.
    NoPendingSignIn,
    /// A cookie under this `state`'s name that does not open, or holds another `state`: forged.
    StateMismatch,
    /// The matching sign-in is older than the ten minutes a sign-in may take.
    Expired,
}

impl Interrupted {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoCookie => "no cookie",
            Self::NoPendingSignIn => "no pending sign-in for this state",
            Self::StateMismatch => "state does not match",
            Self::Expired => "pending sign-in expired",
        }
    }
}

/// One row of the table: everything the app says and does about an error.
pub struct Entry {
    pub status: StatusCode,
    pub title: &'static str,
    /// What the page says; `{lms}` stands for the LMS's name, which only the middleware knows.
    pub message: Cow<'static, str>,
    pub level: Level,
    /// What the operator should check, logged with the error; empty when the error says it all.
    pub hint: &'static str,
    /// A short, fixed name for metrics (`sign_ins_failed{reason=...}`).
    pub reason: &'static str,
}

const TRY_AGAIN_OR_QUOTE: &str = "This app ran into a problem on its side. Please try again; if \
                                  it keeps happening, quote the request id below to the operator.";

impl AppError {
    /// The table.
    pub fn entry(&self) -> Entry {
        use Level as L;
        use StatusCode as S;
        let row = |status, title, message: Cow<'static, str>, level, hint, reason| Entry {
            status,
            title,
            message,
            level,
            hint,
            reason,
        };
        let refused = |status, title, message: &'static str, reason| {
            row(status, title, message.into(), L::INFO, "", reason)
        };
        match self {
            Self::SignInInterrupted(Interrupted::NoCookie) => refused(
                S::BAD_REQUEST,
                "Sign-in was interrupted",
                "Your browser came back from the LMS without this site's cookie, so the sign-in \
                 cannot be matched to you. Allow cookies for this site, open it at the same \
                 address you started from, and start again.",
                "interrupted",
            ),
            Self::SignInInterrupted(Interrupted::Expired) => refused(
                S::BAD_REQUEST,
                "Sign-in took too long",
                "This sign-in was started more than ten minutes ago. Please start again.",
                "interrupted",
            ),
            Self::SignInInterrupted(_) => refused(
                S::BAD_REQUEST,
                "Sign-in was interrupted",
                "This sign-in link does not belong to a sign-in started in this browser, or it \
                 was already used. Please start again.",
                "interrupted",
            ),
            Self::Declined => refused(
                S::FORBIDDEN,
                "You declined to share your profile",
                "You chose not to let this app see your {lms} account, so you are not signed \
                 in. If that was a mistake, start again and choose Allow.",
                "declined",
            ),
            Self::AuthorizeError { code, .. } if code == "invalid_scope" => refused(
                S::BAD_REQUEST,
                "The LMS refused the requested permissions",
                "The LMS answered invalid_scope: this app asks for permissions its registration \
                 does not allow. The operator should register it with --scopes user_id (see the \
                 README) or change LMS_SCOPES.",
                "authorize_error",
            ),
            Self::AuthorizeError { code, .. } => row(
                S::BAD_REQUEST,
                "The LMS could not start the sign-in",
                format!("The LMS answered with the error \"{code}\". Please start again.").into(),
                L::INFO,
                "",
                "authorize_error",
            ),
            Self::BadCallback(why) => row(
                S::BAD_REQUEST,
                "This is not a sign-in link",
                format!(
                    "This address is not one the LMS sends you back to ({why}). Please start again."
                )
                .into(),
                L::INFO,
                "",
                "bad_callback",
            ),
            Self::Busy => row(
                S::SERVICE_UNAVAILABLE,
                "Too many sign-ins at once",
                "Many people are signing in right now. Please wait a moment and start again."
                    .into(),
                L::WARN,
                "",
                "busy",
            ),
            Self::CodeRejected => refused(
                S::BAD_REQUEST,
                "Sign-in expired",
                "This sign-in took too long or was already used. Please start again.",
                "code_rejected",
            ),
            Self::Lms(e) => lms_entry(e),
            Self::Csrf => refused(
                S::FORBIDDEN,
                "This form has expired",
                "The form you sent does not belong to your current session, so nothing was done. \
                 Go back, reload the page and try again.",
                "csrf",
            ),
            Self::NotFound => refused(
                S::NOT_FOUND,
                "Page not found",
                "There is no page at this address.",
                "not_found",
            ),
            Self::MethodNotAllowed => refused(
                S::METHOD_NOT_ALLOWED,
                "This address does not take this request",
                "",
                "not_found",
            ),
            Self::Store(e) if e.is_unavailable() => row(
                S::SERVICE_UNAVAILABLE,
                "Briefly unavailable",
                "This app cannot reach its database right now, so it cannot show your pages. \
                 Nothing is lost: please try again in a few seconds."
                    .into(),
                L::WARN,
                "the database does not answer: check that it runs and that DATABASE_URL points at \
                 it",
                "database_unavailable",
            ),
            Self::Store(StoreError::KeyMissing(_)) => row(
                S::SERVICE_UNAVAILABLE,
                "Briefly unavailable",
                "This server cannot open your session right now. You are still signed in: please \
                 try again in a minute; if it keeps happening, quote the request id below to the \
                 operator."
                    .into(),
                L::ERROR,
                "",
                "key_missing",
            ),
            Self::Session(_) | Self::Store(_) | Self::Internal(_) => row(
                S::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                TRY_AGAIN_OR_QUOTE.into(),
                L::ERROR,
                "",
                "internal",
            ),
        }
    }
}

impl AppError {
    /// `Retry-After`, in seconds, for a 503 that will pass by itself.
    fn retry_after(&self) -> Option<&'static str> {
        match self {
            Self::Busy => Some("2"),
            Self::Store(e) if e.is_unavailable() => Some("5"),
            Self::Store(StoreError::KeyMissing(_)) => Some("60"),
            _ => None,
        }
    }
}

/// The LMS's failures, one row per way a call fails, each sending the operator to the right place.
fn lms_entry(e: &LmsError) -> Entry {
    use StatusCode as S;
    let row = |status, title, message: Cow<'static, str>, hint, reason| Entry {
        status,
        title,
        message,
        level: Level::ERROR,
        hint,
        reason,
    };
    match e {
        LmsError::Timeout { .. } => row(
            S::GATEWAY_TIMEOUT,
            "The LMS is not answering",
            "{lms} did not answer in time. Try again in a minute; if it keeps happening, the LMS \
             may be down or overloaded."
                .into(),
            "the LMS did not answer within LMS_TIMEOUT_SECS: it may be overloaded",
            "lms_timeout",
        ),
        LmsError::Unreachable { .. } => row(
            S::BAD_GATEWAY,
            "The LMS cannot be reached",
            "This app could not connect to {lms}. Try again in a minute; if it keeps happening, \
             the operator should check that the LMS is running and that LMS_INTERNAL_URL points \
             at it."
                .into(),
            "could not connect to the LMS: check that it runs and that LMS_INTERNAL_URL (or \
             LMS_URL) points at it",
            "lms_unreachable",
        ),
        LmsError::Interrupted { .. } => row(
            S::BAD_GATEWAY,
            "The connection to the LMS broke off",
            "{lms} closed the connection before its answer was complete. Please try again; if it \
             keeps happening, the operator has the details in the log."
                .into(),
            "the LMS connection closed mid-answer: the address is right; look at the LMS's and \
             any proxy's logs for a restart, a crash or a shorter timeout",
            "lms_interrupted",
        ),
        LmsError::NotAnLmsPath { .. } => row(
            S::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "This app asked the LMS for something it should not have. Please quote the request \
             id below to the operator."
                .into(),
            "",
            "lms_error",
        ),
        LmsError::OAuth { error, .. } if error == "invalid_client" => row(
            S::BAD_GATEWAY,
            "This app is not set up correctly",
            "{lms} did not accept this app's credentials, so nobody can sign in right now. The \
             operator has the details in the log."
                .into(),
            "the LMS rejected the client credentials: check LMS_CLIENT_ID, LMS_CLIENT_SECRET and \
             LMS_CLIENT_AUTH against the DOT application",
            "invalid_client",
        ),
        LmsError::OAuth { error, .. } => row(
            S::BAD_GATEWAY,
            "The LMS refused to finish the sign-in",
            format!("{{lms}} answered with the error \"{error}\". Please start again.").into(),
            "",
            "lms_error",
        ),
        LmsError::Rejected { .. } => row(
            S::BAD_GATEWAY,
            "The LMS gave an answer this app cannot use",
            "Something went wrong between this app and {lms}. Please try again.".into(),
            "the LMS refused its own token: check LMS_TOKEN_TYPE and that the app is registered \
             with the authorization-code grant",
            "lms_error",
        ),
        LmsError::Status { .. } => row(
            S::BAD_GATEWAY,
            "The LMS gave an answer this app cannot use",
            "Something went wrong between this app and {lms}. Please try again.".into(),
            "the LMS answered with an HTTP status it does not use for this call",
            "lms_error",
        ),
        _ => row(
            S::BAD_GATEWAY,
            "The LMS gave an answer this app cannot use",
            "Something went wrong between this app and {lms}. Please try again.".into(),
            "the LMS's answer could not be used: not the JSON it sends for this call",
            "lms_error",
        ),
    }
}

impl IntoResponse for AppError {
    /// Answers the error's status, empty, with the error attached for [`page::error_page`] to log
    /// and render.
    fn into_response(self) -> Response {
        let mut response = self.entry().status.into_response();
        if let Some(seconds) = self.retry_after() {
            let retry = axum::http::HeaderValue::from_static(seconds);
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, retry);
        }
        if !matches!(self, Self::MethodNotAllowed) {
            response.extensions_mut().insert(Failed(Arc::new(self)));
        }
        response
    }
}

/// An [`AppError`] riding on its response to [`page::error_page`].
#[derive(Clone)]
struct Failed(Arc<AppError>);
