//! Benchmarks: how fast sign-in is, what it costs, how it grows. Run with `examples/bench.sh`
//! (see BENCHMARKS.md). The app runs as its own release process, so its CPU time and peak RSS are
//! its own; the LMS stand-in runs on a dedicated thread of this process, whose CPU time is read
//! separately; a bare axum handler (this binary, re-run as `bench baseline ADDR`) is the ceiling,
//! and per backend a bare handler doing the profile view's one read (`bench limit ADDR URL BYTES`)
//! is the limit a session-checked page can reach with this driver.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark: a setup step that fails stops the run with its message"
)]

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use openedx_standin::{LmsUser, RegisteredClient, Settings, StandIn};
use reqwest::{StatusCode, header};

const CONCURRENCY: usize = 32;
const CLIENT_ID: &str = "bench";
const CLIENT_SECRET: &str = "bench-secret";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("baseline") {
        return baseline_server(&args[1]);
    }
    if args.first().map(String::as_str) == Some("limit") {
        return limit_server(&args[1], &args[2], args[3].parse().unwrap());
    }
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let postgres = std::env::var("BENCH_POSTGRES_URL").ok();
    let mysql = std::env::var("BENCH_MYSQL_URL").ok();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(Duration::from_secs(seconds), postgres, mysql));
}

// ---- the bare-handler baseline -------------------------------------------------------------

/// The same 303 with a cookie that `GET /` answers, without sessions, database or PKCE.
fn baseline_server(addr: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(|| async {
                let id = format!("{:032x}", rand::random::<u128>());
                (
                    StatusCode::SEE_OTHER,
                    [
                        (
                            header::LOCATION,
                            "http://127.0.0.1:9/oauth2/authorize/".to_owned(),
                        ),
                        (
                            header::SET_COOKIE,
                            format!("profiles_session={id}; HttpOnly; SameSite=Lax; Path=/"),
                        ),
                    ],
                )
            }),
        );
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        axum::serve(listener, app).await.unwrap();
    });
}

// ---- the limit: the profile view's one read, and nothing else --------------------------------

/// The pool `profiles::store::Store::connect` opens for `database_url`, with the same settings
/// (src/store.rs), without migrations, keys or anything else.
enum LimitPool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
    MySql(sqlx::MySqlPool),
}

async fn limit_pool(database_url: &str) -> LimitPool {
    use sqlx::{mysql::MySqlPoolOptions, postgres::PgPoolOptions, sqlite::*};
    use std::str::FromStr;
    if database_url.starts_with("postgres") {
        LimitPool::Postgres(
            PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(5))
                .connect(database_url)
                .await
                .unwrap(),
        )
    } else if database_url.starts_with("mysql") {
        LimitPool::MySql(
            MySqlPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(5))
                .connect(database_url)
                .await
                .unwrap(),
        )
    } else {
        let options = SqliteConnectOptions::from_str(database_url)
            .unwrap()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as u32;
        LimitPool::Sqlite(
            SqlitePoolOptions::new()
                .max_connections((2 * cores).clamp(4, 16))
                .connect_with(options)
                .await
                .unwrap(),
        )
    }
}

/// `Store::load_session`'s query, as it is sent: the same SQL, binds and row type.
const LOAD_SESSION: &str = "SELECT record, expiry_date, token, token_version
                   FROM sessions WHERE id = ? AND expiry_date > ?";
const LOAD_SESSION_PG: &str = "SELECT record, expiry_date, token, token_version
                   FROM sessions WHERE id = $1 AND expiry_date > $2";

type SessionColumns = (String, i64, String, i64);

