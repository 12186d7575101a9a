//! `loadgen`: end-to-end load test of `imgchkr serve` over loopback, or of a distributed
//! deployment (`imgchkr api` + K `imgchkr worker` processes sharing one Redis or Postgres).
//!
//! ```text
//! loadgen (--server PATH_TO_IMGCHKR | --target ADDR) [--jobs N] [--concurrency C]
//!         [--timeout SECS] [--flood]
//!         [--redis URL | --start-redis [--redis-server PATH] | --postgres URL | --start-postgres]
//!         [--postgres-setting NAME=VALUE]... [--worker-processes K] [--store URL]
//!         [--queue AMQP_URL | --start-rabbitmq] [--start-redis-shards K] [--tenants T]
//! ```
//!
//! `--start-redis-shards K` starts K throwaway `redis-server`s (as `--start-redis` does) and
//! gives the API and every worker the K URLs as one sharded `--store`; the report adds, per
//! shard, the server's CPU time, the accepted jobs routed to it (core's `Sharded::shard_of`)
//! and its CPU time per job.
//!
//! `--tenants T` (with `--server`) writes a tenants file of T tenants (`tenant-0` …), each
//! token and its `token_sha256` line made by the binary's own `imgchkr token`, passes
//! `--tenants FILE` to every process, and submits round-robin across the tenants with their
//! Bearer tokens.
//!
//! `--store URL` sets the store of the one `serve` process (e.g. `memory:` or
//! `sqlite:imgchkr.db`); every process runs in the run's temp dir, so the default SQLite file
//! lands there.
//!
//! `--queue amqp://…` (or `--start-rabbitmq`: a throwaway RabbitMQ node, as the AMQP crate's
//! tests start it, on free loopback ports) puts the work on RabbitMQ beside the store of a
//! distributed run (`--queue URL` to the API and every worker); with `--start-rabbitmq` the
//! report adds the broker's CPU time during the run.
//!
//! `--postgres URL` (or `--start-postgres`: a throwaway cluster, `initdb` into a temp dir, on
//! a free loopback port, Postgres' default durability, `pg_stat_statements` loaded) runs the
//! same deployment on the Postgres engine (`--store URL`); with `--start-postgres` the report
//! adds the server's CPU time (postmaster and backends) and the engine's statements per job,
//! and `--postgres-setting NAME=VALUE` (repeatable) sets a server setting of that cluster
//! (e.g. `synchronous_commit=off`).
//!
//! With `--server` alone it starts `imgchkr serve` (in-memory queue). With `--redis URL` (or
//! `--start-redis`: it starts a throwaway `redis-server` on a free loopback port, no
//! persistence) it starts `imgchkr api --redis URL` and K (default 1) `imgchkr worker --redis
//! URL` processes sharing one image directory, and submits to the API. Use an empty Redis:
//! jobs left in it by an earlier run would be worked off first.
//!
//! Runs its own webhook receiver (hyper, 127.0.0.1:0, answers 200), submits `N` jobs at a
//! fixed concurrency over keep-alive connections (half a valid 64x64 JPEG, half a 1800x1200
//! header-only JPEG that fails the dimension checks) and waits until every accepted job's
//! final webhook arrived, or the hard timeout. `--flood` submits with high concurrency against
//! `--queue-capacity 1000` (when it starts the server) and reports the 503 share.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// Throwaway RabbitMQ nodes: the AMQP crate's test support, shared.
#[path = "../../../imgchkr-amqp/tests/support/rabbit_server.rs"]
mod rabbit_server;

