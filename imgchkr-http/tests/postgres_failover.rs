//! The Postgres engine end to end: a throwaway cluster, real `imgchkr api` and `imgchkr
//! worker` processes, a real webhook receiver. Two APIs and two workers on one Postgres: a
//! worker is killed with SIGKILL (no drain, no acknowledgement) while it holds jobs, then
//! Postgres is stopped immediately (no checkpoint) and started again; every accepted job still
//! reaches its final state with its final webhook and stable webhook ids. And `/readyz`
//! follows Postgres going away and coming back.
//!
//! The workers run with a short lease (`--lease-idle 1s`, `--heartbeat 200ms`) so a dead
//! worker's jobs are taken over within seconds.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::failover::{assert_every_job_final, final_event, redelivered_by};
use common::pg_cluster::PgCluster;
use common::{Receiver, Server, WorkerProcess, jpeg_header, wait_within};
use serde_json::Value;

/// Worker flags: a dead worker's jobs are taken over after 1 s.
const FAST_TAKEOVER: [&str; 4] = ["--lease-idle", "1s", "--heartbeat", "200ms"];

/// A cluster and a fresh database on it; returns both and the store URL.
fn postgres() -> (PgCluster, String) {
    let cluster = PgCluster::start();
    let db = cluster.create_database();
    let url = cluster.url(&db);
    (cluster, url)
}

