//! The notifier's configuration and its documented defaults.

use std::time::Duration;

use imgchkr_egress::DestinationPolicy;

use crate::sign::{Secret, SecretError};

/// Default per-attempt timeout, connect included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// Default TCP (and TLS) connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default number of attempts per event, the first included.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Default hard bound on one event's delivery, waits and retries included.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(60);
/// Default number of attempts in flight at once, across all jobs.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;
/// Default first backoff ceiling; the n-th retry waits a random time in `[0, base * 2^(n-1)]`.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Default ceiling of any backoff.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Default ceiling of a receiver's `Retry-After`.
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// Default cap on the response body read per attempt.
pub const DEFAULT_MAX_RESPONSE_BODY: usize = 64 * 1024;

/// The longest any configured duration may be.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// A configuration the notifier cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A webhook secret is not `whsec_<base64>` (or bare base64) of a long enough key.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// A numeric setting is out of range (zero attempts, zero timeout, …).
    #[error("invalid {name}: {why}")]
    OutOfRange {
        /// The setting.
        name: &'static str,
        /// What is wrong.
        why: &'static str,
    },
    /// The HTTP client could not be built (TLS backend initialisation).
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// Everything [`crate::WebhookNotifier`] needs. `Default` is the documented defaults: no
/// secrets (unsigned), 15 s per attempt (5 s to connect), 3 attempts within 60 s, 256
/// attempts in flight, 64 KiB of response read, any destination (an open policy).
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Signing secrets; empty sends unsigned webhooks (still with `webhook-id` and
    /// `webhook-timestamp`). Several sign with each, for rotation.
    pub secrets: Vec<Secret>,
    /// Bound on one attempt: connect, send, status and the bounded body read.
    pub timeout: Duration,
    /// Bound on the connection set-up (DNS, TCP, TLS) within an attempt.
    pub connect_timeout: Duration,
    /// Attempts per event, the first included; at least 1.
    pub max_attempts: u32,
    /// Hard bound on one event's delivery, from the call to the returned outcome.
    pub deadline: Duration,
    /// Attempts in flight at once across the notifier; at least 1.
    pub max_in_flight: usize,
    /// Attempts in flight at once for one tenant (`None`: no share; any tenant may use every
    /// slot). A tenant whose receivers hang then holds at most this many.
    pub max_in_flight_per_tenant: Option<usize>,
    /// Full-jitter exponential backoff: the n-th retry waits `rand[0, min(max, base·2^(n-1))]`.
    pub backoff_base: Duration,
    /// Ceiling of a backoff.
    pub backoff_max: Duration,
    /// Ceiling of a 429/503 `Retry-After`.
    pub max_retry_after: Duration,
    /// Response bytes read per attempt before the connection is dropped.
    pub max_response_body: usize,
    /// Where webhooks may be sent (allowlist, deny-private); open by default.
    pub destinations: DestinationPolicy,
}

impl Default for WebhookConfig {
    fn default() -> WebhookConfig {
        WebhookConfig {
            secrets: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            deadline: DEFAULT_DEADLINE,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_in_flight_per_tenant: None,
            backoff_base: DEFAULT_BACKOFF_BASE,
            backoff_max: DEFAULT_BACKOFF_MAX,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
            max_response_body: DEFAULT_MAX_RESPONSE_BODY,
            destinations: DestinationPolicy::default(),
        }
    }
}

impl WebhookConfig {
    /// Refuses settings that would make the notifier useless or unbounded.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let range = |name, why| Err(ConfigError::OutOfRange { name, why });
        if self.max_attempts == 0 {
            return range("webhook attempts", "must be at least 1");
        }
        if self.max_in_flight == 0 {
            return range("webhook max in flight", "must be at least 1");
        }
        if self.max_in_flight > tokio::sync::Semaphore::MAX_PERMITS {
            return range("webhook max in flight", "is too large");
        }
        if self.timeout.is_zero() || self.connect_timeout.is_zero() || self.deadline.is_zero() {
            return range(
                "webhook timeout",
                "timeouts and the deadline must be positive",
            );
        }
        let durations = [
            self.timeout,
            self.connect_timeout,
            self.deadline,
            self.backoff_base,
            self.backoff_max,
            self.max_retry_after,
        ];
        // Also keeps `Instant + duration` arithmetic far from overflowing.
        if durations.iter().any(|d| *d > MAX_DURATION) {
            return range("webhook timeout", "durations must be at most one day");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_zeroes_are_not() {
        WebhookConfig::default().validate().unwrap();
        let zero_attempts = WebhookConfig {
            max_attempts: 0,
            ..WebhookConfig::default()
        };
        assert!(zero_attempts.validate().is_err());
        let zero_timeout = WebhookConfig {
            timeout: Duration::ZERO,
            ..WebhookConfig::default()
        };
        assert!(zero_timeout.validate().is_err());
        let forever = WebhookConfig {
            deadline: Duration::from_secs(1_000_000_000_000),
            ..WebhookConfig::default()
        };
        assert!(forever.validate().is_err());
    }
}
