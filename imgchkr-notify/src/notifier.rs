//! [`WebhookNotifier`]: the shared client, the in-flight bound, and the retry loop with its
//! overall deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use imgchkr_core::notify::{Attempt, BoxFuture, DeliveryOutcome, Notification, Notifier};
use tokio::sync::Semaphore;
use url::Url;

use crate::attempt::{Next, attempt};
use crate::config::{ConfigError, WebhookConfig};
use crate::destination::DestinationPolicy;
use crate::resolver::{PolicyResolver, check_url};
use crate::retry::backoff;

/// An attempt is not started with less time than this left before the deadline: it could
/// not succeed and would only cost a connection.
const MIN_ATTEMPT_BUDGET: Duration = Duration::from_millis(100);

/// Idle pooled connections are closed after this long; receivers often close sooner.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The destination policy of a [`WebhookConfig`] (allowlist, `deny_private`) applied to a
/// notification URL at submission time. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DestinationCheck {
    policy: Arc<DestinationPolicy>,
    timeout: Duration,
}

impl DestinationCheck {
    /// The check of `config`'s policy (the config is not otherwise validated).
    pub fn new(config: &WebhookConfig) -> DestinationCheck {
        let policy = Arc::new(DestinationPolicy::new(&config.allow, config.deny_private));
        DestinationCheck::with_policy(policy, config)
    }

    fn with_policy(policy: Arc<DestinationPolicy>, config: &WebhookConfig) -> DestinationCheck {
        DestinationCheck {
            policy,
            timeout: config.connect_timeout,
        }
    }

    /// Whether `url` may receive notifications. The error is the text to show under the field
    /// (`Notification URL not allowed: 10.0.0.1 is a private address`). With no policy
    /// configured this returns at once, without DNS.
    ///
    /// A name that does not resolve (now) is accepted: it may resolve by delivery time, and
    /// the policy is enforced again on the addresses connected to then.
    pub async fn check(&self, url: &Url) -> Result<(), String> {
        let refuse = |why: String| Err(format!("Notification URL not allowed: {why}"));
        if !matches!(url.scheme(), "http" | "https") {
            return refuse(format!(
                "the scheme must be http or https, not {}",
                url.scheme()
            ));
        }
        check_url(&self.policy, url, self.timeout)
            .await
            .or_else(refuse)
    }
}

/// Delivers webhooks over HTTP(S); see the crate documentation. Cheap to clone: clones share
/// one client, one connection pool and one in-flight bound.
#[derive(Debug, Clone)]
pub struct WebhookNotifier {
    inner: Arc<Inner>,
}

/// What clones share.
#[derive(Debug)]
pub struct Inner {
    pub(crate) client: reqwest::Client,
    pub(crate) config: WebhookConfig,
    pub(crate) policy: Arc<DestinationPolicy>,
    destinations: DestinationCheck,
    slots: Semaphore,
}

