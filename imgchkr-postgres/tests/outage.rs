//! Postgres away and back: every call fails with `Unavailable` within its bound (never a
//! hang) and works again once Postgres returns; nothing committed is lost across an
//! immediate shutdown (no checkpoint: only the write-ahead log has it).

mod support;

use std::future::Future;
use std::time::{Duration, Instant};

use imgchkr_core::engine::{Bucket, ListQuery, Lookup, Retention, Submitted, WorkerId};
use imgchkr_core::{Engine, JobKey, JobState, JobUpdate, StoreError};
use imgchkr_postgres::{PostgresConfig, PostgresEngine};
use support::{
    OP_TIMEOUT, PgCluster, ROOMY, T0, at, engine, free_port, fresh_schema, job, request,
};

/// The most a failing call may take: its bound, and scheduling slack on a busy machine.
const FAIL_WITHIN: Duration = Duration::from_millis(2500);

/// Runs `call`, which must fail with `Unavailable` within `FAIL_WITHIN`.
async fn fails_fast<T: std::fmt::Debug>(
    what: &str,
    call: impl Future<Output = Result<T, StoreError>>,
) {
    let started = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .unwrap_or_else(|_| panic!("{what} hung while Postgres was down"));
    let took = started.elapsed();
    assert!(
        matches!(outcome, Err(StoreError::Unavailable(_))),
        "{what} while Postgres was down: {outcome:?}"
    );
    assert!(took < FAIL_WITHIN, "{what} took {took:?} to fail");
}

async fn until_back(engine: &PostgresEngine) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while engine.check().await.is_err() {
        assert!(Instant::now() < deadline, "the engine did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_fast_while_postgres_is_down_and_work_again_after() {
    let mut cluster = PgCluster::start();
    let engine = engine(&cluster.url("postgres"), &fresh_schema("outage")).await;
    let held = job("acme");
    engine.submit(&held, ROOMY).await.unwrap();
    let leased = engine.lease(&request("w", 1, T0)).await.unwrap();
    let lease = leased[0].lease.clone();
    // The idle worker's listener is connected before the outage.
    engine.work_available().await;

    cluster.stop_immediate();
    let key = held.key();
    let other = job("acme");
    let bucket = Bucket {
        rate: 1.0,
        burst: 1,
    };
    let update = [JobUpdate::Started { at: T0 }];
    fails_fast("submit", engine.submit(&other, ROOMY)).await;
    fails_fast("get", engine.get(&key)).await;
    fails_fast("list", engine.list(&ListQuery::all(10))).await;
    fails_fast("cancel", engine.cancel(&key, T0)).await;
    fails_fast("lease", engine.lease(&request("w", 1, T0))).await;
    fails_fast(
        "heartbeat",
        engine.heartbeat(&lease.worker, std::slice::from_ref(&lease), T0, at(60), ""),
    )
    .await;
    fails_fast("record", engine.record(&lease, &update)).await;
    fails_fast("finish", engine.finish(&lease, &update)).await;
    fails_fast("release", engine.release(&lease)).await;
    fails_fast("purge", engine.purge(&Retention::default(), T0, 10)).await;
    fails_fast("stats", engine.stats()).await;
    fails_fast("take_token", engine.take_token("b", bucket, T0)).await;
    fails_fast("remember", engine.remember("k", "v", at(10), T0)).await;
    fails_fast("check", engine.check()).await;
    // The idle worker's wait resolves (no hang, and no spin: after about the block time).
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), engine.work_available())
        .await
        .expect("work_available hung while Postgres was down");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(150) && took < FAIL_WITHIN,
        "work_available while Postgres was down resolved after {took:?}"
    );

    // Back: the same engine reconnects by itself, and what was committed is there.
    cluster.restart();
    until_back(&engine).await;
    match engine.get(&key).await.unwrap() {
        Lookup::Found(job) => assert_eq!(job.state, JobState::Started),
        other => panic!("the leased job after the restart: {other:?}"),
    }
    assert_eq!(engine.submit(&other, ROOMY).await, Ok(Submitted::New));
    let taken = engine.lease(&request("w", 1, T0)).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].lease.key, other.key());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_fails_fast_when_nothing_listens() {
    let mut config = PostgresConfig::new(format!(
        "postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable",
        free_port()
    ));
    config.op_timeout = OP_TIMEOUT;
    config.migrate_timeout = OP_TIMEOUT;
    let started = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(20), PostgresEngine::connect(config))
        .await
        .expect("connect hung");
    assert!(
        matches!(outcome, Err(StoreError::Unavailable(_))),
        "connect to nothing: {outcome:?}"
    );
    assert!(
        started.elapsed() < FAIL_WITHIN,
        "connect took {:?} to fail",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_jobs_survive_an_immediate_shutdown() {
    let mut cluster = PgCluster::start();
    let url = cluster.url("postgres");
    let schema = fresh_schema("durable");
    let engine = engine(&url, &schema).await;
    let running = job("acme");
    let waiting = job("acme");
    engine.submit(&running, ROOMY).await.unwrap();
    engine.submit(&waiting, ROOMY).await.unwrap();
    let leased = engine.lease(&request("a", 1, T0)).await.unwrap();
    assert_eq!(leased[0].lease.key, running.key());
    let verdict = JobUpdate::Verdict {
        errors: None,
        warnings: vec!["kept".to_owned()],
        at: at(1),
    };
    engine
        .record(&leased[0].lease, std::slice::from_ref(&verdict))
        .await
        .unwrap();

    // Immediate: no checkpoint, the server's processes quit at once; only the write-ahead
    // log holds what was committed.
    cluster.stop_immediate();
    cluster.restart();
    until_back(&engine).await;

    let found = |lookup| match lookup {
        Ok(Lookup::Found(job)) => *job,
        other => panic!("after the restart: {other:?}"),
    };
    let decided = found(engine.get(&running.key()).await);
    assert_eq!(decided.state, JobState::Success);
    assert_eq!(decided.warnings, ["kept"]);
    assert_eq!(
        found(engine.get(&waiting.key()).await).state,
        JobState::Queued
    );
    // The queue and the lease survived too: the waiting job is next, and the leased one is
    // taken over once its lease expires, as its second delivery.
    let next = engine.lease(&request("b", 5, at(2))).await.unwrap();
    let keys: Vec<JobKey> = next.iter().map(|l| l.lease.key.clone()).collect();
    assert_eq!(keys, [waiting.key()]);
    let taken = engine.lease(&request("b", 5, at(60))).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].lease.key, running.key());
    assert_eq!(taken[0].lease.deliveries, 2);
    assert_eq!(taken[0].lease.worker, WorkerId("b".to_owned()));
    // A fresh engine (another process) sees the same.
    let other = support::engine(&url, &schema).await;
    let stats = other.stats().await.unwrap();
    assert_eq!((stats.waiting, stats.in_flight), (0, 2));
}
