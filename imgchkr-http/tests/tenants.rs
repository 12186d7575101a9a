//! Untrusted tenants sharing one deployment (API.md, "Tenants and request security"): each
//! hole a hostile tenant found, closed; the tenants file, rate limits, signed requests and
//! TLS end to end.
//!
//! The isolation tests are contract tests: each runs once per engine (`both_backends!`).

mod common;

use std::io::Write as _;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Receiver, Server, jpeg_header, request, wait_for};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn digest_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A tenants file in a fresh directory of its own; `extra` is appended to each tenant's
/// table by name.
fn tenants_file(dir: &Path, tenants: &[(&str, &str, &str)]) -> std::path::PathBuf {
    let mut text = String::new();
    for (name, token, extra) in tenants {
        text.push_str(&format!(
            "[tenants.{name}]\ntoken_sha256 = [\"{}\"]\n{extra}\n",
            digest_hex(token)
        ));
    }
    let path = dir.join("tenants.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn as_tenant(token: &str) -> String {
    format!("Bearer {token}")
}

fn submit_as(server: &Server, token: &str, body: &Value) -> common::Resp {
    server.post_json(&[("authorization", &as_tenant(token))], body)
}

fn submit_with(
    server: &Server,
    token: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> common::Resp {
    let auth = as_tenant(token);
    let mut all = vec![("authorization", auth.as_str())];
    all.extend_from_slice(headers);
    server.post_json(&all, body)
}

fn get_as(server: &Server, token: &str, path: &str) -> common::Resp {
    server.get_as(path, token)
}

const TWO: [&str; 4] = [
    "--auth-token",
    "alice:alice-token",
    "--auth-token",
    "bob:bob-token",
];

fn an_id_used_by_one_tenant_is_free_for_another() {
    let hooks = Receiver::start();
    let server = Server::start(&TWO);
    server.write("ok.jpg", &jpeg_header(10, 10));
    server.write("other.jpg", &jpeg_header(10, 10));
    let id = "5f0b6c9d-7f0e-4a51-9b6e-2f1d3c4b5a69";
    let mut bobs = hooks.submission("ok.jpg");
    bobs["id"] = json!(id);
    assert_eq!(submit_as(&server, "bob-token", &bobs).status, 202);
    // Alice, with the same id and another body, gets what she would for a new id: 202.
    let mut alices = hooks.submission("other.jpg");
    alices["id"] = json!(id);
    let r = submit_as(&server, "alice-token", &alices);
    assert_eq!(r.status, 202, "{}", r.body_text());
    let path = format!("/assets/image/{id}");
    let seen_by_alice = get_as(&server, "alice-token", &path).json();
    let seen_by_bob = get_as(&server, "bob-token", &path).json();
    assert_eq!(seen_by_alice["assetPath"]["path"], "other.jpg");
    assert_eq!(seen_by_bob["assetPath"]["path"], "ok.jpg");
    // Bob resubmits his own: 200, his job; nothing of Alice's shows.
    let again = submit_as(&server, "bob-token", &bobs);
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["assetPath"]["path"], "ok.jpg");
}

fn idempotency_keys_are_per_tenant_and_unguessable() {
    let hooks = Receiver::start();
    let server = Server::start(&TWO);
    server.write("ok.jpg", &jpeg_header(10, 10));
    let key = [("idempotency-key", "order-42")];
    let bob = submit_with(&server, "bob-token", &key, &hooks.submission("ok.jpg"));
    assert_eq!(bob.status, 202);
    let bob_id = bob.json()["id"].as_str().unwrap().to_owned();
    // The old public derivation (UUID v5 of a constant namespace) does not give it.
    let namespace = uuid::Uuid::from_u128(0x6b1f_3c2e_9a4d_4e0b_8f7a_2d5c_1e9b_0a37);
    let public = uuid::Uuid::new_v5(&namespace, b"bob\norder-42");
    assert_ne!(bob_id, public.to_string());
    // Alice's same key names another job.
    let alice = submit_with(&server, "alice-token", &key, &hooks.submission("ok.jpg"));
    assert_eq!(alice.status, 202);
    assert_ne!(alice.json()["id"], bob_id.as_str());
    // Alice pre-submitting Bob's id as her own cannot make his submission conflict.
    let mut squat = hooks.submission("ok.jpg");
    squat["id"] = json!(bob_id);
    assert_eq!(submit_as(&server, "alice-token", &squat).status, 202);
    let again = submit_with(&server, "bob-token", &key, &hooks.submission("ok.jpg"));
    assert_eq!(again.status, 200, "{}", again.body_text());
    assert_eq!(again.json()["id"], bob_id.as_str());
}

fn another_tenants_id_as_a_cursor_pages_like_a_random_one() {
    let hooks = Receiver::start();
    let server = Server::start(&TWO);
    server.write("ok.jpg", &jpeg_header(10, 10));
    let bob_id = submit_as(&server, "bob-token", &hooks.submission("ok.jpg")).json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..3 {
        submit_as(&server, "alice-token", &hooks.submission("ok.jpg"));
    }
    let with_bobs = get_as(
        &server,
        "alice-token",
        &format!("/assets/image?cursor={bob_id}"),
    );
    let random = uuid::Uuid::new_v4();
    let with_random = get_as(
        &server,
        "alice-token",
        &format!("/assets/image?cursor={random}"),
    );
    assert_eq!(with_bobs.status, with_random.status);
    assert_eq!(with_bobs.json(), with_random.json());
    assert_eq!(with_bobs.json(), json!({"jobs": [], "next": null}));
    // And Alice's own listing shows her three jobs only.
    let mine = get_as(&server, "alice-token", "/assets/image").json();
    assert_eq!(mine["jobs"].as_array().unwrap().len(), 3);
}

fn one_tenants_volume_never_evicts_anothers_jobs() {
    let hooks = Receiver::start();
    let mut flags = TWO.to_vec();
    flags.extend(["--max-jobs", "5"]);
    let server = Server::start(&flags);
    server.write("ok.jpg", &jpeg_header(10, 10));
    let bob_id = submit_as(&server, "bob-token", &hooks.submission("ok.jpg")).json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut alice_ids = Vec::new();
    for _ in 0..12 {
        let r = submit_as(&server, "alice-token", &hooks.submission("ok.jpg"));
        alice_ids.push(r.json()["id"].as_str().unwrap().to_owned());
    }
    for id in &alice_ids {
        wait_for("alice's job final", || {
            let job = get_as(&server, "alice-token", &format!("/assets/image/{id}"));
            (job.status == 410 || job.json()["state"] == "success").then_some(())
        });
    }
    // Retention runs every second: Alice's oldest go, Bob's one job stays.
    wait_for("alice's oldest job to expire", || {
        let r = get_as(
            &server,
            "alice-token",
            &format!("/assets/image/{}", alice_ids[0]),
        );
        (r.status == 410).then_some(())
    });
    let bob = get_as(&server, "bob-token", &format!("/assets/image/{bob_id}"));
    assert_eq!(bob.status, 200, "{}", bob.body_text());
    let alices = get_as(&server, "alice-token", "/assets/image").json();
    assert_eq!(alices["jobs"].as_array().unwrap().len(), 5);
}

/// A webhook receiver that accepts connections and never answers.
fn black_hole() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    format!("http://{addr}")
}

