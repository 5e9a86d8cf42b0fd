//! The LMS stand-in's wire format, pinned against the facts `openedx_client::wire` traces to the
//! LMS source: the app's tests are only as good as the LMS they run against, so the stand-in must
//! refuse what the real LMS refuses.
// A test crate as a whole, so that clippy reads its helpers as tests too (clippy.toml lets
// tests unwrap and expect).
#![cfg(test)]

use std::{sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use openedx_standin::{LmsUser, RegisteredClient, Settings, StandIn};
use reqwest::{StatusCode, header};
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

const CLIENT_ID: &str = "app";
const SECRET: &str = "app-secret";
const REDIRECT_URI: &str = "http://127.0.0.1:9/authorize/";
const VERIFIER: &str = "a-verifier-that-is-long-enough-for-rfc-7636-section-4-1-xxxxxxxx";

/// The stand-in with one registered client and a browser that is already logged in to it.
struct Lms {
    standin: StandIn,
    browser: reqwest::Client,
}

impl Lms {
    async fn start(settings: Settings, client: impl FnOnce(&mut RegisteredClient)) -> Self {
        let standin = StandIn::spawn("127.0.0.1:0".parse().unwrap(), settings)
            .await
            .unwrap();
        let mut registered = RegisteredClient {
            skip_authorization: true,
            ..RegisteredClient::authorization_code(CLIENT_ID, SECRET, vec![REDIRECT_URI.into()])
        };
        client(&mut registered);
        standin.register_client(registered);
        standin.add_user(LmsUser::demo_learner());
        let browser = reqwest::Client::builder()
            .cookie_provider(Arc::new(reqwest::cookie::Jar::default()))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let login = browser
            .post(standin.url().join("/login").unwrap())
            .form(&[
                ("username", "learner"),
                ("password", "learner-password"),
                ("next", "/"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), StatusCode::FOUND);
        Self { standin, browser }
    }

    async fn default() -> Self {
        Self::start(Settings::default(), |_| {}).await
    }

    fn url(&self, path: &str) -> Url {
        self.standin.url().join(path).unwrap()
    }

    /// An authorize URL with the usual parameters. `extra` goes first, so it overrides them: for a
    /// repeated name the stand-in reads the first value.
    fn authorize_url(&self, path: &str, extra: &[(&str, &str)]) -> Url {
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()));
        let mut url = self.url(path);
        url.query_pairs_mut().extend_pairs(extra).extend_pairs([
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
            ("scope", "user_id email profile"),
            ("state", "the-state"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ]);
        url
    }

    async fn get(&self, url: Url) -> reqwest::Response {
        self.browser.get(url).send().await.unwrap()
    }

    /// Authorizes (consent is skipped for the default client) and returns the code.
    async fn code(&self) -> String {
        let response = self
            .get(self.authorize_url("/oauth2/authorize/", &[]))
            .await;
        assert_eq!(response.status(), StatusCode::FOUND);
        let redirect = redirect(&response);
        assert_eq!(query(&redirect, "state").as_deref(), Some("the-state"));
        query(&redirect, "code").expect("a code")
    }

    async fn token(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        reqwest::Client::new()
            .post(self.url(path))
            .basic_auth(CLIENT_ID, Some(SECRET))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    async fn exchange(&self, code: &str, extra: &[(&str, &str)]) -> reqwest::Response {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", VERIFIER),
        ];
        form.extend_from_slice(extra);
        self.token("/oauth2/access_token/", &form).await
    }

    async fn jwt(&self) -> String {
        let code = self.code().await;
        let response = self.exchange(&code, &[("token_type", "jwt")]).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn api(&self, path: &str, authorization: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(self.url(path))
            .header(header::AUTHORIZATION, authorization)
            .send()
            .await
            .unwrap()
    }
}

fn redirect(response: &reqwest::Response) -> Url {
    let location = response.headers()[header::LOCATION].to_str().unwrap();
    response.url().join(location).unwrap()
}

fn query(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn json(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn authorize_and_token_paths_answer_with_and_without_the_trailing_slash() {
    let lms = Lms::default().await;
    for path in ["/oauth2/authorize", "/oauth2/authorize/"] {
        let response = lms.get(lms.authorize_url(path, &[])).await;
        assert_eq!(response.status(), StatusCode::FOUND, "{path}");
        assert!(query(&redirect(&response), "code").is_some(), "{path}");
    }
    for path in ["/oauth2/access_token", "/oauth2/access_token/"] {
        let code = lms.code().await;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", VERIFIER),
        ];
        form.push(("token_type", "jwt"));
        let response = lms.token(path, &form).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn user_api_paths_with_a_trailing_slash_are_not_found() {
    let lms = Lms::default().await;
    let jwt = lms.jwt().await;
    let auth = format!("JWT {jwt}");
    assert_eq!(
        lms.api("/api/user/v1/me", &auth).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        lms.api("/api/user/v1/me/", &auth).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        lms.api("/api/user/v1/accounts/learner/", &auth)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn unknown_client_or_redirect_uri_gets_a_400_page_never_a_redirect() {
    let lms = Lms::default().await;
    for extra in [
        [("client_id", "nobody")],
        [("redirect_uri", "http://127.0.0.1:9/elsewhere/")],
    ] {
        let response = lms
            .get(lms.authorize_url("/oauth2/authorize/", &extra))
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{extra:?}");
        assert!(response.headers().get(header::LOCATION).is_none());
    }
}

#[tokio::test]
async fn scope_not_granted_to_the_application_is_redirected_as_invalid_scope() {
    let lms = Lms::start(Settings::default(), |c| c.scopes.clear()).await;
    let response = lms.get(lms.authorize_url("/oauth2/authorize/", &[])).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let back = redirect(&response);
    assert_eq!(query(&back, "error").as_deref(), Some("invalid_scope"));
    assert_eq!(query(&back, "state").as_deref(), Some("the-state"));
    assert!(query(&back, "code").is_none());
}

#[tokio::test]
async fn a_stranger_is_sent_to_login_and_back_to_the_same_authorize_request() {
    let lms = Lms::default().await;
    let authorize = lms.authorize_url("/oauth2/authorize/", &[]);
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(authorize.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let login = redirect(&response);
    assert_eq!(login.path(), "/login");
    let next = lms.url(&query(&login, "next").unwrap());
    assert_eq!(next, authorize);
}

#[tokio::test]
async fn code_is_single_use() {
    let lms = Lms::default().await;
    let code = lms.code().await;
    assert_eq!(lms.exchange(&code, &[]).await.status(), StatusCode::OK);
    let (status, body) = json(lms.exchange(&code, &[]).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn code_expires_after_its_lifetime() {
    let settings = Settings {
        code_lifetime: Duration::from_millis(200),
        ..Settings::default()
    };
    let lms = Lms::start(settings, |_| {}).await;
    let code = lms.code().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = json(lms.exchange(&code, &[]).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn pkce_verifier_is_required_and_must_match_the_challenge() {
    let lms = Lms::default().await;
    let code = lms.code().await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
    ];
    let (status, body) = json(lms.token("/oauth2/access_token/", &form).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request");

    let mut wrong = form.to_vec();
    wrong.push((
        "code_verifier",
        "another-verifier-of-sufficient-length-xxxxxxxxxxxxxxxxxx",
    ));
    let (status, body) = json(lms.token("/oauth2/access_token/", &wrong).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn wrong_client_secret_is_a_401_invalid_client() {
    let lms = Lms::default().await;
    let code = lms.code().await;
    let response = reqwest::Client::new()
        .post(lms.url("/oauth2/access_token/"))
        .basic_auth(CLIENT_ID, Some("not-the-secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()[header::WWW_AUTHENTICATE],
        "Bearer error=\"invalid_client\""
    );
    let (status, body) = json(response).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test]
async fn token_type_jwt_gives_an_hs256_jwt_with_the_lms_claims() {
    let lms = Lms::default().await;
    let code = lms.code().await;
    let (status, body) = json(lms.exchange(&code, &[("token_type", "jwt")]).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["token_type"], "JWT");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "user_id email profile");
    assert!(body["refresh_token"].is_string());
    assert!(
        body.get("id_token").is_none(),
        "the LMS is not an OIDC provider"
    );

    let jwt = body["access_token"].as_str().unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "HS256");
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["preferred_username"], "learner");
    assert_eq!(claims["user_id"], 7);
    assert_eq!(claims["email"], "learner@example.com");
    assert_eq!(claims["name"], "Ada Lovelace");
    assert_eq!(claims["aud"], "lms-key");
    assert_eq!(
        claims["iss"],
        format!(
            "{}/oauth2",
            lms.standin.url().as_str().trim_end_matches('/')
        )
    );
    assert_ne!(
        claims["sub"], "7",
        "sub is an anonymous id, not the user id"
    );
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
}

#[tokio::test]
async fn without_token_type_the_token_is_an_opaque_bearer_token() {
    let lms = Lms::default().await;
    let code = lms.code().await;
    let (status, body) = json(lms.exchange(&code, &[]).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 36000);
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(token.split('.').count(), 1, "not a JWT");
    let (status, me) = json(lms.api("/api/user/v1/me", &format!("Bearer {token}")).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["username"], "learner");
}

#[tokio::test]
async fn a_jwt_sent_as_bearer_is_rejected_as_token_nonexistent() {
    let lms = Lms::default().await;
    let jwt = lms.jwt().await;
    let (status, body) = json(lms.api("/api/user/v1/me", &format!("Bearer {jwt}")).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["detail"]["error_code"], "token_nonexistent");
}

#[tokio::test]
async fn the_jwt_scheme_is_case_insensitive_and_checks_the_signature() {
    let lms = Lms::default().await;
    let jwt = lms.jwt().await;
    for scheme in ["JWT", "jwt"] {
        let response = lms.api("/api/user/v1/me", &format!("{scheme} {jwt}")).await;
        assert_eq!(response.status(), StatusCode::OK, "{scheme}");
    }
    let (payload_start, _) = jwt.split_once('.').unwrap();
    let forged_claims = URL_SAFE_NO_PAD.encode(
        serde_json::json!({ "preferred_username": "learner", "exp": i64::MAX }).to_string(),
    );
    let signature = jwt.rsplit_once('.').unwrap().1;
    let forged = format!("{payload_start}.{forged_claims}.{signature}");
    let (status, body) = json(lms.api("/api/user/v1/me", &format!("JWT {forged}")).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["detail"], "Error decoding token.");
}

#[tokio::test]
async fn an_expired_jwt_is_rejected() {
    let settings = Settings {
        jwt_lifetime: Duration::ZERO,
        ..Settings::default()
    };
    let lms = Lms::start(settings, |_| {}).await;
    let jwt = lms.jwt().await;
    // One second of leeway, as JWT_AUTH['JWT_LEEWAY'].
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = json(lms.api("/api/user/v1/me", &format!("JWT {jwt}")).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["detail"], "Signature has expired.");
}

#[tokio::test]
async fn consent_is_asked_once_then_skipped_unless_forced() {
    let lms = Lms::start(Settings::default(), |c| c.skip_authorization = false).await;
    let authorize = lms.authorize_url("/oauth2/authorize/", &[]);
    let consent = lms.get(authorize.clone()).await;
    assert_eq!(consent.status(), StatusCode::OK, "the consent page");
    assert!(
        consent
            .text()
            .await
            .unwrap()
            .contains("Know your email address")
    );

    let approved = lms
        .browser
        .post(authorize.clone())
        .form(&[("allow", "Authorize")])
        .send()
        .await
        .unwrap();
    assert!(query(&redirect(&approved), "code").is_some());

    let again = lms.get(authorize).await;
    assert_eq!(again.status(), StatusCode::FOUND, "approval is remembered");
    assert!(query(&redirect(&again), "code").is_some());

    let forced = lms
        .get(lms.authorize_url("/oauth2/authorize/", &[("approval_prompt", "force")]))
        .await;
    assert_eq!(
        forced.status(),
        StatusCode::OK,
        "approval_prompt=force asks again"
    );
}

#[tokio::test]
async fn cancelling_consent_redirects_with_access_denied_and_the_state() {
    let lms = Lms::start(Settings::default(), |c| c.skip_authorization = false).await;
    let authorize = lms.authorize_url("/oauth2/authorize/", &[]);
    let cancelled = lms
        .browser
        .post(authorize)
        .form(&[("cancel", "Cancel")])
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), StatusCode::FOUND);
    let back = redirect(&cancelled);
    assert_eq!(back.as_str().split('?').next(), Some(REDIRECT_URI));
    assert_eq!(query(&back, "error").as_deref(), Some("access_denied"));
    assert_eq!(query(&back, "state").as_deref(), Some("the-state"));
}

#[tokio::test]
async fn a_learner_sees_only_the_public_fields_of_another_account() {
    let lms = Lms::default().await;
    lms.standin.add_user(LmsUser {
        id: 8,
        username: "other".into(),
        email: "other@example.com".into(),
        ..LmsUser::demo_learner()
    });
    let jwt = lms.jwt().await;
    let (status, body) = json(
        lms.api("/api/user/v1/accounts/other", &format!("JWT {jwt}"))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["username"], "other");
    assert!(body.get("email").is_none());
    let (status, _) = json(
        lms.api("/api/user/v1/accounts/nobody", &format!("JWT {jwt}"))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_builder_registers_users_and_applications_and_the_journal_records_requests() {
    use openedx_standin::JournalEntry;
    let standin = StandIn::builder()
        .user(LmsUser::demo_learner())
        .client(RegisteredClient::client_credentials(
            "reports",
            "reports-secret",
            "reports-service",
        ))
        .jwt_lifetime(Duration::from_secs(30))
        .start()
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let token: Value = client
        .post(standin.url().join("/oauth2/access_token").unwrap())
        .basic_auth("reports", Some("reports-secret"))
        .form(&[("grant_type", "client_credentials"), ("token_type", "jwt")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(token["expires_in"], 30);
    let missing = client
        .get(standin.url().join("/api/user/v1/me").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(standin.calls("token"), 1);
    assert_eq!(
        standin.journal(),
        [
            JournalEntry {
                method: "POST".into(),
                path: "/oauth2/access_token".into(),
                endpoint: Some("token"),
                status: 200,
            },
            JournalEntry {
                method: "GET".into(),
                path: "/api/user/v1/me".into(),
                endpoint: Some("me"),
                status: 401,
            },
        ]
    );
}

#[tokio::test]
async fn authorize_as_plays_a_browser_that_signs_in_and_consents() {
    let lms = Lms::start(Settings::default(), |c| c.skip_authorization = false).await;
    let url = lms.authorize_url("/oauth2/authorize/", &[]);
    let callback = lms.standin.authorize_as(url.as_str(), "learner").unwrap();
    assert_eq!(query(&callback, "state").as_deref(), Some("the-state"));
    let code = query(&callback, "code").unwrap();
    assert!(lms.standin.issued().codes.contains(&code));
    // A client the stand-in does not know is the LMS's 400 page, not a redirect.
    let unknown = lms.authorize_url("/oauth2/authorize/", &[("client_id", "nobody")]);
    let refused = lms.standin.authorize_as(unknown.as_str(), "learner");
    assert_eq!(refused.unwrap_err(), "Invalid client_id parameter value.");
    assert!(lms.standin.authorize_as(url.as_str(), "nobody").is_err());
}
