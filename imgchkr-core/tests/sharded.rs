//! The sharded engine: the conformance suite over three in-memory shards, the routing, and
//! what sharding adds (leasing across shards, reshards, operators' listing across shards).

use std::sync::Arc;
use std::time::Duration;

use imgchkr_core::engine::sharded::Sharded;
use imgchkr_core::engine::{
    Admission, Bucket, Cancel, Engine, Lease, LeaseRequest, Leased, ListQuery, Lookup, QueueStats,
    Retention, StoreError, Submitted, Token, WorkerId,
};
use imgchkr_core::notify::BoxFuture;
use imgchkr_core::{Job, JobId, JobKey, JobUpdate, MemoryEngine, Priority};
use time::OffsetDateTime;
use time::macros::datetime;

/// The conformance cases a sharded engine does not run, and why (see `engine::sharded`):
/// the exact global round-robin order of tenants on different shards cannot be known
/// without taking their jobs, and the capacity bounds each shard, not the deployment.
const NOT_RUN: &[&str] = &[
    "round_robin_across_tenants",
    "round_robin_holds_within_a_batch",
    "capacity_and_tenant_share_bound_the_queue",
];

fn memory_shards(n: usize) -> Vec<Arc<dyn Engine>> {
    (0..n)
        .map(|_| Arc::new(MemoryEngine::new()) as Arc<dyn Engine>)
        .collect()
}

fn sharded(shards: Vec<Arc<dyn Engine>>) -> Sharded {
    Sharded::new(shards).expect("at least one shard")
}

#[test]
fn three_memory_shards_pass_the_conformance_suite() {
    futures_executor::block_on(imgchkr_core::testkit::run_except(
        &|| async { Arc::new(sharded(memory_shards(3))) as Arc<dyn Engine> },
        NOT_RUN,
    ));
}

/// Tenant names `prefix-0`, `prefix-1`, … that live on `shard` of `n`, the first `count`.
fn tenants_on(shard: usize, n: usize, count: usize) -> Vec<String> {
    (0..10_000)
        .map(|i| format!("t-{i}"))
        .filter(|t| Sharded::shard_of(t, n) == shard)
        .take(count)
        .collect()
}

const T0: OffsetDateTime = datetime!(2030-01-02 03:04:05 UTC);

fn at(secs: u64) -> OffsetDateTime {
    T0 + Duration::from_secs(secs)
}

fn job(tenant: &str, created: OffsetDateTime) -> Job {
    let mut job = imgchkr_core::testkit::job(tenant, Priority::Normal);
    job.created_at = created;
    job
}

const ROOMY: Admission = Admission {
    capacity: 1_000,
    tenant_share: 1_000,
};

fn submit(engine: &dyn Engine, job: &Job) {
    let answer = futures_executor::block_on(engine.submit(job, ROOMY));
    assert!(matches!(answer, Ok(Submitted::New)), "submit: {answer:?}");
}

fn request(max: usize, now: OffsetDateTime) -> LeaseRequest {
    LeaseRequest::new(
        WorkerId("w".into()),
        max,
        now,
        now + Duration::from_secs(60),
    )
}

#[test]
fn routing_is_fixed_across_processes_and_builds() {
    // Pinned: every process of a deployment (and the next release) must agree. A change here
    // reshuffles every tenant of every sharded deployment.
    let pinned = [
        ("a", [1, 2, 2, 2]),
        ("b", [1, 1, 3, 3]),
        ("c", [0, 0, 3, 3]),
        ("acme", [1, 2, 3, 3]),
        ("alice", [1, 1, 1, 1]),
        ("bob", [0, 2, 2, 6]),
        ("tenant-0", [0, 2, 2, 5]),
        ("tenant-3", [1, 1, 1, 1]),
    ];
    for (tenant, want) in pinned {
        let got = [2, 3, 4, 8].map(|n| Sharded::shard_of(tenant, n));
        assert_eq!(got, want, "shards of {tenant:?} among 2, 3, 4, 8");
    }
    assert_eq!(Sharded::shard_of("anything", 1), 0);
    assert_eq!(Sharded::shard_of("anything", 0), 0);
}

