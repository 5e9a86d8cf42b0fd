//! The HTTP server under both listeners (`BIND`, `METRICS_BIND`): an accept loop holding at most
//! `HTTP_MAX_CONNECTIONS` connections, each served by hyper's HTTP/1.1 with a header-read and an
//! idle timeout, and a graceful stop. It stands in for `axum::serve`, which has neither timeouts
//! nor a limit: a client sending a header line every few seconds held its connection for ever.
//!
//! The pieces, in the order a connection meets them:
//! - [`serve`]: waits for room, accepts, spawns [`connection`]; when full, asks the connections
//!   idle between requests to close (nginx reuses its keep-alive connections so too); on
//!   shutdown stops accepting and waits for every connection to end.
//! - [`connection`]: hyper's connection, ended gracefully on shutdown or, when idle, on pressure.
//! - [`HeadTimer`] and [`Watched`]: the two timeouts. Hand-written because hyper has only one,
//!   see [`HeadTimer`].

use std::{
    future::Future,
    io,
    pin::{Pin, pin},
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
    time::Duration,
};

use axum::Router;
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{Notify, OwnedSemaphorePermit, Semaphore, watch},
    time::Instant,
};

use crate::config::HttpLimits;

/// How often a full server asks idle connections again to make room, and the least time between
/// two log lines about the same trouble (a full server, failing accepts).
const FULL_RETRY: Duration = Duration::from_secs(1);
const LOG_EVERY: Duration = Duration::from_secs(60);
/// The pause after an accept that failed for want of resources (`EMFILE`, `ENFILE`, `ENOMEM`):
/// retrying at once would spin; the connection waits in the listen queue meanwhile.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` under `limits` until `shutdown` completes; then stops accepting,
/// lets every connection finish its request in flight, and returns once all have closed.
///
/// A connection beyond the limit is not accepted: it waits in the kernel's listen queue (as with
/// Go's `netutil.LimitListener`) until one closes, rather than being accepted and closed, so a
/// burst is served late instead of refused; meanwhile connections idle between requests are
/// closed to make room. A failed accept never ends the server.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let room = Arc::new(Semaphore::new(limits.max_connections));
    let pressure = Arc::new(Notify::new());
    let (stop, stopping) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    let mut full_log = Throttled::default();
    let mut accept_log = Throttled::default();
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = wait_for_room(&room, &pressure, limits, &mut full_log) => permit,
        };
        let Some(permit) = permit else { break };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(&e, &mut accept_log).await;
                    continue;
                }
            },
        };
        tokio::spawn(connection(
            stream,
            router.clone(),
            limits,
            permit,
            stopping.clone(),
            pressure.clone(),
        ));
    }
    drop(listener);
    drop(stopping);
    // Each connection holds a receiver until it ends: once all are dropped, all have ended.
    let _ = stop.send(());
    stop.closed().await;
}

/// A permit for one more connection, at once if there is room; else, once one closes, asking the
/// idle ones every second to make room. `None` only if the semaphore were closed, which it never is.
async fn wait_for_room(
    room: &Arc<Semaphore>,
    pressure: &Notify,
    limits: HttpLimits,
    log: &mut Throttled,
) -> Option<OwnedSemaphorePermit> {
    if let Ok(permit) = room.clone().try_acquire_owned() {
        return Some(permit);
    }
    if log.due() {
        tracing::warn!(
            limit = limits.max_connections,
            "HTTP_MAX_CONNECTIONS connections are open: new ones wait in the listen queue, and \
             connections idle between requests are closed to make room; if this is ordinary \
             traffic, raise HTTP_MAX_CONNECTIONS (below the open-file limit, `ulimit -n`)"
        );
    }
    loop {
        pressure.notify_waiters();
        tokio::select! {
            permit = room.clone().acquire_owned() => return permit.ok(),
            () = tokio::time::sleep(FULL_RETRY) => {}
        }
    }
}

/// An accept that failed: a connection reset or aborted before it was taken is the client's
/// business and retried at once; anything else (out of file descriptors, memory) is logged, once
/// a minute at most, and retried after a pause.
async fn accept_failed(error: &io::Error, log: &mut Throttled) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    ) {
        return;
    }
    if log.due() {
        tracing::error!(
            error = %error,
            "cannot accept connections; retrying (out of file descriptors? see `ulimit -n` and \
             HTTP_MAX_CONNECTIONS)"
        );
    }
    tokio::time::sleep(ACCEPT_BACKOFF).await;
}

/// One connection, until the client closes it, a timeout ends it, or the server stops. `permit`
/// and `stopping` are held until then: they are how [`serve`] counts it.
async fn connection(
    stream: TcpStream,
    router: Router,
    limits: HttpLimits,
    permit: OwnedSemaphorePermit,
    mut stopping: watch::Receiver<()>,
    pressure: Arc<Notify>,
) {
    let activity = Arc::new(Activity::new(limits));
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(HeadTimer {
            activity: activity.clone(),
        })
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let mut conn = pin!(builder.serve_connection(io, TowerToHyperService::new(router)));
    let mut ending = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    // A timeout, a malformed request, a client gone mid-request: all the client's.
                    tracing::debug!(error = %e, "connection ended");
                }
                break;
            }
            // Idle: closes now; in a request: closes once its response is sent.
            _ = stopping.changed(), if !ending => {
                conn.as_mut().graceful_shutdown();
                ending = true;
            }
            () = pressure.notified(), if !ending => {
                if activity.is_idle() {
                    conn.as_mut().graceful_shutdown();
                    ending = true;
                }
            }
        }
    }
    drop(permit);
}

