//! What the SQLite engine adds to the conformance suite: restart and ownership, migrations,
//! unavailable files (read-only, full), a bounded file, group commit under concurrent writes,
//! and unreadable rows.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{ROOMY, job, open, request, sizes};
use futures_executor::block_on;
use futures_util::future::join_all;
use imgchkr_core::engine::{Admission, Full, Lookup, Retention, Submitted};
use imgchkr_core::{Engine, Job, JobUpdate, StoreError};
use imgchkr_sqlite::{OpenError, SCHEMA_VERSION, SqliteConfig, SqliteEngine};
use rusqlite::Connection;
use time::OffsetDateTime;

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

async fn submit(engine: &dyn Engine, job: &Job) {
    match engine.submit(job, ROOMY).await {
        Ok(Submitted::New) => {}
        other => panic!("submit {}: {other:?}", job.key()),
    }
}

async fn found(engine: &dyn Engine, job: &Job) -> Job {
    match engine.get(&job.key()).await {
        Ok(Lookup::Found(stored)) => *stored,
        other => panic!("get {}: {other:?}", job.key()),
    }
}

/// Bytes of the database and its log once the log is checkpointed into it (by a connection of
/// the test's own, as an operator's `sqlite3` would; tried again while the engine's own
/// checkpointer holds the checkpoint lock).
fn settled(path: &Path) -> (u64, u64) {
    let conn = Connection::open(path).unwrap();
    for _ in 0..100 {
        let (busy, _, _): (i64, i64, i64) = conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        if busy == 0 {
            drop(conn);
            return sizes(path);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the log could not be checkpointed in 2 s");
}

fn success(at: OffsetDateTime) -> JobUpdate {
    JobUpdate::Verdict {
        errors: None,
        warnings: Vec::new(),
        at,
    }
}

#[test]
fn a_lease_left_by_a_dropped_engine_is_taken_over_at_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imgchkr.db");
    let t0 = now();
    let queued = job("acme");
    {
        let engine = open(&path);
        block_on(async {
            submit(&engine, &queued).await;
            let held = engine.lease(&request("w1", 1, t0)).await.unwrap();
            assert_eq!(held.len(), 1);
            assert_eq!(held[0].lease.deliveries, 1);
        });
        // Dropped without finishing: as if the process had died holding the lease.
    }
    let engine = open(&path);
    block_on(async {
        // Same clock: the lease would run for another minute, but its holder is gone.
        let again = engine.lease(&request("w2", 5, t0)).await.unwrap();
        assert_eq!(again.len(), 1, "the job is handed out again at once");
        assert_eq!(again[0].lease.key, queued.key());
        assert_eq!(again[0].lease.deliveries, 2);
        assert_eq!(
            again[0].job.started_at,
            found(&engine, &queued).await.started_at
        );
        let stats = engine.stats().await.unwrap();
        assert_eq!((stats.waiting, stats.in_flight), (0, 1));
    });
}

#[test]
fn a_second_opener_fails_fast_until_the_owner_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imgchkr.db");
    let first = open(&path);
    match SqliteEngine::open(&SqliteConfig::new(&path)) {
        Err(OpenError::Locked { holder, lock, .. }) => {
            assert_eq!(holder, Some(std::process::id()));
            assert_eq!(lock, dir.path().join("imgchkr.db.lock"));
        }
        other => panic!("a second opener: {other:?}"),
    }
    let message = SqliteEngine::open(&SqliteConfig::new(&path))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("in use by another process"),
        "message: {message}"
    );
    drop(first);
    let second = open(&path);
    block_on(second.check()).unwrap();
}

#[test]
fn migrations_apply_to_an_empty_file_and_reopening_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imgchkr.db");
    // An empty file, as `touch` leaves it.
    std::fs::write(&path, b"").unwrap();
    let queued = job("acme");
    {
        let engine = open(&path);
        block_on(submit(&engine, &queued));
    }
    let inspect = |path: &Path| {
        let conn = Connection::open(path).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let modes: (String, i64) = (
            conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .unwrap(),
            conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
                .unwrap(),
        );
        (version, tables, modes)
    };
    let first = inspect(&path);
    assert_eq!(first.0, SCHEMA_VERSION);
    assert_eq!(
        first.1,
        [
            "buckets",
            "jobs",
            "probe",
            "remembered",
            "tenants",
            "tombstones",
            "workers"
        ]
    );
    // WAL, and incremental auto-vacuum (2).
    assert_eq!(first.2, ("wal".to_owned(), 2));
    for _ in 0..2 {
        let engine = open(&path);
        assert_eq!(block_on(found(&engine, &queued)), {
            let mut stored = queued.clone();
            stored.created_at = stored
                .created_at
                .replace_nanosecond(stored.created_at.nanosecond() / 1000 * 1000)
                .unwrap();
            stored
        });
        drop(engine);
        assert_eq!(inspect(&path), first, "reopening changed the schema");
    }
    // The history is plain SQL.
    let conn = Connection::open(&path).unwrap();
    let counts: (String, String, i64) = conn
        .query_row(
            "SELECT tenant, state, count(*) FROM jobs GROUP BY 1, 2",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(counts, ("acme".into(), "queued".into(), 1));
}

