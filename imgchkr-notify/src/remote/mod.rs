//! Remote image locations: `url` (HTTP(S) with `Range` requests) and `s3` (an S3-compatible
//! store through `object_store`), read the imgchkr way: only the header bytes the probe asks
//! for, never the whole image.
//!
//! # `url`
//! The first request is `GET` with `Range: bytes=0-2047`; a `206` gives the object's total size
//! (from `Content-Range`) and its first bytes, and each further range the probe needs (after a
//! 60 KB EXIF block, say) is one more ranged `GET` of at least 1 KiB. A server that ignores
//! ranges (`200`) is read as a stream: the body is fed to the probe as it arrives and dropped
//! as soon as the probe has its answer when `Content-Length` gave the size; without a
//! `Content-Length` the body is read to its end to learn the size, and never more than the size
//! limit + 1 bytes in any case (an image that is still going then is reported as
//! `File size exceeds maximum (<limit + 1>/<limit>)`, the size being a lower bound).
//!
//! Requests go through their own client with the webhooks' destination policy (allowlist and
//! `deny_private`, enforced by the filtering resolver on the addresses connected to, and on IP
//! literals before any connection), no system proxy, `Accept-Encoding: identity`, a connect
//! timeout, a per-request timeout (status and body), an overall timeout per asset, at most
//! `max_redirects` redirects (each one judged by the policy again; only http and https) and at
//! most `max_reads` range reads per asset.
//!
//! Outcomes: `404`/`410` → `File not found: <url>`; `401`/`403` → `Permission denied: <url>`;
//! a refused destination, connection refused, DNS failure, timeout, any other status and an
//! invalid `Content-Range` → `Cannot fetch <url>: <reason>`; otherwise the policy's size,
//! format and dimension checks, the size being the object's total size.
//!
//! # `s3`
//! `s3://bucket/key`, read through `object_store`'s `AmazonS3` (one store per bucket, cached):
//! `HEAD` for the size, then one ranged `GET` per range the probe needs. Credentials, region
//! and endpoint come from the environment as the AWS tools read it ([`RemoteConfig::s3_from_env`],
//! `AmazonS3Builder::from_env`): `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`, `AWS_REGION` / `AWS_DEFAULT_REGION` (default `us-east-1`),
//! `AWS_ENDPOINT_URL` (an S3-compatible store: MinIO, moto, R2…), `AWS_ALLOW_HTTP=true` (a plain
//! http endpoint), `AWS_VIRTUAL_HOSTED_STYLE_REQUEST`, and the web-identity / container
//! credential variables (`AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_ARN`,
//! `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`, …); instance metadata credentials otherwise. The
//! endpoint is the operator's, so the destination policy does not apply to it; a bucket
//! allowlist ([`RemoteConfig::s3_buckets`]) restricts what clients may name.
//! `NoSuchKey`/`NoSuchBucket` → `File not found: s3://…`; access denied or bad credentials →
//! `Permission denied: s3://…`; anything else → `Cannot fetch s3://…: <reason>`.
//!
//! # Metrics
//! `imgchkr_remote_fetch_bytes_total{location}` (body bytes received) and
//! `imgchkr_remote_fetches_total{location, outcome}`, `outcome` being `ok` (the header was
//! read; the image may still fail the policy), `not_found`, `permission_denied`, `not_allowed`,
//! `timeout` or `error`.

mod args;
mod s3;
mod url;

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::FutureExt as _;
use imgchkr_core::{AssetPath, ImageInfo, Policy, ProbeError, Report, ValidationError};

pub use args::{Location, RemoteArgs};

use crate::allow::AllowRule;
use crate::config::{ConfigError, MAX_DURATION, WebhookConfig};
use crate::destination::DestinationPolicy;
use crate::resolver::check_url;

/// Default bound on one asset's validation, every request and redirect included.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Default bound on one request: connect, status and body.
pub const DEFAULT_FETCH_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Default connect timeout (DNS, TCP, TLS).
pub const DEFAULT_FETCH_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default number of redirects followed per request.
pub const DEFAULT_MAX_REDIRECTS: usize = 5;
/// Default number of range reads per asset (a JPEG needs one per large segment it skips).
pub const DEFAULT_MAX_READS: u32 = 32;