#[test]
fn tenants_spread_evenly_over_the_shards() {
    let tenants: Vec<String> = (0..6_000).map(|i| format!("tenant-{i}")).collect();
    for n in [2, 3, 5] {
        let mut counts = vec![0usize; n];
        for t in &tenants {
            counts[Sharded::shard_of(t, n)] += 1;
        }
        let fair = tenants.len() / n;
        for (shard, count) in counts.iter().enumerate() {
            assert!(
                count.abs_diff(fair) * 10 < fair,
                "{n} shards: shard {shard} has {count} of {} tenants ({counts:?})",
                tenants.len()
            );
        }
    }
}

#[test]
fn adding_a_shard_moves_about_one_in_n_tenants_all_to_the_new_one() {
    let tenants: Vec<String> = (0..6_000).map(|i| format!("tenant-{i}")).collect();
    for n in [1, 2, 3, 4] {
        let mut moved = 0usize;
        for t in &tenants {
            let before = Sharded::shard_of(t, n);
            let after = Sharded::shard_of(t, n + 1);
            if before != after {
                assert_eq!(after, n, "{t} moved from {before} to an old shard {after}");
                moved += 1;
            }
        }
        let expected = tenants.len() / (n + 1);
        assert!(
            moved.abs_diff(expected) * 10 < expected,
            "{n} -> {} shards moved {moved} of {} tenants, expected about {expected}",
            n + 1,
            tenants.len()
        );
    }
}

#[test]
fn a_job_lands_on_its_tenants_shard_and_is_read_through_the_whole() {
    let shards = memory_shards(3);
    let engine = sharded(shards.clone());
    for shard in 0..3 {
        for tenant in tenants_on(shard, 3, 2) {
            let j = job(&tenant, T0);
            submit(&engine, &j);
            for (i, s) in shards.iter().enumerate() {
                let found = futures_executor::block_on(s.get(&j.key())).expect("get");
                assert_eq!(
                    matches!(found, Lookup::Found(_)),
                    i == shard,
                    "{tenant}'s job on shard {i}: {found:?}"
                );
            }
            let found = futures_executor::block_on(engine.get(&j.key())).expect("get");
            assert!(matches!(found, Lookup::Found(_)), "{found:?}");
        }
    }
}

#[test]
fn round_robin_is_exact_among_the_tenants_of_one_shard() {
    let engine = sharded(memory_shards(3));
    let tenants = tenants_on(1, 3, 3);
    let names = [0, 0, 0, 1, 2, 2];
    let jobs: Vec<Job> = names.iter().map(|&t| job(&tenants[t], T0)).collect();
    for j in &jobs {
        submit(&engine, j);
    }
    let want: Vec<_> = [0, 3, 4, 1, 5, 2].iter().map(|&i| jobs[i].key()).collect();
    let mut got = Vec::new();
    for i in 0..jobs.len() {
        let leased =
            futures_executor::block_on(engine.lease(&request(1, at(i as u64)))).expect("lease");
        got.extend(leased.into_iter().map(|l| l.lease.key));
    }
    assert_eq!(got, want);
}

#[test]
fn across_shards_every_shard_with_work_is_served_within_n_leases() {
    let n = 3;
    let engine = sharded(memory_shards(n));
    // One tenant per shard, each with plenty waiting.
    let tenants: Vec<String> = (0..n).map(|s| tenants_on(s, n, 1).remove(0)).collect();
    for t in &tenants {
        for _ in 0..10 {
            submit(&engine, &job(t, T0));
        }
    }
    let mut served = Vec::new();
    // The same instant: no sweep of every shard, the rotation alone.
    for _ in 0..12 {
        let leased = futures_executor::block_on(engine.lease(&request(1, T0))).expect("lease");
        assert_eq!(leased.len(), 1);
        served.push(leased[0].lease.key.tenant.clone());
    }
    for window in served.windows(n) {
        let mut seen: Vec<&String> = window.iter().collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), n, "a window of {n} leases served {window:?}");
    }
    // A batch takes from every shard when one alone cannot fill it.
    for t in &tenants {
        submit(&engine, &job(t, T0));
    }
    let batch = futures_executor::block_on(engine.lease(&request(100, at(20)))).expect("lease");
    assert_eq!(batch.len(), 3 * 10 + 3 - 12);
}