impl WebhookNotifier {
    /// A notifier for `config`, which is validated.
    pub fn new(config: WebhookConfig) -> Result<WebhookNotifier, ConfigError> {
        config.validate()?;
        let policy = Arc::new(DestinationPolicy::new(&config.allow, config.deny_private));
        let client = reqwest::Client::builder()
            .user_agent(concat!("imgchkr/", env!("CARGO_PKG_VERSION")))
            // A 3xx is reported, never followed: following would send the signed body to a
            // host nobody checked.
            .redirect(reqwest::redirect::Policy::none())
            // A system proxy would resolve (and filter) the proxy's name instead of the
            // destination's, defeating the destination policy.
            .no_proxy()
            .dns_resolver(Arc::new(PolicyResolver::new(Arc::clone(&policy))))
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| ConfigError::Client(e.to_string()))?;
        let slots = Semaphore::new(config.max_in_flight);
        let destinations = DestinationCheck::with_policy(Arc::clone(&policy), &config);
        Ok(WebhookNotifier {
            inner: Arc::new(Inner {
                client,
                config,
                policy,
                destinations,
                slots,
            }),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &WebhookConfig {
        &self.inner.config
    }

    /// Whether `url` may receive notifications, for refusing a submission up front; see
    /// [`DestinationCheck::check`].
    pub async fn check_destination(&self, url: &Url) -> Result<(), String> {
        self.inner.destinations.check(url).await
    }

    /// The submission-time destination check of this notifier's policy, for a service that
    /// delivers through another [`Notifier`] but vets URLs the same way.
    pub fn destination_check(&self) -> DestinationCheck {
        self.inner.destinations.clone()
    }

    async fn deliver_within_deadline(&self, n: &Notification) -> DeliveryOutcome {
        let config = &self.inner.config;
        let deadline = Instant::now() + config.deadline;
        let body = n.payload.to_json();
        let mut attempts: Vec<Attempt> = Vec::new();
        // (A deadline shorter than twice the minimum still gets its one attempt.)
        let min_budget = MIN_ATTEMPT_BUDGET.min(config.deadline / 2);
        for number in 1..=config.max_attempts {
            let waited = Instant::now();
            let left = deadline.saturating_duration_since(waited);
            let slot = match tokio::time::timeout(left, self.inner.slots.acquire()).await {
                Ok(Ok(slot)) => Some(slot),
                // The semaphore is never closed; a closed one would mean no slot ever.
                Ok(Err(_)) | Err(_) => None,
            };
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(slot) = slot.filter(|_| left >= min_budget) else {
                attempts.push(Attempt::failed(
                    number,
                    "timeout waiting for a delivery slot",
                    waited.elapsed(),
                ));
                break;
            };
            let budget = config.timeout.min(left);
            let (outcome, next) = attempt(&self.inner, n, number, &body, budget).await;
            drop(slot);
            self.observe(n, &outcome);
            attempts.push(outcome);

            let Next::Retry { after } = next else { break };
            if number == config.max_attempts {
                break;
            }
            let wait =
                after.unwrap_or_else(|| backoff(config.backoff_base, config.backoff_max, number));
            // No point waiting if no useful attempt fits after the wait: give up now.
            if Instant::now() + wait + min_budget > deadline {
                tracing::debug!(job_id = %n.job_id, event = %n.event, ?wait, "no time left for another attempt");
                break;
            }
            tokio::time::sleep(wait).await;
        }
        let outcome = DeliveryOutcome::from_attempts(attempts);
        self.finish(n, &outcome);
        outcome
    }

    fn observe(&self, n: &Notification, attempt: &Attempt) {
        metrics::histogram!("imgchkr_webhook_attempt_seconds", "event" => n.event.name())
            .record(attempt.latency.as_secs_f64());
        tracing::debug!(
            job_id = %n.job_id,
            event = %n.event,
            host = n.url.host_str().unwrap_or(""),
            attempt = attempt.number,
            http_status = attempt.http_status,
            error = attempt.error.as_deref(),
            latency_ms = u64::try_from(attempt.latency.as_millis()).unwrap_or(u64::MAX),
            "webhook attempt"
        );
    }

    fn finish(&self, n: &Notification, outcome: &DeliveryOutcome) {
        let label = if outcome.delivered {
            "delivered"
        } else {
            "failed"
        };
        metrics::counter!("imgchkr_webhook_deliveries_total", "event" => n.event.name(), "outcome" => label)
            .increment(1);
        if !outcome.delivered {
            // The URL itself may carry a token in its query; the host is enough to act on.
            tracing::warn!(
                job_id = %n.job_id,
                event = %n.event,
                host = n.url.host_str().unwrap_or(""),
                attempts = outcome.attempts.len(),
                error = outcome.attempts.last().and_then(|a| a.error.as_deref()),
                "webhook delivery failed"
            );
        }
    }
}

impl Notifier for WebhookNotifier {
    fn deliver<'a>(&'a self, notification: &'a Notification) -> BoxFuture<'a, DeliveryOutcome> {
        Box::pin(self.deliver_within_deadline(notification))
    }
}