fn hanging(url: &str, path: &str) -> Value {
    json!({
        "assetPath": {"location": "local", "path": path},
        "notifications": {"onStart": format!("{url}/onStart"),
                          "onSuccess": format!("{url}/onSuccess"),
                          "onFailure": format!("{url}/onFailure")}
    })
}

/// Floods the server as `flooders` (webhooks that hang) and times `victim`'s jobs from
/// submission to their final webhook.
fn victim_jobs_finish_under_a_flood(flooders: &[&str], victim: &str, flags: &[&str]) {
    let quick = Receiver::start();
    let hole = black_hole();
    let server = Server::start(flags);
    server.write("ok.jpg", &jpeg_header(10, 10));
    for flooder in flooders {
        for _ in 0..100 {
            let r = submit_as(
                &server,
                &format!("{flooder}-token"),
                &hanging(&hole, "ok.jpg"),
            );
            assert_eq!(r.status, 202, "{}", r.body_text());
        }
    }
    // The flood holds what it may of the slots: its onStarts hang.
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let mut ids = Vec::new();
    for _ in 0..20 {
        let r = submit_as(
            &server,
            &format!("{victim}-token"),
            &quick.submission("ok.jpg"),
        );
        assert_eq!(r.status, 202, "{}", r.body_text());
        ids.push(r.json()["id"].as_str().unwrap().to_owned());
    }
    let deadline = Duration::from_secs(10);
    for id in &ids {
        common::wait_within("the victim's final webhook", deadline, || {
            quick
                .hooks_for(id)
                .iter()
                .any(|h| h.path == "onSuccess")
                .then_some(())
        });
    }
    let took = started.elapsed();
    eprintln!(
        "{victim}'s 20 jobs under a flood of {flooders:?}: all final webhooks within {took:?}"
    );
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

fn a_tenant_with_hanging_webhooks_cannot_starve_another() {
    let flags = [
        "--auth-token",
        "alice:alice-token",
        "--auth-token",
        "bob:bob-token",
        "--max-concurrent-jobs",
        "20",
        "--webhook-max-in-flight",
        "8",
        "--webhook-timeout",
        "30s",
    ];
    victim_jobs_finish_under_a_flood(&["alice"], "bob", &flags);
}

fn two_flooding_tenants_cannot_starve_a_third() {
    let flags = [
        "--auth-token",
        "alice:alice-token",
        "--auth-token",
        "bob:bob-token",
        "--auth-token",
        "carol:carol-token",
        "--max-concurrent-jobs",
        "30",
        "--webhook-max-in-flight",
        "12",
        "--webhook-timeout",
        "30s",
    ];
    victim_jobs_finish_under_a_flood(&["alice", "carol"], "bob", &flags);
}

fn duplicate_keys_are_refused() {
    let hooks = Receiver::start();
    let server = Server::start(&[]);
    let body = format!(
        r#"{{"assetPath": {{"location": "local", "path": "a.jpg", "path": "../../etc/passwd"}},
        "notifications": {{"onStart": "{0}", "onSuccess": "{0}", "onFailure": "{0}"}}}}"#,
        hooks.url("x")
    );
    let r = request(
        server.addr,
        "POST",
        "/assets/image",
        &[("content-type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 400);
    assert!(
        r.json()["errors"]["assetPath.path"].is_array(),
        "{}",
        r.body_text()
    );
}

common::both_backends!(
    an_id_used_by_one_tenant_is_free_for_another,
    idempotency_keys_are_per_tenant_and_unguessable,
    another_tenants_id_as_a_cursor_pages_like_a_random_one,
    one_tenants_volume_never_evicts_anothers_jobs,
    a_tenant_with_hanging_webhooks_cannot_starve_another,
    two_flooding_tenants_cannot_starve_a_third,
    duplicate_keys_are_refused,
);

#[test]
fn the_tenants_file_sets_each_tenants_limits() {
    let hooks = Receiver::start();
    let config = tempfile::tempdir().unwrap();
    let file = tenants_file(
        config.path(),
        &[
            (
                "acme",
                "acme-token",
                "rate_limit = \"2/s\"\nlocations = [\"local\"]\nimage_subdir = \"acme\"\nmax_queued = 3\nnotify_allow = [\"127.0.0.1\"]",
            ),
            ("bob", "bob-token", ""),
        ],
    );
    let server = Server::start(&[
        "--tenants",
        file.to_str().unwrap(),
        "--locations",
        "local,url",
        "--max-concurrent-jobs",
        "1",
    ]);
    std::fs::create_dir(server.dir.path().join("acme")).unwrap();
    server.write("acme/ok.jpg", &jpeg_header(10, 10));
    server.write("ok.jpg", &jpeg_header(10, 10));
    // image_subdir: acme's "ok.jpg" is IMAGE_DIR/acme/ok.jpg; the root's is out of reach.
    let r = submit_as(&server, "acme-token", &hooks.submission("ok.jpg"));
    assert_eq!(r.status, 202, "{}", r.body_text());
    let job = server.wait_state(
        r.json()["id"].as_str().unwrap(),
        Some("acme-token"),
        &["success", "failed"],
    );
    assert_eq!(job["state"], "success", "{job}");
    let escape = submit_as(&server, "acme-token", &hooks.submission("../ok.jpg"));
    let job = server.wait_state(
        escape.json()["id"].as_str().unwrap(),
        Some("acme-token"),
        &["success", "failed"],
    );
    assert_eq!(
        job["errors"]["image"],
        json!(["Path is outside the image directory: ../ok.jpg"])
    );
    // Bob's paths resolve at the root.
    let r = submit_as(&server, "bob-token", &hooks.submission("ok.jpg"));
    let job = server.wait_state(
        r.json()["id"].as_str().unwrap(),
        Some("bob-token"),
        &["success", "failed"],
    );
    assert_eq!(job["state"], "success");
    // locations: acme may not use url even though the server offers it.
    let url_asset = json!({
        "assetPath": {"location": "url", "path": "http://127.0.0.1:9/a.jpg"},
        "notifications": {"onStart": hooks.url("a"), "onSuccess": hooks.url("a"), "onFailure": hooks.url("a")}
    });
    let r = submit_as(&server, "acme-token", &url_asset);
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["errors"]["assetPath.location"],
        json!(["Unsupported location \"url\"; supported: local."])
    );
    // notify_allow: only 127.0.0.1 for acme.
    let elsewhere = json!({
        "assetPath": {"location": "local", "path": "ok.jpg"},
        "notifications": {"onStart": "http://203.0.113.9/a", "onSuccess": hooks.url("a"), "onFailure": hooks.url("a")}
    });
    let r = submit_as(&server, "acme-token", &elsewhere);
    assert_eq!(r.status, 400, "{}", r.body_text());
    let text = r.json()["errors"]["notifications.onStart"][0]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(text.contains("not allowed for this tenant"), "{text}");
    // The same URL is fine for Bob, who has no allowlist of his own.
    let r = submit_as(&server, "bob-token", &elsewhere);
    assert_eq!(r.status, 202, "{}", r.body_text());
}

#[test]
fn rate_limits_answer_429_and_leave_other_tenants_alone() {
    let hooks = Receiver::start();
    let config = tempfile::tempdir().unwrap();
    let file = tenants_file(
        config.path(),
        &[
            ("acme", "acme-token", "rate_limit = \"2/s\""),
            ("bob", "bob-token", ""),
        ],
    );
    let server = Server::start(&["--tenants", file.to_str().unwrap()]);
    server.write("ok.jpg", &jpeg_header(10, 10));
    // A burst of twice the rate passes at once, then 429 with a Retry-After.
    for i in 0..4 {
        let r = submit_as(&server, "acme-token", &hooks.submission("ok.jpg"));
        assert_eq!(r.status, 202, "submission {i}: {}", r.body_text());
    }
    let limited = submit_as(&server, "acme-token", &hooks.submission("ok.jpg"));
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("retry-after"), Some("1"));
    assert_eq!(
        limited.json(),
        json!({"errors": {"tenant": ["Rate limit exceeded; retry later."]}})
    );
    for _ in 0..6 {
        assert_eq!(
            submit_as(&server, "bob-token", &hooks.submission("ok.jpg")).status,
            202
        );
    }
    // Half a second later one more token is there.
    std::thread::sleep(Duration::from_millis(550));
    assert_eq!(
        submit_as(&server, "acme-token", &hooks.submission("ok.jpg")).status,
        202
    );
}

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn signed_headers(id: &str, timestamp: i64, body: &[u8]) -> Vec<(String, String)> {
    let signer = standardwebhooks::Webhook::new(SECRET).unwrap();
    let signature = signer.sign(id, timestamp, body).unwrap();
    vec![
        ("imgchkr-request-id".into(), id.into()),
        ("imgchkr-request-timestamp".into(), timestamp.to_string()),
        ("imgchkr-request-signature".into(), signature),
    ]
}

