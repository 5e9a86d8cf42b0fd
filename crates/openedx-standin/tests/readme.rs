//! The crate README's `sh` recipes run as written, in order, in one shell, with the real
//! `openedx-standin` binary on the `PATH`. The only change made to them is the port: the README
//! says 8090, the test uses a free one.
// A test crate as a whole, so that clippy reads its helpers as tests too (clippy.toml lets
// tests unwrap and expect).
#![cfg(test)]

use std::{
    path::Path,
    process::{Command, Stdio},
};

const README: &str = include_str!("../README.md");

/// The tools the recipes use, named when missing rather than failing somewhere in the middle.
const NEEDS: &str = "for tool in curl jq; do command -v $tool > /dev/null \
    || { echo \"the README recipes need $tool: install it (apt-get install $tool)\" >&2; exit 1; }; done\n";

fn sh_blocks() -> Vec<String> {
    let mut found = Vec::new();
    let mut current: Option<String> = None;
    for line in README.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some("sh")) => current = Some(String::new()),
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
fn the_binary_recipes_run_as_written() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let recipes = sh_blocks();
    assert!(recipes.len() >= 4, "the README's sh blocks");
    // Whatever happens, no stand-in outlives the script.
    let script = format!(
        "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{NEEDS}{}",
        recipes.join("\n")
    )
    .replace(":8090", &format!(":{port}"));
    let dir = std::env::temp_dir().join(format!("openedx-standin-readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_openedx-standin"))
        .parent()
        .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("timeout")
        .args(["120", "bash", "-c", &script])
        .current_dir(&dir)
        .env_clear()
        .env("PATH", path)
        .env("TMPDIR", &dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    // What the comments in the README promise.
    for promised in [
        format!("LMS_URL=http://127.0.0.1:{port}/"),
        "# LMS_CLIENT_SECRET: the value of OPENEDX_STANDIN_CLIENT_SECRET".into(),
        "http://127.0.0.1:3000/callback?code=".into(),
        r#"{"username":"learner"}"#.into(),
        "502\n".into(),
        r#"{"method":"POST","path":"/oauth2/access_token","endpoint":"token","status":200}"#.into(),
        format!("LMS_URL=http://localhost:{port}/"),
        "JWT\n".into(),
    ] {
        assert!(
            stdout.contains(&promised),
            "{promised:?} in\n{stdout}\n{stderr}"
        );
    }
    assert!(
        !stdout.contains("my-app-secret"),
        "no secret printed:\n{stdout}"
    );
    let slow = stdout
        .lines()
        .find_map(|l| l.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(
        slow >= 1.5,
        "the delayed token request took {slow} s:\n{stdout}"
    );
}
