//! The stand-in's HTML pages: rendering a template, and the page with a title and one paragraph.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};

/// Renders a template as an HTML response; a template that fails is a plain-text 500.
pub(crate) fn render(template: &impl askama::Template) -> Response {
    match template.render() {
        Ok(html) => axum::response::Html(html).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[derive(askama::Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    title: &'a str,
    message: &'a str,
}

/// A stand-in page with a title and one paragraph.
pub(crate) fn page(status: StatusCode, title: &str, message: &str) -> Response {
    (status, render(&MessagePage { title, message })).into_response()
}