fn post_signed(server: &Server, headers: &[(String, String)], body: &[u8]) -> common::Resp {
    let mut all: Vec<(&str, &str)> = vec![
        ("content-type", "application/json"),
        ("authorization", "Bearer acme-token"),
    ];
    all.extend(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    request(server.addr, "POST", "/assets/image", &all, body)
}

#[test]
fn signed_requests_are_verified_and_a_replay_makes_no_second_job() {
    let hooks = Receiver::start();
    let config = tempfile::tempdir().unwrap();
    let file = tenants_file(
        config.path(),
        &[(
            "acme",
            "acme-token",
            &format!("request_secret = [\"{SECRET}\"]"),
        )],
    );
    let server = Server::start(&["--tenants", file.to_str().unwrap()]);
    server.write("ok.jpg", &jpeg_header(10, 10));
    let body = hooks.submission("ok.jpg").to_string().into_bytes();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    // Unsigned: 401 under signature.
    let r = submit_as(&server, "acme-token", &hooks.submission("ok.jpg"));
    assert_eq!(r.status, 401);
    assert!(r.json()["errors"]["signature"].is_array());
    // Signed by a Standard Webhooks library: accepted.
    let headers = signed_headers("req-1", now, &body);
    let first = post_signed(&server, &headers, &body);
    assert_eq!(first.status, 202, "{}", first.body_text());
    let id = first.json()["id"].as_str().unwrap().to_owned();
    // The same request again: that job, not a second one.
    let replay = post_signed(&server, &headers, &body);
    assert_eq!(replay.status, 200, "{}", replay.body_text());
    assert_eq!(replay.json()["id"], id.as_str());
    // The same request id with another body, correctly signed: 409.
    let other = hooks.submission("other.jpg").to_string().into_bytes();
    let r = post_signed(&server, &signed_headers("req-1", now, &other), &other);
    assert_eq!(r.status, 409, "{}", r.body_text());
    // Forged (signed for another body), stale and future timestamps: 401.
    let mut forged = signed_headers("req-2", now, &other);
    forged[0].1 = "req-2".into();
    assert_eq!(post_signed(&server, &forged, &body).status, 401);
    let stale = signed_headers("req-3", now - 400, &body);
    assert_eq!(post_signed(&server, &stale, &body).status, 401);
    let future = signed_headers("req-4", now + 400, &body);
    assert_eq!(post_signed(&server, &future, &body).status, 401);
    let listed = get_as(&server, "acme-token", "/assets/image").json();
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 1);
}