/// `GET /profile/` as bare as it can be while still checking the session against the database:
/// the cookie's SHA-256 (`profiles::store::session_key`), `Store::load_session`'s one read by
/// primary key on the same kind of pool, and a 200 with a body of the profile page's size. No
/// decryption, no template, no middleware, nothing kept between requests but the pool.
fn limit_server(addr: &str, database_url: &str, page_bytes: usize) {
    use axum::{extract::State, http::HeaderMap, response::IntoResponse};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let pool = Arc::new(limit_pool(database_url).await);
        let page = axum::body::Bytes::from("x".repeat(page_bytes));
        let app = axum::Router::new()
            .route(
                "/profile/",
                axum::routing::get(
                    |State((pool, page)): State<(Arc<LimitPool>, axum::body::Bytes)>,
                     headers: HeaderMap| async move {
                        let Some(id) = headers
                            .get_all(header::COOKIE)
                            .iter()
                            .filter_map(|v| v.to_str().ok())
                            .flat_map(|v| v.split(';'))
                            .find_map(|c| c.trim().strip_prefix("profiles_session="))
                        else {
                            return StatusCode::NOT_FOUND.into_response();
                        };
                        let key = profiles::store::session_key(&id);
                        let now = openedx_client::unix_now();
                        let row: Result<Option<SessionColumns>, sqlx::Error> = match &*pool {
                            LimitPool::Sqlite(p) => {
                                sqlx::query_as(LOAD_SESSION)
                                    .bind(&key)
                                    .bind(now)
                                    .fetch_optional(p)
                                    .await
                            }
                            LimitPool::Postgres(p) => {
                                sqlx::query_as(LOAD_SESSION_PG)
                                    .bind(&key)
                                    .bind(now)
                                    .fetch_optional(p)
                                    .await
                            }
                            LimitPool::MySql(p) => {
                                sqlx::query_as(LOAD_SESSION)
                                    .bind(&key)
                                    .bind(now)
                                    .fetch_optional(p)
                                    .await
                            }
                        };
                        match row {
                            Ok(Some(_)) => {
                                ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page)
                                    .into_response()
                            }
                            Ok(None) => StatusCode::NOT_FOUND.into_response(),
                            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                        }
                    },
                ),
            )
            .with_state((pool, page));
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        axum::serve(listener, app).await.unwrap();
    });
}

// ---- processes and their costs ---------------------------------------------------------------

struct Proc {
    child: Child,
    url: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// utime + stime of a process or thread, from its `stat` file.
fn cpu_of(stat_path: &str) -> Duration {
    let stat = std::fs::read_to_string(stat_path).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15; `fields` starts at field 3.
    Duration::from_millis((ticks(11) + ticks(12)) * 1000 / clock_ticks())
}

/// CPU time of the database server's processes (PostgreSQL's or MariaDB's/MySQL's, by name), so a
/// row can say what a request costs the server too; none for SQLite, which runs in the app.
fn server_cpu(backend: &str) -> Duration {
    let names: &[&str] = match backend {
        "postgres" => &["postgres"],
        "mysql" => &["mariadbd", "mysqld"],
        _ => return Duration::ZERO,
    };
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    dir.filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| names.contains(&c.trim()))
        })
        .map(|e| cpu_of(&e.path().join("stat").to_string_lossy()))
        .sum()
}

fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// Peak and current resident set size, in MiB.
fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn app_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/release/examples/bench -> target/release/profiles
    exe.parent().unwrap().parent().unwrap().join("profiles")
}

