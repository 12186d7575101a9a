//! The Redis adapter against a real `redis-server` (no persistence, loopback, a free port),
//! started by each test and killed when it ends. Every wait has a deadline.

use std::time::{Duration, Instant};

use imgchkr_core::store::{Inserted, Lease, ListQuery};
use imgchkr_core::{
    AssetPath, DeliveryRecord, DeliveryStatus, Event, Job, JobId, JobQueue, JobState, JobStore,
    JobUpdate, NotificationUrls, Policy, RecordingNotifier, Report, Retention, StoreError, run_job,
};
use imgchkr_http::redis::{
    JobSession, Record, RedisConfig, RedisQueue, RedisStore, abandoned_text, connect,
};
use time::OffsetDateTime;

#[path = "support/redis_server.rs"]
mod redis_server;
use redis_server::RedisServer;

/// Test settings: short timeouts and idle times, a prefix of the test's own.
fn config(server: &RedisServer, test: &str) -> RedisConfig {
    let mut config = RedisConfig::new(server.url());
    config.key_prefix = format!("test:{test}:");
    config.op_timeout = Duration::from_millis(500);
    config.block_time = Duration::from_millis(100);
    config.reclaim_idle = Duration::from_millis(400);
    config.heartbeat_every = Duration::from_millis(100);
    config.reclaim_every = Duration::from_millis(50);
    config.capacity = 100;
    config.per_tenant = 100;
    config
}

fn job(tenant: Option<&str>) -> Job {
    let url = |event: &str| format!("http://127.0.0.1:9/{event}").parse().unwrap();
    let mut job = Job::new(
        JobId::random(),
        AssetPath::Local {
            path: "images/a.jpg".into(),
        },
        NotificationUrls {
            on_start: url("onStart"),
            on_success: url("onSuccess"),
            on_failure: url("onFailure"),
        },
    );
    job.tenant = tenant.map(str::to_owned);
    job
}

fn verdict(errors: Option<&str>) -> JobUpdate {
    JobUpdate::Verdict {
        errors: errors.map(|e| [("image".to_owned(), vec![e.to_owned()])].into()),
        at: OffsetDateTime::now_utc(),
    }
}

/// A JPEG frame header of `w`×`h`.
fn jpeg(w: u16, h: u16) -> Vec<u8> {
    let [w1, w0] = w.to_be_bytes();
    let [h1, h0] = h.to_be_bytes();
    vec![
        0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x0B, 8, h1, h0, w1, w0, 1, 1, 0x11, 0,
    ]
}

async fn pop_within(queue: &RedisQueue, limit: Duration) -> Option<Lease> {
    match tokio::time::timeout(limit, queue.pop()).await {
        Ok(popped) => popped.unwrap(),
        Err(_) => None,
    }
}

async fn ids(store: &RedisStore, query: ListQuery) -> Vec<JobId> {
    store
        .list(query)
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect()
}