#[test]
fn capacity_bounds_each_shard_and_the_share_each_tenant() {
    let engine = sharded(memory_shards(2));
    let on0 = tenants_on(0, 2, 2);
    let on1 = tenants_on(1, 2, 1);
    let admission = Admission::new(3, 2);
    let try_submit =
        |tenant: &str| futures_executor::block_on(engine.submit(&job(tenant, T0), admission));
    assert!(matches!(try_submit(&on0[0]), Ok(Submitted::New)));
    assert!(matches!(try_submit(&on0[0]), Ok(Submitted::New)));
    let share = try_submit(&on0[0]);
    assert!(
        matches!(
            share,
            Err(imgchkr_core::StoreError::Full(
                imgchkr_core::engine::Full::Tenant
            ))
        ),
        "a third job of a share of 2: {share:?}"
    );
    assert!(matches!(try_submit(&on0[1]), Ok(Submitted::New)));
    let full = try_submit(&on0[1]);
    assert!(
        matches!(
            full,
            Err(imgchkr_core::StoreError::Full(
                imgchkr_core::engine::Full::Queue
            ))
        ),
        "a fourth job on a shard of capacity 3: {full:?}"
    );
    // The other shard has its own capacity.
    for _ in 0..2 {
        assert!(matches!(try_submit(&on1[0]), Ok(Submitted::New)));
    }
}

#[test]
fn after_a_reshard_jobs_left_on_the_old_shard_are_seen_leased_and_finished_there() {
    let old = memory_shards(3);
    let three = sharded(old.clone());
    // Tenants that move to the fourth shard when it is added.
    let moving: Vec<String> = (0..10_000)
        .map(|i| format!("t-{i}"))
        .filter(|t| Sharded::shard_of(t, 4) == 3)
        .take(3)
        .collect();
    let jobs: Vec<Job> = moving.iter().map(|t| job(t, T0)).collect();
    for j in &jobs {
        submit(&three, j);
    }
    let mut grown = old.clone();
    grown.push(Arc::new(MemoryEngine::new()));
    let four = sharded(grown);
    for j in &jobs {
        let found = futures_executor::block_on(four.get(&j.key())).expect("get");
        assert!(matches!(found, Lookup::Found(_)), "{found:?}");
    }
    let leased = futures_executor::block_on(four.lease(&request(10, at(1)))).expect("lease");
    assert_eq!(leased.len(), jobs.len());
    let lost = futures_executor::block_on(four.heartbeat(
        &WorkerId("w".into()),
        &leased.iter().map(|l| l.lease.clone()).collect::<Vec<_>>(),
        at(2),
        at(62),
        "{}",
    ))
    .expect("heartbeat");
    assert!(lost.is_empty(), "leases reported lost: {lost:?}");
    for l in &leased {
        let verdict = imgchkr_core::JobUpdate::Verdict {
            errors: None,
            warnings: Vec::new(),
            at: at(3),
        };
        futures_executor::block_on(four.finish(&l.lease, &[verdict])).expect("finish");
    }
    for j in &jobs {
        match futures_executor::block_on(four.get(&j.key())).expect("get") {
            Lookup::Found(done) => {
                assert_eq!(done.state, imgchkr_core::JobState::Success, "{done:?}")
            }
            other => panic!("{other:?}"),
        }
    }
    // A new job of a moved tenant goes to its new shard.
    let fresh = job(&moving[0], T0);
    submit(&four, &fresh);
    let on_new = futures_executor::block_on(four.shards()[3].get(&fresh.key())).expect("get");
    assert!(matches!(on_new, Lookup::Found(_)), "{on_new:?}");
}

