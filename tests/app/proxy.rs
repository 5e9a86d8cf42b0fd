//! A bare HTTP/1.1 proxy in front of the stand-in, speaking the wire by hand so it can misbehave
//! the way real servers and proxies do: close a kept-alive connection just as the next request
//! arrives, or cut a body short. The app's `LMS_INTERNAL_URL` points at it.

use std::sync::{Arc, Mutex};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
};
use url::Url;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward everything, keeping connections alive.
    Pass,
    /// Answer the first request of each connection; close the connection, unanswered, when a
    /// second one arrives on it (a keep-alive timer firing as the request comes in).
    CloseOnReuse,
    /// Answer requests to paths starting with the given prefix with the head and half the body,
    /// then close.
    CutBody(&'static str),
}

/// One request the proxy read: its path, and whether it came on a reused connection.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub reused: bool,
}

pub struct Proxy {
    pub url: Url,
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Proxy {
    pub async fn spawn(upstream: Url) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let mode = Arc::new(Mutex::new(Mode::Pass));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (m, s) = (mode.clone(), seen.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(connection(
                    stream,
                    upstream.clone(),
                    client.clone(),
                    m.clone(),
                    s.clone(),
                ));
            }
        });
        Self { url, mode, seen }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Every request read so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// How many requests to paths starting with `prefix` arrived.
    pub fn count(&self, prefix: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.path.starts_with(prefix))
            .count()
    }
}

async fn connection(
    stream: TcpStream,
    upstream: Url,
    client: reqwest::Client,
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Mutex<Vec<Seen>>>,
) {
    let mut stream = BufReader::new(stream);
    let mut served = 0;
    loop {
        let Some((method, path, headers, body)) = read_request(&mut stream).await else {
            return;
        };
        let reused = served > 0;
        seen.lock().unwrap().push(Seen {
            path: path.clone(),
            reused,
        });
        let mode = *mode.lock().unwrap();
        if mode == Mode::CloseOnReuse && reused {
            return;
        }
        let mut request = client.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            upstream.join(&path).unwrap(),
        );
        for (name, value) in headers {
            if !matches!(
                name.as_str(),
                "host" | "connection" | "content-length" | "transfer-encoding"
            ) {
                request = request.header(name, value);
            }
        }
        let response = request.body(body).send().await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = response.bytes().await.unwrap();
        let mut head = format!(
            "HTTP/1.1 {} {}\r\ncontent-length: {}\r\nconnection: keep-alive\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            body.len()
        );
        if let Some(content_type) = content_type {
            head.push_str(&format!("content-type: {content_type}\r\n"));
        }
        head.push_str("\r\n");
        let out = stream.get_mut();
        out.write_all(head.as_bytes()).await.unwrap();
        if let Mode::CutBody(prefix) = mode
            && path.starts_with(prefix)
        {
            let _ = out.write_all(&body[..body.len() / 2]).await;
            let _ = out.flush().await;
            return;
        }
        if out.write_all(&body).await.is_err() {
            return;
        }
        served += 1;
    }
}

type Request = (String, String, Vec<(String, String)>, Vec<u8>);

/// A request head and its `Content-Length` body; `None` at the end of the connection.
async fn read_request(stream: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if stream.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).await.ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let length = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.ok()?;
    Some((method, path, headers, body))
}