async fn wait_ready(url: &str) -> Duration {
    let started = Instant::now();
    let client = reqwest::Client::new();
    loop {
        if let Ok(r) = client.get(format!("{url}readyz")).send().await
            && r.status() == StatusCode::OK
        {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{url} never got ready"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Starts the app; returns it and the time from spawn until `/readyz` answered 200.
async fn start_app(lms: &Lms, database_url: &str) -> (Proc, Duration) {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/");
    lms.standin.register_client(RegisteredClient {
        skip_authorization: true,
        ..RegisteredClient::authorization_code(
            CLIENT_ID,
            CLIENT_SECRET,
            vec![format!("{url}authorize/")],
        )
    });
    let lms = lms.url.as_str();
    let spawned = Instant::now();
    let child = Command::new(app_binary())
        .env_clear()
        .env("LMS_URL", lms)
        .env("LMS_CLIENT_ID", CLIENT_ID)
        .env("LMS_CLIENT_SECRET", CLIENT_SECRET)
        .env("PUBLIC_URL", &url)
        .env("BIND", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", database_url)
        .env("SECRET_KEYS", bench_key())
        .env("RUST_LOG", "info,sqlx=warn")
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("target/release/profiles: build it first (examples/bench.sh does)");
    let proc = Proc { child, url };
    wait_ready(&proc.url).await;
    (proc, spawned.elapsed())
}

/// One key for the whole run, as an operator would set it.
fn bench_key() -> &'static str {
    static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KEY.get_or_init(profiles::keys::KeyRing::generate_key)
}

// ---- load ------------------------------------------------------------------------------------

struct Stats {
    requests: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

impl Stats {
    fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn from_latencies(mut latencies: Vec<Duration>, elapsed: Duration) -> Self {
        latencies.sort();
        let at = |p: f64| {
            latencies
                .get(((latencies.len() as f64 - 1.0) * p) as usize)
                .copied()
                .unwrap_or_default()
        };
        Self {
            requests: latencies.len(),
            elapsed,
            p50: at(0.5),
            p99: at(0.99),
        }
    }
}

/// Load from `wrk` (Debian's package), a separate process written in C, so the load generator is
/// not what limits the throughput: `CONCURRENCY` connections on `WRK_THREADS` threads (default
/// one) for `duration`, each request carrying one of `cookies` in turn (none when empty).
/// Panics if any answer was not 2xx or 3xx.
fn wrk(url: &str, duration: Duration, cookies: &[String]) -> Stats {
    let threads = std::env::var("WRK_THREADS").unwrap_or_else(|_| "1".into());
    let mut command = Command::new("wrk");
    command.args([
        "--latency",
        "-t",
        &threads,
        "-c",
        &CONCURRENCY.to_string(),
        "-d",
        &format!("{}s", duration.as_secs().max(1)),
    ]);
    if !cookies.is_empty() {
        let list: Vec<String> = cookies.iter().map(|c| format!("{c:?}")).collect();
        let script = std::env::temp_dir().join(format!("bench-{:08x}.lua", rand::random::<u32>()));
        std::fs::write(
            &script,
            format!(
                "local cookies = {{{}}}\nlocal n = 0\n\
                 request = function()\n  n = n + 1\n  \
                 return wrk.format(nil, nil, {{[\"Cookie\"] = cookies[n % #cookies + 1]}})\nend\n",
                list.join(", ")
            ),
        )
        .unwrap();
        command.arg("-s").arg(script);
    }
    let output = command
        .arg(url)
        .output()
        .expect("wrk: install it (examples/bench.sh does: apt-get install wrk)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        !text.contains("Non-2xx or 3xx"),
        "wrk saw failed requests:\n{text}"
    );
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(|v| v.split_whitespace().next().unwrap_or("").to_owned())
            .unwrap_or_else(|| panic!("no {prefix:?} in wrk's output:\n{text}"))
    };
    let latency = |v: String| {
        let (number, unit) = v.split_at(v.find(|c: char| c.is_alphabetic()).unwrap_or(v.len()));
        let n: f64 = number.parse().unwrap_or(0.0);
        Duration::from_secs_f64(match unit {
            "us" => n / 1e6,
            "ms" => n / 1e3,
            "s" => n,
            _ => 0.0,
        })
    };
    let requests: usize = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let rps: f64 = field("Requests/sec:").parse().unwrap_or(0.0);
    Stats {
        requests,
        elapsed: Duration::from_secs_f64(requests as f64 / rps.max(1.0)),
        p50: latency(field("50%")),
        p99: latency(field("99%")),
    }
}

/// Runs `op` from `CONCURRENCY` workers for `duration`; each worker owns a state made by `init`.
async fn load<S, I, IF, O, OF>(duration: Duration, init: I, op: O) -> Stats
where
    S: Send + Sync + 'static,
    I: Fn(usize) -> IF,
    IF: std::future::Future<Output = S>,
    O: Fn(Arc<S>) -> OF + Send + Sync + 'static,
    OF: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let mut states = Vec::new();
    for i in 0..CONCURRENCY {
        states.push(Arc::new(init(i).await));
    }
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = states
        .into_iter()
        .map(|state| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    assert!(op(state.clone()).await, "a benchmark request failed");
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await.unwrap());
    }
    Stats::from_latencies(latencies, started.elapsed())
}

fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap()
}

fn cookie_client(jar: &Arc<reqwest::cookie::Jar>) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_provider(jar.clone())
        .build()
        .unwrap()
}

