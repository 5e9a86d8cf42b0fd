//! Prometheus metrics: requests by route and status, sign-ins started, completed and failed by
//! reason, token refreshes by outcome, and the latency of every LMS call by endpoint. Each app
//! state owns its registry, so several apps in one process (the tests) count separately.

use std::time::Duration;

use axum::http::Method;

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

/// RFC 9110's methods by name; hyper accepts any token as a method, and those count as `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

type LatencyFamily = Family<EndpointLabels, Histogram, fn() -> Histogram>;

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    sign_ins_started: Counter,
    sign_ins_completed: Counter,
    sign_ins_failed: Family<ReasonLabels, Counter>,
    token_refreshes: Family<OutcomeLabels, Counter>,
    revocations: Family<OutcomeLabels, Counter>,
    lms_latency: LatencyFamily,
}

fn latency_histogram() -> Histogram {
    // 5 ms to about 20 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 13))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("profiles");
        let requests = Family::<RequestLabels, Counter>::default();
        let sign_ins_started = Counter::default();
        let sign_ins_completed = Counter::default();
        let sign_ins_failed = Family::<ReasonLabels, Counter>::default();
        let token_refreshes = Family::<OutcomeLabels, Counter>::default();
        let revocations = Family::<OutcomeLabels, Counter>::default();
        let lms_latency: LatencyFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_requests",
            "HTTP requests served, by route, method and status",
            requests.clone(),
        );
        registry.register(
            "sign_ins_started",
            "Sign-ins sent to the LMS",
            sign_ins_started.clone(),
        );
        registry.register(
            "sign_ins_completed",
            "Sign-ins that came back and signed someone in",
            sign_ins_completed.clone(),
        );
        registry.register(
            "sign_ins_failed",
            "Sign-ins that came back and failed, by reason",
            sign_ins_failed.clone(),
        );
        registry.register(
            "token_refreshes",
            "Access-token refreshes, by outcome (ok, refused, error)",
            token_refreshes.clone(),
        );
        registry.register(
            "revocations",
            "Tries of a revocation at the LMS, by outcome (revoked; postponed: kept to try again; \
             not_here: sealed under a key this replica lacks; dropped: past saving)",
            revocations.clone(),
        );
        registry.register(
            "lms_request_duration_seconds",
            "Time taken by calls to the LMS, by endpoint",
            lms_latency.clone(),
        );
        Self {
            registry,
            requests,
            sign_ins_started,
            sign_ins_completed,
            sign_ins_failed,
            token_refreshes,
            revocations,
            lms_latency,
        }
    }
}

impl Metrics {
    /// Counts a request under its route pattern (a fixed set), its method and its status (both
    /// chosen from fixed sets too): no label takes a value a client picks, so no client can grow
    /// the number of series.
    pub fn request(&self, route: &str, method: &Method, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method: method_label(method),
                status,
            })
            .inc();
    }

    pub fn sign_in_started(&self) {
        self.sign_ins_started.inc();
    }

    pub fn sign_in_completed(&self) {
        self.sign_ins_completed.inc();
    }

    pub fn sign_in_failed(&self, reason: &'static str) {
        self.sign_ins_failed
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    pub fn token_refresh(&self, outcome: &'static str) {
        self.token_refreshes
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    pub fn revocation(&self, outcome: &'static str) {
        self.revocations
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    pub fn lms_call(&self, endpoint: &'static str, took: Duration) {
        self.lms_latency
            .get_or_create(&EndpointLabels { endpoint })
            .observe(took.as_secs_f64());
    }

    /// The OpenMetrics text exposition, which Prometheus scrapes.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_show_up_in_the_exposition() {
        let metrics = Metrics::default();
        metrics.request("/profile/", &Method::GET, 200);
        metrics.sign_in_failed("declined");
        metrics.lms_call("token", Duration::from_millis(12));
        metrics.revocation("postponed");
        let text = metrics.render();
        assert!(text.contains(r#"profiles_revocations_total{outcome="postponed"} 1"#));
        assert!(text.contains(
            r#"profiles_http_requests_total{route="/profile/",method="GET",status="200"} 1"#
        ));
        assert!(text.contains(r#"profiles_sign_ins_failed_total{reason="declined"} 1"#));
        assert!(
            text.contains(r#"profiles_lms_request_duration_seconds_count{endpoint="token"} 1"#)
        );
    }
}
