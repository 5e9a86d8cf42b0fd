//! The admin API (`/_standin/`, not part of the LMS), the binary's printout, and the places the
//! stand-in once answered otherwise than the LMS, each pinned here.
// A test crate as a whole, so that clippy reads its helpers as tests too (clippy.toml lets
// tests unwrap and expect).
#![cfg(test)]

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use openedx_standin::{AccountPrivacy, LmsUser, RegisteredClient, StandIn};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn standin() -> StandIn {
    StandIn::builder()
        .user(LmsUser::demo_learner())
        .client(RegisteredClient::client_credentials(
            "reports",
            "reports-secret",
            "reports-service",
        ))
        .start()
        .await
        .unwrap()
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn json(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn token(
    lms: &StandIn,
    auth: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut request = http().post(lms.url().join("oauth2/access_token").unwrap());
    if let Some((id, secret)) = auth {
        request = request.basic_auth(id, Some(secret));
    }
    json(request.form(form).send().await.unwrap()).await
}

async fn admin(
    lms: &StandIn,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let url = lms
        .url()
        .join(format!("_standin/{path}").trim_end_matches('/'))
        .unwrap();
    let mut request = http().request(method.parse().unwrap(), url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    json(request.send().await.unwrap()).await
}

fn claims(jwt: &str) -> Value {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

// The LMS's answers.

#[tokio::test]
async fn an_unknown_grant_type_is_unsupported_before_any_client_authentication() {
    let lms = standin().await;
    for form in [&[("grant_type", "implicit")][..], &[][..]] {
        let (status, body) = token(&lms, None, form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, json!({ "error": "unsupported_grant_type" }));
    }
    // A known grant without client authentication is still invalid_client.
    let (status, body) = token(&lms, None, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test]
async fn client_credentials_without_a_scope_get_user_id_when_the_application_may_have_it() {
    let lms = standin().await;
    let auth = Some(("reports", "reports-secret"));
    let form = [("grant_type", "client_credentials"), ("token_type", "jwt")];
    let (status, body) = token(&lms, auth, &form).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["scope"], "read write email profile user_id");
    let jwt = claims(body["access_token"].as_str().unwrap());
    assert!(jwt["user_id"].is_i64(), "{jwt}");

    // Asked scopes are kept as they are.
    let (_, body) = token(&lms, auth, &[("scope", "read"), form[0], form[1]]).await;
    assert_eq!(body["scope"], "read");

    // An application without user_id in its scopes does not get it.
    lms.register_client(RegisteredClient {
        scopes: vec![],
        ..RegisteredClient::client_credentials("plain", "plain-secret", "plain-service")
    });
    let (_, body) = token(&lms, Some(("plain", "plain-secret")), &form).await;
    assert_eq!(body["scope"], "read write email profile");
}

#[tokio::test]
async fn a_confidential_password_application_authenticates_with_its_secret() {
    let lms = standin().await;
    lms.register_client(RegisteredClient {
        grant_type: openedx_standin::GrantType::Password,
        ..RegisteredClient::authorization_code("backend", "backend-secret", vec![])
    });
    let form = [
        ("grant_type", "password"),
        ("username", "learner"),
        ("password", "learner-password"),
        ("token_type", "jwt"),
    ];
    let (status, body) = token(&lms, Some(("backend", "backend-secret")), &form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["grant_type"],
        "password"
    );
    let mut without_secret = form.to_vec();
    without_secret.push(("client_id", "backend"));
    let (status, body) = token(&lms, None, &without_secret).await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::UNAUTHORIZED, &json!("invalid_client"))
    );
}

async fn account_as_learner(lms: &StandIn, username: &str) -> Value {
    lms.register_client(RegisteredClient::public_password("mobile"));
    let (_, body) = token(
        lms,
        None,
        &[
            ("grant_type", "password"),
            ("client_id", "mobile"),
            ("username", "learner"),
            ("password", "learner-password"),
            ("token_type", "jwt"),
        ],
    )
    .await;
    let jwt = body["access_token"].as_str().unwrap().to_owned();
    let response = http()
        .get(
            lms.url()
                .join(&format!("api/user/v1/accounts/{username}"))
                .unwrap(),
        )
        .header("Authorization", format!("JWT {jwt}"))
        .send()
        .await
        .unwrap();
    json(response).await.1
}

#[tokio::test]
async fn another_learners_account_shows_what_their_privacy_shares_all_users_by_default() {
    let lms = standin().await;
    lms.add_user(LmsUser {
        id: 8,
        username: "grace".into(),
        email: "grace@example.com".into(),
        ..LmsUser::demo_learner()
    });
    let shared = account_as_learner(&lms, "grace").await;
    assert_eq!(shared["account_privacy"], "all_users");
    assert_eq!(shared["country"], "GB");
    assert!(shared["bio"].is_string());
    assert!(
        shared.get("email").is_none() && shared.get("name").is_none(),
        "{shared}"
    );

    lms.add_user(LmsUser {
        id: 8,
        username: "grace".into(),
        account_privacy: Some(AccountPrivacy::Private),
        ..LmsUser::demo_learner()
    });
    let private = account_as_learner(&lms, "grace").await;
    let mut fields: Vec<&String> = private.as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(fields, ["account_privacy", "profile_image", "username"]);
    assert_eq!(private["account_privacy"], "private");

    let own = account_as_learner(&lms, "learner").await;
    assert_eq!(own["account_privacy"], "all_users");
    assert_eq!(own["email"], "learner@example.com");
}

#[tokio::test]
async fn the_default_profile_images_the_account_points_at_exist() {
    let lms = standin().await;
    let own = account_as_learner(&lms, "learner").await;
    for size in ["full", "large", "medium", "small"] {
        let url = own["profile_image"][format!("image_url_{size}")]
            .as_str()
            .unwrap();
        let response = http().get(url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        assert_eq!(response.headers()["content-type"], "image/png");
    }
}

// The admin API.

#[tokio::test]
async fn the_admin_api_says_it_is_not_the_lms_and_lists_its_routes() {
    let lms = standin().await;
    let (status, body) = admin(&lms, "GET", "", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body["what"]
            .as_str()
            .unwrap()
            .contains("not part of the LMS")
    );
    assert!(
        body["endpoints"]
            .as_array()
            .unwrap()
            .contains(&json!("token"))
    );
}

#[tokio::test]
async fn the_admin_api_registers_applications_and_learners_who_then_sign_in() {
    let lms = standin().await;
    let (status, app) = admin(
        &lms,
        "POST",
        "clients",
        Some(json!({ "client_id": "svc", "grant_type": "password" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let secret = app["client_secret"].as_str().unwrap().to_owned();
    let (status, _) = admin(
        &lms,
        "POST",
        "users",
        Some(json!({ "username": "grace", "password": "pw", "account_privacy": "private" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let form = [
        ("grant_type", "password"),
        ("username", "grace"),
        ("password", "pw"),
    ];
    let (status, body) = token(&lms, Some(("svc", &secret)), &form).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A public application has no secret; an authorization-code one needs a redirect URI.
    let (_, public) = admin(
        &lms,
        "POST",
        "clients",
        Some(json!({ "client_id": "m", "grant_type": "password", "public": true })),
    )
    .await;
    assert_eq!(public["client_secret"], Value::Null);
    let (status, refusal) = admin(&lms, "POST", "clients", Some(json!({ "client_id": "w" }))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(refusal["error"].as_str().unwrap().contains("redirect_uris"));
    let (status, _) = admin(&lms, "POST", "users", Some(json!({ "nam": "typo" }))).await;
    assert!(status.is_client_error());
}

#[tokio::test]
async fn the_admin_api_plays_a_fault_or_a_delay_at_an_endpoint_until_cleared() {
    let lms = standin().await;
    let body =
        json!({ "status": 502, "content_type": "text/html", "body": "<h1>Bad Gateway</h1>" });
    let (status, _) = admin(&lms, "PUT", "faults/token", Some(body)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let form = [("grant_type", "client_credentials")];
    let (status, body) = token(&lms, Some(("reports", "reports-secret")), &form).await;
    assert_eq!(
        (status, body),
        (StatusCode::BAD_GATEWAY, json!("<h1>Bad Gateway</h1>"))
    );

    admin(
        &lms,
        "PUT",
        "faults/token",
        Some(json!({ "delay_ms": 300 })),
    )
    .await;
    let started = Instant::now();
    let (status, _) = token(&lms, Some(("reports", "reports-secret")), &form).await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));

    let (status, _) = admin(&lms, "DELETE", "faults/token", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let started = Instant::now();
    token(&lms, Some(("reports", "reports-secret")), &form).await;
    assert!(started.elapsed() < Duration::from_millis(300));

    let (status, refusal) =
        admin(&lms, "PUT", "faults/tokens", Some(json!({ "delay_ms": 1 }))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(refusal["error"].as_str().unwrap().contains("token"));
}

#[tokio::test]
async fn the_admin_api_expires_and_revokes_tokens() {
    let lms = standin().await;
    lms.register_client(RegisteredClient::public_password("mobile"));
    let password = [
        ("grant_type", "password"),
        ("client_id", "mobile"),
        ("username", "learner"),
        ("password", "learner-password"),
    ];
    let (_, body) = token(&lms, None, &password).await;
    let (access, refresh) = (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    );
    let (_, expired) = admin(&lms, "POST", "tokens/expire", None).await;
    assert_eq!(expired["expired"], 2);
    let me = http()
        .get(lms.url().join("api/user/v1/me").unwrap())
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(json(me).await.1["detail"]["error_code"], "token_expired");
    let refresh_form = [
        ("grant_type", "refresh_token"),
        ("client_id", "mobile"),
        ("refresh_token", refresh.as_str()),
    ];
    assert_eq!(
        token(&lms, None, &refresh_form).await.1["error"],
        "invalid_grant"
    );

    let (_, body) = token(&lms, None, &password).await;
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let (_, revoked) = admin(&lms, "POST", "tokens/revoke", None).await;
    assert!(revoked["revoked"].as_u64().unwrap() >= 1);
    let refresh_form = [
        ("grant_type", "refresh_token"),
        ("client_id", "mobile"),
        ("refresh_token", refresh.as_str()),
    ];
    assert_eq!(
        token(&lms, None, &refresh_form).await.1["error"],
        "invalid_grant"
    );

    let (status, _) = admin(&lms, "PUT", "jwt-lifetime", Some(json!({ "seconds": 5 }))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let mut jwt_form = password.to_vec();
    jwt_form.push(("token_type", "jwt"));
    assert_eq!(token(&lms, None, &jwt_form).await.1["expires_in"], 5);
}

#[tokio::test]
async fn the_admin_api_reads_the_journal_and_counters_without_appearing_in_them() {
    let lms = standin().await;
    token(
        &lms,
        Some(("reports", "wrong")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    let (_, journal) = admin(&lms, "GET", "journal", None).await;
    assert_eq!(
        journal,
        json!([{ "method": "POST", "path": "/oauth2/access_token", "endpoint": "token", "status": 401 }])
    );
    let (_, calls) = admin(&lms, "GET", "calls", None).await;
    assert_eq!(calls["token"], 1);
    assert_eq!(calls["me"], 0);
    assert_eq!(lms.journal().len(), 1, "admin requests are not journaled");
}

// The binary.

/// Runs the binary until it has printed its summary, then stops it; returns what it printed.
fn run_binary(args: &[&str], envs: &[(&str, &str)]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_openedx-standin"))
        .args(args)
        .env_remove("OPENEDX_STANDIN_CLIENT_SECRET")
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = String::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        out.push_str(&line);
        out.push('\n');
        if line.contains("Stop with Ctrl-C") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    out
}

#[test]
fn the_binary_prints_where_a_secret_is_never_the_secret() {
    let out = run_binary(
        &[
            "--bind",
            "127.0.0.1:0",
            "--grant-type",
            "client-credentials",
            "--client-id",
            "reports",
        ],
        &[("OPENEDX_STANDIN_CLIENT_SECRET", "reports-secret")],
    );
    assert!(!out.contains("reports-secret"), "{out}");
    assert!(
        out.contains("# LMS_CLIENT_SECRET: the value of OPENEDX_STANDIN_CLIENT_SECRET"),
        "{out}"
    );

    let out = run_binary(
        &[
            "--bind",
            "127.0.0.1:0",
            "--client",
            "svc,grant=client-credentials",
        ],
        &[],
    );
    let path = out
        .lines()
        .find_map(|l| l.strip_prefix("# LMS_CLIENT_SECRET: random, in "))
        .and_then(|l| l.split(" (").next())
        .unwrap_or_else(|| panic!("{out}"));
    let secret = std::fs::read_to_string(path).unwrap();
    assert!(
        secret.trim().starts_with("dev-") && !out.contains(secret.trim()),
        "{out}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "only its owner may read {path}");
    }

    let out = run_binary(
        &[
            "--bind",
            "127.0.0.1:0",
            "--client",
            "svc,grant=client-credentials",
            "--show-secrets",
        ],
        &[],
    );
    assert!(out.contains("LMS_CLIENT_SECRET=dev-"), "{out}");
}

#[test]
fn the_binary_serves_several_applications_under_the_host_name_given() {
    let out = run_binary(
        &[
            "--bind",
            "127.0.0.1:0",
            "--host",
            "localhost",
            "--client",
            "web,redirect=http://localhost:3000/callback",
            "--client",
            "mobile,grant=password,public",
            "--user",
            "grace,staff",
        ],
        &[("OPENEDX_STANDIN_CLIENT_SECRET_WEB", "web-secret")],
    );
    assert!(out.contains("LMS_URL=http://localhost:"), "{out}");
    assert!(
        out.contains(
            "LMS_CLIENT_ID=web\n# LMS_CLIENT_SECRET: the value of OPENEDX_STANDIN_CLIENT_SECRET_WEB"
        ),
        "{out}"
    );
    assert!(out.contains("# LMS_CLIENT_ID=mobile\n"), "{out}");
    assert!(out.contains("grace / grace-password"), "{out}");
    assert!(out.contains("iss \"http://localhost:"), "{out}");
}
