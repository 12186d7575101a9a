//! The job lifecycle of API.md: cancel, priority, expiry (410), waiting for the verdict, and
//! synchronous validation of uploaded bytes.
//!
//! A contract test: each runs once per engine, unchanged (`common::both_backends!`).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Receiver, Server, jpeg_header, real_png, request};
use serde_json::{Value, json};

fn id_of(r: &common::Resp) -> String {
    r.json()["id"].as_str().unwrap().to_owned()
}

/// A server with one job slot, and a job holding it (its onStart answered after `hold`).
fn one_slot_held(hooks: &Receiver, hold: Duration, extra: &[&str]) -> (Server, String) {
    let mut flags = vec!["--max-concurrent-jobs", "1"];
    flags.extend_from_slice(extra);
    let server = Server::start(&flags);
    server.write("ok.jpg", &jpeg_header(10, 10));
    server.write("slow.jpg", &jpeg_header(10, 10));
    hooks.set_path_delay("onStart", hold);
    let first = server.submit(&hooks.submission("slow.jpg"));
    assert_eq!(first.status, 202);
    let id = id_of(&first);
    server.wait_state(&id, None, &["started", "success"]);
    (server, id)
}

fn cancel_takes_a_queued_job_out_and_refuses_a_started_one() {
    let hooks = Receiver::start();
    let (server, running) = one_slot_held(&hooks, Duration::from_millis(1500), &[]);
    let queued = id_of(&server.submit(&hooks.submission("ok.jpg")));
    let cancelled = request(
        server.addr,
        "DELETE",
        &format!("/assets/image/{queued}"),
        &[],
        b"",
    );
    assert_eq!(cancelled.status, 200, "{}", cancelled.body_text());
    let job = cancelled.json();
    assert_eq!(job["state"], "cancelled");
    assert!(job["finishedAt"].is_string());
    assert_eq!(
        server.get(&format!("/assets/image/{queued}")).json()["state"],
        "cancelled"
    );
    // Again: no longer queued.
    let again = request(
        server.addr,
        "DELETE",
        &format!("/assets/image/{queued}"),
        &[],
        b"",
    );
    assert_eq!(again.status, 409);
    assert_eq!(
        again.json()["errors"]["state"][0],
        "Job is cancelled; only a queued job can be cancelled."
    );
    // The running job's verdict is in (validation never waits on its slow onStart).
    server.wait_final(&running);
    let decided = request(
        server.addr,
        "DELETE",
        &format!("/assets/image/{running}"),
        &[],
        b"",
    );
    assert_eq!(decided.status, 409);
    assert_eq!(
        decided.json()["errors"]["state"][0],
        "Job is success; only a queued job can be cancelled."
    );
    let unknown = uuid::Uuid::new_v4();
    let missing = request(
        server.addr,
        "DELETE",
        &format!("/assets/image/{unknown}"),
        &[],
        b"",
    );
    assert_eq!(missing.status, 404);
    // The running job finishes; the cancelled one never sends a webhook.
    hooks.wait_hooks(&running, 2);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        hooks.hooks_for(&queued).is_empty(),
        "{:?}",
        hooks.hooks_for(&queued)
    );
    assert_eq!(
        server.get(&format!("/assets/image/{queued}")).json()["state"],
        "cancelled"
    );
}

fn a_tenant_cannot_cancel_another_tenants_job() {
    let hooks = Receiver::start();
    let server = Server::start(&[
        "--max-concurrent-jobs",
        "1",
        "--auth-token",
        "a:token-a",
        "--auth-token",
        "b:token-b",
    ]);
    server.write("ok.jpg", &jpeg_header(10, 10));
    hooks.set_path_delay("onStart", Duration::from_millis(1000));
    let as_a = [("authorization", "Bearer token-a")];
    let running = id_of(&server.post_json(&as_a, &hooks.submission("ok.jpg")));
    server.wait_state(&running, Some("token-a"), &["started", "success"]);
    let queued = id_of(&server.post_json(&as_a, &hooks.submission("ok.jpg")));
    let path = format!("/assets/image/{queued}");
    let by_b = request(
        server.addr,
        "DELETE",
        &path,
        &[("authorization", "Bearer token-b")],
        b"",
    );
    assert_eq!(by_b.status, 404, "another tenant's job is not found");
    let by_a = request(server.addr, "DELETE", &path, &as_a, b"");
    assert_eq!(by_a.status, 200, "{}", by_a.body_text());
    assert_eq!(by_a.json()["state"], "cancelled");
}

