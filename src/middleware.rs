//! The whole middleware stack, in one place and in order, as the Rust package registry's server
//! assembles its own (crates.io's `src/middleware.rs`): standard `tower-http` layers for the
//! request id, the log line, the timeout, panics and the security headers, and two small layers
//! of ours, `count_request` (metrics by route) and `error_pages` (our page for every error,
//! the framework's own included).

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{MatchedPath, Request, State},
    http::{HeaderName, HeaderValue, StatusCode, header},
    middleware::{Next, from_fn_with_state},
    response::{IntoResponse, Response},
};
use tower::{ServiceBuilder, util::MapRequestLayer};
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    set_header::SetResponseHeaderLayer,
    timeout::TimeoutLayer,
    trace::TraceLayer,
};
use tracing::{Level, Span};

use crate::{
    error::{AppError, page::error_page},
    metrics::Metrics,
};

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

/// Wraps the router in the stack. Read each list from top to bottom as a request meets the layers
/// (and bottom to top as its response leaves them).
pub fn stack(router: Router, config: StackConfig) -> Router {
    // Around each route, after routing: only here is the route's pattern known (axum's
    // `MatchedPath`), which labels the metrics.
    let each_route = ServiceBuilder::new()
        .layer(from_fn_with_state(config.metrics.clone(), count_request))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            config.request_timeout,
        ))
        .layer(CatchPanicLayer::custom(|_panic| {
            // The panic message may hold anything; it goes nowhere near the page or the log.
            AppError::Internal("a handler panicked".into()).into_response()
        }));
    // Around everything, so that every answer passes through: the routes', the session layer's,
    // and those axum makes itself (a 405 with its `Allow` header is only complete out here).
    let (policy, framable_policy) = (
        config.content_security_policy.clone(),
        config.framable_content_security_policy.clone(),
    );
    let everything = ServiceBuilder::new()
        // An id is ours, never a client's: it goes into every log line and onto the page.
        .layer(MapRequestLayer::new(|mut request: Request| {
            request.headers_mut().remove(REQUEST_ID);
            request
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID, NewRequestId))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(log_line)
                .on_body_chunk(())
                .on_eos(())
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        // Security headers, unless the handler chose otherwise. Pages here show personal data and
        // sign-in codes pass through them, so nothing is cached and no referrer leaves.
        .option_layer(config.hsts.then(|| {
            SetResponseHeaderLayer::if_not_present(header::STRICT_TRANSPORT_SECURITY, HSTS)
        }))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            move |response: &Response| {
                Some(if framable(response) {
                    framable_policy.clone()
                } else {
                    policy.clone()
                })
            },
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            move |response: &Response| {
                (!framable(response)).then(|| HeaderValue::from_static("DENY"))
            },
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(from_fn_with_state(config.lms_name, error_pages));
    Router::new()
        .fallback_service(router.layer(each_route))
        .layer(everything)
}

fn framable(response: &Response) -> bool {
    response.extensions().get::<FramableByLms>().is_some()
}

/// Sixteen hex digits, random: short enough to quote, long enough not to repeat.
#[derive(Clone, Copy)]
struct NewRequestId;

impl MakeRequestId for NewRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let id = format!("{:016x}", rand::random::<u64>());
        HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

/// The span every line of a request is logged in: its id, method and path (never the query
/// string, which carries the authorization code). Probes get a debug span, which quiets their
/// line (see [`log_line`]).
fn request_span(request: &Request) -> Span {
    let id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("-");
    let (method, path) = (request.method(), request.uri().path());
    if QUIET_PATHS.contains(&path) {
        tracing::debug_span!("request", id = %id, %method, path = %path)
    } else {
        tracing::info_span!("request", id = %id, %method, path = %path)
    }
}

/// The one line per request, in its span: status and latency, in milliseconds to two decimals
/// (finer digits are noise, and long ones clutter every line). At the level of the span, so that
/// probes stay at debug.
fn log_line(response: &Response, latency: Duration, span: &Span) {
    let status = response.status().as_u16();
    let latency_ms = (latency.as_secs_f64() * 100_000.0).round() / 100.0;
    if span.metadata().is_some_and(|m| *m.level() == Level::DEBUG) {
        tracing::debug!(status, latency_ms, "served");
    } else {
        tracing::info!(status, latency_ms, "served");
    }
}

