//! Workers dying mid-job in distributed mode, end to end: real `redis-server`, real `imgchkr
//! api` and `imgchkr worker` processes, a real webhook receiver. A worker is killed with
//! SIGKILL (no drain, no acknowledgement) while it holds jobs; a job no worker ever finishes
//! is parked after N deliveries and its client still hears onFailure.
//!
//! The workers run with a short reclaim idle time (`--redis-reclaim-idle 1s`, heartbeat
//! `--redis-heartbeat 200ms`) so a dead worker's jobs are taken over within seconds.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Hook, Receiver, Server, WorkerProcess, wait_within};
use serde_json::json;

#[path = "support/redis_server.rs"]
mod redis_server;
use redis_server::RedisServer;

/// Worker flags: a dead worker's jobs are reclaimed after 1 s.
const FAST_RECLAIM: [&str; 4] = ["--redis-reclaim-idle", "1s", "--redis-heartbeat", "200ms"];

/// An HTTP server that reads requests and never answers: a remote image read that hangs.
/// Returns its address and how many requests it has received.
fn stalling_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&requests);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            let counter = Arc::clone(&counter);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 {
                    if line == "\r\n" {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                    line.clear();
                }
            });
        }
    });
    (addr, requests)
}

fn webhook_id(hook: &Hook) -> &str {
    hook.headers
        .get("webhook-id")
        .map(String::as_str)
        .unwrap_or("")
}

fn simple(id: &str) -> String {
    id.replace('-', "")
}

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

    let mut body = hooks.submission("unused");
    body["assetPath"] = json!({"location": "url", "path": format!("http://{stall}/hang.jpg")});
    let r = api.submit(&body);
    assert_eq!(r.status, 202, "{}", r.body_text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
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
    let got = wait_within("onFailure", Duration::from_secs(20), || {
        let got = hooks.hooks_for(&id);
        got.iter().any(|h| h.path == "onFailure").then_some(got)
    });
    let paths: Vec<&str> = got.iter().map(|h| h.path.as_str()).collect();
    assert_eq!(paths, ["onStart", "onStart", "onFailure"]);
    let errors = json!({"image": ["Job abandoned after 2 delivery attempts"]});
    assert_eq!(
        got[2].body,
        json!({"id": id, "state": "failed", "errors": errors})
    );
    let start_id = format!("msg_{}_onStart", simple(&id));
    assert_eq!(webhook_id(&got[0]), start_id, "{:?}", got[0].headers);
    assert_eq!(webhook_id(&got[1]), start_id, "stable across redelivery");
    assert_eq!(
        webhook_id(&got[2]),
        format!("msg_{}_onFailure", simple(&id))
    );

    let job = wait_within("the onFailure record", Duration::from_secs(5), || {
        let job = api.get(&path).json();
        let delivered = job["notifications"]
            .as_array()?
            .iter()
            .any(|n| n["event"] == "onFailure" && n["status"] == "delivered");
        delivered.then_some(job)
    });
    assert_eq!(job["state"], "failed");
    assert_eq!(job["errors"], errors);
    assert_eq!(
        reads.load(Ordering::SeqCst),
        2,
        "a parked job is not run again"
    );
    assert!(
        worker.logs().iter().any(|l| l.contains("parked")),
        "{:?}",
        worker.logs()
    );
    // Nothing more arrives.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(hooks.hooks_for(&id).len(), 3);
}