fn higher_priority_starts_first_and_fifo_within_a_priority() {
    let hooks = Receiver::start();
    let (server, running) = one_slot_held(&hooks, Duration::from_millis(1200), &[]);
    let mut ids = Vec::new();
    for priority in ["low", "normal", "high", "normal", "high"] {
        let mut body = hooks.submission("ok.jpg");
        body["priority"] = json!(priority);
        let r = server.submit(&body);
        assert_eq!(r.status, 202, "{}", r.body_text());
        ids.push(id_of(&r));
    }
    hooks.set_path_delay("onStart", Duration::ZERO);
    for id in &ids {
        server.wait_final(id);
    }
    let starts: Vec<String> = hooks
        .hooks()
        .into_iter()
        .filter(|h| h.path == "onStart" && h.body["id"] != running.as_str())
        .map(|h| h.body["id"].as_str().unwrap().to_owned())
        .collect();
    let want: Vec<String> = [2, 4, 1, 3, 0].iter().map(|&i| ids[i].clone()).collect();
    assert_eq!(starts, want, "onStart order");
    let bad = server.submit(&{
        let mut body = hooks.submission("ok.jpg");
        body["priority"] = json!("urgent");
        body
    });
    assert_eq!(bad.status, 400);
    assert!(bad.json()["errors"]["priority"].is_array());
}

fn an_expired_job_is_gone_and_a_never_seen_one_not_found() {
    let hooks = Receiver::start();
    let server = Server::start(&["--job-retention", "1s"]);
    server.write("ok.jpg", &jpeg_header(10, 10));
    let id = id_of(&server.submit(&hooks.submission("ok.jpg")));
    let job = server.wait_final(&id);
    assert!(job["createdAt"].is_string() && job["startedAt"].is_string());
    assert!(job["finishedAt"].is_string());
    let gone = common::wait_within("the job to expire", Duration::from_secs(10), || {
        let r = server.get(&format!("/assets/image/{id}"));
        (r.status == 410).then_some(r)
    });
    assert_eq!(gone.json(), json!({"errors": {"id": ["Job expired."]}}));
    let cancel = request(
        server.addr,
        "DELETE",
        &format!("/assets/image/{id}"),
        &[],
        b"",
    );
    assert_eq!(cancel.status, 410);
    let never = uuid::Uuid::new_v4();
    assert_eq!(server.get(&format!("/assets/image/{never}")).status, 404);
}

fn timestamps_are_null_until_reached() {
    let hooks = Receiver::start();
    let (server, _running) = one_slot_held(&hooks, Duration::from_millis(800), &[]);
    let queued = server.submit(&hooks.submission("ok.jpg"));
    let job = server
        .get(&format!("/assets/image/{}", id_of(&queued)))
        .json();
    assert_eq!(job["state"], "queued");
    assert!(job["createdAt"].is_string());
    assert_eq!(job["startedAt"], Value::Null);
    assert_eq!(job["finishedAt"], Value::Null);
}

fn prefer_wait_answers_200_with_the_verdict() {
    let hooks = Receiver::start();
    // A slow onStart does not delay the verdict: validation never waits on a webhook.
    hooks.set_path_delay("onStart", Duration::from_millis(1500));
    let server = Server::start(&[]);
    server.write("big.jpg", &jpeg_header(1800, 1200));
    let started = Instant::now();
    let r = server.post_json(
        &[("prefer", "respond-async, wait=5")],
        &hooks.submission("big.jpg"),
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(r.header("preference-applied"), Some("wait=5"));
    let job = r.json();
    assert_eq!(job["state"], "failed");
    assert_eq!(
        job["errors"]["image"],
        json!([
            "Image width exceeds maximum (1800/1000)",
            "Image height exceeds maximum (1200/1000)"
        ])
    );
    // The webhooks are still sent.
    hooks.wait_hooks(job["id"].as_str().unwrap(), 2);
}

fn prefer_wait_answers_202_when_the_verdict_is_late() {
    let hooks = Receiver::start();
    let (server, _running) =
        one_slot_held(&hooks, Duration::from_millis(3000), &["--max-wait", "1s"]);
    let started = Instant::now();
    let r = server.post_json(&[("prefer", "wait=30")], &hooks.submission("ok.jpg"));
    assert_eq!(r.status, 202, "{}", r.body_text());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "waited {waited:?} (--max-wait 1s)"
    );
    assert_eq!(r.header("preference-applied"), Some("wait=1"));
    assert_eq!(r.json()["state"], "queued");
    // Without the preference: no waiting, no header.
    let plain = server.submit(&hooks.submission("ok.jpg"));
    assert_eq!(plain.status, 202);
    assert_eq!(plain.header("preference-applied"), None);
}

