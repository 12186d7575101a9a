//! End-to-end harness: the real `imgchkr` binary, a raw HTTP/1.1 client, and a webhook
//! receiver that records what it gets, in order. Every wait has a deadline.
#![allow(dead_code)]

use std::cell::Cell;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const DEADLINE: Duration = Duration::from_secs(10);

pub mod failover;
pub mod openapi;
#[path = "../support/redis_server.rs"]
pub mod redis_server;
use redis_server::RedisServer;

/// Throwaway Postgres clusters: the engine crate's own test support, shared.
#[path = "../../../imgchkr-postgres/tests/support/pg_cluster.rs"]
pub mod pg_cluster;

/// Throwaway RabbitMQ nodes: the AMQP crate's own test support, shared.
#[path = "../../../imgchkr-amqp/tests/support/rabbit_server.rs"]
pub mod rabbit_server;

/// Where `imgchkr serve` keeps jobs in the tests of this thread: the contract tests run once
/// per backend (see [`both_backends!`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// In memory (no `--redis`).
    Embedded,
    /// `--redis` of a `redis-server` started for each server, killed with it.
    Redis,
    /// `--store sqlite:` of a fresh file in each server's own directory (the default engine).
    Sqlite,
    /// `--store postgres://…` of a fresh database for each server, on one throwaway cluster
    /// per test binary (stopped and removed when the binary exits).
    Postgres,
    /// `--queue amqp://…` with queues of its own for each server, on one throwaway RabbitMQ
    /// node per test binary, beside `--store redis://…` of a `redis-server` of its own.
    Amqp,
}

thread_local! {
    static BACKEND: Cell<Backend> = const { Cell::new(Backend::Embedded) };
}

/// Runs `test` with every `imgchkr serve` it starts on `backend`.
pub fn with_backend(backend: Backend, test: impl FnOnce()) {
    BACKEND.with(|b| b.set(backend));
    test();
}

/// The backend of this thread's servers.
pub fn backend() -> Backend {
    BACKEND.with(Cell::get)
}

/// Runs each named test function (defined without `#[test]`) once per backend, unchanged:
/// `embedded::<name>` on the in-memory store and queue, `sqlite::<name>` on the embedded
/// durable default with a file of its own, `redis::<name>` on `serve --redis` with a
/// `redis-server` of its own, `postgres::<name>` on `serve --store postgres://…` with a
/// database of its own, `amqp::<name>` on `serve --queue amqp://… --store redis://…` with
/// queues of its own on the test binary's RabbitMQ node and a `redis-server` of its own.
#[allow(unused_macros)]
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {
        mod embedded {
            $(
                #[test]
                fn $name() {
                    super::common::with_backend(super::common::Backend::Embedded, super::$name);
                }
            )+
        }
        mod redis {
            $(
                #[test]
                fn $name() {
                    super::common::with_backend(super::common::Backend::Redis, super::$name);
                }
            )+
        }
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    super::common::with_backend(super::common::Backend::Sqlite, super::$name);
                }
            )+
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    super::common::with_backend(super::common::Backend::Postgres, super::$name);
                }
            )+
        }
        mod amqp {
            $(
                #[test]
                fn $name() {
                    super::common::with_backend(super::common::Backend::Amqp, super::$name);
                }
            )+
        }
    };
}
#[allow(unused_imports)]
pub(crate) use both_backends;

/// Polls `f` until it returns `Some`, or panics after [`DEADLINE`].
pub fn wait_for<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    wait_within(what, DEADLINE, f)
}

/// Polls `f` until it returns `Some`, or panics after `deadline`.
pub fn wait_within<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running `imgchkr serve`.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub logs: Arc<Mutex<Vec<String>>>,
    /// Its own `redis-server`, on the Redis backend (dropped after the server).
    pub redis: Option<RedisServer>,
}

impl Server {
    /// Starts the binary on a free port with a fresh image directory and `extra` flags.
    pub fn start(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        Server::start_in(dir, extra)
    }