#[test]
fn a_newer_schema_or_a_foreign_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let newer = dir.path().join("newer.db");
    drop(open(&newer));
    Connection::open(&newer)
        .unwrap()
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    match SqliteEngine::open(&SqliteConfig::new(&newer)) {
        Err(OpenError::TooNew {
            found, supported, ..
        }) => assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION)),
        other => panic!("a newer schema: {other:?}"),
    }
    let foreign = dir.path().join("notes.txt");
    std::fs::write(&foreign, vec![b'x'; 8192]).unwrap();
    match SqliteEngine::open(&SqliteConfig::new(&foreign)) {
        Err(OpenError::Sqlite { reason, .. }) => {
            assert!(reason.contains("not a database"), "reason: {reason}")
        }
        other => panic!("a text file: {other:?}"),
    }
}

/// Drops `CAP_DAC_OVERRIDE` from this thread (and the threads it starts) while alive, so that
/// a file's mode binds root too; restores it when dropped.
struct NoOverride(rustix::thread::CapabilitySets);

impl NoOverride {
    fn new() -> NoOverride {
        use rustix::thread::{CapabilitySet, capabilities, set_capabilities};
        let before = capabilities(None).unwrap();
        let mut reduced = before;
        reduced.effective -= CapabilitySet::DAC_OVERRIDE;
        set_capabilities(None, reduced).unwrap();
        NoOverride(before)
    }
}

impl Drop for NoOverride {
    fn drop(&mut self) {
        rustix::thread::set_capabilities(None, self.0).unwrap();
    }
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_read_only_file_reads_but_writes_are_unavailable_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imgchkr.db");
    let t0 = now();
    let queued = job("acme");
    {
        let engine = open(&path);
        block_on(async {
            submit(&engine, &queued).await;
            engine.lease(&request("w1", 1, t0)).await.unwrap();
        });
    }
    chmod(&path, 0o444);
    let refused = job("acme");
    {
        let _guard = NoOverride::new();
        let engine = open(&path);
        let readonly = "attempt to write a readonly database";
        block_on(async {
            assert_eq!(found(&engine, &queued).await.tenant, "acme", "reads work");
            let unavailable = |result: Result<_, StoreError>, what: &str| match result {
                Err(StoreError::Unavailable(reason)) => assert!(
                    reason.contains(readonly) && reason.contains("imgchkr.db"),
                    "{what}: {reason}"
                ),
                other => panic!("{what} on a read-only file: {other:?}"),
            };
            unavailable(engine.submit(&refused, ROOMY).await.map(|_| ()), "submit");
            unavailable(engine.check().await, "check");
            unavailable(
                engine.lease(&request("w2", 1, t0)).await.map(|_| ()),
                "lease",
            );
            assert!(matches!(
                engine.get(&refused.key()).await,
                Ok(Lookup::Unknown)
            ));
            let stats = engine.stats().await.unwrap();
            assert_eq!(
                (stats.waiting, stats.in_flight),
                (0, 1),
                "nothing was written"
            );
        });
    }
    // Writable again (SQLite made its log files read-only like the database): opened again,
    // the engine takes the old lease over and accepts jobs.
    for file in ["imgchkr.db", "imgchkr.db-wal", "imgchkr.db-shm"] {
        let file = dir.path().join(file);
        if file.exists() {
            chmod(&file, 0o644);
        }
    }
    let engine = open(&path);
    block_on(async {
        engine.check().await.unwrap();
        submit(&engine, &refused).await;
        let again = engine.lease(&request("w2", 1, t0)).await.unwrap();
        assert_eq!(again[0].lease.key, queued.key());
        assert_eq!(again[0].lease.deliveries, 2);
    });
}