#[test]
fn the_tenants_file_is_reloaded_on_sighup_without_dropping_connections() {
    let hooks = Receiver::start();
    let config = tempfile::tempdir().unwrap();
    let file = tenants_file(config.path(), &[("acme", "acme-token", "")]);
    let server = Server::start(&["--tenants", file.to_str().unwrap()]);
    server.write("ok.jpg", &jpeg_header(10, 10));
    assert_eq!(
        submit_as(&server, "bob-token", &hooks.submission("ok.jpg")).status,
        401
    );
    // A keep-alive connection open across the reload.
    let mut kept = std::net::TcpStream::connect(server.addr).unwrap();
    kept.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let healthz = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n";
    kept.write_all(healthz).unwrap();
    assert!(read_one_response(&mut kept).starts_with("HTTP/1.1 200"));

    tenants_file(
        config.path(),
        &[("acme", "acme-token", ""), ("bob", "bob-token", "")],
    );
    let hup = |pid: u32| {
        let status = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    hup(server.child.id());
    wait_for("bob's token to work", || {
        (submit_as(&server, "bob-token", &hooks.submission("ok.jpg")).status == 202).then_some(())
    });
    kept.write_all(healthz).unwrap();
    assert!(
        read_one_response(&mut kept).starts_with("HTTP/1.1 200"),
        "the kept connection"
    );

    // A broken file leaves the tenants in force, and says why.
    std::fs::write(&file, "this is not toml [").unwrap();
    hup(server.child.id());
    wait_for("the reload error in the log", || {
        server
            .logs
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("tenants not reloaded"))
            .then_some(())
    });
    assert_eq!(
        submit_as(&server, "bob-token", &hooks.submission("ok.jpg")).status,
        202
    );
    assert_eq!(
        submit_as(&server, "acme-token", &hooks.submission("ok.jpg")).status,
        202
    );
}