    pub fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Server {
        Server::start_env(dir, extra, "info")
    }

    /// Starts with `RUST_LOG=<log>`.
    pub fn start_env(dir: tempfile::TempDir, extra: &[&str], log: &str) -> Server {
        Server::start_cmd("serve", dir, extra, log)
    }

    /// Starts `imgchkr <command>` (`serve` or `api`) with `RUST_LOG=<log>`. On the Redis
    /// [`backend`], `serve` without a `--redis` of its own gets one of a fresh `redis-server`;
    /// on the Postgres backend, a fresh database of the test binary's cluster.
    pub fn start_cmd(command: &str, dir: tempfile::TempDir, extra: &[&str], log: &str) -> Server {
        let chosen = extra
            .iter()
            .any(|flag| ["--redis", "--store", "--queue"].contains(flag));
        let redis =
            (command == "serve" && matches!(backend(), Backend::Redis | Backend::Amqp) && !chosen)
                .then(RedisServer::start);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_imgchkr"));
        cmd.args([command, "--listen", "127.0.0.1:0", "--image-dir"])
            .arg(dir.path())
            .args(extra);
        match (&redis, backend()) {
            (Some(redis), Backend::Amqp) => {
                let rabbit = rabbit_server::RabbitServer::shared();
                cmd.args(["--store", &redis.url()])
                    .args(["--queue", &rabbit.url(&rabbit_server::fresh_prefix())]);
            }
            (Some(redis), _) => {
                cmd.args(["--store", &redis.url()]);
            }
            (None, Backend::Postgres) if command == "serve" && !chosen => {
                let cluster = pg_cluster::SharedCluster::get();
                cmd.args(["--store", &cluster.url(&cluster.create_database())]);
            }
            (None, Backend::Embedded) if !chosen => {
                cmd.args(["--store", "memory:"]);
            }
            (None, Backend::Sqlite) if !chosen => {
                let file = dir.path().join(".imgchkr-test.db");
                cmd.arg("--store").arg(format!("sqlite:{}", file.display()));
            }
            _ => {}
        }
        for var in ["IMGCHKR_REDIS", "IMGCHKR_STORE", "IMGCHKR_QUEUE"] {
            cmd.env_remove(var);
        }
        cmd.env("RUST_LOG", log);
        Server::spawn(cmd, dir, redis)
    }

