//! Each Open edX token recipe as one library call, against the stand-in: client credentials,
//! password (public client), refresh with rotation, JWT expiry and signature checks, an API call,
//! revocation, and the self-renewing authorizer under concurrent callers.
// A test crate as a whole, so that clippy reads its helpers as tests too (clippy.toml lets
// tests unwrap and expect).
#![cfg(test)]

use std::{collections::HashMap, sync::Arc, time::Duration};

use openedx_client::{
    ClientConfig, ClientCredentialsAuthorizer, Expected, Jwt, JwtError, JwtKey, LmsClient,
    LmsError, Secret, TokenHint, TokenKind, unix_now,
};
use openedx_standin::{
    DEMO_COURSE, Fault, GrantType, LmsUser, RegisteredClient, Settings, StandIn,
};

const SERVICE_ID: &str = "service-app";
const SERVICE_SECRET: &str = "service-secret";
const MOBILE_ID: &str = "mobile-app";

struct Lms {
    standin: StandIn,
}

impl Lms {
    async fn start(settings: Settings) -> Self {
        let standin = StandIn::spawn("127.0.0.1:0".parse().unwrap(), settings)
            .await
            .unwrap();
        standin.add_user(LmsUser::demo_learner());
        standin.register_client(RegisteredClient {
            grant_type: GrantType::ClientCredentials,
            owner: "service-user".into(),
            ..RegisteredClient::authorization_code(SERVICE_ID, SERVICE_SECRET, vec![])
        });
        standin.register_client(RegisteredClient {
            grant_type: GrantType::Password,
            ..RegisteredClient::authorization_code(MOBILE_ID, "", vec![])
        });
        // A confidential application registered for the password grant: the LMS refuses it.
        standin.register_client(RegisteredClient {
            grant_type: GrantType::Password,
            ..RegisteredClient::authorization_code("confidential-password", "secret", vec![])
        });
        Self { standin }
    }

