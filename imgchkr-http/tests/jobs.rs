//! A job's life end to end: submission, webhooks in order, the job as GET shows it.
//!
//! A contract test: each runs twice, unchanged, `embedded::<test>` (in memory) and
//! `redis::<test>` (`serve --redis` on a `redis-server` of its own): `common::both_backends!`.

mod common;

use common::{Receiver, Server, closed_port, jpeg_header, real_jpeg};
use serde_json::json;

fn seed_example_fails_with_the_exact_errors() {
    let hooks = Receiver::start();
    let server = Server::start(&[]);
    server.write("a.jpg", &jpeg_header(1800, 1200));
    let r = server.submit(&hooks.submission("a.jpg"));
    assert_eq!(r.status, 202, "{}", r.body_text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(r.json(), json!({"id": id, "state": "queued"}));
    assert_eq!(r.header("location"), Some(&*format!("/assets/image/{id}")));

    let errors = json!({"image": ["Image width exceeds maximum (1800/1000)",
                                  "Image height exceeds maximum (1200/1000)"]});
    let got = hooks.wait_hooks(&id, 2);
    assert_eq!(got[0].path, "onStart");
    assert_eq!(got[0].body, json!({"id": id, "state": "started"}));
    assert_eq!(got[1].path, "onFailure");
    assert_eq!(
        got[1].body,
        json!({"id": id, "state": "failed", "errors": errors})
    );
    assert!(got[0].headers["content-type"].starts_with("application/json"));

    let job = server.wait_final(&id);
    assert_eq!(job["state"], "failed");
    assert_eq!(job["errors"], errors);
    // The final delivery record may land just after the verdict.
    let job = common::wait_for("delivery records", || {
        let job = server.get(&format!("/assets/image/{id}")).json();
        let n = job["notifications"].as_array()?;
        (n.len() == 2 && n.iter().all(|d| d["status"] == "delivered")).then_some(job)
    });
    assert_eq!(job["notifications"][0]["event"], "onStart");
    assert_eq!(job["notifications"][1]["event"], "onFailure");
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(hooks.hooks_for(&id).len(), 2, "exactly one final event");
}

fn valid_jpeg_succeeds_and_trailing_slash_works() {
    let hooks = Receiver::start();
    let server = Server::start(&[]);
    std::fs::create_dir(server.dir.path().join("images")).unwrap();
    server.write("images/small.jpg", &real_jpeg(64, 48));
    let r = server.submit(&hooks.submission("images/small.jpg"));
    assert_eq!(r.status, 202);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let got = hooks.wait_hooks(&id, 2);
    assert_eq!(
        (got[0].path.as_str(), got[1].path.as_str()),
        ("onStart", "onSuccess")
    );
    assert_eq!(got[1].body, json!({"id": id, "state": "success"}));
    let job = server.wait_final(&id);
    assert_eq!(job["state"], "success");
    assert!(job.get("errors").is_none());
    let again = server.get(&format!("/assets/image/{id}/"));
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["id"], id.as_str());

    // An absolute path inside the directory is accepted.
    let abs = server.dir.path().join("images/small.jpg");
    let r = server.submit(&hooks.submission(abs.to_str().unwrap()));
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(server.wait_final(&id)["state"], "success");
}

fn missing_file_and_escape_fail_with_the_client_path() {
    let hooks = Receiver::start();
    let server = Server::start(&[]);
    for (path, text) in [
        ("missing.jpg", "File not found: missing.jpg"),
        ("../x", "Path is outside the image directory: ../x"),
        (
            "/etc/passwd",
            "Path is outside the image directory: /etc/passwd",
        ),
    ] {
        let r = server.submit(&hooks.submission(path));
        assert_eq!(r.status, 202);
        let id = r.json()["id"].as_str().unwrap().to_owned();
        let job = server.wait_final(&id);
        assert_eq!(job["state"], "failed");
        assert_eq!(job["errors"], json!({"image": [text]}));
        let got = hooks.wait_hooks(&id, 2);
        assert_eq!(got[1].path, "onFailure");
        assert_eq!(got[1].body["errors"], json!({"image": [text]}));
    }
}