    /// Runs `cmd` (an `imgchkr serve|api` command line, its environment set) and waits for
    /// its ready line; its stderr is kept in `logs`.
    pub fn spawn(mut cmd: Command, dir: tempfile::TempDir, redis: Option<RedisServer>) -> Server {
        // Whatever the server writes in its working directory (the default store's file)
        // lands in its own temporary directory, never in the source tree.
        if cmd.get_current_dir().is_none() {
            cmd.current_dir(dir.path());
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                // The ready line: `listening addr=<ip>:<port>`.
                if let Some(rest) = line.split("listening addr=").nth(1) {
                    let addr: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                        .collect();
                    let _ = tx.send(addr);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let Ok(addr) = rx.recv_timeout(DEADLINE) else {
            // Not left running after the test.
            let _ = child.kill();
            let _ = child.wait();
            panic!("no ready line; logs: {:?}", logs.lock().unwrap());
        };
        let addr: SocketAddr = addr.parse().unwrap();
        openapi::serves_imgchkr(addr);
        Server {
            child,
            addr,
            dir,
            logs,
            redis,
        }
    }

    pub fn write(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.dir.path().join(name), bytes).unwrap();
    }

    pub fn get(&self, path: &str) -> Resp {
        request(self.addr, "GET", path, &[], b"")
    }

    pub fn get_as(&self, path: &str, token: &str) -> Resp {
        let auth = format!("Bearer {token}");
        request(self.addr, "GET", path, &[("authorization", &auth)], b"")
    }

    pub fn submit(&self, body: &Value) -> Resp {
        self.post_json(&[], body)
    }

    pub fn post_json(&self, headers: &[(&str, &str)], body: &Value) -> Resp {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        request(
            self.addr,
            "POST",
            "/assets/image",
            &all,
            body.to_string().as_bytes(),
        )
    }

    /// Polls the job until its state is final (or `state`).
    pub fn wait_state(&self, id: &str, token: Option<&str>, want: &[&str]) -> Value {
        wait_for(&format!("job {id} in {want:?}"), || {
            let r = match token {
                Some(t) => self.get_as(&format!("/assets/image/{id}"), t),
                None => self.get(&format!("/assets/image/{id}")),
            };
            let job = r.json();
            want.contains(&job["state"].as_str()?).then_some(job)
        })
    }

    pub fn wait_final(&self, id: &str) -> Value {
        self.wait_state(id, None, &["success", "failed"])
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        wait_for("server exit", || self.child.try_wait().unwrap())
    }

    /// The value of the first `/metrics` line starting with `line_prefix` (a metric name,
    /// with labels or not). A series not recorded yet is 0, but `/metrics` must answer and
    /// the metric family must be there: a broken or missing metric fails the test rather
    /// than read as 0.
    pub fn metric(&self, line_prefix: &str) -> f64 {
        let r = self.get("/metrics");
        assert_eq!(r.status, 200, "/metrics answered {}", r.status);
        metric_in(&r.body_text(), line_prefix)
    }
}

/// The value of the first line of the exposition `text` starting with `line_prefix` (see
/// [`Server::metric`]).
pub fn metric_in(text: &str, line_prefix: &str) -> f64 {
    let family = line_prefix.split('{').next().unwrap_or(line_prefix);
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("# TYPE {family} ")) || l.starts_with(family)),
        "metric {family} is not exported at all:\n{text}"
    );
    match text.lines().find(|l| l.starts_with(line_prefix)) {
        None => 0.0,
        Some(line) => line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("unreadable metric line {line:?}")),
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        openapi::gone(self.addr);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `imgchkr worker` (no listener): its stderr is kept in `logs`. Killed (SIGKILL)
/// on drop.
pub struct WorkerProcess {
    pub child: Child,
    pub logs: Arc<Mutex<Vec<String>>>,
}

impl WorkerProcess {
    /// `imgchkr worker --redis <redis> --image-dir <dir> <extra>`, logging at `RUST_LOG=info`.
    pub fn start(dir: &Path, redis: &str, extra: &[&str]) -> WorkerProcess {
        WorkerProcess::start_on(dir, redis, extra)
    }

    /// `imgchkr worker --store <store> --image-dir <dir> <extra>` (any shared store URL),
    /// logging at `RUST_LOG=info`.
    pub fn start_on(dir: &Path, store: &str, extra: &[&str]) -> WorkerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_imgchkr"))
            .args(["worker", "--store", store, "--image-dir"])
            .arg(dir)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        WorkerProcess { child, logs }
    }

    /// SIGKILL, and reap it: no drain, no acknowledgement, leases left pending.
    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// A response read off a `Connection: close` exchange.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body_text()))
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// One HTTP/1.1 request on a fresh connection.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut raw = head.into_bytes();
    raw.extend_from_slice(body);
    let resp = raw_exchange(addr, &raw);
    // Every answer of an imgchkr server is one the OpenAPI document describes (other local
    // servers, moto's S3 or a webhook receiver, speak their own API).
    if openapi::is_imgchkr(addr) {
        openapi::check(method, path, &resp);
    }
    resp
}

/// Writes `raw` and parses the response (the server may answer before reading it all).
pub fn raw_exchange(addr: SocketAddr, raw: &[u8]) -> Resp {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let _ = stream.write_all(raw);
    read_response(&mut stream).unwrap_or_else(|| panic!("no response"))
}

pub fn read_response(stream: &mut TcpStream) -> Option<Resp> {
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = buf[end + 4..].to_vec();
    if let Some(len) = headers.get("content-length").and_then(|v| v.parse().ok()) {
        body.truncate(len);
    }
    Some(Resp {
        status,
        headers,
        body,
    })
}

