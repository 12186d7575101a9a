//! Queue and lease cases: order, fairness, admission, leases, takeover, heartbeats.

use std::sync::Arc;
use std::time::Duration;

use super::{
    Case, Outcome, ROOMY, T0, at, ensure, finish, get, job, keys, lease, request, submit, worker,
};
use crate::engine::{Admission, Bucket, Engine, Full, StoreError, Submitted, Token};
use crate::job::{JobKey, JobState, JobUpdate, Priority};

macro_rules! case {
    ($name:ident) => {
        Case {
            name: stringify!($name),
            run: |engine| Box::pin($name(engine)),
        }
    };
}
pub(super) use case;

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(submit_records_a_queued_job),
        case!(submit_is_idempotent_per_key),
        case!(fifo_within_priority_higher_first),
        case!(round_robin_across_tenants),
        case!(round_robin_holds_within_a_batch),
        case!(lease_takes_at_most_max),
        case!(lease_marks_started_and_counts_deliveries),
        case!(expired_lease_is_taken_over),
        case!(heartbeat_keeps_a_lease),
        case!(finish_records_and_ends_the_lease),
        case!(release_lets_any_worker_take_over),
        case!(record_applies_updates_in_order),
        case!(capacity_and_tenant_share_bound_the_queue),
        case!(tenant_in_flight_cap_skips_busy_tenants),
        case!(stats_count_waiting_and_in_flight),
        case!(token_buckets_refill_at_their_rate),
        case!(remember_keeps_the_first_value_until_it_expires),
    ]
}

async fn submit_records_a_queued_job(engine: Arc<dyn Engine>) -> Outcome {
    let mut submitted = job("acme", Priority::High);
    submitted.state = JobState::Queued;
    submit(&*engine, &submitted).await?;
    let stored = get(&*engine, &submitted.key()).await?;
    ensure(stored == submitted, || {
        format!("stored job differs:\n  submitted {submitted:?}\n  stored    {stored:?}")
    })
}

async fn submit_is_idempotent_per_key(engine: Arc<dyn Engine>) -> Outcome {
    let first = job("acme", Priority::Normal);
    submit(&*engine, &first).await?;
    let mut again = first.clone();
    again.asset_path = crate::AssetPath::Local {
        path: "other.jpg".into(),
    };
    match engine.submit(&again, ROOMY).await {
        Ok(Submitted::Existing(existing)) => ensure(*existing == first, || {
            format!("resubmission returned {existing:?}, not the first job")
        })?,
        other => return Err(format!("resubmission: expected Existing, got {other:?}")),
    }
    // Nothing was queued twice.
    let leased = lease(&*engine, &request("w", 10, T0)).await?;
    ensure(keys(&leased) == [first.key()], || {
        format!("expected one queued job, leased {:?}", keys(&leased))
    })
}

async fn fifo_within_priority_higher_first(engine: Arc<dyn Engine>) -> Outcome {
    let order = [
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Normal,
        Priority::High,
        Priority::Low,
    ];
    let jobs: Vec<_> = order.iter().map(|p| job("acme", *p)).collect();
    for j in &jobs {
        submit(&*engine, j).await?;
    }
    let want: Vec<JobKey> = [2, 4, 1, 3, 0, 5].iter().map(|&i| jobs[i].key()).collect();
    let mut got = Vec::new();
    for i in 0..jobs.len() {
        // One at a time, as a worker with one free slot takes them.
        got.extend(keys(
            &lease(&*engine, &request("w", 1, at(i as u64))).await?,
        ));
    }
    ensure(got == want, || {
        format!("lease order {got:?}, want high first, FIFO within a priority: {want:?}")
    })
}

async fn round_robin_across_tenants(engine: Arc<dyn Engine>) -> Outcome {
    let names = ["a", "a", "a", "b", "c", "c"];
    let jobs: Vec<_> = names.iter().map(|t| job(t, Priority::Normal)).collect();
    for j in &jobs {
        submit(&*engine, j).await?;
    }
    // a1 b1 c1 a2 c2 a3: each tenant with work waiting gets a turn, longest-waiting first.
    let want: Vec<JobKey> = [0, 3, 4, 1, 5, 2].iter().map(|&i| jobs[i].key()).collect();
    let mut got = Vec::new();
    for i in 0..jobs.len() {
        got.extend(keys(
            &lease(&*engine, &request("w", 1, at(i as u64))).await?,
        ));
    }
    ensure(got == want, || {
        format!("lease order {got:?}, want {want:?}")
    })
}

