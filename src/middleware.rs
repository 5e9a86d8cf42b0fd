//! The whole middleware stack, assembled in one place: a request id and one log line per request,
//! a request timeout, panic catching, our error page for every error (the framework's included),
//! and security headers on every response.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::{MatchedPath, Request, State},
    http::{HeaderName, HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::Response,
};
use tower_http::{catch_panic::CatchPanicLayer, set_header::SetResponseHeaderLayer};
use tracing::Instrument;

use crate::{
    error::{error_page, is_our_page, page_for_status},
    metrics::Metrics,
};

tokio::task_local! {
    static CONTEXT: RequestContext;
}

/// What a handler (and the error page) may need to know about the request being served.
#[derive(Clone)]
struct RequestContext {
    id: Arc<str>,
    lms: Arc<str>,
}

/// Settings the stack needs, computed once at start.
#[derive(Clone)]
pub struct StackConfig {
    /// The LMS's name on pages: its browser-facing host.
    pub lms_name: Arc<str>,
    pub request_timeout: Duration,
    pub content_security_policy: HeaderValue,
    /// The policy of a response marked [`FramableByLms`]: the same, but the LMS may frame it.
    pub framable_content_security_policy: HeaderValue,
    pub metrics: Arc<Metrics>,
    /// Send `Strict-Transport-Security`: the app is served over https (`PUBLIC_URL`).
    pub hsts: bool,
}

/// A year, the value HSTS preload lists ask for; no `includeSubDomains`: other hosts under the
/// same domain are not this app's to vouch for.
const HSTS: HeaderValue = HeaderValue::from_static("max-age=31536000");

/// Marks a response the LMS's own pages may show in a frame (its logout page loads the
/// front-channel sign-out in a hidden iframe). The response gets
/// [`StackConfig::framable_content_security_policy`] and no `X-Frame-Options`, whose `DENY`
/// would win in browsers that ignore `frame-ancestors`, and whose `ALLOW-FROM` no current browser
/// reads.
#[derive(Clone, Copy, Debug)]
pub struct FramableByLms;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Probes and scrapes that arrive every few seconds: logged at debug, not info.
const QUIET_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// The id of the request being served, as printed in its log line and on its error page.
pub fn current_request_id() -> String {
    CONTEXT
        .try_with(|c| c.id.to_string())
        .unwrap_or_else(|_| "-".into())
}

/// The LMS's display name, for messages.
pub fn current_lms() -> String {
    CONTEXT
        .try_with(|c| c.lms.to_string())
        .unwrap_or_else(|_| "the LMS".into())
}

/// Wraps the router in the stack; the first layer added is the innermost.
pub fn stack(router: Router, config: StackConfig) -> Router {
    let hsts = config.hsts;
    let routes = router
        .layer(CatchPanicLayer::custom(|_panic| {
            // The panic message may hold anything; it goes nowhere near the page.
            tracing::error!("a handler panicked");
            error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "This app ran into a problem on its side. Please try again.",
            )
        }))
        .layer(middleware::from_fn_with_state(
            config.clone(),
            request_context,
        ));
    // `Router::layer` wraps each route, inside the code that adds a 405's `Allow` header; the
    // layers below wrap the whole router, so they see every answer as it leaves.
    let router = Router::new()
        .fallback_service(routes)
        .layer(middleware::from_fn_with_state(
            config.clone(),
            our_error_pages,
        ))
        // Outermost, so that every response gets the headers: the timeout page and the session
        // layer's own failures included.
        .layer(middleware::from_fn_with_state(config, security_headers));
    if hsts {
        router.layer(SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            HSTS,
        ))
    } else {
        router
    }
}