/// A webhook received.
#[derive(Debug, Clone)]
pub struct Hook {
    pub path: String,
    pub body: Value,
    pub headers: HashMap<String, String>,
}

/// How long the receiver waits before answering: one delay for every path, or one per path.
#[derive(Debug, Default)]
pub struct Delays {
    pub all: Duration,
    pub by_path: HashMap<String, Duration>,
}

impl Delays {
    fn for_path(&self, path: &str) -> Duration {
        self.by_path.get(path).copied().unwrap_or(self.all)
    }
}

/// A webhook receiver on 127.0.0.1:0; records each request when it arrives, then answers
/// 200 after its delay.
pub struct Receiver {
    pub addr: SocketAddr,
    pub hooks: Arc<Mutex<Vec<Hook>>>,
    pub delay: Arc<Mutex<Delays>>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let hooks = Arc::new(Mutex::new(Vec::new()));
        let delay = Arc::new(Mutex::new(Delays::default()));
        let (h, d) = (hooks.clone(), delay.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let (h, d) = (h.clone(), d.clone());
                std::thread::spawn(move || serve_hooks(stream, &h, &d));
            }
        });
        Receiver { addr, hooks, delay }
    }

    /// Answers requests for `path` (e.g. `onStart`) after `delay`, others as before.
    pub fn set_path_delay(&self, path: &str, delay: Duration) {
        self.delay
            .lock()
            .unwrap()
            .by_path
            .insert(path.to_owned(), delay);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    pub fn set_delay(&self, delay: Duration) {
        self.delay.lock().unwrap().all = delay;
    }

    pub fn hooks(&self) -> Vec<Hook> {
        self.hooks.lock().unwrap().clone()
    }

    /// The hooks of job `id`, in arrival order.
    pub fn hooks_for(&self, id: &str) -> Vec<Hook> {
        self.hooks()
            .into_iter()
            .filter(|h| h.body["id"] == id)
            .collect()
    }

    /// Waits until job `id` has received `n` hooks.
    pub fn wait_hooks(&self, id: &str, n: usize) -> Vec<Hook> {
        wait_for(&format!("{n} hooks for {id}"), || {
            let hooks = self.hooks_for(id);
            (hooks.len() >= n).then_some(hooks)
        })
    }

    /// A submission body for `path` whose webhooks come here.
    pub fn submission(&self, path: &str) -> Value {
        serde_json::json!({
            "assetPath": {"location": "local", "path": path},
            "notifications": {
                "onStart": self.url("onStart"),
                "onSuccess": self.url("onSuccess"),
                "onFailure": self.url("onFailure"),
            }
        })
    }
}

/// Serves requests on one keep-alive connection, recording each.
fn serve_hooks(stream: TcpStream, hooks: &Mutex<Vec<Hook>>, delay: &Mutex<Delays>) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split(' ').nth(1).unwrap_or("").trim_start_matches('/');
        let path = path.to_owned();
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let pause = delay.lock().unwrap().for_path(&path);
        hooks.lock().unwrap().push(Hook {
            path,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            headers,
        });
        std::thread::sleep(pause);
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        if reader.get_mut().write_all(ok).is_err() {
            return;
        }
    }
}

/// A minimal baseline JPEG header: SOI, SOF0 for `w`×`h`, one component, EOI.
pub fn jpeg_header(w: u16, h: u16) -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x0B, 8];
    v.extend_from_slice(&h.to_be_bytes());
    v.extend_from_slice(&w.to_be_bytes());
    v.extend_from_slice(&[1, 1, 0x11, 0, 0xFF, 0xD9]);
    v
}

/// A real JPEG encoded by the `image` crate.
pub fn real_jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb([200, 10, 10]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

/// A real PNG.
pub fn real_png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb([1, 2, 3]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A port nothing listens on.
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

pub fn path_exists(p: &Path) -> bool {
    p.exists()
}