async fn round_robin_holds_within_a_batch(engine: Arc<dyn Engine>) -> Outcome {
    let names = ["a", "a", "a", "b", "c", "c"];
    let jobs: Vec<_> = names.iter().map(|t| job(t, Priority::Normal)).collect();
    for j in &jobs {
        submit(&*engine, j).await?;
    }
    let batch = keys(&lease(&*engine, &request("w", 6, T0)).await?);
    let want: Vec<JobKey> = [0, 3, 4, 1, 5, 2].iter().map(|&i| jobs[i].key()).collect();
    ensure(batch == want, || {
        format!("batch order {batch:?}, want {want:?}")
    })?;
    // Served tenants go to the back: the least recently served goes first next time.
    let more: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|t| job(t, Priority::Normal))
        .collect();
    for j in &more {
        submit(&*engine, j).await?;
    }
    let next = keys(&lease(&*engine, &request("w", 3, at(1))).await?);
    let want: Vec<JobKey> = [1, 2, 0].iter().map(|&i| more[i].key()).collect();
    ensure(next == want, || {
        format!("after a round (a served last, b first): {next:?}, want {want:?}")
    })
}

async fn lease_takes_at_most_max(engine: Arc<dyn Engine>) -> Outcome {
    for _ in 0..5 {
        submit(&*engine, &job("acme", Priority::Normal)).await?;
    }
    let first = lease(&*engine, &request("w", 3, T0)).await?;
    let second = lease(&*engine, &request("w", 3, T0)).await?;
    let third = lease(&*engine, &request("w", 3, T0)).await?;
    ensure(
        first.len() == 3 && second.len() == 2 && third.is_empty(),
        || {
            format!(
                "batches of {}, {}, {}; want 3, 2, 0",
                first.len(),
                second.len(),
                third.len()
            )
        },
    )
}

async fn lease_marks_started_and_counts_deliveries(engine: Arc<dyn Engine>) -> Outcome {
    let queued = job("acme", Priority::Normal);
    submit(&*engine, &queued).await?;
    let leased = lease(&*engine, &request("w1", 1, at(5))).await?;
    let [taken] = leased.as_slice() else {
        return Err(format!("expected one lease, got {}", leased.len()));
    };
    ensure(
        taken.lease.deliveries == 1 && taken.lease.worker == worker("w1"),
        || format!("first lease {:?}", taken.lease),
    )?;
    ensure(
        taken.job.state == JobState::Started && taken.job.started_at == Some(at(5)),
        || format!("leased record not started at t+5: {:?}", taken.job),
    )?;
    let stored = get(&*engine, &queued.key()).await?;
    ensure(stored == taken.job, || {
        format!(
            "stored record {stored:?} differs from the leased one {:?}",
            taken.job
        )
    })
}

async fn expired_lease_is_taken_over(engine: Arc<dyn Engine>) -> Outcome {
    let queued = job("acme", Priority::Normal);
    submit(&*engine, &queued).await?;
    let first = lease(&*engine, &request("a", 1, at(0))).await?;
    ensure(first.len() == 1, || "no first lease".into())?;
    let early = lease(&*engine, &request("b", 1, at(59))).await?;
    ensure(early.is_empty(), || {
        format!("a live lease was taken over: {:?}", keys(&early))
    })?;
    let taken = lease(&*engine, &request("b", 1, at(60))).await?;
    let [again] = taken.as_slice() else {
        return Err(format!(
            "expired lease not taken over at its deadline: {:?}",
            keys(&taken)
        ));
    };
    ensure(
        again.lease.deliveries == 2 && again.lease.worker == worker("b"),
        || format!("takeover lease {:?}", again.lease),
    )?;
    ensure(again.job.started_at == Some(at(0)), || {
        format!("startedAt changed on takeover: {:?}", again.job.started_at)
    })?;
    // The first worker's heartbeat now says the lease is lost.
    let lost = engine
        .heartbeat(
            &worker("a"),
            std::slice::from_ref(&first[0].lease),
            at(61),
            at(121),
            "",
        )
        .await
        .map_err(|e| format!("heartbeat: {e}"))?;
    ensure(lost.len() == 1, || {
        format!("the old holder's heartbeat did not report the lease lost: {lost:?}")
    })?;
    let still = engine
        .heartbeat(
            &worker("b"),
            std::slice::from_ref(&again.lease),
            at(61),
            at(121),
            "",
        )
        .await
        .map_err(|e| format!("heartbeat: {e}"))?;
    ensure(still.is_empty(), || {
        format!("the new holder's heartbeat lost its lease: {still:?}")
    })
}

