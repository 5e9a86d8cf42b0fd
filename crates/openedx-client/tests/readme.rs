//! The crate README, kept true: its sign-in app is `examples/signin.rs` to the byte, and its `sh`
//! blocks (the `openedx` recipes) run as written, in order, in one shell, against a stand-in
//! registered as the README says. The only change made to them is the stand-in's port: the README
//! says 8090, the test uses a free one.
// A test crate as a whole, so that clippy reads its helpers as tests too (clippy.toml lets
// tests unwrap and expect).
#![cfg(test)]

use std::{
    path::Path,
    process::{Command, Stdio},
};

use openedx_standin::{LmsUser, RegisteredClient, StandIn};

const README: &str = include_str!("../README.md");

/// The tools the recipes use, named when missing rather than failing somewhere in the middle.
const NEEDS: &str = "for tool in curl jq; do command -v $tool > /dev/null \
    || { echo \"the README recipes need $tool: install it (apt-get install $tool)\" >&2; exit 1; }; done\n";

/// The bodies of the README's code blocks whose info string is `lang`.
fn blocks(lang: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut current: Option<String> = None;
    for line in README.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(info)) if info.trim() == lang => current = Some(String::new()),
            (Some(block), Some("")) => {
                found.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    found
}

#[test]
fn the_sign_in_app_in_the_readme_is_the_example_file() {
    let example = include_str!("../examples/signin.rs");
    let apps = blocks("rust,no_run");
    assert_eq!(apps.len(), 1);
    assert!(
        apps[0] == example,
        "README.md's sign-in app differs from examples/signin.rs: copy the file into the README"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_command_line_recipes_run_as_written() {
    let recipes = blocks("sh");
    assert!(recipes.len() >= 3, "the README's sh blocks");
    // As the README says the stand-in was started.
    let lms = StandIn::builder()
        .user(LmsUser::demo_learner())
        .client(RegisteredClient::client_credentials(
            "reports",
            "reports-secret",
            "reports-service",
        ))
        .client(RegisteredClient::public_password("mobile"))
        .start()
        .await
        .unwrap();
    let script = format!("set -euo pipefail\n{NEEDS}{}", recipes.join("\n"))
        .replace("127.0.0.1:8090", &lms.addr().to_string());
    let dir = std::env::temp_dir().join(format!("openedx-readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_openedx")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .arg("-c")
            .arg(&script)
            .current_dir(&dir)
            .env_clear()
            .env("PATH", path)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    // What the comments in the README promise.
    for promised in [
        "JWT\n",
        r#"{"username":"reports-service"}"#,
        "exit 3\n",
        "valid\n",
    ] {
        assert!(
            stdout.contains(promised),
            "{promised:?} in\n{stdout}\n{stderr}"
        );
    }
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("signature ") && l.ends_with(" valid")),
        "{stdout}"
    );
    assert_eq!(
        lms.live_refresh_tokens(),
        0,
        "the recipes revoke what they got"
    );
}
