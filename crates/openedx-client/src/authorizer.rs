//! Service-to-service authorization that renews itself: the "client credentials auth handler" of
//! good OAuth client libraries, for Open edX.

use std::time::Duration;

use serde_json::Value;
use tokio::sync::Mutex;

use crate::{LmsClient, LmsError, Token, unix_now};

/// Fetches a client-credentials JWT on first use, reuses it until it is within `leeway` of
/// expiry, then fetches a new one: once, however many callers ask at the same moment (they wait
/// for the one request in flight).
///
/// ```
/// use std::{sync::Arc, time::Duration};
///
/// use openedx_client::{ClientConfig, ClientCredentialsAuthorizer, LmsClient};
/// use openedx_standin::{RegisteredClient, StandIn};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let lms = StandIn::builder()
///     .client(RegisteredClient::client_credentials("reports", "reports-secret", "reports-service"))
///     .start()
///     .await?;
/// let client = LmsClient::new(ClientConfig::new(lms.url().as_str(), "reports", "reports-secret")?)?;
/// let lms_api = Arc::new(ClientCredentialsAuthorizer::new(client, Duration::from_secs(60)));
/// for _ in 0..3 {
///     let me = lms_api.get("/api/user/v1/me").await?;
///     assert_eq!(me["username"], "reports-service");
/// }
/// assert_eq!(lms.calls("token"), 1, "one token, reused");
/// # Ok(())
/// # }
/// ```
pub struct ClientCredentialsAuthorizer {
    client: LmsClient,
    leeway: Duration,
    current: Mutex<Option<Token>>,
}

impl ClientCredentialsAuthorizer {
    /// An authorizer over `client` (an application registered with the client-credentials grant)
    /// that asks for a new token once the current one has less than `leeway` left. No request is
    /// made until the first [`token`](Self::token) or [`get`](Self::get).
    pub fn new(client: LmsClient, leeway: Duration) -> Self {
        Self {
            client,
            leeway,
            current: Mutex::new(None),
        }
    }

    /// A token that is good for at least `leeway` more.
    pub async fn token(&self) -> Result<Token, LmsError> {
        // Held across the fetch: that is what makes concurrent callers share one request.
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref()
            && !token.is_stale(unix_now(), self.leeway)
        {
            return Ok(token.clone());
        }
        let fresh = self.client.client_credentials().await?;
        *current = Some(fresh.clone());
        Ok(fresh)
    }

    /// `GET` an LMS API with a fresh token.
    pub async fn get(&self, path: &str) -> Result<Value, LmsError> {
        let token = self.token().await?;
        self.client.api_get(path, &token).await
    }
}
