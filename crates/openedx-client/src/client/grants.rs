//! The token recipes of the Open edX REST API authentication docs, one method each, beside the
//! authorization-code flow the web app uses: client credentials, resource owner password (public
//! clients, as the mobile apps), refresh, revoke, and calling any API with the token.

use oauth2::{
    AuthType, ClientId, RefreshToken, ResourceOwnerPassword, ResourceOwnerUsername, TokenUrl,
    basic::BasicClient,
};
use serde_json::Value;

use super::send_token_request;
use crate::{
    Endpoint, LmsClient, LmsError, Secret, Token,
    config::join,
    transport::{oauth_request_error, parse},
};

/// `token_type_hint` for revocation (RFC 7009).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenHint {
    /// `access_token`: an opaque access token (a JWT cannot be revoked).
    AccessToken,
    /// `refresh_token`: revoking it also deletes the access token issued with it.
    RefreshToken,
}

impl TokenHint {
    /// The value sent as `token_type_hint`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessToken => "access_token",
            Self::RefreshToken => "refresh_token",
        }
    }
}

/// Why `path` cannot be an API path on the LMS, if it cannot: [`LmsClient::api_get`] only ever
/// calls the LMS it is configured for, so a URL, a `//host` (another host to a browser or a URL
/// parser), or a relative path is refused before anything is sent.
pub fn check_api_path(path: &str) -> Result<(), &'static str> {
    if path.starts_with("//") || path.contains('\\') {
        Err("a path starting with // or holding \\ names another host; start it with a single /")
    } else if path.starts_with('/') {
        Ok(())
    } else if path.contains("://") {
        Err("it is a URL; give the path on the LMS alone, e.g. /api/user/v1/me")
    } else {
        Err("it is relative; start it with /, e.g. /api/user/v1/me")
    }
}

impl LmsClient {
    /// The same client, asking for RS512 JWTs (`asymmetric_jwt=1`) that a service can verify with
    /// the LMS's public JWK set instead of its shared secret.
    pub fn asymmetric(mut self) -> Self {
        self.asymmetric_jwt = true;
        self
    }