/// The first read of an object: enough for a typical JPEG's header when no large APPn block
/// comes first.
pub(crate) const FIRST_READ: usize = 2048;
/// Later reads: at least this much, so a run of small segments costs one request.
pub(crate) const CHUNK: usize = 1024;

/// How [`RemoteSources`] fetches. `Default`: the documented defaults, no destination
/// restrictions, S3 settings from the environment, any bucket. `Debug` shows the names of the
/// S3 options, never their values (they may be credentials).
#[derive(Clone)]
#[non_exhaustive]
pub struct RemoteConfig {
    /// Bound on one asset's validation, every request included.
    pub timeout: Duration,
    /// Bound on one request (connect, status, body).
    pub request_timeout: Duration,
    /// Bound on connection set-up (DNS, TCP, TLS).
    pub connect_timeout: Duration,
    /// Redirects followed per request (`url` only); 0 follows none.
    pub max_redirects: usize,
    /// Range reads per asset, the first included; at least 1.
    pub max_reads: u32,
    /// Allowed `url` destinations, as for webhooks; empty allows any host.
    pub allow: Vec<AllowRule>,
    /// Refuse non-public `url` destination addresses, as for webhooks.
    pub deny_private: bool,
    /// Read the `AWS_*` environment variables for S3 (`AmazonS3Builder::from_env`).
    pub s3_from_env: bool,
    /// S3 settings applied after the environment, as `object_store` names them
    /// (`aws_endpoint`, `aws_region`, `aws_access_key_id`, `aws_allow_http`, …).
    pub s3_options: Vec<(String, String)>,
    /// Buckets clients may name; empty allows any bucket the credentials can read.
    pub s3_buckets: Vec<String>,
}

impl Default for RemoteConfig {
    fn default() -> RemoteConfig {
        RemoteConfig {
            timeout: DEFAULT_FETCH_TIMEOUT,
            request_timeout: DEFAULT_FETCH_REQUEST_TIMEOUT,
            connect_timeout: DEFAULT_FETCH_CONNECT_TIMEOUT,
            max_redirects: DEFAULT_MAX_REDIRECTS,
            max_reads: DEFAULT_MAX_READS,
            allow: Vec::new(),
            deny_private: false,
            s3_from_env: true,
            s3_options: Vec::new(),
            s3_buckets: Vec::new(),
        }
    }
}

impl fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s3_options: Vec<&str> = self.s3_options.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("RemoteConfig")
            .field("timeout", &self.timeout)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_redirects", &self.max_redirects)
            .field("max_reads", &self.max_reads)
            .field("allow", &self.allow)
            .field("deny_private", &self.deny_private)
            .field("s3_from_env", &self.s3_from_env)
            .field("s3_options", &s3_options)
            .field("s3_buckets", &self.s3_buckets)
            .finish()
    }
}

impl RemoteConfig {
    /// The defaults, with the destination policy of `webhooks` (its allowlist and
    /// `deny_private`): one policy for every outbound request of the server.
    pub fn with_destinations_of(webhooks: &WebhookConfig) -> RemoteConfig {
        RemoteConfig {
            allow: webhooks.allow.clone(),
            deny_private: webhooks.deny_private,
            ..RemoteConfig::default()
        }
    }

    /// Refuses settings that would make fetching unbounded or impossible.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let range = |name, why| Err(ConfigError::OutOfRange { name, why });
        let durations = [self.timeout, self.request_timeout, self.connect_timeout];
        if durations.iter().any(|d| d.is_zero()) {
            return range("fetch timeout", "timeouts must be positive");
        }
        if durations.iter().any(|d| *d > MAX_DURATION) {
            return range("fetch timeout", "durations must be at most one day");
        }
        if self.max_reads == 0 {
            return range("fetch max reads", "must be at least 1");
        }
        if self.max_redirects > 100 {
            return range("fetch max redirects", "must be at most 100");
        }
        s3::check_options(&self.s3_options)?;
        Ok(())
    }
}

/// Validates images at `url` and `s3` locations. Cheap to clone: clones share one HTTP
/// client (and its connection pool) and one cache of S3 stores.
#[derive(Debug, Clone)]
pub struct RemoteSources {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: RemoteConfig,
    pub(crate) policy: Arc<DestinationPolicy>,
    pub(crate) client: reqwest::Client,
    pub(crate) s3: s3::Stores,
}

