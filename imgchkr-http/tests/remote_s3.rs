//! `s3` locations end to end through the `imgchkr` binary: a real moto S3 server on 127.0.0.1
//! (`pip install 'moto[server]'`, as `.ci/run` does; a missing moto fails the test, it is never
//! skipped), a counting TCP proxy in front of it, `imgchkr serve --locations local,url,s3` with
//! `AWS_*` pointing at the proxy, and a webhook receiver recording what it gets.
//!
//! Every wait is bounded; everything listens on loopback; the moto server, the proxy threads
//! and the `imgchkr` processes end with the test (moto and imgchkr are killed on drop).

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Receiver, Server, real_jpeg, real_png, request, wait_within};
use serde_json::{Value, json};

const INSTALL: &str = "moto's S3 server is needed for the s3 end-to-end test: \
                       install it with `pip install 'moto[server]'` (python 3)";

/// The python interpreter: `$PYTHON` or `python3`.
fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `python3 -m moto.server` on a free loopback port; killed on drop.
struct Moto {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    fn start() -> Moto {
        let installed = Command::new(python())
            .args(["-c", "import moto.server, flask, werkzeug"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        assert!(
            installed.is_ok_and(|s| s.success()),
            "{INSTALL}; `{} -c 'import moto.server'` failed",
            python()
        );
        let port = free_port();
        let child = Command::new(python())
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{INSTALL}: cannot start {}: {e}", python()));
        let mut moto = Moto {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let addr = moto.addr;
        wait_within("moto to answer", Duration::from_secs(20), || {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("{INSTALL}: moto exited at start ({status})");
            }
            TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
            (request(addr, "GET", "/", &[], b"").status == 200).then_some(())
        });
        moto
    }

    /// Creates `bucket` (moto does not check signatures: plain requests do).
    fn bucket(&self, bucket: &str) {
        let r = request(self.addr, "PUT", &format!("/{bucket}"), &[], b"");
        assert_eq!(r.status, 200, "create bucket {bucket}: {}", r.body_text());
    }

    /// Puts `bytes` at `bucket/key`.
    fn put(&self, bucket: &str, key: &str, bytes: &[u8]) {
        let r = request(
            self.addr,
            "PUT",
            &format!("/{bucket}/{key}"),
            &[("content-type", "application/octet-stream")],
            bytes,
        );
        assert_eq!(r.status, 200, "put {bucket}/{key}: {}", r.body_text());
    }
}

/// The raw bytes a client sent on one connection.
type ConnLog = Arc<Mutex<Vec<u8>>>;

/// A TCP proxy on 127.0.0.1 in front of `upstream`: counts the bytes sent back to clients
/// and keeps the raw request bytes (HEAD/GET requests carry no body), per connection.
struct CountingProxy {
    addr: SocketAddr,
    down: Arc<AtomicU64>,
    requests: Arc<Mutex<Vec<ConnLog>>>,
}

impl CountingProxy {
    fn start(upstream: SocketAddr) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let down = Arc::new(AtomicU64::new(0));
        let requests: Arc<Mutex<Vec<ConnLog>>> = Arc::default();
        let (d, r) = (down.clone(), requests.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let log: ConnLog = Arc::default();
                r.lock().unwrap().push(log.clone());
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let d = d.clone();
                std::thread::spawn(move || {
                    pump(client, server, |chunk| log.lock().unwrap().extend(chunk))
                });
                std::thread::spawn(move || {
                    pump(s2, c2, |chunk| {
                        d.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    })
                });
            }
        });
        CountingProxy {
            addr,
            down,
            requests,
        }
    }

    /// Bytes sent from moto to clients so far (status lines, headers and bodies).
    fn bytes_down(&self) -> u64 {
        self.down.load(Ordering::Relaxed)
    }

    /// Every request line with its `range` header (or `-`), in order per connection.
    fn request_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for log in self.requests.lock().unwrap().iter() {
            let text = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
            for head in text.split("\r\n\r\n").filter(|h| !h.trim().is_empty()) {
                let mut lines = head.split("\r\n");
                let first = lines.next().unwrap_or_default();
                let mut parts = first.split(' ');
                let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                let range = lines
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("range"))
                    .map_or("-".to_owned(), |(_, v)| v.trim().to_owned());
                out.push(format!("{method} {path} {range}"));
            }
        }
        out
    }
}

/// Copies `from` to `to` until either side closes, showing each chunk to `seen`.
fn pump(mut from: TcpStream, mut to: TcpStream, mut seen: impl FnMut(&[u8])) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                seen(&buf[..n]);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// `imgchkr serve` with `extra` flags and S3 settings only from the `AWS_*` variables given
/// here (the machine's own never leak in); a [`Server`], so the common helpers apply.
fn serve_s3(endpoint: &str, extra: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_imgchkr"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--image-dir"])
        .arg(dir.path())
        .args(extra);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env_remove("IMGCHKR_REDIS")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT", endpoint)
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "info");
    Server::spawn(cmd, dir, None)
}