struct Args {
    server: Option<PathBuf>,
    target: Option<SocketAddr>,
    jobs: usize,
    concurrency: usize,
    timeout: Duration,
    flood: bool,
    /// Distributed mode: this Redis.
    redis: Option<String>,
    /// Distributed mode on a `redis-server` this run starts.
    start_redis: bool,
    redis_server: PathBuf,
    /// Distributed mode: this Postgres.
    postgres: Option<String>,
    /// Distributed mode on a throwaway cluster this run starts.
    start_postgres: bool,
    /// Server settings of that cluster.
    postgres_settings: Vec<String>,
    worker_processes: usize,
    /// The store of the one `serve` process (`--store`); unset: the binary's default, in the
    /// run's own directory.
    store: Option<String>,
    /// Distributed mode: the work on this RabbitMQ (`--queue`).
    queue: Option<String>,
    /// …or on a throwaway node this run starts.
    start_rabbitmq: bool,
    /// Distributed mode on this many `redis-server`s this run starts, as one sharded store.
    start_redis_shards: usize,
    /// Submit as this many tenants (a tenants file this run writes); 0: no tenants file.
    tenants: usize,
}

impl Args {
    fn distributed(&self) -> bool {
        self.redis.is_some()
            || self.start_redis
            || self.postgres.is_some()
            || self.start_postgres
            || self.start_redis_shards > 0
    }

    fn on_postgres(&self) -> bool {
        self.postgres.is_some() || self.start_postgres
    }

    fn on_amqp(&self) -> bool {
        self.queue.is_some() || self.start_rabbitmq
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: loadgen (--server PATH_TO_IMGCHKR | --target ADDR) [--jobs N] \
         [--concurrency C] [--timeout SECS] [--flood] \
         [--redis URL | --start-redis [--redis-server PATH] | --postgres URL | --start-postgres] \
         [--postgres-setting NAME=VALUE]... [--worker-processes K] [--store URL] \
         [--queue AMQP_URL | --start-rabbitmq] [--start-redis-shards K] [--tenants T]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args {
        server: None,
        target: None,
        jobs: 20_000,
        concurrency: 0,
        timeout: Duration::from_secs(60),
        flood: false,
        redis: None,
        start_redis: false,
        redis_server: PathBuf::from("redis-server"),
        postgres: None,
        start_postgres: false,
        postgres_settings: Vec::new(),
        worker_processes: 1,
        store: None,
        queue: None,
        start_rabbitmq: false,
        start_redis_shards: 0,
        tenants: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage());
        match a.as_str() {
            // Absolute: the processes run in the run's own directory.
            "--server" => {
                let path = PathBuf::from(val());
                args.server = Some(std::path::absolute(&path).unwrap_or(path))
            }
            "--target" => args.target = Some(val().parse().unwrap_or_else(|_| usage())),
            "--jobs" => args.jobs = val().parse().unwrap_or_else(|_| usage()),
            "--concurrency" => args.concurrency = val().parse().unwrap_or_else(|_| usage()),
            "--timeout" => {
                args.timeout = Duration::from_secs(val().parse().unwrap_or_else(|_| usage()))
            }
            "--flood" => args.flood = true,
            "--redis" => args.redis = Some(val()),
            "--start-redis" => args.start_redis = true,
            "--redis-server" => args.redis_server = PathBuf::from(val()),
            "--postgres" => args.postgres = Some(val()),
            "--start-postgres" => args.start_postgres = true,
            "--postgres-setting" => args.postgres_settings.push(val()),
            "--store" => args.store = Some(val()),
            "--queue" => args.queue = Some(val()),
            "--start-rabbitmq" => args.start_rabbitmq = true,
            "--start-redis-shards" => {
                args.start_redis_shards = val().parse().unwrap_or_else(|_| usage())
            }
            "--tenants" => args.tenants = val().parse().unwrap_or_else(|_| usage()),
            "--worker-processes" => {
                args.worker_processes = val().parse().unwrap_or_else(|_| usage())
            }
            _ => usage(),
        }
    }
    if args.server.is_some() == args.target.is_some()
        || [
            args.redis.is_some(),
            args.start_redis,
            args.postgres.is_some(),
            args.start_postgres,
            args.start_redis_shards > 0,
        ]
        .iter()
        .filter(|chosen| **chosen)
        .count()
            > 1
        || (args.distributed() && args.server.is_none())
        || args.worker_processes == 0
        || (args.queue.is_some() && args.start_rabbitmq)
        || (args.on_amqp() && !args.distributed())
        || (args.start_redis_shards > 0 && args.on_amqp())
        || (args.tenants > 0 && args.server.is_none())
    {
        usage();
    }
    if args.concurrency == 0 {
        args.concurrency = if args.flood { 512 } else { 64 };
    }
    args
}