impl RemoteSources {
    /// Sources for `config`, which is validated. Builds the HTTP client; S3 stores are built
    /// on first use of each bucket.
    pub fn new(config: RemoteConfig) -> Result<RemoteSources, ConfigError> {
        config.validate()?;
        let policy = Arc::new(DestinationPolicy::new(&config.allow, config.deny_private));
        let client = url::client(&config, Arc::clone(&policy))?;
        let s3 = s3::Stores::new(&config);
        Ok(RemoteSources {
            inner: Arc::new(Inner {
                config,
                policy,
                client,
                s3,
            }),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &RemoteConfig {
        &self.inner.config
    }

    /// Whether a `url` asset's destination is allowed, for refusing a submission up front;
    /// the error is the text to show under `assetPath.path` (`URL not allowed: 10.0.0.1 is a
    /// private address`). With no policy configured this returns at once, without DNS. A name
    /// that does not resolve now is accepted: the policy is enforced again when it is fetched.
    pub async fn check_url(&self, url: &str) -> Result<(), String> {
        let refuse = |why: String| Err(format!("URL not allowed: {why}"));
        let Some(url) = imgchkr_core::submission::parse_webhook_url(url) else {
            return refuse("not an absolute http or https URL".into());
        };
        check_url(&self.inner.policy, &url, self.inner.config.connect_timeout)
            .await
            .or_else(refuse)
    }

    /// Whether a remote asset may be read, for refusing a submission up front: a `url` under
    /// the destination policy ([`check_url`](RemoteSources::check_url)), an `s3` object in a
    /// bucket of the allowlist (`S3 bucket not allowed: other; allowed: images.`). The error is
    /// the text to show under `assetPath.path`. Other locations pass.
    pub async fn check_asset(&self, asset: &AssetPath) -> Result<(), String> {
        match asset {
            AssetPath::Url { path } => self.check_url(path).await,
            AssetPath::S3 { path } => self.inner.s3.check_bucket(path),
            _ => Ok(()),
        }
    }

    /// Validates a `url` or `s3` asset against `policy`, reading only the header bytes the
    /// probe asks for. Never panics and always returns a report: an unreachable object is a
    /// report with its error (`File not found`, `Permission denied`, `Cannot fetch`). The
    /// report carries the object's `size`, the probe's answer and the body bytes received.
    /// A `local` asset is not for this type and is reported as `Cannot fetch`.
    pub async fn validate(&self, asset: &AssetPath, policy: &Policy) -> Report {
        let location = asset.location();
        let path = asset.path();
        let meter = Meter::default();
        let work = async {
            match asset {
                AssetPath::Url { path } => {
                    url::fetch(&self.inner, path, policy.max_bytes, &meter).await
                }
                AssetPath::S3 { path } => s3::fetch(&self.inner, path, &meter).await,
                _ => Err(FetchError::unreachable("not a remote location")),
            }
        };
        let guarded = AssertUnwindSafe(tokio::time::timeout(self.inner.config.timeout, work))
            .catch_unwind()
            .await;
        let result = match guarded {
            Ok(Ok(result)) => result,
            Ok(Err(_elapsed)) => Err(FetchError::Unreachable {
                reason: "timeout".into(),
                outcome: Outcome::Timeout,
            }),
            Err(_panic) => Err(FetchError::unreachable("internal error")),
        };
        let bytes_read = meter.bytes();
        let outcome = match &result {
            Ok(_) => Outcome::Ok,
            Err(e) => e.outcome(),
        };
        metrics::counter!("imgchkr_remote_fetch_bytes_total", "location" => location)
            .increment(bytes_read);
        metrics::counter!("imgchkr_remote_fetches_total", "location" => location, "outcome" => outcome.label())
            .increment(1);
        tracing::debug!(
            location,
            outcome = outcome.label(),
            bytes_read,
            reads = meter.reads(),
            "remote fetch"
        );
        let mut report = match result {
            Ok(fetched) => {
                let errors = policy.check(fetched.size, &fetched.probed);
                // `Report` is non-exhaustive: built from `unreachable` and filled in.
                let mut report = Report::unreachable(ValidationError::NotFound {
                    path: String::new(),
                });
                report.errors = errors;
                report.size = Some(fetched.size);
                report.probed = Some(fetched.probed);
                report
            }
            Err(e) => Report::unreachable(e.into_validation_error(path)),
        };
        report.bytes_read = bytes_read;
        report
    }
}

/// What a fetch learned.
#[derive(Debug)]
pub(crate) struct Fetched {
    /// The object's total size.
    pub(crate) size: u64,
    /// The probe's answer.
    pub(crate) probed: Result<ImageInfo, ProbeError>,
}

/// The metric label of a fetch's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    NotFound,
    PermissionDenied,
    NotAllowed,
    Timeout,
    Error,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::NotFound => "not_found",
            Outcome::PermissionDenied => "permission_denied",
            Outcome::NotAllowed => "not_allowed",
            Outcome::Timeout => "timeout",
            Outcome::Error => "error",
        }
    }
}

