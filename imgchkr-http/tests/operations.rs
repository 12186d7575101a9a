//! Back-pressure, tenants, fairness and graceful shutdown.
//!
//! A contract test: each runs twice, unchanged, `embedded::<test>` (in memory) and
//! `redis::<test>` (`serve --redis` on a `redis-server` of its own): `common::both_backends!`.

mod common;

use std::time::Duration;

use common::{Receiver, Server, jpeg_header, request, wait_for};
use serde_json::Value;

fn id_of(r: &common::Resp) -> String {
    r.json()["id"].as_str().unwrap().to_owned()
}

fn full_queue_answers_503_with_retry_after() {
    let hooks = Receiver::start();
    hooks.set_delay(Duration::from_secs(2));
    let server = Server::start(&["--queue-capacity", "1", "--max-concurrent-jobs", "1"]);
    server.write("ok.jpg", &jpeg_header(10, 10));
    let first = server.submit(&hooks.submission("ok.jpg"));
    assert_eq!(first.status, 202);
    // The only job slot is busy waiting on the slow receiver.
    server.wait_state(&id_of(&first), None, &["started", "success"]);
    let second = server.submit(&hooks.submission("ok.jpg"));
    assert_eq!(second.status, 202);
    let third = server.submit(&hooks.submission("ok.jpg"));
    assert_eq!(third.status, 503);
    assert_eq!(third.header("retry-after"), Some("1"));
    assert!(third.json()["errors"]["queue"].is_array());
    assert_eq!(server.get("/readyz").status, 503);
    assert_eq!(server.get("/healthz").status, 200);
    assert_eq!(server.metric("imgchkr_queue_depth"), 1.0);
    assert_eq!(server.metric("imgchkr_queue_rejections_total"), 1.0);
    // The refused job was never stored.
    let listed = server.get("/assets/image").json();
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 2);
}

fn tenants_are_authenticated_and_isolated() {
    let hooks = Receiver::start();
    let server = Server::start(&["--auth-token", "a:token-a", "--auth-token", "b:token-b"]);
    server.write("ok.jpg", &jpeg_header(10, 10));
    let r = server.submit(&hooks.submission("ok.jpg"));
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert!(r.json()["errors"]["Authorization"].is_array());
    let bad = server.post_json(&[("authorization", "Bearer nope")], &hooks.submission("x"));
    assert_eq!(bad.status, 401);
    assert_eq!(server.get("/assets/image").status, 401);
    assert_eq!(server.get("/healthz").status, 200);
    assert_eq!(server.get("/metrics").status, 200);

    let r = server.post_json(
        &[("authorization", "Bearer token-a")],
        &hooks.submission("ok.jpg"),
    );
    assert_eq!(r.status, 202);
    let id = id_of(&r);
    let job = server.wait_state(&id, Some("token-a"), &["success"]);
    assert_eq!(job["id"], id.as_str());
    let path = format!("/assets/image/{id}");
    assert_eq!(server.get_as(&path, "token-b").status, 404);
    assert_eq!(server.get(&path).status, 401);
    let b_list = server.get_as("/assets/image", "token-b").json();
    assert_eq!(b_list["jobs"].as_array().unwrap().len(), 0);
    let a_list = server.get_as("/assets/image", "token-a").json();
    assert_eq!(a_list["jobs"].as_array().unwrap().len(), 1);

    // The same Idempotency-Key from two tenants names two jobs.
    let key = |token: &str| {
        let auth = format!("Bearer {token}");
        let body = hooks.submission("ok.jpg").to_string();
        request(
            server.addr,
            "POST",
            "/assets/image",
            &[
                ("content-type", "application/json"),
                ("authorization", &auth),
                ("idempotency-key", "k1"),
            ],
            body.as_bytes(),
        )
    };
    let (ka, kb) = (key("token-a"), key("token-b"));
    assert_eq!((ka.status, kb.status), (202, 202));
    assert_ne!(id_of(&ka), id_of(&kb));
}

