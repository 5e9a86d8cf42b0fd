//! **profiles**: sign in with the Open edX LMS (OAuth 2 authorization code + PKCE) and see your
//! LMS profile. Written to be read as a reference for talking to Open edX correctly; what knows
//! the LMS's wire format is the `openedx_client` crate (`crates/openedx-client`; the Open edX
//! facts it relies on, with links to the LMS source, are its `wire` module), and the LMS
//! stand-in that the demo (`cargo run --example demo`) and the tests run is the `openedx_standin`
//! crate.
//!
//! # Layout
//! The modules, from the top (what a request meets first) down; each imports only modules below
//! it, and the route modules never import each other (`tests/layering.rs` checks both):
//! - this file: [`app`], the router with its middleware, and [`serve`].
//! - `connections`: the HTTP server [`serve`] runs: the accept loop, its connection limit, the
//!   header-read and idle timeouts, the graceful stop.
//! - [`middleware`]: the stack: request id, the log line, timeout, panics, security headers,
//!   metrics by route, and the error-page layer.
//! - [`routes`]: which handler answers which path; its submodules are the pages, each with its
//!   templates: `signin` (`GET /`, `GET /authorize/`), `profile`, `signout` (ours, and the LMS's
//!   front-channel one), `health` (probes, metrics), `assets`.
//! - [`signed_in`]: what the pages share about a signed-in person: the extractors a handler
//!   names in its signature ([`signed_in::SignedIn`], [`signed_in::CsrfForm`],
//!   [`signed_in::Visitor`]), and ending a sign-in.
//! - [`tokens`]: the LMS token's life: refreshed once across replicas, revoked when its session
//!   ends or expires, and a revocation the LMS did not confirm retried until it does.
//! - [`state`]: [`AppState`], what every handler may use.
//! - [`session`]: the session cookie (tower-sessions, as a cookie layer only) and the typed
//!   signed-in session read from its row; `session::pending`, the sealed pending-sign-in cookies.
//! - [`error`]: [`error::AppError`], the one error type handlers return, as one table of
//!   status, page, log level and metrics label; `error::page`, the page every error becomes.
//! - [`store`]: the database pool and migrations; by concern, the `sessions` table, token refresh
//!   claims, reaping expired sessions, the `revocations` kept for a retry, the `profiles` table,
//!   and the watcher that knows when the database is down.
//! - [`config`]: the typed settings, read once from the environment; `config::env`, reading
//!   and checking one variable.
//! - [`keys`]: `SECRET_KEYS`, and the XChaCha20-Poly1305 sealing of cookies and stored values.
//! - [`metrics`], [`names`] (English names of the country and language codes in an account),
//!   [`templates`] (rendering pages): leaves.
//! - below all: the `openedx_client` crate.

pub mod config;
mod connections;
pub mod error;
pub mod keys;
pub mod metrics;
pub mod middleware;
pub mod names;
pub mod routes;
pub mod session;
pub mod signed_in;
pub mod state;
pub mod store;
pub mod templates;
pub mod tokens;

use axum::Router;

pub use crate::state::AppState;

/// The whole app: routes, sessions and the middleware stack. Tests serve exactly this.
pub fn app(state: AppState) -> Router {
    let config = &state.config;
    let lms_origin = config.lms.url.origin().ascii_serialization();
    let stack = middleware::StackConfig {
        lms_name: config.lms_name().into(),
        // The callback makes three LMS calls in a row, each bounded by LMS_TIMEOUT_SECS; a reload
        // may first wait out another request's refresh (one more call, plus its claim's margin).
        request_timeout: config.lms.timeout * 4 + std::time::Duration::from_secs(10),
        content_security_policy: middleware::content_security_policy(&lms_origin),
        framable_content_security_policy: middleware::framable_content_security_policy(&lms_origin),
        metrics: state.metrics.clone(),
        hsts: config.public_url.scheme() == "https",
    };
    let sessions = session::layer(config);
    let mut outside = routes::outside_sessions();
    if config.metrics_public {
        outside = outside.route("/metrics", axum::routing::get(routes::health::metrics));
    }
    let router = routes::pages()
        .layer(sessions)
        .merge(outside)
        .with_state(state);
    middleware::stack(router, stack)
}

