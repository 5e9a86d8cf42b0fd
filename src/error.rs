//! The one error type handlers return, and how each failure becomes a page.
//!
//! Failures a person causes or meets keep a specific 4xx/5xx status and a plain message with a
//! way forward; internal detail goes to the log only, next to the request id the page shows.
//! Nothing here formats a token, the client secret or a session id.

use askama::Template;
use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use openedx_client::LmsError;

use crate::{
    middleware::{current_lms, current_request_id},
    session::Interrupted,
    store::StoreError,
    templates::render,
};

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
    /// E.g. a GET of `/logout`, which only a form may POST to. Its page is rendered by the
    /// middleware ([`page_for_status`]): only there is the `Allow` header axum adds after the
    /// handler known, and the right message depends on it.
    MethodNotAllowed,
    Session(tower_sessions::session::Error),
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

impl From<tower_sessions::session::Error> for AppError {
    fn from(e: tower_sessions::session::Error) -> Self {
        Self::Session(e)
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
    request_id: String,
}

impl AppError {
    fn page(&self) -> Page {
        use StatusCode as S;
        let lms = current_lms();
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
    fn into_response(self) -> Response {
        let page = self.page();
        self.log(page.status);
        if matches!(self, Self::MethodNotAllowed) {
            // Left bare for the middleware to render (see the variant).
            return page.status.into_response();
        }
        error_page(page.status, page.title, &page.message)
    }
}

/// Marks a response as our error page, so the middleware leaves it as it is.
#[derive(Clone, Copy)]
struct OurPage;

/// Renders the error template; shared with the panic handler and the request timeout.
pub fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let template = ErrorTemplate {
        title,
        message,
        status: status.as_u16(),
        request_id: current_request_id(),
    };
    let mut response = (status, render(&template)).into_response();
    response.extensions_mut().insert(OurPage);
    response
}

/// Whether `response` is one of our error pages.
pub fn is_our_page(response: &Response) -> bool {
    response.extensions().get::<OurPage>().is_some()
}

/// Our page for an error status that no handler of ours chose: a rejection by an extractor (a
/// form without a form's content type, a body over the limit), or axum's 405. Only a few routes
/// take a POST, and all of them take a form from this app's pages; the rest are pages to open.
pub fn page_for_status(
    status: StatusCode,
    method: &axum::http::Method,
    allow: Option<&axum::http::HeaderValue>,
) -> Response {
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
    if status.is_server_error() {
        tracing::error!(%status, "a layer failed the request without saying why");
    } else {
        tracing::info!(%status, "refused before any handler");
    }
    error_page(status, title, &message)
}
