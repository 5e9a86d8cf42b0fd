//! The stylesheet and favicon (`crate::templates` holds them and their versioned URLs), served
//! with a year of caching: their URLs change with their content.

use axum::{
    http::header,
    response::{IntoResponse, Response},
};

use crate::templates::{FAVICON, STYLESHEET};

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