/// Reads one response with a Content-Length body from a kept connection.
fn read_one_response(stream: &mut std::net::TcpStream) -> String {
    use std::io::Read as _;
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "connection closed");
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0; len];
    stream.read_exact(&mut body).unwrap();
    head
}

fn imgchkr(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_imgchkr"))
        .args(args)
        .env_remove("IMGCHKR_TENANTS")
        .output()
        .unwrap()
}

#[test]
fn an_invalid_tenants_file_stops_the_start_and_imgchkr_token_makes_working_lines() {
    let config = tempfile::tempdir().unwrap();
    let bad = config.path().join("bad.toml");
    std::fs::write(&bad, "[tenants.a]\ntoken_sha256 = [\"not hex\"]\n").unwrap();
    let out = imgchkr(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--store",
        "memory:",
        "--tenants",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid tenants file"), "{stderr}");

    let out = imgchkr(&["token"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let token = text
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .unwrap()
        .to_owned();
    let line = text
        .lines()
        .find(|l| l.starts_with("token_sha256 = ["))
        .unwrap();
    assert_eq!(line, format!("token_sha256 = [\"{}\"]", digest_hex(&token)));
    let good = config.path().join("good.toml");
    std::fs::write(&good, format!("[tenants.acme]\n{line}\n")).unwrap();
    let server = Server::start(&["--tenants", good.to_str().unwrap()]);
    assert_eq!(get_as(&server, &token, "/assets/image").status, 200);
    assert_eq!(get_as(&server, "wrong", "/assets/image").status, 401);
}

#[test]
fn https_serves_the_api_with_the_configured_certificate() {
    let hooks = Receiver::start();
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (the test makes its certificate with it)");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let server = Server::start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    server.write("ok.jpg", &jpeg_header(10, 10));
    let body = hooks.submission("ok.jpg").to_string();
    let url = format!("https://127.0.0.1:{}/assets/image", server.addr.port());
    let out = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(&cert)
        .args([
            "-H",
            "content-type: application/json",
            "-d",
            &body,
            "-w",
            "\n%{http_code}",
            &url,
        ])
        .output()
        .expect("curl (the test speaks HTTPS with it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.ends_with("\n202"),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Plain HTTP on the TLS port gets no answer.
    let plain = std::net::TcpStream::connect(server.addr).and_then(|mut s| {
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")?;
        let mut buf = [0u8; 16];
        use std::io::Read as _;
        let n = s.read(&mut buf)?;
        Ok(buf[..n].to_vec())
    });
    assert!(!plain.unwrap_or_default().starts_with(b"HTTP/1.1 200"));
}