/// Gives the request an id, serves it within its timeout, and logs one line: method, path (never
/// the query string, which carries the authorization code), status and latency.
async fn request_context(
    State(config): State<StackConfig>,
    request: Request,
    next: Next,
) -> Response {
    let id: Arc<str> = format!("{:016x}", rand::random::<u64>()).into();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    // The route pattern, not the path: a bounded set of metric labels.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_owned();
    let started = Instant::now();
    let span = tracing::info_span!("request", id = %id);
    let context = RequestContext {
        id: id.clone(),
        lms: config.lms_name.clone(),
    };
    let mut response = CONTEXT
        .scope(context.clone(), async {
            match tokio::time::timeout(config.request_timeout, next.run(request)).await {
                Ok(response) => response,
                Err(_) => error_page(
                    StatusCode::GATEWAY_TIMEOUT,
                    "This is taking too long",
                    "The page could not be prepared in time. Please try again.",
                ),
            }
        })
        .instrument(span.clone())
        .await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let status = response.status().as_u16();
    config.metrics.request(&route, &method, status);
    // Hundredths of a millisecond: finer digits are noise, and long ones clutter every line.
    let latency_ms = (started.elapsed().as_secs_f64() * 100_000.0).round() / 100.0;
    span.in_scope(|| {
        if QUIET_PATHS.contains(&path.as_str()) {
            tracing::debug!(%method, %path, status, latency_ms, "served");
        } else {
            tracing::info!(%method, %path, status, latency_ms, "served");
        }
    });
    response
}

/// An error answer that is not our page (an extractor's rejection, axum's 405, a layer's bare
/// status) becomes our page, with the request id and a message for its status. JSON answers (the
/// readiness probe's 503) are left as they are: their clients read JSON.
async fn our_error_pages(
    State(config): State<StackConfig>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let response = next.run(request).await;
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if status.as_u16() < 400 || json || is_our_page(&response) {
        return response;
    }
    let id = response
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let context = RequestContext {
        id: id.into(),
        lms: config.lms_name.clone(),
    };
    let span = tracing::info_span!("request", id = %id);
    let mut page = CONTEXT.sync_scope(context, || {
        let allow = response.headers().get(header::ALLOW);
        span.in_scope(|| page_for_status(status, &method, allow))
    });
    for name in [REQUEST_ID, header::ALLOW] {
        if let Some(value) = response.headers().get(&name) {
            page.headers_mut().insert(name, value.clone());
        }
    }
    page
}

/// Headers every response carries unless its handler chose otherwise. Pages here show personal
/// data and sign-in codes pass through them, so nothing is cached and no referrer leaves.
async fn security_headers(
    State(config): State<StackConfig>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let framable = response.extensions().get::<FramableByLms>().is_some();
    let headers = response.headers_mut();
    let (policy, frame_options) = if framable {
        (config.framable_content_security_policy.clone(), None)
    } else {
        (
            config.content_security_policy.clone(),
            Some(HeaderValue::from_static("DENY")),
        )
    };
    if let Some(value) = frame_options {
        headers.entry(header::X_FRAME_OPTIONS).or_insert(value);
    }
    let defaults = [
        (header::CONTENT_SECURITY_POLICY, policy),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ];
    for (name, value) in defaults {
        headers.entry(name).or_insert(value);
    }
    response
}

/// A CSP with no script at all: the pages need none. Images may come from the LMS (profile
/// pictures), which may sit on another host or a CDN, hence `https:` and the LMS origin.
pub fn content_security_policy(lms_origin: &str) -> HeaderValue {
    policy(lms_origin, "'none'")
}

/// [`content_security_policy`], except that pages of the LMS's origin (and no other) may frame
/// the response: see [`FramableByLms`].
pub fn framable_content_security_policy(lms_origin: &str) -> HeaderValue {
    policy(lms_origin, lms_origin)
}

fn policy(lms_origin: &str, frame_ancestors: &str) -> HeaderValue {
    let policy = format!(
        "default-src 'none'; style-src 'self'; img-src 'self' data: https: {lms_origin}; \
         form-action 'self' {lms_origin}; frame-ancestors {frame_ancestors}; base-uri 'none'"
    );
    HeaderValue::from_str(&policy).unwrap_or_else(|_| {
        // Nobody may frame the fallback: an LMS origin that is not a valid header value cannot
        // be named, and `'none'` is the safe reading of that.
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self' data: https:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        )
    })
}
