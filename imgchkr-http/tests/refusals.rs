//! Refusals before queueing, routing errors, and hostile input: never a 500, never a crash,
//! nothing queued, no webhook.
//!
//! A contract test: each runs twice, unchanged, `embedded::<test>` (in memory) and
//! `redis::<test>` (`serve --redis` on a `redis-server` of its own): `common::both_backends!`.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Receiver, Server, raw_exchange, request};
use serde_json::{Value, json};

fn assert_nothing_queued(server: &Server, hooks: &Receiver) {
    std::thread::sleep(Duration::from_millis(150));
    let page = server.get("/assets/image").json();
    assert_eq!(page["jobs"], json!([]), "a refused submission was stored");
    assert!(
        hooks.hooks().is_empty(),
        "a refused submission sent webhooks"
    );
}

fn each_refusal_of_the_spec() {
    let hooks = Receiver::start();
    let server = Server::start(&["--max-body-bytes", "1024"]);
    let good = hooks.submission("a.jpg");
    let post = |headers: &[(&str, &str)], body: &[u8]| {
        request(server.addr, "POST", "/assets/image", headers, body)
    };
    let json_ct = [("content-type", "application/json")];

    // 415: missing or wrong content type.
    let r = post(&[], good.to_string().as_bytes());
    assert_eq!(r.status, 415);
    assert!(r.json()["errors"]["Content-Type"].is_array());
    let r = post(
        &[("content-type", "text/plain")],
        good.to_string().as_bytes(),
    );
    assert_eq!(r.status, 415);

    // 413: over the limit, declared or not.
    let big = json!({"pad": "x".repeat(2000)}).to_string();
    let r = post(&json_ct, big.as_bytes());
    assert_eq!(r.status, 413);
    assert!(r.json()["errors"]["body"].is_array());

    // 400: not JSON, not an object, invalid UTF-8.
    for body in [
        &b"{nope"[..],
        b"[1,2]",
        b"\"str\"",
        b"{\"a\": \"\xff\xfe\"}",
        b"",
    ] {
        let r = post(&json_ct, body);
        assert_eq!(r.status, 400, "{:?}", String::from_utf8_lossy(body));
        assert!(r.json()["errors"]["body"].is_array());
    }

    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"assetPath": {"location": "local", "path": "a.jpg"},
                   "notifications": {"onSuccess": hooks.url("s"), "onFailure": hooks.url("f")}}),
            "notifications.onStart",
            "This field is required.",
        ),
        (
            {
                let mut b = good.clone();
                b["notifications"]["onFailure"] = json!("ftp://example.com/x");
                b
            },
            "notifications.onFailure",
            "Enter a valid URL: an absolute http or https URL.",
        ),
        (
            {
                let mut b = good.clone();
                b["notifications"]["onSuccess"] = json!("/relative");
                b
            },
            "notifications.onSuccess",
            "Enter a valid URL: an absolute http or https URL.",
        ),
        (
            {
                let mut b = good.clone();
                b["assetPath"]["location"] = json!("s3");
                b
            },
            "assetPath.location",
            "Unsupported location \"s3\"; supported: local.",
        ),
        (
            {
                let mut b = good.clone();
                b["assetPath"]["path"] = json!("");
                b
            },
            "assetPath.path",
            "This field may not be blank.",
        ),
        (
            {
                let mut b = good.clone();
                b["assetPath"] = json!(7);
                b
            },
            "assetPath",
            "Invalid data. Expected a dictionary, but got number.",
        ),
    ];
    for (body, field, text) in cases {
        let r = server.submit(&body);
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(
            r.json()["errors"][field],
            json!([text]),
            "{}",
            r.body_text()
        );
    }
    assert_nothing_queued(&server, &hooks);

    // Parameters and case in the content type are fine.
    let r = post(
        &[("content-type", "Application/JSON; charset=utf-8")],
        good.to_string().as_bytes(),
    );
    assert_eq!(r.status, 202);
}

fn refused_destination_names_the_field() {
    let hooks = Receiver::start();
    let server = Server::start(&["--notify-deny-private"]);
    let r = server.submit(&hooks.submission("a.jpg"));
    assert_eq!(r.status, 400);
    let errors = r.json()["errors"].clone();
    for event in ["onStart", "onSuccess", "onFailure"] {
        let text = errors[format!("notifications.{event}")][0]
            .as_str()
            .unwrap();
        assert!(text.starts_with("Notification URL not allowed"), "{text}");
    }
    assert_nothing_queued(&server, &hooks);
}

