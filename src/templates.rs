//! What every page shares: rendering an Askama template into a response, and the stylesheet and
//! icon the layout links to. Page structs live beside their handlers.
//!
//! The stylesheet and icon are compiled into the binary, so a deployment is one file plus its
//! database; their URLs carry a content hash, so they can be cached for a year
//! (`crate::routes::assets` serves them). Templates call nothing in the crate but this module.

use std::sync::LazyLock;

use askama::Template;
use axum::{
    http::{StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use sha2::{Digest, Sha256};

pub const STYLESHEET_PATH: &str = "/static/style.css";
pub const FAVICON_PATH: &str = "/static/favicon.svg";

pub const STYLESHEET: &str = include_str!("../static/style.css");
pub const FAVICON: &str = include_str!("../static/favicon.svg");

static STYLESHEET_URL: LazyLock<String> =
    LazyLock::new(|| format!("{STYLESHEET_PATH}?v={}", short_hash(STYLESHEET)));
static FAVICON_URL: LazyLock<String> =
    LazyLock::new(|| format!("{FAVICON_PATH}?v={}", short_hash(FAVICON)));

/// The stylesheet's versioned URL, for the layout.
pub fn stylesheet_url() -> &'static str {
    &STYLESHEET_URL
}

/// The favicon's versioned URL, for the layout.
pub fn favicon_url() -> &'static str {
    &FAVICON_URL
}

fn short_hash(content: &str) -> String {
    Sha256::digest(content.as_bytes())[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Renders a template as an HTML response. A template that fails to render is a bug, reported as a
/// plain-text 500 (rendering the error page could fail the same way).
pub fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "Something went wrong while showing this page.",
            )
                .into_response()
        }
    }
}