#[test]
fn a_full_disk_is_unavailable_with_the_reason_and_purge_makes_room() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imgchkr.db");
    let mut config = SqliteConfig::new(&path);
    config.max_size = Some(256 * 1024);
    let engine = SqliteEngine::open(&config).unwrap();
    let full = "database or disk is full";
    block_on(async {
        let mut done = Vec::new();
        let refused = loop {
            assert!(done.len() < 100_000, "the cap was never reached");
            let next = job("acme");
            match engine.submit(&next, ROOMY).await {
                Ok(Submitted::New) => {}
                Err(StoreError::Unavailable(reason)) => break (next, reason),
                other => panic!("submit: {other:?}"),
            }
            let held = engine.lease(&request("w", 1, now())).await;
            let finished = match held {
                Ok(held) => engine.finish(&held[0].lease, &[success(now())]).await,
                Err(e) => Err(e),
            };
            match finished {
                Ok(()) => done.push(next),
                Err(StoreError::Unavailable(reason)) => break (next, reason),
                Err(e) => panic!("lease or finish: {e}"),
            }
        };
        assert!(refused.1.contains(full), "reason: {}", refused.1);
        assert!(done.len() > 50, "only {} jobs fit", done.len());
        for job in &done {
            assert_eq!(
                found(&engine, job).await.state,
                imgchkr_core::JobState::Success
            );
        }
        match engine.check().await {
            Err(StoreError::Unavailable(reason)) => assert!(reason.contains(full), "{reason}"),
            other => panic!("check on a full file: {other:?}"),
        }
        // Retention frees pages (deletes go before the tombstones that take less room).
        let expired = engine
            .purge(&Retention::new(Duration::ZERO, 1), now(), 10_000)
            .await
            .expect("purge on a full file");
        assert!(expired as usize >= done.len());
        engine.check().await.expect("check after purge");
        let after = job("acme");
        submit(&engine, &after).await;
        assert!(matches!(
            engine.get(&done[0].key()).await,
            Ok(Lookup::Expired)
        ));
    });
}

/// Runs `count` jobs through `engine` concurrently (submit, lease, record, finish), then
/// purges them all.
async fn cycle(engine: &SqliteEngine, count: usize, retention: &Retention) {
    for chunk in 0..count.div_ceil(500) {
        let jobs: Vec<Job> = (0..500.min(count - chunk * 500))
            .map(|i| job(["acme", "bolt", "cogs"][i % 3]))
            .collect();
        for result in join_all(jobs.iter().map(|j| engine.submit(j, ROOMY))).await {
            assert!(matches!(result, Ok(Submitted::New)), "{result:?}");
        }
        let held = engine.lease(&request("w", 500, now())).await.unwrap();
        assert_eq!(held.len(), jobs.len());
        let runs = held.iter().map(|taken| async {
            let at = now();
            engine
                .record(&taken.lease, &[JobUpdate::Started { at }])
                .await?;
            engine.finish(&taken.lease, &[success(at)]).await
        });
        for result in join_all(runs).await {
            result.unwrap();
        }
    }
    let later = now() + Duration::from_secs(1);
    while engine.purge(retention, later, 5_000).await.unwrap() > 0 {}
}

#[test]
fn purge_keeps_the_file_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imgchkr.db");
    let engine = open(&path);
    let mut retention = Retention::new(Duration::ZERO, 100_000);
    retention.max_tombstones = 1_000;
    block_on(async {
        cycle(&engine, 20_000, &retention).await;
        let (first, first_wal) = settled(&path);
        cycle(&engine, 20_000, &retention).await;
        let (second, second_wal) = settled(&path);
        // Freed pages are reused: the second round does not grow the file.
        assert!(
            second <= first + first / 10,
            "the database grew from {first} to {second} bytes"
        );
        // The log is truncated back to 16 MiB after its checkpoints.
        assert!(
            first_wal.max(second_wal) <= 24 << 20,
            "log of {first_wal} then {second_wal} bytes"
        );
        eprintln!(
            "after each round: {first} then {second} bytes, log {first_wal} then {second_wal}"
        );
        let stats = engine.stats().await.unwrap();
        assert_eq!((stats.waiting, stats.in_flight), (0, 0));
    });
    drop(engine);
    let conn = Connection::open(&path).unwrap();
    let (jobs, tombstones): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM tombstones)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((jobs, tombstones), (0, 1_000));
}

#[test]
fn purge_gives_the_pages_of_a_drained_burst_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imgchkr.db");
    let engine = open(&path);
    let mut retention = Retention::new(Duration::ZERO, 100_000);
    retention.max_tombstones = 0;
    block_on(async {
        cycle(&engine, 0, &retention).await;
        let before = settled(&path).0;
        // Fill without purging (about 12 MiB), then purge it all.
        cycle(
            &engine,
            30_000,
            &Retention::new(Duration::from_secs(3600), 100_000),
        )
        .await;
        let peak = settled(&path).0;
        while engine
            .purge(&retention, now() + Duration::from_secs(7200), 5_000)
            .await
            .unwrap()
            > 0
        {}
        // Each purge gives back up to 8 MiB beyond its slack (a tenth of the file, at least
        // 4 MiB): a few more calls.
        for _ in 0..8 {
            engine
                .purge(&retention, now() + Duration::from_secs(7200), 5_000)
                .await
                .unwrap();
        }
        let after = settled(&path).0;
        eprintln!("file of {before} bytes, {peak} at the peak, {after} after purging");
        assert!(
            peak > 8 << 20 && after < peak / 2 && after <= before + (5 << 20),
            "file of {before} bytes, {peak} at the peak, {after} after purging"
        );
    });
}

