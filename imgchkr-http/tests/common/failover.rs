//! What every failover test (Redis, Postgres, RabbitMQ) checks once its deployment settles:
//! each accepted job final and readable from either API, its final webhook after an onStart
//! with one `webhook-id` per event on every redelivery, and the survivor's word that it took
//! jobs over. Also an HTTP server that never answers, to hold a job mid-read.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;

use super::{Hook, Receiver, Server, WorkerProcess, wait_within};

/// An HTTP server that reads requests and never answers: a remote image read that hangs.
/// Returns its address and how many requests it has received.
pub fn stalling_server() -> (SocketAddr, Arc<AtomicUsize>) {
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

/// Submits to `api` a job whose image is read from `stall` (a [`stalling_server`]), so
/// every worker that takes it hangs in the read after onStart; returns the job's id.
pub fn submit_stalled_job(api: &Server, hooks: &Receiver, stall: SocketAddr) -> String {
    let mut body = hooks.submission("unused");
    body["assetPath"] = json!({"location": "url", "path": format!("http://{stall}/hang.jpg")});
    let r = api.submit(&body);
    assert_eq!(r.status, 202, "{}", r.body_text());
    r.json()["id"].as_str().unwrap().to_owned()
}

/// The `webhook-id` header of `hook` (empty without one).
pub fn webhook_id(hook: &Hook) -> &str {
    hook.headers
        .get("webhook-id")
        .map(String::as_str)
        .unwrap_or("")
}

/// A job id as `webhook-id`s spell it (no hyphens).
pub fn simple(id: &str) -> String {
    id.replace('-', "")
}

/// The final event of a job's state.
pub fn final_event(state: &str) -> &'static str {
    match state {
        "success" => "onSuccess",
        _ => "onFailure",
    }
}

/// Every job of `expected` (id → final state) reaches that state within `final_within`,
/// read through the two `apis` in turn; its final webhook arrives within `hook_within`, after
/// an onStart, one kind of final event only, every delivery with the job's and event's
/// `webhook-id`; a failure carries the dimension errors.
pub fn assert_every_job_final(
    apis: &[Server],
    hooks: &Receiver,
    expected: &HashMap<String, &str>,
    final_within: Duration,
    hook_within: Duration,
) {
    assert_every_job_final_as(
        apis,
        hooks,
        expected,
        &HashMap::new(),
        final_within,
        hook_within,
    );
}

/// As [`assert_every_job_final`], each job read with its tenant's token from `tokens` (job
/// id → Bearer token; none: read without one).
pub fn assert_every_job_final_as(
    apis: &[Server],
    hooks: &Receiver,
    expected: &HashMap<String, &str>,
    tokens: &HashMap<String, String>,
    final_within: Duration,
    hook_within: Duration,
) {
    for (n, (id, state)) in expected.iter().enumerate() {
        let api = &apis[(n + 1) % apis.len()];
        let job = wait_within(&format!("job {id} final"), final_within, || {
            let path = format!("/assets/image/{id}");
            let job = match tokens.get(id) {
                Some(token) => api.get_as(&path, token),
                None => api.get(&path),
            }
            .json();
            matches!(job["state"].as_str(), Some("success" | "failed")).then_some(job)
        });
        assert_eq!(job["state"], *state, "{job}");
    }
    // Duplicates are allowed (at least once): the same webhook-id on every redelivery.
    for (id, state) in expected {
        let event = final_event(state);
        let got = wait_within(&format!("{event} for {id}"), hook_within, || {
            let got = hooks.hooks_for(id);
            got.iter().any(|h| h.path == event).then_some(got)
        });
        let first_start = got.iter().position(|h| h.path == "onStart").unwrap();
        let first_final = got.iter().position(|h| h.path == event).unwrap();
        assert!(first_start < first_final, "{id}: {got:?}");
        assert!(
            got.iter().all(|h| h.path == "onStart" || h.path == event),
            "{id}: one kind of final event only: {got:?}"
        );
        for hook in &got {
            assert_eq!(
                webhook_id(hook),
                format!("msg_{}_{}", simple(id), hook.path)
            );
        }
        if *state == "failed" {
            let failure = got.iter().find(|h| h.path == event).unwrap();
            assert_eq!(
                failure.body["errors"],
                json!({"image": ["Image width exceeds maximum (1800/1000)",
                                 "Image height exceeds maximum (1200/1000)"]})
            );
        }
    }
}

/// How many jobs `survivor` logged as taken over from a dead worker; asserts some were (the
/// killed worker held jobs).
pub fn redelivered_by(survivor: &WorkerProcess) -> usize {
    let redelivered = survivor
        .logs()
        .iter()
        .filter(|l| l.contains("\"redelivered\""))
        .count();
    assert!(
        redelivered > 0,
        "the killed worker held jobs: some must have been run again"
    );
    redelivered
}

/// A job parked after two deliveries, each of which started it and read its image: its
/// client got onStart twice (one `webhook-id`) then onFailure with the parked text, the job
/// reads `failed` with that onFailure delivered, and the image was not read a third time.
pub fn assert_parked_after_two_deliveries(
    api: &Server,
    hooks: &Receiver,
    id: &str,
    reads: &AtomicUsize,
) {
    let path = format!("/assets/image/{id}");
    let got = wait_within("onFailure", Duration::from_secs(20), || {
        let got = hooks.hooks_for(id);
        got.iter().any(|h| h.path == "onFailure").then_some(got)
    });
    let paths: Vec<&str> = got.iter().map(|h| h.path.as_str()).collect();
    assert_eq!(paths, ["onStart", "onStart", "onFailure"]);
    let errors = json!({"image": ["Job abandoned after 2 delivery attempts"]});
    assert_eq!(
        got[2].body,
        json!({"id": id, "state": "failed", "errors": errors})
    );
    let start_id = format!("msg_{}_onStart", simple(id));
    assert_eq!(webhook_id(&got[0]), start_id, "{:?}", got[0].headers);
    assert_eq!(webhook_id(&got[1]), start_id, "stable across redelivery");
    assert_eq!(webhook_id(&got[2]), format!("msg_{}_onFailure", simple(id)));
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
}
