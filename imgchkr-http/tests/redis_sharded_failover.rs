//! A sharded deployment failing over, end to end: three real `redis-server` shards (each
//! keeping its data in an append-only file, fsync on every write), two `imgchkr api` and two
//! `imgchkr worker` processes given the three URLs as one `--store`, several tenants (a
//! tenants file) whose jobs land on every shard, a real webhook receiver. Under a steady load
//! a worker is killed with SIGKILL while it holds jobs, and one shard is killed (SIGKILL) and
//! started again: every accepted job still reaches its verdict with its final webhook, and
//! each is read by id through either API.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::failover::{assert_every_job_final_as, redelivered_by};
use common::redis_server::{RedisServer, free_port};
use common::{Receiver, Server, WorkerProcess, jpeg_header, wait_within};
use imgchkr_core::engine::sharded::Sharded;
use imgchkr_core::engine::{Engine, Lookup};
use imgchkr_core::{JobId, JobKey};
use sha2::{Digest, Sha256};

/// Worker flags: a dead worker's jobs are reclaimed after 1 s.
const FAST_RECLAIM: [&str; 4] = ["--lease-idle", "1s", "--heartbeat", "200ms"];
const SHARDS: usize = 3;

/// Two tenants on each of the three shards (by core's routing), with their tokens.
fn tenants() -> Vec<(String, String, usize)> {
    let mut chosen = Vec::new();
    for shard in 0..SHARDS {
        let on_shard = (0..1_000)
            .map(|i| format!("tenant-{i}"))
            .filter(|t| Sharded::shard_of(t, SHARDS) == shard)
            .take(2);
        for name in on_shard {
            let token = format!("{name}-token");
            chosen.push((name, token, shard));
        }
    }
    chosen
}

