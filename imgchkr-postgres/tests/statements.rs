//! Statements per job, counted by Postgres itself (`pg_stat_statements`, top-level
//! statements only: what a function runs inside is not counted).
//!
//! - The trait's five steps of a job (submit, lease, record, record, finish) cost exactly
//!   five statements: one per engine call, each one round trip and one transaction.
//! - Driven by core's worker, a job costs one statement per engine call too; how many calls
//!   is core's choice (submit, two records, finish, and the batch's lease).

mod support;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use imgchkr_core::engine::{
    Admission, Bucket, Cancel, Lease, LeaseRequest, Leased, ListQuery, Lookup, QueueStats,
    Retention, Submitted, Token, WorkerId,
};
use imgchkr_core::notify::BoxFuture;
use imgchkr_core::worker::{Runtime, Validator, Worker, WorkerConfig};
use imgchkr_core::{
    DeliveryRecord, DeliveryStatus, Engine, Event, Job, JobKey, JobState, JobUpdate, Policy,
    RecordingNotifier, Report, StoreError,
};
use support::{PgCluster, ROOMY, T0, engine, fresh_schema, job, request};
use time::OffsetDateTime;

struct Tokio;

impl Runtime for Tokio {
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        tokio::spawn(task);
    }
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A validator answering the report of a 100x100 baseline JPEG header.
struct Small;

impl Validator for Small {
    fn validate(&self, _job: &Job) -> BoxFuture<'static, Report> {
        let jpeg = [
            0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x0B, 8, 0x00, 0x64, 0x00, 0x64, 1, 1, 0x11, 0,
        ];
        Box::pin(std::future::ready(Report::from_bytes(
            &jpeg,
            &Policy::default(),
        )))
    }
}

fn worker(engine: &Arc<dyn Engine>, notifier: &Arc<RecordingNotifier>) -> Arc<Worker> {
    Worker::new(
        Arc::clone(engine),
        Arc::clone(notifier) as _,
        Arc::new(Small),
        Arc::new(Tokio),
        WorkerConfig::new(WorkerId("w".to_owned()), 64),
    )
}

/// An engine that counts the calls made to it (core's worker decides how many).
struct Counting {
    inner: imgchkr_postgres::PostgresEngine,
    calls: AtomicU64,
}

impl Counting {
    fn count(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

impl Engine for Counting {
    fn submit<'a>(&'a self, job: &'a Job, admission: Admission) -> Fut<'a, Submitted> {
        self.count();
        self.inner.submit(job, admission)
    }
    fn get<'a>(&'a self, key: &'a JobKey) -> Fut<'a, Lookup> {
        self.count();
        self.inner.get(key)
    }
    fn list<'a>(&'a self, query: &'a ListQuery) -> Fut<'a, Vec<Job>> {
        self.count();
        self.inner.list(query)
    }
    fn cancel<'a>(&'a self, key: &'a JobKey, at: OffsetDateTime) -> Fut<'a, Cancel> {
        self.count();
        self.inner.cancel(key, at)
    }
    fn lease<'a>(&'a self, request: &'a LeaseRequest) -> Fut<'a, Vec<Leased>> {
        self.count();
        self.inner.lease(request)
    }
    fn heartbeat<'a>(
        &'a self,
        worker: &'a WorkerId,
        leases: &'a [Lease],
        now: OffsetDateTime,
        until: OffsetDateTime,
        status: &'a str,
    ) -> Fut<'a, Vec<Lease>> {
        self.count();
        self.inner.heartbeat(worker, leases, now, until, status)
    }
    fn record<'a>(&'a self, lease: &'a Lease, updates: &'a [JobUpdate]) -> Fut<'a, ()> {
        self.count();
        self.inner.record(lease, updates)
    }
    fn finish<'a>(&'a self, lease: &'a Lease, updates: &'a [JobUpdate]) -> Fut<'a, ()> {
        self.count();
        self.inner.finish(lease, updates)
    }
    fn release<'a>(&'a self, lease: &'a Lease) -> Fut<'a, ()> {
        self.count();
        self.inner.release(lease)
    }
    fn work_available(&self) -> BoxFuture<'_, ()> {
        self.count();
        self.inner.work_available()
    }
    fn purge<'a>(
        &'a self,
        retention: &'a Retention,
        now: OffsetDateTime,
        budget: u64,
    ) -> Fut<'a, u64> {
        self.count();
        self.inner.purge(retention, now, budget)
    }
    fn stats(&self) -> Fut<'_, QueueStats> {
        self.count();
        self.inner.stats()
    }
    fn take_token<'a>(
        &'a self,
        name: &'a str,
        bucket: Bucket,
        now: OffsetDateTime,
    ) -> Fut<'a, Token> {
        self.count();
        self.inner.take_token(name, bucket, now)
    }
    fn remember<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        expires: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Fut<'a, Option<String>> {
        self.count();
        self.inner.remember(key, value, expires, now)
    }
    fn check(&self) -> Fut<'_, ()> {
        self.count();
        self.inner.check()
    }
    fn is_durable(&self) -> bool {
        self.inner.is_durable()
    }
    fn is_shared(&self) -> bool {
        self.inner.is_shared()
    }
}

type Fut<'a, T> = BoxFuture<'a, Result<T, StoreError>>;

/// What one measured run saw: the statements Postgres ran in the engine's schema, and the
/// engine calls made.
struct Seen {
    statements: u64,
    calls: u64,
}

/// Top-level statements run so far that call the engine's functions in `schema`.
fn statements(cluster: &PgCluster, schema: &str) -> u64 {
    cluster
        .psql(
            "postgres",
            &format!(
                "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements \
                 WHERE query LIKE '%\"{schema}\".%'"
            ),
        )
        .trim()
        .parse()
        .unwrap()
}

