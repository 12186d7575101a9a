//! RabbitMQ as the queue end to end (`--queue amqp://…` beside `--store redis://…` or
//! `postgres://…`): a throwaway RabbitMQ node, a real store, real `imgchkr api` and `imgchkr
//! worker` processes, a real webhook receiver. Two APIs and two workers: a worker is killed
//! with SIGKILL (no drain, no ack) while it holds jobs, so the broker hands its deliveries to
//! the other; then the broker is killed and started again while the survivor holds jobs, and
//! every process reconnects by itself. Every accepted job reaches its final state with its
//! final webhook and stable webhook ids. And `/readyz` and submissions follow the broker
//! going away and coming back, and a poison job is dead-lettered and parked with its onFailure.

mod common;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::failover::{
    assert_every_job_final, assert_parked_after_two_deliveries, final_event, redelivered_by,
    stalling_server, submit_stalled_job,
};
use common::pg_cluster::PgCluster;
use common::rabbit_server::{RabbitServer, fresh_prefix};
use common::redis_server::RedisServer;
use common::{Receiver, Server, WorkerProcess, jpeg_header, wait_within};
use serde_json::Value;

/// The store's lease flags (a worker's liveness in the store; the broker redelivers on its
/// own when a worker's connection closes).
const FAST_TAKEOVER: [&str; 4] = ["--lease-idle", "1s", "--heartbeat", "200ms"];

/// Prints the processes' logs if the test fails while it lives.
struct LogsOnPanic(Vec<Arc<Mutex<Vec<String>>>>);

impl Drop for LogsOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (n, logs) in self.0.iter().enumerate() {
                for line in logs.lock().unwrap().iter() {
                    eprintln!("[process {n}] {line}");
                }
            }
        }
    }
}

/// Restarts the broker cleanly once the processes have declared the queues, and waits until
/// `apis` are ready again: RabbitMQ 3.10 records a new quorum queue's Raft member on disk
/// lazily (at a clean stop, or minutes later), and a node killed before that cannot start the
/// queue again ("leader not known", forever). Afterwards the queues are as established as on
/// any broker in service, and a `kill -9` of the broker is survivable.
fn established(rabbit: &mut RabbitServer, apis: &[Server]) {
    rabbit.stop();
    rabbit.restart();
    for api in apis {
        wait_within(
            "readyz 200 after a clean restart",
            Duration::from_secs(30),
            || (api.get("/readyz").status == 200).then_some(()),
        );
    }
}

/// A database of its own on a fresh cluster; the cluster and the store URL.
fn postgres() -> (PgCluster, String) {
    let cluster = PgCluster::start();
    let db = cluster.create_database();
    let url = cluster.url(&db);
    (cluster, url)
}

#[test]
fn readyz_and_submissions_are_503_while_rabbitmq_is_down_and_recover_once_it_is_back() {
    let mut rabbit = RabbitServer::start();
    let redis = RedisServer::start();
    let queue = rabbit.url(&fresh_prefix());
    let hooks = Receiver::start();
    let server = Server::start(&["--store", &redis.url(), "--queue", &queue]);
    server.write("ok.jpg", &jpeg_header(10, 10));
    wait_within("readyz 200", Duration::from_secs(10), || {
        (server.get("/readyz").status == 200).then_some(())
    });
    let r = server.submit(&hooks.submission("ok.jpg"));
    assert_eq!(r.status, 202, "{}", r.body_text());
    let before = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(server.wait_final(&before)["state"], "success");
    hooks.wait_hooks(&before, 2);
    assert_eq!(server.metric("imgchkr_amqp_up"), 1.0);

    // Stopped (its queues are only seconds old: see `established` on why not a kill here).
    rabbit.stop();
    // A submission never hangs and never half-succeeds: 503 with Retry-After at once.
    let started = Instant::now();
    let refused = server.submit(&hooks.submission("ok.jpg"));
    assert_eq!(refused.status, 503, "{}", refused.body_text());
    assert!(refused.header("retry-after").is_some(), "{refused:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let r = wait_within("readyz 503", Duration::from_secs(15), || {
        let r = server.get("/readyz");
        (r.status == 503).then_some(r)
    });
    let reason = r.json()["reason"].as_str().unwrap_or("").to_owned();
    assert!(reason.contains("amqp"), "{reason}");
    assert_eq!(server.get("/healthz").status, 200, "alive, only not ready");
    assert_eq!(server.metric("imgchkr_amqp_up"), 0.0);

    rabbit.restart();
    wait_within("readyz 200 again", Duration::from_secs(30), || {
        (server.get("/readyz").status == 200).then_some(())
    });
    assert_eq!(server.metric("imgchkr_amqp_up"), 1.0);
    assert!(server.metric("imgchkr_amqp_reconnects_total") >= 1.0);
    let r = server.submit(&hooks.submission("ok.jpg"));
    assert_eq!(r.status, 202, "{}", r.body_text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let _logs = LogsOnPanic(vec![server.logs.clone()]);
    assert_eq!(server.wait_final(&id)["state"], "success");
    // The refused submission left no job behind: webhooks only of the two accepted (a
    // redelivery may repeat one, with the same webhook-id).
    hooks.wait_hooks(&id, 2);
    let mut notified: Vec<String> = hooks
        .hooks()
        .iter()
        .map(|h| h.body["id"].as_str().unwrap_or("").to_owned())
        .collect();
    notified.sort();
    notified.dedup();
    let mut accepted = vec![before, id];
    accepted.sort();
    assert_eq!(notified, accepted);
}