/// One complete sign-in in a fresh tab of a browser already logged in at the LMS (consent
/// skipped): `GET /`, the LMS authorize, the callback, the profile. Returns the session cookie.
/// The app's cookies are carried by hand, because a cookie jar does not tell ports apart and the
/// app and the stand-in share `127.0.0.1`.
async fn sign_in(lms: &reqwest::Client, app: &str) -> Option<String> {
    let tab = plain_client();
    let first = |r: &reqwest::Response, prefix: &str| {
        r.headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(prefix))
            .and_then(|v| v.split(';').next())
            .map(str::to_owned)
    };
    let location = |r: &reqwest::Response| {
        r.headers()
            .get(header::LOCATION)?
            .to_str()
            .ok()
            .map(str::to_owned)
    };
    let r = tab.get(app).send().await.ok()?;
    (r.status() == StatusCode::SEE_OTHER).then_some(())?;
    let pending = first(&r, "profiles_signin_")?;
    let r = lms.get(location(&r)?).send().await.ok()?;
    (r.status() == StatusCode::FOUND).then_some(())?;
    let r = tab
        .get(location(&r)?)
        .header(header::COOKIE, pending)
        .send()
        .await
        .ok()?;
    (r.status() == StatusCode::SEE_OTHER).then_some(())?;
    let session = first(&r, "profiles_session=")?;
    let r = tab
        .get(format!("{app}profile/"))
        .header(header::COOKIE, &session)
        .send()
        .await
        .ok()?;
    (r.status() == StatusCode::OK).then_some(session)
}

async fn logged_in_at_lms(lms: &str, jar: &Arc<reqwest::cookie::Jar>) -> reqwest::Client {
    let client = cookie_client(jar);
    let r = client
        .post(format!("{lms}login"))
        .form(&[
            ("username", "learner"),
            ("password", "learner-password"),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    client
}

// ---- the stand-in, on its own thread ---------------------------------------------------------

struct Lms {
    standin: StandIn,
    url: String,
    thread_stat: String,
}

fn start_standin() -> Lms {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let tid = std::fs::read_link("/proc/thread-self")
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let standin = StandIn::spawn("127.0.0.1:0".parse().unwrap(), Settings::default())
                .await
                .unwrap();
            standin.add_user(LmsUser::demo_learner());
            tx.send((standin, tid)).unwrap();
            // Its server task runs on this thread's runtime for as long as the benchmark does.
            std::future::pending::<()>().await;
        });
    });
    let (standin, tid) = rx.recv().unwrap();
    Lms {
        url: standin.url().to_string(),
        standin,
        thread_stat: format!("/proc/self/task/{tid}/stat"),
    }
}

// ---- databases -------------------------------------------------------------------------------

fn sqlite_url(dir: &Path, name: &str) -> String {
    format!("sqlite://{}", dir.join(name).display())
}

/// A real signed-in session's row, opened: what the filler rows repeat.
type Template = (profiles::store::SessionRecord, openedx_client::Token);

/// The record and token the app stored for the session `cookie` (`name=value`) in `database_url`,
/// opened with the run's `SECRET_KEYS`.
async fn stored_session(database_url: &str, cookie: &str) -> Template {
    let keys = profiles::keys::KeyRing::parse(bench_key()).unwrap();
    let store = profiles::store::Store::connect(database_url, Some(keys))
        .await
        .unwrap();
    let id = cookie.split_once('=').unwrap().1;
    let row = store
        .load_session(
            &profiles::store::session_key(&id),
            openedx_client::unix_now(),
        )
        .await
        .unwrap()
        .expect("the signed-in session's row");
    store.close().await;
    (row.record, row.token.token)
}

