//! `kill -9` in the middle of a submission load: every submission the killed process heard
//! committed is in the file when it is opened again, its leases are taken over at once, and
//! every accepted job can be run to its verdict.
//!
//! The test binary is its own child: run with `--submit-loop PATH SYNC` it opens the database
//! and submits jobs from four threads (and leases some from a fifth) until it is killed,
//! printing a line for each write once it is answered. (A harness-less test: the child needs a
//! `main` of its own.)

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{ROOMY, job, request};
use futures_executor::block_on;
use imgchkr_core::engine::{Lookup, Submitted};
use imgchkr_core::{Engine, JobId, JobKey, JobState, JobUpdate};
use imgchkr_sqlite::{OpenError, SqliteConfig, SqliteEngine, Synchronous};
use time::OffsetDateTime;

const NAME: &str = "committed_submissions_survive_kill_9";
/// The child gives up after this long (the parent kills it long before).
const CHILD_LIFETIME: Duration = Duration::from_secs(60);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--submit-loop") {
        let sync = match args.get(2).map(String::as_str) {
            Some("full") => Synchronous::Full,
            _ => Synchronous::Normal,
        };
        submit_loop(Path::new(&args[1]), sync);
        return;
    }
    // `cargo test -- --list`, and filters naming other tests.
    if args.iter().any(|a| a == "--list") {
        println!("{NAME}: test");
        return;
    }
    if args
        .iter()
        .any(|a| !a.starts_with('-') && !NAME.contains(a.as_str()))
    {
        return;
    }
    print!("test {NAME} ... ");
    committed_submissions_survive_kill_9();
    println!("ok");
}

/// The child: submits until killed, printing `S <id>` for each submission answered and
/// `L <id> <deliveries>` for each job it leased (and never finishes).
fn submit_loop(path: &Path, synchronous: Synchronous) {
    let config = SqliteConfig::new(path).synchronous(synchronous);
    let engine = Arc::new(SqliteEngine::open(&config).expect("the child opens the database"));
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let deadline = Instant::now() + CHILD_LIFETIME;
    let say = |out: &Mutex<std::io::Stdout>, line: String| {
        let mut out = out.lock().unwrap();
        writeln!(out, "{line}").unwrap();
        out.flush().unwrap();
    };
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let (engine, out) = (Arc::clone(&engine), Arc::clone(&out));
            scope.spawn(move || {
                while Instant::now() < deadline {
                    let next = job("crash");
                    match block_on(engine.submit(&next, ROOMY)) {
                        Ok(Submitted::New) => say(&out, format!("S {}", next.id)),
                        other => panic!("submit in the child: {other:?}"),
                    }
                }
            });
        }
        let (engine, out) = (Arc::clone(&engine), Arc::clone(&out));
        scope.spawn(move || {
            while Instant::now() < deadline {
                let now = OffsetDateTime::now_utc();
                let held = block_on(engine.lease(&request("child", 4, now))).unwrap();
                for taken in held {
                    say(
                        &out,
                        format!("L {} {}", taken.lease.key.id, taken.lease.deliveries),
                    );
                }
                std::thread::sleep(Duration::from_millis(3));
            }
        });
    });
}

/// What the children said before they died.
#[derive(Default)]
struct Heard {
    submitted: HashSet<JobId>,
    /// The most deliveries a child was told of, by job.
    leased: HashMap<JobId, u32>,
}

impl Heard {
    fn line(&mut self, line: &str) {
        let mut words = line.split(' ');
        match (words.next(), words.next(), words.next()) {
            (Some("S"), Some(id), None) => {
                self.submitted.insert(id.parse().unwrap());
            }
            (Some("L"), Some(id), Some(deliveries)) => {
                let deliveries: u32 = deliveries.parse().unwrap();
                let seen = self.leased.entry(id.parse().unwrap()).or_default();
                *seen = (*seen).max(deliveries);
            }
            _ => panic!("the child said {line:?}"),
        }
    }
}

fn key(id: JobId) -> JobKey {
    JobKey::new("crash", id)
}

fn committed_submissions_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imgchkr.db");
    let exe = std::env::current_exe().unwrap();
    let mut heard = Heard::default();
    for round in 0..4 {
        let sync = if round % 2 == 0 { "normal" } else { "full" };
        let mut child = Command::new(&exe)
            .arg("--submit-loop")
            .arg(&path)
            .arg(sync)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        // Kill it at a different point of its load each round.
        let before = heard.submitted.len();
        while heard.submitted.len() < before + 200 + 150 * round {
            line.clear();
            let read = out.read_line(&mut line).unwrap();
            assert!(read > 0, "the child stopped early: {:?}", child.wait());
            heard.line(line.trim_end());
        }
        // The owner is alive: a second opener fails at once, naming it.
        match SqliteEngine::open(&SqliteConfig::new(&path)) {
            Err(OpenError::Locked { holder, .. }) => assert_eq!(holder, Some(child.id())),
            other => panic!("opening beside the child: {other:?}"),
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // What it printed before it died (a line cut short was never fully said).
        loop {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 {
                break;
            }
            if line.ends_with('\n') {
                heard.line(line.trim_end());
            }
        }
        let engine = SqliteEngine::open(&SqliteConfig::new(&path)).unwrap();
        block_on(async {
            for id in &heard.submitted {
                match engine.get(&key(*id)).await {
                    Ok(Lookup::Found(job)) => assert_eq!(job.tenant, "crash"),
                    other => panic!("round {round}: job {id} was answered committed: {other:?}"),
                }
            }
        });
    }
    assert!(!heard.leased.is_empty(), "the children leased nothing");
    // Restarted for good: every accepted job runs to its verdict; the ones the children held
    // are handed out again at once, as later deliveries.
    let engine = SqliteEngine::open(&SqliteConfig::new(&path)).unwrap();
    block_on(async {
        let now = OffsetDateTime::now_utc();
        let mut finished = HashSet::new();
        loop {
            let held = engine.lease(&request("survivor", 500, now)).await.unwrap();
            if held.is_empty() {
                break;
            }
            for taken in held {
                let id = taken.lease.key.id;
                if let Some(before) = heard.leased.get(&id) {
                    assert!(
                        taken.lease.deliveries > *before,
                        "job {id}: delivery {} after {before}",
                        taken.lease.deliveries
                    );
                }
                let verdict = JobUpdate::Verdict {
                    errors: None,
                    warnings: Vec::new(),
                    at: now,
                };
                engine.finish(&taken.lease, &[verdict]).await.unwrap();
                finished.insert(id);
            }
        }
        for id in &heard.submitted {
            assert!(finished.contains(id), "job {id} was never handed out");
            match engine.get(&key(*id)).await {
                Ok(Lookup::Found(job)) => assert_eq!(job.state, JobState::Success),
                other => panic!("job {id}: {other:?}"),
            }
        }
        let stats = engine.stats().await.unwrap();
        assert_eq!((stats.waiting, stats.in_flight), (0, 0));
    });
    eprintln!(
        "{} submissions heard committed over 4 kills, {} of their jobs held by a child",
        heard.submitted.len(),
        heard.leased.len()
    );
}
