//! The one error type handlers return, and the error page every failed request becomes.
//!
//! Failures a person causes or meets keep a specific 4xx/5xx status and a plain message with a
//! way forward; internal detail goes to the log only, next to the request id the page shows.
//! Nothing here formats a token, the client secret or a session id.
//!
//! How a failure becomes a page, as in axum's `error-handling` example: an [`AppError`] logs itself
//! and answers its bare status with the error attached to the response (an extension); then one
//! layer of the middleware stack calls [`error_page`] for every response, passing what only the
//! stack knows (the request id, the LMS's name), and the page is rendered there. A failure that
//! is not an `AppError` (the framework's 405 or 415, a layer's bare 500, the request timeout) gets
//! the page of its status (`page_for_status`). So this module knows nothing of the middleware or
//! the session: they use it.

use std::sync::Arc;

use askama::Template;
use axum::{
    body::Body,
    http::{HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use openedx_client::LmsError;

use crate::store::StoreError;

#[derive(Debug)]
pub enum AppError {
    /// The callback's `state` matches no sign-in this browser started.
    SignInInterrupted(Interrupted),
    /// The person pressed Cancel on the LMS consent page (`error=access_denied`).
    Declined,
    /// Any other `error=` the LMS sent back to the callback.
    AuthorizeError {
        code: String,
        description: Option<String>,
    },
    /// A callback URL that is not one the LMS sends.
    BadCallback(&'static str),
    /// `invalid_grant`: the code expired (60 s), was used already, or the PKCE verifier differs.
    CodeRejected,
    Lms(LmsError),
    /// A POST form without this session's CSRF token: forged elsewhere, or from a session that
    /// has since ended.
    Csrf,
    NotFound,
    /// E.g. a GET of `/logout`, which only a form may POST to. Its page is the one of its status
    /// (`page_for_status`): the right message depends on the `Allow` header axum adds after the
    /// handler.
    MethodNotAllowed,
    /// The session store failed (the conversion is in `crate::session`).
    Session(Box<dyn std::error::Error + Send + Sync>),
    Store(StoreError),
    Database(sqlx::Error),
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

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        Self::Database(e)
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

/// What an error page says.
struct Page {
    status: StatusCode,
    title: &'static str,
    message: String,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorTemplate<'a> {
    title: &'a str,
    message: &'a str,
    status: u16,
    request_id: &'a str,
    lms: &'a str,
}

impl AppError {
    /// The page for this error; `lms` is the LMS's name, as messages say it.
    fn page(&self, lms: &str) -> Page {
        use StatusCode as S;
        let page = |status, title, message: String| Page {
            status,
            title,
            message,
        };
        match self {
            Self::SignInInterrupted(Interrupted::NoCookie) => page(
                S::BAD_REQUEST,
                "Sign-in was interrupted",
                "Your browser came back from the LMS without this site's cookie, so the sign-in \
                 cannot be matched to you. Allow cookies for this site, open it at the same \
                 address you started from, and start again."
                    .into(),
            ),
            Self::SignInInterrupted(Interrupted::Expired) => page(
                S::BAD_REQUEST,
                "Sign-in took too long",
                "This sign-in was started more than ten minutes ago. Please start again.".into(),
            ),
            Self::SignInInterrupted(_) => page(
                S::BAD_REQUEST,
                "Sign-in was interrupted",
                "This sign-in link does not belong to a sign-in started in this browser, or it \
                 was already used. Please start again."
                    .into(),
            ),
            Self::Declined => page(
                S::FORBIDDEN,
                "You declined to share your profile",
                format!(
                    "You chose not to let this app see your {lms} account, so you are not signed \
                     in. If that was a mistake, start again and choose Allow."
                ),
            ),
            Self::AuthorizeError { code, .. } if code == "invalid_scope" => page(
                S::BAD_REQUEST,
                "The LMS refused the requested permissions",
                "The LMS answered invalid_scope: this app asks for permissions its registration \
                 does not allow. The operator should register it with --scopes user_id (see the \
                 README) or change LMS_SCOPES."
                    .into(),
            ),
            Self::AuthorizeError { code, .. } => page(
                S::BAD_REQUEST,
                "The LMS could not start the sign-in",
                format!("The LMS answered with the error \"{code}\". Please start again."),
            ),
            Self::BadCallback(why) => page(
                S::BAD_REQUEST,
                "This is not a sign-in link",
                format!(
                    "This address is not one the LMS sends you back to ({why}). Please start again."
                ),
            ),
            Self::CodeRejected => page(
                S::BAD_REQUEST,
                "Sign-in expired",
                "This sign-in took too long or was already used. Please start again.".into(),
            ),
            Self::Lms(LmsError::Timeout { .. }) => page(
                S::GATEWAY_TIMEOUT,
                "The LMS is not answering",
                format!(
                    "{lms} did not answer in time. Try again in a minute; if it keeps happening, \
                     the LMS may be down or overloaded."
                ),
            ),
            Self::Lms(LmsError::Unreachable { .. }) => page(
                S::BAD_GATEWAY,
                "The LMS cannot be reached",
                format!(
                    "This app could not connect to {lms}. Try again in a minute; if it keeps \
                     happening, the operator should check that the LMS is running and that \
                     LMS_INTERNAL_URL points at it."
                ),
            ),
            Self::Lms(LmsError::Interrupted { .. }) => page(
                S::BAD_GATEWAY,
                "The connection to the LMS broke off",
                format!(
                    "{lms} closed the connection before its answer was complete. Please try \
                     again; if it keeps happening, the operator has the details in the log."
                ),
            ),
            Self::Lms(LmsError::NotAnLmsPath { .. }) => page(
                S::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "This app asked the LMS for something it should not have. Please quote the \
                 request id below to the operator."
                    .into(),
            ),
            Self::Lms(LmsError::OAuth { error, .. }) if error == "invalid_client" => page(
                S::BAD_GATEWAY,
                "This app is not set up correctly",
                format!(
                    "{lms} did not accept this app's credentials, so nobody can sign in right \
                     now. The operator has the details in the log."
                ),
            ),
            Self::Lms(LmsError::OAuth { error, .. }) => page(
                S::BAD_GATEWAY,
                "The LMS refused to finish the sign-in",
                format!("{lms} answered with the error \"{error}\". Please start again."),
            ),
            Self::Lms(_) => page(
                S::BAD_GATEWAY,
                "The LMS gave an answer this app cannot use",
                format!("Something went wrong between this app and {lms}. Please try again."),
            ),
            Self::Csrf => page(
                S::FORBIDDEN,
                "This form has expired",
                "The form you sent does not belong to your current session, so nothing was done. \
                 Go back, reload the page and try again."
                    .into(),
            ),
            Self::NotFound => page(
                S::NOT_FOUND,
                "Page not found",
                "There is no page at this address.".into(),
            ),
            Self::MethodNotAllowed => page(
                S::METHOD_NOT_ALLOWED,
                "This address does not take this request",
                String::new(),
            ),
            Self::Session(_) | Self::Store(_) | Self::Database(_) | Self::Internal(_) => page(
                S::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "This app ran into a problem on its side. Please try again; if it keeps \
                 happening, quote the request id below to the operator."
                    .into(),
            ),
        }
    }

    fn log(&self, status: StatusCode) {
        match self {
            Self::Lms(LmsError::OAuth { error, .. }) if error == "invalid_client" => {
                tracing::error!(
                    %status, error = %self,
                    "the LMS rejected the client credentials: check LMS_CLIENT_ID, LMS_CLIENT_SECRET \
                     and LMS_CLIENT_AUTH against the DOT application"
                )
            }
            Self::Lms(LmsError::Rejected { .. }) => tracing::error!(
                %status, error = %self,
                "the LMS refused its own token: check LMS_TOKEN_TYPE and that the app is registered \
                 with the authorization-code grant"
            ),
            // One wording per way a call fails, each sending the operator to the right place.
            Self::Lms(LmsError::Unreachable { .. }) => tracing::error!(
                %status, error = %self,
                "could not connect to the LMS: check that it runs and that LMS_INTERNAL_URL \
                 (or LMS_URL) points at it"
            ),
            Self::Lms(LmsError::Timeout { .. }) => tracing::error!(
                %status, error = %self,
                "the LMS did not answer within LMS_TIMEOUT_SECS: it may be overloaded"
            ),
            Self::Lms(LmsError::Interrupted { .. }) => tracing::error!(
                %status, error = %self,
                "the LMS connection closed mid-answer: the address is right; look at the LMS's \
                 and any proxy's logs for a restart, a crash or a shorter timeout"
            ),
            Self::Lms(LmsError::Status { .. }) => tracing::error!(
                %status, error = %self,
                "the LMS answered with an HTTP status it does not use for this call"
            ),
            Self::Lms(LmsError::Garbage { .. }) => tracing::error!(
                %status, error = %self,
                "the LMS's answer could not be used: not the JSON it sends for this call"
            ),
            _ if status.is_server_error() => {
                tracing::error!(%status, error = %self, "request failed")
            }
            _ => tracing::info!(%status, error = %self, "request refused"),
        }
    }
}

impl AppError {
    /// A short, fixed name for metrics (`sign_ins_failed{reason=...}`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::SignInInterrupted(_) => "interrupted",
            Self::Declined => "declined",
            Self::AuthorizeError { .. } => "authorize_error",
            Self::BadCallback(_) => "bad_callback",
            Self::CodeRejected => "code_rejected",
            Self::Lms(LmsError::Timeout { .. }) => "lms_timeout",
            Self::Lms(LmsError::Unreachable { .. }) => "lms_unreachable",
            Self::Lms(LmsError::Interrupted { .. }) => "lms_interrupted",
            Self::Lms(LmsError::OAuth { error, .. }) if error == "invalid_client" => {
                "invalid_client"
            }
            Self::Lms(_) => "lms_error",
            Self::Csrf => "csrf",
            Self::NotFound | Self::MethodNotAllowed => "not_found",
            Self::Session(_) | Self::Store(_) | Self::Database(_) | Self::Internal(_) => "internal",
        }
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SignInInterrupted(why) => write!(f, "sign-in interrupted: {}", why.as_str()),
            Self::Declined => f.write_str("the person declined consent (access_denied)"),
            // Debug-quoted: these come from the query string, and must not forge log lines.
            Self::AuthorizeError { code, description } => {
                write!(f, "authorize error {code:?}: {description:?}")
            }
            Self::BadCallback(why) => write!(f, "bad callback: {why}"),
            Self::CodeRejected => {
                f.write_str("the LMS answered invalid_grant to the code exchange")
            }
            Self::Lms(e) => write!(f, "{e}"),
            Self::Csrf => f.write_str("a form without this session's CSRF token"),
            Self::NotFound => f.write_str("not found"),
            Self::MethodNotAllowed => f.write_str("method not allowed"),
            Self::Store(e) => write!(f, "{e}"),
            Self::Session(e) => write!(f, "session store: {e}"),
            Self::Database(e) => write!(f, "database: {e}"),
            Self::Internal(e) => f.write_str(e),
        }
    }
}

impl IntoResponse for AppError {
    /// Logs the error (in the request's span, so with its id) and answers its status, empty, with
    /// the error attached for [`error_page`] to render.
    fn into_response(self) -> Response {
        // The LMS's name changes the wording, never the status.
        let status = self.page("the LMS").status;
        self.log(status);
        let mut response = status.into_response();
        if !matches!(self, Self::MethodNotAllowed) {
            response.extensions_mut().insert(Failed(Arc::new(self)));
        }
        response
    }
}

/// An [`AppError`] riding on its response to [`error_page`].
#[derive(Clone)]
struct Failed(Arc<AppError>);

/// The response as it must leave: an [`AppError`]'s page, or the page of an error status that
/// carries none (a 4xx or 5xx that is not JSON: the readiness probe's clients read JSON), or the
/// response unchanged. The page keeps the response's status and headers (cookies being removed,
/// `Allow`...) and replaces its body. `request_id` and `lms` are what only the middleware knows.
pub fn error_page(response: Response, method: &Method, request_id: &str, lms: &str) -> Response {
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let (title, message) = match response.extensions().get::<Failed>() {
        Some(Failed(error)) => {
            let page = error.page(lms);
            (page.title, page.message)
        }
        None if status.as_u16() >= 400 && !json => {
            page_for_status(status, method, response.headers().get(header::ALLOW))
        }
        None => return response,
    };
    let template = ErrorTemplate {
        title,
        message: &message,
        status: status.as_u16(),
        request_id,
        lms,
    };
    let (mut parts, _) = response.into_parts();
    parts.extensions.remove::<Failed>();
    let body = match template.render() {
        Ok(html) => {
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            Body::from(html)
        }
        Err(e) => {
            tracing::error!(error = %e, "the error page failed to render");
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            Body::from("Something went wrong while showing this page.")
        }
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, body)
}

/// Our page for an error status that no handler of ours chose: a rejection by an extractor (a
/// form without a form's content type, a body over the limit), or axum's 405. Only a few routes
/// take a POST, and all of them take a form from this app's pages; the rest are pages to open.
fn page_for_status(
    status: StatusCode,
    method: &Method,
    allow: Option<&HeaderValue>,
) -> (&'static str, String) {
    use StatusCode as S;
    let form_only = "This address only takes a form sent from this app's pages (signing out, for \
                     example, is a button on your profile).";
    let allows = |m: &str| {
        allow
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|a| a.trim() == m))
    };
    let (title, message) = match status {
        S::METHOD_NOT_ALLOWED if allows("POST") && !allows("GET") => {
            ("Use the button on the page", form_only.to_owned())
        }
        S::METHOD_NOT_ALLOWED => (
            "Open this address as a page",
            format!(
                "This address answers GET requests only, as a link or the address bar sends \
                 them; it does nothing with {}.",
                // A method is a token: no markup can hide in it, and the template escapes anyway.
                method.as_str().chars().take(20).collect::<String>()
            ),
        ),
        S::UNSUPPORTED_MEDIA_TYPE => ("Use the button on the page", form_only.to_owned()),
        S::GATEWAY_TIMEOUT => (
            "This is taking too long",
            "The page could not be prepared in time. Please try again.".to_owned(),
        ),
        S::PAYLOAD_TOO_LARGE => (
            "Too much data",
            "The request was larger than anything this app's pages send.".to_owned(),
        ),
        S::NOT_FOUND => (
            "Page not found",
            "There is no page at this address.".to_owned(),
        ),
        S::BAD_REQUEST | S::UNPROCESSABLE_ENTITY => (
            "This request makes no sense here",
            "This app could not make sense of the request. Go back to its pages and try again."
                .to_owned(),
        ),
        s if s.is_client_error() => (
            "This request cannot be served",
            "This app does not take this request. Go back to its pages and try again.".to_owned(),
        ),
        _ => (
            "Something went wrong",
            "This app ran into a problem on its side. Please try again; if it keeps happening, \
             quote the request id below to the operator."
                .to_owned(),
        ),
    };
    match status {
        S::GATEWAY_TIMEOUT => {
            tracing::error!(%status, "the request took longer than its timeout; it was cut off");
        }
        s if s.is_server_error() => {
            tracing::error!(%status, "a layer failed the request without saying why");
        }
        _ => tracing::info!(%status, "refused before any handler"),
    }
    (title, message)
}
