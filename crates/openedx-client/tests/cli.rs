//! The real `openedx` binary's token and API commands against the stand-in.
// A test crate as a whole, so that clippy reads its helpers as tests too (clippy.toml lets
// tests unwrap and expect).
#![cfg(test)]

use std::{
    io::Write,
    process::{Command, Stdio},
};

use openedx_standin::{GrantType, LmsUser, RegisteredClient, Settings, StandIn};
use serde_json::Value;

const SERVICE_ID: &str = "service-app";
const SERVICE_SECRET: &str = "service-secret";
const MOBILE_ID: &str = "mobile-app";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{e}: {} / {}", self.stdout, self.stderr))
    }
}

async fn standin(settings: Settings) -> StandIn {
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
    standin
}

/// Runs the binary with the LMS settings, `extra` variables and `stdin`, away from any `.env`.
async fn openedx(standin: &StandIn, args: &[&str], extra: &[(&str, &str)], stdin: &str) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_openedx"));
    command
        .args(args)
        .current_dir(std::env::temp_dir())
        .env_clear()
        .env("LMS_URL", standin.url().as_str())
        .env("LMS_CLIENT_ID", SERVICE_ID)
        .env("LMS_CLIENT_SECRET", SERVICE_SECRET)
        .env("LMS_PUBLIC_CLIENT_ID", MOBILE_ID)
        .envs(extra.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let stdin = stdin.to_owned();
    // The stand-in serves on this test's runtime: wait for the process off it.
    tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().expect("the openedx binary runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn client_credentials_prints_the_token_as_json() {
    let lms = standin(Settings::default()).await;
    let run = openedx(&lms, &["token", "client-credentials", "--json"], &[], "").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let token = run.json();
    assert_eq!(token["token_type"], "JWT");
    assert_eq!(token["refresh_token"], Value::Null);
    assert!(token["expires_in"].as_i64().unwrap() > 3500);
    assert_eq!(
        lms.issued().access_tokens,
        vec![token["access_token"].as_str().unwrap().to_owned()]
    );
}

#[tokio::test]
async fn client_credentials_prints_a_table_for_people() {
    let lms = standin(Settings::default()).await;
    let run = openedx(&lms, &["token", "client-credentials"], &[], "").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("token_type     JWT"), "{}", run.stdout);
    assert!(
        run.stdout.contains("expires        in 59 minutes") || run.stdout.contains("in 60 minutes")
    );
    assert!(run.stdout.contains("none (ask again to renew)"));
}

#[tokio::test]
async fn a_wrong_secret_is_a_refusal_with_a_hint_and_exit_3() {
    let lms = standin(Settings::default()).await;
    let run = openedx(
        &lms,
        &["token", "client-credentials"],
        &[("LMS_CLIENT_SECRET", "wrong-secret")],
        "",
    )
    .await;
    assert_eq!(run.code, 3);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.stderr);
    assert!(lines[0].contains("invalid_client"), "{}", run.stderr);
    assert!(
        lines[1].starts_with("hint: ") && lines[1].contains("LMS_CLIENT_SECRET"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("wrong-secret"));
}