fn tenants_file(dir: &std::path::Path, tenants: &[(String, String, usize)]) -> String {
    let mut text = String::new();
    for (name, token, _) in tenants {
        text.push_str(&format!(
            "[tenants.{name}]\ntoken_sha256 = [\"{}\"]\n",
            hex::encode(Sha256::digest(token.as_bytes()))
        ));
    }
    let path = dir.join("tenants.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[derive(Default)]
struct Seen {
    /// (job id, tenant index, expected final state)
    accepted: Vec<(String, usize, &'static str)>,
    /// (tenant index, status, body)
    refused: Vec<(usize, u16, String)>,
}

#[test]
fn three_shards_survive_a_killed_worker_and_a_killed_shard_without_losing_a_job() {
    let data: Vec<tempfile::TempDir> = (0..SHARDS).map(|_| tempfile::tempdir().unwrap()).collect();
    let ports: Vec<u16> = (0..SHARDS).map(|_| free_port()).collect();
    let mut shards: Vec<RedisServer> = (0..SHARDS)
        .map(|i| RedisServer::start_persistent(ports[i], data[i].path()))
        .collect();
    let urls: Vec<String> = shards.iter().map(RedisServer::url).collect();
    let store = urls.join(",");
    let tenants = tenants();
    let config = tempfile::tempdir().unwrap();
    let file = tenants_file(config.path(), &tenants);

    let hooks = Arc::new(Receiver::start());
    // onStart is answered after 1 s: workers hold jobs in flight when one is killed.
    hooks.set_path_delay("onStart", Duration::from_secs(1));
    let dir = tempfile::tempdir().unwrap();
    let image_dir = dir.path().to_owned();
    std::fs::write(image_dir.join("ok.jpg"), jpeg_header(10, 10)).unwrap();
    std::fs::write(image_dir.join("big.jpg"), jpeg_header(1800, 1200)).unwrap();
    let api_flags = ["--store", store.as_str(), "--tenants", file.as_str()];
    let apis = Arc::new([
        Server::start_cmd("api", dir, &api_flags, "info"),
        Server::start_cmd("api", tempfile::tempdir().unwrap(), &api_flags, "info"),
    ]);
    let mut worker_flags = vec!["--max-concurrent-jobs", "16", "--tenants", file.as_str()];
    worker_flags.extend(FAST_RECLAIM);
    let mut doomed = WorkerProcess::start_on(&image_dir, &store, &worker_flags);
    let survivor = WorkerProcess::start_on(&image_dir, &store, &worker_flags);

    // One client submitting all along (about 100 jobs a second), tenants and APIs in turn.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let submitter = {
        let (apis, hooks, seen, stop) = (apis.clone(), hooks.clone(), seen.clone(), stop.clone());
        let tenants = tenants.clone();
        std::thread::spawn(move || {
            let mut n = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let t = n % tenants.len();
                let (image, state) = if (n / tenants.len()).is_multiple_of(3) {
                    ("big.jpg", "failed")
                } else {
                    ("ok.jpg", "success")
                };
                let auth = format!("Bearer {}", tenants[t].1);
                let r =
                    apis[n % 2].post_json(&[("authorization", &auth)], &hooks.submission(image));
                n += 1;
                let mut seen = seen.lock().unwrap();
                if r.status == 202 {
                    let id = r.json()["id"].as_str().unwrap().to_owned();
                    seen.accepted.push((id, t, state));
                } else {
                    seen.refused.push((t, r.status, r.body_text()));
                }
                drop(seen);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let accepted = |seen: &Mutex<Seen>| seen.lock().unwrap().accepted.len();
    let within = Duration::from_secs(30);

    // Load on every shard, then a worker dies holding jobs.
    wait_within("jobs accepted before the worker dies", within, || {
        (accepted(&seen) >= 60).then_some(())
    });
    wait_within("the doomed worker holding jobs", within, || {
        let hooks = hooks.hooks();
        (hooks.iter().filter(|h| h.path == "onStart").count() >= 20).then_some(())
    });
    doomed.kill_9();

    // A shard dies (SIGKILL): its tenants are refused with 503 meanwhile, the others' jobs
    // are still accepted, and /readyz names the shard.
    wait_within("jobs accepted after the worker died", within, || {
        (accepted(&seen) >= 120).then_some(())
    });
    let down = 1;
    shards[down].kill();
    let before = accepted(&seen);
    let refused_before = seen.lock().unwrap().refused.len();
    wait_within("503s for the down shard's tenants", within, || {
        (seen.lock().unwrap().refused.len() >= refused_before + 10).then_some(())
    });
    wait_within("other shards' jobs accepted meanwhile", within, || {
        (accepted(&seen) >= before + 30).then_some(())
    });
    let during: Vec<usize> = seen.lock().unwrap().accepted[before..]
        .iter()
        .map(|(_, t, _)| tenants[*t].2)
        .collect();
    assert!(
        during.iter().all(|shard| *shard != down) && during.contains(&0) && during.contains(&2),
        "accepted during the outage, by shard: {during:?}"
    );
    let not_ready = wait_within("/readyz naming the down shard", within, || {
        let r = apis[0].get("/readyz");
        (r.status == 503).then(|| r.body_text())
    });
    let down_url = urls[down].trim_end_matches('/');
    assert!(
        not_ready.contains(&format!("shard {down}")) && not_ready.contains(down_url),
        "{not_ready}"
    );
    // One up gauge per server: the down shard's reads 0, the others' 1 (a series shared by
    // every shard would read whichever connection spoke last).
    let up =
        |port: u16| apis[0].metric(&format!("imgchkr_redis_up{{server=\"127.0.0.1:{port}\"}}"));
    wait_within("imgchkr_redis_up 0 for the down shard only", within, || {
        let gauges: Vec<f64> = ports.iter().map(|port| up(*port)).collect();
        (gauges
            .iter()
            .enumerate()
            .all(|(i, v)| *v == if i == down { 0.0 } else { 1.0 }))
        .then_some(())
    });
    // …and it comes back with its data.
    shards[down] = RedisServer::start_persistent(ports[down], data[down].path());
    wait_within("/readyz ready again", within, || {
        (apis[1].get("/readyz").status == 200).then_some(())
    });
    let after = accepted(&seen);
    wait_within("the shard's tenants accepted again", within, || {
        let seen = seen.lock().unwrap();
        seen.accepted[after..]
            .iter()
            .any(|(_, t, _)| tenants[*t].2 == down)
            .then_some(())
    });
    stop.store(true, Ordering::SeqCst);
    submitter.join().unwrap();

    let seen = seen.lock().unwrap();
    for (t, status, body) in &seen.refused {
        assert!(
            *status == 503 && tenants[*t].2 == down && body.contains("errors"),
            "{} (shard {}): {status} {body}",
            tenants[*t].0,
            tenants[*t].2
        );
    }
    eprintln!(
        "{} accepted, {} refused with 503 while shard {down} was down",
        seen.accepted.len(),
        seen.refused.len()
    );

    // Every accepted job reaches its verdict with its final webhook, read by id with its
    // tenant's token through either API.
    let expected: HashMap<String, &str> = seen
        .accepted
        .iter()
        .map(|(id, _, state)| (id.clone(), *state))
        .collect();
    let tokens: HashMap<String, String> = seen
        .accepted
        .iter()
        .map(|(id, t, _)| (id.clone(), tenants[*t].1.clone()))
        .collect();
    assert_every_job_final_as(
        &*apis,
        &hooks,
        &expected,
        &tokens,
        Duration::from_secs(60),
        Duration::from_secs(10),
    );
    let redelivered = redelivered_by(&survivor);
    eprintln!("{redelivered} jobs taken over from the killed worker");

    // Each job is on its tenant's shard, and only there; every shard holds some.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let engines: Vec<imgchkr_redis::RedisEngine> = urls
        .iter()
        .map(|url| {
            runtime
                .block_on(imgchkr_redis::RedisEngine::connect(
                    imgchkr_redis::RedisConfig::new(url.as_str()),
                ))
                .unwrap()
        })
        .collect();
    let mut held = [0usize; SHARDS];
    for (id, t, _) in &seen.accepted {
        let key = JobKey::new(tenants[*t].0.clone(), JobId(id.parse().unwrap()));
        for (i, engine) in engines.iter().enumerate() {
            let found = matches!(
                runtime.block_on(engine.get(&key)).unwrap(),
                Lookup::Found(_)
            );
            assert_eq!(found, i == tenants[*t].2, "job {key} on shard {i}");
            held[i] += usize::from(found);
        }
    }
    assert!(held.iter().all(|n| *n > 0), "jobs per shard: {held:?}");
    eprintln!("jobs per shard: {held:?}");
    drop(survivor);
}

#[test]
fn a_list_of_shards_mixing_kinds_exits_2_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    for (store, reason) in [
        (
            "redis://:hunter2@127.0.0.1:1/,sqlite:x.db",
            "a list of shards takes only shared stores",
        ),
        (
            "redis://:hunter2@127.0.0.1:1/,postgres://u:hunter2@127.0.0.1:2/db",
            "must be of one kind",
        ),
        (
            "redis://:hunter2@127.0.0.1:1/,memory:",
            "a list of shards takes only shared stores",
        ),
    ] {
        for role in ["serve", "api"] {
            let out = Command::new(env!("CARGO_BIN_EXE_imgchkr"))
                .args([role, "--listen", "127.0.0.1:0", "--store", store])
                .current_dir(dir.path())
                .env_remove("IMGCHKR_STORE")
                .env_remove("IMGCHKR_REDIS")
                .env_remove("IMGCHKR_QUEUE")
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{role} --store {store}: {stderr}"
            );
            assert!(stderr.contains(reason), "{role} --store {store}: {stderr}");
            assert!(!stderr.contains("hunter2"), "a password in {stderr}");
        }
    }
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "a refused start created files"
    );
    // Beside a RabbitMQ queue: each shard carries its own queue.
    let out = Command::new(env!("CARGO_BIN_EXE_imgchkr"))
        .args([
            "worker",
            "--store",
            "redis://127.0.0.1:1/,redis://127.0.0.1:2/",
            "--queue",
            "amqp://guest:hunter2@127.0.0.1:3/",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("leave --queue unset"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "a password in {stderr}");
}
