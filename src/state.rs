//! [`AppState`]: everything a request handler may need, built once at start.

use std::sync::Arc;

use openedx_client::LmsClient;

use crate::{config::Config, metrics::Metrics, session::PendingCookies, store::Store};

/// Everything a request handler may need; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    /// Behind an `Arc`: the client holds URLs and strings, and axum clones the state per request.
    pub lms: Arc<LmsClient>,
    pub store: Store,
    pub pending: PendingCookies,
    pub metrics: Arc<Metrics>,
    /// Code exchanges in flight at once ([`MAX_EXCHANGES`]): however many callbacks arrive, the
    /// LMS sees at most this many token requests from them at a time.
    pub exchanges: Arc<tokio::sync::Semaphore>,
    /// Tokens this process holds for revocation that neither the LMS nor the database has taken
    /// yet (`crate::tokens::revoke_or_keep`); a stop loses them, and says how many.
    pub held_revocations: Arc<std::sync::atomic::AtomicUsize>,
}

/// A sign-in's code exchange takes one LMS round trip; a few at once serve a classroom signing in
/// together, and a flood of made-up callbacks is turned away (503) instead of reaching the LMS.
pub const MAX_EXCHANGES: usize = 8;

impl AppState {
    /// Opens the database (applying migrations, settling the keys) and builds the LMS client.
    pub async fn new(config: Config) -> Result<Self, String> {
        let store = Store::connect_with(
            config.database_url.expose(),
            config.secret_keys.clone(),
            config.database_timeout,
        )
        .await?;
        let metrics = Arc::new(Metrics::default());
        let observed = metrics.clone();
        let lms = LmsClient::new(config.lms.clone())
            .map_err(|e| e.to_string())?
            .on_call(move |endpoint, took| observed.lms_call(endpoint.label(), took));
        let lms = Arc::new(lms);
        let pending = PendingCookies::new(store.keys().clone(), &config);
        Ok(Self {
            config: Arc::new(config),
            lms,
            store,
            pending,
            metrics,
            exchanges: Arc::new(tokio::sync::Semaphore::new(MAX_EXCHANGES)),
            held_revocations: Arc::default(),
        })
    }
}