#[test]
fn two_apis_two_workers_over_rabbitmq_and_redis_survive_a_worker_kill_9_and_a_broker_restart() {
    let redis = RedisServer::start();
    two_apis_two_workers_survive(&redis.url());
}

#[test]
fn two_apis_two_workers_over_rabbitmq_and_postgres_survive_a_worker_kill_9_and_a_broker_restart() {
    let (_cluster, url) = postgres();
    two_apis_two_workers_survive(&url);
}

fn two_apis_two_workers_survive(store: &str) {
    const JOBS: usize = 30;
    let mut rabbit = RabbitServer::start();
    let queue = rabbit.url(&fresh_prefix());
    let flags = ["--store", store, "--queue", &queue];
    let hooks = Receiver::start();
    // onStart is answered after 3 s: every job is held in flight by its worker meanwhile.
    hooks.set_path_delay("onStart", Duration::from_secs(3));
    let dir = tempfile::tempdir().unwrap();
    let image_dir = dir.path().to_owned();
    std::fs::write(image_dir.join("ok.jpg"), jpeg_header(10, 10)).unwrap();
    std::fs::write(image_dir.join("big.jpg"), jpeg_header(1800, 1200)).unwrap();
    let apis = [
        Server::start_cmd("api", dir, &flags, "info"),
        Server::start_cmd("api", tempfile::tempdir().unwrap(), &flags, "info"),
    ];
    // Each worker holds at most half the jobs (its prefetch per queue is its job slots), so
    // both hold some when all have started.
    let mut worker_flags = vec!["--queue", &queue, "--max-concurrent-jobs", "15"];
    worker_flags.extend(FAST_TAKEOVER);
    let mut doomed = WorkerProcess::start_on(&image_dir, store, &worker_flags);
    let survivor = WorkerProcess::start_on(&image_dir, store, &worker_flags);
    let _logs = LogsOnPanic(vec![
        apis[0].logs.clone(),
        apis[1].logs.clone(),
        doomed.logs.clone(),
        survivor.logs.clone(),
    ]);
    // A first job declares the tenant's queues; then a clean broker restart: every process
    // reconnects by itself.
    let r = apis[0].submit(&hooks.submission("ok.jpg"));
    assert_eq!(r.status, 202, "{}", r.body_text());
    let first = r.json()["id"].as_str().unwrap().to_owned();
    established(&mut rabbit, &apis);

    // Two APIs take the submissions in turn.
    let mut expected: HashMap<String, &str> = HashMap::new();
    expected.insert(first, "success");
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
    wait_within("every onStart", Duration::from_secs(30), || {
        let hooks = hooks.hooks();
        let started = expected
            .keys()
            .filter(|id| hooks.iter().any(|h| h.body["id"] == id.as_str()))
            .count();
        (started == expected.len()).then_some(())
    });
    doomed.kill_9();
    let killed_at = Instant::now();

    // Then the broker dies (SIGKILL) while the survivor holds jobs (its own and the dead
    // worker's, redelivered); submissions are refused meanwhile.
    std::thread::sleep(Duration::from_millis(500));
    rabbit.kill();
    let refused = apis[0].submit(&hooks.submission("ok.jpg"));
    assert_eq!(refused.status, 503, "{}", refused.body_text());
    assert!(refused.header("retry-after").is_some(), "{refused:?}");
    std::thread::sleep(Duration::from_secs(2));
    rabbit.restart();

    // Accepted after the restart too, by either API (each reconnected by itself).
    for api in &apis {
        let r = wait_within(
            "a submission after the restart",
            Duration::from_secs(30),
            || {
                let r = api.submit(&hooks.submission("ok.jpg"));
                (r.status == 202).then_some(r)
            },
        );
        expected.insert(r.json()["id"].as_str().unwrap().to_owned(), "success");
    }

    assert_every_job_final(
        &apis,
        &hooks,
        &expected,
        Duration::from_secs(60),
        Duration::from_secs(15),
    );
    // The killed worker's jobs were handed to the survivor by the broker.
    let redelivered = redelivered_by(&survivor);
    eprintln!(
        "{redelivered} jobs redelivered; all {} final {:?} after the kill",
        expected.len(),
        killed_at.elapsed()
    );
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
    // Nothing is left on the broker: every delivery acknowledged, none parked (the tenant's
    // three queues and the parked one; the registry of tenants is a log, not work).
    let prefix = format!("{}.", queue.rsplit("prefix=").next().unwrap());
    let queues = wait_within("the queues empty", Duration::from_secs(15), || {
        let queues: Vec<_> = rabbit
            .queues(&prefix)
            .into_iter()
            .filter(|(name, _, _)| !name.ends_with(".tenants"))
            .collect();
        queues
            .iter()
            .all(|(_, ready, unacked)| *ready == 0 && *unacked == 0)
            .then_some(queues)
    });
    assert_eq!(queues.len(), 4, "{queues:?}");
    drop(survivor);
}