fn upload(server: &Server, content_type: &str, body: &[u8]) -> common::Resp {
    request(
        server.addr,
        "POST",
        "/validate",
        &[("content-type", content_type)],
        body,
    )
}

fn validate_checks_uploaded_bytes_without_a_job() {
    let hooks = Receiver::start();
    let server = Server::start(&[]);
    let ok = upload(&server, "image/jpeg", &jpeg_header(640, 480));
    assert_eq!(ok.status, 200, "{}", ok.body_text());
    let line = ok.json();
    assert_eq!(line["valid"], true);
    assert_eq!(line["format"], "jpeg");
    assert_eq!(
        (line["width"].clone(), line["height"].clone()),
        (json!(640), json!(480))
    );
    assert_eq!(line["errors"], json!([]));
    assert!(line.get("path").is_none());
    let big = upload(
        &server,
        "application/octet-stream",
        &jpeg_header(1800, 1200),
    )
    .json();
    assert_eq!(big["valid"], false);
    assert_eq!(
        big["errors"],
        json!([
            "Image width exceeds maximum (1800/1000)",
            "Image height exceeds maximum (1200/1000)"
        ])
    );
    let png = upload(&server, "image/png", &real_png(20, 10)).json();
    assert_eq!(png["format"], "png");
    assert_eq!(png["errors"], json!(["Not a JPEG (png)"]));
    let junk = upload(&server, "image/jpeg", b"hello").json();
    assert_eq!(junk["format"], Value::Null);
    assert_eq!(junk["errors"], json!(["Not a JPEG (unknown)"]));
    // No job was made, no webhook sent.
    let listed = server.get("/assets/image").json();
    assert_eq!(listed["jobs"], json!([]));
    assert!(hooks.hooks().is_empty());
}

fn validate_reads_only_the_header_of_a_huge_upload() {
    let server = Server::start(&[]);
    let before = server.metric("imgchkr_validate_bytes_read_total");
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let declared: u64 = 2 << 30;
    let head = format!(
        "POST /validate HTTP/1.1\r\nhost: x\r\ncontent-type: image/jpeg\r\ncontent-length: {declared}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut image = jpeg_header(800, 600);
    image.truncate(image.len() - 2);
    stream.write_all(&image).unwrap();
    // Stream zeros until the server answers and closes (bounded: 64 MiB at most).
    let zeros = vec![0u8; 64 * 1024];
    let mut sent = image.len() as u64;
    let started = Instant::now();
    while sent < 64 << 20 && stream.write_all(&zeros).is_ok() {
        sent += zeros.len() as u64;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    assert!(
        text.contains("File size exceeds maximum (2147483648/10485760)"),
        "{text}"
    );
    assert!(text.contains(r#""width":800"#), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let read = server.metric("imgchkr_validate_bytes_read_total") - before;
    assert!(
        read > 0.0 && read < 64.0 * 1024.0,
        "the server read {read} bytes"
    );
}

fn validate_without_content_length_counts_what_it_read() {
    let server = Server::start(&["--max-bytes", "100000"]);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut raw =
        b"POST /validate HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    // A JPEG whose frame header comes after a 200 KB comment: the probe skips it, reading on
    // past the 100 KB limit, so the size check fails on what was read.
    let mut image = vec![0xFF, 0xD8];
    for _ in 0..4 {
        image.extend_from_slice(&[0xFF, 0xFE, 0xFF, 0xFF]);
        image.extend(std::iter::repeat_n(b'x', 0xFFFF - 2));
    }
    image.extend_from_slice(&jpeg_header(10, 10)[2..]);
    for chunk in image.chunks(8192) {
        raw.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        raw.extend_from_slice(chunk);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let _ = stream.write_all(&raw);
    let r = common::read_response(&mut stream).unwrap();
    assert_eq!(r.status, 200);
    let line = r.json();
    let size_error = line["errors"][0].as_str().unwrap();
    assert!(
        size_error.starts_with("File size exceeds maximum (") && size_error.ends_with("/100000)"),
        "{line}"
    );
}

common::both_backends!(
    cancel_takes_a_queued_job_out_and_refuses_a_started_one,
    a_tenant_cannot_cancel_another_tenants_job,
    higher_priority_starts_first_and_fifo_within_a_priority,
    an_expired_job_is_gone_and_a_never_seen_one_not_found,
    timestamps_are_null_until_reached,
    prefer_wait_answers_200_with_the_verdict,
    prefer_wait_answers_202_when_the_verdict_is_late,
    validate_checks_uploaded_bytes_without_a_job,
    validate_reads_only_the_header_of_a_huge_upload,
    validate_without_content_length_counts_what_it_read,
);
