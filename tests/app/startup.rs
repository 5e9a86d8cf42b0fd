//! The real `profiles serve` at start-up: settings it must refuse in one line rather than panic
//! on, and what its log looks like when it goes to a pipe, as under systemd or docker.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

/// `profiles serve` with a valid minimal configuration, its own database, and `extra` on top.
fn serve(extra: &[(&str, &str)]) -> Command {
    let dir = std::env::temp_dir().join(format!("profiles-start-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_profiles"));
    command
        .arg("serve")
        .current_dir(&dir)
        .env_clear()
        .env("LMS_URL", "http://127.0.0.1:9/")
        .env("LMS_CLIENT_ID", "profiles")
        .env("LMS_CLIENT_SECRET", "secret")
        .env("BIND", "127.0.0.1:0")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.join("profiles.db").display()),
        )
        .envs(extra.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs a start-up that must fail: its exit code and stderr.
fn refused(extra: &[(&str, &str)]) -> (Option<i32>, String) {
    let output = serve(extra).output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_huge_lms_timeout_is_refused_in_one_line_not_a_panic() {
    let (code, stderr) = refused(&[("LMS_TIMEOUT_SECS", "18446744073709551615")]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("profiles: LMS_TIMEOUT_SECS: "),
        "{stderr}"
    );
    assert!(stderr.contains("from 1 to 300"), "{stderr}");
}

#[test]
fn a_public_url_with_a_path_is_refused_at_start_with_the_fix() {
    let (code, stderr) = refused(&[("PUBLIC_URL", "https://host.example/profiles/")]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("profiles: PUBLIC_URL: "), "{stderr}");
    assert!(stderr.contains("root"), "{stderr}");
    assert!(stderr.contains("host of its own"), "{stderr}");
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `profiles serve` on a free port, its log read line by line from the pipe.
struct Served {
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl Served {
    /// Starts the server and reads its log up to the line that says it listens.
    async fn start() -> (Killed, std::net::SocketAddr, Self) {
        Self::start_with(&[]).await
    }

    async fn start_with(extra: &[(&str, &str)]) -> (Killed, std::net::SocketAddr, Self) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let bind = port.to_string();
        let vars: Vec<(&str, &str)> = [("BIND", bind.as_str())]
            .into_iter()
            .chain(extra.iter().copied())
            .collect();
        let mut child = Killed(serve(&vars).spawn().expect("profiles serve runs"));
        let stdout = child.0.stdout.take().unwrap();
        let (lines_tx, lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if lines_tx.send(line.unwrap()).is_err() {
                    break;
                }
            }
        });
        let mut served = Self {
            lines,
            seen: Vec::new(),
        };
        while !served.next_line().await.contains("profiles is listening") {}
        (child, port, served)
    }

    async fn next_line(&mut self) -> String {
        let line = tokio::time::timeout(Duration::from_secs(20), self.lines.recv())
            .await
            .expect("a log line")
            .expect("the log goes on");
        self.seen.push(line.clone());
        line
    }
}

#[tokio::test]
async fn logs_to_a_pipe_carry_no_colour_and_a_rounded_latency() {
    let (_child, port, mut log) = Served::start().await;
    let mut next_line = async || log.next_line().await;
    let response = reqwest::get(format!("http://{port}/no-such-page"))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let served = loop {
        let line = next_line().await;
        if line.contains("served") {
            break line;
        }
    };
    for line in &log.seen {
        assert!(!line.contains('\u{1b}'), "an escape code in {line:?}");
    }
    let latency = served
        .split_whitespace()
        .find_map(|field| field.strip_prefix("latency_ms="))
        .unwrap_or_else(|| panic!("no latency in {served:?}"));
    let decimals = latency.split_once('.').map_or(0, |(_, d)| d.len());
    assert!(decimals <= 2, "{latency} in {served:?}");
    latency.parse::<f64>().unwrap();
}

#[tokio::test]
async fn a_stale_or_forged_session_cookie_is_cleared_and_logged_once_below_warn() {
    let (_child, port, mut log) = Served::start().await;
    let mut next_line = async || log.next_line().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // A well-formed id of a session that no longer exists, then one that is not an id at all.
    for cookie in [
        "profiles_session=AAAAAAAAAAAAAAAAAAAAAA",
        "profiles_session=%%forged%%",
    ] {
        let response = client
            .get(format!("http://{port}/profile/"))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "{cookie}");
        let cleared = response.headers().get_all("set-cookie").iter().any(|v| {
            let v = v.to_str().unwrap();
            v.starts_with("profiles_session=") && v.contains("Max-Age=0")
        });
        assert!(cleared, "{cookie} is cleared");
        while !next_line().await.contains("served") {}
    }
    let stale: Vec<_> = log
        .seen
        .iter()
        .filter(|l| l.contains("matched no live session"))
        .collect();
    assert_eq!(stale.len(), 1, "{:#?}", log.seen);
    assert!(stale[0].contains("INFO"), "{}", stale[0]);
    let serving = log
        .seen
        .iter()
        .skip_while(|l| !l.contains("profiles is listening"));
    assert!(
        !serving
            .clone()
            .any(|l| l.contains("WARN") || l.contains("ERROR")),
        "{:#?}",
        log.seen
    );
}

#[tokio::test]
async fn a_plain_http_public_url_off_this_machine_is_warned_about_at_start() {
    let (_child, _, served) =
        Served::start_with(&[("PUBLIC_URL", "http://profiles.example.org/")]).await;
    let warning = served
        .seen
        .iter()
        .find(|line| line.contains("WARN") && line.contains("PUBLIC_URL is plain http"))
        .unwrap_or_else(|| panic!("no warning in {:?}", served.seen));
    assert!(warning.contains("https"), "{warning}");

    let (_child, _, quiet) = Served::start().await;
    assert!(
        !quiet.seen.iter().any(|line| line.contains("plain http")),
        "{:?}",
        quiet.seen
    );
}
