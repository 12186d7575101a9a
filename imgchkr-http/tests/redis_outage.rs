//! Redis going away and coming back, end to end: `/readyz` follows it, and under load (an
//! `api` and a `worker` process, submissions never pausing) every job accepted before,
//! during and after the outage still reaches its final state with its webhooks. The
//! `redis-server` here keeps an append-only file (fsync always), as a deployment that must
//! not lose accepted jobs would.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::redis_server::{RedisServer, free_port};
use common::{Receiver, Server, WorkerProcess, jpeg_header, wait_within};

#[test]
fn readyz_is_503_while_redis_is_unreachable_and_200_once_it_is_back() {
    let port = free_port();
    let data = tempfile::tempdir().unwrap();
    let mut redis = RedisServer::start_persistent(port, data.path());
    let hooks = Receiver::start();
    let server = Server::start(&["--redis", &redis.url()]);
    server.write("ok.jpg", &jpeg_header(10, 10));
    assert_eq!(server.get("/readyz").status, 200);
    wait_within("redis_up 1", Duration::from_secs(5), || {
        (server.metric("imgchkr_redis_up") == 1.0).then_some(())
    });

    redis.kill();
    let r = wait_within("readyz 503", Duration::from_secs(5), || {
        let r = server.get("/readyz");
        (r.status == 503).then_some(r)
    });
    let reason = r.json()["reason"].as_str().unwrap_or("").to_owned();
    assert!(reason.starts_with("store unavailable: redis"), "{reason}");
    assert_eq!(server.get("/healthz").status, 200, "alive, only not ready");
    assert_eq!(server.metric("imgchkr_redis_up"), 0.0);

    let _redis = RedisServer::start_persistent(port, data.path());
    wait_within("readyz 200 again", Duration::from_secs(10), || {
        (server.get("/readyz").status == 200).then_some(())
    });
    // The gauge follows the engine's own connection, which may reconnect a moment after
    // the readiness check's: the same wait as at the start.
    wait_within("redis_up 1 again", Duration::from_secs(5), || {
        (server.metric("imgchkr_redis_up") == 1.0).then_some(())
    });
    let r = server.submit(&hooks.submission("ok.jpg"));
    assert_eq!(r.status, 202, "{}", r.body_text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(server.wait_final(&id)["state"], "success");
}

/// What the submitting thread saw: every response's status, and the ids accepted.
#[derive(Default)]
struct Seen {
    statuses: Vec<u16>,
    accepted: Vec<(String, &'static str)>,
    refusals: Vec<String>,
}

#[test]
fn redis_killed_and_restarted_under_load_loses_no_accepted_job() {
    let port = free_port();
    let data = tempfile::tempdir().unwrap();
    let mut redis = RedisServer::start_persistent(port, data.path());
    let url = redis.url();
    let hooks = Arc::new(Receiver::start());
    let dir = tempfile::tempdir().unwrap();
    let image_dir = dir.path().to_owned();
    std::fs::write(image_dir.join("ok.jpg"), jpeg_header(10, 10)).unwrap();
    std::fs::write(image_dir.join("big.jpg"), jpeg_header(1800, 1200)).unwrap();
    let api = Arc::new(Server::start_cmd("api", dir, &["--redis", &url], "info"));
    let worker_flags = ["--redis-reclaim-idle", "1s", "--redis-heartbeat", "200ms"];
    let worker = WorkerProcess::start(&image_dir, &url, &worker_flags);

    // One client submitting all along, about 100 jobs a second.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let submitter = {
        let (api, hooks, seen, stop) = (api.clone(), hooks.clone(), seen.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let (image, state) = if n % 2 == 0 {
                    ("ok.jpg", "success")
                } else {
                    ("big.jpg", "failed")
                };
                n += 1;
                let r = api.submit(&hooks.submission(image));
                let mut seen = seen.lock().unwrap();
                seen.statuses.push(r.status);
                match r.status {
                    202 => {
                        let id = r.json()["id"].as_str().unwrap().to_owned();
                        seen.accepted.push((id, state));
                    }
                    _ => seen.refusals.push(format!(
                        "{} retry-after={:?} {}",
                        r.status,
                        r.header("retry-after"),
                        r.body_text()
                    )),
                }
                drop(seen);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let count = |f: &dyn Fn(&Seen) -> usize| f(&seen.lock().unwrap());
    let within = Duration::from_secs(20);
    wait_within("jobs accepted before the outage", within, || {
        (count(&|s| s.accepted.len()) >= 30).then_some(())
    });

    // Redis dies mid-load (SIGKILL): submissions are refused with 503 meanwhile…
    redis.kill();
    let accepted_before = count(&|s| s.accepted.len());
    let refused_before = count(&|s| s.refusals.len());
    wait_within("503s during the outage", within, || {
        (count(&|s| s.refusals.len()) >= refused_before + 20).then_some(())
    });
    // …and it comes back with its data.
    let _redis = RedisServer::start_persistent(port, data.path());
    wait_within("jobs accepted after the outage", within, || {
        (count(&|s| s.accepted.len()) >= accepted_before + 30).then_some(())
    });
    stop.store(true, Ordering::SeqCst);
    submitter.join().unwrap();

    let seen = seen.lock().unwrap();
    for refusal in &seen.refusals {
        assert!(
            refusal.starts_with("503 retry-after=Some(\"1\")") && refusal.contains("errors"),
            "{refusal}"
        );
    }
    assert!(
        seen.statuses.iter().all(|s| *s == 202 || *s == 503),
        "{:?}",
        seen.refusals
    );
    eprintln!(
        "{} submissions: {} accepted, {} refused with 503",
        seen.statuses.len(),
        seen.accepted.len(),
        seen.refusals.len()
    );

    // Every accepted job reaches its verdict and its final webhook arrives.
    let expected: HashMap<&str, &str> = seen
        .accepted
        .iter()
        .map(|(id, state)| (id.as_str(), *state))
        .collect();
    for (id, state) in &expected {
        let job = wait_within(&format!("job {id} final"), Duration::from_secs(60), || {
            let job = api.get(&format!("/assets/image/{id}")).json();
            matches!(job["state"].as_str(), Some("success" | "failed")).then_some(job)
        });
        assert_eq!(job["state"], *state, "{job}");
    }
    for (id, state) in &expected {
        let event = if *state == "success" {
            "onSuccess"
        } else {
            "onFailure"
        };
        wait_within(
            &format!("{event} for {id}"),
            Duration::from_secs(10),
            || {
                hooks
                    .hooks_for(id)
                    .iter()
                    .any(|h| h.path == event)
                    .then_some(())
            },
        );
    }
    drop(worker);
}
