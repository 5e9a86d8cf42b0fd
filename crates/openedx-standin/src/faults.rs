//! Failures on demand: a [`Fault`] set at an endpoint, and the layer in front of every LMS route
//! that counts each request, plays the fault set for its endpoint, if any, and writes the journal.

use std::time::Duration;

use axum::{
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::{JournalEntry, journal::endpoint_of, state::Shared};

/// A failure the stand-in plays at one endpoint until cleared, for the app's failure tests.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer normally, but only after this long (set it beyond the app's timeout for a hang).
    Delay(Duration),
    /// Answer this instead: a proxy's 502, an HTML error page, JSON missing its fields...
    Respond {
        /// The HTTP status.
        status: u16,
        /// The `Content-Type`.
        content_type: &'static str,
        /// The body, as is.
        body: String,
    },
}

/// Counts every request by endpoint, plays the fault set for it, if any, and writes the journal.
pub(crate) async fn count_and_play_faults(
    axum::extract::State(s): axum::extract::State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let endpoint = endpoint_of(&path);
    let fault = endpoint.and_then(|endpoint| {
        s.count(endpoint);
        s.lock().faults.get(endpoint).cloned()
    });
    let response = match fault {
        None => next.run(request).await,
        Some(Fault::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            next.run(request).await
        }
        Some(Fault::Respond {
            status,
            content_type,
            body,
        }) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            [(header::CONTENT_TYPE, content_type)],
            body,
        )
            .into_response(),
    };
    s.lock().journal.push(JournalEntry {
        method,
        path,
        endpoint,
        status: response.status().as_u16(),
    });
    response
}