/// A baseline JPEG whose SOF0 claims `width`x`height` (header-only: the scan is 64x64).
fn header_only(width: u16, height: u16) -> Vec<u8> {
    let (mut segments, tail) = imgchkr_benches::split_headers(&imgchkr_benches::baseline(64, 64));
    let sof = segments
        .iter_mut()
        .find(|s| s.0 == 0xC0)
        .expect("baseline has SOF0");
    sof.1[1..3].copy_from_slice(&height.to_be_bytes());
    sof.1[3..5].copy_from_slice(&width.to_be_bytes());
    let mut out = vec![0xFF, 0xD8];
    for (marker, payload) in &segments {
        out.extend(imgchkr_benches::segment(*marker, payload));
    }
    out.extend(tail);
    out
}

/// A free loopback port (bound and released: good enough for a test run).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Starts `cmd` with stderr piped, and waits (20 s at most) for a stderr line containing
/// `marker`; returns the child and that line. Keeps draining stderr afterwards.
fn spawn_until(mut cmd: Command, what: &str, marker: &'static str) -> (Child, String) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("start {what}: {e}"));
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains(marker)
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(line);
            }
            // Keep draining so the process never blocks on a full pipe.
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("{what} did not log `{marker}` within 20 s"));
    (child, line)
}

/// The address in a `listening addr=<ip>:<port>` line.
fn listening_addr(line: &str) -> SocketAddr {
    let at = line.find("listening addr=").expect("ready line");
    let rest = &line[at + "listening addr=".len()..];
    rest.split_whitespace()
        .next()
        .unwrap_or("")
        .trim_matches('"')
        .parse()
        .expect("an address in the ready line")
}

/// User + system CPU time of process `pid` (`self` for this one), from `/proc/<pid>/stat`
/// (fields 14 and 15, in USER_HZ = 100 ticks per second on Linux).
fn cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing paren.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// What this run started: the imgchkr processes (and Redis), their image directory.
struct Spawned {
    /// `(name, process)`: `server`, or `api`, `worker-1`, … and `redis-server`.
    children: Vec<(String, Child)>,
    dir: PathBuf,
    /// The throwaway Postgres of `--start-postgres`.
    postgres: Option<imgchkr_benches::pg::Cluster>,
    /// The throwaway RabbitMQ of `--start-rabbitmq`, and its CPU time when the load began.
    rabbitmq: Option<(rabbit_server::RabbitServer, Option<Duration>)>,
    /// The tenants of `--tenants`: (name, Bearer token).
    tenants: Vec<(String, String)>,
    /// The loopback ports of the `redis-server`s of `--start-redis-shards`, in order.
    shard_ports: Vec<u16>,
}

/// A `redis-server`'s command counts since it started (`INFO commandstats`, one inline
/// command over loopback): (script calls: EVALSHA/EVAL, every command including those the
/// scripts ran).
fn redis_command_counts(port: u16) -> Option<(u64, u64)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(b"INFO commandstats\r\n").ok()?;
    // A bulk reply: `$<len>\r\n<text>\r\n`.
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        reply.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&reply);
        let (head, body) = text.split_once("\r\n")?;
        let len: usize = head.strip_prefix('$')?.parse().ok()?;
        if body.len() >= len {
            break;
        }
        if reply.len() > 1 << 20 {
            return None;
        }
    }
    let text = String::from_utf8_lossy(&reply);
    let (mut scripts, mut commands) = (0, 0);
    for line in text.lines() {
        let Some((name, stats)) = line
            .strip_prefix("cmdstat_")
            .and_then(|l| l.split_once(':'))
        else {
            continue;
        };
        let calls: u64 = stats
            .split(',')
            .find_map(|kv| kv.strip_prefix("calls="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        commands += calls;
        if name == "evalsha" || name == "eval" {
            scripts += calls;
        }
    }
    Some((scripts, commands))
}

/// Starts a throwaway `redis-server` (no persistence) on a free loopback port; returns it and
/// its URL.
fn start_redis(redis_server: &PathBuf) -> (Child, String, u16) {
    let port_number = free_port();
    let port = port_number.to_string();
    let mut cmd = Command::new(redis_server);
    cmd.args(["--port", &port, "--bind", "127.0.0.1"]).args([
        "--save",
        "",
        "--appendonly",
        "no",
        "--loglevel",
        "warning",
    ]);
    // redis-server logs to stdout; `spawn_until` reads stderr, so wait by hand.
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = cmd.spawn().expect("start redis-server");
    let until = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port.parse().unwrap_or(0))).is_err() {
        assert!(Instant::now() < until, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, format!("redis://127.0.0.1:{port}/"), port_number)
}

