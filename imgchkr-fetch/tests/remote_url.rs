//! `url` locations against a real HTTP server on 127.0.0.1 (a plain TcpListener, so a test can
//! serve ranges or ignore them, hang, redirect, and count every body byte it sent).

mod remote_common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use imgchkr_core::{AssetPath, Policy, Report};
use imgchkr_fetch::{DestinationPolicy, RemoteConfig, RemoteSources};
use remote_common::{frame_offset, jpeg, png};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// What the server answers for a path.
#[derive(Clone)]
enum Route {
    /// An object: `head`, then zero filler up to `len` bytes, generated as it is sent.
    File {
        head: Arc<Vec<u8>>,
        len: u64,
        /// Honour `Range` (206); otherwise always 200 with the whole object.
        ranges: bool,
        /// Send `Content-Length` on a 200 (otherwise the body ends when the connection closes).
        content_length: bool,
    },
    /// This status with an empty body.
    Status(u16),
    /// `302` to this location.
    Redirect(String),
    /// Read the request and say nothing (for 30 s at most).
    Hang,
    /// Hold the request until the test calls [`Server::release`] (10 s at most), then
    /// answer as this route.
    Stall(Box<Route>),
    /// These bytes as the whole response.
    Raw(&'static str),
}

impl Route {
    fn file(head: Vec<u8>) -> Route {
        let len = head.len() as u64;
        Route::File {
            head: Arc::new(head),
            len,
            ranges: true,
            content_length: true,
        }
    }

    fn no_ranges(self) -> Route {
        match self {
            Route::File { head, len, .. } => Route::File {
                head,
                len,
                ranges: false,
                content_length: true,
            },
            other => other,
        }
    }
}

/// A request as the server read it.
#[derive(Debug, Clone)]
struct Request {
    path: String,
    headers: Vec<(String, String)>,
}

impl Request {
    /// The value of header `name` (lower case), if it was sent once; panics if sent twice.
    fn header(&self, name: &str) -> Option<&str> {
        let mut values = self.headers.iter().filter(|(n, _)| n == name);
        let value = values.next().map(|(_, v)| v.as_str());
        assert!(values.next().is_none(), "{name} sent twice: {self:?}");
        value
    }
}

#[derive(Default)]
struct State {
    routes: Mutex<HashMap<String, Route>>,
    connections: AtomicUsize,
    body_bytes: AtomicU64,
    /// Every request: its path and its headers (names in lower case), in arrival order.
    requests: Mutex<Vec<Request>>,
    /// Requests read and not yet answered, and the most there ever were.
    waiting: AtomicUsize,
    most_waiting: AtomicUsize,
    /// Set by `release`: stalled requests are answered.
    released: tokio::sync::watch::Sender<bool>,
}

struct Server {
    addr: SocketAddr,
    state: Arc<State>,
}

impl Server {
    async fn start(ip: &str, routes: Vec<(&str, Route)>) -> Server {
        let socket = TcpSocket::new_v4().unwrap();
        // Small send buffers, so the count of bytes sent is close to what the client took.
        socket.set_send_buffer_size(16 * 1024).unwrap();
        socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
        let listener = socket.listen(64).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        state
            .routes
            .lock()
            .unwrap()
            .extend(routes.into_iter().map(|(p, r)| (p.to_owned(), r)));
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, Arc::clone(&shared)));
            }
        });
        Server { addr, state }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn sent(&self) -> u64 {
        self.state.body_bytes.load(Ordering::SeqCst)
    }

    fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// `"<path> <Range header or ->"` per request.
    fn requests(&self) -> Vec<String> {
        self.received()
            .iter()
            .map(|r| format!("{} {}", r.path, r.header("range").unwrap_or("-")))
            .collect()
    }

    /// Every request with all its headers.
    fn received(&self) -> Vec<Request> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Requests held unanswered right now.
    fn waiting(&self) -> usize {
        self.state.waiting.load(Ordering::SeqCst)
    }

    /// The most requests ever held unanswered at once.
    fn most_waiting(&self) -> usize {
        self.state.most_waiting.load(Ordering::SeqCst)
    }

    /// Answers every stalled request, now and later.
    fn release(&self) {
        self.state.released.send_replace(true);
    }
}

