//! Connection hygiene, through `profiles::serve_until` as `profiles serve` runs it, with raw sockets
//! for the misbehaving clients: a head trickled in (slowloris) is cut off at the header-read
//! timeout while others are served, a kept-alive connection idles until the idle timeout and no
//! longer, connections beyond the limit wait for room, and a stop does not wait on a stalled
//! client for ever. (That in-flight requests finish at a stop: `operations`.)
//!
//! The machine running the tests may be loaded: the lower bounds are exact (a timer never fires
//! early), the upper ones generous, and every wait that would hang without the feature is bounded.

use std::{net::SocketAddr, time::Duration};

use profiles::{AppState, config::Config};
use reqwest::StatusCode;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::oneshot,
    task::JoinHandle,
    time::Instant,
};

use crate::helpers::{TestApp, spawn_app};

/// The app as `profiles serve` runs it, with `settings` on top of the test app's.
struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
    /// The LMS stand-in and database the settings point at.
    _app: TestApp,
}

async fn serve(settings: &[(&str, &str)]) -> Server {
    let app = spawn_app().await;
    let mut vars = app.vars.clone();
    for (name, value) in settings {
        vars.insert((*name).into(), (*value).into());
    }
    let state = AppState::new(Config::from_vars(&vars).unwrap())
        .await
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(profiles::serve_until(listener, state, async {
        let _ = stopped.await;
    }));
    Server {
        addr,
        stop: Some(stop),
        task,
        _app: app,
    }
}

impl Server {
    /// `GET /healthz` on a connection of its own.
    async fn healthz(&self) -> reqwest::Result<reqwest::Response> {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
            .get(format!("http://{}/healthz", self.addr))
            .timeout(Duration::from_secs(10))
            .send()
            .await
    }
}

/// How long after `since` the server closed `stream`, reading (and dropping) whatever it sent
/// meanwhile; `None` if it was still open `limit` after `since`.
async fn closed_after(
    stream: &mut (impl AsyncRead + Unpin),
    since: Instant,
    limit: Duration,
) -> Option<Duration> {
    let mut buf = [0u8; 1024];
    let read_to_end = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return since.elapsed(),
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout_at(since + limit, read_to_end)
        .await
        .ok()
}

/// Sends a whole `GET /healthz` on `stream` and reads its whole answer.
async fn healthz_on(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: profiles.test\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    let complete = async {
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before the answer was complete");
            answer.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&answer);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().unwrap())
                    })
                    .expect("a Content-Length");
                if body.len() >= length {
                    return text.into_owned();
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), complete)
        .await
        .expect("an answer within 10 s")
}

