//! [`RemoteSources`]: validates `url` and `s3` assets, each within its timeout, and reports
//! what each fetch cost.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt as _;
use imgchkr_core::{AssetPath, Policy, Report, ValidationError};
use imgchkr_egress::check_url;
use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout_at};

use crate::config::{ConfigError, RemoteConfig};
use crate::error::{FetchError, Outcome};
use crate::meter::Meter;
use crate::s3::Stores;
use crate::url::UrlReader;

/// Validates images at `url` and `s3` locations. Cheap to clone: clones share one HTTP
/// client (and its connection pool), one cache of S3 stores, and one bound on the fetches in
/// flight ([`RemoteConfig::max_concurrent`]): a caller needs no concurrency limit of its own
/// for them, and should not hold one that local work also waits on.
#[derive(Debug, Clone)]
pub struct RemoteSources {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: RemoteConfig,
    url: UrlReader,
    s3: Stores,
    /// One place per fetch in flight.
    slots: Semaphore,
}

impl RemoteSources {
    /// Sources for `config`, which is validated. Builds the HTTP client; S3 stores are built
    /// on first use of each bucket.
    pub fn new(config: RemoteConfig) -> Result<RemoteSources, ConfigError> {
        config.validate()?;
        let url = UrlReader::new(&config)?;
        let s3 = Stores::new(&config);
        let slots = Semaphore::new(config.max_concurrent);
        Ok(RemoteSources {
            inner: Arc::new(Inner {
                config,
                url,
                s3,
                slots,
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
        check_url(
            self.inner.url.policy(),
            &url,
            self.inner.config.connect_timeout,
        )
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
    ///
    /// At most [`RemoteConfig::max_concurrent`] validations fetch at once; a further one
    /// waits for a place, within its [`RemoteConfig::timeout`]: the wait and the fetch share
    /// one deadline (`Cannot fetch <path>: timeout` when it runs out).
    pub async fn validate(&self, asset: &AssetPath, policy: &Policy) -> Report {
        let location = asset.location();
        let path = asset.path();
        let meter = Meter::default();
        let work = async {
            match asset {
                AssetPath::Url { path } => {
                    self.inner.url.fetch(path, policy.max_bytes, &meter).await
                }
                AssetPath::S3 { path } => self.inner.s3.fetch(path, &meter).await,
                _ => Err(FetchError::unreachable("not a remote location")),
            }
        };
        // One deadline for the wait for a place and the fetch itself.
        let deadline = Instant::now() + self.inner.config.timeout;
        let result = match timeout_at(deadline, self.inner.slots.acquire()).await {
            // The semaphore is never closed; a closed one would mean no place ever.
            Err(_) | Ok(Err(_)) => Err(FetchError::Timeout),
            Ok(Ok(_slot)) => {
                let guarded = AssertUnwindSafe(timeout_at(deadline, work))
                    .catch_unwind()
                    .await;
                match guarded {
                    Ok(Ok(result)) => result,
                    Ok(Err(_elapsed)) => Err(FetchError::Timeout),
                    Err(_panic) => Err(FetchError::unreachable("internal error")),
                }
            }
        };
        let bytes_read = meter.bytes();
        let outcome = match &result {
            Ok(_) => Outcome::Ok,
            Err(e) => e.outcome(),
        };
        metrics::counter!(FETCH_BYTES, "location" => location).increment(bytes_read);
        metrics::counter!(FETCHES, "location" => location, "outcome" => outcome.label())
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

/// Body bytes received from remote sources (counter, label `location`).
pub const FETCH_BYTES: &str = "imgchkr_remote_fetch_bytes_total";
/// Remote reads by location and outcome (counter).
pub const FETCHES: &str = "imgchkr_remote_fetches_total";

/// Describes this crate's metrics to the installed recorder and starts the byte counters of
/// both locations at 0 (a series that appears only on its first fetch reads as no data).
pub fn describe_metrics() {
    metrics::describe_counter!(FETCH_BYTES, "Body bytes received from remote sources.");
    metrics::describe_counter!(FETCHES, "Remote reads by location and outcome.");
    for location in ["url", "s3"] {
        metrics::counter!(FETCH_BYTES, "location" => location).absolute(0);
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
    }
}