async fn heartbeat_keeps_a_lease(engine: Arc<dyn Engine>) -> Outcome {
    submit(&*engine, &job("acme", Priority::Normal)).await?;
    let held = lease(&*engine, &request("a", 1, at(0))).await?;
    let leases: Vec<_> = held.iter().map(|l| l.lease.clone()).collect();
    let lost = engine
        .heartbeat(&worker("a"), &leases, at(50), at(110), "")
        .await
        .map_err(|e| format!("heartbeat: {e}"))?;
    ensure(lost.is_empty(), || {
        format!("live lease reported lost: {lost:?}")
    })?;
    let early = lease(&*engine, &request("b", 1, at(100))).await?;
    ensure(early.is_empty(), || {
        "a heartbeated lease was taken over before its new deadline".into()
    })?;
    let late = lease(&*engine, &request("b", 1, at(110))).await?;
    ensure(late.len() == 1, || {
        "the lease was not taken over after its new deadline".into()
    })
}

async fn finish_records_and_ends_the_lease(engine: Arc<dyn Engine>) -> Outcome {
    let queued = job("acme", Priority::Normal);
    submit(&*engine, &queued).await?;
    let held = lease(&*engine, &request("a", 1, at(0))).await?;
    let lease0 = held[0].lease.clone();
    let verdict = JobUpdate::Verdict {
        errors: None,
        warnings: vec!["a warning".into()],
        at: at(1),
    };
    engine
        .finish(&lease0, std::slice::from_ref(&verdict))
        .await
        .map_err(|e| format!("finish: {e}"))?;
    let stored = get(&*engine, &queued.key()).await?;
    ensure(
        stored.state == JobState::Success
            && stored.finished_at == Some(at(1))
            && stored.warnings == ["a warning"],
        || format!("finished record {stored:?}"),
    )?;
    // Never handed out again, even long after its lease would have expired.
    let later = lease(&*engine, &request("b", 5, at(1000))).await?;
    ensure(later.is_empty(), || {
        format!("a finished job was leased again: {:?}", keys(&later))
    })
}

async fn release_lets_any_worker_take_over(engine: Arc<dyn Engine>) -> Outcome {
    submit(&*engine, &job("acme", Priority::Normal)).await?;
    let held = lease(&*engine, &request("a", 1, at(0))).await?;
    engine
        .release(&held[0].lease)
        .await
        .map_err(|e| format!("release: {e}"))?;
    let taken = lease(&*engine, &request("b", 1, at(1))).await?;
    ensure(taken.len() == 1 && taken[0].lease.deliveries == 2, || {
        format!(
            "a released lease was not taken over at once as delivery 2: {:?}",
            taken.iter().map(|l| &l.lease).collect::<Vec<_>>()
        )
    })
}

async fn record_applies_updates_in_order(engine: Arc<dyn Engine>) -> Outcome {
    let queued = job("acme", Priority::Normal);
    submit(&*engine, &queued).await?;
    let held = lease(&*engine, &request("a", 1, at(0))).await?;
    let url = queued.notification_urls.on_start.clone();
    let pending = crate::DeliveryRecord::pending(crate::Event::OnStart, url.clone());
    let mut delivered = pending.clone();
    delivered.status = crate::DeliveryStatus::Delivered;
    delivered.attempts = 1;
    delivered.http_status = Some(200);
    let mut errors = crate::ErrorMap::new();
    errors.insert("image".into(), vec!["Not a JPEG (png)".into()]);
    let updates = [
        JobUpdate::Delivery(pending),
        JobUpdate::Verdict {
            errors: Some(errors.clone()),
            warnings: Vec::new(),
            at: at(2),
        },
    ];
    engine
        .record(&held[0].lease, &updates)
        .await
        .map_err(|e| format!("record: {e}"))?;
    engine
        .record(&held[0].lease, &[JobUpdate::Delivery(delivered.clone())])
        .await
        .map_err(|e| format!("record: {e}"))?;
    let mut want = held[0].job.clone();
    for update in updates
        .iter()
        .chain(std::iter::once(&JobUpdate::Delivery(delivered)))
    {
        want.apply(update);
    }
    let stored = get(&*engine, &queued.key()).await?;
    ensure(stored == want, || {
        format!("after the updates\n  stored {stored:?}\n  want   {want:?}")
    })?;
    finish(&*engine, &held[0].lease).await
}