/// Writes a tenants file of `count` tenants into `dir`, each token and its `token_sha256`
/// line made by `bin token` (the binary's own scheme); returns the file and the tenants.
fn write_tenants(
    bin: &PathBuf,
    dir: &std::path::Path,
    count: usize,
) -> (PathBuf, Vec<(String, String)>) {
    let mut text = String::new();
    let mut tenants = Vec::with_capacity(count);
    for i in 0..count {
        let out = Command::new(bin)
            .arg("token")
            .output()
            .expect("run imgchkr token");
        assert!(out.status.success(), "imgchkr token failed");
        let printed = String::from_utf8_lossy(&out.stdout).into_owned();
        let token = printed
            .lines()
            .find_map(|l| l.strip_prefix("token: "))
            .expect("imgchkr token prints `token: …`")
            .trim()
            .to_owned();
        let line = printed
            .lines()
            .find(|l| l.starts_with("token_sha256"))
            .expect("imgchkr token prints a token_sha256 line");
        let name = format!("tenant-{i}");
        text.push_str(&format!("[tenants.{name}]\n{line}\n\n"));
        tenants.push((name, token));
    }
    let path = dir.join("tenants.toml");
    std::fs::write(&path, text).expect("write the tenants file");
    (path, tenants)
}

impl Spawned {
    fn start(bin: &PathBuf, args: &Args) -> (Spawned, SocketAddr) {
        let dir = std::env::temp_dir().join(format!("loadgen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create image dir");
        std::fs::write(dir.join("ok.jpg"), imgchkr_benches::baseline(64, 64)).expect("write");
        std::fs::write(dir.join("big.jpg"), header_only(1800, 1200)).expect("write");
        let mut spawned = Spawned {
            children: Vec::new(),
            dir,
            postgres: None,
            rabbitmq: None,
            tenants: Vec::new(),
            shard_ports: Vec::new(),
        };
        let tenants_file = (args.tenants > 0).then(|| {
            let (file, tenants) = write_tenants(bin, &spawned.dir, args.tenants);
            spawned.tenants = tenants;
            file
        });
        let queue = match &args.queue {
            Some(url) => Some(url.clone()),
            None if args.start_rabbitmq => {
                let node = rabbit_server::RabbitServer::start();
                let url = node.url("loadgen");
                spawned.rabbitmq = Some((node, None));
                Some(url)
            }
            None => None,
        };
        let imgchkr = |role: &str, redis: Option<&str>| {
            let mut cmd = Command::new(bin);
            // The default store's file, if any, lands in the run's own directory.
            cmd.current_dir(&spawned.dir)
                .args([role, "--log-format", "text", "--image-dir"])
                .arg(&spawned.dir);
            if role != "worker" {
                cmd.args(["--listen", "127.0.0.1:0"]);
            }
            if let Some(url) = redis.or(args.store.as_deref()) {
                cmd.args(["--store", url]);
            }
            if let Some(url) = &queue {
                cmd.args(["--queue", url]);
            }
            if args.flood {
                cmd.args(["--queue-capacity", "1000"]);
            }
            if let Some(file) = &tenants_file {
                cmd.arg("--tenants").arg(file);
            }
            cmd
        };
        if !args.distributed() {
            let (child, line) = spawn_until(imgchkr("serve", None), "server", "listening addr=");
            spawned.children.push(("server".into(), child));
            return (spawned, listening_addr(&line));
        }
        let url = match (&args.redis, &args.postgres) {
            (Some(url), _) | (None, Some(url)) => url.clone(),
            (None, None) if args.start_postgres => {
                let cluster =
                    imgchkr_benches::pg::Cluster::start(free_port(), &args.postgres_settings);
                let url = cluster.url();
                spawned.postgres = Some(cluster);
                url
            }
            (None, None) if args.start_redis_shards > 0 => {
                let mut urls = Vec::with_capacity(args.start_redis_shards);
                for i in 0..args.start_redis_shards {
                    let (child, url, port) = start_redis(&args.redis_server);
                    spawned.children.push((format!("redis-shard-{i}"), child));
                    spawned.shard_ports.push(port);
                    urls.push(url);
                }
                urls.join(",")
            }
            (None, None) => {
                let (child, url, _) = start_redis(&args.redis_server);
                spawned.children.push(("redis-server".into(), child));
                url
            }
        };
        let (api, line) = spawn_until(imgchkr("api", Some(&url)), "api", "listening addr=");
        spawned.children.push(("api".into(), api));
        for k in 1..=args.worker_processes {
            let (worker, _) =
                spawn_until(imgchkr("worker", Some(&url)), "worker", "worker started");
            spawned.children.push((format!("worker-{k}"), worker));
        }
        // The broker's start-up is not the run's.
        if let Some((node, cpu)) = &mut spawned.rabbitmq {
            *cpu = node.beam_pid().and_then(|pid| cpu_time(&pid));
        }
        (spawned, listening_addr(&line))
    }

    /// CPU time (user + system) each process used so far, read before they are stopped.
    fn cpu_times(&self) -> Vec<(String, Option<Duration>)> {
        let mut times: Vec<_> = self
            .children
            .iter()
            .map(|(name, child)| (name.clone(), cpu_time(&child.id().to_string())))
            .collect();
        if let Some(postgres) = &self.postgres {
            times.push(("postgres".to_owned(), postgres.cpu_time()));
        }
        if let Some((node, before)) = &self.rabbitmq {
            let now = node.beam_pid().and_then(|pid| cpu_time(&pid));
            let used = now
                .zip(*before)
                .map(|(now, before)| now.saturating_sub(before));
            times.push(("rabbitmq".to_owned(), used));
        }
        times
    }

    /// Peak RSS in KiB (VmHWM) of each process, read before they are stopped.
    fn peak_rss_kib(&self) -> Vec<(String, Option<u64>)> {
        self.children
            .iter()
            .map(|(name, child)| {
                let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).ok();
                let kib = status.and_then(|status| {
                    status
                        .lines()
                        .find(|l| l.starts_with("VmHWM:"))?
                        .split_whitespace()
                        .nth(1)?
                        .parse()
                        .ok()
                });
                (name.clone(), kib)
            })
            .collect()
    }