/// Why an object could not be read.
#[derive(Debug)]
pub(crate) enum FetchError {
    NotFound,
    PermissionDenied,
    Unreachable { reason: String, outcome: Outcome },
}

impl FetchError {
    pub(crate) fn unreachable(reason: impl Into<String>) -> FetchError {
        FetchError::Unreachable {
            reason: reason.into(),
            outcome: Outcome::Error,
        }
    }

    /// A reason text, its outcome told by its words.
    pub(crate) fn from_reason(reason: String) -> FetchError {
        let outcome = if reason.starts_with("destination not allowed") {
            Outcome::NotAllowed
        } else if reason == "timeout" {
            Outcome::Timeout
        } else {
            Outcome::Error
        };
        FetchError::Unreachable { reason, outcome }
    }

    fn outcome(&self) -> Outcome {
        match self {
            FetchError::NotFound => Outcome::NotFound,
            FetchError::PermissionDenied => Outcome::PermissionDenied,
            FetchError::Unreachable { outcome, .. } => *outcome,
        }
    }

    fn into_validation_error(self, path: &str) -> ValidationError {
        let path = path.to_owned();
        match self {
            FetchError::NotFound => ValidationError::NotFound { path },
            FetchError::PermissionDenied => ValidationError::PermissionDenied { path },
            FetchError::Unreachable { reason, .. } => ValidationError::Unreachable { path, reason },
        }
    }
}

/// Bytes and reads of one asset, kept outside the fetch so a timeout does not lose them.
#[derive(Debug, Default)]
pub(crate) struct Meter {
    bytes: AtomicU64,
    reads: AtomicU32,
}

impl Meter {
    pub(crate) fn add_bytes(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts a read; refuses one past `max`.
    pub(crate) fn start_read(&self, max: u32) -> Result<(), FetchError> {
        let before = self.reads.fetch_add(1, Ordering::Relaxed);
        if before >= max {
            return Err(FetchError::unreachable(format!(
                "the header needs more than {max} range reads"
            )));
        }
        Ok(())
    }

    fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    fn reads(&self) -> u32 {
        self.reads.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_can_run_on_any_worker_thread() {
        fn send<T: Send>(_: &T) {}
        let sources = RemoteSources::new(RemoteConfig::default()).unwrap();
        let asset = AssetPath::Url {
            path: "http://img.example/a.jpg".into(),
        };
        let policy = Policy::default();
        let validation = sources.validate(&asset, &policy);
        send(&validation);
        send(&sources);
    }

    #[test]
    fn debug_never_shows_s3_option_values() {
        let config = RemoteConfig {
            s3_options: vec![("aws_secret_access_key".into(), "hunter2".into())],
            ..RemoteConfig::default()
        };
        let sources = RemoteSources::new(config).unwrap();
        let text = format!("{sources:?}");
        assert!(
            text.contains("aws_secret_access_key") && !text.contains("hunter2"),
            "{text}"
        );
    }

    #[test]
    fn bad_settings_are_refused() {
        let config = RemoteConfig {
            s3_options: vec![("aws_no_such_option".into(), "x".into())],
            ..RemoteConfig::default()
        };
        assert!(RemoteSources::new(config).is_err());
        let config = RemoteConfig {
            max_reads: 0,
            ..RemoteConfig::default()
        };
        assert!(config.validate().is_err());
        let config = RemoteConfig {
            request_timeout: Duration::ZERO,
            ..RemoteConfig::default()
        };
        assert!(config.validate().is_err());
    }
}
