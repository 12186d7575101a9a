//! The conformance suite of split engines ([`Split`](crate::engine::split::Split): records in a
//! shared store, work carried by a broker): what a broker can honour of [`run`](super::run)'s
//! guarantees, run against several processes of one deployment.
//!
//! ```ignore
//! #[tokio::test]
//! async fn conformance() {
//!     imgchkr_core::testkit::split::run(&MyFactory::new().await).await;
//! }
//! ```
//!
//! A broker pushes deliveries to a process ahead of its leases and takes them back from a
//! process that dies, so two things differ from the suite of whole engines:
//!
//! - **Deliveries arrive in their own time.** The cases lease through a patient wrapper that
//!   waits (bounded) until the wanted number of jobs came, or nothing more came for a quiet
//!   while. Order is checked only where a broker keeps it: FIFO within a tenant and priority,
//!   for one consumer taking one at a time ([`fifo_within_a_tenant_and_priority`]). Priority
//!   across priorities and round-robin across tenants hold only among the deliveries a
//!   process holds at a time; engines document what they give.
//! - **Takeover is redelivery**, not a lease deadline: a delivery is held while its process
//!   lives and handed to another as soon as it dies (a [`Process`] can be killed) or gives it
//!   back; poison jobs are parked once the broker's delivery limit is passed
//!   ([`MAX_DELIVERIES`]).
//!
//! Everything else is [`run`](super::run)'s cases unchanged (through the patient wrapper):
//! idempotent submission, leases of at most `max`, started records and delivery counts,
//! finish, release, recording, capacity and shares, per-process in-flight caps, the queue's
//! figures, cancel (a cancelled job never runs), tenant scoping, listing, retention and
//! tombstones, token buckets, remembered values, a whole run with core's worker.
//!
//! [`fifo_within_a_tenant_and_priority`]: cases
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::select;
use time::OffsetDateTime;

use super::{Outcome, T0, at, ensure, finish, get, job, keys, request, submit, worker};
use crate::engine::{
    Admission, Bucket, Cancel, Engine, Lease, LeaseRequest, Leased, ListQuery, Lookup, QueueStats,
    Retention, StoreError, Submitted, Token, WorkerId,
};
use crate::job::{Event, Job, JobKey, JobState, JobUpdate, Priority};
use crate::notify::{BoxFuture, RecordingNotifier};
use crate::policy::ValidationError;
use crate::source::Report;

/// The delivery limit a deployment of the suite must be configured with: a job handed out
/// this many times and given back each time is parked on the next (core's worker config of
/// the suite's worker cases says the same).
pub const MAX_DELIVERIES: u32 = 3;

/// How long a patient lease waits for more deliveries after the last one came.
const QUIET: Duration = Duration::from_millis(400);
/// How long a patient lease waits at most.
const PATIENCE: Duration = Duration::from_secs(15);

/// One process of a deployment: an engine with connections of its own.
pub struct Process {
    /// Its engine.
    pub engine: Arc<dyn Engine>,
    kill: std::sync::Mutex<Option<Kill>>,
}

type Kill = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

impl Process {
    /// A process using `engine`; `kill` ends its connections at once, as the death of the
    /// process would (nothing acknowledged or given back).
    pub fn new(
        engine: Arc<dyn Engine>,
        kill: impl FnOnce() -> BoxFuture<'static, ()> + Send + 'static,
    ) -> Process {
        Process {
            engine,
            kill: std::sync::Mutex::new(Some(Box::new(kill))),
        }
    }

    /// Kills it (see [`Process::new`]).
    pub async fn kill(self) {
        let kill = self.kill.into_inner().ok().flatten();
        if let Some(kill) = kill {
            kill().await
        }
    }
}

/// A fresh deployment: one store and one broker (empty, names of their own), any number of
/// processes on them.
pub trait Deployment: Send + Sync {
    /// A new process of the deployment, its queue parking jobs after [`MAX_DELIVERIES`].
    fn process(&self) -> BoxFuture<'_, Process>;
    /// Sleeps `duration` (the caller's runtime: core has none).
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
}

/// Makes a fresh, empty deployment for each case.
pub trait Factory: Sync {
    /// A new deployment holding no job.
    fn deployment(&self) -> BoxFuture<'_, Arc<dyn Deployment>>;
}

/// One case of the split suite.
pub struct Case {
    /// What it checks.
    pub name: &'static str,
    run: Run,
}