    /// Recipe 1, client credentials: a token for the application itself (it acts as the user who
    /// owns it). No refresh token comes back: renewing means asking again.
    ///
    /// ```
    /// use openedx_client::{ClientConfig, LmsClient};
    /// use openedx_standin::{LmsUser, RegisteredClient, StandIn};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let lms = StandIn::builder()
    ///     .user(LmsUser::demo_learner())
    ///     .client(RegisteredClient::client_credentials("reports", "reports-secret", "reports-service"))
    ///     .client(RegisteredClient::public_password("mobile"))
    ///     .start()
    ///     .await?;
    /// let client = LmsClient::new(ClientConfig::new(lms.url().as_str(), "reports", "reports-secret")?)?;
    /// let token = client.client_credentials().await?;
    /// assert_eq!(token.authorization(), format!("JWT {}", token.access_token.expose()));
    /// assert!(token.refresh_token.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn client_credentials(&self) -> Result<Token, LmsError> {
        send_token_request!(self, self.oauth.exchange_client_credentials())
    }

    /// Recipe 2, resource owner password: what the LMS's mobile apps do, as **public** clients
    /// (`client_id` only, no secret). The user may give their username or their email. With
    /// recipes 3 and 6, refresh and revoke, as the same public client:
    ///
    /// ```
    /// use openedx_client::{ClientConfig, LmsClient, LmsError, Secret, TokenHint};
    /// use openedx_standin::{LmsUser, RegisteredClient, StandIn};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let lms = StandIn::builder()
    ///     .user(LmsUser::demo_learner())
    ///     .client(RegisteredClient::client_credentials("reports", "reports-secret", "reports-service"))
    ///     .client(RegisteredClient::public_password("mobile"))
    ///     .start()
    ///     .await?;
    /// let client = LmsClient::new(ClientConfig::new(lms.url().as_str(), "reports", "reports-secret")?)?;
    /// let password = Secret::new("learner-password"); // from a prompt, never an argument
    /// let token = client.password("mobile", "learner", &password).await?;
    /// let refresh = token.refresh_token.clone().ok_or("no refresh token")?;
    ///
    /// let renewed = client.refresh_token(&refresh, Some("mobile")).await?;
    /// let spent = client.refresh_token(&refresh, Some("mobile")).await;
    /// assert!(matches!(spent, Err(LmsError::OAuth { error, .. }) if error == "invalid_grant"));
    ///
    /// let newest = renewed.refresh_token.ok_or("no refresh token")?;
    /// client.revoke_token(&newest, TokenHint::RefreshToken, Some("mobile")).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn password(
        &self,
        public_client_id: &str,
        username: &str,
        password: &Secret,
    ) -> Result<Token, LmsError> {
        let username = ResourceOwnerUsername::new(username.to_owned());
        let password = ResourceOwnerPassword::new(password.expose().to_owned());
        let public = self.public_client(public_client_id)?;
        send_token_request!(self, public.exchange_password(&username, &password))
    }

    /// Recipe 3, refresh: `grant_type=refresh_token` with `token_type=jwt` again. The refresh
    /// token rotates: keep the new one. Tokens from the password grant are refreshed by the same
    /// public client (`public_client_id`); others by this confidential client.
    pub async fn refresh_token(
        &self,
        refresh_token: &Secret,
        public_client_id: Option<&str>,
    ) -> Result<Token, LmsError> {
        let refresh = RefreshToken::new(refresh_token.expose().to_owned());
        let public = public_client_id
            .map(|id| self.public_client(id))
            .transpose()?;
        let request = match &public {
            Some(client) => client.exchange_refresh_token(&refresh),
            None => self.oauth.exchange_refresh_token(&refresh),
        };
        let mut token: Token = send_token_request!(self, request)?;
        if token.refresh_token.is_none() {
            // Without rotation the old refresh token stays valid.
            token.refresh_token = Some(refresh_token.clone());
        }
        Ok(token)
    }

    /// Recipe 6, revoke: `POST /oauth2/revoke_token` with `token` and `token_type_hint`, as the
    /// client the token was issued to (`public_client_id` for password-grant tokens). The LMS
    /// answers 200 whether or not the token existed, and ignores other clients' tokens; a JWT
    /// cannot be revoked (revoke its refresh token instead).
    pub async fn revoke_token(
        &self,
        token: &Secret,
        hint: TokenHint,
        public_client_id: Option<&str>,
    ) -> Result<(), LmsError> {
        self.revoke_as(token.expose(), hint.as_str(), public_client_id)
            .await
    }

    /// Recipe 5, call an API: `GET {LMS}{path}` with `Authorization: JWT <jwt>` (or `Bearer` for
    /// an opaque token), e.g. `/api/enrollment/v1/enrollment`. `path` is a path on the LMS, never
    /// another host.
    ///
    /// ```
    /// use openedx_client::{ClientConfig, LmsClient, LmsError, Secret};
    /// use openedx_standin::{LmsUser, RegisteredClient, StandIn};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let lms = StandIn::builder()
    ///     .user(LmsUser::demo_learner())
    ///     .client(RegisteredClient::client_credentials("reports", "reports-secret", "reports-service"))
    ///     .client(RegisteredClient::public_password("mobile"))
    ///     .start()
    ///     .await?;
    /// let client = LmsClient::new(ClientConfig::new(lms.url().as_str(), "reports", "reports-secret")?)?;
    /// let token = client.password("mobile", "learner", &Secret::new("learner-password")).await?;
    /// let enrollments = client.api_get("/api/enrollment/v1/enrollment", &token).await?;
    /// assert_eq!(enrollments[0]["user"], "learner");
    /// let elsewhere = client.api_get("https://elsewhere.example/x", &token).await;
    /// assert!(matches!(elsewhere, Err(LmsError::NotAnLmsPath { .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn api_get(&self, path: &str, token: &Token) -> Result<Value, LmsError> {
        if let Err(problem) = check_api_path(path) {
            return Err(LmsError::NotAnLmsPath {
                path: path.to_owned(),
                problem,
            });
        }
        let endpoint = Endpoint::Api(path.to_owned());
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let mut url = join(&self.api_root, path.trim_start_matches('/'));
        if !query.is_empty() {
            url.set_query(Some(query));
        }
        let body = self.get(endpoint.clone(), url, token).await?;
        parse(endpoint, &body)
    }

    /// A public client of the same LMS: `client_id` in the form body, no secret.
    fn public_client(
        &self,
        client_id: &str,
    ) -> Result<
        BasicClient<
            oauth2::EndpointNotSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointSet,
        >,
        LmsError,
    > {
        let token_url =
            TokenUrl::new(self.oauth.token_uri().to_string()).map_err(|e| LmsError::Garbage {
                endpoint: Endpoint::Token,
                detail: e.to_string(),
            })?;
        Ok(BasicClient::new(ClientId::new(client_id.to_owned()))
            .set_token_uri(token_url)
            .set_auth_type(AuthType::RequestBody))
    }
}
