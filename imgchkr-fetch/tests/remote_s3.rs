//! `s3` locations against moto's S3 server on 127.0.0.1 (`pip install 'moto[server]'`).
//!
//! One test starts one moto server (killed when the test ends, pass or fail) and runs every
//! case against it; the python interpreter is `$PYTHON` or `python3`.

mod remote_common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use imgchkr_core::{AssetPath, Policy, Report};
use imgchkr_fetch::{RemoteConfig, RemoteSources};
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use remote_common::{frame_offset, jpeg, png};

const INSTALL: &str = "moto's S3 server is needed for the s3 location tests: \
                       install it with `pip install 'moto[server]'` (python 3)";

/// The moto server; killed on drop.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

impl Moto {
    async fn start() -> Moto {
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
        let port = {
            let probe = TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let child = Command::new(python())
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{INSTALL}: cannot start {}: {e}", python()));
        let mut moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        // Ready when it answers; bounded.
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("{INSTALL}: moto exited at start ({status})");
            }
            let ready = client
                .get(format!("{}/", moto.endpoint))
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return moto;
            }
            assert!(Instant::now() < deadline, "moto did not answer within 20 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn options(&self) -> Vec<(String, String)> {
        [
            ("aws_access_key_id", "test"),
            ("aws_secret_access_key", "test"),
            ("aws_region", "us-east-1"),
            ("aws_endpoint", self.endpoint.as_str()),
            ("aws_allow_http", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// Creates `bucket` and puts `objects` in it.
    async fn bucket(&self, bucket: &str, objects: &[(&str, Vec<u8>)]) {
        let created = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .put(format!("{}/{bucket}", self.endpoint))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .unwrap();
        assert!(created.status().is_success(), "{}", created.status());
        let mut builder = AmazonS3Builder::new().with_bucket_name(bucket);
        for (key, value) in self.options() {
            builder = builder.with_config(key.parse().unwrap(), value);
        }
        let store = Arc::new(builder.build().unwrap());
        for (key, bytes) in objects {
            store
                .put(&Path::from(*key), bytes.clone().into())
                .await
                .unwrap();
        }
    }
}

fn config(options: Vec<(String, String)>) -> RemoteConfig {
    let mut config = RemoteConfig::default();
    config.timeout = Duration::from_secs(10);
    config.request_timeout = Duration::from_secs(5);
    config.connect_timeout = Duration::from_secs(2);
    // Only what the test says: the machine's AWS_* variables must not leak in.
    config.s3_from_env = false;
    config.s3_options = options;
    config
}

async fn check(sources: &RemoteSources, uri: &str) -> Report {
    sources
        .validate(&AssetPath::S3 { path: uri.into() }, &Policy::default())
        .await
}

#[tokio::test]
async fn s3_objects_are_validated_from_their_headers() {
    let started = Instant::now();
    let moto = Moto::start().await;
    eprintln!("moto ready in {:?}", started.elapsed());
    let exif = jpeg(800, 600, 60_000, 40_000, 200_000);
    let frame = frame_offset(&exif);
    let exif_len = exif.len() as u64;
    moto.bucket(
        "images",
        &[
            ("ok/small.jpg", jpeg(640, 480, 0, 0, 3_000)),
            ("exif.jpg", exif),
            ("big-dims.jpg", jpeg(1800, 1200, 0, 0, 1_000)),
            ("a.png", png(10, 10)),
        ],
    )
    .await;
    moto.bucket("other", &[("x.jpg", jpeg(10, 10, 0, 0, 10))])
        .await;
    let sources = RemoteSources::new(config(moto.options())).unwrap();

    let report = check(&sources, "s3://images/ok/small.jpg").await;
    assert!(report.is_valid(), "{:?}", report.errors);
    assert_eq!(report.dimensions(), Some((640, 480)));

    let report = check(&sources, "s3://images/exif.jpg").await;
    assert!(report.is_valid(), "{:?}", report.errors);
    assert_eq!(report.size, Some(exif_len));
    eprintln!(
        "s3: image {exif_len} B, frame header at {frame}, read {} B",
        report.bytes_read
    );
    assert!(report.bytes_read < 8 * 1024, "{}", report.bytes_read);

    let report = check(&sources, "s3://images/big-dims.jpg").await;
    assert_eq!(
        report.error_texts(),
        [
            "Image width exceeds maximum (1800/1000)",
            "Image height exceeds maximum (1200/1000)"
        ]
    );
    let report = check(&sources, "s3://images/a.png").await;
    assert_eq!(report.error_texts(), ["Not a JPEG (png)"]);

    let report = check(&sources, "s3://images/missing.jpg").await;
    assert_eq!(
        report.error_texts(),
        ["File not found: s3://images/missing.jpg"]
    );
    let report = check(&sources, "s3://no-such-bucket/a.jpg").await;
    assert_eq!(
        report.error_texts(),
        ["File not found: s3://no-such-bucket/a.jpg"]
    );

    // A second store (bucket) from the same sources.
    let report = check(&sources, "s3://other/x.jpg").await;
    assert!(report.is_valid(), "{:?}", report.errors);

    // The bucket allowlist.
    let mut only_images = config(moto.options());
    only_images.s3_buckets = vec!["images".into()];
    let sources = RemoteSources::new(only_images).unwrap();
    let report = check(&sources, "s3://other/x.jpg").await;
    assert_eq!(
        report.error_texts(),
        [
            "Cannot fetch s3://other/x.jpg: destination not allowed: bucket other is not in the allowlist"
        ]
    );
    assert!(check(&sources, "s3://images/ok/small.jpg").await.is_valid());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_is_cannot_fetch() {
    let port = {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let sources = RemoteSources::new(config(endpoint_options(port))).unwrap();
    let started = Instant::now();
    let report = check(&sources, "s3://images/a.jpg").await;
    assert_eq!(
        report.error_texts(),
        ["Cannot fetch s3://images/a.jpg: connection refused"]
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// `object_store` settings for an endpoint on 127.0.0.1:`port`.
fn endpoint_options(port: u16) -> Vec<(String, String)> {
    [
        ("aws_access_key_id", "test".to_owned()),
        ("aws_secret_access_key", "test".to_owned()),
        ("aws_region", "us-east-1".to_owned()),
        ("aws_endpoint", format!("http://127.0.0.1:{port}")),
        ("aws_allow_http", "true".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// How the misbehaving endpoint answers.
#[derive(Clone, Copy)]
enum Misbehave {
    /// `HEAD`: a 5000-byte object; ranged `GET`: `400` with an S3 error whose message happens
    /// to contain the word "timeout".
    ErrorMentioningTimeout,
    /// Reads the request and closes the connection without a word.
    Close,
}

/// An S3 endpoint on 127.0.0.1 that answers every request as `how` says (one thread per
/// connection, each bounded by a 5 s read timeout); serves until the test process ends.
fn misbehaving_endpoint(how: Misbehave) -> u16 {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = match (how, head.starts_with(b"HEAD ")) {
                    (Misbehave::Close, _) => return,
                    (Misbehave::ErrorMentioningTimeout, true) => "HTTP/1.1 200 OK\r\n\
                         content-length: 5000\r\n\
                         last-modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
                         etag: \"1\"\r\n\r\n"
                        .to_owned(),
                    (Misbehave::ErrorMentioningTimeout, false) => {
                        let body = "<Error><Code>InvalidArgument</Code>\
                                    <Message>Unsupported header x-amz-timeout</Message></Error>";
                        format!(
                            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/xml\r\n\
                             content-length: {}\r\n\r\n{body}",
                            body.len()
                        )
                    }
                };
                let _ = stream.write_all(answer.as_bytes());
            });
        }
    });
    port
}

/// Failures are told by their type, not their words: a `400` whose text mentions a timeout
/// is not a timeout, and a connection closed mid-request gets the same short text as for
/// `url` locations and webhooks.
#[tokio::test]
async fn s3_failures_are_classified_by_kind_not_words() {
    let port = misbehaving_endpoint(Misbehave::ErrorMentioningTimeout);
    let sources = RemoteSources::new(config(endpoint_options(port))).unwrap();
    let report = check(&sources, "s3://images/a.jpg").await;
    let text = &report.error_texts()[0];
    assert_ne!(text, "Cannot fetch s3://images/a.jpg: timeout");
    assert!(
        text.starts_with("Cannot fetch s3://images/a.jpg: ")
            && text.contains("400 Bad Request")
            && text.contains("InvalidArgument"),
        "{text}"
    );

    let port = misbehaving_endpoint(Misbehave::Close);
    let sources = RemoteSources::new(config(endpoint_options(port))).unwrap();
    let started = Instant::now();
    let report = check(&sources, "s3://images/a.jpg").await;
    assert_eq!(
        report.error_texts(),
        ["Cannot fetch s3://images/a.jpg: connection closed before the response"]
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}