#[test]
fn heartbeats_reach_every_shard() {
    let shards = memory_shards(3);
    let engine = sharded(shards.clone());
    let tenant = tenants_on(2, 3, 1).remove(0);
    submit(&engine, &job(&tenant, T0));
    let leased = futures_executor::block_on(engine.lease(&request(1, T0))).expect("lease");
    let leases: Vec<_> = leased.iter().map(|l| l.lease.clone()).collect();
    let lost = futures_executor::block_on(engine.heartbeat(
        &WorkerId("w".into()),
        &leases,
        at(1),
        at(61),
        "{}",
    ))
    .expect("heartbeat");
    assert!(lost.is_empty());
    for (i, shard) in shards.iter().enumerate() {
        let stats = futures_executor::block_on(shard.stats()).expect("stats");
        assert_eq!(stats.workers.len(), 1, "shard {i}: {:?}", stats.workers);
        assert_eq!(stats.workers[0].held, u64::from(i == 2), "shard {i}");
    }
    let total = futures_executor::block_on(engine.stats()).expect("stats");
    assert_eq!((total.in_flight, total.workers.len()), (1, 1));
    assert_eq!(total.workers[0].held, 1);
    assert_eq!(total.tenants, vec![(tenant, 0, 1)]);
}

#[test]
fn the_id_secret_lives_on_the_first_shard() {
    let shards = memory_shards(3);
    let engine = sharded(shards.clone());
    let forever = at(1_000_000);
    let first = futures_executor::block_on(engine.remember("imgchkr:id-secret", "s1", forever, T0));
    assert_eq!(first, Ok(None));
    let again =
        futures_executor::block_on(shards[0].remember("imgchkr:id-secret", "s2", forever, T0));
    assert_eq!(again, Ok(Some("s1".to_owned())));
}

#[test]
fn operators_listing_pages_across_shards_newest_first() {
    let engine = sharded(memory_shards(3));
    let tenants: Vec<String> = (0..3).map(|s| tenants_on(s, 3, 1).remove(0)).collect();
    let mut jobs = Vec::new();
    for i in 0..20u64 {
        // Shards get unevenly many, and two jobs share each instant.
        let tenant = &tenants[((i * i) % 3) as usize];
        let j = job(tenant, at(i / 2));
        submit(&engine, &j);
        jobs.push(j);
    }
    let mut pages = Vec::new();
    let mut query = ListQuery::all(3);
    loop {
        let page = futures_executor::block_on(engine.list(&query)).expect("list");
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        query.before = Some(last.key());
        pages.extend(page);
        assert!(pages.len() <= jobs.len(), "paging does not end");
    }
    let mut ids: Vec<JobId> = pages.iter().map(|j| j.id).collect();
    assert!(
        pages.windows(2).all(|w| w[0].created_at >= w[1].created_at),
        "not newest first"
    );
    ids.sort_by_key(|id| id.0);
    let mut want: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
    want.sort_by_key(|id| id.0);
    assert_eq!(ids, want, "every job once");
    // An unknown cursor gives an empty page, as on one engine.
    query.before = Some(job(&tenants[0], T0).key());
    assert!(
        futures_executor::block_on(engine.list(&query))
            .expect("list")
            .is_empty()
    );
}

/// A shard that cannot be reached: every call fails at once, as an engine's would.
struct Down;

fn down<T: Send + 'static>() -> imgchkr_core::notify::BoxFuture<'static, Result<T, StoreError>> {
    Box::pin(std::future::ready(Err(StoreError::Unavailable(
        "connection refused".into(),
    ))))
}

