//! Lifecycle cases: cancel, tenant scoping, listing, retention and tombstones, and core's
//! worker rules (a whole run, poison parking, settling a redelivered verdict) on the engine.

use std::sync::Arc;
use std::time::Duration;

use super::cases::case;
use super::{Case, Outcome, T0, at, ensure, finish, get, job, keys, lease, request, submit};
use crate::engine::{Cancel, Engine, ListQuery, Lookup, Retention};
use crate::job::{DeliveryStatus, Event, Job, JobKey, JobState, JobUpdate, Priority};
use crate::notify::{BoxFuture, Notifier, RecordingNotifier};
use crate::policy::ValidationError;
use crate::source::Report;
use crate::worker::{Runtime, Validator, Worker, WorkerConfig};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(cancel_takes_a_queued_job_out),
        case!(cancel_refuses_a_started_job),
        case!(ids_are_scoped_per_tenant),
        case!(list_is_newest_first_with_cursor_and_state),
        case!(retention_expires_with_tombstones),
        case!(retention_count_is_per_tenant),
        case!(a_run_records_verdict_and_deliveries),
        case!(poison_job_is_parked_with_on_failure),
        case!(a_redelivered_verdict_is_settled_not_rerun),
    ]
}

async fn cancel_takes_a_queued_job_out(engine: Arc<dyn Engine>) -> Outcome {
    let queued = job("acme", Priority::Normal);
    submit(&*engine, &queued).await?;
    let cancelled = match engine.cancel(&queued.key(), at(3)).await {
        Ok(Cancel::Cancelled(job)) => *job,
        other => return Err(format!("cancel of a queued job: {other:?}")),
    };
    ensure(
        cancelled.state == JobState::Cancelled && cancelled.finished_at == Some(at(3)),
        || format!("cancelled record {cancelled:?}"),
    )?;
    let stored = get(&*engine, &queued.key()).await?;
    ensure(stored == cancelled, || {
        format!("stored {stored:?} differs from the answer {cancelled:?}")
    })?;
    let leased = lease(&*engine, &request("w", 5, at(4))).await?;
    ensure(leased.is_empty(), || {
        format!("a cancelled job was leased: {:?}", keys(&leased))
    })?;
    match engine.cancel(&queued.key(), at(5)).await {
        Ok(Cancel::NotQueued(job)) if job.state == JobState::Cancelled => {}
        other => return Err(format!("second cancel: {other:?}")),
    }
    let stats = engine.stats().await.map_err(|e| format!("stats: {e}"))?;
    ensure(stats.waiting == 0, || {
        format!("waiting after cancel: {stats:?}")
    })
}

async fn cancel_refuses_a_started_job(engine: Arc<dyn Engine>) -> Outcome {
    let queued = job("acme", Priority::Normal);
    submit(&*engine, &queued).await?;
    let held = lease(&*engine, &request("w", 1, T0)).await?;
    match engine.cancel(&queued.key(), at(1)).await {
        Ok(Cancel::NotQueued(job)) if job.state == JobState::Started => {}
        other => return Err(format!("cancel of a started job: {other:?}")),
    }
    finish(&*engine, &held[0].lease).await?;
    let unknown = JobKey::new("acme", crate::JobId::random());
    match engine.cancel(&unknown, at(2)).await {
        Ok(Cancel::Unknown) => Ok(()),
        other => Err(format!("cancel of an unknown id: {other:?}")),
    }
}