#[test]
fn readyz_is_503_while_postgres_is_down_and_200_once_it_is_back() {
    let (mut cluster, url) = postgres();
    let hooks = Receiver::start();
    let server = Server::start(&["--store", &url]);
    server.write("ok.jpg", &jpeg_header(10, 10));
    // Ready once its worker runs and its first check of Postgres is in (on a busy machine,
    // not always at the ready line).
    wait_within("readyz 200", Duration::from_secs(10), || {
        (server.get("/readyz").status == 200).then_some(())
    });
    wait_within("postgres_up 1", Duration::from_secs(5), || {
        (server.metric("imgchkr_postgres_up") == 1.0).then_some(())
    });

    cluster.stop_immediate();
    let r = wait_within("readyz 503", Duration::from_secs(10), || {
        let r = server.get("/readyz");
        (r.status == 503).then_some(r)
    });
    let reason = r.json()["reason"].as_str().unwrap_or("").to_owned();
    assert!(
        reason.starts_with("store unavailable: postgres"),
        "{reason}"
    );
    assert_eq!(server.get("/healthz").status, 200, "alive, only not ready");
    let refused = server.submit(&hooks.submission("ok.jpg"));
    assert_eq!(refused.status, 503, "{}", refused.body_text());
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(server.metric("imgchkr_postgres_up"), 0.0);

    cluster.restart();
    wait_within("readyz 200 again", Duration::from_secs(15), || {
        (server.get("/readyz").status == 200).then_some(())
    });
    assert_eq!(server.metric("imgchkr_postgres_up"), 1.0);
    let r = server.submit(&hooks.submission("ok.jpg"));
    assert_eq!(r.status, 202, "{}", r.body_text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(server.wait_final(&id)["state"], "success");
}

#[test]
fn two_apis_two_workers_survive_a_worker_kill_9_and_a_postgres_restart() {
    const JOBS: usize = 30;
    let (mut cluster, url) = postgres();
    let hooks = Receiver::start();
    // onStart is answered after 3 s: every job is held in flight by its worker meanwhile.
    hooks.set_path_delay("onStart", Duration::from_secs(3));
    let dir = tempfile::tempdir().unwrap();
    let image_dir = dir.path().to_owned();
    std::fs::write(image_dir.join("ok.jpg"), jpeg_header(10, 10)).unwrap();
    std::fs::write(image_dir.join("big.jpg"), jpeg_header(1800, 1200)).unwrap();
    let apis = [
        Server::start_cmd("api", dir, &["--store", &url], "info"),
        Server::start_cmd(
            "api",
            tempfile::tempdir().unwrap(),
            &["--store", &url],
            "info",
        ),
    ];
    // Each worker holds at most half the jobs, so both hold some when all have started.
    let mut worker_flags = vec!["--max-concurrent-jobs", "15"];
    worker_flags.extend(FAST_TAKEOVER);
    let mut doomed = WorkerProcess::start_on(&image_dir, &url, &worker_flags);
    let survivor = WorkerProcess::start_on(&image_dir, &url, &worker_flags);

    // Two APIs take the submissions in turn.
    let mut expected: HashMap<String, &str> = HashMap::new();
    for i in 0..JOBS {
        let (image, state) = if i % 3 == 0 {
            ("big.jpg", "failed")
        } else {
            ("ok.jpg", "success")
        };
        let r = apis[i % 2].submit(&hooks.submission(image));
        assert_eq!(r.status, 202, "{}", r.body_text());
        expected.insert(r.json()["id"].as_str().unwrap().to_owned(), state);
    }

    // Every job has started (its onStart is being held): kill one worker, mid-job.
    wait_within("every onStart", Duration::from_secs(20), || {
        let hooks = hooks.hooks();
        let started = expected
            .keys()
            .filter(|id| hooks.iter().any(|h| h.body["id"] == id.as_str()))
            .count();
        (started == JOBS).then_some(())
    });
    doomed.kill_9();
    let killed_at = Instant::now();

    // Then Postgres goes away at once (no checkpoint: what is committed is only in its
    // write-ahead log) while the survivor holds jobs; submissions are refused meanwhile.
    cluster.stop_immediate();
    let refused = apis[0].submit(&hooks.submission("ok.jpg"));
    assert_eq!(refused.status, 503, "{}", refused.body_text());
    assert_eq!(refused.header("retry-after"), Some("1"));
    std::thread::sleep(Duration::from_secs(2));
    cluster.restart();

    // Accepted after the restart too.
    let r = wait_within(
        "a submission after the restart",
        Duration::from_secs(15),
        || {
            let r = apis[1].submit(&hooks.submission("ok.jpg"));
            (r.status == 202).then_some(r)
        },
    );
    expected.insert(r.json()["id"].as_str().unwrap().to_owned(), "success");

    assert_every_job_final(
        &apis,
        &hooks,
        &expected,
        Duration::from_secs(60),
        Duration::from_secs(15),
    );
    // The killed worker's jobs were taken over by the survivor.
    let redelivered = redelivered_by(&survivor);
    eprintln!(
        "{redelivered} jobs taken over; all {} final {:?} after the kill",
        expected.len(),
        killed_at.elapsed()
    );
    // Any API's /metrics shows the deployment's queue (read from Postgres): nothing left
    // leased or waiting.
    wait_within("the queue in /metrics", Duration::from_secs(10), || {
        let leased = apis[1].metric("imgchkr_queue_in_flight");
        let waiting = apis[1].metric("imgchkr_queue_depth");
        (leased == 0.0 && waiting == 0.0).then_some(())
    });
    // The job records show the final delivery.
    for (n, (id, state)) in expected.iter().enumerate() {
        let api = &apis[n % 2];
        let event = final_event(state);
        wait_within(
            &format!("{event} record for {id}"),
            Duration::from_secs(10),
            || {
                let job: Value = api.get(&format!("/assets/image/{id}")).json();
                job["notifications"]
                    .as_array()?
                    .iter()
                    .any(|r| r["event"] == event && r["status"] == "delivered")
                    .then_some(())
            },
        );
    }
    // The history in SQL agrees: every job finished, one final delivery each.
    let db = url.rsplit('/').next().unwrap().split('?').next().unwrap();
    let finished = cluster.psql(
        db,
        "SELECT count(*) FROM imgchkr.jobs WHERE state IN ('success', 'failed') \
         AND lease_worker IS NULL",
    );
    assert_eq!(finished.trim(), expected.len().to_string());
    let finals = cluster.psql(
        db,
        "SELECT count(*) FROM imgchkr.deliveries \
         WHERE event <> 'onStart' AND status = 'delivered'",
    );
    assert_eq!(finals.trim(), expected.len().to_string());
    drop(survivor);
}