/// hyper's HTTP/1.1 server arms its one header-read timer whenever it starts waiting for a
/// request's head: when the connection opens, and again as soon as the previous response is sent
/// (hyper 1.12, `src/proto/h1/conn.rs`, `Conn::poll_read_head`, re-armed through `State::idle`).
/// So that one timeout is also the longest a kept-alive connection may sit idle, and hyper has no
/// separate idle timeout (one was proposed, hyperium/hyper#3743, and not merged). This timer,
/// made for one connection, holds each wait after the first to two limits instead: the head must
/// begin within the idle timeout, and end within the header-read timeout of its first byte. The
/// first head on a connection must end within the header-read timeout of the connection's start.
/// (A head whose start was read before the wait began, pipelined behind the previous request,
/// counts as idle until more of it comes: bounded by the idle timeout all the same.)
///
/// It relies on hyper using an HTTP/1.1 server connection's timer for the header read alone, as
/// hyper 1.12 does; `tests/app/connections.rs` checks both limits through the real server.
#[derive(Clone)]
struct HeadTimer {
    activity: Arc<Activity>,
}

impl hyper::rt::Timer for HeadTimer {
    /// Unused by hyper's HTTP/1.1 server; a wait for a head all the same.
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(std::time::Instant::now() + duration)
    }

    /// hyper's `deadline` is the header-read timeout from now; the [`Activity`] knows better.
    fn sleep_until(&self, _deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        let now = Instant::now();
        let wait = self.activity.start_wait();
        Box::pin(HeadSleep {
            activity: self.activity.clone(),
            wait,
            armed: now,
            sleep: Box::pin(tokio::time::sleep_until(now)),
        })
    }

    fn now(&self) -> std::time::Instant {
        Instant::now().into_std()
    }
}

/// One wait for a request's head: ready when the [`Activity`] says the wait is over.
struct HeadSleep {
    activity: Arc<Activity>,
    /// Which wait of the connection this is.
    wait: u64,
    armed: Instant,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl hyper::rt::Sleep for HeadSleep {}

impl Future for HeadSleep {
    type Output = ();

    /// hyper polls this after every read that left the head incomplete, so a first byte moves the
    /// deadline here.
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = self.activity.deadline(self.armed);
        if self.sleep.deadline() != deadline {
            self.sleep.as_mut().reset(deadline);
        }
        self.sleep.as_mut().poll(cx)
    }
}

impl Drop for HeadSleep {
    /// hyper drops the timer once the head is read (or the connection ends).
    fn drop(&mut self) {
        self.activity.end_wait(self.wait);
    }
}

/// What the timer and the pressure check know of one connection.
struct Activity {
    limits: HttpLimits,
    state: Mutex<Waiting>,
}

struct Waiting {
    /// How many waits for a head have begun; the first is the connection's first request.
    waits: u64,
    /// Whether hyper is waiting for a head now.
    waiting: bool,
    /// When the head being waited for began: its first byte read, or for the first request the
    /// connection's start. `None` while no byte of it has come.
    began: Option<Instant>,
}

impl Activity {
    fn new(limits: HttpLimits) -> Self {
        Self {
            limits,
            state: Mutex::new(Waiting {
                waits: 0,
                waiting: false,
                began: Some(Instant::now()),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// hyper starts waiting for a head; returns the wait's number.
    fn start_wait(&self) -> u64 {
        let mut state = self.lock();
        if state.waits > 0 {
            state.began = None;
        }
        state.waits += 1;
        state.waiting = true;
        state.waits
    }

    fn end_wait(&self, wait: u64) {
        let mut state = self.lock();
        if state.waits == wait {
            state.waiting = false;
        }
    }

    /// Bytes came in: the first of a head starts its header-read time.
    fn read(&self) {
        let mut state = self.lock();
        if state.began.is_none() {
            state.began = Some(Instant::now());
        }
    }

    /// When the wait armed at `armed` is over.
    fn deadline(&self, armed: Instant) -> Instant {
        match self.lock().began {
            Some(first_byte) => first_byte + self.limits.header_read_timeout,
            None => armed + self.limits.idle_timeout,
        }
    }

    /// Between two requests, with nothing of the next one come: closing loses nothing.
    fn is_idle(&self) -> bool {
        let state = self.lock();
        state.waiting && state.began.is_none()
    }
}

/// The connection's socket, telling its [`Activity`] when bytes come in.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Says when a recurring trouble may be logged again: at its first occurrence, then once a minute.
#[derive(Default)]
struct Throttled {
    last: Option<Instant>,
}

impl Throttled {
    fn due(&mut self) -> bool {
        let now = Instant::now();
        let due = self.last.is_none_or(|last| now >= last + LOG_EVERY);
        if due {
            self.last = Some(now);
        }
        due
    }
}
