//! A scriptable HTTP/1.1 receiver on 127.0.0.1, written on a plain TcpListener so a test can
//! misbehave at the byte level (hang, trickle, send an endless body), and helpers to build
//! notifications and fast configurations.
#![allow(dead_code)] // each test binary uses its own subset

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use imgchkr_core::{AssetPath, Event, Job, JobId, NotificationUrls, notify::Notification};
use imgchkr_notify::WebhookConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use url::Url;

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// This status, with these extra headers, and an empty body.
    Status(u16, Vec<(&'static str, String)>),
    /// This status after a pause.
    Delayed(Duration, u16),
    /// Read the request, then say nothing (for 30 s at most).
    Hang,
    /// Send a status line and headers one byte every 50 ms, never finishing them.
    TrickleHead,
    /// This status and a 10000-byte body sent one byte every 50 ms.
    TrickleBody(u16),
    /// This status, then a chunked body that never ends (stops at 64 MiB or on error).
    EndlessBody(u16),
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    /// Header names lower-cased.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub at: std::time::Instant,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn header_map(&self) -> reqwest::header::HeaderMap {
        let mut map = reqwest::header::HeaderMap::new();
        for (k, v) in &self.headers {
            map.insert(
                reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map
    }
}

#[derive(Default)]
struct State {
    connections: AtomicUsize,
    requests: Mutex<Vec<Request>>,
    busy: AtomicUsize,
    max_busy: AtomicUsize,
}

/// The receiver: answers request `i` (0-based, across connections) with `script(i)`.
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl Receiver {
    pub async fn start(script: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let script: Arc<dyn Fn(usize) -> Reply + Send + Sync> = Arc::new(script);
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, Arc::clone(&shared), Arc::clone(&script)));
            }
        });
        Receiver { addr, state }
    }

    /// Always answers `status`.
    pub async fn always(status: u16) -> Receiver {
        Receiver::start(move |_| Reply::Status(status, vec![])).await
    }

    pub fn url(&self, path: &str) -> Url {
        format!("http://{}{path}", self.addr).parse().unwrap()
    }

    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.requests.lock().unwrap().clone()
    }

    /// The most requests handled at the same time.
    pub fn max_concurrent(&self) -> usize {
        self.state.max_busy.load(Ordering::SeqCst)
    }
}

async fn serve(
    mut stream: TcpStream,
    state: Arc<State>,
    script: Arc<dyn Fn(usize) -> Reply + Send + Sync>,
) {
    // One connection may carry several requests (keep-alive); bounded by the peer closing.
    for _ in 0..1000 {
        let Some(request) = read_request(&mut stream).await else {
            return;
        };
        let index = {
            let mut requests = state.requests.lock().unwrap();
            requests.push(request);
            requests.len() - 1
        };
        let busy = state.busy.fetch_add(1, Ordering::SeqCst) + 1;
        state.max_busy.fetch_max(busy, Ordering::SeqCst);
        let keep_going = answer(&mut stream, script(index)).await;
        state.busy.fetch_sub(1, Ordering::SeqCst);
        if !keep_going {
            return;
        }
    }
}

/// Answers; returns whether the connection can carry another request.
async fn answer(stream: &mut TcpStream, reply: Reply) -> bool {
    match reply {
        Reply::Status(status, headers) => write_status(stream, status, &headers).await,
        Reply::Delayed(pause, status) => {
            tokio::time::sleep(pause).await;
            write_status(stream, status, &[]).await
        }
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            false
        }
        Reply::TrickleHead => {
            let head = format!("HTTP/1.1 200 OK\r\nX-Slow: {}", "a".repeat(600));
            for byte in head.bytes() {
                if stream.write_all(&[byte]).await.is_err() {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            false
        }
        Reply::TrickleBody(status) => {
            let head = format!("HTTP/1.1 {status} Status\r\nContent-Length: 10000\r\n\r\n");
            if stream.write_all(head.as_bytes()).await.is_err() {
                return false;
            }
            for _ in 0..10000 {
                if stream.write_all(b"x").await.is_err() {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            false
        }
        Reply::EndlessBody(status) => {
            let head = format!("HTTP/1.1 {status} Status\r\nTransfer-Encoding: chunked\r\n\r\n");
            if stream.write_all(head.as_bytes()).await.is_err() {
                return false;
            }
            let chunk = format!("4000\r\n{}\r\n", "x".repeat(0x4000));
            for _ in 0..4096 {
                if stream.write_all(chunk.as_bytes()).await.is_err() {
                    return false;
                }
            }
            false
        }
    }
}

async fn write_status(stream: &mut TcpStream, status: u16, headers: &[(&str, String)]) -> bool {
    let mut head = format!("HTTP/1.1 {status} Status\r\nContent-Length: 0\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.is_ok()
}

/// Reads one request with a Content-Length body; `None` at EOF or on garbage.
async fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        let n = stream.read(&mut byte).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&byte[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).ok()?;
    let headers: HashMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut byte).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&byte[..n]);
    }
    body.truncate(length);
    Some(Request {
        headers,
        body,
        at: std::time::Instant::now(),
    })
}

/// A port on 127.0.0.1 with nothing listening.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// The `event` notification of a fresh job, sent to `url`.
pub fn notification(url: Url, event: Event) -> Notification {
    let job = Job::new(
        JobId::random(),
        AssetPath::Local {
            path: "images/small.jpg".into(),
        },
        NotificationUrls {
            on_start: url.clone(),
            on_success: url.clone(),
            on_failure: url,
        },
    );
    Notification::new(&job, event)
}

/// Short timeouts and waits, so failing receivers cost little test time.
pub fn fast() -> WebhookConfig {
    WebhookConfig {
        timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_millis(300),
        max_attempts: 3,
        deadline: Duration::from_secs(5),
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
        max_retry_after: Duration::from_secs(2),
        ..WebhookConfig::default()
    }
}

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const OTHER_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
