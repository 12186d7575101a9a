//! [`RemoteConfig`]: how remote objects are fetched, with its documented defaults.

use std::fmt;
use std::time::Duration;

use imgchkr_egress::DestinationPolicy;
use object_store::aws::AmazonS3ConfigKey;

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
/// Default number of assets fetched at once, across all callers.
pub const DEFAULT_MAX_CONCURRENT: usize = 64;

/// The longest any configured duration may be (keeps `Instant + duration` far from overflow).
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// A configuration [`crate::RemoteSources`] cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A setting is out of range (a zero timeout, zero reads, …).
    #[error("invalid {name}: {why}")]
    OutOfRange {
        /// The setting.
        name: &'static str,
        /// What is wrong.
        why: &'static str,
    },
    /// An S3 option name that `object_store` does not know.
    #[error("invalid S3 option {0:?}: unknown option name (see object_store's AmazonS3ConfigKey)")]
    S3Option(String),
    /// The HTTP client could not be built (TLS backend initialisation).
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// How [`crate::RemoteSources`] fetches. `Default`: the documented defaults, an open
/// destination policy, S3 settings from the environment, any bucket. `Debug` shows the names
/// of the S3 options, never their values (they may be credentials).
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
    /// Assets fetched at once by a [`crate::RemoteSources`] and its clones; at least 1. A
    /// fetch waits for a place within its own timeout. This bound is the sources' own, so
    /// slow remote servers hold these places and nothing of the caller's.
    pub max_concurrent: usize,
    /// Where `url` assets may be read from (the server uses the webhooks' policy: one policy
    /// for every outbound request).
    pub destinations: DestinationPolicy,
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
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            destinations: DestinationPolicy::default(),
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
            .field("max_concurrent", &self.max_concurrent)
            .field("destinations", &self.destinations)
            .field("s3_from_env", &self.s3_from_env)
            .field("s3_options", &s3_options)
            .field("s3_buckets", &self.s3_buckets)
            .finish()
    }
}

impl RemoteConfig {
    /// The defaults, with the destination policy `destinations`.
    pub fn with_destinations(destinations: DestinationPolicy) -> RemoteConfig {
        RemoteConfig {
            destinations,
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
        if self.max_concurrent == 0 {
            return range("fetch max concurrent", "must be at least 1");
        }
        if self.max_concurrent > tokio::sync::Semaphore::MAX_PERMITS {
            return range("fetch max concurrent", "is too large");
        }
        if self.max_redirects > 100 {
            return range("fetch max redirects", "must be at most 100");
        }
        for (key, _) in &self.s3_options {
            s3_key(key).ok_or_else(|| ConfigError::S3Option(key.clone()))?;
        }
        Ok(())
    }
}

/// The `object_store` key an S3 option name stands for, any case.
pub(crate) fn s3_key(name: &str) -> Option<AmazonS3ConfigKey> {
    name.to_ascii_lowercase().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_are_refused() {
        let config = RemoteConfig {
            s3_options: vec![("aws_no_such_option".into(), "x".into())],
            ..RemoteConfig::default()
        };
        assert_eq!(
            config.validate(),
            Err(ConfigError::S3Option("aws_no_such_option".into()))
        );
        let config = RemoteConfig {
            max_reads: 0,
            ..RemoteConfig::default()
        };
        assert!(config.validate().is_err());
        let config = RemoteConfig {
            max_concurrent: 0,
            ..RemoteConfig::default()
        };
        assert!(config.validate().is_err());
        let config = RemoteConfig {
            request_timeout: Duration::ZERO,
            ..RemoteConfig::default()
        };
        assert!(config.validate().is_err());
        let config = RemoteConfig {
            timeout: MAX_DURATION + Duration::from_secs(1),
            ..RemoteConfig::default()
        };
        assert!(config.validate().is_err());
        RemoteConfig::default().validate().unwrap();
    }
}
