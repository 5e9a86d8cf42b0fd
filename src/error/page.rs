//! The error page every failed request becomes, rendered (and its error logged) by one layer of
//! the middleware stack ([`error_page`]).

use askama::Template;
use axum::{
    body::Body,
    http::{HeaderValue, Method, StatusCode, header},
    response::Response,
};
use tracing::Level;

use super::{AppError, Entry, Failed, TRY_AGAIN_OR_QUOTE};

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorTemplate<'a> {
    title: &'a str,
    message: &'a str,
    status: u16,
    request_id: &'a str,
    lms: &'a str,
}

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
            let entry = error.entry();
            log(error, &entry);
            (entry.title, entry.message.replace("{lms}", lms))
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
        _ => ("Something went wrong", TRY_AGAIN_OR_QUOTE.to_owned()),
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

/// One line per failed request, at the error's level, with what the operator should check;
/// during a database outage, at most one a second, with how many it stood for.
fn log(error: &AppError, entry: &Entry) {
    let (status, hint) = (entry.status.as_u16(), entry.hint);
    if entry.reason == "database_unavailable" {
        if let Some(requests) = OUTAGE_LOG.admit() {
            tracing::warn!(status, error = %error, requests, "{hint} (one line a second)");
        }
        return;
    }
    match entry.level {
        Level::ERROR if hint.is_empty() => {
            tracing::error!(status, error = %error, "request failed")
        }
        Level::ERROR => tracing::error!(status, error = %error, "{hint}"),
        Level::WARN => tracing::warn!(status, error = %error, "request failed"),
        _ => tracing::info!(status, error = %error, "request refused"),
    }
}

/// The log rate during a database outage: every request fails alike, and one line a second says
/// as much as thousands. A process-wide limiter, as the log itself is.
static OUTAGE_LOG: RateLimitedLog = RateLimitedLog::new();

struct RateLimitedLog {
    /// The second of the last line (since the process's first failure), and the failures since.
    state: std::sync::Mutex<(u64, u64)>,
    start: std::sync::OnceLock<std::time::Instant>,
}

impl RateLimitedLog {
    const fn new() -> Self {
        Self {
            state: std::sync::Mutex::new((u64::MAX, 0)),
            start: std::sync::OnceLock::new(),
        }
    }

    /// `Some(how many failures this line stands for)` when a line may be written now.
    fn admit(&self) -> Option<u64> {
        let start = self.start.get_or_init(std::time::Instant::now);
        let second = start.elapsed().as_secs();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.1 += 1;
        if state.0 == second {
            return None;
        }
        let requests = state.1;
        *state = (second, 0);
        Some(requests)
    }
}

#[cfg(test)]
mod tests {
    use super::RateLimitedLog;

    #[test]
    fn an_outage_logs_one_line_a_second_counting_the_rest() {
        let log = RateLimitedLog::new();
        assert_eq!(log.admit(), Some(1));
        let more: Vec<_> = (0..1000).filter_map(|_| log.admit()).collect();
        assert!(more.len() <= 1, "{more:?}");
    }
}
