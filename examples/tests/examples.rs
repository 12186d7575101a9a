//! Runs the built example binaries (`cargo test` builds the package's examples) against real
//! inputs: files, loopback HTTP, and the full service. Every wait is bounded; every child
//! process is killed by a guard.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const DEADLINE: Duration = Duration::from_secs(10);
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// target/debug/deps/<test> → target/debug/examples/<name>.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join("examples").join(name);
    assert!(path.is_file(), "{} not built", path.display());
    path
}

/// A running child, killed on drop, its stdout read line by line on a thread.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn spawn(mut command: Command) -> Running {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn example");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (bounded) for a line satisfying `matches`, returning it.
    fn wait_line(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("no line {what} within {DEADLINE:?}; saw {:?}", self.seen),
            }
        }
    }

    /// Waits (bounded) for the next line starting with `prefix`; the JSON after it.
    fn wait_json(&mut self, prefix: &str) -> serde_json::Value {
        let line = self.wait_line(prefix, |l| l.starts_with(prefix));
        serde_json::from_str(&line[prefix.len()..]).expect("json after the prefix")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a command to completion within the deadline: (status, stdout).
fn run_bounded(command: Command) -> (ExitStatus, String) {
    let mut running = Running::spawn(command);
    let end = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = running.child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(Instant::now() < end, "example did not finish in time");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = Vec::new();
    while let Ok(line) = running.lines.recv_timeout(Duration::from_secs(2)) {
        out.push(line);
    }
    (status, out.join("\n"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A minimal HTTP/1.1 POST over loopback: (status, body).
fn post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String)> {
    request(addr, "POST", path, headers, body)
}

/// A minimal HTTP/1.1 exchange over loopback: (status, body).
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(DEADLINE))?;
    stream.set_write_timeout(Some(DEADLINE))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

fn signed_post(addr: SocketAddr, path: &str, id: &str, body: &str, secret: &str) -> u16 {
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let signature = standardwebhooks::Webhook::new(secret)
        .expect("secret")
        .sign(id, ts, body.as_bytes())
        .expect("sign");
    let ts = ts.to_string();
    let headers = [
        ("webhook-id", id),
        ("webhook-timestamp", ts.as_str()),
        ("webhook-signature", signature.as_str()),
    ];
    post(addr, path, &headers, body).expect("post").0
}

fn jpeg(path: &Path, width: u32, height: u32) {
    image::RgbImage::new(width, height)
        .save_with_format(path, image::ImageFormat::Jpeg)
        .expect("write jpeg");
}

/// Starts webhook_receiver on a free port and waits for its `listening on` line.
fn receiver(secret: Option<&str>) -> (Running, SocketAddr) {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut command = Command::new(example("webhook_receiver"));
    command.args(["--listen", &addr.to_string()]);
    if let Some(secret) = secret {
        command.args(["--secret", secret]);
    }
    let mut running = Running::spawn(command);
    let line = running.wait_line("listening", |l| l.starts_with("listening on "));
    assert_eq!(line, format!("listening on {addr}"));
    (running, addr)
}

#[test]
fn validate_files_prints_verdicts_and_exit_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    jpeg(&dir.path().join("ok.jpg"), 1500, 100);
    image::RgbImage::new(30, 20)
        .save_with_format(dir.path().join("ok.png"), image::ImageFormat::Png)
        .expect("png");
    jpeg(&dir.path().join("wide.jpg"), 2500, 100);
    image::RgbImage::new(8, 8)
        .save_with_format(dir.path().join("a.gif"), image::ImageFormat::Gif)
        .expect("gif");

    let run = |paths: &[&str]| {
        let mut command = Command::new(example("validate_files"));
        command.current_dir(dir.path()).args(paths);
        run_bounded(command)
    };

    let (status, out) = run(&["ok.jpg", "ok.png"]);
    assert_eq!(status.code(), Some(0), "{out}");
    assert_eq!(
        out,
        "ok.jpg: valid (jpeg 1500x100)\nok.png: valid (png 30x20)"
    );

    let (status, out) = run(&["ok.jpg", "wide.jpg", "a.gif", "missing.jpg"]);
    assert_eq!(status.code(), Some(1), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(lines[0], "ok.jpg: valid (jpeg 1500x100)");
    assert_eq!(
        lines[1],
        "wide.jpg: invalid: Image width exceeds maximum (2500/2000)"
    );
    assert!(
        lines[2].starts_with("a.gif: invalid: ") && lines[2].contains("gif"),
        "{out}"
    );
    assert_eq!(
        lines[3],
        "missing.jpg: invalid: File not found: missing.jpg"
    );

    let (status, _) = run(&[]);
    assert_eq!(status.code(), Some(2));
}

#[test]
fn webhook_receiver_verifies_deduplicates_and_prints() {
    let (mut rx, addr) = receiver(Some(SECRET));
    let start = r#"{"id":"00000000-0000-0000-0000-000000000001","state":"started"}"#;
    let done = r#"{"id":"00000000-0000-0000-0000-000000000001","state":"success"}"#;

    assert_eq!(
        signed_post(addr, "/print/onStart", "msg_1", start, SECRET),
        200
    );
    // A redelivery (same webhook-id) is acknowledged but not printed again.
    assert_eq!(
        signed_post(addr, "/print/onStart", "msg_1", start, SECRET),
        200
    );
    // Signed with another key, or not signed: refused.
    let other = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    assert_eq!(
        signed_post(addr, "/print/onSuccess", "msg_x", done, other),
        401
    );
    let unsigned = post(addr, "/print/onSuccess", &[("webhook-id", "msg_y")], done);
    assert_eq!(unsigned.expect("post").0, 401);
    assert_eq!(
        signed_post(addr, "/print/onSuccess", "msg_2", done, SECRET),
        200
    );

    rx.wait_line("onSuccess", |l| l.starts_with("/print/onSuccess "));
    assert_eq!(
        rx.seen,
        [
            format!("listening on {addr}"),
            format!("/print/onStart {start}"),
            format!("/print/onSuccess {done}"),
        ]
    );
}

#[test]
fn custom_notifier_logs_and_sends_every_event() {
    let (mut rx, hook) = receiver(None);
    let images = tempfile::tempdir().expect("tempdir");
    jpeg(&images.path().join("big.jpg"), 1200, 800);
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut command = Command::new(example("custom_notifier"));
    command
        .arg(addr.to_string())
        .current_dir(images.path())
        .env("RUST_LOG", "warn");
    let mut service = Running::spawn(command);

    let id = submit_when_up(addr, hook, "big.jpg");
    let started = service.wait_json("event onStart ");
    assert_eq!(started, serde_json::json!({"id": id, "state": "started"}));
    let failed = service.wait_json("event onFailure ");
    assert_eq!(failed, too_wide(&id));

    // The same events went out as webhooks, and their outcomes are what the job records.
    assert_eq!(rx.wait_json("/print/onStart "), started);
    assert_eq!(rx.wait_json("/print/onFailure "), failed);
    let end = Instant::now() + DEADLINE;
    loop {
        let (status, body) =
            request(addr, "GET", &format!("/assets/image/{id}"), &[], "").expect("get");
        assert_eq!(status, 200, "{body}");
        let job: serde_json::Value = serde_json::from_str(&body).expect("json");
        let delivered = job["notifications"]
            .as_array()
            .map(|all| all.iter().filter(|n| n["status"] == "delivered").count());
        if delivered == Some(2) {
            assert_eq!(job["state"], "failed", "{body}");
            break;
        }
        assert!(Instant::now() < end, "deliveries not recorded: {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The onFailure payload of the 1200×800 test image.
fn too_wide(id: &str) -> serde_json::Value {
    serde_json::json!({"id": id, "state": "failed", "errors": {"image": [
        "Image width exceeds maximum (1200/1000)"
    ]}})
}

/// Submits `path` with the seed's payload shape, retrying until the service listens; the id.
fn submit_when_up(addr: SocketAddr, hook: SocketAddr, path: &str) -> String {
    let payload = format!(
        r#"{{"assetPath": {{"location": "local", "path": "{path}"}},
            "notifications": {{"onStart": "http://{hook}/print/onStart",
                               "onSuccess": "http://{hook}/print/onSuccess",
                               "onFailure": "http://{hook}/print/onFailure"}}}}"#
    );
    let end = Instant::now() + DEADLINE;
    let (status, body) = loop {
        match post(addr, "/assets/image", &[], &payload) {
            Ok(answer) => break answer,
            Err(e) => {
                assert!(Instant::now() < end, "service not up: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    assert_eq!(status, 202, "{body}");
    let accepted: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(accepted["state"], "queued");
    accepted["id"].as_str().expect("id").to_owned()
}

#[test]
fn server_sends_signed_webhooks_to_the_receiver() {
    let (mut rx, hook) = receiver(Some(SECRET));
    let images = tempfile::tempdir().expect("tempdir");
    jpeg(&images.path().join("big.jpg"), 1200, 800);

    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut command = Command::new(example("server"));
    command
        .arg(addr.to_string())
        .current_dir(images.path())
        .env("IMGCHKR_WEBHOOK_SECRET", SECRET)
        .env("RUST_LOG", "warn");
    let _server = Running::spawn(command);
    let id = submit_when_up(addr, hook, "big.jpg");

    let started = rx.wait_json("/print/onStart ");
    assert_eq!(started, serde_json::json!({"id": id, "state": "started"}));
    assert_eq!(rx.wait_json("/print/onFailure "), too_wide(&id));
}

/// The quick start's images are exactly what `sample_images` writes, real JPEGs a decoder
/// reads, one valid and one failing both dimension checks with the seed's texts.
#[test]
fn sample_images_are_generated_real_jpegs() {
    let out = tempfile::tempdir().expect("tempdir");
    let mut command = Command::new(example("sample_images"));
    command.arg(out.path());
    let (status, printed) = run_bounded(command);
    assert!(status.success(), "{printed}");
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("images");
    for (name, width, height, errors) in [
        ("small.jpg", 640, 480, vec![]),
        (
            "large.jpg",
            1800,
            1200,
            vec![
                "Image width exceeds maximum (1800/1000)",
                "Image height exceeds maximum (1200/1000)",
            ],
        ),
    ] {
        let generated = std::fs::read(out.path().join(name)).expect("generated");
        let shipped = std::fs::read(committed.join(name)).expect("committed");
        assert!(
            generated == shipped,
            "examples/images/{name} is not what the generator writes: \
             cargo run --example sample_images -- examples/images"
        );
        assert!(shipped.len() < 16 * 1024, "{name}: {} bytes", shipped.len());
        let decoded = image::load_from_memory_with_format(&shipped, image::ImageFormat::Jpeg)
            .unwrap_or_else(|e| panic!("{name} does not decode: {e}"));
        assert_eq!((decoded.width(), decoded.height()), (width, height));
        let report = imgchkr_core::Report::from_bytes(&shipped, &imgchkr_core::Policy::default());
        assert_eq!(report.dimensions(), Some((width, height)));
        assert_eq!(report.error_texts(), errors, "{name}");
    }
}
