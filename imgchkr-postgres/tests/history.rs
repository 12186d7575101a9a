//! The history is queryable: the three example queries of the README (failure rate per
//! tenant per hour, slowest webhook destinations, jobs of one asset path), taken from the
//! README as written, run against a database populated through the engine, and answer what
//! was done. The top-level README shows the same queries.

mod support;

use std::time::Duration;

use imgchkr_core::engine::{Lease, LeaseRequest, WorkerId};
use imgchkr_core::{
    AssetPath, DeliveryRecord, DeliveryStatus, Engine, ErrorMap, Event, Job, JobUpdate,
};
use imgchkr_postgres::PostgresEngine;
use support::{PgCluster, ROOMY, config, job};
use time::OffsetDateTime;

const CRATE_README: &str = include_str!("../README.md");
const TOP_README: &str = include_str!("../../README.md");

/// The ```sql blocks of `readme`, in order.
fn sql_blocks(readme: &str) -> Vec<String> {
    readme
        .split("```sql\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap().to_owned())
        .collect()
}

/// Runs `job` through the five steps with real times: onStart delivered, its verdict
/// (`errors`), the final event delivered after `receiver_takes`.
async fn run(
    engine: &PostgresEngine,
    job: &Job,
    errors: Option<ErrorMap>,
    receiver_takes: Duration,
) {
    engine.submit(job, ROOMY).await.unwrap();
    let now = OffsetDateTime::now_utc();
    let request = LeaseRequest::new(WorkerId("w".into()), 1, now, now + Duration::from_secs(60));
    let leased = engine.lease(&request).await.unwrap();
    let lease: &Lease = &leased[0].lease;
    assert_eq!(lease.key, job.key());
    let event = if errors.is_some() {
        Event::OnFailure
    } else {
        Event::OnSuccess
    };
    let urls = &job.notification_urls;
    let start = DeliveryRecord::pending(Event::OnStart, urls.on_start.clone());
    let last = DeliveryRecord::pending(event, urls.get(event).clone());
    let verdict = JobUpdate::Verdict {
        errors,
        warnings: Vec::new(),
        at: OffsetDateTime::now_utc(),
    };
    engine
        .record(lease, &[JobUpdate::Delivery(start.clone())])
        .await
        .unwrap();
    engine
        .record(
            lease,
            &[
                verdict,
                JobUpdate::Delivery(delivered(start)),
                JobUpdate::Delivery(last.clone()),
            ],
        )
        .await
        .unwrap();
    tokio::time::sleep(receiver_takes).await;
    engine
        .finish(lease, &[JobUpdate::Delivery(delivered(last))])
        .await
        .unwrap();
}

fn delivered(pending: DeliveryRecord) -> DeliveryRecord {
    let mut done = pending;
    done.status = DeliveryStatus::Delivered;
    done.attempts = 1;
    done.http_status = Some(200);
    done
}

/// A job of `tenant` for `path` whose webhooks go to `host`.
fn job_of(tenant: &str, path: &str, host: &str) -> Job {
    let mut j = job(tenant);
    j.asset_path = AssetPath::Local { path: path.into() };
    for (event, url) in [
        (Event::OnStart, &mut j.notification_urls.on_start),
        (Event::OnSuccess, &mut j.notification_urls.on_success),
        (Event::OnFailure, &mut j.notification_urls.on_failure),
    ] {
        *url = format!("https://{host}/hooks/{event}").parse().unwrap();
    }
    j.created_at = OffsetDateTime::now_utc();
    j
}

fn too_wide() -> ErrorMap {
    let mut errors = ErrorMap::new();
    errors.insert(
        "image".into(),
        vec!["Image width exceeds maximum (1800/1000)".into()],
    );
    errors
}

/// psql's rows of `out` as columns.
fn rows(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split('|').map(str::to_owned).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readmes_history_queries_answer_what_happened() {
    let queries = sql_blocks(CRATE_README);
    assert_eq!(queries.len(), 3, "the crate README's example queries");
    for query in &queries {
        assert!(
            TOP_README.contains(query.as_str()),
            "the top-level README shows the same query:\n{query}"
        );
    }
    let cluster = PgCluster::start();
    let db = cluster.create_database();
    // The default schema, as a deployment has it.
    let engine = PostgresEngine::connect(config(&cluster.url(&db), "imgchkr"))
        .await
        .unwrap();
    let asset = "images/products/1234.jpg";
    let fast = Duration::ZERO;
    let slow = Duration::from_millis(300);
    let mut of_asset = Vec::new();
    // acme: three passed and one failed; globex: two failed. globex's receiver is slow.
    for i in 0..4 {
        let path = if i == 0 { asset } else { "images/other.jpg" };
        let j = job_of("acme", path, "hooks.acme.test");
        let errors = (i == 3).then(too_wide);
        run(&engine, &j, errors, fast).await;
        if path == asset {
            of_asset.push(j.id.to_string());
        }
    }
    for _ in 0..2 {
        let j = job_of("globex", asset, "slow.globex.test:8443");
        run(&engine, &j, Some(too_wide()), slow).await;
        of_asset.push(j.id.to_string());
    }
    // A job still waiting is no part of the failure rate.
    engine
        .submit(&job_of("acme", asset, "hooks.acme.test"), ROOMY)
        .await
        .unwrap();

    let rates = rows(&cluster.psql(&db, &queries[0]));
    let by_tenant: Vec<(&str, &str, &str, &str)> = rates
        .iter()
        .map(|r| (r[0].as_str(), r[2].as_str(), r[3].as_str(), r[4].as_str()))
        .collect();
    // One hour (unless the test straddles an hour boundary: then per tenant, summed).
    let sum = |tenant: &str, column: usize| -> u64 {
        rates
            .iter()
            .filter(|r| r[0] == tenant)
            .map(|r| r[column].parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!((sum("acme", 2), sum("acme", 3)), (4, 1), "{by_tenant:?}");
    assert_eq!(
        (sum("globex", 2), sum("globex", 3)),
        (2, 2),
        "{by_tenant:?}"
    );
    if rates.len() == 2 {
        assert_eq!(by_tenant[0].3, "25.0");
        assert_eq!(by_tenant[1].3, "100.0");
    }

    let slowest = rows(&cluster.psql(&db, &queries[1]));
    assert_eq!(slowest.len(), 2, "{slowest:?}");
    assert_eq!(slowest[0][0], "slow.globex.test:8443", "{slowest:?}");
    assert_eq!(slowest[0][1], "2");
    assert_eq!(slowest[1][0], "hooks.acme.test");
    assert_eq!(slowest[1][1], "4");
    let p95 = |row: &Vec<String>| row[3].parse::<f64>().unwrap();
    assert!(p95(&slowest[0]) >= 300.0, "{slowest:?}");
    assert!(p95(&slowest[1]) < 300.0, "{slowest:?}");

    let jobs = rows(&cluster.psql(&db, &queries[2]));
    let ids: Vec<&str> = jobs.iter().map(|r| r[1].as_str()).collect();
    // Newest first: the waiting job, then globex's two, then acme's first.
    assert_eq!(ids.len(), 4, "{jobs:?}");
    let mut want: Vec<&str> = of_asset.iter().map(String::as_str).rev().collect();
    want.insert(0, ids[0]);
    assert_eq!(ids, want);
    assert_eq!(jobs[0][2], "queued");
    assert_eq!(jobs[1][2], "failed");
    assert_eq!(jobs[3][2], "success");
}