#[tokio::test]
async fn store_insert_get_update_match_job_apply() {
    let server = RedisServer::start();
    let (store, _queue) = connect(config(&server, "store")).await.unwrap();

    let mut expected = job(Some("acme"));
    assert_eq!(store.insert(expected.clone()).await.unwrap(), Inserted::New);
    assert_eq!(
        store.get(expected.id).await.unwrap().as_ref(),
        Some(&expected)
    );
    let mut resubmitted = expected.clone();
    resubmitted.asset_path = AssetPath::Local {
        path: "other.jpg".into(),
    };
    assert_eq!(
        store.insert(resubmitted).await.unwrap(),
        Inserted::Existing(Box::new(expected.clone())),
        "same id: the stored job, unchanged"
    );
    assert_eq!(store.get(JobId::random()).await.unwrap(), None);

    let url = expected.notification_urls.on_start.clone();
    let mut delivered = DeliveryRecord::pending(Event::OnStart, url.clone());
    delivered.status = DeliveryStatus::Delivered;
    delivered.attempts = 2;
    delivered.http_status = Some(204);
    let mut failed = DeliveryRecord::pending(
        Event::OnFailure,
        expected.notification_urls.on_failure.clone(),
    );
    failed.status = DeliveryStatus::Failed;
    failed.error = Some("connection refused".into());
    let t0 = OffsetDateTime::now_utc();
    let updates = [
        JobUpdate::Started { at: t0 },
        JobUpdate::Delivery(DeliveryRecord::pending(Event::OnStart, url)),
        verdict(Some("Image width exceeds maximum (1800/1000)")),
        // A late (redelivered) start neither moves the verdict back nor moves startedAt.
        JobUpdate::Started {
            at: t0 + Duration::from_secs(5),
        },
        JobUpdate::Delivery(failed),
        JobUpdate::Delivery(delivered),
    ];
    for update in updates {
        store.update(expected.id, update.clone()).await.unwrap();
        expected.apply(&update);
        assert_eq!(
            store.get(expected.id).await.unwrap().as_ref(),
            Some(&expected),
            "after {update:?}"
        );
    }
    assert_eq!(expected.state, JobState::Failed);
    assert_eq!(expected.notifications[0].event, Event::OnStart);

    // A second verdict overwrites, as Job::apply does.
    let update = verdict(None);
    store.update(expected.id, update.clone()).await.unwrap();
    expected.apply(&update);
    assert_eq!(
        store.get(expected.id).await.unwrap(),
        Some(expected.clone())
    );

    // Forgetting a job (a submission that could not be queued).
    let refused = job(Some("acme"));
    store.insert(refused.clone()).await.unwrap();
    assert_eq!(
        store.remove(refused.id).await.unwrap(),
        Some(refused.clone())
    );
    assert_eq!(store.get(refused.id).await.unwrap(), None);
    assert_eq!(store.remove(refused.id).await.unwrap(), None);
    let mut query = ListQuery::new(10);
    query.tenant = Some("acme".into());
    assert_eq!(ids(&store, query).await, [expected.id], "unindexed");

    // An update to an unknown job is a no-op.
    store.update(JobId::random(), verdict(None)).await.unwrap();
}

#[tokio::test]
async fn store_lists_newest_first_by_tenant_state_and_cursor() {
    let server = RedisServer::start();
    let (store, _queue) = connect(config(&server, "list")).await.unwrap();
    let jobs: Vec<Job> = (0..5)
        .map(|i| job(Some(if i % 2 == 0 { "a" } else { "b" })))
        .collect();
    for j in &jobs {
        store.insert(j.clone()).await.unwrap();
    }
    let untenanted = job(None);
    store.insert(untenanted.clone()).await.unwrap();

    let mut query = ListQuery::new(2);
    query.tenant = Some("a".into());
    assert_eq!(ids(&store, query.clone()).await, [jobs[4].id, jobs[2].id]);
    query.before = Some(jobs[2].id);
    assert_eq!(ids(&store, query.clone()).await, [jobs[0].id]);
    query.before = Some(JobId::random());
    assert!(ids(&store, query).await.is_empty(), "unknown cursor");

    let all: Vec<JobId> = std::iter::once(untenanted.id)
        .chain(jobs.iter().rev().map(|j| j.id))
        .collect();
    assert_eq!(ids(&store, ListQuery::new(10)).await, all);
    assert!(ids(&store, ListQuery::new(0)).await.is_empty());

    // State filters follow state changes.
    let at = OffsetDateTime::now_utc();
    store
        .update(jobs[1].id, JobUpdate::Started { at })
        .await
        .unwrap();
    store
        .update(jobs[3].id, verdict(Some("bad")))
        .await
        .unwrap();
    store.update(jobs[4].id, verdict(None)).await.unwrap();
    let by_state = |state, tenant: Option<&str>| {
        let mut query = ListQuery::new(10);
        query.state = Some(state);
        query.tenant = tenant.map(str::to_owned);
        ids(&store, query)
    };
    assert_eq!(by_state(JobState::Started, None).await, [jobs[1].id]);
    assert_eq!(by_state(JobState::Failed, Some("b")).await, [jobs[3].id]);
    assert!(by_state(JobState::Failed, Some("a")).await.is_empty());
    assert_eq!(by_state(JobState::Success, Some("a")).await, [jobs[4].id]);
    assert_eq!(
        by_state(JobState::Queued, None).await,
        [untenanted.id, jobs[2].id, jobs[0].id]
    );
    let mut query = ListQuery::new(10);
    query.state = Some(JobState::Queued);
    query.before = Some(jobs[3].id);
    assert_eq!(ids(&store, query).await, [jobs[2].id, jobs[0].id]);
}