enum Run {
    /// A case of the whole-engine suite, on one process.
    Shared(fn(Arc<dyn Engine>) -> BoxFuture<'static, Outcome>),
    /// A case of its own, on a deployment.
    Own(fn(Arc<dyn Deployment>) -> BoxFuture<'static, Outcome>),
}

/// The whole-engine cases a broker honours as they are.
const SHARED: &[&str] = &[
    "submit_records_a_queued_job",
    "submit_is_idempotent_per_key",
    "lease_takes_at_most_max",
    "lease_marks_started_and_counts_deliveries",
    "finish_records_and_ends_the_lease",
    "release_lets_any_worker_take_over",
    "record_applies_updates_in_order",
    "capacity_and_tenant_share_bound_the_queue",
    "tenant_in_flight_cap_skips_busy_tenants",
    "stats_count_waiting_and_in_flight",
    "token_buckets_refill_at_their_rate",
    "remember_keeps_the_first_value_until_it_expires",
    "cancel_takes_a_queued_job_out",
    "cancel_refuses_a_started_job",
    "ids_are_scoped_per_tenant",
    "list_is_newest_first_with_cursor_and_state",
    "retention_expires_with_tombstones",
    "retention_count_is_per_tenant",
    "a_run_records_verdict_and_deliveries",
];

macro_rules! own {
    ($name:ident) => {
        Case {
            name: stringify!($name),
            run: Run::Own(|deployment| Box::pin($name(deployment))),
        }
    };
}

/// Every case of the split suite.
pub fn cases() -> Vec<Case> {
    let mut all: Vec<Case> = super::cases()
        .into_iter()
        .filter(|case| SHARED.contains(&case.name))
        .map(|case| Case {
            name: case.name,
            run: Run::Shared(case.run),
        })
        .collect();
    all.extend([
        own!(fifo_within_a_tenant_and_priority),
        own!(a_publishing_process_holds_no_delivery),
        own!(a_dead_process_jobs_are_delivered_again),
        own!(a_live_holder_keeps_its_delivery),
        own!(a_job_past_the_delivery_limit_is_parked_with_on_failure),
        own!(a_verdict_redelivered_after_a_death_is_settled_not_rerun),
    ]);
    all
}

/// Runs every case against deployments from `factory`; panics naming the cases that failed.
pub async fn run(factory: &dyn Factory) {
    let mut failed = Vec::new();
    for case in cases() {
        let deployment = factory.deployment().await;
        let outcome = match case.run {
            Run::Shared(run) => {
                let process = deployment.process().await;
                let patient = Arc::new(Patient {
                    inner: Arc::clone(&process.engine),
                    deployment: Arc::clone(&deployment),
                });
                let outcome = run(patient).await;
                process.kill().await;
                outcome
            }
            Run::Own(run) => run(Arc::clone(&deployment)).await,
        };
        if let Err(why) = outcome {
            failed.push(format!("{}: {why}", case.name));
        }
    }
    assert!(
        failed.is_empty(),
        "{} split conformance case(s) failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

/// Leases `request.max` jobs, waiting for deliveries to arrive: returns once it has them,
/// once nothing more came for [`QUIET`], or after [`PATIENCE`].
pub async fn lease_patiently(
    engine: &dyn Engine,
    deployment: &dyn Deployment,
    request: &LeaseRequest,
) -> Result<Vec<Leased>, StoreError> {
    let started = Instant::now();
    let mut progress = Instant::now();
    let mut got = Vec::new();
    loop {
        let mut rest = request.clone();
        rest.max = request.max.saturating_sub(got.len()).max(1);
        let batch = engine.lease(&rest).await?;
        if !batch.is_empty() {
            progress = Instant::now();
        }
        got.extend(batch);
        if got.len() >= request.max || progress.elapsed() >= QUIET || started.elapsed() >= PATIENCE
        {
            return Ok(got);
        }
        // A wake-up, or a look anyway after a short while (a process holding only
        // deliveries it may not take now would wake at once, every time).
        let wake = engine.work_available();
        let _ = select(wake, deployment.sleep(Duration::from_millis(50))).await;
        deployment.sleep(Duration::from_millis(5)).await;
    }
}

/// An engine whose leases wait for the broker's deliveries ([`lease_patiently`]): the
/// whole-engine cases run through it.
struct Patient {
    inner: Arc<dyn Engine>,
    deployment: Arc<dyn Deployment>,
}

impl Engine for Patient {
    fn submit<'a>(
        &'a self,
        job: &'a Job,
        admission: Admission,
    ) -> BoxFuture<'a, Result<Submitted, StoreError>> {
        self.inner.submit(job, admission)
    }
    fn get<'a>(&'a self, key: &'a JobKey) -> BoxFuture<'a, Result<Lookup, StoreError>> {
        self.inner.get(key)
    }
    fn list<'a>(&'a self, query: &'a ListQuery) -> BoxFuture<'a, Result<Vec<Job>, StoreError>> {
        self.inner.list(query)
    }
    fn cancel<'a>(
        &'a self,
        key: &'a JobKey,
        at: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Cancel, StoreError>> {
        self.inner.cancel(key, at)
    }
    fn lease<'a>(
        &'a self,
        request: &'a LeaseRequest,
    ) -> BoxFuture<'a, Result<Vec<Leased>, StoreError>> {
        Box::pin(lease_patiently(&*self.inner, &*self.deployment, request))
    }
    fn heartbeat<'a>(
        &'a self,
        worker: &'a WorkerId,
        leases: &'a [Lease],
        now: OffsetDateTime,
        until: OffsetDateTime,
        status: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Lease>, StoreError>> {
        self.inner.heartbeat(worker, leases, now, until, status)
    }
    fn record<'a>(
        &'a self,
        lease: &'a Lease,
        updates: &'a [JobUpdate],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.record(lease, updates)
    }
    fn finish<'a>(
        &'a self,
        lease: &'a Lease,
        updates: &'a [JobUpdate],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.finish(lease, updates)
    }
    fn release<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.release(lease)
    }
    fn work_available(&self) -> BoxFuture<'_, ()> {
        self.inner.work_available()
    }
    fn purge<'a>(
        &'a self,
        retention: &'a Retention,
        now: OffsetDateTime,
        budget: u64,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        self.inner.purge(retention, now, budget)
    }
    fn stats(&self) -> BoxFuture<'_, Result<QueueStats, StoreError>> {
        self.inner.stats()
    }
    fn take_token<'a>(
        &'a self,
        name: &'a str,
        bucket: Bucket,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Token, StoreError>> {
        self.inner.take_token(name, bucket, now)
    }
    fn remember<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        expires: OffsetDateTime,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        self.inner.remember(key, value, expires, now)
    }
    fn check(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.check()
    }
    fn is_durable(&self) -> bool {
        self.inner.is_durable()
    }
    fn is_shared(&self) -> bool {
        self.inner.is_shared()
    }
}

