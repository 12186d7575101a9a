//! [`WebhookNotifier`]: the shared client, the in-flight bound, and the retry loop with its
//! overall deadline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use imgchkr_core::notify::{Attempt, BoxFuture, DeliveryOutcome, Notification, Notifier};
use tokio::sync::Semaphore;
use url::Url;

use crate::attempt::{Next, attempt};
use crate::client::WebhookClient;
use crate::config::{ConfigError, WebhookConfig};
use crate::destination_check::DestinationCheck;
use crate::retry::backoff;

/// An attempt is not started with less time than this left before the deadline: it could
/// not succeed and would only cost a connection.
const MIN_ATTEMPT_BUDGET: Duration = Duration::from_millis(100);

/// Delivers webhooks over HTTP(S); see the crate documentation. Cheap to clone: clones share
/// one client, one connection pool and one in-flight bound.
#[derive(Debug, Clone)]
pub struct WebhookNotifier {
    inner: Arc<Inner>,
}

/// What clones share.
#[derive(Debug)]
struct Inner {
    client: WebhookClient,
    destinations: DestinationCheck,
    slots: Semaphore,
    /// Per tenant, when its share is bounded: a tenant whose receivers hang holds at most its
    /// share of the attempts in flight, never every slot.
    tenant_slots: Option<TenantShares>,
}

/// Each tenant's share of attempts in flight: the share, and a semaphore per tenant sending.
#[derive(Debug)]
struct TenantShares {
    share: usize,
    tenants: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl WebhookNotifier {
    /// A notifier for `config`, which is validated.
    pub fn new(config: WebhookConfig) -> Result<WebhookNotifier, ConfigError> {
        config.validate()?;
        let slots = Semaphore::new(config.max_in_flight);
        let tenant_slots = config.max_in_flight_per_tenant.map(|share| TenantShares {
            share: share.max(1),
            tenants: Mutex::default(),
        });
        let client = WebhookClient::new(config)?;
        let destinations =
            DestinationCheck::with_policy(Arc::clone(&client.policy), &client.config);
        Ok(WebhookNotifier {
            inner: Arc::new(Inner {
                client,
                destinations,
                slots,
                tenant_slots,
            }),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &WebhookConfig {
        &self.inner.client.config
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
        let config = &self.inner.client.config;
        let deadline = Instant::now() + config.deadline;
        let body = n.payload.to_json();
        let mut attempts: Vec<Attempt> = Vec::new();
        // (A deadline shorter than twice the minimum still gets its one attempt.)
        let min_budget = MIN_ATTEMPT_BUDGET.min(config.deadline / 2);
        for number in 1..=config.max_attempts {
            let waited = Instant::now();
            let left = deadline.saturating_duration_since(waited);
            // The tenant's share first, then a place overall: waiting for its own share, a
            // tenant holds nothing another needs.
            let slot = tokio::time::timeout(left, async {
                let share = match self.tenant_share(&n.tenant) {
                    Some(share) => Some(share.acquire_owned().await.ok()?),
                    None => None,
                };
                let slot = self.inner.slots.acquire().await.ok()?;
                Some((share, slot))
            })
            .await
            .ok()
            // The semaphores are never closed; a closed one would mean no slot ever.
            .flatten();
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
            let (outcome, next) = attempt(&self.inner.client, n, number, &body, budget).await;
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

    /// The semaphore of `tenant`'s share of attempts in flight, if shares are bounded.
    fn tenant_share(&self, tenant: &str) -> Option<Arc<Semaphore>> {
        let TenantShares { share, tenants } = self.inner.tenant_slots.as_ref()?;
        let mut tenants = tenants.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slots) = tenants.get(tenant) {
            return Some(Arc::clone(slots));
        }
        // Forget the tenants nobody is sending for (no attempt, no waiter): the map stays as
        // small as the tenants sending now.
        tenants.retain(|_, slots| Arc::strong_count(slots) > 1);
        let slots = Arc::new(Semaphore::new(*share));
        tenants.insert(tenant.to_owned(), Arc::clone(&slots));
        Some(slots)
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
