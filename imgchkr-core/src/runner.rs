//! Running one job: onStart, validation and the final event, recorded as they happen.

use std::future::Future;

use futures_util::future::join;
use time::OffsetDateTime;

use crate::job::{DeliveryStatus, ErrorMap, Event, IMAGE_ERRORS_KEY, Job, JobState, JobUpdate};
use crate::notify::{Notification, Notifier};
use crate::source::Report;
use crate::store::{JobStore, StoreError};

impl Report {
    /// The errors as a job and the `onFailure` payload carry them, `None` when valid.
    pub fn error_map(&self) -> Option<ErrorMap> {
        (!self.is_valid())
            .then(|| ErrorMap::from([(IMAGE_ERRORS_KEY.to_owned(), self.error_texts())]))
    }
}

/// Runs `job` as the contract orders it, recording each step in `store`:
///
/// 1. the job is marked started, and onStart is sent;
/// 2. meanwhile `validate` runs: validation never waits on a notification, and the verdict
///    is recorded the moment it is known;
/// 3. once the onStart delivery has finished (delivered or given up), exactly one of
///    onSuccess / onFailure is sent.
///
/// Each delivery is recorded as pending, then with its outcome; a failed delivery never
/// changes the verdict. Runtime-agnostic: `validate` is whatever future the caller makes
/// (a blocking-pool task, a remote read). Returns the final state, or the store's error (the
/// job should then be retried, as its webhooks carry stable ids).
pub async fn run_job<S, N, V>(
    job: &Job,
    store: &S,
    notifier: &N,
    validate: V,
) -> Result<JobState, StoreError>
where
    S: JobStore + ?Sized,
    N: Notifier + ?Sized,
    V: Future<Output = Report>,
{
    store
        .update(
            job.id,
            JobUpdate::Started {
                at: OffsetDateTime::now_utc(),
            },
        )
        .await?;

    let on_start = deliver(job, Event::OnStart, store, notifier);
    let verdict = async {
        let errors = validate.await.error_map();
        let at = OffsetDateTime::now_utc();
        store
            .update(
                job.id,
                JobUpdate::Verdict {
                    errors: errors.clone(),
                    at,
                },
            )
            .await?;
        Ok::<_, StoreError>(errors)
    };
    let (started, verdict) = join(on_start, verdict).await;
    started?;
    let errors = verdict?;

    let mut finished = job.clone();
    finished.apply(&JobUpdate::Verdict {
        errors,
        at: OffsetDateTime::now_utc(),
    });
    let event = match finished.state {
        JobState::Failed => Event::OnFailure,
        _ => Event::OnSuccess,
    };
    deliver(&finished, event, store, notifier).await?;
    Ok(finished.state)
}

/// Gives up on `job` without running it again (a job every worker that took it failed to
/// finish, say), so its client still hears the end of it:
///
/// 1. the job is recorded `failed` with `errors` ([`JobUpdate::GaveUp`]), unless a verdict is
///    already in, which then stands;
/// 2. the final event of the verdict that stands (onFailure, or onSuccess for a success
///    recorded earlier) is sent and recorded, unless the job already records it delivered.
///    Its webhook-id is the one a normal run uses, so a receiver that got it before
///    deduplicates.
///
/// onStart is not sent. Returns the final state, or the store's error (call again later:
/// it is idempotent).
pub async fn give_up<S, N>(
    job: &Job,
    store: &S,
    notifier: &N,
    errors: ErrorMap,
) -> Result<JobState, StoreError>
where
    S: JobStore + ?Sized,
    N: Notifier + ?Sized,
{
    let update = JobUpdate::GaveUp {
        errors,
        at: OffsetDateTime::now_utc(),
    };
    store.update(job.id, update.clone()).await?;
    let current = match store.get(job.id).await? {
        Some(current) => current,
        // Expired meanwhile: the client is still owed its final event.
        None => {
            let mut current = job.clone();
            current.apply(&update);
            current
        }
    };
    let event = match current.state {
        JobState::Success => Event::OnSuccess,
        _ => Event::OnFailure,
    };
    let delivered = current
        .notifications
        .iter()
        .any(|r| r.event == event && r.status == DeliveryStatus::Delivered);
    if !delivered {
        deliver(&current, event, store, notifier).await?;
    }
    Ok(current.state)
}

async fn deliver<S, N>(job: &Job, event: Event, store: &S, notifier: &N) -> Result<(), StoreError>
where
    S: JobStore + ?Sized,
    N: Notifier + ?Sized,
{
    let notification = Notification::new(job, event);
    let pending = crate::job::DeliveryRecord::pending(event, notification.url.clone());
    store.update(job.id, JobUpdate::Delivery(pending)).await?;
    let outcome = notifier.deliver(&notification).await;
    let record = outcome.record(event, notification.url.clone());
    store.update(job.id, JobUpdate::Delivery(record)).await
}