async fn lease(
    process: &Process,
    deployment: &dyn Deployment,
    request: &LeaseRequest,
) -> Result<Vec<Leased>, String> {
    lease_patiently(&*process.engine, deployment, request)
        .await
        .map_err(|e| format!("lease: {e}"))
}

/// Leases exactly one job, or fails the case.
async fn lease_one(
    process: &Process,
    deployment: &dyn Deployment,
    request: &LeaseRequest,
) -> Result<Leased, String> {
    let mut held = lease(process, deployment, request).await?;
    match held.len() {
        1 => Ok(held.remove(0)),
        n => Err(format!(
            "expected one job to lease, got {n}: {:?}",
            keys(&held)
        )),
    }
}

async fn fifo_within_a_tenant_and_priority(deployment: Arc<dyn Deployment>) -> Outcome {
    let process = deployment.process().await;
    let engine = &*process.engine;
    let mix = [
        ("a", Priority::Normal),
        ("b", Priority::High),
        ("a", Priority::Normal),
        ("a", Priority::Low),
        ("b", Priority::High),
        ("a", Priority::Normal),
        ("b", Priority::Normal),
        ("a", Priority::Low),
        ("b", Priority::High),
    ];
    let jobs: Vec<Job> = mix.iter().map(|(t, p)| job(t, *p)).collect();
    for j in &jobs {
        submit(engine, j).await?;
    }
    // One at a time, as a worker with one free slot takes them.
    let mut got = Vec::new();
    for i in 0..jobs.len() {
        let taken = lease_one(&process, &*deployment, &request("w", 1, at(i as u64))).await?;
        finish(engine, &taken.lease).await?;
        got.push(taken.lease.key);
    }
    // Each (tenant, priority) line in submission order.
    let mut lines: HashMap<(String, Priority), Vec<JobKey>> = HashMap::new();
    for j in &jobs {
        lines
            .entry((j.tenant.clone(), j.priority))
            .or_default()
            .push(j.key());
    }
    for ((tenant, priority), want) in &lines {
        let seen: Vec<JobKey> = got.iter().filter(|k| want.contains(k)).cloned().collect();
        ensure(&seen == want, || {
            format!(
                "{tenant}'s {} jobs leased as {seen:?}, submitted {want:?}",
                priority.name()
            )
        })?;
    }
    process.kill().await;
    Ok(())
}