/// `jpeg` with an EXIF APP1 segment of `exif_len` (at most 65,533) payload bytes right after
/// SOI, its filler studded with `FF C0` look-alikes (a pattern scanner's trap).
fn with_exif(jpeg: &[u8], exif_len: usize) -> Vec<u8> {
    assert_eq!(&jpeg[..2], [0xFF, 0xD8]);
    let mut payload = b"Exif\0\0MM\x00\x2A\x00\x00\x00\x08\x00\x00\x00\x00\x00\x00".to_vec();
    let mut x = 0x9E37_79B9_u32;
    while payload.len() < exif_len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        if payload.len().is_multiple_of(509) {
            payload.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08, 0x00, 0x01, 0x00, 0x01]);
        } else {
            payload.push(x as u8);
        }
    }
    payload.truncate(exif_len);
    let mut out = vec![0xFF, 0xD8];
    out.extend(segment(0xE1, &payload));
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// `jpeg` grown to at least `total` bytes by COM segments right after SOI.
fn padded(jpeg: &[u8], total: usize) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8];
    while out.len() + jpeg.len() < total {
        let n = (total - out.len() - jpeg.len()).clamp(1, 60_000);
        out.extend(segment(0xFE, &vec![b'c'; n]));
    }
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// One marker segment: `FF marker`, the length, the payload.
fn segment(marker: u8, payload: &[u8]) -> Vec<u8> {
    let mut s = vec![0xFF, marker];
    s.extend_from_slice(&u16::try_from(payload.len() + 2).unwrap().to_be_bytes());
    s.extend_from_slice(payload);
    s
}

/// Submits an `s3` asset at `uri`; returns the job id (202 asserted).
fn submit_s3(server: &Server, hooks: &Receiver, uri: &str) -> String {
    let mut body = hooks.submission("unused");
    body["assetPath"] = json!({"location": "s3", "path": uri});
    let r = server.submit(&body);
    assert_eq!(r.status, 202, "{uri}: {}", r.body_text());
    assert_eq!(r.json()["state"], "queued");
    r.json()["id"].as_str().unwrap().to_owned()
}

/// Waits for the job's two webhooks and its final state; checks that `onStart` came first,
/// then the final event with `final_body`, and that `GET` agrees. Returns the job.
fn expect_verdict(server: &Server, hooks: &Receiver, id: &str, errors: Option<Value>) -> Value {
    let got = hooks.wait_hooks(id, 2);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].path, "onStart");
    assert_eq!(got[0].body, json!({"id": id, "state": "started"}));
    let job = server.wait_final(id);
    match errors {
        None => {
            assert_eq!(got[1].path, "onSuccess", "{:?}", got[1].body);
            assert_eq!(got[1].body, json!({"id": id, "state": "success"}));
            assert_eq!(job["state"], "success", "{job}");
            assert!(job.get("errors").is_none_or(Value::is_null), "{job}");
        }
        Some(errors) => {
            assert_eq!(got[1].path, "onFailure", "{:?}", got[1].body);
            assert_eq!(
                got[1].body,
                json!({"id": id, "state": "failed", "errors": errors})
            );
            assert_eq!(job["state"], "failed", "{job}");
            assert_eq!(job["errors"], errors, "{job}");
        }
    }
    job
}

/// The counter `imgchkr_remote_fetch_bytes_total{location="s3"}` (body bytes received).
fn s3_body_bytes(server: &Server) -> f64 {
    server.metric("imgchkr_remote_fetch_bytes_total{location=\"s3\"}")
}

