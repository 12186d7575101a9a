//! The service on Redis, end to end: `serve --redis` (API and workers in one process), and
//! `api` + `worker` processes sharing one `redis-server` (no persistence, loopback, a free
//! port, started by each test and killed when it ends).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Receiver, Server, jpeg_header};
use serde_json::{Value, json};

use common::redis_server::RedisServer;

/// An `imgchkr worker` child; killed on drop.
struct Worker(Child);

impl Worker {
    fn start(dir: &std::path::Path, redis: &str) -> Worker {
        let child = Command::new(env!("CARGO_BIN_EXE_imgchkr"))
            .args(["worker", "--redis", redis, "--image-dir"])
            .arg(dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Worker(child)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn seed_errors() -> Value {
    json!({"image": ["Image width exceeds maximum (1800/1000)",
                     "Image height exceeds maximum (1200/1000)"]})
}

/// Submits the seed example (a 1800×1200 JPEG) and checks both webhooks and the job.
fn seed_example_fails(server: &Server, hooks: &Receiver) -> String {
    server.write("a.jpg", &jpeg_header(1800, 1200));
    let r = server.submit(&hooks.submission("a.jpg"));
    assert_eq!(r.status, 202, "{}", r.body_text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let got = hooks.wait_hooks(&id, 2);
    assert_eq!(got[0].path, "onStart");
    assert_eq!(got[0].body, json!({"id": id, "state": "started"}));
    assert_eq!(got[1].path, "onFailure");
    assert_eq!(
        got[1].body,
        json!({"id": id, "state": "failed", "errors": seed_errors()})
    );
    let job = server.wait_final(&id);
    assert_eq!(job["state"], "failed");
    assert_eq!(job["errors"], seed_errors());
    id
}

#[test]
fn serve_on_redis_runs_the_seed_example_and_answers_503_when_redis_is_gone() {
    let mut redis = RedisServer::start();
    let hooks = Receiver::start();
    let mut server = Server::start(&["--redis", &redis.url()]);
    let id = seed_example_fails(&server, &hooks);
    let listed = server.get("/assets/image").json();
    assert_eq!(listed["jobs"][0]["id"], id.as_str(), "{listed}");

    redis.kill();
    let started = Instant::now();
    let r = server.submit(&hooks.submission("a.jpg"));
    assert_eq!(r.status, 503, "{}", r.body_text());
    assert!(r.json()["errors"].is_object(), "{}", r.body_text());
    let r = server.get(&format!("/assets/image/{id}"));
    assert_eq!(r.status, 503, "{}", r.body_text());
    assert!(r.json()["errors"].is_object());
    assert!(started.elapsed() < Duration::from_secs(9), "bounded");

    assert!(server.terminate().success());
}

#[test]
fn api_and_worker_processes_share_redis() {
    let redis = RedisServer::start();
    let hooks = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let image_dir = dir.path().to_owned();
    let mut api = Server::start_cmd("api", dir, &["--redis", &redis.url()], "info");
    assert_eq!(api.get("/readyz").status, 200);
    let mut worker = Worker::start(&image_dir, &redis.url());
    seed_example_fails(&api, &hooks);
    assert!(api.terminate().success());

    // The worker drains and exits 0 on SIGTERM.
    let pid = worker.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = common::wait_for("worker exit", || worker.0.try_wait().unwrap());
    assert!(status.success(), "{status}");
}

#[test]
fn unreachable_redis_at_startup_exits_2() {
    let port = common::closed_port().to_string();
    let started = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_imgchkr"))
        .args(["serve", "--listen", "127.0.0.1:0", "--redis"])
        .arg(format!("redis://127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2));
    assert!(started.elapsed() < Duration::from_secs(9));
}

#[test]
fn api_and_worker_without_redis_exit_2() {
    for role in ["api", "worker"] {
        let status = Command::new(env!("CARGO_BIN_EXE_imgchkr"))
            .args([role, "--listen", "127.0.0.1:0"])
            .env_remove("IMGCHKR_REDIS")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(2), "{role}");
    }
}