#[tokio::test]
async fn password_reads_the_password_from_stdin_and_refresh_rotates() {
    let lms = standin(Settings::default()).await;
    let run = openedx(
        &lms,
        &["token", "password", "--username", "learner", "--json"],
        &[],
        "learner-password\n",
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let first = run.json();
    let refresh = first["refresh_token"].as_str().unwrap().to_owned();

    let run = openedx(
        &lms,
        &["token", "refresh", "--client-id", MOBILE_ID, "--json"],
        &[],
        &format!("{refresh}\n"),
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let second = run.json();
    assert_ne!(second["refresh_token"], first["refresh_token"]);

    let run = openedx(
        &lms,
        &["token", "revoke", "--client-id", MOBILE_ID],
        &[],
        &format!("{}\n", second["refresh_token"].as_str().unwrap()),
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.trim(), "revoked");
    assert_eq!(lms.live_refresh_tokens(), 0);
}

#[tokio::test]
async fn the_password_is_never_an_argument() {
    let lms = standin(Settings::default()).await;
    let run = openedx(
        &lms,
        &[
            "token",
            "password",
            "--username",
            "learner",
            "--password",
            "x",
        ],
        &[],
        "",
    )
    .await;
    assert_ne!(run.code, 0);
    assert_eq!(lms.calls("token"), 0);
    let run = openedx(
        &lms,
        &["token", "password", "--username", "learner"],
        &[],
        "",
    )
    .await;
    assert_ne!(run.code, 0, "an empty password is refused before the LMS");
    assert!(run.stderr.contains("Password is empty"), "{}", run.stderr);
}

#[tokio::test]
async fn inspect_checks_the_signature_when_a_key_is_set() {
    let lms = standin(Settings::default()).await;
    let token = openedx(&lms, &["token", "client-credentials", "--json"], &[], "").await;
    let jwt = token.json()["access_token"].as_str().unwrap().to_owned();

    let run = openedx(&lms, &["token", "inspect", &jwt], &[], "").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("not checked"), "{}", run.stdout);
    assert!(
        run.stdout.contains("preferred_username  service-user"),
        "{}",
        run.stdout
    );

    let key = [
        ("LMS_JWT_SECRET", "lms-secret"),
        ("LMS_JWT_AUDIENCE", "lms-key"),
    ];
    let run = openedx(&lms, &["token", "inspect", "--json"], &key, &jwt).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["signature"], "valid");

    // Another first character of the signature: still base64, no longer the LMS's signature.
    let (signed, signature) = jwt.rsplit_once('.').unwrap();
    let first = if signature.starts_with('A') { 'B' } else { 'A' };
    let tampered = format!("{signed}.{first}{}", &signature[1..]);
    let run = openedx(&lms, &["token", "inspect", &tampered], &key, "").await;
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("signature does not match"),
        "{}",
        run.stderr
    );

    let jwks = lms.public_jwks().to_string();
    let run = openedx(
        &lms,
        &["token", "inspect", &jwt],
        &[("LMS_JWT_JWKS", jwks.as_str())],
        "",
    )
    .await;
    assert_ne!(run.code, 0, "an HS256 token does not pass an RS512 key");
}

#[tokio::test]
async fn inspect_detects_an_expired_jwt() {
    let lms = standin(Settings {
        jwt_lifetime: std::time::Duration::ZERO,
        ..Settings::default()
    })
    .await;
    let token = openedx(&lms, &["token", "client-credentials", "--json"], &[], "").await;
    let jwt = token.json()["access_token"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let run = openedx(&lms, &["token", "inspect", &jwt], &[], "").await;
    assert_ne!(run.code, 0);
    assert!(run.stdout.contains("expired"), "{}", run.stdout);
    assert!(run.stderr.contains("the JWT has expired"), "{}", run.stderr);
}

#[tokio::test]
async fn api_calls_an_lms_api_with_a_client_credentials_jwt() {
    let lms = standin(Settings::default()).await;
    let run = openedx(&lms, &["api", "GET", "/api/user/v1/me"], &[], "").await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["username"], "service-user");
    let run = openedx(
        &lms,
        &["api", "GET", "/api/enrollment/v1/enrollment"],
        &[],
        "",
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.json().is_array());
    let authorization = lms.api_requests().pop().unwrap().authorization.unwrap();
    assert!(authorization.starts_with("JWT "));

    let run = openedx(&lms, &["api", "POST", "/api/user/v1/me"], &[], "").await;
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("only GET"));
}

/// An HS256 JWT signed with `secret`, carrying `claims`.
fn signed_jwt(claims: &Value, secret: &str) -> String {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    use hmac::{Hmac, Mac};
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

fn in_an_hour() -> i64 {
    openedx_client::unix_now() + 3600
}

#[tokio::test]
async fn inspect_reads_the_jwt_from_standard_input_and_help_says_so() {
    let lms = standin(Settings::default()).await;
    let help = openedx(&lms, &["token", "inspect", "--help"], &[], "").await;
    assert_eq!(help.code, 0, "{}", help.stderr);
    assert!(help.stdout.contains("standard input"), "{}", help.stdout);
    assert!(help.stdout.contains("shell history"), "{}", help.stdout);
    let jwt = signed_jwt(&serde_json::json!({ "exp": in_an_hour() }), "k");
    let run = openedx(
        &lms,
        &["token", "inspect", "--json"],
        &[],
        &format!("{jwt}\n"),
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["expired"], false);
}

#[tokio::test]
async fn inspect_says_a_jwt_without_exp_has_no_expiry_not_that_it_expired() {
    let lms = standin(Settings::default()).await;
    let jwt = signed_jwt(&serde_json::json!({ "sub": "x" }), "lms-secret");
    let run = openedx(&lms, &["token", "inspect"], &[], &jwt).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("has no expiry"), "{}", run.stdout);
    assert!(!run.stdout.contains("expired"), "{}", run.stdout);
    let key = [("LMS_JWT_SECRET", "lms-secret")];
    let run = openedx(&lms, &["token", "inspect"], &key, &jwt).await;
    assert_eq!(run.code, 5);
    assert!(run.stderr.contains("has no expiry"), "{}", run.stderr);
    assert!(!run.stderr.contains("has expired"), "{}", run.stderr);
}