async fn a_publishing_process_holds_no_delivery(deployment: Arc<dyn Deployment>) -> Outcome {
    // An API process submits (and reads) only: it must not take deliveries to itself, or
    // the workers could not have them.
    let api = deployment.process().await;
    let jobs: Vec<Job> = (0..3).map(|_| job("acme", Priority::Normal)).collect();
    for j in &jobs {
        submit(&*api.engine, j).await?;
        get(&*api.engine, &j.key()).await?;
    }
    let worker = deployment.process().await;
    let held = lease(&worker, &*deployment, &request("w", 3, T0)).await?;
    let mut got = keys(&held);
    got.sort_by_key(|k| k.id.0);
    let mut want: Vec<JobKey> = jobs.iter().map(Job::key).collect();
    want.sort_by_key(|k| k.id.0);
    ensure(got == want, || {
        format!("the worker leased {got:?} of the API's {want:?}")
    })?;
    for leased in &held {
        finish(&*worker.engine, &leased.lease).await?;
    }
    api.kill().await;
    worker.kill().await;
    Ok(())
}

async fn a_dead_process_jobs_are_delivered_again(deployment: Arc<dyn Deployment>) -> Outcome {
    let first = deployment.process().await;
    let queued = job("acme", Priority::Normal);
    submit(&*first.engine, &queued).await?;
    let held = lease_one(&first, &*deployment, &request("a", 1, at(0))).await?;
    ensure(held.lease.deliveries == 1, || {
        format!("first lease {:?}", held.lease)
    })?;
    first.kill().await;
    // No deadline passes: the broker hands the job to a live consumer as soon as its holder
    // is gone.
    let second = deployment.process().await;
    let again = lease_one(&second, &*deployment, &request("b", 1, at(1))).await?;
    ensure(
        again.lease.key == queued.key()
            && again.lease.deliveries == 2
            && again.lease.worker == worker("b"),
        || format!("redelivery lease {:?}", again.lease),
    )?;
    ensure(
        again.job.state == JobState::Started && again.job.started_at == Some(at(0)),
        || format!("redelivered record {:?}: startedAt must stay", again.job),
    )?;
    let lost = second
        .engine
        .heartbeat(
            &worker("b"),
            std::slice::from_ref(&again.lease),
            at(2),
            at(62),
            "",
        )
        .await
        .map_err(|e| format!("heartbeat: {e}"))?;
    ensure(lost.is_empty(), || {
        format!("the live holder's heartbeat lost its lease: {lost:?}")
    })?;
    finish(&*second.engine, &again.lease).await?;
    let stats = second
        .engine
        .stats()
        .await
        .map_err(|e| format!("stats: {e}"))?;
    ensure(stats.waiting == 0 && stats.in_flight == 0, || {
        format!("after the redelivered job finished: {stats:?}")
    })?;
    second.kill().await;
    Ok(())
}

async fn a_live_holder_keeps_its_delivery(deployment: Arc<dyn Deployment>) -> Outcome {
    let holder = deployment.process().await;
    let other = deployment.process().await;
    submit(&*holder.engine, &job("acme", Priority::Normal)).await?;
    let held = lease_one(&holder, &*deployment, &request("a", 1, at(0))).await?;
    // Long past the lease's `until`: a broker delivery has no deadline while its holder lives.
    let late = lease(&other, &*deployment, &request("b", 1, at(1000))).await?;
    ensure(late.is_empty(), || {
        format!("a live holder's job went to another: {:?}", keys(&late))
    })?;
    let lost = holder
        .engine
        .heartbeat(
            &worker("a"),
            std::slice::from_ref(&held.lease),
            at(1000),
            at(1060),
            "",
        )
        .await
        .map_err(|e| format!("heartbeat: {e}"))?;
    ensure(lost.is_empty(), || {
        format!("a held delivery reported lost: {lost:?}")
    })?;
    finish(&*holder.engine, &held.lease).await?;
    holder.kill().await;
    let after = lease(&other, &*deployment, &request("b", 1, at(1001))).await?;
    ensure(after.is_empty(), || {
        format!("a finished job was delivered again: {:?}", keys(&after))
    })?;
    other.kill().await;
    Ok(())
}