/// Serves the app until Ctrl-C or SIGTERM, ending expired sessions (and revoking their tokens) in
/// the background; in-flight requests finish before it returns, then the database pool is closed.
/// Connections are held to the `HTTP_*` limits of [`config::HttpLimits`].
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    serve_until(listener, state, shutdown_signal()).await
}

/// [`serve`], stopping when `shutdown` completes instead of on a signal (for tests and embedders):
/// no new connections are accepted, in-flight requests finish, then the pool is closed.
pub async fn serve_until(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Ids only (they reveal nothing of a key): what a log line about a value that does not open
    // names, so an operator can tell which key a replica lacks.
    tracing::info!(
        key_ids = ?state.store.keys().ids(),
        "sealing with the first key of SECRET_KEYS, opening with each"
    );
    // A set aborts its tasks when dropped: they stop with the server, also when the server's
    // own future is dropped instead of shut down. Cut short, none loses anything: a revocation
    // in flight is kept in the database until the LMS confirms it.
    let mut background = tokio::task::JoinSet::new();
    background.spawn(end_expired_sessions(state.clone()));
    background.spawn(retry_kept_revocations(state.clone()));
    background.spawn(state.store.clone().watch());
    if let Some(bind) = state.config.metrics_bind {
        background.spawn(serve_metrics(bind, state.clone()).await?);
    }
    let (store, held) = (state.store.clone(), state.held_revocations.clone());
    let limits = state.config.http;
    connections::serve(listener, app(state), limits, shutdown).await;
    background.abort_all();
    let held = held.load(std::sync::atomic::Ordering::Relaxed);
    if held > 0 {
        tracing::error!(
            tokens = held,
            "stopping while neither the LMS nor the database would take tokens to revoke: they \
             stay valid at the LMS until they expire"
        );
    }
    store.close().await;
    Ok(())
}

/// `/metrics` and the detailed `/readyz` on `METRICS_BIND`, e.g. a port only the monitoring
/// network reaches.
async fn serve_metrics(
    bind: std::net::SocketAddr,
    state: AppState,
) -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    let listener = tokio::net::TcpListener::bind(bind).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("METRICS_BIND: cannot listen on {bind}: {e}"),
        )
    })?;
    tracing::info!(%bind, "metrics and readiness details are served on their own address");
    let limits = state.config.http;
    let router = routes::health::internal_router(state);
    Ok(connections::serve(
        listener,
        router,
        limits,
        std::future::pending(),
    ))
}

/// Every minute, the sessions past their expiry: each one's refresh token is revoked at the LMS
/// before its row goes.
async fn end_expired_sessions(state: AppState) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        every.tick().await;
        if let Err(e) = tokens::reap_expired(&state).await {
            tracing::warn!(error = %e, "could not end expired sessions");
        }
    }
}

/// Every second, the revocations the LMS has not confirmed yet whose time has come (one indexed
/// read when none has). A failing database is reported when it starts failing, then once a
/// minute, not every second.
async fn retry_kept_revocations(state: AppState) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing_since: Option<tokio::time::Instant> = None;
    let mut last_report = tokio::time::Instant::now();
    loop {
        every.tick().await;
        match tokens::retry_revocations(&state).await {
            Ok(_) => {
                if failing_since.take().is_some() {
                    tracing::info!("kept revocations can be read again");
                }
            }
            Err(e) => {
                let now = tokio::time::Instant::now();
                let report = match failing_since {
                    None => true,
                    Some(_) => now.duration_since(last_report).as_secs() >= 60,
                };
                failing_since.get_or_insert(now);
                if report {
                    last_report = now;
                    tracing::warn!(error = %e, "could not retry kept revocations (reported once a minute while it lasts)");
                }
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