#[test]
fn s3_assets_are_validated_end_to_end() {
    let started = Instant::now();
    let moto = Moto::start();
    let proxy = CountingProxy::start(moto.addr);
    eprintln!("moto ready in {:?}", started.elapsed());

    let exif = with_exif(&real_jpeg(640, 480), 60_000);
    let exif_len = exif.len();
    let oversized = padded(&real_jpeg(64, 64), 300_000);
    assert!(oversized.len() >= 300_000);
    moto.bucket("images");
    moto.bucket("other");
    moto.put("images", "exif/camera.jpg", &exif);
    moto.put("images", "oversized.jpg", &oversized);
    moto.put("images", "wide.jpg", &real_jpeg(1800, 1200));
    moto.put("images", "a.png", &real_png(10, 10));
    moto.put("other", "x.jpg", &real_jpeg(10, 10));

    let hooks = Receiver::start();
    let endpoint = format!("http://{}", proxy.addr);
    let server = serve_s3(
        &endpoint,
        &[
            "--locations",
            "local,url,s3",
            "--s3-buckets",
            "images",
            "--max-bytes",
            "250000",
        ],
    );

    // The 60 KB EXIF JPEG passes, read from its header only.
    let (bytes_before, wire_before) = (s3_body_bytes(&server), proxy.bytes_down());
    let requests_before = proxy.request_lines().len();
    let id = submit_s3(&server, &hooks, "s3://images/exif/camera.jpg");
    expect_verdict(&server, &hooks, &id, None);
    let body_bytes = s3_body_bytes(&server) - bytes_before;
    let wire_bytes = proxy.bytes_down() - wire_before;
    let requests: Vec<String> = proxy.request_lines().split_off(requests_before);
    eprintln!(
        "s3 end to end: object {exif_len} B; imgchkr received {body_bytes} body bytes, \
         {wire_bytes} bytes on the wire (headers included) in {} requests: {requests:?}",
        requests.len()
    );
    assert!(body_bytes > 0.0, "the metric counted nothing");
    assert!(body_bytes < 8.0 * 1024.0, "{body_bytes} body bytes");
    assert!(wire_bytes < 16 * 1024, "{wire_bytes} bytes on the wire");
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("HEAD /images/exif/camera.jpg")),
        "{requests:?}"
    );
    let gets: Vec<&String> = requests.iter().filter(|r| r.starts_with("GET ")).collect();
    assert!(!gets.is_empty(), "{requests:?}");
    for get in &gets {
        assert!(get.contains("bytes="), "an unranged GET: {get}");
    }

    // Over the byte limit: the size comes from HEAD, nothing more needed.
    let id = submit_s3(&server, &hooks, "s3://images/oversized.jpg");
    let size = oversized.len();
    expect_verdict(
        &server,
        &hooks,
        &id,
        Some(json!({"image": [format!("File size exceeds maximum ({size}/250000)")]})),
    );

    // Too wide and too tall.
    let id = submit_s3(&server, &hooks, "s3://images/wide.jpg");
    expect_verdict(
        &server,
        &hooks,
        &id,
        Some(json!({"image": ["Image width exceeds maximum (1800/1000)",
                              "Image height exceeds maximum (1200/1000)"]})),
    );

    // Another format, under the default policy.
    let id = submit_s3(&server, &hooks, "s3://images/a.png");
    expect_verdict(
        &server,
        &hooks,
        &id,
        Some(json!({"image": ["Not a JPEG (png)"]})),
    );

    // A missing key: the text of a missing local file, with the path as given.
    let id = submit_s3(&server, &hooks, "s3://images/missing/nothing.jpg");
    expect_verdict(
        &server,
        &hooks,
        &id,
        Some(json!({"image": ["File not found: s3://images/missing/nothing.jpg"]})),
    );
    // Same for a local file that is missing.
    let r = server.submit(&hooks.submission("nothing.jpg"));
    assert_eq!(r.status, 202, "{}", r.body_text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    expect_verdict(
        &server,
        &hooks,
        &id,
        Some(json!({"image": ["File not found: nothing.jpg"]})),
    );

    // A bucket outside `--s3-buckets`: 400 on assetPath.path, nothing queued, no request to
    // the store.
    let before = proxy.request_lines().len();
    let mut body = hooks.submission("unused");
    body["assetPath"] = json!({"location": "s3", "path": "s3://other/x.jpg"});
    let r = server.submit(&body);
    assert_eq!(r.status, 400, "{}", r.body_text());
    assert_eq!(
        r.json(),
        json!({"errors": {"assetPath.path": ["S3 bucket not allowed: other; allowed: images."]}})
    );
    assert_eq!(proxy.request_lines().len(), before);

    // Not an s3://bucket/key URI: 400 on assetPath.path, nothing queued.
    let mut body = hooks.submission("unused");
    body["assetPath"] = json!({"location": "s3", "path": "s3://B/"});
    let r = server.submit(&body);
    assert_eq!(r.status, 400, "{}", r.body_text());
    assert_eq!(
        r.json(),
        json!({"errors": {"assetPath.path": ["Enter a valid S3 location: s3://bucket/key."]}})
    );

    // A server without `s3` in `--locations` refuses the location with 400, as the contract
    // says for an unknown location; nothing is queued, no webhook is sent.
    let local_url = serve_s3(&endpoint, &["--locations", "local,url"]);
    let mut body = hooks.submission("unused");
    body["assetPath"] = json!({"location": "s3", "path": "s3://images/exif/camera.jpg"});
    let hooks_before = hooks.hooks().len();
    let r = local_url.submit(&body);
    assert_eq!(r.status, 400, "{}", r.body_text());
    assert_eq!(
        r.json(),
        json!({"errors": {"assetPath.location": ["Unsupported location \"s3\"; supported: local, url."]}})
    );
    let listed = local_url.get("/assets/").json();
    assert_eq!(listed["jobs"], json!([]), "{listed}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(hooks.hooks().len(), hooks_before);

    eprintln!("whole test in {:?}", started.elapsed());
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}
