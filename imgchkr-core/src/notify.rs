//! The pluggable notifier: how a job's events reach the client.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use url::Url;

use crate::job::{DeliveryRecord, DeliveryStatus, Event, Job, JobId, Payload, webhook_id};

/// A boxed future that can cross threads: what the object-safe traits here return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One event to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Notification {
    /// The job.
    pub job_id: JobId,
    /// The job's tenant (`""` when callers do not authenticate): notifiers may share their
    /// capacity fairly across tenants.
    pub tenant: String,
    /// The event.
    pub event: Event,
    /// The client's URL for the event.
    pub url: Url,
    /// Stable across attempts and redeliveries, for receivers to deduplicate.
    pub webhook_id: String,
    /// The body.
    pub payload: Payload,
}

impl Notification {
    /// The notification of `event` for `job` as it stands.
    pub fn new(job: &Job, event: Event) -> Notification {
        Notification {
            job_id: job.id,
            tenant: job.tenant.clone(),
            event,
            url: job.notification_urls.get(event).clone(),
            webhook_id: webhook_id(job.id, event),
            payload: job.payload(event),
        }
    }
}

/// How one delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attempt {
    /// 1 for the first attempt.
    pub number: u32,
    /// The HTTP status received, if the receiver answered.
    pub http_status: Option<u16>,
    /// Why the attempt failed (`connection refused`, `timeout`, `HTTP 500`…); `None` on success.
    pub error: Option<String>,
    /// From sending to the answer or the failure.
    pub latency: Duration,
}

impl Attempt {
    /// An attempt answered with `status`; a failure unless 2xx.
    pub fn answered(number: u32, status: u16, latency: Duration) -> Attempt {
        Attempt {
            number,
            http_status: Some(status),
            error: (!(200..300).contains(&status)).then(|| format!("HTTP {status}")),
            latency,
        }
    }

    /// An attempt that got no answer.
    pub fn failed(number: u32, error: impl Into<String>, latency: Duration) -> Attempt {
        Attempt {
            number,
            http_status: None,
            error: Some(error.into()),
            latency,
        }
    }
}

/// The result of delivering one notification, every attempt included.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeliveryOutcome {
    /// Whether an attempt succeeded.
    pub delivered: bool,
    /// Every attempt, in order.
    pub attempts: Vec<Attempt>,
}

impl DeliveryOutcome {
    /// The outcome of `attempts`: delivered if the last one has no error.
    pub fn from_attempts(attempts: Vec<Attempt>) -> DeliveryOutcome {
        let delivered = attempts.last().is_some_and(|a| a.error.is_none());
        DeliveryOutcome {
            delivered,
            attempts,
        }
    }

    /// What the job records: status, attempt count, last HTTP status and last error.
    pub fn record(&self, event: Event, url: Url) -> DeliveryRecord {
        let last = self.attempts.last();
        let mut record = DeliveryRecord::pending(event, url);
        record.status = if self.delivered {
            DeliveryStatus::Delivered
        } else {
            DeliveryStatus::Failed
        };
        record.attempts = u32::try_from(self.attempts.len()).unwrap_or(u32::MAX);
        record.http_status = last.and_then(|a| a.http_status);
        record.error = if self.delivered {
            None
        } else {
            Some(
                last.and_then(|a| a.error.clone())
                    .unwrap_or_else(|| "not attempted".into()),
            )
        };
        record
    }
}

/// Delivers a job's notifications. Implementations never fail the job: every problem is
/// reported in the [`DeliveryOutcome`], and a delivery must end within the implementation's
/// own deadline.
///
/// ```
/// use imgchkr_core::notify::{Attempt, BoxFuture, DeliveryOutcome, Notification, Notifier};
/// /// Prints each event instead of sending it.
/// struct Print;
/// impl Notifier for Print {
///     fn deliver<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, DeliveryOutcome> {
///         Box::pin(async move {
///             println!("{} {} -> {}", n.job_id, n.event, n.url);
///             DeliveryOutcome::from_attempts(vec![Attempt::answered(1, 200, Default::default())])
///         })
///     }
/// }
/// ```
pub trait Notifier: Send + Sync {
    /// Delivers `notification`, retrying as the implementation sees fit.
    fn deliver<'a>(&'a self, notification: &'a Notification) -> BoxFuture<'a, DeliveryOutcome>;
}

impl<N: Notifier + ?Sized> Notifier for Arc<N> {
    fn deliver<'a>(&'a self, notification: &'a Notification) -> BoxFuture<'a, DeliveryOutcome> {
        (**self).deliver(notification)
    }
}

impl<N: Notifier + ?Sized> Notifier for Box<N> {
    fn deliver<'a>(&'a self, notification: &'a Notification) -> BoxFuture<'a, DeliveryOutcome> {
        (**self).deliver(notification)
    }
}

impl<N: Notifier + ?Sized> Notifier for &N {
    fn deliver<'a>(&'a self, notification: &'a Notification) -> BoxFuture<'a, DeliveryOutcome> {
        (**self).deliver(notification)
    }
}

/// A notifier that records what it is given, for tests and examples. It reports each
/// notification delivered, or failed with a fixed error when built with [`failing`].
///
/// [`failing`]: RecordingNotifier::failing
#[derive(Debug, Default)]
pub struct RecordingNotifier {
    sent: Mutex<Vec<Notification>>,
    failure: Option<String>,
}

impl RecordingNotifier {
    /// A notifier whose deliveries all succeed.
    pub fn new() -> RecordingNotifier {
        RecordingNotifier::default()
    }

    /// A notifier whose deliveries all fail with `error`.
    pub fn failing(error: impl Into<String>) -> RecordingNotifier {
        RecordingNotifier {
            sent: Mutex::default(),
            failure: Some(error.into()),
        }
    }

    /// What was delivered so far, in order.
    pub fn sent(&self) -> Vec<Notification> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Notifier for RecordingNotifier {
    fn deliver<'a>(&'a self, notification: &'a Notification) -> BoxFuture<'a, DeliveryOutcome> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(notification.clone());
        let attempt = match &self.failure {
            None => Attempt::answered(1, 200, Duration::ZERO),
            Some(error) => Attempt::failed(1, error.clone(), Duration::ZERO),
        };
        Box::pin(std::future::ready(DeliveryOutcome::from_attempts(vec![
            attempt,
        ])))
    }
}