async fn a_job_past_the_delivery_limit_is_parked_with_on_failure(
    deployment: Arc<dyn Deployment>,
) -> Outcome {
    let api = deployment.process().await;
    let queued = job("acme", Priority::Normal);
    submit(&*api.engine, &queued).await?;
    // MAX_DELIVERIES processes in turn take it and die.
    for n in 1..=MAX_DELIVERIES {
        let doomed = deployment.process().await;
        let held = lease_one(&doomed, &*deployment, &request("w", 1, at(n as u64))).await?;
        ensure(held.lease.deliveries == n, || {
            format!("delivery {n} counted as {}", held.lease.deliveries)
        })?;
        doomed.kill().await;
    }
    // The broker gives up on it; the next worker parks it without running it.
    let last = deployment.process().await;
    let parked = lease_one(&last, &*deployment, &request("w", 1, at(100))).await?;
    ensure(parked.lease.deliveries > MAX_DELIVERIES, || {
        format!(
            "past the limit the delivery says {} (want more than {MAX_DELIVERIES})",
            parked.lease.deliveries
        )
    })?;
    let notifier = Arc::new(RecordingNotifier::new());
    let never = Report::unreachable(ValidationError::NotFound {
        path: "never read".into(),
    });
    let worker = super::lifecycle::worker_of(&last.engine, &notifier, never);
    let state = worker
        .handle(&parked)
        .await
        .map_err(|e| format!("handle: {e}"))?;
    ensure(state == JobState::Failed, || {
        format!("parked state {state}")
    })?;
    let sent = notifier.sent();
    let want = crate::runner::abandoned(MAX_DELIVERIES);
    ensure(
        sent.len() == 1
            && sent[0].event == Event::OnFailure
            && sent[0].payload.errors.as_ref() == Some(&want),
        || format!("parking sent {sent:?}"),
    )?;
    let stored = get(&*api.engine, &queued.key()).await?;
    ensure(
        stored.state == JobState::Failed && stored.errors.as_ref() == Some(&want),
        || format!("parked record {stored:?}"),
    )?;
    last.kill().await;
    let after = deployment.process().await;
    let again = lease(&after, &*deployment, &request("w", 1, at(200))).await?;
    // The acknowledgement follows the record, and a process killed right after may not have
    // written it to the broker: at least once, the parked job can come back. It must come
    // back parked, and settle without running or sending anything again.
    if let Some(redelivered) = again.first() {
        ensure(
            again.len() == 1 && redelivered.job.state == JobState::Failed,
            || format!("after parking, delivered again: {again:?}"),
        )?;
        let resent = Arc::new(RecordingNotifier::new());
        let never = Report::unreachable(ValidationError::NotFound {
            path: "never read".into(),
        });
        let worker = super::lifecycle::worker_of(&after.engine, &resent, never);
        let state = worker
            .handle(redelivered)
            .await
            .map_err(|e| format!("handle the redelivery: {e}"))?;
        ensure(
            state == JobState::Failed && resent.sent().is_empty(),
            || {
                format!(
                    "a parked job's redelivery ended {state}, sent {:?}",
                    resent.sent()
                )
            },
        )?;
    }
    let stats = api
        .engine
        .stats()
        .await
        .map_err(|e| format!("stats: {e}"))?;
    ensure(stats.waiting == 0 && stats.in_flight == 0, || {
        format!("after parking: {stats:?}")
    })?;
    after.kill().await;
    api.kill().await;
    Ok(())
}

async fn a_verdict_redelivered_after_a_death_is_settled_not_rerun(
    deployment: Arc<dyn Deployment>,
) -> Outcome {
    let first = deployment.process().await;
    let queued = job("acme", Priority::Normal);
    submit(&*first.engine, &queued).await?;
    let held = lease_one(&first, &*deployment, &request("a", 1, T0)).await?;
    // The worker recorded the success verdict, then died before the final webhook.
    let verdict = JobUpdate::Verdict {
        errors: None,
        warnings: Vec::new(),
        at: at(1),
    };
    first
        .engine
        .record(&held.lease, &[verdict])
        .await
        .map_err(|e| format!("record: {e}"))?;
    first.kill().await;
    let second = deployment.process().await;
    let taken = lease_one(&second, &*deployment, &request("b", 1, at(2))).await?;
    ensure(taken.job.state == JobState::Success, || {
        format!("redelivery of a decided job: {:?}", taken.job)
    })?;
    let notifier = Arc::new(RecordingNotifier::new());
    // Validation would now say otherwise: it must not run again.
    let worker =
        super::lifecycle::worker_of(&second.engine, &notifier, super::lifecycle::too_big());
    let state = worker
        .handle(&taken)
        .await
        .map_err(|e| format!("handle: {e}"))?;
    let events: Vec<Event> = notifier.sent().iter().map(|n| n.event).collect();
    ensure(
        state == JobState::Success && events == [Event::OnSuccess],
        || format!("settled as {state} with {events:?}"),
    )?;
    second.kill().await;
    Ok(())
}
