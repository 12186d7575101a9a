//! Remote image locations end to end: `--locations local,url` with a loopback HTTP server
//! that honours `Range`, and the refusal of a location that is not enabled.
//!
//! A contract test: each runs twice, unchanged, `embedded::<test>` (in memory) and
//! `redis::<test>` (`serve --redis` on a `redis-server` of its own): `common::both_backends!`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

use common::{Receiver, Server, jpeg_header};
use serde_json::json;

/// The headers of each request a [`range_server`] received (names in lower case).
type Heads = Arc<Mutex<Vec<Vec<(String, String)>>>>;

/// Serves `body` at every path, answering `Range: bytes=a-b` with 206 and `Content-Range`
/// (and anything else with 200 and the whole body), recording every request's headers.
fn range_server(body: Vec<u8>) -> (SocketAddr, Heads) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = Heads::default();
    let recorded = Arc::clone(&heads);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let body = body.clone();
            let heads = Arc::clone(&recorded);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut range = None;
                    let mut head = Vec::new();
                    let mut first = String::new();
                    if reader.read_line(&mut first).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':') {
                            head.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                            if k.eq_ignore_ascii_case("range") {
                                range = v.trim().strip_prefix("bytes=").map(str::to_owned);
                            }
                        }
                    }
                    heads.lock().unwrap().push(head);
                    let total = body.len();
                    let (status, extra, slice) = match range.and_then(|r| {
                        let (a, b) = r.split_once('-')?;
                        let a: usize = a.parse().ok()?;
                        let b: usize = b.parse().unwrap_or(total - 1).min(total - 1);
                        (a < total).then_some((a, b))
                    }) {
                        Some((a, b)) => (
                            "206 Partial Content",
                            format!("content-range: bytes {a}-{b}/{total}\r\n"),
                            &body[a..=b],
                        ),
                        None => ("200 OK", String::new(), &body[..]),
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: image/jpeg\r\n{extra}content-length: {}\r\n\r\n",
                        slice.len()
                    );
                    if stream.write_all(head.as_bytes()).is_err()
                        || stream.write_all(slice).is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (addr, heads)
}

fn url_asset_is_read_with_ranges_and_fails_on_dimensions() {
    let hooks = Receiver::start();
    let (images, heads) = range_server(jpeg_header(1800, 1200));
    let server = Server::start(&["--locations", "local,url"]);
    let mut body = hooks.submission("unused");
    body["assetPath"] = json!({"location": "url", "path": format!("http://{images}/a.jpg")});
    let r = server.submit(&body);
    assert_eq!(r.status, 202, "{}", r.body_text());
    let id = r.json()["id"].as_str().unwrap().to_owned();

    let errors = json!({"image": ["Image width exceeds maximum (1800/1000)",
                                  "Image height exceeds maximum (1200/1000)"]});
    let got = hooks.wait_hooks(&id, 2);
    assert_eq!(got[0].path, "onStart");
    assert_eq!(got[1].path, "onFailure");
    assert_eq!(
        got[1].body,
        json!({"id": id, "state": "failed", "errors": errors})
    );
    let job = server.wait_final(&id);
    assert_eq!(job["state"], "failed");
    assert_eq!(job["errors"], errors);
    // Read with ranges, not downloaded: every request asked for bytes, the first for the
    // first 2 KiB.
    let heads = heads.lock().unwrap().clone();
    assert!(!heads.is_empty());
    let range = |head: &Vec<(String, String)>| {
        head.iter()
            .find(|(name, _)| name == "range")
            .map(|(_, value)| value.clone())
    };
    assert_eq!(
        range(&heads[0]).as_deref(),
        Some("bytes=0-2047"),
        "{heads:?}"
    );
    assert!(
        heads
            .iter()
            .all(|head| range(head).is_some_and(|r| r.starts_with("bytes="))),
        "{heads:?}"
    );

    // `local` still works next to it.
    server.write("b.jpg", &jpeg_header(1800, 1200));
    let r = server.submit(&hooks.submission("b.jpg"));
    assert_eq!(r.status, 202, "{}", r.body_text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(server.wait_final(&id)["errors"], errors);
}

fn a_location_not_enabled_is_refused_with_400() {
    let hooks = Receiver::start();
    let server = Server::start(&[]);
    let mut body = hooks.submission("unused");
    body["assetPath"] = json!({"location": "url", "path": "http://127.0.0.1:9/a.jpg"});
    let r = server.submit(&body);
    assert_eq!(r.status, 400, "{}", r.body_text());
    assert!(
        r.json()["errors"]["assetPath.location"].is_array(),
        "{}",
        r.body_text()
    );
}

fn a_refused_url_destination_is_a_400_on_asset_path() {
    let hooks = Receiver::start();
    let server = Server::start(&["--locations", "url,local", "--notify-deny-private"]);
    let mut body = hooks.submission("unused");
    body["assetPath"] = json!({"location": "url", "path": "http://10.0.0.1/a.jpg"});
    let r = server.submit(&body);
    assert_eq!(r.status, 400, "{}", r.body_text());
    assert!(
        r.json()["errors"]["assetPath.path"].is_array(),
        "{}",
        r.body_text()
    );
}

/// A server that accepts connections and never answers: a remote image that stalls.
fn stalling_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    addr
}

fn slow_remote_reads_do_not_hold_up_local_ones() {
    let hooks = Receiver::start();
    let stall = stalling_server();
    // One thread for blocking reads (--workers 1): remote fetches have their own bound and
    // never take it, so stalled URLs leave local validation alone.
    let server = Server::start(&["--locations", "local,url", "--workers", "1"]);
    server.write("ok.jpg", &jpeg_header(10, 10));
    for i in 0..4 {
        let mut body = hooks.submission("x");
        body["assetPath"] = json!({"location": "url", "path": format!("http://{stall}/{i}.jpg")});
        assert_eq!(server.submit(&body).status, 202);
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let started = std::time::Instant::now();
    let local = server.submit(&hooks.submission("ok.jpg"));
    let id = local.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(server.wait_final(&id)["state"], "success");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "a local job behind stalled remote reads took {:?}",
        started.elapsed()
    );
}

common::both_backends!(
    slow_remote_reads_do_not_hold_up_local_ones,
    url_asset_is_read_with_ranges_and_fails_on_dimensions,
    a_location_not_enabled_is_refused_with_400,
    a_refused_url_destination_is_a_400_on_asset_path,
);