async fn ids_are_scoped_per_tenant(engine: Arc<dyn Engine>) -> Outcome {
    let alice = job("alice", Priority::Normal);
    let mut bob = job("bob", Priority::Low);
    bob.id = alice.id;
    submit(&*engine, &alice).await?;
    // The same id for another tenant is another job, and not a resubmission.
    submit(&*engine, &bob).await?;
    let a = get(&*engine, &alice.key()).await?;
    let b = get(&*engine, &bob.key()).await?;
    ensure(
        a.tenant == "alice" && b.tenant == "bob" && a.priority != b.priority,
        || format!("the two tenants' jobs mixed up: {a:?} / {b:?}"),
    )?;
    let stranger = JobKey::new("mallory", alice.id);
    match engine.get(&stranger).await {
        Ok(Lookup::Unknown) => {}
        other => return Err(format!("another tenant's id: {other:?}")),
    }
    match engine.cancel(&stranger, at(1)).await {
        Ok(Cancel::Unknown) => {}
        other => return Err(format!("cancel of another tenant's id: {other:?}")),
    }
    let mine = engine
        .list(&ListQuery::tenant("alice", 10))
        .await
        .map_err(|e| format!("list: {e}"))?;
    ensure(mine.len() == 1 && mine[0].tenant == "alice", || {
        format!("alice's listing: {mine:?}")
    })?;
    // A cursor naming another tenant's job pages like an unknown one: empty.
    let mut query = ListQuery::tenant("mallory", 10);
    query.before = Some(alice.key());
    let page = engine
        .list(&query)
        .await
        .map_err(|e| format!("list: {e}"))?;
    ensure(page.is_empty(), || {
        format!("a foreign cursor gave a page: {page:?}")
    })
}

async fn list_is_newest_first_with_cursor_and_state(engine: Arc<dyn Engine>) -> Outcome {
    let jobs: Vec<Job> = (0..5).map(|_| job("acme", Priority::Normal)).collect();
    for j in &jobs {
        submit(&*engine, j).await?;
    }
    submit(&*engine, &job("other", Priority::Normal)).await?;
    let ids = |page: &[Job]| page.iter().map(|j| j.id).collect::<Vec<_>>();
    let page = engine
        .list(&ListQuery::tenant("acme", 2))
        .await
        .map_err(|e| format!("list: {e}"))?;
    ensure(ids(&page) == [jobs[4].id, jobs[3].id], || {
        format!("first page {:?}", ids(&page))
    })?;
    let mut next = ListQuery::tenant("acme", 10);
    next.before = Some(jobs[3].key());
    let page = engine.list(&next).await.map_err(|e| format!("list: {e}"))?;
    ensure(ids(&page) == [jobs[2].id, jobs[1].id, jobs[0].id], || {
        format!("second page {:?}", ids(&page))
    })?;
    // One job of each tenant is leased (round-robin, one in flight per tenant): acme's oldest
    // and other's, in an order that is the round-robin cases' business.
    let mut one_each = request("w", 2, T0);
    one_each.tenant_in_flight = Some(1);
    let held = lease(&*engine, &one_each).await?;
    ensure(held.len() == 2, || format!("leased {:?}", keys(&held)))?;
    let mut started = ListQuery::tenant("acme", 10);
    started.state = Some(JobState::Started);
    let page = engine
        .list(&started)
        .await
        .map_err(|e| format!("list: {e}"))?;
    ensure(ids(&page) == [jobs[0].id], || {
        format!("started jobs {:?}", ids(&page))
    })?;
    let all = engine
        .list(&ListQuery::all(100))
        .await
        .map_err(|e| format!("list: {e}"))?;
    ensure(all.len() == 6, || {
        format!("every tenant's jobs: {}", all.len())
    })?;
    for taken in &held {
        finish(&*engine, &taken.lease).await?;
    }
    Ok(())
}

/// Leases and finishes `key` with a verdict at `finished`.
async fn run_to_success(engine: &dyn Engine, finished: time::OffsetDateTime) -> Outcome {
    let held = lease(engine, &request("w", 1, finished)).await?;
    let [taken] = held.as_slice() else {
        return Err(format!("expected one job to lease, got {}", held.len()));
    };
    let verdict = JobUpdate::Verdict {
        errors: None,
        warnings: Vec::new(),
        at: finished,
    };
    engine
        .finish(&taken.lease, &[verdict])
        .await
        .map_err(|e| format!("finish: {e}"))
}