/// Measures what `run` sends to Postgres.
async fn measure(
    cluster: &PgCluster,
    schema: &str,
    engine: &Counting,
    run: impl Future<Output = ()>,
) -> Seen {
    let before = statements(cluster, schema);
    let calls = engine.calls.load(Ordering::SeqCst);
    run.await;
    Seen {
        statements: statements(cluster, schema) - before,
        calls: engine.calls.load(Ordering::SeqCst) - calls,
    }
}

/// Runs `jobs` jobs the way core's worker does: submit, lease (`batch` at a time), then
/// `Worker::handle` (run_job's updates folded by core's `Session`, then finish).
async fn through_the_worker(engine: &Arc<Counting>, jobs: usize, batch: usize) {
    let notifier = Arc::new(RecordingNotifier::new());
    let worker = worker(&(Arc::clone(engine) as Arc<dyn Engine>), &notifier);
    let mut left = jobs;
    while left > 0 {
        let now = left.min(batch);
        for _ in 0..now {
            engine.submit(&job("acme"), ROOMY).await.unwrap();
        }
        let leased = engine.lease(&request("w", now, T0)).await.unwrap();
        assert_eq!(leased.len(), now);
        for taken in &leased {
            let state = worker.handle(taken).await.unwrap();
            assert!(state.is_final(), "ended {state}");
        }
        left -= now;
    }
    // Each job ran for real: onStart and its verdict's webhook were sent.
    let sent = notifier.sent();
    assert_eq!(sent.len(), 2 * jobs);
    assert_eq!(
        sent.iter().filter(|n| n.event == Event::OnStart).count(),
        jobs
    );
}

/// The trait's five steps of a job, one call each: submit, lease, record (onStart
/// pending), record (verdict, onStart outcome, final pending), finish (final outcome).
async fn five_steps(engine: &Counting, jobs: usize) {
    for _ in 0..jobs {
        let queued = job("five");
        engine.submit(&queued, ROOMY).await.unwrap();
        let leased = engine.lease(&request("w", 1, T0)).await.unwrap();
        let lease = &leased[0].lease;
        let urls = &queued.notification_urls;
        let pending = DeliveryRecord::pending(Event::OnStart, urls.on_start.clone());
        let final_pending = DeliveryRecord::pending(Event::OnSuccess, urls.on_success.clone());
        let verdict = JobUpdate::Verdict {
            errors: None,
            warnings: Vec::new(),
            at: T0,
        };
        engine
            .record(lease, &[JobUpdate::Delivery(pending.clone())])
            .await
            .unwrap();
        engine
            .record(
                lease,
                &[
                    verdict,
                    JobUpdate::Delivery(delivered(pending)),
                    JobUpdate::Delivery(final_pending.clone()),
                ],
            )
            .await
            .unwrap();
        engine
            .finish(lease, &[JobUpdate::Delivery(delivered(final_pending))])
            .await
            .unwrap();
    }
}

fn delivered(pending: DeliveryRecord) -> DeliveryRecord {
    let mut done = pending;
    done.status = DeliveryStatus::Delivered;
    done.attempts = 1;
    done.http_status = Some(200);
    done
}

const JOBS: usize = 20;

async fn counting(cluster: &PgCluster, schema: &str) -> Arc<Counting> {
    cluster.psql(
        "postgres",
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
    );
    let engine = Arc::new(Counting {
        inner: engine(&cluster.url("postgres"), schema).await,
        calls: AtomicU64::new(0),
    });
    // Warm up: each pooled connection prepares a statement the first time it runs it.
    five_steps(&engine, 4).await;
    through_the_worker(&engine, 4, 1).await;
    engine
}

fn cluster() -> PgCluster {
    PgCluster::start_with(&["shared_preload_libraries=pg_stat_statements"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_costs_five_statements() {
    let cluster = cluster();
    let schema = fresh_schema("five");
    let engine = counting(&cluster, &schema).await;
    let seen = measure(&cluster, &schema, &engine, five_steps(&engine, JOBS)).await;
    println!(
        "submit, lease, record, record, finish: {} statements for {JOBS} jobs ({:.2} per job), {} engine calls",
        seen.statements,
        seen.statements as f64 / JOBS as f64,
        seen.calls
    );
    assert_eq!(seen.calls, 5 * JOBS as u64);
    assert_eq!(seen.statements, 5 * JOBS as u64);
    // And each job was recorded in full.
    let done = engine.list(&ListQuery::tenant("five", 100)).await.unwrap();
    assert_eq!(done.len(), JOBS + 4);
    for job in done {
        assert_eq!(job.state, JobState::Success);
        let states: Vec<DeliveryStatus> = job.notifications.iter().map(|n| n.status).collect();
        assert_eq!(
            states,
            [DeliveryStatus::Delivered, DeliveryStatus::Delivered]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_worker_makes_one_statement_per_engine_call() {
    let cluster = cluster();
    let schema = fresh_schema("worker");
    let engine = counting(&cluster, &schema).await;
    for batch in [1, 10] {
        let seen = measure(
            &cluster,
            &schema,
            &engine,
            through_the_worker(&engine, JOBS, batch),
        )
        .await;
        println!(
            "core's worker, leases of {batch}: {} statements for {JOBS} jobs ({:.2} per job), {} engine calls",
            seen.statements,
            seen.statements as f64 / JOBS as f64,
            seen.calls
        );
        assert_eq!(seen.statements, seen.calls);
        // Submit, the lease (shared by a batch), two records, finish.
        let per_job = 4 * JOBS as u64 + (JOBS / batch) as u64;
        assert_eq!(seen.calls, per_job, "leases of {batch}");
    }
}
