//! A throwaway `redis-server` for the tests, and engines on fresh key prefixes.
#![allow(dead_code)] // each test file uses a different part

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use imgchkr_redis::{RedisConfig, RedisEngine};

/// A loopback port free now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `redis-server` child on a loopback port; killed on drop. A machine without
/// `redis-server` fails the test (`apt-get install -y redis-server`).
pub struct RedisServer {
    child: Option<Child>,
    /// The loopback port it listens on.
    pub port: u16,
    persistence: Vec<String>,
}

impl RedisServer {
    /// A server with no persistence on a free port.
    pub fn start() -> RedisServer {
        RedisServer::spawn(free_port(), no_persistence())
    }

    /// A server that keeps its data in `dir` (append-only file, fsync on every write).
    pub fn start_persistent(dir: &Path) -> RedisServer {
        let dir = dir.to_str().expect("a UTF-8 temp dir").to_owned();
        let persistence = [
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(["--dir".to_owned(), dir])
        .collect();
        RedisServer::spawn(free_port(), persistence)
    }

    fn spawn(port: u16, persistence: Vec<String>) -> RedisServer {
        let mut server = RedisServer {
            child: None,
            port,
            persistence,
        };
        server.restart();
        server
    }

    /// Starts the server again (after [`kill`](RedisServer::kill)) on the same port, with
    /// the same persistence.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "redis-server is running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(&self.persistence)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "redis-server must be installed for these tests (apt-get install -y redis-server)",
            );
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.pings() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether it answers `PING` now.
    pub fn pings(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills it at once (SIGKILL: no shutdown save).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn no_persistence() -> Vec<String> {
    ["--save", "", "--appendonly", "no"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// A key prefix no other engine of this test process uses.
pub fn fresh_prefix(name: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "test:{name}:{}:{}:",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// An engine on `url` under `prefix`, with a short call bound.
pub async fn engine(url: &str, prefix: &str) -> RedisEngine {
    let mut config = RedisConfig::new(url).with_prefix(prefix);
    config.op_timeout = Duration::from_millis(500);
    config.block_time = Duration::from_millis(200);
    RedisEngine::connect(config)
        .await
        .expect("the engine connects")
}

/// The tests' clock: a fixed instant in whole milliseconds (engines never read a clock).
pub const T0: time::OffsetDateTime = time::macros::datetime!(2030-01-02 03:04:05.678 UTC);

/// `T0` plus `secs` seconds.
pub fn at(secs: u64) -> time::OffsetDateTime {
    T0 + Duration::from_secs(secs)
}

/// A queued job of `tenant` created at `T0`.
pub fn job(tenant: &str) -> imgchkr_core::Job {
    let url = |event: &str| {
        format!("http://callback.example/{event}")
            .parse()
            .expect("a valid URL")
    };
    let mut job = imgchkr_core::Job::new(
        imgchkr_core::JobId::random(),
        imgchkr_core::AssetPath::Local {
            path: "images/a.jpg".to_owned(),
        },
        imgchkr_core::NotificationUrls {
            on_start: url("onStart"),
            on_success: url("onSuccess"),
            on_failure: url("onFailure"),
        },
    );
    job.tenant = tenant.to_owned();
    job.created_at = T0;
    job
}

/// A lease request of `worker` for `max` jobs at `now`, for 60 s.
pub fn request(
    worker: &str,
    max: usize,
    now: time::OffsetDateTime,
) -> imgchkr_core::engine::LeaseRequest {
    imgchkr_core::engine::LeaseRequest::new(
        imgchkr_core::engine::WorkerId(worker.to_owned()),
        max,
        now,
        now + Duration::from_secs(60),
    )
}

/// Room to spare.
pub const ROOMY: imgchkr_core::engine::Admission = imgchkr_core::engine::Admission {
    capacity: 100_000,
    tenant_share: 100_000,
};