/// Adds `n` stored sessions, live for a day, each what the app stores for a sign-in: the record
/// and token of a real one (`template`), sealed as `Store::create_session` seals them (JSON, with
/// the run's `SECRET_KEYS`, bound to the row's key), under a key of a random session id.
/// Inserted in one transaction, which `create_session` (one statement each) would not be.
async fn fill_sessions(database_url: &str, n: usize, template: &Template) {
    use profiles::keys::{KeyRing, Purpose};
    let keys = KeyRing::parse(bench_key()).unwrap();
    profiles::store::Store::connect(database_url, Some(keys.clone()))
        .await
        .unwrap()
        .close()
        .await;
    let (record, token) = (
        serde_json::to_vec(&template.0).unwrap(),
        serde_json::to_vec(&template.1).unwrap(),
    );
    let now = openedx_client::unix_now();
    let far = now + 86_400;
    let rows = (0..n).map(|_| {
        let key = profiles::store::session_key(&format!("{:032x}", rand::random::<u128>()));
        let record = keys.seal(Purpose::SessionRecord, &record, key.as_bytes());
        let token = keys.seal(Purpose::Token, &token, key.as_bytes());
        (key, record, token)
    });
    const INSERT: &str = "INSERT INTO sessions (id, record, expiry_date, token, created_at)
                          VALUES (?, ?, ?, ?, ?)";
    const INSERT_PG: &str = "INSERT INTO sessions (id, record, expiry_date, token, created_at)
                             VALUES ($1, $2, $3, $4, $5)";
    macro_rules! fill {
        ($pool:expr, $sql:expr) => {{
            let pool = $pool;
            let mut tx = pool.begin().await.unwrap();
            for (key, record, token) in rows {
                sqlx::query($sql)
                    .bind(key)
                    .bind(record)
                    .bind(far)
                    .bind(token)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
            pool.close().await;
        }};
    }
    if database_url.starts_with("sqlite:") {
        fill!(
            sqlx::SqlitePool::connect(database_url).await.unwrap(),
            INSERT
        )
    } else if database_url.starts_with("mysql:") {
        fill!(
            sqlx::MySqlPool::connect(database_url).await.unwrap(),
            INSERT
        )
    } else {
        fill!(
            sqlx::PgPool::connect(database_url).await.unwrap(),
            INSERT_PG
        )
    }
}

/// A fresh database on the PostgreSQL or MySQL server `server` names.
async fn fresh_database(server: &str) -> String {
    use sqlx::Connection;
    let name = format!("profiles_bench_{:08x}", rand::random::<u32>());
    let create = format!("CREATE DATABASE {name}");
    if server.starts_with("mysql:") {
        let mut admin = sqlx::MySqlConnection::connect(server).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(create))
            .execute(&mut admin)
            .await
            .unwrap();
    } else {
        let mut admin = sqlx::PgConnection::connect(server).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(create))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    let mut url = url::Url::parse(server).unwrap();
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// Drops the databases [`fresh_database`] made, once nothing uses them.
async fn drop_databases(server: &str, urls: &[String]) {
    use sqlx::Connection;
    for url in urls {
        let name = url::Url::parse(url)
            .unwrap()
            .path()
            .trim_start_matches('/')
            .to_owned();
        let drop = sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}"));
        let dropped = if server.starts_with("mysql:") {
            let mut admin = sqlx::MySqlConnection::connect(server).await.unwrap();
            sqlx::raw_sql(drop).execute(&mut admin).await.map(|_| ())
        } else {
            let mut admin = sqlx::PgConnection::connect(server).await.unwrap();
            sqlx::raw_sql(drop).execute(&mut admin).await.map(|_| ())
        };
        if let Err(e) = dropped {
            eprintln!("could not drop {name}: {e}");
        }
    }
}

// ---- scenarios -------------------------------------------------------------------------------

struct Row {
    scenario: String,
    throughput: f64,
    p50: Duration,
    p99: Duration,
    app_cpu: Duration,
    per_op_cpu: Duration,
    peak_rss: f64,
    ratio: Option<f64>,
    /// Throughput against the limit of the same backend (the profile view's one read, bare).
    vs_limit: Option<f64>,
    note: String,
}

impl Row {
    /// A row from a scenario's load and the app's CPU time over it.
    fn new(
        scenario: String,
        stats: &Stats,
        cpu: Duration,
        pid: u32,
        baseline: Option<f64>,
    ) -> Self {
        Self {
            scenario,
            throughput: stats.throughput(),
            p50: stats.p50,
            p99: stats.p99,
            app_cpu: cpu,
            per_op_cpu: cpu / stats.requests.max(1) as u32,
            peak_rss: rss_mib(pid).0,
            ratio: baseline.map(|b| stats.throughput() / b),
            vs_limit: None,
            note: String::new(),
        }
    }

    fn note(self, note: String) -> Self {
        Self { note, ..self }
    }

    fn vs_limit(self, limit: f64) -> Self {
        Self {
            vs_limit: Some(self.throughput / limit),
            ..self
        }
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "| scenario | req/s | p50 ms | p99 ms | app CPU s | app CPU per op | app peak RSS MiB | vs bare handler | vs limit | notes |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    for r in rows {
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.0} µs | {:.1} | {} | {} | {} |",
            r.scenario,
            r.throughput,
            r.p50.as_secs_f64() * 1000.0,
            r.p99.as_secs_f64() * 1000.0,
            r.app_cpu.as_secs_f64(),
            r.per_op_cpu.as_secs_f64() * 1e6,
            r.peak_rss,
            r.ratio
                .map_or("-".into(), |x| format!("{:.0} %", x * 100.0)),
            r.vs_limit.map_or("-".into(), |x| format!("{x:.2}x")),
            r.note,
        );
    }
}