#[tokio::test]
async fn inspect_accepts_an_aud_array_holding_the_expected_audience() {
    let lms = standin(Settings::default()).await;
    let key = [
        ("LMS_JWT_SECRET", "lms-secret"),
        ("LMS_JWT_AUDIENCE", "openedx"),
    ];
    let holding = signed_jwt(
        &serde_json::json!({ "aud": ["other", "openedx"], "exp": in_an_hour() }),
        "lms-secret",
    );
    let run = openedx(&lms, &["token", "inspect", "--json"], &key, &holding).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["audience"], "valid");
    let lacking = signed_jwt(
        &serde_json::json!({ "aud": ["other"], "exp": in_an_hour() }),
        "lms-secret",
    );
    let run = openedx(&lms, &["token", "inspect"], &key, &lacking).await;
    assert_eq!(run.code, 5);
    assert!(run.stderr.contains("aud"), "{}", run.stderr);
}

#[tokio::test]
async fn inspect_says_issuer_and_audience_were_not_checked_when_unset() {
    let lms = standin(Settings::default()).await;
    let jwt = signed_jwt(
        &serde_json::json!({ "iss": "anyone", "aud": "anything", "exp": in_an_hour() }),
        "lms-secret",
    );
    let key = [("LMS_JWT_SECRET", "lms-secret")];
    let run = openedx(&lms, &["token", "inspect"], &key, &jwt).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("issuer     not checked (set LMS_JWT_ISSUER)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("audience   not checked (set LMS_JWT_AUDIENCE)"),
        "{}",
        run.stdout
    );
    let run = openedx(&lms, &["token", "inspect", "--json"], &key, &jwt).await;
    assert_eq!(run.json()["issuer"], "not_checked");
    assert_eq!(run.json()["audience"], "not_checked");
}

#[tokio::test]
async fn api_refuses_a_url_or_relative_path_saying_what_is_wrong_with_it() {
    let lms = standin(Settings::default()).await;
    for path in ["http://127.0.0.1:9/x", "//host/x", "api/x", "/\\host/x"] {
        let run = openedx(&lms, &["api", "GET", path], &[], "").await;
        assert_eq!(run.code, 2, "{path}");
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert!(
            run.stderr.contains("is not a path on the LMS"),
            "{path}: {}",
            run.stderr
        );
        assert!(!run.stderr.contains("unusable body"), "{}", run.stderr);
    }
    assert_eq!(lms.calls("token"), 0, "refused before asking for a token");
}