/// Answers one request per connection, then closes it.
async fn serve(mut stream: TcpStream, state: Arc<State>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        true
    })
    .await;
    if read != Ok(true) {
        return;
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let path = text.split(' ').nth(1).unwrap_or("/").to_owned();
    let headers: Vec<(String, String)> = text
        .split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .lines()
        .skip(1)
        .filter_map(|l| {
            let (name, value) = l.split_once(':')?;
            Some((name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        })
        .collect();
    let request = Request { path, headers };
    let range = request.header("range").map(str::to_owned);
    let path = request.path.clone();
    state.requests.lock().unwrap().push(request);
    let route = state.routes.lock().unwrap().get(&path).cloned();
    // Counted down before the answer is written, so a client that has its answer is never
    // still counted.
    let now_waiting = state.waiting.fetch_add(1, Ordering::SeqCst) + 1;
    state.most_waiting.fetch_max(now_waiting, Ordering::SeqCst);
    let route = match route {
        Some(Route::Stall(then)) => {
            let mut released = state.released.subscribe();
            let _ = tokio::time::timeout(
                Duration::from_secs(10),
                released.wait_for(|released| *released),
            )
            .await;
            Some(*then)
        }
        other => other,
    };
    state.waiting.fetch_sub(1, Ordering::SeqCst);
    let Some(route) = route else {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await;
        return;
    };
    match route {
        Route::Status(code) => {
            let head =
                format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = stream.write_all(head.as_bytes()).await;
        }
        Route::Redirect(to) => {
            let head = format!(
                "HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            let _ = stream.write_all(head.as_bytes()).await;
        }
        Route::Hang => tokio::time::sleep(Duration::from_secs(30)).await,
        Route::Stall(_) => {}
        Route::Raw(response) => {
            let _ = stream.write_all(response.as_bytes()).await;
        }
        Route::File {
            head: body_head,
            len,
            ranges,
            content_length,
        } => {
            let wanted = range.as_deref().filter(|_| ranges).and_then(parse_range);
            let (status, start, end, extra) = match wanted {
                Some((a, _)) if a >= len => {
                    let head = format!(
                        "HTTP/1.1 416 Range Not Satisfiable\r\ncontent-range: bytes */{len}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = stream.write_all(head.as_bytes()).await;
                    return;
                }
                Some((a, b)) => {
                    let b = b.min(len - 1);
                    (
                        "206 Partial Content",
                        a,
                        b + 1,
                        format!(
                            "content-range: bytes {a}-{b}/{len}\r\ncontent-length: {}\r\n",
                            b + 1 - a
                        ),
                    )
                }
                None if content_length => ("200 OK", 0, len, format!("content-length: {len}\r\n")),
                None => ("200 OK", 0, len, String::new()),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\ncontent-type: image/jpeg\r\naccept-ranges: {}\r\n{extra}connection: close\r\n\r\n",
                if ranges { "bytes" } else { "none" }
            );
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let mut at = start;
            let mut chunk = Vec::with_capacity(16 * 1024);
            while at < end {
                let n = (end - at).min(16 * 1024);
                chunk.clear();
                for i in at..at + n {
                    chunk.push(body_head.get(i as usize).copied().unwrap_or(0));
                }
                if stream.write_all(&chunk).await.is_err() {
                    return;
                }
                state.body_bytes.fetch_add(n, Ordering::SeqCst);
                at += n;
            }
            let _ = stream.shutdown().await;
        }
    }
}

fn parse_range(value: &str) -> Option<(u64, u64)> {
    let (a, b) = value.strip_prefix("bytes=")?.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn fast_config() -> RemoteConfig {
    let mut config = RemoteConfig::default();
    config.timeout = Duration::from_secs(10);
    config.request_timeout = Duration::from_secs(5);
    config.connect_timeout = Duration::from_secs(2);
    config
}

async fn check(config: RemoteConfig, url: &str) -> Report {
    let sources = RemoteSources::new(config).unwrap();
    sources
        .validate(&AssetPath::Url { path: url.into() }, &Policy::default())
        .await
}

/// A 800×600 JPEG with a 60 KB EXIF block and a 40 KB ICC profile before its frame header,
/// and 200 KB of scan data after it.
fn exif_jpeg() -> Vec<u8> {
    jpeg(800, 600, 60_000, 40_000, 200_000)
}

#[tokio::test]
async fn with_ranges_only_the_header_is_read() {
    let image = exif_jpeg();
    let total = image.len() as u64;
    let server = Server::start("127.0.0.1", vec![("/a.jpg", Route::file(image.clone()))]).await;
    let report = check(fast_config(), &server.url("/a.jpg")).await;
    assert!(report.is_valid(), "{:?}", report.errors);
    assert_eq!(report.size, Some(total));
    assert_eq!(report.dimensions(), Some((800, 600)));
    let requests = server.requests();
    eprintln!(
        "ranges: image {total} B, frame header at {}, client read {} B, server sent {} B in {} requests: {requests:?}",
        frame_offset(&image),
        report.bytes_read,
        server.sent(),
        requests.len()
    );
    assert!(report.bytes_read < 8 * 1024, "{}", report.bytes_read);
    assert!(server.sent() < 8 * 1024, "{}", server.sent());
    assert!(requests.len() <= 4, "{requests:?}");
    // Every request asked for a byte range of the identity representation: the first for the
    // first 2 KiB, each later one for a range further on.
    let received = server.received();
    assert_eq!(received[0].header("range"), Some("bytes=0-2047"));
    let mut last_start = None;
    for request in &received {
        assert_eq!(request.path, "/a.jpg");
        assert_eq!(
            request.header("accept-encoding"),
            Some("identity"),
            "{request:?}"
        );
        let range = request.header("range").expect("a Range header");
        let (start, end) = parse_range(range).unwrap_or_else(|| panic!("Range {range:?}"));
        assert!(start <= end && end < total, "{range:?}");
        assert!(last_start < Some(start), "ranges go forward: {received:?}");
        last_start = Some(start);
    }
}

#[tokio::test]
async fn without_ranges_the_stream_stops_once_the_header_is_read() {
    let image = jpeg(800, 600, 60_000, 40_000, 2_000_000);
    let total = image.len() as u64;
    let frame = frame_offset(&image) as u64;
    let server = Server::start(
        "127.0.0.1",
        vec![("/a.jpg", Route::file(image).no_ranges())],
    )
    .await;
    let report = check(fast_config(), &server.url("/a.jpg")).await;
    assert!(report.is_valid(), "{:?}", report.errors);
    assert_eq!(report.size, Some(total));
    // Give the server a moment to notice the closed connection before counting.
    tokio::time::sleep(Duration::from_millis(200)).await;
    eprintln!(
        "no ranges: image {total} B, frame header at {frame}, client read {} B, server sent {} B",
        report.bytes_read,
        server.sent()
    );
    assert!(report.bytes_read >= frame);
    assert!(
        report.bytes_read < frame + 64 * 1024,
        "{}",
        report.bytes_read
    );
    assert!(server.sent() < total / 2, "{}", server.sent());
}

#[tokio::test]
async fn without_ranges_or_length_the_body_is_read_to_its_end_for_the_size() {
    let image = jpeg(640, 480, 0, 0, 5_000);
    let total = image.len() as u64;
    let route = Route::File {
        head: Arc::new(image),
        len: total,
        ranges: false,
        content_length: false,
    };
    let server = Server::start("127.0.0.1", vec![("/a.jpg", route)]).await;
    let report = check(fast_config(), &server.url("/a.jpg")).await;
    assert!(report.is_valid(), "{:?}", report.errors);
    assert_eq!((report.size, report.bytes_read), (Some(total), total));
}

#[tokio::test]
async fn a_50_mb_object_fails_the_size_check_after_a_few_kib() {
    let head = jpeg(800, 600, 0, 0, 0);
    let len = 50 * 1024 * 1024;
    let file = |ranges, content_length| Route::File {
        head: Arc::new(head.clone()),
        len,
        ranges,
        content_length,
    };
    let server = Server::start(
        "127.0.0.1",
        vec![
            ("/big.jpg", file(true, true)),
            ("/big-stream.jpg", file(false, true)),
            ("/big-endless.jpg", file(false, false)),
        ],
    )
    .await;
    let report = check(fast_config(), &server.url("/big.jpg")).await;
    assert_eq!(
        report.error_texts(),
        ["File size exceeds maximum (52428800/10485760)"]
    );
    assert_eq!(report.dimensions(), Some((800, 600)));
    let ranged_sent = server.sent();
    eprintln!(
        "50 MB, ranges: client read {} B, server sent {ranged_sent} B",
        report.bytes_read
    );
    assert!(report.bytes_read <= 4096 && ranged_sent <= 4096);

    let report = check(fast_config(), &server.url("/big-stream.jpg")).await;
    assert_eq!(
        report.error_texts(),
        ["File size exceeds maximum (52428800/10485760)"]
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stream_sent = server.sent() - ranged_sent;
    eprintln!(
        "50 MB, no ranges: client read {} B, server sent {stream_sent} B",
        report.bytes_read
    );
    assert!(report.bytes_read < 256 * 1024, "{}", report.bytes_read);
    assert!(stream_sent < 8 * 1024 * 1024, "{stream_sent}");

    // No ranges and no length: read up to the limit + 1, never the whole 50 MB.
    let report = check(fast_config(), &server.url("/big-endless.jpg")).await;
    assert_eq!(
        report.error_texts(),
        ["File size exceeds maximum (10485761/10485760)"]
    );
    assert_eq!(report.bytes_read, 10 * 1024 * 1024 + 1);
}

#[tokio::test]
async fn a_png_is_not_a_jpeg() {
    let server = Server::start("127.0.0.1", vec![("/a.png", Route::file(png(10, 10)))]).await;
    let report = check(fast_config(), &server.url("/a.png")).await;
    assert_eq!(report.error_texts(), ["Not a JPEG (png)"]);
    let server = Server::start("127.0.0.1", vec![("/empty", Route::file(Vec::new()))]).await;
    let report = check(fast_config(), &server.url("/empty")).await;
    assert_eq!(report.error_texts(), ["Not a JPEG (unknown)"]);
    assert_eq!(report.size, Some(0));
}

#[tokio::test]
async fn statuses_map_to_the_contract_texts() {
    let server = Server::start(
        "127.0.0.1",
        vec![
            ("/gone", Route::Status(410)),
            ("/forbidden", Route::Status(403)),
            ("/auth", Route::Status(401)),
            ("/broken", Route::Status(500)),
            ("/teapot", Route::Status(418)),
            (
                "/bad-range",
                Route::Raw(
                    "HTTP/1.1 206 Partial Content\r\ncontent-range: bytes 0-10/*\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                ),
            ),
            (
                "/wrong-range",
                Route::Raw(
                    "HTTP/1.1 206 Partial Content\r\ncontent-range: bytes 5-6/100\r\ncontent-length: 2\r\nconnection: close\r\n\r\nab",
                ),
            ),
        ],
    )
    .await;
    let cases = [
        ("/missing.jpg", "File not found: {url}".to_owned()),
        ("/gone", "File not found: {url}".to_owned()),
        ("/forbidden", "Permission denied: {url}".to_owned()),
        ("/auth", "Permission denied: {url}".to_owned()),
        ("/broken", "Cannot fetch {url}: HTTP 500".to_owned()),
        ("/teapot", "Cannot fetch {url}: HTTP 418".to_owned()),
        (
            "/bad-range",
            "Cannot fetch {url}: invalid Content-Range: \"bytes 0-10/*\"".to_owned(),
        ),
        (
            "/wrong-range",
            "Cannot fetch {url}: invalid Content-Range: a range other than the one asked for"
                .to_owned(),
        ),
    ];
    for (path, expected) in cases {
        let url = server.url(path);
        let report = check(fast_config(), &url).await;
        assert_eq!(report.error_texts(), [expected.replace("{url}", &url)]);
        assert_eq!((report.size, report.probed), (None, None));
    }
}

#[tokio::test]
async fn connection_refused_is_cannot_fetch() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/a.jpg", listener.local_addr().unwrap());
    drop(listener);
    let report = check(fast_config(), &url).await;
    assert_eq!(
        report.error_texts(),
        [format!("Cannot fetch {url}: connection refused")]
    );
}

#[tokio::test]
async fn a_hanging_server_times_out_within_bound() {
    let server = Server::start("127.0.0.1", vec![("/hang", Route::Hang)]).await;
    // The per-request timeout…
    let mut config = fast_config();
    config.request_timeout = Duration::from_millis(400);
    let started = Instant::now();
    let report = check(config, &server.url("/hang")).await;
    let elapsed = started.elapsed();
    assert_eq!(
        report.error_texts(),
        [format!("Cannot fetch {}: timeout", server.url("/hang"))]
    );
    assert!(
        elapsed >= Duration::from_millis(400) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    // …and the overall one.
    let mut config = fast_config();
    config.timeout = Duration::from_millis(400);
    let started = Instant::now();
    let report = check(config, &server.url("/hang")).await;
    assert_eq!(
        report.error_texts(),
        [format!("Cannot fetch {}: timeout", server.url("/hang"))]
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn redirects_are_followed_within_the_bound() {
    let image = exif_jpeg();
    let server = Server::start(
        "127.0.0.1",
        vec![
            ("/old.jpg", Route::Redirect("/a.jpg".into())),
            ("/older.jpg", Route::Redirect("/old.jpg".into())),
            ("/a.jpg", Route::file(image)),
        ],
    )
    .await;
    let mut config = fast_config();
    config.max_redirects = 1;
    let report = check(config.clone(), &server.url("/old.jpg")).await;
    assert!(report.is_valid(), "{:?}", report.errors);
    // The redirect is followed once; later ranges go straight to where it led.
    let requests = server.requests();
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.starts_with("/old.jpg"))
            .count(),
        1,
        "{requests:?}"
    );
    assert!(
        requests.iter().filter(|r| r.starts_with("/a.jpg")).count() >= 2,
        "{requests:?}"
    );

    let url = server.url("/older.jpg");
    let report = check(config, &url).await;
    assert_eq!(
        report.error_texts(),
        [format!(
            "Cannot fetch {url}: too many redirects (more than 1)"
        )]
    );
    let mut config = fast_config();
    config.max_redirects = 0;
    let url = server.url("/old.jpg");
    let report = check(config, &url).await;
    assert_eq!(
        report.error_texts(),
        [format!(
            "Cannot fetch {url}: too many redirects (more than 0)"
        )]
    );
}

#[tokio::test]
async fn deny_private_never_connects_to_loopback() {
    let server = Server::start("127.0.0.1", vec![("/a.jpg", Route::file(exif_jpeg()))]).await;
    let mut config = fast_config();
    config.destinations = DestinationPolicy::new(Vec::new(), true);
    let url = server.url("/a.jpg");
    let report = check(config.clone(), &url).await;
    assert_eq!(
        report.error_texts(),
        [format!(
            "Cannot fetch {url}: destination not allowed: 127.0.0.1 is a loopback address"
        )]
    );
    // A name that resolves to loopback is refused by the resolver, before any connection.
    let by_name = format!("http://localhost:{}/a.jpg", server.addr.port());
    let report = check(config, &by_name).await;
    let text = &report.error_texts()[0];
    assert!(
        text.starts_with(&format!(
            "Cannot fetch {by_name}: destination not allowed: localhost resolves to "
        )),
        "{text}"
    );
    assert_eq!(server.connections(), 0);
    assert_eq!(report.bytes_read, 0);

    // The same policy at submission time.
    let mut config = fast_config();
    config.destinations = DestinationPolicy::new(Vec::new(), true);
    let sources = RemoteSources::new(config).unwrap();
    assert_eq!(
        sources.check_url(&url).await,
        Err("URL not allowed: 127.0.0.1 is a loopback address".into())
    );
    assert!(sources.check_url(&by_name).await.is_err());
    assert_eq!(sources.check_url("http://8.8.8.8/a.jpg").await, Ok(()));
    let open = RemoteSources::new(fast_config()).unwrap();
    assert_eq!(open.check_url(&url).await, Ok(()));
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn a_redirect_to_a_forbidden_destination_is_not_followed() {
    // 127.0.0.1 is allowed by range; the redirect leads to 127.0.0.2, which is not.
    let target = Server::start("127.0.0.2", vec![("/a.jpg", Route::file(exif_jpeg()))]).await;
    let origin = Server::start(
        "127.0.0.1",
        vec![("/old.jpg", Route::Redirect(target.url("/a.jpg")))],
    )
    .await;
    let mut config = fast_config();
    config.destinations = DestinationPolicy::new(vec!["127.0.0.1/32".parse().unwrap()], true);
    let url = origin.url("/old.jpg");
    let report = check(config, &url).await;
    assert_eq!(
        report.error_texts(),
        [format!(
            "Cannot fetch {url}: destination not allowed: 127.0.0.2 is a loopback address"
        )]
    );
    assert_eq!(origin.connections(), 1);
    assert_eq!(target.connections(), 0);
}

#[tokio::test]
async fn reads_per_asset_are_capped() {
    let server = Server::start("127.0.0.1", vec![("/a.jpg", Route::file(exif_jpeg()))]).await;
    let mut config = fast_config();
    config.max_reads = 2;
    let url = server.url("/a.jpg");
    let report = check(config, &url).await;
    assert_eq!(
        report.error_texts(),
        [format!(
            "Cannot fetch {url}: the header needs more than 2 range reads"
        )]
    );
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn other_locations_and_bad_urls_are_cannot_fetch() {
    let sources = RemoteSources::new(fast_config()).unwrap();
    let local = AssetPath::Local {
        path: "a.jpg".into(),
    };
    let report = sources.validate(&local, &Policy::default()).await;
    assert_eq!(
        report.error_texts(),
        ["Cannot fetch a.jpg: not a remote location"]
    );
    let ftp = AssetPath::Url {
        path: "ftp://x/a.jpg".into(),
    };
    let report = sources.validate(&ftp, &Policy::default()).await;
    assert_eq!(
        report.error_texts(),
        ["Cannot fetch ftp://x/a.jpg: not an absolute http or https URL"]
    );
}

/// Waits, at most 5 s, until `ready` holds.
async fn wait_until(what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ready() {
        assert!(Instant::now() < deadline, "waited 5 s for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Remote fetches are bounded by the sources' own `max_concurrent`: slow servers hold at most
/// that many fetches, further ones wait for a place (no connection meanwhile), and nothing of
/// the caller's is needed for that (the caller here holds no semaphore at all).
#[tokio::test]
async fn no_more_than_max_concurrent_fetches_run_at_once() {
    let image = jpeg(640, 480, 0, 0, 1_000);
    let server = Server::start(
        "127.0.0.1",
        vec![
            (
                "/slow.jpg",
                Route::Stall(Box::new(Route::file(image.clone()))),
            ),
            ("/fast.jpg", Route::file(image)),
        ],
    )
    .await;
    let mut config = fast_config();
    config.max_concurrent = 2;
    let sources = RemoteSources::new(config).unwrap();
    let validate = |path: &str| {
        let sources = sources.clone();
        let asset = AssetPath::Url {
            path: server.url(path),
        };
        tokio::spawn(async move { sources.validate(&asset, &Policy::default()).await })
    };

    let slow: Vec<_> = (0..4).map(|_| validate("/slow.jpg")).collect();
    wait_until("two stalled requests", || server.waiting() >= 2).await;
    // Time for the two others to connect, were they allowed to.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.waiting(), 2, "stalled requests at once");
    assert_eq!(server.requests().len(), 2, "{:?}", server.requests());
    let fast = validate("/fast.jpg");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!fast.is_finished(), "a fetch ran past the limit");
    assert_eq!(server.requests().len(), 2, "{:?}", server.requests());

    server.release();
    for task in slow.into_iter().chain([fast]) {
        let report = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("every fetch ends once the server answers")
            .unwrap();
        assert!(report.is_valid(), "{:?}", report.errors);
    }
    assert_eq!(server.requests().len(), 5, "{:?}", server.requests());
    assert_eq!(server.most_waiting(), 2);
}

/// A fetch waits for a place within its own timeout: the wait and the fetch share one
/// deadline, so a queue of slow fetches cannot hold a further one for longer.
#[tokio::test]
async fn waiting_for_a_fetch_place_is_bounded_by_the_timeout() {
    let server = Server::start(
        "127.0.0.1",
        vec![("/slow.jpg", Route::Stall(Box::new(Route::Status(500))))],
    )
    .await;
    let mut config = fast_config();
    config.max_concurrent = 1;
    config.timeout = Duration::from_millis(500);
    let sources = RemoteSources::new(config).unwrap();
    let url = server.url("/slow.jpg");
    let asset = AssetPath::Url { path: url.clone() };
    let first = {
        let (sources, asset) = (sources.clone(), asset.clone());
        tokio::spawn(async move { sources.validate(&asset, &Policy::default()).await })
    };
    wait_until("the first request", || server.waiting() == 1).await;
    let started = Instant::now();
    let second = {
        let (sources, asset) = (sources.clone(), asset.clone());
        tokio::spawn(async move { sources.validate(&asset, &Policy::default()).await })
    };
    // Well within both deadlines: the second waits for the first's place, unsent.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.requests().len(), 1, "{:?}", server.requests());
    let timeout = [format!("Cannot fetch {url}: timeout")];
    assert_eq!(second.await.unwrap().error_texts(), timeout);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(first.await.unwrap().error_texts(), timeout);
    server.release();
}
