//! Process roles and the flags around them: `--metrics-listen` (how a worker, which has no API
//! listener, is probed and scraped), and start-up refusals of bad role or Redis settings.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};

use common::redis_server::RedisServer;
use common::{Receiver, Server, WorkerProcess, jpeg_header, request, wait_for};

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
}

/// The value of the first exposition line starting with `prefix`.
fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn a_worker_serves_health_and_its_own_metrics_on_metrics_listen() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let hooks = Receiver::start();
    let api = Server::start_cmd(
        "api",
        tempfile::tempdir().unwrap(),
        &["--redis", &redis.url()],
        "info",
    );
    let ops = free_addr();
    let _worker = WorkerProcess::start(
        dir.path(),
        &redis.url(),
        &["--metrics-listen", &ops.to_string()],
    );
    wait_for("worker metrics listener", || {
        std::net::TcpStream::connect(ops).ok()
    });
    assert_eq!(request(ops, "GET", "/healthz", &[], b"").status, 200);
    assert_eq!(request(ops, "GET", "/readyz", &[], b"").status, 200);
    // Only the operational routes: no API on this listener.
    assert_eq!(request(ops, "GET", "/assets", &[], b"").status, 404);
    let submitted = request(
        ops,
        "POST",
        "/assets/image",
        &[("content-type", "application/json")],
        hooks.submission("a.jpg").to_string().as_bytes(),
    );
    assert_eq!(submitted.status, 404);

    // A job run by the worker shows in the worker's metrics, not in the API's.
    std::fs::write(dir.path().join("a.jpg"), jpeg_header(1800, 1200)).unwrap();
    let r = api.submit(&hooks.submission("a.jpg"));
    assert_eq!(r.status, 202, "{}", r.body_text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(hooks.wait_hooks(&id, 2)[1].path, "onFailure");
    let failed = wait_for("the worker's job counter", || {
        let text = request(ops, "GET", "/metrics", &[], b"").body_text();
        metric(&text, "imgchkr_jobs_total{state=\"failed\"}").filter(|n| *n >= 1.0)
    });
    assert_eq!(failed, 1.0);
    assert_eq!(api.metric("imgchkr_jobs_total{state=\"failed\"}"), 0.0);
}

#[test]
fn serve_answers_only_operational_routes_on_metrics_listen() {
    let ops = free_addr();
    let server = Server::start(&["--metrics-listen", &ops.to_string()]);
    assert_eq!(request(ops, "GET", "/readyz", &[], b"").status, 200);
    let metrics = request(ops, "GET", "/metrics", &[], b"");
    assert_eq!(metrics.status, 200);
    assert!(metrics.body_text().contains("imgchkr_queue_depth"));
    assert_eq!(request(ops, "GET", "/assets", &[], b"").status, 404);
    assert_eq!(server.get("/assets").status, 200);
}

/// Runs `imgchkr <args>` to completion: (exit code, stderr).
fn run(args: &[&str]) -> (Option<i32>, String) {
    let scratch = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_imgchkr"))
        .current_dir(scratch.path())
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn bad_role_and_redis_settings_stop_the_start_with_a_reason() {
    let (code, stderr) = run(&["api", "--listen", "127.0.0.1:0"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("need a shared --store"), "{stderr}");
    // A single-node store is for `serve` only.
    for role in ["api", "worker"] {
        let (code, stderr) = run(&[role, "--listen", "127.0.0.1:0", "--store", "memory:"]);
        assert_eq!(code, Some(2), "{role}: {stderr}");
        assert!(
            stderr.contains("memory: is single-node"),
            "{role}: {stderr}"
        );
    }
    // AMQP is a queue beside a shared store, never a store.
    let (code, stderr) = run(&["serve", "--listen", "127.0.0.1:0", "--store", "amqp://x"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("amqp:// is a queue only"), "{stderr}");
    // …and needs a shared store beside it: checked before connecting (no broker listens at
    // port 1), whatever the role.
    for (role, store) in [
        ("serve", "sqlite:jobs.db"),
        ("serve", "memory:"),
        ("worker", "memory:"),
    ] {
        let (code, stderr) = run(&[
            role,
            "--listen",
            "127.0.0.1:0",
            "--store",
            store,
            "--queue",
            "amqp://guest:secret@127.0.0.1:1/%2f",
        ]);
        assert_eq!(code, Some(2), "{role} {store}: {stderr}");
        assert!(
            stderr.contains("needs a shared store (--store redis://… or postgres://…)"),
            "{role} {store}: {stderr}"
        );
        assert!(
            !stderr.contains("secret"),
            "the password is redacted: {stderr}"
        );
    }
    // A broker that cannot be reached stops the start with the reason.
    let (code, stderr) = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--store",
        "redis://127.0.0.1:1/",
        "--queue",
        "amqp://127.0.0.1:1/%2f",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("cannot open the queue"), "{stderr}");

    // Checked before connecting: no Redis needs to listen at this address.
    let (code, stderr) = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--redis",
        "redis://127.0.0.1:1",
        "--redis-reclaim-idle",
        "10s",
        "--redis-heartbeat",
        "10s",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--heartbeat"), "{stderr}");

    let (code, stderr) = run(&[
        "worker",
        "--redis",
        "redis://x",
        "--redis-max-deliveries",
        "0",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--max-deliveries"), "{stderr}");
}

#[test]
fn blocking_local_reads_give_the_same_verdicts() {
    let hooks = Receiver::start();
    for flags in [&[][..], &["--blocking-local-reads"][..]] {
        let server = Server::start(flags);
        server.write("big.jpg", &jpeg_header(1800, 1200));
        server.write("ok.jpg", &jpeg_header(640, 480));
        let r = server.submit(&hooks.submission("big.jpg"));
        assert_eq!(r.status, 202, "{}", r.body_text());
        let big = server.wait_final(r.json()["id"].as_str().unwrap());
        assert_eq!(big["state"], "failed", "{flags:?}: {big}");
        assert_eq!(
            big["errors"]["image"][0],
            "Image width exceeds maximum (1800/1000)"
        );
        let r = server.submit(&hooks.submission("ok.jpg"));
        let ok = server.wait_final(r.json()["id"].as_str().unwrap());
        assert_eq!(ok["state"], "success", "{flags:?}: {ok}");
    }
}