async fn retention_expires_with_tombstones(engine: Arc<dyn Engine>) -> Outcome {
    let mut retention = Retention::new(Duration::from_secs(3600), 100);
    retention.tombstone_age = Duration::from_secs(7200);
    let done = job("acme", Priority::Normal);
    let waiting = job("acme", Priority::Normal);
    submit(&*engine, &done).await?;
    run_to_success(&*engine, at(10)).await?;
    submit(&*engine, &waiting).await?;
    let purge = |now| {
        let engine = Arc::clone(&engine);
        async move {
            engine
                .purge(&retention, now, 100)
                .await
                .map_err(|e| format!("purge: {e}"))
        }
    };
    purge(at(10 + 3599)).await?;
    get(&*engine, &done.key()).await?;
    let expired = purge(at(10 + 3600)).await?;
    ensure(expired == 1, || {
        format!("purge expired {expired} jobs, want 1")
    })?;
    match engine.get(&done.key()).await {
        Ok(Lookup::Expired) => {}
        other => return Err(format!("an expired job: {other:?} (want Expired: 410)")),
    }
    match engine.cancel(&done.key(), at(3700)).await {
        Ok(Cancel::Expired) => {}
        other => return Err(format!("cancel of an expired job: {other:?}")),
    }
    // Queued jobs never expire.
    get(&*engine, &waiting.key()).await?;
    let listed = engine
        .list(&ListQuery::tenant("acme", 10))
        .await
        .map_err(|e| format!("list: {e}"))?;
    ensure(listed.len() == 1, || {
        format!("listing after expiry: {listed:?}")
    })?;
    // The tombstone itself goes after its own age: then the id is unknown.
    purge(at(10 + 3600 + 7200)).await?;
    match engine.get(&done.key()).await {
        Ok(Lookup::Unknown) => Ok(()),
        other => Err(format!(
            "after the tombstone age: {other:?} (want Unknown: 404)"
        )),
    }
}

async fn retention_count_is_per_tenant(engine: Arc<dyn Engine>) -> Outcome {
    let retention = Retention::new(Duration::from_secs(3600), 2);
    let mut alice = Vec::new();
    for i in 0..3 {
        let j = job("alice", Priority::Normal);
        submit(&*engine, &j).await?;
        run_to_success(&*engine, at(i)).await?;
        alice.push(j);
    }
    let bob = job("bob", Priority::Normal);
    submit(&*engine, &bob).await?;
    run_to_success(&*engine, at(0)).await?;
    engine
        .purge(&retention, at(5), 100)
        .await
        .map_err(|e| format!("purge: {e}"))?;
    match engine.get(&alice[0].key()).await {
        Ok(Lookup::Expired) => {}
        other => return Err(format!("alice's oldest over her count: {other:?}")),
    }
    get(&*engine, &alice[1].key()).await?;
    get(&*engine, &alice[2].key()).await?;
    // Alice's volume never evicts Bob's job.
    get(&*engine, &bob.key()).await.map(|_| ())
}

/// A validator answering one fixed report.
struct Fixed(Report);

impl Validator for Fixed {
    fn validate(&self, _job: &Job) -> BoxFuture<'static, Report> {
        Box::pin(std::future::ready(self.0.clone()))
    }
}

/// The worker cases need no runtime: [`Worker::handle`] runs one job in the caller's task.
struct Unused;