async fn measure<F, Fut>(app: &Proc, run: F) -> (Stats, Duration)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Stats>,
{
    let stat = format!("/proc/{}/stat", app.pid());
    let before = cpu_of(&stat);
    let stats = run().await;
    let cpu = cpu_of(&stat).saturating_sub(before);
    (stats, cpu)
}

/// Scenario 1's load (and the baseline's): `GET /` without a cookie, expecting the 303.
async fn cookieless_redirects(duration: Duration, url: &str) -> Stats {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || wrk(&url, duration, &[]))
        .await
        .unwrap()
}

/// Scenario 2's people: `CONCURRENCY` of them sign in once; their session cookies.
async fn signed_in_cookies(app_url: &str, lms_url: &str) -> Vec<String> {
    let mut cookies = Vec::new();
    for _ in 0..CONCURRENCY {
        let client = logged_in_at_lms(lms_url, &Default::default()).await;
        let session = sign_in(&client, app_url).await;
        cookies.push(session.expect("a benchmark sign-in"));
    }
    cookies
}

/// Scenario 2's load: `GET /profile/`, each request with one of `cookies` in turn.
async fn profile_load(duration: Duration, url: &str, cookies: &[String]) -> Stats {
    let url = format!("{url}profile/");
    let cookies = cookies.to_vec();
    tokio::task::spawn_blocking(move || wrk(&url, duration, &cookies))
        .await
        .unwrap()
}

/// People sign in, then their profiles are viewed again and again.
async fn profile_views(duration: Duration, app_url: &str, lms_url: &str) -> Stats {
    let cookies = signed_in_cookies(app_url, lms_url).await;
    profile_load(duration, app_url, &cookies).await
}

/// The profile page's length in bytes, as the app answers it for `cookie`.
async fn profile_page_bytes(app_url: &str, cookie: &str) -> usize {
    let r = plain_client()
        .get(format!("{app_url}profile/"))
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.bytes().await.unwrap().len()
}