/// Opens a connection and sends the start of a request's head, every `every` one more header
/// line, for as long as the server takes them. Returns the connection's read half and when it
/// opened.
async fn slowloris(addr: SocketAddr, every: Duration) -> (tokio::net::tcp::OwnedReadHalf, Instant) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let opened = Instant::now();
    let (read, mut write) = stream.into_split();
    tokio::spawn(async move {
        if write
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: profiles.test\r\n")
            .await
            .is_err()
        {
            return;
        }
        for n in 0.. {
            tokio::time::sleep(every).await;
            let line = format!("X-Slow-{n}: still coming\r\n");
            if write.write_all(line.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    (read, opened)
}

#[tokio::test]
async fn a_slowloris_client_is_cut_off_within_the_header_read_timeout_while_others_are_served() {
    let server = serve(&[("HTTP_HEADER_READ_TIMEOUT_SECS", "1")]).await;
    let (mut read, opened) = slowloris(server.addr, Duration::from_millis(300)).await;
    let cut_off =
        tokio::spawn(async move { closed_after(&mut read, opened, Duration::from_secs(10)).await });

    // Meanwhile everyone else is served, each at once.
    for _ in 0..5 {
        let asked = Instant::now();
        let response = server.healthz().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            asked.elapsed() < Duration::from_secs(3),
            "{:?}",
            asked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    let after = cut_off
        .await
        .unwrap()
        .expect("a header line every 300 ms still held the connection 10 s later");
    assert!(after >= Duration::from_secs(1), "cut off early: {after:?}");
    assert!(after < Duration::from_secs(5), "cut off late: {after:?}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    // Idle for longer than a head may take: the wait between requests is the idle timeout's.
    let server = serve(&[
        ("HTTP_HEADER_READ_TIMEOUT_SECS", "1"),
        ("HTTP_IDLE_TIMEOUT_SECS", "3"),
    ])
    .await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    assert!(healthz_on(&mut stream).await.starts_with("HTTP/1.1 200"));

    // Still open past the header-read timeout: a second request on it is served.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert!(healthz_on(&mut stream).await.starts_with("HTTP/1.1 200"));
    let answered = Instant::now();

    let after = closed_after(&mut stream, answered, Duration::from_secs(15))
        .await
        .expect("an idle kept-alive connection still open 15 s later");
    assert!(after >= Duration::from_secs(3), "closed early: {after:?}");
    assert!(after < Duration::from_secs(8), "closed late: {after:?}");
}

#[tokio::test]
async fn a_slow_head_on_a_kept_alive_connection_is_cut_off_at_the_header_read_timeout() {
    let server = serve(&[
        ("HTTP_HEADER_READ_TIMEOUT_SECS", "1"),
        ("HTTP_IDLE_TIMEOUT_SECS", "60"),
    ])
    .await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    assert!(healthz_on(&mut stream).await.starts_with("HTTP/1.1 200"));

    // The next request's head trickles in after a while: its first byte starts the clock.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let (mut read, mut write) = stream.into_split();
    tokio::spawn(async move {
        let _ = write.write_all(b"GET /healthz HTTP/1.1\r\n").await;
        for n in 0.. {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let line = format!("X-Slow-{n}: still coming\r\n");
            if write.write_all(line.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    let after = closed_after(&mut read, started, Duration::from_secs(15))
        .await
        .expect("a trickled head held a kept-alive connection 15 s");
    assert!(after >= Duration::from_secs(1), "cut off early: {after:?}");
    assert!(after < Duration::from_secs(5), "cut off late: {after:?}");
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let server = serve(&[
        ("HTTP_MAX_CONNECTIONS", "2"),
        ("HTTP_HEADER_READ_TIMEOUT_SECS", "60"),
    ])
    .await;
    // Two clients in the middle of their heads hold both places (they are not idle).
    let mut first = TcpStream::connect(server.addr).await.unwrap();
    first.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let mut second = TcpStream::connect(server.addr).await.unwrap();
    second
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let asked = Instant::now();
    let waiting = tokio::spawn({
        let addr = server.addr;
        async move {
            let response = reqwest::Client::new()
                .get(format!("http://{addr}/healthz"))
                .timeout(Duration::from_secs(20))
                .send()
                .await;
            (response, Instant::now())
        }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!waiting.is_finished(), "served beyond HTTP_MAX_CONNECTIONS");

    drop(first);
    let closed = Instant::now();
    let (response, answered) = waiting.await.unwrap();
    assert_eq!(response.unwrap().status(), StatusCode::OK);
    assert!(answered >= closed, "answered {:?}", answered - asked);
    assert!(
        answered - closed < Duration::from_secs(5),
        "{:?}",
        answered - closed
    );
    drop(second);
}

#[tokio::test]
async fn at_the_limit_a_connection_idle_between_requests_is_closed_to_make_room() {
    let server = serve(&[
        ("HTTP_MAX_CONNECTIONS", "1"),
        ("HTTP_IDLE_TIMEOUT_SECS", "120"),
    ])
    .await;
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    assert!(healthz_on(&mut idle).await.starts_with("HTTP/1.1 200"));

    let asked = Instant::now();
    let response = server.healthz().await.expect("served within 10 s");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    assert!(
        closed_after(&mut idle, asked, Duration::from_secs(5))
            .await
            .is_some(),
        "the idle connection was closed for it"
    );
}

#[tokio::test]
async fn a_stop_closes_idle_connections_and_waits_for_a_stalled_head_no_longer_than_its_timeout() {
    let mut server = serve(&[
        ("HTTP_HEADER_READ_TIMEOUT_SECS", "2"),
        ("HTTP_IDLE_TIMEOUT_SECS", "120"),
    ])
    .await;
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    assert!(healthz_on(&mut idle).await.starts_with("HTTP/1.1 200"));
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    stalled
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let stopped = Instant::now();
    server.stop.take().unwrap().send(()).unwrap();
    assert!(
        closed_after(&mut idle, stopped, Duration::from_secs(3))
            .await
            .is_some(),
        "an idle connection is closed at once"
    );
    tokio::time::timeout(Duration::from_secs(10), &mut server.task)
        .await
        .expect("the stop waited on a stalled client past its header-read timeout")
        .unwrap()
        .unwrap();
    assert!(
        stopped.elapsed() < Duration::from_secs(6),
        "{:?}",
        stopped.elapsed()
    );
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "no longer accepting"
    );
}