#[tokio::test]
async fn store_retention_by_count_evicts_oldest_finished_first() {
    let server = RedisServer::start();
    let mut config = config(&server, "count");
    config.retention = Retention {
        max_age: Duration::from_secs(3600),
        max_jobs: 3,
    };
    let (store, _queue) = connect(config).await.unwrap();
    let unfinished = job(Some("t"));
    store.insert(unfinished.clone()).await.unwrap();
    let mut finished = Vec::new();
    for _ in 0..10 {
        let j = job(Some("t"));
        finished.push(j.id);
        store.insert(j.clone()).await.unwrap();
        store.update(j.id, verdict(None)).await.unwrap();
    }
    assert!(
        store.get(unfinished.id).await.unwrap().is_some(),
        "unfinished kept"
    );
    assert!(store.get(finished[9]).await.unwrap().is_some());
    assert!(store.get(finished[8]).await.unwrap().is_some());
    for id in &finished[..8] {
        assert!(store.get(*id).await.unwrap().is_none());
    }
    let mut query = ListQuery::new(100);
    query.tenant = Some("t".into());
    assert_eq!(
        ids(&store, query).await,
        [finished[9], finished[8], unfinished.id],
        "indexes trimmed too"
    );
}

#[tokio::test]
async fn store_retention_by_age_uses_key_ttl() {
    let server = RedisServer::start();
    let mut config = config(&server, "age");
    config.retention = Retention {
        max_age: Duration::from_millis(300),
        max_jobs: 1000,
    };
    let (store, _queue) = connect(config).await.unwrap();
    let queued = job(None);
    let done = job(None);
    store.insert(queued.clone()).await.unwrap();
    store.insert(done.clone()).await.unwrap();
    store.update(done.id, verdict(None)).await.unwrap();
    assert!(store.get(done.id).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(store.get(done.id).await.unwrap().is_none(), "expired");
    assert!(
        store.get(queued.id).await.unwrap().is_some(),
        "queued jobs never expire"
    );
    assert_eq!(ids(&store, ListQuery::new(10)).await, [queued.id]);
    // A write drops the expired job's index entries as well.
    store.insert(job(None)).await.unwrap();
    assert_eq!(ids(&store, ListQuery::new(10)).await.len(), 2);
}

#[tokio::test]
async fn queue_push_pop_ack_and_run_job() {
    let server = RedisServer::start();
    let (store, queue) = connect(config(&server, "queue")).await.unwrap();
    let good = job(None);
    let bad = job(None);
    for j in [&good, &bad] {
        store.insert(j.clone()).await.unwrap();
        queue.push(j.id, "").await.unwrap();
    }
    assert_eq!(queue.depth().await.unwrap(), 2);

    for (expected, image, state) in [
        (&good, jpeg(100, 100), JobState::Success),
        (&bad, jpeg(1800, 100), JobState::Failed),
    ] {
        let lease = pop_within(&queue, Duration::from_secs(2)).await.unwrap();
        assert_eq!(lease.id, expected.id, "FIFO within a tenant");
        assert_eq!(lease.deliveries, 1);
        assert_eq!(lease.tenant, "");
        let job = store.get(lease.id).await.unwrap().unwrap();
        let notifier = RecordingNotifier::new();
        let validate = async { Report::from_bytes(&image, &Policy::default()) };
        assert_eq!(run_job(&job, &store, &notifier, validate).await, Ok(state));
        queue.ack(&lease).await.unwrap();
        let stored = store.get(lease.id).await.unwrap().unwrap();
        assert_eq!(stored.state, state);
        let events: Vec<Event> = stored.notifications.iter().map(|r| r.event).collect();
        let last = if state == JobState::Success {
            Event::OnSuccess
        } else {
            Event::OnFailure
        };
        assert_eq!(events, [Event::OnStart, last]);
        assert!(
            stored
                .notifications
                .iter()
                .all(|r| r.status == DeliveryStatus::Delivered)
        );
        assert_eq!(notifier.sent().len(), 2);
    }
    assert_eq!(queue.depth().await.unwrap(), 0);
    assert_eq!(queue.in_flight(), 0);

    // Nothing waits: pop waits (bounded here), and returns None promptly once closed.
    assert!(
        pop_within(&queue, Duration::from_millis(300))
            .await
            .is_none()
    );
    queue.close();
    let started = Instant::now();
    assert_eq!(queue.pop().await, Ok(None));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(
        queue.push(JobId::random(), "").await,
        Err(StoreError::Closed)
    );
}

#[tokio::test]
async fn queue_capacity_and_tenant_share_are_enforced() {
    let server = RedisServer::start();
    let mut config = config(&server, "full");
    config.capacity = 3;
    config.per_tenant = 2;
    let (_store, queue) = connect(config).await.unwrap();
    let full = Err(StoreError::Full {
        retry_after_secs: 1,
    });
    queue.push(JobId::random(), "a").await.unwrap();
    queue.push(JobId::random(), "a").await.unwrap();
    assert_eq!(queue.push(JobId::random(), "a").await, full, "tenant share");
    assert!(!queue.has_room("a").await.unwrap());
    assert!(queue.has_room("b").await.unwrap());
    queue.push(JobId::random(), "b").await.unwrap();
    assert_eq!(queue.push(JobId::random(), "c").await, full, "overall");
    assert!(!queue.has_room("c").await.unwrap());
    assert_eq!(queue.depth().await.unwrap(), 3);
    // Handed out is no longer waiting: room again (as the embedded queue).
    let lease = pop_within(&queue, Duration::from_secs(2)).await.unwrap();
    assert_eq!(lease.tenant, "a");
    queue.push(JobId::random(), "c").await.unwrap();
    queue.ack(&lease).await.unwrap();
}

#[tokio::test]
async fn queue_round_robins_across_tenants() {
    let server = RedisServer::start();
    let (_store, queue) = connect(config(&server, "fair")).await.unwrap();
    let flood: Vec<JobId> = (0..20).map(|_| JobId::random()).collect();
    for id in &flood {
        queue.push(*id, "flood").await.unwrap();
    }
    let quiet = JobId::random();
    queue.push(quiet, "quiet").await.unwrap();

    let mut order = Vec::new();
    for _ in 0..21 {
        let lease = pop_within(&queue, Duration::from_secs(2)).await.unwrap();
        queue.ack(&lease).await.unwrap();
        order.push(lease.id);
    }
    let quiet_at = order.iter().position(|id| *id == quiet).unwrap();
    assert!(quiet_at <= 1, "the quiet tenant waited for {quiet_at} jobs");
    let flood_order: Vec<JobId> = order.into_iter().filter(|id| *id != quiet).collect();
    assert_eq!(flood_order, flood, "FIFO within a tenant");
    assert_eq!(queue.depth().await.unwrap(), 0);
}

#[tokio::test]
async fn dead_workers_lease_is_reclaimed_live_workers_is_not() {
    let server = RedisServer::start();
    let mut first = config(&server, "reclaim");
    first.consumer = Some("worker-1".into());
    let mut second = first.clone();
    second.consumer = Some("worker-2".into());
    let (_store1, queue1) = connect(first).await.unwrap();
    let (_store2, queue2) = connect(second).await.unwrap();
    let id = JobId::random();
    queue1.push(id, "t").await.unwrap();
    let lease = pop_within(&queue1, Duration::from_secs(2)).await.unwrap();
    assert_eq!((lease.id, lease.deliveries), (id, 1));

    // Worker 1 is alive and heartbeats: well past the idle time, worker 2 gets nothing.
    assert!(
        pop_within(&queue2, Duration::from_millis(1200))
            .await
            .is_none()
    );

    // Worker 1 dies without acknowledging: worker 2 takes the job over.
    drop(queue1);
    let started = Instant::now();
    let reclaimed = pop_within(&queue2, Duration::from_secs(5)).await.unwrap();
    assert_eq!((reclaimed.id, reclaimed.deliveries), (id, 2));
    assert!(started.elapsed() < Duration::from_secs(3));
    queue2.ack(&reclaimed).await.unwrap();
    assert!(
        pop_within(&queue2, Duration::from_millis(800))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn poison_job_is_parked_as_failed_and_acknowledged() {
    let server = RedisServer::start();
    let mut config = config(&server, "poison");
    config.max_deliveries = 2;
    let (store, queue) = connect(config.clone()).await.unwrap();
    let poison = job(Some("t"));
    store.insert(poison.clone()).await.unwrap();
    queue.push(poison.id, "t").await.unwrap();
    drop(queue);

    // Two workers in turn take it and die.
    for delivery in 1..=2 {
        let (_s, worker) = connect(config.clone()).await.unwrap();
        let lease = pop_within(&worker, Duration::from_secs(3)).await.unwrap();
        assert_eq!((lease.id, lease.deliveries), (poison.id, delivery));
        store
            .update(
                lease.id,
                JobUpdate::Started {
                    at: OffsetDateTime::now_utc(),
                },
            )
            .await
            .unwrap();
    }
    // The next one gets it as poison: parked instead of run a third time, and the client
    // hears onFailure (the one event sent, with the webhook-id a normal run uses).
    let (_s, worker) = connect(config.clone()).await.unwrap();
    let lease = pop_within(&worker, Duration::from_secs(3)).await.unwrap();
    assert_eq!((lease.id, lease.deliveries), (poison.id, 3));
    assert!(worker.is_poison(&lease));
    let notifier = RecordingNotifier::new();
    assert_eq!(
        worker.park(&lease, &notifier).await,
        Ok(Some(JobState::Failed))
    );
    assert_eq!(worker.in_flight(), 0, "acknowledged");
    let parked = store.get(poison.id).await.unwrap().unwrap();
    assert_eq!(parked.state, JobState::Failed);
    let errors = Some([("image".to_owned(), vec![abandoned_text(2)])].into());
    assert_eq!(parked.errors, errors);
    assert_eq!(abandoned_text(2), "Job abandoned after 2 delivery attempts");
    let sent = notifier.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].event, Event::OnFailure);
    assert_eq!(sent[0].payload.state, JobState::Failed);
    assert_eq!(sent[0].payload.errors, errors);
    assert_eq!(
        sent[0].webhook_id,
        format!("msg_{}_onFailure", poison.id.0.simple())
    );
    let record = parked.notifications.last().unwrap();
    assert_eq!(
        (record.event, record.status),
        (Event::OnFailure, DeliveryStatus::Delivered)
    );
    assert!(
        pop_within(&worker, Duration::from_millis(1000))
            .await
            .is_none()
    );

    // Acknowledged and deleted: nothing pending, nothing left in the stream.
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let stream = format!("{}q:s:t", config.key_prefix);
    // (The reclaim scan may already have deleted the emptied stream, group and all.)
    let pending: Result<Vec<redis::Value>, _> = redis::cmd("XPENDING")
        .arg(&stream)
        .arg("workers")
        .query_async(&mut conn)
        .await;
    match pending {
        Ok(pending) => assert_eq!(pending.first(), Some(&redis::Value::Int(0))),
        Err(e) => assert_eq!(e.code(), Some("NOGROUP"), "{e}"),
    }
    let len: u64 = redis::cmd("XLEN")
        .arg(&stream)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(len, 0);
}

/// Redis goes away: every call fails quickly with `Unavailable`. It comes back (empty: no
/// persistence, so what it held is gone — expected here): the same adapter works again.
#[tokio::test]
async fn unavailable_redis_fails_fast_and_recovers() {
    let mut server = RedisServer::start();
    let config = config(&server, "outage");
    let op_timeout = config.op_timeout;
    let bound = config.op_timeout * 3 + config.block_time;
    let (store, queue) = connect(config).await.unwrap();
    let before = job(None);
    store.insert(before.clone()).await.unwrap();
    queue.push(before.id, "").await.unwrap();

    server.kill();
    let unavailable = |r: &Result<_, StoreError>| matches!(r, Err(StoreError::Unavailable(_)));
    for round in 0..2 {
        let t = Instant::now();
        assert!(
            unavailable(&store.get(before.id).await.map(|_| ())),
            "{round}"
        );
        assert!(unavailable(&store.insert(job(None)).await.map(|_| ())));
        assert!(unavailable(&store.update(before.id, verdict(None)).await));
        assert!(unavailable(
            &store.list(ListQuery::new(5)).await.map(|_| ())
        ));
        assert!(unavailable(&queue.push(JobId::random(), "").await));
        assert!(unavailable(&queue.depth().await.map(|_| ())));
        let popped = tokio::time::timeout(bound * 2, queue.pop()).await;
        assert!(
            matches!(popped, Ok(Err(StoreError::Unavailable(_)))),
            "pop: {popped:?}"
        );
        eprintln!(
            "outage round {round}: seven calls failed in {:?}",
            t.elapsed()
        );
        assert!(
            t.elapsed() < op_timeout * 10,
            "seven calls took {:?}",
            t.elapsed()
        );
    }

    let server = RedisServer::start_on(server.port);
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = job(None);
    loop {
        match store.insert(after.clone()).await {
            Ok(inserted) => {
                assert_eq!(inserted, Inserted::New);
                break;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "no recovery: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert_eq!(store.get(before.id).await.unwrap(), None, "no persistence");
    queue.push(after.id, "").await.unwrap();
    let lease = pop_within(&queue, Duration::from_secs(3)).await.unwrap();
    assert_eq!(lease.id, after.id);
    queue.ack(&lease).await.unwrap();
    assert_eq!(queue.depth().await.unwrap(), 0);
    drop(server);
}

#[tokio::test]
async fn pop_batch_takes_several_round_robin_with_their_records() {
    let server = RedisServer::start();
    let (store, queue) = connect(config(&server, "batch")).await.unwrap();
    let a: Vec<Job> = (0..3).map(|_| job(Some("a"))).collect();
    let b = job(Some("b"));
    for j in a.iter().chain([&b]) {
        store.insert(j.clone()).await.unwrap();
        queue
            .push(j.id, j.tenant.as_deref().unwrap())
            .await
            .unwrap();
    }
    let gone = JobId::random();
    queue.push(gone, "a").await.unwrap();

    let batch = queue.pop_batch(3).await.unwrap();
    let order: Vec<JobId> = batch.iter().map(|l| l.lease.id).collect();
    assert_eq!(
        order,
        [a[0].id, b.id, a[1].id],
        "round-robin, FIFO per tenant"
    );
    for leased in &batch {
        let Record::Found(record) = &leased.record else {
            panic!("no record with {:?}", leased.lease);
        };
        assert_eq!(
            store.get(leased.lease.id).await.unwrap().as_ref(),
            Some(&**record)
        );
    }
    assert_eq!(queue.in_flight(), 3);
    assert_eq!(queue.depth().await.unwrap(), 2);
    let rest = queue.pop_batch(10).await.unwrap();
    assert_eq!(rest.len(), 2, "fewer waiting than asked for");
    assert_eq!(rest[0].lease.id, a[2].id);
    assert!(
        matches!(rest[1].record, Record::Missing),
        "no record: nothing owed"
    );
    for leased in batch.iter().chain(&rest) {
        queue.ack(&leased.lease).await.unwrap();
    }
    assert_eq!(queue.in_flight(), 0);
    // Nothing waits: a batch pop waits like pop, and returns nothing once closed.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), queue.pop_batch(4))
            .await
            .is_err()
    );
    queue.close();
    assert!(queue.pop_batch(4).await.unwrap().is_empty());
}

#[tokio::test]
async fn session_batches_run_job_updates_and_finish_records_them_with_the_ack() {
    let server = RedisServer::start();
    let (store, queue) = connect(config(&server, "session")).await.unwrap();
    for (image, state) in [
        (jpeg(100, 100), JobState::Success),
        (jpeg(1800, 100), JobState::Failed),
    ] {
        let submitted = job(Some("acme"));
        store.insert(submitted.clone()).await.unwrap();
        queue.push(submitted.id, "acme").await.unwrap();
        let leased = queue.pop_batch(1).await.unwrap().pop().unwrap();
        let Record::Found(record) = leased.record else {
            panic!("no record");
        };
        let session = JobSession::new(store.clone(), leased.lease.id);
        let notifier = RecordingNotifier::new();
        let validate = async { Report::from_bytes(&image, &Policy::default()) };
        assert_eq!(
            run_job(&record, &session, &notifier, validate).await,
            Ok(state)
        );

        // Everything but the final outcome is recorded; it goes with the acknowledgement.
        let before = store.get(submitted.id).await.unwrap().unwrap();
        assert_eq!(
            before.state, state,
            "the verdict is recorded before the ack"
        );
        let last = before.notifications.last().unwrap();
        assert_eq!(last.status, DeliveryStatus::Pending);
        assert_eq!(queue.in_flight(), 1);

        let held = session.take_held().await;
        assert_eq!(held.len(), 1, "only the final outcome is held: {held:?}");
        queue.finish(&leased.lease, &held).await.unwrap();
        assert_eq!(queue.in_flight(), 0);

        // The same job as the store unbatched would hold.
        let mut expected = (*record).clone();
        let stored = store.get(submitted.id).await.unwrap().unwrap();
        expected.state = state;
        expected.errors = stored.errors.clone();
        expected.started_at = stored.started_at;
        expected.finished_at = stored.finished_at;
        expected.notifications = stored.notifications.clone();
        assert_eq!(stored, expected);
        assert!(stored.started_at.is_some() && stored.finished_at.is_some());
        let events: Vec<(Event, DeliveryStatus)> = stored
            .notifications
            .iter()
            .map(|r| (r.event, r.status))
            .collect();
        let final_event = if state == JobState::Success {
            Event::OnSuccess
        } else {
            Event::OnFailure
        };
        assert_eq!(
            events,
            [
                (Event::OnStart, DeliveryStatus::Delivered),
                (final_event, DeliveryStatus::Delivered)
            ]
        );
        assert_eq!(notifier.sent().len(), 2);
    }
    // Acknowledged: nothing pending, nothing to reclaim.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(queue.reclaim().await.unwrap(), None);
}

#[tokio::test]
async fn session_sends_an_update_at_once_unless_the_next_follows_at_once() {
    let server = RedisServer::start();
    let (store, _queue) = connect(config(&server, "hold")).await.unwrap();
    let submitted = job(None);
    store.insert(submitted.clone()).await.unwrap();
    let session = JobSession::new(store.clone(), submitted.id);
    let url = submitted.notification_urls.on_start.clone();
    let now = OffsetDateTime::now_utc();
    let state = |store: RedisStore| async move {
        let job = store.get(submitted.id).await.unwrap().unwrap();
        (job.state, job.notifications.len())
    };

    // Held: a start is always followed at once by onStart's pending record.
    session
        .update(submitted.id, JobUpdate::Started { at: now })
        .await
        .unwrap();
    assert_eq!(state(store.clone()).await, (JobState::Queued, 0));
    // A webhook about to go out: sent with what is held.
    session
        .update(
            submitted.id,
            JobUpdate::Delivery(DeliveryRecord::pending(Event::OnStart, url.clone())),
        )
        .await
        .unwrap();
    assert_eq!(state(store.clone()).await, (JobState::Started, 1));
    // A verdict while onStart is being sent: at once (a slow receiver hides nothing).
    session.update(submitted.id, verdict(None)).await.unwrap();
    assert_eq!(state(store.clone()).await, (JobState::Success, 1));
    // onStart's outcome once the verdict is in: held for the final pending record.
    let mut done = DeliveryRecord::pending(Event::OnStart, url);
    done.status = DeliveryStatus::Delivered;
    session
        .update(submitted.id, JobUpdate::Delivery(done))
        .await
        .unwrap();
    let held = store.get(submitted.id).await.unwrap().unwrap();
    assert_eq!(held.notifications[0].status, DeliveryStatus::Pending);
    // A read through the session sends what is held first.
    let read = session.get(submitted.id).await.unwrap().unwrap();
    assert_eq!(read.notifications[0].status, DeliveryStatus::Delivered);
    assert!(session.take_held().await.is_empty());
}

#[tokio::test]
async fn submit_records_and_queues_in_one_step() {
    let server = RedisServer::start();
    let mut config = config(&server, "submit");
    config.capacity = 3;
    config.per_tenant = 2;
    let (store, queue) = connect(config).await.unwrap();
    let full = Err(StoreError::Full {
        retry_after_secs: 1,
    });
    let first = job(Some("a"));
    assert_eq!(queue.submit(first.clone()).await, Ok(Inserted::New));
    assert_eq!(store.get(first.id).await.unwrap().as_ref(), Some(&first));
    assert_eq!(queue.depth().await.unwrap(), 1);
    // The same id again: the stored job, nothing more queued.
    assert_eq!(
        queue.submit(first.clone()).await,
        Ok(Inserted::Existing(Box::new(first.clone())))
    );
    assert_eq!(queue.depth().await.unwrap(), 1);
    queue.submit(job(Some("a"))).await.unwrap();
    let refused = job(Some("a"));
    assert_eq!(queue.submit(refused.clone()).await, full, "tenant share");
    assert_eq!(
        store.get(refused.id).await.unwrap(),
        None,
        "nothing recorded"
    );
    // A resubmission is still answered when full.
    assert!(matches!(
        queue.submit(first.clone()).await,
        Ok(Inserted::Existing(_))
    ));
    queue.submit(job(None)).await.unwrap();
    assert_eq!(queue.submit(job(Some("b"))).await, full, "overall");
    assert_eq!(queue.depth().await.unwrap(), 3);
    let lease = pop_within(&queue, Duration::from_secs(2)).await.unwrap();
    assert_eq!(lease.id, first.id);
    queue.ack(&lease).await.unwrap();
    queue.close();
    assert_eq!(queue.submit(job(None)).await, Err(StoreError::Closed));
}

#[tokio::test]
async fn a_job_its_own_verdict_evicts_takes_no_further_updates_in_the_batch() {
    let server = RedisServer::start();
    let mut config = config(&server, "evicted");
    config.retention = Retention {
        max_age: Duration::from_secs(3600),
        max_jobs: 1,
    };
    let (store, _queue) = connect(config).await.unwrap();
    // Queued jobs are never evicted: with one waiting, the next verdict evicts its own job.
    let waiting = job(None);
    store.insert(waiting.clone()).await.unwrap();
    let submitted = job(None);
    store.insert(submitted.clone()).await.unwrap();
    let session = JobSession::new(store.clone(), submitted.id);
    let id = submitted.id;
    let start_url = submitted.notification_urls.on_start.clone();
    let mut start_done = DeliveryRecord::pending(Event::OnStart, start_url.clone());
    start_done.status = DeliveryStatus::Delivered;
    let updates = [
        JobUpdate::Started {
            at: OffsetDateTime::now_utc(),
        },
        JobUpdate::Delivery(DeliveryRecord::pending(Event::OnStart, start_url)),
        JobUpdate::Delivery(start_done),
        // Held (no webhook in flight), then sent with the final pending record.
        verdict(None),
        JobUpdate::Delivery(DeliveryRecord::pending(
            Event::OnSuccess,
            submitted.notification_urls.on_success.clone(),
        )),
    ];
    for update in updates {
        session.update(id, update).await.unwrap();
    }
    assert_eq!(store.get(id).await, Ok(None), "evicted, and not recreated");
    assert_eq!(ids(&store, ListQuery::new(10)).await, [waiting.id]);
}

#[tokio::test]
async fn a_drained_worker_wakes_at_once_for_the_next_push() {
    let server = RedisServer::start();
    let mut config = config(&server, "bell");
    // A missed wake-up would show as a pop waiting out this block time.
    config.block_time = Duration::from_secs(5);
    config.reclaim_every = Duration::from_secs(60);
    config.reclaim_idle = Duration::from_secs(120);
    let (_store, worker) = connect(config.clone()).await.unwrap();
    let (_store, api) = connect(config).await.unwrap();
    for round in 1..=3 {
        // Taking the last entry drops the wake-up tokens left; the next push leaves one.
        for _ in 0..round {
            api.push(JobId::random(), "t").await.unwrap();
        }
        let taken = worker.pop_batch(8).await.unwrap();
        assert_eq!(taken.len(), round);
        for leased in &taken {
            worker.ack(&leased.lease).await.unwrap();
        }
        let pushed = JobId::random();
        let started = Instant::now();
        let (next, ()) = tokio::join!(worker.pop_batch(8), async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            api.push(pushed, "t").await.unwrap();
        });
        let next = next.unwrap();
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].lease.id, pushed);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "woken by the push, not the block time: {:?}",
            started.elapsed()
        );
        worker.ack(&next[0].lease).await.unwrap();
    }
}