async fn capacity_and_tenant_share_bound_the_queue(engine: Arc<dyn Engine>) -> Outcome {
    let admission = Admission::new(3, 2);
    let a1 = job("a", Priority::Normal);
    let a2 = job("a", Priority::Normal);
    for j in [&a1, &a2] {
        match engine.submit(j, admission).await {
            Ok(Submitted::New) => {}
            other => return Err(format!("submit within bounds: {other:?}")),
        }
    }
    match engine.submit(&job("a", Priority::Normal), admission).await {
        Err(StoreError::Full(Full::Tenant)) => {}
        other => return Err(format!("third job of a share of 2: {other:?}")),
    }
    match engine.submit(&job("b", Priority::Normal), admission).await {
        Ok(Submitted::New) => {}
        other => return Err(format!("another tenant within the capacity: {other:?}")),
    }
    match engine.submit(&job("c", Priority::Normal), admission).await {
        Err(StoreError::Full(Full::Queue)) => {}
        other => return Err(format!("fourth job of a capacity of 3: {other:?}")),
    }
    // A resubmission of a known job is answered even when full.
    match engine.submit(&a1, admission).await {
        Ok(Submitted::Existing(_)) => {}
        other => return Err(format!("resubmission when full: {other:?}")),
    }
    // A leased job leaves the waiting count: room again.
    let _ = lease(&*engine, &request("w", 1, T0)).await?;
    match engine.submit(&job("c", Priority::Normal), admission).await {
        Ok(Submitted::New) => Ok(()),
        other => Err(format!("submit after a lease freed a place: {other:?}")),
    }
}

async fn tenant_in_flight_cap_skips_busy_tenants(engine: Arc<dyn Engine>) -> Outcome {
    let a1 = job("a", Priority::Normal);
    let a2 = job("a", Priority::Normal);
    let b1 = job("b", Priority::Normal);
    for j in [&a1, &a2, &b1] {
        submit(&*engine, j).await?;
    }
    let mut capped = request("w", 3, T0);
    capped.tenant_in_flight = Some(1);
    let first = lease(&*engine, &capped).await?;
    // One of each tenant; which goes first is the round-robin cases' business.
    let mut taken = keys(&first);
    taken.sort_by_key(|key| key.tenant.clone());
    ensure(taken == [a1.key(), b1.key()], || {
        format!("with a cap of 1 in flight: {:?}", keys(&first))
    })?;
    let none = lease(&*engine, &capped).await?;
    ensure(none.is_empty(), || {
        format!("a tenant at its cap got more: {:?}", keys(&none))
    })?;
    let Some(held_a1) = first.iter().find(|l| l.lease.key == a1.key()) else {
        return Err("a1 was not leased".into());
    };
    finish(&*engine, &held_a1.lease).await?;
    let next = lease(&*engine, &capped).await?;
    ensure(keys(&next) == [a2.key()], || {
        format!("after a finished: {:?}", keys(&next))
    })
}

async fn stats_count_waiting_and_in_flight(engine: Arc<dyn Engine>) -> Outcome {
    for t in ["a", "a", "b"] {
        submit(&*engine, &job(t, Priority::Normal)).await?;
    }
    let held = lease(&*engine, &request("w", 1, T0)).await?;
    let status = busy_worker_status();
    engine
        .heartbeat(
            &worker("w"),
            std::slice::from_ref(&held[0].lease),
            at(1),
            at(1) + Duration::from_secs(60),
            &status,
        )
        .await
        .map_err(|e| format!("heartbeat: {e}"))?;
    let stats = engine.stats().await.map_err(|e| format!("stats: {e}"))?;
    ensure(stats.waiting == 2 && stats.in_flight == 1, || {
        format!("stats {stats:?}: want 2 waiting, 1 in flight")
    })?;
    // Which tenant's job was leased is the round-robin cases' business.
    let want = if held[0].lease.key.tenant == "a" {
        vec![("a".to_owned(), 1, 1), ("b".to_owned(), 1, 0)]
    } else {
        vec![("a".to_owned(), 2, 0), ("b".to_owned(), 0, 1)]
    };
    ensure(stats.tenants == want, || {
        format!("per tenant {:?}, want {want:?}", stats.tenants)
    })?;
    ensure(
        stats.workers.len() == 1
            && stats.workers[0].worker == worker("w")
            && stats.workers[0].held == 1
            && stats.workers[0].at == at(1)
            && stats.workers[0].status == status,
        || format!("workers {:?}", stats.workers),
    )
}