    fn client_with(&self, vars: &[(&str, &str)]) -> LmsClient {
        let mut all: HashMap<String, String> = [
            ("LMS_URL", self.standin.url().as_str()),
            ("LMS_CLIENT_ID", SERVICE_ID),
            ("LMS_CLIENT_SECRET", SERVICE_SECRET),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (k, v) in vars {
            all.insert((*k).to_owned(), (*v).to_owned());
        }
        LmsClient::new(ClientConfig::from_vars(&all).unwrap()).unwrap()
    }

    fn client(&self) -> LmsClient {
        self.client_with(&[])
    }
}

fn oauth_error(result: Result<impl std::fmt::Debug, LmsError>) -> String {
    match result {
        Err(LmsError::OAuth { error, .. }) => error,
        other => panic!("expected an OAuth error, got {other:?}"),
    }
}

#[tokio::test]
async fn client_credentials_gives_a_jwt_and_no_refresh_token() {
    let lms = Lms::start(Settings::default()).await;
    let token = lms.client().client_credentials().await.unwrap();
    assert_eq!(token.kind, TokenKind::Jwt);
    assert!(token.refresh_token.is_none(), "renewal means asking again");
    let expires_at = token.expires_at.unwrap();
    assert!((expires_at - unix_now() - 3600).abs() <= 2);
    let claims = token.claims().unwrap();
    assert_eq!(claims.0["grant_type"], "client-credentials");
    assert_eq!(claims.0["preferred_username"], "service-user");

    let request = lms.standin.token_requests().pop().unwrap();
    assert_eq!(request.field("grant_type"), Some("client_credentials"));
    assert_eq!(request.field("token_type"), Some("jwt"));
    assert_eq!(
        request.basic_auth,
        Some((SERVICE_ID.to_owned(), SERVICE_SECRET.to_owned())),
        "HTTP Basic, as the docs' example"
    );
}

#[tokio::test]
async fn client_credentials_can_authenticate_in_the_body() {
    let lms = Lms::start(Settings::default()).await;
    lms.client_with(&[("LMS_CLIENT_AUTH", "post")])
        .client_credentials()
        .await
        .unwrap();
    let request = lms.standin.token_requests().pop().unwrap();
    assert!(request.basic_auth.is_none());
    assert_eq!(request.field("client_secret"), Some(SERVICE_SECRET));
}

#[tokio::test]
async fn a_wrong_secret_is_invalid_client() {
    let lms = Lms::start(Settings::default()).await;
    let client = lms.client_with(&[("LMS_CLIENT_SECRET", "wrong")]);
    assert_eq!(
        oauth_error(client.client_credentials().await),
        "invalid_client"
    );
}

#[tokio::test]
async fn password_grant_through_a_public_client_returns_a_refresh_token() {
    let lms = Lms::start(Settings::default()).await;
    let password = Secret::new("learner-password");
    let token = lms
        .client()
        .password(MOBILE_ID, "learner", &password)
        .await
        .unwrap();
    assert_eq!(token.kind, TokenKind::Jwt);
    assert!(token.refresh_token.is_some());
    assert!(
        token.scopes.iter().any(|s| s == "user_id"),
        "user_id appended"
    );
    let request = lms.standin.token_requests().pop().unwrap();
    assert_eq!(request.field("client_id"), Some(MOBILE_ID));
    assert!(request.field("client_secret").is_none() && request.basic_auth.is_none());
    assert_eq!(request.field("token_type"), Some("jwt"));

    // By email too, as the LMS allows.
    lms.client()
        .password(MOBILE_ID, "learner@example.com", &password)
        .await
        .unwrap();
    let wrong = Secret::new("nope");
    assert_eq!(
        oauth_error(lms.client().password(MOBILE_ID, "learner", &wrong).await),
        "invalid_grant"
    );
}

#[tokio::test]
async fn password_grant_from_a_confidential_client_is_refused() {
    let lms = Lms::start(Settings::default()).await;
    let client = lms.client_with(&[
        ("LMS_CLIENT_ID", "confidential-password"),
        ("LMS_CLIENT_SECRET", "secret"),
    ]);
    // Authenticated as the confidential client, the password grant is refused...
    let result = client
        .refresh_token(&Secret::new("x"), None)
        .await
        .map(|_| ());
    assert!(result.is_err());
    // ...and as a public client (no secret), it is not a public client at all.
    let password = Secret::new("learner-password");
    assert_eq!(
        oauth_error(
            client
                .password("confidential-password", "learner", &password)
                .await
        ),
        "invalid_client"
    );
}

#[tokio::test]
async fn refresh_rotates_the_refresh_token() {
    let lms = Lms::start(Settings::default()).await;
    let client = lms.client();
    let first = client
        .password(MOBILE_ID, "learner", &Secret::new("learner-password"))
        .await
        .unwrap();
    let old = first.refresh_token.clone().unwrap();
    let second = client.refresh_token(&old, Some(MOBILE_ID)).await.unwrap();
    let new = second.refresh_token.clone().unwrap();
    assert_ne!(old.expose(), new.expose());
    assert_eq!(
        lms.standin
            .token_requests()
            .pop()
            .unwrap()
            .field("token_type"),
        Some("jwt")
    );
    // The old one is spent.
    assert_eq!(
        oauth_error(client.refresh_token(&old, Some(MOBILE_ID)).await),
        "invalid_grant"
    );
    client.refresh_token(&new, Some(MOBILE_ID)).await.unwrap();
}

#[tokio::test]
async fn an_hs256_jwt_verifies_with_the_shared_secret_and_checks_iss_and_aud() {
    let lms = Lms::start(Settings::default()).await;
    let token = lms.client().client_credentials().await.unwrap();
    let jwt = Jwt::decode(token.access_token.expose()).unwrap();
    assert_eq!(jwt.algorithm(), Some("HS256"));
    let key = JwtKey::Hs256(Secret::new("lms-secret"));
    let issuer = format!("{}oauth2", lms.standin.url());
    let expected = Expected {
        issuer: Some(issuer.clone()),
        audience: Some("lms-key".into()),
        leeway_secs: 1,
    };
    jwt.verify(&key, &expected, unix_now()).unwrap();

    let other_key = JwtKey::Hs256(Secret::new("another-secret"));
    assert_eq!(
        jwt.verify(&other_key, &expected, unix_now()),
        Err(JwtError::BadSignature)
    );
    let wrong_aud = Expected {
        audience: Some("openedx".into()),
        ..expected.clone()
    };
    assert_eq!(
        jwt.verify(&key, &wrong_aud, unix_now()),
        Err(JwtError::WrongAudience)
    );
    let wrong_iss = Expected {
        issuer: Some("http://elsewhere/oauth2".into()),
        ..expected
    };
    assert_eq!(
        jwt.verify(&key, &wrong_iss, unix_now()),
        Err(JwtError::WrongIssuer)
    );
}

#[tokio::test]
async fn a_tampered_jwt_fails_the_signature_check() {
    let lms = Lms::start(Settings::default()).await;
    let token = lms.client().client_credentials().await.unwrap();
    let raw = token.access_token.expose();
    let parts: Vec<&str> = raw.split('.').collect();
    let mut claims = Jwt::decode(raw).unwrap().claims().0.clone();
    claims.insert("preferred_username".into(), "admin".into());
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap()),
        parts[2]
    );
    let jwt = Jwt::decode(&forged).unwrap();
    let key = JwtKey::Hs256(Secret::new("lms-secret"));
    assert_eq!(
        jwt.verify(&key, &Expected::default(), unix_now()),
        Err(JwtError::BadSignature)
    );
}

