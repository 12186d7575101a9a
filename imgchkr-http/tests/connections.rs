//! The connection cap: past it only health checks are answered, idle connections cannot hold
//! the service, and a low file-descriptor limit neither floods the log nor silences /healthz.

mod common;

use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Receiver, Server, jpeg_header, request};

fn idle_connections(server: &Server, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect()
}

#[test]
fn past_the_cap_only_health_checks_are_answered() {
    let hooks = Receiver::start();
    let server = Server::start(&["--max-connections", "4"]);
    server.write("ok.jpg", &jpeg_header(10, 10));
    // Four idle clients hold the four normal slots.
    let held = idle_connections(&server, 4);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.get("/healthz").status, 200);
    assert_eq!(server.get("/readyz").status, 200);
    let refused = server.submit(&hooks.submission("ok.jpg"));
    assert_eq!(refused.status, 503, "{:?}", refused.body_text());
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(refused.json()["errors"]["connection"].is_array());
    // A slot frees when one of them leaves.
    drop(held);
    let accepted = common::wait_for("a normal slot again", || {
        let r = server.submit(&hooks.submission("ok.jpg"));
        (r.status == 202).then_some(r)
    });
    assert_eq!(accepted.status, 202);
}

#[test]
fn a_low_descriptor_limit_keeps_health_checks_answering() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"ulimit -n 64 && exec "$0" serve --listen 127.0.0.1:0 --store memory: --image-dir "$1""#)
        .arg(env!("CARGO_BIN_EXE_imgchkr"))
        .arg(dir.path())
        .env("RUST_LOG", "info");
    let server = Server::spawn(cmd, dir, None);
    // Far more clients than descriptors, all idle.
    let held = idle_connections(&server, 150);
    let started = Instant::now();
    let health = common::wait_within("/healthz past the limit", Duration::from_secs(10), || {
        let r = request(server.addr, "GET", "/healthz", &[], b"");
        (r.status == 200).then_some(r)
    });
    assert_eq!(health.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "/healthz took {:?}",
        started.elapsed()
    );
    drop(held);
    let logs = server.logs.lock().unwrap().clone();
    let accept_errors = logs.iter().filter(|l| l.contains("accept failed")).count();
    assert!(
        accept_errors <= 2,
        "{accept_errors} accept failures logged: {:?}",
        &logs[..logs.len().min(20)]
    );
}