/// Starts this binary as `bench limit` on `database_url`, answering pages of `page_bytes`.
async fn start_limit(database_url: &str, page_bytes: usize) -> Proc {
    let port = free_port();
    let proc = Proc {
        child: Command::new(std::env::current_exe().unwrap())
            .args([
                "limit",
                &format!("127.0.0.1:{port}"),
                database_url,
                &page_bytes.to_string(),
            ])
            .spawn()
            .unwrap(),
        url: format!("http://127.0.0.1:{port}/"),
    };
    let client = plain_client();
    for _ in 0..500 {
        if client.get(&proc.url).send().await.is_ok() {
            return proc;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the limit server never answered");
}

async fn run(duration: Duration, postgres: Option<String>, mysql: Option<String>) {
    let dir = std::env::temp_dir().join(format!("profiles-bench-{:08x}", rand::random::<u32>()));
    std::fs::create_dir_all(&dir).unwrap();
    let lms = start_standin();
    let mut rows = Vec::new();
    let mut made: Vec<(String, String)> = Vec::new();

    println!(
        "profiles benchmark: {CONCURRENCY} concurrent clients, {} s per scenario, {} CPUs",
        duration.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // Baseline: the bare handler.
    let port = free_port();
    let baseline = Proc {
        child: Command::new(std::env::current_exe().unwrap())
            .args(["baseline", &format!("127.0.0.1:{port}")])
            .spawn()
            .unwrap(),
        url: format!("http://127.0.0.1:{port}/"),
    };
    let client = plain_client();
    for _ in 0..200 {
        if client.get(&baseline.url).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (base, base_cpu) =
        measure(&baseline, || cookieless_redirects(duration, &baseline.url)).await;
    rows.push(Row::new(
        "baseline: bare axum 303 + cookie".into(),
        &base,
        base_cpu,
        baseline.pid(),
        Some(base.throughput()),
    ));
    drop(baseline);
    let base_rps = base.throughput();

    let mut databases = vec![("sqlite", sqlite_url(&dir, "bench.db"), None)];
    if let Some(server) = &postgres {
        let url = fresh_database(server).await;
        made.push((server.clone(), url.clone()));
        databases.push(("postgres", url, Some(server.clone())));
    }
    if let Some(server) = &mysql {
        let url = fresh_database(server).await;
        made.push((server.clone(), url.clone()));
        databases.push(("mysql", url, Some(server.clone())));
    }
    let mut template: Option<Template> = None;
    for (backend, database_url, server) in &databases {
        let (app, _) = start_app(&lms, database_url).await;
        let app_url = app.url.clone();

        // 1. Start sign-in: no cookie, so a new session, state and PKCE each time.
        let (s, cpu) = measure(&app, || cookieless_redirects(duration, &app_url)).await;
        rows.push(Row::new(
            format!("1. start sign-in `GET /` ({backend})"),
            &s,
            cpu,
            app.pid(),
            Some(base_rps),
        ));

        // 2. View the profile of a signed-in session, then the limit: the same requests, the
        // same sessions in the same database, answered by the bare read.
        let cookies = signed_in_cookies(&app_url, &lms.url).await;
        let server_before = server_cpu(backend);
        let (view, view_cpu) = measure(&app, || profile_load(duration, &app_url, &cookies)).await;
        let view_server = server_cpu(backend).saturating_sub(server_before);
        let page_bytes = profile_page_bytes(&app_url, &cookies[0]).await;
        let limit = start_limit(database_url, page_bytes).await;
        let server_before = server_cpu(backend);
        let (bare, bare_cpu) =
            measure(&limit, || profile_load(duration, &limit.url, &cookies)).await;
        let bare_server = server_cpu(backend).saturating_sub(server_before);
        let server_note = |cpu: Duration, stats: &Stats| {
            if *backend == "sqlite" {
                String::new()
            } else {
                format!(
                    "database server CPU {:.0} µs per request",
                    cpu.as_secs_f64() * 1e6 / stats.requests.max(1) as f64
                )
            }
        };
        rows.push(
            Row::new(
                format!("limit: bare read by key + {page_bytes}-byte page ({backend})"),
                &bare,
                bare_cpu,
                limit.pid(),
                Some(base_rps),
            )
            .vs_limit(bare.throughput())
            .note(server_note(bare_server, &bare)),
        );
        drop(limit);
        rows.push(
            Row::new(
                format!("2. profile view `GET /profile/` ({backend})"),
                &view,
                view_cpu,
                app.pid(),
                Some(base_rps),
            )
            .vs_limit(bare.throughput())
            .note(server_note(view_server, &view)),
        );
        if template.is_none() {
            template = Some(stored_session(database_url, &cookies[0]).await);
        }

        // 3. Complete sign-in end to end.
        let lms_before = cpu_of(&lms.thread_stat);
        let (s, cpu) = measure(&app, || {
            let lms_url = lms.url.clone();
            let url = app_url.clone();
            load(
                duration,
                move |_| {
                    let lms_url = lms_url.clone();
                    async move { logged_in_at_lms(&lms_url, &Default::default()).await }
                },
                move |c: Arc<reqwest::Client>| {
                    let url = url.clone();
                    async move { sign_in(&c, &url).await.is_some() }
                },
            )
        })
        .await;
        let lms_cpu = cpu_of(&lms.thread_stat).saturating_sub(lms_before);
        rows.push(
            Row::new(
                format!("3. complete sign-in, 4 requests ({backend})"),
                &s,
                cpu,
                app.pid(),
                None,
            )
            .note(format!(
                "sign-ins/s; stand-in CPU {:.0} µs per sign-in",
                lms_cpu.as_secs_f64() * 1e6 / s.requests.max(1) as f64
            )),
        );
        drop(app);

        // 4 and 5. Start-up, memory and profile throughput with many stored sessions.
        for sessions in [0usize, 1_000, 10_000, 100_000] {
            let url = match server {
                None => sqlite_url(&dir, &format!("sessions-{sessions}.db")),
                Some(server) => {
                    let url = fresh_database(server).await;
                    made.push((server.clone(), url.clone()));
                    url
                }
            };
            fill_sessions(&url, sessions, template.as_ref().unwrap()).await;
            let (app, ready) = start_app(&lms, &url).await;
            let (s, cpu) = measure(&app, || profile_views(duration / 2, &app.url, &lms.url)).await;
            rows.push(
                Row::new(
                    format!("4/5. {sessions} stored sessions: profile view ({backend})"),
                    &s,
                    cpu,
                    app.pid(),
                    Some(base_rps),
                )
                .note(format!("ready in {:.0} ms", ready.as_secs_f64() * 1000.0)),
            );
        }
    }
    println!();
    print_table(&rows);
    for (server, url) in &made {
        drop_databases(server, std::slice::from_ref(url)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