fn one_tenant_flooding_cannot_starve_another() {
    let hooks = Receiver::start();
    hooks.set_delay(Duration::from_millis(100));
    let server = Server::start(&[
        "--auth-token",
        "a:ta",
        "--auth-token",
        "b:tb",
        "--max-concurrent-jobs",
        "1",
        "--queue-capacity",
        "10",
    ]);
    server.write("ok.jpg", &jpeg_header(10, 10));
    let submit = |token: &str| {
        let auth = format!("Bearer {token}");
        server.post_json(&[("authorization", &auth)], &hooks.submission("ok.jpg"))
    };
    let first = submit("ta");
    server.wait_state(&id_of(&first), Some("ta"), &["started", "success"]);
    // Tenant a may hold half the queue (10 / 2 tenants): five more, then 503.
    let flood: Vec<String> = (0..5)
        .map(|_| {
            let r = submit("ta");
            assert_eq!(r.status, 202);
            id_of(&r)
        })
        .collect();
    let over = submit("ta");
    assert_eq!(over.status, 503, "tenant share not enforced");
    let quiet = submit("tb");
    assert_eq!(quiet.status, 202, "tenant b refused while a floods");
    let quiet = id_of(&quiet);

    server.wait_state(&quiet, Some("tb"), &["success"]);
    // The verdict is recorded while onStart may still be in flight: wait for b's webhooks.
    hooks.wait_hooks(&quiet, 2);
    let starts: Vec<String> = hooks
        .hooks()
        .iter()
        .filter(|h| h.path == "onStart")
        .map(|h| h.body["id"].as_str().unwrap().to_owned())
        .collect();
    let position = starts.iter().position(|id| *id == quiet).unwrap();
    assert!(
        position <= 2,
        "b's job started at position {position}: {starts:?}"
    );
    let still_queued = flood
        .iter()
        .filter(|id| {
            let job = server.get_as(&format!("/assets/image/{id}"), "ta").json();
            job["state"] == "queued"
        })
        .count();
    assert!(still_queued >= 2, "b waited behind the flood");
}

fn sigterm_finishes_in_flight_jobs_and_their_webhooks() {
    let hooks = Receiver::start();
    hooks.set_delay(Duration::from_millis(700));
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_env(dir, &["--drain-timeout", "10s"], "imgchkr_core=debug,info");
    server.write("ok.jpg", &jpeg_header(10, 10));
    let id = id_of(&server.submit(&hooks.submission("ok.jpg")));
    hooks.wait_hooks(&id, 1);
    let status = server.terminate();
    assert_eq!(
        status.code(),
        Some(0),
        "logs: {:?}",
        server.logs.lock().unwrap()
    );
    let got: Vec<(String, Value)> = hooks
        .hooks_for(&id)
        .into_iter()
        .map(|h| (h.path, h.body["state"].clone()))
        .collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1].0, "onSuccess");
    let logs = wait_for("the last log line", || {
        let logs = server.logs.lock().unwrap().clone();
        logs.iter()
            .any(|l| l.contains("\"stopped\""))
            .then_some(logs)
    });
    assert!(logs.iter().any(|l| l.contains("draining")), "{logs:?}");
    // Every line of the job carries its id (the job span).
    let job_lines: Vec<&String> = logs
        .iter()
        .filter(|l| l.contains("\"started\"") || l.contains("\"finished\""))
        .collect();
    assert_eq!(job_lines.len(), 2, "{logs:?}");
    for line in job_lines {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["span"]["job_id"], id.as_str(), "{line}");
    }
}

common::both_backends!(
    full_queue_answers_503_with_retry_after,
    tenants_are_authenticated_and_isolated,
    one_tenant_flooding_cannot_starve_another,
    sigterm_finishes_in_flight_jobs_and_their_webhooks,
);
