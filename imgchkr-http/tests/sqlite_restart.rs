//! The embedded default is durable: `imgchkr serve` on `sqlite:` killed with SIGKILL in the
//! middle of a load and started again finishes every accepted job (state and final webhook,
//! with the same webhook-ids), re-runs the ones that were running, and never runs one that
//! was cancelled.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Receiver, Server, jpeg_header, request, wait_within};
use serde_json::Value;

/// `imgchkr serve` on the database `db` and the image directory `images`.
fn serve(images: &Path, db: &Path) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_imgchkr"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--image-dir"])
        .arg(images)
        .arg("--store")
        .arg(format!("sqlite:{}", db.display()))
        .args(["--max-concurrent-jobs", "8"])
        .env_remove("IMGCHKR_STORE")
        .env("RUST_LOG", "info");
    Server::spawn(cmd, tempfile::tempdir().unwrap(), None)
}

#[test]
fn kill_9_mid_load_then_restart_finishes_every_accepted_job() {
    let root = tempfile::tempdir().unwrap();
    let images = root.path().join("images");
    std::fs::create_dir(&images).unwrap();
    std::fs::write(images.join("ok.jpg"), jpeg_header(10, 10)).unwrap();
    std::fs::write(images.join("big.jpg"), jpeg_header(1800, 1200)).unwrap();
    let db = root.path().join("imgchkr.db");
    let hooks = Receiver::start();
    // Slow onStarts hold eight jobs in flight; the rest wait in the queue.
    hooks.set_path_delay("onStart", Duration::from_millis(1500));

    let mut first = serve(&images, &db);
    let mut expected: HashMap<String, &str> = HashMap::new();
    for i in 0..30 {
        let (image, state) = if i % 3 == 0 {
            ("big.jpg", "failed")
        } else {
            ("ok.jpg", "success")
        };
        let r = first.submit(&hooks.submission(image));
        assert_eq!(r.status, 202, "{}", r.body_text());
        expected.insert(r.json()["id"].as_str().unwrap().to_owned(), state);
    }
    // One still queued is cancelled: it must never run, before or after the crash.
    let cancelled = expected
        .keys()
        .find(|id| first.get(&format!("/assets/image/{id}")).json()["state"] == "queued")
        .cloned()
        .expect("a job still queued");
    let r = request(
        first.addr,
        "DELETE",
        &format!("/assets/image/{cancelled}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    expected.remove(&cancelled);
    // Some are running (their onStart is being held) when the process dies.
    wait_within("jobs in flight", Duration::from_secs(10), || {
        (hooks.hooks().len() >= 4).then_some(())
    });
    first.child.kill().unwrap();
    first.child.wait().unwrap();

    let second = serve(&images, &db);
    for (id, state) in &expected {
        let job: Value = wait_within(&format!("job {id} final"), Duration::from_secs(60), || {
            let job = second.get(&format!("/assets/image/{id}")).json();
            matches!(job["state"].as_str(), Some("success" | "failed")).then_some(job)
        });
        assert_eq!(job["state"], *state, "{job}");
        let event = if *state == "success" {
            "onSuccess"
        } else {
            "onFailure"
        };
        let got = hooks.wait_hooks(id, 2);
        assert!(got.iter().any(|h| h.path == "onStart"), "{id}: {got:?}");
        let finals: Vec<_> = wait_within(
            &format!("{event} for {id}"),
            Duration::from_secs(30),
            || {
                let got = hooks.hooks_for(id);
                let finals: Vec<_> = got.into_iter().filter(|h| h.path == event).collect();
                (!finals.is_empty()).then_some(finals)
            },
        );
        // Every delivery of one event carries the same webhook-id, across the crash.
        let simple = id.replace('-', "");
        for hook in hooks.hooks_for(id) {
            assert_eq!(
                hook.headers.get("webhook-id").map(String::as_str),
                Some(format!("msg_{simple}_{}", hook.path).as_str())
            );
        }
        assert!(!finals.is_empty());
    }
    let job = second.get(&format!("/assets/image/{cancelled}")).json();
    assert_eq!(job["state"], "cancelled");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        hooks.hooks_for(&cancelled).is_empty(),
        "a cancelled job ran"
    );
    let redelivered = second
        .logs
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("\"redelivered\""))
        .count();
    assert!(
        redelivered > 0,
        "the jobs running at the kill were run again"
    );
}
