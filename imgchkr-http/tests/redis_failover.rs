//! Workers dying mid-job in distributed mode, end to end: real `redis-server`, real `imgchkr
//! api` and `imgchkr worker` processes, a real webhook receiver. A worker is killed with
//! SIGKILL (no drain, no acknowledgement) while it holds jobs; a job no worker ever finishes
//! is parked after N deliveries and its client still hears onFailure.
//!
//! The workers run with a short reclaim idle time (`--redis-reclaim-idle 1s`, heartbeat
//! `--redis-heartbeat 200ms`) so a dead worker's jobs are taken over within seconds.

mod common;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::failover::{
    assert_every_job_final, assert_parked_after_two_deliveries, final_event, redelivered_by,
    stalling_server, submit_stalled_job,
};
use common::{Receiver, Server, WorkerProcess, jpeg_header, wait_within};
use serde_json::Value;

use common::redis_server::RedisServer;

/// Worker flags: a dead worker's jobs are reclaimed after 1 s.
const FAST_RECLAIM: [&str; 4] = ["--redis-reclaim-idle", "1s", "--redis-heartbeat", "200ms"];

#[test]
fn a_job_no_worker_finishes_is_parked_and_its_client_hears_on_failure() {
    let redis = RedisServer::start();
    let hooks = Receiver::start();
    let (stall, reads) = stalling_server();
    let dir = tempfile::tempdir().unwrap();
    let image_dir = dir.path().to_owned();
    let api = Server::start_cmd(
        "api",
        dir,
        &["--redis", &redis.url(), "--locations", "local,url"],
        "info",
    );
    let mut worker_flags = vec![
        "--locations",
        "local,url",
        "--redis-max-deliveries",
        "2",
        "--fetch-timeout",
        "120s",
        "--fetch-request-timeout",
        "120s",
    ];
    worker_flags.extend(FAST_RECLAIM);

    let id = submit_stalled_job(&api, &hooks, stall);
    let path = format!("/assets/image/{id}");

    // Two workers in turn take the job (onStart sent, the image read hanging) and die.
    for attempt in 1..=2 {
        let mut worker = WorkerProcess::start(&image_dir, &redis.url(), &worker_flags);
        let within = Duration::from_secs(15);
        wait_within(&format!("onStart #{attempt}"), within, || {
            (hooks.hooks_for(&id).len() >= attempt).then_some(())
        });
        wait_within(&format!("image read #{attempt}"), within, || {
            (reads.load(Ordering::SeqCst) >= attempt).then_some(())
        });
        assert_eq!(api.get(&path).json()["state"], "started");
        worker.kill_9();
    }

    // The third delivery is one too many: the job is parked, not run again, and the client
    // is told with onFailure.
    let worker = WorkerProcess::start(&image_dir, &redis.url(), &worker_flags);
    assert_parked_after_two_deliveries(&api, &hooks, &id, &reads);
    // The log line is written by the worker's stderr reader thread: wait for it.
    wait_within("the worker's park log line", Duration::from_secs(5), || {
        worker
            .logs()
            .iter()
            .any(|l| l.contains("parked"))
            .then_some(())
    });
    // The API's /metrics shows the deployment's queue, read from Redis: nothing waiting,
    // nothing leased.
    wait_within("the queue in /metrics", Duration::from_secs(5), || {
        let figures = [
            api.metric("imgchkr_queue_in_flight"),
            api.metric("imgchkr_queue_depth"),
        ];
        (figures == [0.0, 0.0]).then_some(())
    });
    // Nothing more arrives.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(hooks.hooks_for(&id).len(), 3);
}

#[test]
fn kill_9_a_worker_mid_job_and_every_accepted_job_still_finishes_with_its_webhooks() {
    const JOBS: usize = 30;
    let redis = RedisServer::start();
    let hooks = Receiver::start();
    // onStart is answered after 3 s: every job is held in flight by its worker meanwhile.
    hooks.set_path_delay("onStart", Duration::from_secs(3));
    let dir = tempfile::tempdir().unwrap();
    let image_dir = dir.path().to_owned();
    std::fs::write(image_dir.join("ok.jpg"), jpeg_header(10, 10)).unwrap();
    std::fs::write(image_dir.join("big.jpg"), jpeg_header(1800, 1200)).unwrap();
    let apis = [
        Server::start_cmd("api", dir, &["--redis", &redis.url()], "info"),
        Server::start_cmd(
            "api",
            tempfile::tempdir().unwrap(),
            &["--redis", &redis.url()],
            "info",
        ),
    ];
    // Each worker holds at most half the jobs, so both hold some when all have started.
    let mut worker_flags = vec!["--max-concurrent-jobs", "15"];
    worker_flags.extend(FAST_RECLAIM);
    let mut doomed = WorkerProcess::start(&image_dir, &redis.url(), &worker_flags);
    let survivor = WorkerProcess::start(&image_dir, &redis.url(), &worker_flags);

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
    wait_within("every onStart", Duration::from_secs(15), || {
        let hooks = hooks.hooks();
        let started = expected
            .keys()
            .filter(|id| hooks.iter().any(|h| h.body["id"] == id.as_str()))
            .count();
        (started == JOBS).then_some(())
    });
    doomed.kill_9();
    let killed_at = std::time::Instant::now();

    assert_every_job_final(
        &apis,
        &hooks,
        &expected,
        Duration::from_secs(40),
        Duration::from_secs(10),
    );
    // A job taken over after its verdict was recorded is settled (its final event sent), not
    // run again: the survivor says so for each job it took over.
    let redelivered = redelivered_by(&survivor);
    eprintln!(
        "{redelivered} jobs taken over from the killed worker; all {JOBS} final {:?} after the kill",
        killed_at.elapsed()
    );
    // Any API's /metrics shows the deployment's queue (read from Redis): nothing left
    // leased or waiting.
    wait_within("the queue in /metrics", Duration::from_secs(5), || {
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
    drop(survivor);
}