#[tokio::test]
async fn api_names_the_path_in_an_lms_error() {
    let lms = standin(Settings::default()).await;
    let run = openedx(
        &lms,
        &["api", "GET", "/api/user/v1/accounts/nobody"],
        &[],
        "",
    )
    .await;
    assert_eq!(run.code, 4);
    assert!(
        run.stderr
            .contains("HTTP 404 at /api/user/v1/accounts/nobody"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn an_error_written_to_closed_pipes_exits_1_never_a_panic() {
    let lms = standin(Settings::default()).await;
    let jwt = signed_jwt(&serde_json::json!({ "exp": in_an_hour() }), "k");
    let url = lms.url().to_string();
    let codes = tokio::task::spawn_blocking(move || {
        (0..5)
            .map(|_| {
                let mut child = Command::new(env!("CARGO_BIN_EXE_openedx"))
                    .args(["token", "inspect"])
                    .current_dir(std::env::temp_dir())
                    .env_clear()
                    .env("LMS_URL", &url)
                    .env("LMS_CLIENT_ID", SERVICE_ID)
                    .env("LMS_CLIENT_SECRET", SERVICE_SECRET)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                // Both readers gone before the process writes a byte: it has nothing to write
                // until the JWT arrives on its standard input, after them.
                drop(child.stdout.take());
                drop(child.stderr.take());
                let mut stdin = child.stdin.take().unwrap();
                stdin.write_all(format!("{jwt}\n").as_bytes()).unwrap();
                drop(stdin);
                child.wait().unwrap().code()
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert_eq!(codes, vec![Some(1); 5]);
}

/// Runs the binary with exactly `vars`, nothing else.
async fn openedx_bare(args: &[&str], vars: &[(&str, &str)], stdin: &str) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_openedx"));
    command
        .args(args)
        .current_dir(std::env::temp_dir())
        .env_clear()
        .envs(vars.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let stdin = stdin.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().expect("the openedx binary runs");
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        let output = child.wait_with_output().unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn inspect_is_offline_and_needs_no_lms_settings() {
    let jwt = signed_jwt(&serde_json::json!({ "exp": in_an_hour() }), "k");
    let run = openedx_bare(&["token", "inspect"], &[], &jwt).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = openedx_bare(&["token", "inspect"], &[("LMS_JWT_SECRET", "k")], &jwt).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("valid"), "{}", run.stdout);
}

#[tokio::test]
async fn a_public_client_needs_no_secret_as_the_stand_in_prints_it() {
    let lms = standin(Settings::default()).await;
    // What `openedx-standin --grant-type password --client-id mobile-app` prints: no secret.
    let vars = [
        ("LMS_URL", lms.url().as_str()),
        ("LMS_CLIENT_ID", MOBILE_ID),
    ];
    let run = openedx_bare(
        &["token", "password", "--username", "learner", "--json"],
        &vars,
        "learner-password\n",
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let refresh = run.json()["refresh_token"].as_str().unwrap().to_owned();
    let run = openedx_bare(&["token", "refresh", "--json"], &vars, &refresh).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let newest = run.json()["refresh_token"].as_str().unwrap().to_owned();
    let run = openedx_bare(&["token", "revoke"], &vars, &newest).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(lms.live_refresh_tokens(), 0);
}

#[tokio::test]
async fn refreshing_a_password_token_as_the_confidential_client_hints_at_the_public_one() {
    let lms = standin(Settings::default()).await;
    let run = openedx(
        &lms,
        &["token", "password", "--username", "learner", "--json"],
        &[],
        "learner-password\n",
    )
    .await;
    let refresh = run.json()["refresh_token"].as_str().unwrap().to_owned();
    let run = openedx(&lms, &["token", "refresh"], &[], &refresh).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("--client-id"), "{}", run.stderr);
}

#[tokio::test]
async fn errors_are_json_under_json_with_their_kind_and_exit_code() {
    let lms = standin(Settings::default()).await;
    let wrong = [("LMS_CLIENT_SECRET", "wrong")];
    let run = openedx(&lms, &["token", "client-credentials", "--json"], &wrong, "").await;
    assert_eq!(run.code, 3);
    let error: Value = serde_json::from_str(run.stderr.trim()).unwrap();
    assert_eq!(error["error"]["kind"], "refused");
    assert_eq!(error["error"]["exit_code"], 3);
    assert_eq!(error["error"]["oauth_error"], "invalid_client");
    assert!(error["error"]["hint"].is_string());

    let run = openedx_bare(&["token", "client-credentials", "--json"], &[], "").await;
    assert_eq!(run.code, 2);
    let error: Value = serde_json::from_str(run.stderr.trim()).unwrap();
    assert_eq!(error["error"]["kind"], "usage");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("LMS_URL")
    );

    let run = openedx_bare(&["token", "nonsense", "--json"], &[], "").await;
    assert_eq!(run.code, 2);
    assert!(
        serde_json::from_str::<Value>(run.stderr.trim()).is_ok(),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn an_lms_that_does_not_answer_is_exit_4() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    let vars = [
        ("LMS_URL", url.as_str()),
        ("LMS_CLIENT_ID", "x"),
        ("LMS_CLIENT_SECRET", "y"),
    ];
    let run = openedx_bare(&["token", "client-credentials"], &vars, "").await;
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stderr.contains("hint: is LMS_URL"), "{}", run.stderr);
}

#[tokio::test]
async fn help_lists_the_variables_and_the_exit_codes() {
    let run = openedx_bare(&["--help"], &[], "").await;
    assert_eq!(run.code, 0);
    for word in [
        "LMS_URL",
        "LMS_CLIENT_SECRET",
        "LMS_PUBLIC_CLIENT_ID",
        "LMS_JWT_JWKS",
        "Exit codes",
        "5  token inspect",
    ] {
        assert!(run.stdout.contains(word), "{word}: {}", run.stdout);
    }
}