impl Engine for Down {
    fn submit<'a>(
        &'a self,
        _: &'a Job,
        _: Admission,
    ) -> BoxFuture<'a, Result<Submitted, StoreError>> {
        down()
    }
    fn get<'a>(&'a self, _: &'a JobKey) -> BoxFuture<'a, Result<Lookup, StoreError>> {
        down()
    }
    fn list<'a>(&'a self, _: &'a ListQuery) -> BoxFuture<'a, Result<Vec<Job>, StoreError>> {
        down()
    }
    fn cancel<'a>(
        &'a self,
        _: &'a JobKey,
        _: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Cancel, StoreError>> {
        down()
    }
    fn lease<'a>(&'a self, _: &'a LeaseRequest) -> BoxFuture<'a, Result<Vec<Leased>, StoreError>> {
        down()
    }
    fn heartbeat<'a>(
        &'a self,
        _: &'a WorkerId,
        _: &'a [Lease],
        _: OffsetDateTime,
        _: OffsetDateTime,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Lease>, StoreError>> {
        down()
    }
    fn record<'a>(
        &'a self,
        _: &'a Lease,
        _: &'a [JobUpdate],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        down()
    }
    fn finish<'a>(
        &'a self,
        _: &'a Lease,
        _: &'a [JobUpdate],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        down()
    }
    fn release<'a>(&'a self, _: &'a Lease) -> BoxFuture<'a, Result<(), StoreError>> {
        down()
    }
    fn work_available(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::pending())
    }
    fn purge<'a>(
        &'a self,
        _: &'a Retention,
        _: OffsetDateTime,
        _: u64,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        down()
    }
    fn stats(&self) -> BoxFuture<'_, Result<QueueStats, StoreError>> {
        down()
    }
    fn take_token<'a>(
        &'a self,
        _: &'a str,
        _: Bucket,
        _: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Token, StoreError>> {
        down()
    }
    fn remember<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: OffsetDateTime,
        _: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        down()
    }
    fn check(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        down()
    }
    fn is_durable(&self) -> bool {
        true
    }
    fn is_shared(&self) -> bool {
        true
    }
}

#[test]
fn a_down_shard_stops_neither_leasing_nor_heartbeats_on_the_others_and_check_names_it() {
    let up = memory_shards(2);
    let engine = sharded(vec![up[0].clone(), Arc::new(Down), up[1].clone()]).with_labels([
        "redis://a/".to_owned(),
        "redis://b/".to_owned(),
        "redis://c/".to_owned(),
    ]);
    // A tenant of the down shard is refused.
    let refused =
        futures_executor::block_on(engine.submit(&job(&tenants_on(1, 3, 1)[0], T0), ROOMY));
    assert!(
        matches!(&refused, Err(StoreError::Unavailable(_))),
        "{refused:?}"
    );
    // Whichever shard a lease starts at, it takes from the two that answer.
    for i in 0..3 {
        let mut jobs = Vec::new();
        for shard in [0, 2] {
            for tenant in tenants_on(shard, 3, 2) {
                let j = job(&tenant, T0);
                submit(&engine, &j);
                jobs.push(j);
            }
        }
        let leased = futures_executor::block_on(engine.lease(&request(10, at(i)))).expect("lease");
        let lost = futures_executor::block_on(engine.heartbeat(
            &WorkerId("w".into()),
            &leased.iter().map(|l| l.lease.clone()).collect::<Vec<_>>(),
            at(i),
            at(i + 60),
            "{}",
        ))
        .expect("heartbeat with one shard down");
        assert!(lost.is_empty(), "{lost:?}");
        assert_eq!(leased.len(), jobs.len(), "lease {i}");
        for l in &leased {
            futures_executor::block_on(engine.finish(&l.lease, &[])).expect("finish");
        }
    }
    let why = futures_executor::block_on(engine.check()).expect_err("a shard is down");
    assert_eq!(
        why.to_string(),
        "store unavailable: shard 1 (redis://b/): connection refused"
    );
    // Only when every shard fails does a lease fail.
    let all_down = sharded(vec![Arc::new(Down), Arc::new(Down)]);
    assert!(futures_executor::block_on(all_down.lease(&request(1, T0))).is_err());
}

#[test]
fn work_on_any_shard_wakes_the_waiting_worker() {
    use futures_util::FutureExt;
    let engine = sharded(memory_shards(3));
    for shard in 0..3 {
        // Nothing waiting anywhere: the wait does not resolve.
        let none = futures_executor::block_on(engine.lease(&request(10, T0))).expect("lease");
        assert!(none.is_empty());
        let mut wait = engine.work_available();
        assert!(
            (&mut wait).now_or_never().is_none(),
            "woken with nothing queued"
        );
        submit(&engine, &job(&tenants_on(shard, 3, 1)[0], T0));
        assert!(
            wait.now_or_never().is_some(),
            "a job on shard {shard} did not wake the wait"
        );
        let taken = futures_executor::block_on(engine.lease(&request(10, T0))).expect("lease");
        assert_eq!(taken.len(), 1);
        futures_executor::block_on(engine.finish(&taken[0].lease, &[])).expect("finish");
    }
}