    fn stop(mut self) {
        // imgchkr processes first, Redis last.
        for (_, child) in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(postgres) = self.postgres.take() {
            postgres.stop();
        }
        if let Some((mut node, _)) = self.rabbitmq.take() {
            node.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Default, Clone, Copy)]
struct Rec {
    submit: Option<Instant>,
    start: Option<Instant>,
    fin: Option<Instant>,
}

#[derive(Default)]
struct Shared {
    recs: Mutex<HashMap<String, Rec>>,
    finals: AtomicUsize,
    starts: AtomicUsize,
    hooks_unknown: AtomicUsize,
}

async fn hook(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let now = Instant::now();
    let body = req.into_body().collect().await.map(|b| b.to_bytes());
    if let Ok(body) = body
        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body)
    {
        let id = v.get("id").and_then(|x| x.as_str());
        let state = v.get("state").and_then(|x| x.as_str());
        if let (Some(id), Some(state)) = (id, state) {
            let mut recs = shared.recs.lock().expect("lock");
            let rec = recs.entry(id.to_owned()).or_default();
            match state {
                "started" => {
                    if rec.start.is_none() {
                        rec.start = Some(now);
                        shared.starts.fetch_add(1, Ordering::Relaxed);
                    }
                }
                _ => {
                    if rec.fin.is_none() {
                        rec.fin = Some(now);
                        shared.finals.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        } else {
            shared.hooks_unknown.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(Response::new(Full::new(Bytes::new())))
}

async fn start_receiver(shared: Arc<Shared>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let shared = shared.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| hook(shared.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

#[derive(Default)]
struct Outcome {
    accepted: Vec<Duration>,
    rejected_503: Vec<Duration>,
    other_status: usize,
    transport_errors: usize,
    /// Accepted jobs per tenant (of `--tenants`; one slot without).
    per_tenant: Vec<usize>,
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let (spawned, target) = match (&args.server, args.target) {
        (Some(bin), _) => {
            let (s, a) = Spawned::start(bin, &args);
            (Some(s), a)
        }
        (None, Some(a)) => (None, a),
        _ => usage(),
    };
    // (name, "Bearer <token>") of each tenant of `--tenants`.
    let tenants: Arc<Vec<(String, String)>> = Arc::new(
        spawned
            .as_ref()
            .map(|s| {
                s.tenants
                    .iter()
                    .map(|(name, token)| (name.clone(), format!("Bearer {token}")))
                    .collect()
            })
            .unwrap_or_default(),
    );
    let shared = Arc::new(Shared::default());
    let hook_addr = start_receiver(shared.clone()).await;
    let bodies: Vec<Bytes> = ["ok.jpg", "big.jpg"]
        .iter()
        .map(|p| {
            Bytes::from(
                serde_json::json!({
                    "assetPath": {"location": "local", "path": p},
                    "notifications": {
                        "onStart": format!("http://{hook_addr}/onStart"),
                        "onSuccess": format!("http://{hook_addr}/onSuccess"),
                        "onFailure": format!("http://{hook_addr}/onFailure"),
                    }
                })
                .to_string(),
            )
        })
        .collect();
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(args.concurrency)
        .build(connector);
    let uri: hyper::Uri = format!("http://{target}/assets/image")
        .parse()
        .expect("uri");

    let deadline = Instant::now() + args.timeout;
    let next = Arc::new(AtomicUsize::new(0));
    let began = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (client, uri, bodies, next, shared, tenants) = (
            client.clone(),
            uri.clone(),
            bodies.clone(),
            next.clone(),
            shared.clone(),
            tenants.clone(),
        );
        let jobs = args.jobs;
        tasks.push(tokio::spawn(async move {
            let mut out = Outcome {
                per_tenant: vec![0; tenants.len().max(1)],
                ..Outcome::default()
            };
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= jobs || Instant::now() >= deadline {
                    break;
                }
                // Tenants in turn; each tenant gets both kinds of image.
                let tenant = i % tenants.len().max(1);
                let mut req = Request::post(uri.clone())
                    .header(hyper::header::CONTENT_TYPE, "application/json");
                if let Some((_, auth)) = tenants.get(tenant) {
                    req = req.header(hyper::header::AUTHORIZATION, auth.as_str());
                }
                let req = req
                    .body(Full::new(bodies[(i / tenants.len().max(1)) % 2].clone()))
                    .expect("request");
                let t0 = Instant::now();
                let res = match client.request(req).await {
                    Ok(res) => res,
                    Err(_) => {
                        out.transport_errors += 1;
                        continue;
                    }
                };
                let status = res.status();
                let body = res.into_body().collect().await.map(|b| b.to_bytes());
                let took = t0.elapsed();
                match (status, body) {
                    (StatusCode::ACCEPTED, Ok(body)) => {
                        let id = serde_json::from_slice::<serde_json::Value>(&body)
                            .ok()
                            .and_then(|v| v.get("id")?.as_str().map(str::to_owned));
                        match id {
                            Some(id) => {
                                shared
                                    .recs
                                    .lock()
                                    .expect("lock")
                                    .entry(id)
                                    .or_default()
                                    .submit = Some(t0);
                                out.accepted.push(took);
                                out.per_tenant[tenant] += 1;
                            }
                            None => out.other_status += 1,
                        }
                    }
                    (StatusCode::SERVICE_UNAVAILABLE, Ok(_)) => out.rejected_503.push(took),
                    (_, Ok(_)) => out.other_status += 1,
                    (_, Err(_)) => out.transport_errors += 1,
                }
            }
            out
        }));
    }
    let mut all = Outcome {
        per_tenant: vec![0; tenants.len().max(1)],
        ..Outcome::default()
    };
    for t in tasks {
        let o = t.await.expect("submit task");
        for (sum, n) in all.per_tenant.iter_mut().zip(&o.per_tenant) {
            *sum += n;
        }
        all.accepted.extend(o.accepted);
        all.rejected_503.extend(o.rejected_503);
        all.other_status += o.other_status;
        all.transport_errors += o.transport_errors;
    }
    let submit_done = began.elapsed();
    let accepted = all.accepted.len();
    // Wait for every accepted job's final webhook, or the hard deadline.
    while shared.finals.load(Ordering::Relaxed) < accepted && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let rss = spawned
        .as_ref()
        .map(Spawned::peak_rss_kib)
        .unwrap_or_default();
    let mut cpu = spawned.as_ref().map(Spawned::cpu_times).unwrap_or_default();
    let shard_counts: Vec<Option<(u64, u64)>> = spawned
        .as_ref()
        .map(|s| {
            s.shard_ports
                .iter()
                .map(|p| redis_command_counts(*p))
                .collect()
        })
        .unwrap_or_default();
    cpu.push(("loadgen".to_owned(), cpu_time("self")));
    let statements = spawned
        .as_ref()
        .and_then(|s| s.postgres.as_ref())
        .and_then(imgchkr_benches::pg::Cluster::engine_statements);
    if let Some(postgres) = spawned.as_ref().and_then(|s| s.postgres.as_ref())
        && std::env::var_os("LOADGEN_PG_TOP").is_some()
    {
        eprintln!("{}", postgres.top_statements(15));
    }
    if let Some(s) = spawned {
        s.stop();
    }

    let recs = shared.recs.lock().expect("lock").clone();
    let mut hook_lat = Vec::new();
    let mut last_final = began;
    let (mut missing_start, mut missing_final) = (0, 0);
    for rec in recs.values() {
        let Some(submit) = rec.submit else { continue };
        if rec.start.is_none() {
            missing_start += 1;
        }
        match rec.fin {
            Some(fin) => {
                hook_lat.push(fin.saturating_duration_since(submit));
                last_final = last_final.max(fin);
            }
            None => missing_final += 1,
        }
    }
    hook_lat.sort();
    all.accepted.sort();
    all.rejected_503.sort();
    let e2e = last_final.saturating_duration_since(began);
    let total = accepted + all.rejected_503.len() + all.other_status + all.transport_errors;
    let mode = if args.flood { "flood" } else { "normal" };
    let deployment = if args.distributed() {
        format!(
            "distributed: 1 api + {} worker process(es), {}{}",
            args.worker_processes,
            if args.on_postgres() {
                "one Postgres".to_owned()
            } else if args.start_redis_shards > 0 {
                format!("{} Redis shards", args.start_redis_shards)
            } else {
                "one Redis".to_owned()
            },
            if args.on_amqp() {
                " + RabbitMQ as the queue"
            } else {
                ""
            }
        )
    } else {
        "embedded (serve)".to_owned()
    };

    println!("| metric | value |");
    println!("|---|---|");
    println!("| mode | {mode}, {deployment} |");
    println!("| jobs attempted | {total} (of {} requested) |", args.jobs);
    println!("| concurrency | {} |", args.concurrency);
    println!(
        "| submit phase | {:.3} s ({:.0} submits/s) |",
        submit_done.as_secs_f64(),
        total as f64 / submit_done.as_secs_f64()
    );
    println!("| accepted (202) | {accepted} |");
    if args.flood {
        println!(
            "| 503 share | {:.1} % ({}) |",
            100.0 * all.rejected_503.len() as f64 / total.max(1) as f64,
            all.rejected_503.len()
        );
        println!(
            "| 503 latency p50 / p99 / max | {} / {} / {} |",
            ms(pct(&all.rejected_503, 0.5)),
            ms(pct(&all.rejected_503, 0.99)),
            ms(all.rejected_503.last().copied().unwrap_or_default())
        );
    } else {
        println!("| 503 | {} |", all.rejected_503.len());
    }
    println!(
        "| end-to-end validations/s (final webhooks / first submit→last final) | {:.0} ({} in {:.3} s) |",
        hook_lat.len() as f64 / e2e.as_secs_f64().max(1e-9),
        hook_lat.len(),
        e2e.as_secs_f64()
    );
    println!(
        "| submit latency (202) p50 / p99 / max | {} / {} / {} |",
        ms(pct(&all.accepted, 0.5)),
        ms(pct(&all.accepted, 0.99)),
        ms(all.accepted.last().copied().unwrap_or_default())
    );
    println!(
        "| webhook latency (submit→final) p50 / p99 / max | {} / {} / {} |",
        ms(pct(&hook_lat, 0.5)),
        ms(pct(&hook_lat, 0.99)),
        ms(hook_lat.last().copied().unwrap_or_default())
    );
    println!(
        "| onStart webhooks received | {} |",
        shared.starts.load(Ordering::Relaxed)
    );
    println!(
        "| errors: other status / transport / missing onStart / missing final / bad webhook | {} / {} / {} / {} / {} |",
        all.other_status,
        all.transport_errors,
        missing_start,
        missing_final,
        shared.hooks_unknown.load(Ordering::Relaxed)
    );
    // Per shard: its redis-server's CPU time, the accepted jobs routed to it, CPU per job.
    if args.start_redis_shards > 0 {
        let k = args.start_redis_shards;
        let mut routed = vec![0usize; k];
        if tenants.is_empty() {
            // No tenants file: every job is the default tenant's ("").
            routed[imgchkr_core::engine::sharded::Sharded::shard_of("", k)] += accepted;
        }
        for ((name, _), n) in tenants.iter().zip(&all.per_tenant) {
            routed[imgchkr_core::engine::sharded::Sharded::shard_of(name, k)] += n;
        }
        println!(
            "| shards | {k} redis-server(s), {} tenant(s) |",
            tenants.len().max(1)
        );
        for (i, jobs) in routed.iter().enumerate() {
            let name = format!("redis-shard-{i}");
            let used = cpu.iter().find(|(n, _)| *n == name).and_then(|(_, t)| *t);
            let per_job = |n: u64| n as f64 / (*jobs).max(1) as f64;
            let counts = match shard_counts.get(i).copied().flatten() {
                Some((scripts, commands)) => {
                    format!("{:.2} / {:.1}", per_job(scripts), per_job(commands))
                }
                None => "n/a".to_owned(),
            };
            match used {
                Some(t) => println!(
                    "| {name}: CPU / jobs routed / CPU per job / scripts per job / commands per job | {:.2} s / {jobs} / {:.1} µs / {counts} |",
                    t.as_secs_f64(),
                    t.as_secs_f64() * 1e6 / (*jobs).max(1) as f64
                ),
                None => println!("| {name}: CPU / jobs routed | n/a / {jobs} / {counts} |"),
            }
        }
    }
    let cpu: Vec<String> = cpu
        .iter()
        .map(|(name, t)| match t {
            Some(t) => format!("{name} {:.2}", t.as_secs_f64()),
            None => format!("{name} n/a"),
        })
        .collect();
    println!("| CPU time used, s (user + system) | {} |", cpu.join(", "));
    if let Some(statements) = statements {
        println!(
            "| engine statements (pg_stat_statements) | {statements} ({:.2} per accepted job) |",
            statements as f64 / accepted.max(1) as f64
        );
    }
    if rss.is_empty() {
        println!("| server peak RSS (VmHWM) | n/a (--target) |");
    }
    for (name, kib) in rss {
        match kib {
            Some(kib) => println!(
                "| {name} peak RSS (VmHWM) | {:.1} MiB |",
                kib as f64 / 1024.0
            ),
            None => println!("| {name} peak RSS (VmHWM) | n/a |"),
        }
    }
}
