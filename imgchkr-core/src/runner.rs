//! Running one job: onStart, validation and the final event, recorded as they happen.

use std::future::Future;

use futures_util::future::join;
use time::OffsetDateTime;

use crate::engine::StoreError;
use crate::job::{
    DeliveryRecord, DeliveryStatus, ErrorMap, Event, IMAGE_ERRORS_KEY, Job, JobState, JobUpdate,
};
use crate::notify::{Notification, Notifier};
use crate::recorder::Recorder;
use crate::source::Report;

/// Runs `job` (already marked started by its lease) as the contract orders it, recording each
/// step through `recorder`:
///
/// 1. onStart is sent;
/// 2. meanwhile `validate` runs: validation never waits on a notification, and the verdict
///    is recorded the moment it is known;
/// 3. once the onStart delivery has finished (delivered or given up), exactly one of
///    onSuccess / onFailure is sent.
///
/// Each delivery is recorded as pending, then with its outcome; a failed delivery never
/// changes the verdict. Runtime-agnostic: `validate` is whatever future the caller makes
/// (a blocking-pool task, a remote read). Returns the final state, or the recorder's error
/// (the job should then be run again, as its webhooks carry stable ids).
pub async fn run_job<R, N, V>(
    job: &Job,
    recorder: &R,
    notifier: &N,
    validate: V,
) -> Result<JobState, StoreError>
where
    R: Recorder + ?Sized,
    N: Notifier + ?Sized,
    V: Future<Output = Report>,
{
    let on_start = deliver(job, Event::OnStart, recorder, notifier);
    let verdict = async {
        let report = validate.await;
        let update = JobUpdate::Verdict {
            errors: report.error_map(),
            warnings: report.warnings(),
            at: OffsetDateTime::now_utc(),
        };
        recorder.record(update.clone()).await?;
        Ok::<_, StoreError>(update)
    };
    let (started, verdict) = join(on_start, verdict).await;
    started?;
    let verdict = verdict?;

    let mut finished = job.clone();
    finished.apply(&verdict);
    let event = final_event(finished.state);
    deliver(&finished, event, recorder, notifier).await?;
    Ok(finished.state)
}

/// Gives up on `job` without running it again (a job every worker that took it failed to
/// finish, say), so its client still hears the end of it:
///
/// 1. the job is recorded `failed` with `errors` ([`JobUpdate::GaveUp`]), unless a verdict is
///    already in, which then stands;
/// 2. the final event of the verdict that stands (onFailure, or onSuccess for a success
///    recorded earlier) is sent and recorded, unless `job` already records it delivered.
///    Its webhook-id is the one a normal run uses, so a receiver that got it before
///    deduplicates.
///
/// `job` is the record as it stands (as its lease returned it). onStart is not sent. Returns
/// the final state, or the recorder's error (call again later: it is idempotent).
pub async fn give_up<R, N>(
    job: &Job,
    recorder: &R,
    notifier: &N,
    errors: ErrorMap,
) -> Result<JobState, StoreError>
where
    R: Recorder + ?Sized,
    N: Notifier + ?Sized,
{
    let update = JobUpdate::GaveUp {
        errors,
        at: OffsetDateTime::now_utc(),
    };
    recorder.record(update.clone()).await?;
    let mut current = job.clone();
    current.apply(&update);
    settle(&current, recorder, notifier).await?;
    Ok(current.state)
}

/// Sends the final event of a job whose verdict is in (a redelivery of a job whose worker
/// stopped after its verdict), unless the job records it delivered already.
pub async fn settle<R, N>(job: &Job, recorder: &R, notifier: &N) -> Result<(), StoreError>
where
    R: Recorder + ?Sized,
    N: Notifier + ?Sized,
{
    let event = final_event(job.state);
    let delivered = job
        .notifications
        .iter()
        .any(|r| r.event == event && r.status == DeliveryStatus::Delivered);
    if delivered {
        return Ok(());
    }
    deliver(job, event, recorder, notifier).await
}

/// The parked-job error texts: `{"image": ["Job abandoned after <N> delivery attempts"]}`.
pub fn abandoned(attempts: u32) -> ErrorMap {
    ErrorMap::from([(
        IMAGE_ERRORS_KEY.to_owned(),
        vec![format!("Job abandoned after {attempts} delivery attempts")],
    )])
}

fn final_event(state: JobState) -> Event {
    match state {
        JobState::Success => Event::OnSuccess,
        _ => Event::OnFailure,
    }
}

async fn deliver<R, N>(
    job: &Job,
    event: Event,
    recorder: &R,
    notifier: &N,
) -> Result<(), StoreError>
where
    R: Recorder + ?Sized,
    N: Notifier + ?Sized,
{
    let notification = Notification::new(job, event);
    let pending = DeliveryRecord::pending(event, notification.url.clone());
    recorder.record(JobUpdate::Delivery(pending)).await?;
    let outcome = notifier.deliver(&notification).await;
    let record = outcome.record(event, notification.url.clone());
    recorder.record(JobUpdate::Delivery(record)).await
}
