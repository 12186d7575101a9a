//! Several engines (processes) on one database and schema: what one does, the others see;
//! concurrent workers never get the same job (SKIP LOCKED); a submission through one wakes
//! the others' idle workers (LISTEN/NOTIFY). And layout checks: tenant names cannot collide,
//! capped tenants are skipped however many, purge stays within its budget.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use imgchkr_core::engine::{Cancel, ListQuery, Lookup, Retention, WorkerId};
use imgchkr_core::{Engine, JobKey, JobState, JobUpdate};
use support::{PgCluster, ROOMY, T0, at, config, engine, fresh_schema, job, request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_engines_lease_is_seen_by_another() {
    let cluster = PgCluster::start();
    let schema = fresh_schema("shared");
    let a = engine(&cluster.url("postgres"), &schema).await;
    let b = engine(&cluster.url("postgres"), &schema).await;
    let first = job("acme");
    let second = job("acme");
    a.submit(&first, ROOMY).await.unwrap();
    a.submit(&second, ROOMY).await.unwrap();

    let by_b = b.lease(&request("b", 1, T0)).await.unwrap();
    assert_eq!(by_b.len(), 1);
    assert_eq!(by_b[0].lease.key, first.key());
    match a.get(&first.key()).await.unwrap() {
        Lookup::Found(job) => assert_eq!(job.state, JobState::Started),
        other => panic!("a's view of b's job: {other:?}"),
    }
    let stats = a.stats().await.unwrap();
    assert_eq!((stats.waiting, stats.in_flight), (1, 1));
    // a's worker gets the other job only, and cannot heartbeat b's lease.
    let by_a = a.lease(&request("a", 5, T0)).await.unwrap();
    let keys: Vec<JobKey> = by_a.iter().map(|l| l.lease.key.clone()).collect();
    assert_eq!(keys, [second.key()]);
    let mut stolen = by_b[0].lease.clone();
    stolen.worker = WorkerId("a".to_owned());
    let lost = a
        .heartbeat(
            &stolen.worker,
            std::slice::from_ref(&stolen),
            at(1),
            at(61),
            "",
        )
        .await
        .unwrap();
    assert_eq!(lost, [stolen]);
    // b's heartbeat keeps it: at its old deadline a does not take it over.
    let kept = b
        .heartbeat(
            &by_b[0].lease.worker,
            std::slice::from_ref(&by_b[0].lease),
            at(30),
            at(90),
            "",
        )
        .await
        .unwrap();
    assert!(kept.is_empty());
    let at_old_deadline = a.lease(&request("a", 5, at(60))).await.unwrap();
    let keys: Vec<JobKey> = at_old_deadline
        .iter()
        .map(|l| l.lease.key.clone())
        .collect();
    // Only a's own expired lease comes back.
    assert_eq!(keys, [second.key()]);
    // b finishes: a sees the verdict, and both see the worker b heard from.
    let verdict = JobUpdate::Verdict {
        errors: None,
        warnings: Vec::new(),
        at: at(31),
    };
    b.finish(&by_b[0].lease, &[verdict]).await.unwrap();
    match a.get(&first.key()).await.unwrap() {
        Lookup::Found(job) => assert_eq!(job.state, JobState::Success),
        other => panic!("a's view of b's finished job: {other:?}"),
    }
    let workers: Vec<String> = a
        .stats()
        .await
        .unwrap()
        .workers
        .into_iter()
        .map(|w| w.worker.0)
        .collect();
    assert_eq!(workers, ["a", "b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_workers_never_get_the_same_job() {
    let cluster = PgCluster::start();
    let schema = fresh_schema("race");
    let a = engine(&cluster.url("postgres"), &schema).await;
    let b = engine(&cluster.url("postgres"), &schema).await;
    let mut submitted = HashSet::new();
    for i in 0..60 {
        let j = job(["x", "y", "z"][i % 3]);
        submitted.insert(j.key());
        a.submit(&j, ROOMY).await.unwrap();
    }
    let drain = |engine: imgchkr_postgres::PostgresEngine, name: &'static str| async move {
        let mut got = Vec::new();
        // Bounded: 60 jobs in batches of up to 3 take at most 20 non-empty leases.
        for _ in 0..100 {
            let batch = engine.lease(&request(name, 3, T0)).await.unwrap();
            if batch.is_empty() {
                break;
            }
            got.extend(batch.into_iter().map(|l| l.lease.key));
        }
        got
    };
    let (from_a, from_b) = tokio::join!(
        tokio::spawn(drain(a.clone(), "a")),
        tokio::spawn(drain(b.clone(), "b"))
    );
    let (from_a, from_b) = (from_a.unwrap(), from_b.unwrap());
    let mut seen = HashSet::new();
    for key in from_a.iter().chain(&from_b) {
        assert!(seen.insert(key.clone()), "{key} was handed out twice");
    }
    assert_eq!(seen, submitted, "every job handed out once");
    let stats = b.stats().await.unwrap();
    assert_eq!((stats.waiting, stats.in_flight), (0, 60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_through_one_engine_wakes_anothers_idle_worker() {
    let cluster = PgCluster::start();
    let schema = fresh_schema("bell");
    let mut config = config(&cluster.url("postgres"), &schema);
    config.block_time = Duration::from_secs(1);
    let idle = imgchkr_postgres::PostgresEngine::connect(config)
        .await
        .unwrap();
    let api = engine(&cluster.url("postgres"), &schema).await;
    // The first wait starts the listener, and ends once it listens (a submission made before
    // would have notified nobody).
    let started = Instant::now();
    idle.work_available().await;
    assert!(started.elapsed() < Duration::from_millis(900));
    // Nothing queued: the wait lasts about the block time (and no longer).
    assert!(idle.lease(&request("w", 1, T0)).await.unwrap().is_empty());
    let started = Instant::now();
    idle.work_available().await;
    let idle_for = started.elapsed();
    assert!(
        idle_for >= Duration::from_millis(900) && idle_for < Duration::from_secs(3),
        "an idle wait with nothing queued lasted {idle_for:?}"
    );
    // A submission while it waits wakes it well before the block time.
    let waiting = tokio::spawn(async move {
        let started = Instant::now();
        idle.work_available().await;
        (started.elapsed(), idle)
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let queued = job("acme");
    api.submit(&queued, ROOMY).await.unwrap();
    let (woke_after, idle) = waiting.await.unwrap();
    assert!(
        woke_after < Duration::from_millis(800),
        "woken {woke_after:?} after it began waiting"
    );
    let taken = idle.lease(&request("w", 1, T0)).await.unwrap();
    assert_eq!(taken[0].lease.key, queued.key());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_that_leaves_jobs_waiting_leaves_a_wake_up() {
    let cluster = PgCluster::start();
    let schema = fresh_schema("backlog");
    let mut config = config(&cluster.url("postgres"), &schema);
    config.block_time = Duration::from_secs(1);
    let busy = imgchkr_postgres::PostgresEngine::connect(config.clone())
        .await
        .unwrap();
    let other = imgchkr_postgres::PostgresEngine::connect(config)
        .await
        .unwrap();
    // Another worker, idle and listening, is woken by the submissions.
    other.work_available().await;
    for _ in 0..2 {
        busy.submit(&job("acme"), ROOMY).await.unwrap();
    }
    for _ in 0..2 {
        let started = Instant::now();
        other.work_available().await;
        assert!(started.elapsed() < Duration::from_millis(500));
    }
    // A worker with one free slot leaves a job waiting: its next wait (a slot freed) ends at
    // once, not after the block time.
    assert_eq!(busy.lease(&request("w", 1, T0)).await.unwrap().len(), 1);
    let started = Instant::now();
    busy.work_available().await;
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_millis(500),
        "waited {waited:?} with a job waiting"
    );
    assert_eq!(busy.lease(&request("w", 1, T0)).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_names_cannot_collide() {
    let cluster = PgCluster::start();
    let engine = engine(&cluster.url("postgres"), &fresh_schema("names")).await;
    let tenants = [
        "",
        ":",
        "a",
        "a:b",
        "a:b:",
        "b",
        "any",
        "g:any",
        "ä 🚀\n\"x\"",
        "wait:a",
    ];
    let id = imgchkr_core::JobId::random();
    let mut jobs = Vec::new();
    for (i, tenant) in tenants.iter().enumerate() {
        let mut j = job(tenant);
        j.id = id;
        j.asset_path = imgchkr_core::AssetPath::Local {
            path: format!("{i}.jpg"),
        };
        engine.submit(&j, ROOMY).await.unwrap();
        jobs.push(j);
    }
    for j in &jobs {
        match engine.get(&j.key()).await.unwrap() {
            Lookup::Found(found) => assert_eq!(*found, *j),
            other => panic!("tenant {:?}: {other:?}", j.tenant),
        }
        let listed = engine
            .list(&ListQuery::tenant(j.tenant.clone(), 100))
            .await
            .unwrap();
        assert_eq!(
            listed,
            std::slice::from_ref(j),
            "tenant {:?}'s listing",
            j.tenant
        );
    }
    // Cancelling one tenant's job touches no other's.
    match engine.cancel(&jobs[3].key(), at(1)).await.unwrap() {
        Cancel::Cancelled(job) => assert_eq!(job.tenant, "a:b"),
        other => panic!("cancel: {other:?}"),
    }
    let stats = engine.stats().await.unwrap();
    assert_eq!(stats.waiting, tenants.len() as u64 - 1);
    let leased = engine.lease(&request("w", 100, T0)).await.unwrap();
    let mut owners: Vec<String> = leased.iter().map(|l| l.lease.key.tenant.clone()).collect();
    owners.sort();
    let mut want: Vec<String> = tenants
        .iter()
        .filter(|t| **t != "a:b")
        .map(|t| t.to_string())
        .collect();
    want.sort();
    assert_eq!(owners, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_flight_cap_skips_any_number_of_busy_tenants() {
    let cluster = PgCluster::start();
    let engine = engine(&cluster.url("postgres"), &fresh_schema("cap")).await;
    // 150 tenants, each with one job leased and one waiting, ahead of a free tenant.
    for i in 0..150 {
        let tenant = format!("busy{i}");
        engine.submit(&job(&tenant), ROOMY).await.unwrap();
        engine.submit(&job(&tenant), ROOMY).await.unwrap();
    }
    let first = engine.lease(&request("w", 150, T0)).await.unwrap();
    assert_eq!(first.len(), 150);
    let free = job("free");
    engine.submit(&free, ROOMY).await.unwrap();
    let mut capped = request("w", 5, T0);
    capped.tenant_in_flight = Some(1);
    let taken = engine.lease(&capped).await.unwrap();
    let keys: Vec<JobKey> = taken.iter().map(|l| l.lease.key.clone()).collect();
    assert_eq!(keys, [free.key()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_stays_within_its_budget() {
    let cluster = PgCluster::start();
    let engine = engine(&cluster.url("postgres"), &fresh_schema("purge")).await;
    let mut keys = Vec::new();
    for _ in 0..5 {
        let j = job("acme");
        engine.submit(&j, ROOMY).await.unwrap();
        keys.push(j.key());
    }
    for leased in engine.lease(&request("w", 5, T0)).await.unwrap() {
        engine.finish(&leased.lease, &[]).await.unwrap();
    }
    let retention = Retention::new(Duration::from_secs(60), 100);
    let mut expired = Vec::new();
    for _ in 0..4 {
        expired.push(engine.purge(&retention, at(3600), 2).await.unwrap());
    }
    assert_eq!(expired, [2, 2, 1, 0]);
    for key in &keys {
        assert_eq!(engine.get(key).await.unwrap(), Lookup::Expired);
    }
}