/// A poison job: every worker that takes it hangs on its image and is killed. The broker
/// counts the deliveries (`x-delivery-limit`), dead-letters it to the parked queue past the
/// limit, and a worker parks it from there with its onFailure; it is never run again.
#[test]
fn a_job_no_worker_finishes_is_dead_lettered_parked_and_its_client_hears_on_failure() {
    let rabbit = RabbitServer::start();
    let redis = RedisServer::start();
    let queue = rabbit.url(&fresh_prefix());
    let hooks = Receiver::start();
    let (stall, reads) = stalling_server();
    let dir = tempfile::tempdir().unwrap();
    let image_dir = dir.path().to_owned();
    let store = redis.url();
    let api = Server::start_cmd(
        "api",
        dir,
        &[
            "--store",
            &store,
            "--queue",
            &queue,
            "--locations",
            "local,url",
            // Every process declares the queues, with the same delivery limit.
            "--max-deliveries",
            "2",
        ],
        "info",
    );
    let mut worker_flags = vec![
        "--queue",
        &queue,
        "--locations",
        "local,url",
        "--max-deliveries",
        "2",
        "--fetch-timeout",
        "120s",
        "--fetch-request-timeout",
        "120s",
    ];
    worker_flags.extend(FAST_TAKEOVER);

    let id = submit_stalled_job(&api, &hooks, stall);
    let path = format!("/assets/image/{id}");

    // Two workers in turn get the job (onStart sent, the image read hanging) and die.
    for attempt in 1..=2 {
        let mut worker = WorkerProcess::start_on(&image_dir, &store, &worker_flags);
        let _logs = LogsOnPanic(vec![api.logs.clone(), worker.logs.clone()]);
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

    // Two deliveries were the limit: the broker dead-letters the job to the parked queue,
    // and the next worker parks it and tells the client with onFailure.
    let worker = WorkerProcess::start_on(&image_dir, &store, &worker_flags);
    let _logs = LogsOnPanic(vec![api.logs.clone(), worker.logs.clone()]);
    assert_parked_after_two_deliveries(&api, &hooks, &id, &reads);
    // The broker holds nothing more: the parked message acknowledged, the tenant's queues
    // empty.
    let prefix = format!("{}.", queue.rsplit("prefix=").next().unwrap());
    wait_within("the queues empty", Duration::from_secs(15), || {
        rabbit
            .queues(&prefix)
            .iter()
            .filter(|(name, _, _)| !name.ends_with(".tenants"))
            .all(|(_, ready, unacked)| *ready == 0 && *unacked == 0)
            .then_some(())
    });
    // Nothing more arrives.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(hooks.hooks_for(&id).len(), 3);
}
