//! Rendering Askama templates into responses. Page structs live beside their handlers; this
//! module holds what every page shares.

use askama::Template;
use axum::{
    http::{StatusCode, header},
    response::{Html, IntoResponse, Response},
};

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