#[tokio::test]
async fn an_asymmetric_jwt_verifies_with_the_public_jwk_set_only() {
    let lms = Lms::start(Settings::default()).await;
    let token = lms
        .client()
        .asymmetric()
        .client_credentials()
        .await
        .unwrap();
    let request = lms.standin.token_requests().pop().unwrap();
    assert_eq!(request.field("asymmetric_jwt"), Some("1"));
    let jwt = Jwt::decode(token.access_token.expose()).unwrap();
    assert_eq!(jwt.algorithm(), Some("RS512"));
    let jwks = JwtKey::from_jwk_set(&lms.standin.public_jwks().to_string()).unwrap();
    jwt.verify(&jwks, &Expected::default(), unix_now()).unwrap();
    // The HS256 secret does not verify an RS512 token (no algorithm confusion).
    let secret = JwtKey::Hs256(Secret::new("lms-secret"));
    assert_eq!(
        jwt.verify(&secret, &Expected::default(), unix_now()),
        Err(JwtError::WrongAlgorithm("RS512".into()))
    );
    // And the LMS's APIs accept it.
    let me = lms
        .client()
        .api_get("/api/user/v1/me", &token)
        .await
        .unwrap();
    assert_eq!(me["username"], "service-user");
}

#[tokio::test]
async fn an_expired_jwt_is_detected() {
    let lms = Lms::start(Settings {
        jwt_lifetime: Duration::ZERO,
        ..Settings::default()
    })
    .await;
    let token = lms.client().client_credentials().await.unwrap();
    let jwt = Jwt::decode(token.access_token.expose()).unwrap();
    let later = unix_now() + 5;
    assert!(jwt.is_expired(later, 1));
    assert!(!jwt.is_expired(unix_now() - 5, 1));
    let key = JwtKey::Hs256(Secret::new("lms-secret"));
    assert_eq!(
        jwt.verify(&key, &Expected::default(), later),
        Err(JwtError::Expired)
    );
    assert!(token.is_stale(unix_now(), Duration::from_secs(60)));
}

#[tokio::test]
async fn an_api_is_called_with_the_jwt_scheme() {
    let lms = Lms::start(Settings::default()).await;
    let client = lms.client();
    let token = client
        .password(MOBILE_ID, "learner", &Secret::new("learner-password"))
        .await
        .unwrap();
    let enrollments = client
        .api_get("/api/enrollment/v1/enrollment", &token)
        .await
        .unwrap();
    assert_eq!(enrollments[0]["course_details"]["course_id"], DEMO_COURSE);
    let request = lms.standin.api_requests().pop().unwrap();
    assert_eq!(
        request.authorization,
        Some(format!("JWT {}", token.access_token.expose()))
    );
    assert!(client.api_get("//evil.example/x", &token).await.is_err());
    assert!(
        client
            .api_get("https://evil.example/x", &token)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn revoking_a_refresh_token_makes_it_useless() {
    let lms = Lms::start(Settings::default()).await;
    let client = lms.client();
    let token = client
        .password(MOBILE_ID, "learner", &Secret::new("learner-password"))
        .await
        .unwrap();
    let refresh = token.refresh_token.unwrap();
    // Revoked by another client, the LMS ignores it: only the client it was issued to can.
    client
        .revoke_token(&refresh, TokenHint::RefreshToken, None)
        .await
        .unwrap();
    assert_eq!(lms.standin.live_refresh_tokens(), 1);
    client
        .revoke_token(&refresh, TokenHint::RefreshToken, Some(MOBILE_ID))
        .await
        .unwrap();
    let request = lms.standin.token_requests().pop().unwrap();
    assert_eq!(request.field("token_type_hint"), Some("refresh_token"));
    assert_eq!(request.field("client_id"), Some(MOBILE_ID));
    assert_eq!(lms.standin.live_refresh_tokens(), 0);
    assert_eq!(
        oauth_error(client.refresh_token(&refresh, Some(MOBILE_ID)).await),
        "invalid_grant"
    );
    // Revoking what does not exist is not an error (RFC 7009).
    client
        .revoke_token(&Secret::new("unknown"), TokenHint::AccessToken, None)
        .await
        .unwrap();
}

#[tokio::test]
async fn concurrent_callers_of_the_authorizer_cause_one_token_request() {
    let lms = Lms::start(Settings::default()).await;
    lms.standin
        .set_fault("token", Some(Fault::Delay(Duration::from_millis(200))));
    let authorizer = Arc::new(ClientCredentialsAuthorizer::new(
        lms.client(),
        Duration::from_secs(60),
    ));
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let authorizer = authorizer.clone();
            tokio::spawn(async move { authorizer.get("/api/user/v1/me").await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap()["username"], "service-user");
    }
    assert_eq!(lms.standin.calls("token"), 1);
    assert_eq!(lms.standin.calls("me"), 10);
}

#[tokio::test]
async fn the_authorizer_asks_again_when_its_token_is_stale() {
    let lms = Lms::start(Settings {
        jwt_lifetime: Duration::from_secs(30),
        ..Settings::default()
    })
    .await;
    let authorizer = ClientCredentialsAuthorizer::new(lms.client(), Duration::from_secs(60));
    authorizer.token().await.unwrap();
    authorizer.token().await.unwrap();
    assert_eq!(
        lms.standin.calls("token"),
        2,
        "30 s left is within the leeway"
    );
    lms.standin.set_jwt_lifetime(Duration::from_secs(3600));
    authorizer.token().await.unwrap();
    authorizer.token().await.unwrap();
    assert_eq!(lms.standin.calls("token"), 3, "then reused");
}
