//! **profiles**: sign in with the Open edX LMS (OAuth 2 authorization code + PKCE) and see your
//! LMS profile. Written to be read as a reference for talking to Open edX correctly.
//!
//! # Layout
//! - [`cli`]: the command line: serve, demo, and the LMS token recipes and API calls.
//! - [`config`]: the typed settings, read once from the environment and `.env`.
//! - [`lms`]: the Open edX client; the only module that knows the LMS wire format
//!   (authorize URL, token exchange with `token_type=jwt`, `JWT`/`Bearer` schemes, user APIs),
//!   and the documented token recipes (client credentials, password, refresh, revoke, JWT
//!   verification, a self-renewing authorizer).
//! - [`session`]: the typed session (pending sign-ins, the signed-in account, CSRF token).
//! - [`tokens`]: the token's life: stored per session, refreshed once across replicas.
//! - [`routes`]: the pages: `GET /` and `GET /authorize/` (sign-in), `/profile/`, sign-out,
//!   static files.
//! - [`store`]: the database pool, migrations and the `profiles` table.
//! - [`error`]: the one error type handlers return, rendered as an error page.
//! - [`middleware`]: request id, logging, timeout, panic catching, security headers.
//! - [`names`]: English names for the country and language codes in an LMS account.
//! - [`templates`]: rendering Askama templates (pages live beside their handlers).
//! - [`standin`]: a development stand-in for the LMS that speaks its wire format; used by
//!   `profiles demo` and the tests, never by the app's own request paths.
//! - [`demo`]: `profiles demo`, the stand-in and the app together on loopback.

pub mod cli;
pub mod config;
pub mod demo;
pub mod error;
pub mod lms;
pub mod metrics;
pub mod middleware;
pub mod names;
pub mod routes;
pub mod secret;
pub mod session;
pub mod standin;
pub mod store;
pub mod templates;
pub mod tokens;

use std::sync::Arc;

use axum::Router;

use crate::{config::Config, lms::LmsClient, metrics::Metrics, store::Store};

/// Everything a request handler may need; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub lms: LmsClient,
    pub store: Store,
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// Opens the database (applying migrations) and builds the LMS client.
    pub async fn new(config: Config) -> Result<Self, String> {
        let store = Store::connect(config.database_url.expose()).await?;
        let metrics = Arc::new(Metrics::default());
        let lms = LmsClient::new(&config, metrics.clone())?;
        Ok(Self {
            config: Arc::new(config),
            lms,
            store,
            metrics,
        })
    }
}

/// The whole app: routes, sessions and the middleware stack. Tests serve exactly this.
pub fn app(state: AppState) -> Router {
    let config = &state.config;
    let lms_origin = config.lms_url.origin().ascii_serialization();
    let stack = middleware::StackConfig {
        lms_name: config
            .lms_url
            .host_str()
            .unwrap_or("the LMS")
            .to_owned()
            .into(),
        // The callback makes three LMS calls in a row, each bounded by LMS_TIMEOUT_SECS; a reload
        // may first wait out another request's refresh (one more call, plus its claim's margin).
        request_timeout: config.lms_timeout * 4 + std::time::Duration::from_secs(10),
        content_security_policy: middleware::content_security_policy(&lms_origin),
        metrics: state.metrics.clone(),
        hsts: config.public_url.scheme() == "https",
    };
    let sessions = session::layer(state.store.session_store(), config);
    let mut router = routes::router();
    if config.metrics_public {
        router = router.route("/metrics", axum::routing::get(routes::health::metrics));
    }
    let router = router.layer(sessions).with_state(state);
    middleware::stack(router, stack)
}

/// Serves the app until Ctrl-C or SIGTERM, deleting expired sessions in the background; in-flight
/// requests finish before it returns, then the database pool is closed.
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
    use tower_sessions::ExpiredDeletion;
    let deletion = tokio::spawn(
        state
            .store
            .session_store()
            .continuously_delete_expired(tokio::time::Duration::from_secs(300)),
    );
    let tokens = tokio::spawn(delete_orphaned_tokens(
        state.store.clone(),
        state.config.session_max,
    ));
    let metrics_server = match state.config.metrics_bind {
        Some(bind) => Some(serve_metrics(bind, state.clone()).await?),
        None => None,
    };
    let store = state.store.clone();
    let result = axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await;
    deletion.abort();
    tokens.abort();
    if let Some(server) = metrics_server {
        server.abort();
    }
    store.close().await;
    result
}

/// `/metrics` and the detailed `/readyz` on `METRICS_BIND`, e.g. a port only the monitoring
/// network reaches.
async fn serve_metrics(
    bind: std::net::SocketAddr,
    state: AppState,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(bind).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("METRICS_BIND: cannot listen on {bind}: {e}"),
        )
    })?;
    tracing::info!(%bind, "metrics and readiness details are served on their own address");
    let router = routes::health::internal_router(state);
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "the metrics server stopped");
        }
    }))
}

/// Tokens of sessions that expired without a sign-out outlive them in the `tokens` table; no
/// session is older than `session_max`, so neither is any token still in use.
async fn delete_orphaned_tokens(store: store::Store, session_max: std::time::Duration) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(300));
    loop {
        every.tick().await;
        let cutoff = lms::unix_now() - session_max.as_secs() as i64 - 60;
        if let Err(e) = store.delete_tokens_created_before(cutoff).await {
            tracing::warn!(error = %e, "could not delete expired tokens");
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
