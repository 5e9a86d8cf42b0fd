//! The stylesheet and favicon, compiled into the binary so a deployment is one file plus its
//! database. Their URLs carry a content hash, so they can be cached for a year.

use std::sync::LazyLock;

use axum::{
    http::header,
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};

pub const STYLESHEET_PATH: &str = "/static/style.css";
pub const FAVICON_PATH: &str = "/static/favicon.svg";

const STYLESHEET: &str = include_str!("../../static/style.css");
const FAVICON: &str = include_str!("../../static/favicon.svg");

static STYLESHEET_URL: LazyLock<String> =
    LazyLock::new(|| format!("{STYLESHEET_PATH}?v={}", short_hash(STYLESHEET)));
static FAVICON_URL: LazyLock<String> =
    LazyLock::new(|| format!("{FAVICON_PATH}?v={}", short_hash(FAVICON)));

/// The stylesheet's versioned URL, for templates.
pub fn stylesheet_url() -> &'static str {
    &STYLESHEET_URL
}

/// The favicon's versioned URL, for templates.
pub fn favicon_url() -> &'static str {
    &FAVICON_URL
}

pub async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", STYLESHEET)
}

pub async fn favicon() -> Response {
    asset("image/svg+xml", FAVICON)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response()
}

fn short_hash(content: &str) -> String {
    Sha256::digest(content.as_bytes())[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