fn unreachable_on_start_still_succeeds_and_records_the_failure() {
    let hooks = Receiver::start();
    let server = Server::start(&["--webhook-attempts", "1"]);
    server.write("ok.jpg", &jpeg_header(10, 10));
    let mut body = hooks.submission("ok.jpg");
    let dead = format!("http://127.0.0.1:{}/onStart", closed_port());
    body["notifications"]["onStart"] = json!(dead);
    let id = server.submit(&body).json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let got = hooks.wait_hooks(&id, 1);
    assert_eq!(got[0].path, "onSuccess");
    let job = common::wait_for("onSuccess recorded", || {
        let job = server.get(&format!("/assets/image/{id}")).json();
        let n = job["notifications"].as_array()?;
        (n.len() == 2 && n[1]["status"] == "delivered").then_some(job)
    });
    assert_eq!(job["state"], "success");
    let start = &job["notifications"][0];
    assert_eq!(start["event"], "onStart");
    assert_eq!(start["url"], dead.as_str());
    assert_eq!(start["status"], "failed");
    assert_eq!(start["attempts"], 1);
    assert_eq!(start["error"], "connection refused");
}

fn idempotent_resubmission_by_body_id_and_header() {
    let hooks = Receiver::start();
    let server = Server::start(&[]);
    server.write("ok.jpg", &jpeg_header(10, 10));
    let id = "0b6c9d52-7f0e-4a51-9b6e-2f1d3c4b5a69";
    let mut body = hooks.submission("ok.jpg");
    body["id"] = json!(id);
    let first = server.submit(&body);
    assert_eq!(first.status, 202);
    assert_eq!(first.json()["id"], id);
    server.wait_final(id);
    let again = server.submit(&body);
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["id"], id);
    assert_eq!(again.json()["state"], "success");
    body["assetPath"]["path"] = json!("other.jpg");
    let conflict = server.submit(&body);
    assert_eq!(conflict.status, 409);
    assert!(conflict.json()["errors"]["id"].is_array());

    let plain = hooks.submission("ok.jpg");
    let key = [("idempotency-key", "order-42")];
    let a = server.post_json(&key, &plain);
    assert_eq!(a.status, 202);
    let b = server.post_json(&key, &plain);
    assert_eq!(b.status, 200);
    assert_eq!(a.json()["id"], b.json()["id"]);
    let c = server.post_json(&key, &hooks.submission("different.jpg"));
    assert_eq!(c.status, 409);
    // Only the two accepted jobs ever ran.
    server.wait_final(a.json()["id"].as_str().unwrap());
    hooks.wait_hooks(a.json()["id"].as_str().unwrap(), 2);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(hooks.hooks().len(), 4);
}

fn listing_and_metrics() {
    let hooks = Receiver::start();
    let server = Server::start(&[]);
    server.write("ok.jpg", &jpeg_header(10, 10));
    server.write("big.jpg", &jpeg_header(2000, 10));
    let mut ids = Vec::new();
    for path in ["ok.jpg", "big.jpg", "ok.jpg"] {
        let id = server.submit(&hooks.submission(path)).json()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        server.wait_final(&id);
        ids.push(id);
    }
    let page = server.get("/assets/image?limit=2").json();
    let listed: Vec<&str> = page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [ids[2].as_str(), ids[1].as_str()]);
    let next = page["next"].as_str().unwrap();
    let page2 = server
        .get(&format!("/assets/?limit=2&cursor={next}"))
        .json();
    assert_eq!(page2["jobs"][0]["id"], ids[0].as_str());
    assert!(page2["next"].is_null());
    let failed = server.get("/assets/image?state=failed").json();
    assert_eq!(failed["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(server.get("/assets/image?state=nope").status, 400);
    assert_eq!(server.get("/assets/image?limit=0").status, 400);

    let success = common::wait_for("jobs metric", || {
        let v = server.metric("imgchkr_jobs_total{state=\"success\"}");
        (v >= 2.0).then_some(v)
    });
    assert_eq!(success, 2.0);
    assert_eq!(server.metric("imgchkr_jobs_total{state=\"failed\"}"), 1.0);
    assert_eq!(
        server.metric("imgchkr_http_requests_total{route=\"/assets/image\",status=\"202\"}"),
        3.0
    );
    let text = server.get("/metrics").body_text();
    assert!(text.contains("imgchkr_validation_duration_seconds_bucket"));
    assert!(text.contains("imgchkr_http_request_duration_seconds_bucket"));
    assert!(text.contains("imgchkr_queue_depth"));
}

common::both_backends!(
    seed_example_fails_with_the_exact_errors,
    valid_jpeg_succeeds_and_trailing_slash_works,
    missing_file_and_escape_fail_with_the_client_path,
    unreachable_on_start_still_succeeds_and_records_the_failure,
    idempotent_resubmission_by_body_id_and_header,
    listing_and_metrics,
);