/// Ours: counts the request under its route's pattern (a fixed set), its method and its status
/// (both bounded too, see [`Metrics::request`]): no client can grow the number of series.
async fn count_request(
    State(metrics): State<Arc<Metrics>>,
    route: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let response = next.run(request).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    metrics.request(route, &method, response.status().as_u16());
    response
}

/// Ours: the error page every failed request needs ([`error_page`]), with the request's id and
/// the LMS's name.
async fn error_pages(State(lms): State<Arc<str>>, request: Request, next: Next) -> Response {
    let id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let method = request.method().clone();
    let response = next.run(request).await;
    error_page(response, &method, &id, &lms)
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

#[cfg(test)]
mod tests {
    use axum::{
        body::{Body, to_bytes},
        http::{HeaderMap, Request},
        routing::get,
    };
    use tower::ServiceExt;

    use super::*;

    fn app(routes: Router) -> Router {
        let origin = "http://lms.example";
        stack(
            routes,
            StackConfig {
                lms_name: "lms.example".into(),
                request_timeout: Duration::from_millis(100),
                content_security_policy: content_security_policy(origin),
                framable_content_security_policy: framable_content_security_policy(origin),
                metrics: Arc::new(Metrics::default()),
                hsts: true,
            },
        )
    }

    async fn get_page(app: Router, request: Request<Body>) -> (StatusCode, HeaderMap, String) {
        let response = app.oneshot(request).await.expect("infallible");
        let (parts, body) = response.into_parts();
        let body = to_bytes(body, 1 << 20).await.expect("a body");
        let text = String::from_utf8(body.to_vec()).expect("utf-8");
        (parts.status, parts.headers, text)
    }

    fn request(path: &str) -> Request<Body> {
        Request::get(path).body(Body::empty()).expect("a request")
    }

    /// Our page, with the response's own request id on it, and every security header.
    fn assert_our_page(headers: &HeaderMap, page: &str, title: &str) {
        let id = headers[REQUEST_ID].to_str().expect("ascii");
        assert_eq!(id.len(), 16, "{id}");
        assert!(page.contains(&format!("<code>{id}</code>")), "{page}");
        assert!(page.contains(title), "{title} in {page}");
        for name in [
            header::CONTENT_SECURITY_POLICY,
            header::X_FRAME_OPTIONS,
            header::X_CONTENT_TYPE_OPTIONS,
            header::REFERRER_POLICY,
            header::CACHE_CONTROL,
            header::STRICT_TRANSPORT_SECURITY,
        ] {
            assert!(headers.contains_key(&name), "{name} missing");
        }
    }

    #[tokio::test]
    async fn a_request_past_its_timeout_gets_our_504_page_with_every_header() {
        let slow = Router::new().route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "too late"
            }),
        );
        let (status, headers, page) = get_page(app(slow), request("/slow")).await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
        assert_our_page(&headers, &page, "This is taking too long");
    }

    #[tokio::test]
    async fn a_panicking_handler_gets_our_500_page_and_nothing_of_the_panic() {
        let panicking = Router::new().route(
            "/panic",
            get(|| async {
                if true {
                    panic!("secret detail");
                }
                "unreachable"
            }),
        );
        let (status, headers, page) = get_page(app(panicking), request("/panic")).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_our_page(&headers, &page, "Something went wrong");
        assert!(!page.contains("secret detail"), "{page}");
        assert!(page.contains("lms.example"), "the LMS is named: {page}");
    }

    #[tokio::test]
    async fn a_request_id_sent_by_a_client_is_replaced_by_ours() {
        let routes = Router::new().route("/", get(|| async { "ok" }));
        let mut sent = request("/");
        sent.headers_mut()
            .insert(REQUEST_ID, HeaderValue::from_static("forged id=1"));
        let (status, headers, _) = get_page(app(routes), sent).await;
        assert_eq!(status, StatusCode::OK);
        assert_ne!(headers[REQUEST_ID], "forged id=1");
        assert_eq!(headers[REQUEST_ID].len(), 16);
    }

    #[tokio::test]
    async fn a_framable_response_names_the_lms_as_its_only_framer() {
        let routes = Router::new().route(
            "/frame",
            get(|| async {
                let mut response = "framed".into_response();
                response.extensions_mut().insert(FramableByLms);
                response
            }),
        );
        let (_, headers, _) = get_page(app(routes), request("/frame")).await;
        assert!(!headers.contains_key(header::X_FRAME_OPTIONS));
        let policy = headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("ascii");
        assert!(
            policy.contains("frame-ancestors http://lms.example"),
            "{policy}"
        );
    }
}