impl Runtime for Unused {
    fn spawn(&self, _task: BoxFuture<'static, ()>) {}
    fn sleep(&self, _duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }
}

pub(super) fn worker_of(
    engine: &Arc<dyn Engine>,
    notifier: &Arc<RecordingNotifier>,
    report: Report,
) -> Arc<Worker> {
    let mut config = WorkerConfig::new(super::worker("w"), 8);
    config.max_deliveries = 3;
    Worker::new(
        Arc::clone(engine),
        Arc::clone(notifier) as Arc<dyn Notifier>,
        Arc::new(Fixed(report)),
        Arc::new(Unused),
        config,
    )
}

pub(super) fn too_big() -> Report {
    Report::unreachable(ValidationError::NotFound {
        path: "images/acme.jpg".into(),
    })
}

async fn a_run_records_verdict_and_deliveries(engine: Arc<dyn Engine>) -> Outcome {
    let queued = job("acme", Priority::Normal);
    submit(&*engine, &queued).await?;
    let notifier = Arc::new(RecordingNotifier::new());
    let worker = worker_of(&engine, &notifier, too_big());
    let held = lease(&*engine, &request("w", 1, T0)).await?;
    let state = worker
        .handle(&held[0])
        .await
        .map_err(|e| format!("handle: {e}"))?;
    ensure(state == JobState::Failed, || format!("final state {state}"))?;
    let events: Vec<Event> = notifier.sent().iter().map(|n| n.event).collect();
    ensure(events == [Event::OnStart, Event::OnFailure], || {
        format!("events sent {events:?}")
    })?;
    let stored = get(&*engine, &queued.key()).await?;
    let want_errors = too_big().error_map();
    ensure(
        stored.state == JobState::Failed
            && stored.errors == want_errors
            && stored.notifications.len() == 2
            && stored
                .notifications
                .iter()
                .all(|r| r.status == DeliveryStatus::Delivered),
        || format!("recorded {stored:?}"),
    )?;
    let again = lease(&*engine, &request("w", 1, at(1000))).await?;
    ensure(again.is_empty(), || {
        "a finished run was leased again".into()
    })
}

async fn poison_job_is_parked_with_on_failure(engine: Arc<dyn Engine>) -> Outcome {
    let queued = job("acme", Priority::Normal);
    submit(&*engine, &queued).await?;
    // Three workers take it and die (their leases expire); the fourth delivery is poison.
    let mut now = T0;
    let mut last = Vec::new();
    for _ in 0..4 {
        last = lease(&*engine, &request("w", 1, now)).await?;
        ensure(last.len() == 1, || {
            "the job was not handed out again".into()
        })?;
        now += Duration::from_secs(61);
    }
    ensure(last[0].lease.deliveries == 4, || {
        format!("deliveries {}", last[0].lease.deliveries)
    })?;
    let notifier = Arc::new(RecordingNotifier::new());
    let worker = worker_of(
        &engine,
        &notifier,
        Report::unreachable(ValidationError::NotFound {
            path: "never read".into(),
        }),
    );
    let state = worker
        .handle(&last[0])
        .await
        .map_err(|e| format!("handle: {e}"))?;
    ensure(state == JobState::Failed, || {
        format!("parked state {state}")
    })?;
    let sent = notifier.sent();
    let want = crate::runner::abandoned(3);
    ensure(
        sent.len() == 1
            && sent[0].event == Event::OnFailure
            && sent[0].payload.errors.as_ref() == Some(&want),
        || format!("parking sent {sent:?}"),
    )?;
    let stored = get(&*engine, &queued.key()).await?;
    ensure(stored.errors.as_ref() == Some(&want), || {
        format!("parked record {stored:?}")
    })?;
    let again = lease(&*engine, &request("w", 1, now + Duration::from_secs(1000))).await?;
    ensure(again.is_empty(), || "a parked job was leased again".into())
}

async fn a_redelivered_verdict_is_settled_not_rerun(engine: Arc<dyn Engine>) -> Outcome {
    let queued = job("acme", Priority::Normal);
    submit(&*engine, &queued).await?;
    let held = lease(&*engine, &request("a", 1, T0)).await?;
    // Worker a recorded the success verdict, then died before the final webhook.
    let verdict = JobUpdate::Verdict {
        errors: None,
        warnings: Vec::new(),
        at: at(1),
    };
    engine
        .record(&held[0].lease, &[verdict])
        .await
        .map_err(|e| format!("record: {e}"))?;
    let taken = lease(&*engine, &request("b", 1, at(61))).await?;
    ensure(
        taken.len() == 1 && taken[0].job.state == JobState::Success,
        || format!("takeover of a decided job: {taken:?}"),
    )?;
    let notifier = Arc::new(RecordingNotifier::new());
    // Validation would now say otherwise: it must not run again.
    let worker = worker_of(&engine, &notifier, too_big());
    let state = worker
        .handle(&taken[0])
        .await
        .map_err(|e| format!("handle: {e}"))?;
    let events: Vec<Event> = notifier.sent().iter().map(|n| n.event).collect();
    ensure(
        state == JobState::Success && events == [Event::OnSuccess],
        || format!("settled as {state} with {events:?}"),
    )?;
    Ok(())
}