#[test]
fn concurrent_writes_commit_together_with_each_answer_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imgchkr.db");
    let engine = open(&path);
    block_on(async {
        // 300 at once against room for 100: within the groups, refused submissions do not
        // undo the accepted ones.
        let admission = Admission::new(100, 100);
        let jobs: Vec<Job> = (0..300).map(|_| job("acme")).collect();
        let results = join_all(jobs.iter().map(|j| engine.submit(j, admission))).await;
        let mut accepted = Vec::new();
        for (job, result) in jobs.iter().zip(results) {
            match result {
                Ok(Submitted::New) => accepted.push(job),
                Err(StoreError::Full(Full::Queue | Full::Tenant)) => {
                    assert!(matches!(engine.get(&job.key()).await, Ok(Lookup::Unknown)));
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(accepted.len(), 100);
        for job in &accepted {
            found(&engine, job).await;
        }
        let stats = engine.stats().await.unwrap();
        assert_eq!(stats.waiting, 100);
        // Every job leased once, in submission order, by concurrent leases.
        let requests: Vec<_> = (0..10)
            .map(|i| request(&format!("w{i}"), 20, now()))
            .collect();
        let leases = join_all(requests.iter().map(|r| engine.lease(r))).await;
        let mut leased: Vec<_> = leases.into_iter().flat_map(Result::unwrap).collect();
        assert_eq!(leased.len(), 100);
        leased.sort_by_key(|l| l.lease.key.id);
        leased.dedup_by_key(|l| l.lease.key.id);
        assert_eq!(leased.len(), 100, "a job was handed out twice");
    });
}

#[test]
fn a_corrupt_row_is_an_error_naming_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imgchkr.db");
    let broken = job("acme");
    let fine = job("acme");
    {
        let engine = open(&path);
        block_on(async {
            submit(&engine, &broken).await;
            submit(&engine, &fine).await;
        });
    }
    Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE jobs SET notifications = '[{\"event\": \"onExplode\"}]' WHERE id = ?1",
            [broken.id.to_string()],
        )
        .unwrap();
    let engine = open(&path);
    block_on(async {
        match engine.get(&broken.key()).await {
            Err(StoreError::Corrupt { key, reason }) => {
                assert!(key.contains(&broken.id.to_string()), "{key}");
                assert!(reason.contains("notifications"), "{reason}");
            }
            other => panic!("get of a corrupt row: {other:?}"),
        }
        found(&engine, &fine).await;
        // The lease that meets it takes it out of the queue, and hands out the jobs behind.
        let held = engine.lease(&request("w", 5, now())).await.unwrap();
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].lease.key, fine.key());
        let stats = engine.stats().await.unwrap();
        assert_eq!((stats.waiting, stats.in_flight), (0, 1));
        engine.check().await.unwrap();
    });
}

#[test]
fn what_writes_return_equals_what_reads_give() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir.path().join("imgchkr.db"));
    block_on(async {
        // Nanoseconds in every time: stored as microseconds, returned as stored.
        let queued = job("acme");
        submit(&engine, &queued).await;
        let t = now();
        let held = engine.lease(&request("w", 1, t)).await.unwrap();
        assert_eq!(held[0].job, found(&engine, &queued).await);
        let cancelled = job("acme");
        submit(&engine, &cancelled).await;
        let answer = engine.cancel(&cancelled.key(), now()).await.unwrap();
        let imgchkr_core::engine::Cancel::Cancelled(answer) = answer else {
            panic!("{answer:?}");
        };
        assert_eq!(*answer, found(&engine, &cancelled).await);
    });
}

#[test]
fn work_available_wakes_once_a_submission_or_a_release_commits() {
    use futures_util::FutureExt as _;
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir.path().join("imgchkr.db"));
    block_on(async {
        let t0 = now();
        assert!(engine.lease(&request("w", 1, t0)).await.unwrap().is_empty());
        let mut idle = engine.work_available();
        assert!(
            (&mut idle).now_or_never().is_none(),
            "woke with nothing new"
        );
        submit(&engine, &job("acme")).await;
        // Woken before the submission was answered.
        assert!(
            idle.now_or_never().is_some(),
            "a committed submission woke nobody"
        );
        let held = engine.lease(&request("w", 1, t0)).await.unwrap();
        let mut idle = engine.work_available();
        assert!((&mut idle).now_or_never().is_none());
        engine.release(&held[0].lease).await.unwrap();
        assert!(
            idle.now_or_never().is_some(),
            "a released lease woke nobody"
        );
    });
}