fn unknown_ids_routes_and_methods() {
    let server = Server::start(&[]);
    for path in [
        "/assets/image/0b6c9d52-7f0e-4a51-9b6e-2f1d3c4b5a69",
        "/assets/image/not-a-uuid",
        "/assets/image/%00%ff",
        "/assets/image/a/b",
        "/nope",
        "/",
    ] {
        let r = server.get(path);
        assert_eq!(r.status, 404, "{path}");
        assert!(r.json()["errors"].is_object());
    }
    let r = request(server.addr, "DELETE", "/assets/image", &[], b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, POST"));
    assert!(r.json()["errors"]["method"].is_array());
    let r = request(server.addr, "POST", "/healthz", &[], b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET"));
    assert_eq!(server.get("/healthz").status, 200);
    assert_eq!(server.get("/healthz/").status, 200);
    assert_eq!(server.get("/readyz").status, 200);
}

fn hostile_input_never_gives_500_or_kills_the_server() {
    let server = Server::start(&[
        "--max-body-bytes",
        "65536",
        "--header-read-timeout",
        "1s",
        "--body-read-timeout",
        "1s",
    ]);
    let json_ct = [("content-type", "application/json")];
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut bodies: Vec<Vec<u8>> = (0..40)
        .map(|i| {
            (0..(i * 37 % 500))
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect()
        })
        .collect();
    bodies.push("[".repeat(60_000).into_bytes());
    bodies.push(format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000)).into_bytes());
    bodies.push(b"{\"assetPath\": {\"location\": \"local\", \"path\": \"\xc3\x28\"}}".to_vec());
    bodies.push(b"{\"id\": 5, \"assetPath\": [], \"notifications\": \"x\"}".to_vec());
    bodies.push(b"null".to_vec());
    for body in &bodies {
        let r = request(server.addr, "POST", "/assets/image", &json_ct, body);
        assert!(
            r.status < 500,
            "{} for {:?}",
            r.status,
            String::from_utf8_lossy(body)
        );
    }

    // Huge bodies: declared, and chunked without a length.
    let huge = vec![b'x'; 5 * 1024 * 1024];
    let r = request(server.addr, "POST", "/assets/image", &json_ct, &huge);
    assert_eq!(r.status, 413);
    let mut raw = b"POST /assets/image HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                    transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        .to_vec();
    for _ in 0..40 {
        raw.extend_from_slice(b"4000\r\n");
        raw.extend(std::iter::repeat_n(b' ', 0x4000));
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(raw_exchange(server.addr, &raw).status, 413);

    // Garbage on the wire: a 4xx or a closed connection, never a 5xx.
    for raw in [
        &b"\x00\x01\x02 garbage\r\n\r\n"[..],
        b"GET /healthz HTTP/9.9\r\n\r\n",
        b"GET /\xff\xfe HTTP/1.1\r\nhost: x\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nbad header\r\n\r\n",
    ] {
        let mut stream = TcpStream::connect(server.addr).unwrap();
        stream.set_read_timeout(Some(common::DEADLINE)).unwrap();
        let _ = stream.write_all(raw);
        if let Some(r) = common::read_response(&mut stream) {
            assert!(r.status < 500, "{} for {raw:?}", r.status);
        }
    }

    // A slow client: headers never finish, and a body that stalls.
    let started = Instant::now();
    let mut slow = TcpStream::connect(server.addr).unwrap();
    slow.set_read_timeout(Some(common::DEADLINE)).unwrap();
    slow.write_all(b"POST /assets/image HTTP/1.1\r\nhost: x\r\n")
        .unwrap();
    let mut stalled = TcpStream::connect(server.addr).unwrap();
    stalled.set_read_timeout(Some(common::DEADLINE)).unwrap();
    stalled
        .write_all(
            b"POST /assets/image HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
              content-length: 100\r\n\r\n{\"a\":",
        )
        .unwrap();
    // Meanwhile the server answers others.
    assert_eq!(server.get("/healthz").status, 200);
    let r = common::read_response(&mut stalled).expect("a 408 for the stalled body");
    assert_eq!(r.status, 408);
    let _ = common::read_response(&mut slow);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "slow clients held on"
    );

    assert_eq!(server.get("/healthz").status, 200);
    assert!(
        server.metric("imgchkr_http_requests_total{route=\"/assets/image\",status=\"500\"}") == 0.0
    );
}

common::both_backends!(
    each_refusal_of_the_spec,
    refused_destination_names_the_field,
    unknown_ids_routes_and_methods,
    hostile_input_never_gives_500_or_kills_the_server,
);