/// What a busy worker says of itself with its heartbeats (core's worker status, the
/// dashboard's source): 15 minutes of activity with many destination hosts, some KiB of JSON
/// that every engine must keep exactly.
fn busy_worker_status() -> String {
    use crate::activity::{Activity, WorkerStatus};
    use crate::notify::{Attempt, DeliveryOutcome};
    let mut activity = Activity::default();
    for minute in 0..15 {
        let when = at(1_000 + minute * 60);
        for host in 0..20 {
            let attempt = Attempt::answered(1, 200, Duration::from_millis(40 + host));
            let outcome = DeliveryOutcome::from_attempts(vec![attempt]);
            activity.delivery(&format!("hooks-{host}.example.com"), &outcome, when);
        }
        activity.job_finished(JobState::Success, when);
        activity.job_finished(JobState::Failed, when);
    }
    let status = WorkerStatus::new(
        64,
        Duration::from_secs(60),
        Duration::from_secs(5),
        activity,
    );
    status.to_json()
}

async fn token_buckets_refill_at_their_rate(engine: Arc<dyn Engine>) -> Outcome {
    let bucket = Bucket {
        rate: 2.0,
        burst: 3,
    };
    let take = |name: &'static str, now| {
        let engine = Arc::clone(&engine);
        async move {
            engine
                .take_token(name, bucket, now)
                .await
                .map_err(|e| format!("take_token: {e}"))
        }
    };
    // A new bucket is full: three at once, then empty.
    for i in 0..3 {
        let got = take("acme", T0).await?;
        ensure(got == Token::Granted, || {
            format!("token {i} of a full bucket: {got:?}")
        })?;
    }
    match take("acme", T0).await? {
        Token::Wait(wait) => ensure(
            wait > Duration::from_millis(400) && wait <= Duration::from_millis(500),
            || format!("wait {wait:?} at 2 tokens/s, want 0.5 s"),
        )?,
        Token::Granted => return Err("an empty bucket granted a token".into()),
    }
    // Buckets are separate.
    let other = take("other", T0).await?;
    ensure(other == Token::Granted, || {
        format!("another bucket: {other:?}")
    })?;
    // Half a second later one token is back (and only one).
    let half = T0 + Duration::from_millis(500);
    let got = take("acme", half).await?;
    ensure(got == Token::Granted, || format!("after 0.5 s: {got:?}"))?;
    let got = take("acme", half).await?;
    ensure(matches!(got, Token::Wait(_)), || {
        format!("a second one after 0.5 s: {got:?}")
    })?;
    // A long pause refills to the burst, not beyond.
    let later = at(3600);
    for i in 0..3 {
        let got = take("acme", later).await?;
        ensure(got == Token::Granted, || {
            format!("token {i} after an hour: {got:?}")
        })?;
    }
    let got = take("acme", later).await?;
    ensure(matches!(got, Token::Wait(_)), || {
        format!("more than the burst after an hour: {got:?}")
    })
}

async fn remember_keeps_the_first_value_until_it_expires(engine: Arc<dyn Engine>) -> Outcome {
    let remember = |key: &'static str, value: &'static str, expires, now| {
        let engine = Arc::clone(&engine);
        async move {
            engine
                .remember(key, value, expires, now)
                .await
                .map_err(|e| format!("remember: {e}"))
        }
    };
    let first = remember("acme/req-1", "one", at(300), T0).await?;
    ensure(first.is_none(), || format!("a new key: {first:?}"))?;
    let again = remember("acme/req-1", "two", at(400), at(100)).await?;
    ensure(again.as_deref() == Some("one"), || {
        format!("a live key: {again:?}")
    })?;
    let other = remember("bob/req-1", "three", at(300), at(100)).await?;
    ensure(other.is_none(), || format!("another key: {other:?}"))?;
    // Once expired, the key takes a new value.
    let expired = remember("acme/req-1", "four", at(900), at(300)).await?;
    ensure(expired.is_none(), || format!("an expired key: {expired:?}"))?;
    let now = remember("acme/req-1", "five", at(900), at(301)).await?;
    ensure(now.as_deref() == Some("four"), || {
        format!("the new value: {now:?}")
    })?;
    engine
        .purge(&crate::engine::Retention::default(), at(1000), 100)
        .await
        .map_err(|e| format!("purge: {e}"))?;
    let purged = remember("acme/req-1", "six", at(2000), at(1000)).await?;
    ensure(purged.is_none(), || format!("after purge: {purged:?}"))
}
