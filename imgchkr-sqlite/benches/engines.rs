//! One job's round trips through an engine (submit → lease → record → record → finish, with
//! the updates core's runner makes for a job that passes and whose two webhooks are
//! delivered), on the memory engine and on SQLite with `synchronous=NORMAL` and `FULL`, in the
//! same run:
//!
//! - `engines/sequential/<engine>`: one job at a time (each write its own transaction);
//! - `engines/concurrent64/<engine>`: 64 jobs at once (the writes that arrive together share a
//!   transaction), per job;
//! - `engines/worker/<engine>`: closer to the service: batches of 256 submissions run by core's
//!   worker loop (64 slots) on a two-thread tokio runtime, each job validating a real JPEG
//!   header from a directory, its webhooks answered 200 in memory (no network), per job.
//!
//! Then the ratios against the memory engine; the CPU time per job of the whole process over
//! 20,480 jobs through the worker loop on each engine (steadier than the wall clock on a shared
//! machine); and the SQLite file's size per 100,000 finished jobs kept. `cargo bench -p imgchkr-sqlite --bench engines`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, Throughput};
use futures_executor::block_on;
use futures_util::future::join_all;
use imgchkr_core::engine::{Admission, LeaseRequest, Retention, WorkerId};
use imgchkr_core::notify::{Attempt, BoxFuture, DeliveryOutcome, Notification, Notifier};
use imgchkr_core::worker::{Runtime, Validator, Worker, WorkerConfig};
use imgchkr_core::{
    AssetPath, DeliveryRecord, DeliveryStatus, Engine, Event, ImageDir, Job, JobId, JobUpdate,
    MemoryEngine, NotificationUrls, Policy, Report,
};
use imgchkr_sqlite::{SqliteConfig, SqliteEngine, Synchronous};
use time::OffsetDateTime;

const ROOMY: Admission = Admission {
    capacity: u64::MAX,
    tenant_share: u64::MAX,
};
const TENANTS: [&str; 4] = ["acme", "bolt", "cogs", "dyne"];
const ENGINES: [&str; 3] = ["memory", "sqlite-normal", "sqlite-full"];

fn job(n: u64) -> Job {
    let tenant = TENANTS[(n % 4) as usize];
    let url = |event: &str| {
        format!("https://hooks.example.com/{tenant}/imgchkr/{event}")
            .parse()
            .unwrap()
    };
    let mut job = Job::new(
        JobId::random(),
        AssetPath::Local {
            path: format!("uploads/{tenant}/2030/01/photo-{n}.jpg"),
        },
        NotificationUrls {
            on_start: url("onStart"),
            on_success: url("onSuccess"),
            on_failure: url("onFailure"),
        },
    );
    job.tenant = tenant.to_owned();
    job
}

fn delivery(job: &Job, event: Event, done: bool) -> JobUpdate {
    let mut record = DeliveryRecord::pending(event, job.notification_urls.get(event).clone());
    if done {
        record.status = DeliveryStatus::Delivered;
        record.attempts = 1;
        record.http_status = Some(200);
    }
    JobUpdate::Delivery(record)
}

/// Counts jobs, to purge every so often as the server's retention task does.
static JOBS: AtomicU64 = AtomicU64::new(0);

/// One job through `engine`, as the worker records it (core's `Session` folds the runner's
/// updates into two records and the finish).
async fn one_job(engine: &dyn Engine) {
    let submitted = job(JOBS.fetch_add(1, Ordering::Relaxed));
    engine.submit(&submitted, ROOMY).await.unwrap();
    let now = OffsetDateTime::now_utc();
    let request = LeaseRequest::new(
        WorkerId("bench".into()),
        1,
        now,
        now + Duration::from_secs(60),
    );
    let held = engine.lease(&request).await.unwrap();
    let taken = &held[0];
    let job = &taken.job;
    engine
        .record(&taken.lease, &[delivery(job, Event::OnStart, false)])
        .await
        .unwrap();
    let verdict = JobUpdate::Verdict {
        errors: None,
        warnings: Vec::new(),
        at: now,
    };
    let middle = [
        delivery(job, Event::OnStart, true),
        verdict,
        delivery(job, Event::OnSuccess, false),
    ];
    engine.record(&taken.lease, &middle).await.unwrap();
    engine
        .finish(&taken.lease, &[delivery(job, Event::OnSuccess, true)])
        .await
        .unwrap();
}

/// Every 4096 jobs (counted in `done`), forgets the finished ones, in a batch as the server's
/// retention task does: the engine's file and maps stay the same size while it is timed.
async fn purge_now_and_then(engine: &dyn Engine, done: &mut u64, jobs: u64) {
    *done += jobs;
    if *done >= 4096 {
        *done = 0;
        let retention = Retention::new(Duration::ZERO, u64::MAX);
        engine
            .purge(&retention, OffsetDateTime::now_utc(), 8192)
            .await
            .unwrap();
    }
}

/// Core's worker loop on tokio, as the service runs it.
struct Tokio(tokio::runtime::Handle);

impl Runtime for Tokio {
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        self.0.spawn(task);
    }
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// Validates the job's file in `dir` under the default policy.
struct Files(ImageDir);

impl Validator for Files {
    fn validate(&self, job: &Job) -> BoxFuture<'static, Report> {
        let report = self.0.validate(job.asset_path.path(), &Policy::default());
        Box::pin(std::future::ready(report))
    }
}

/// Answers every webhook 200 at once, counting the final ones.
#[derive(Default)]
struct Answered {
    finals: AtomicU64,
    done: tokio::sync::Notify,
    target: AtomicU64,
}

impl Notifier for Answered {
    fn deliver<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, DeliveryOutcome> {
        if n.event != Event::OnStart
            && self.finals.fetch_add(1, Ordering::SeqCst) + 1 >= self.target.load(Ordering::SeqCst)
        {
            self.done.notify_one();
        }
        let answered = Attempt::answered(1, 200, Duration::ZERO);
        Box::pin(std::future::ready(DeliveryOutcome::from_attempts(vec![
            answered,
        ])))
    }
}

/// A worker of `engine` running on `rt`, validating files of `images`.
fn start_worker(
    rt: &tokio::runtime::Runtime,
    engine: Arc<dyn Engine>,
    images: &Path,
) -> (Arc<Answered>, tokio::sync::oneshot::Sender<()>) {
    let answered = Arc::new(Answered::default());
    let worker = Worker::new(
        engine,
        Arc::clone(&answered) as Arc<dyn Notifier>,
        Arc::new(Files(ImageDir::open(images).unwrap())),
        Arc::new(Tokio(rt.handle().clone())),
        WorkerConfig::new(WorkerId::generate(), 64),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    rt.spawn(worker.run(
        async move {
            let _ = stopped.await;
        },
        Duration::from_secs(5),
    ));
    (answered, stop)
}

/// Submits `count` jobs of photos in `images` and waits for their final webhooks.
async fn batch(engine: &dyn Engine, answered: &Answered, count: u64) {
    let target = answered.finals.load(Ordering::SeqCst) + count;
    answered.target.store(target, Ordering::SeqCst);
    let jobs: Vec<Job> = (0..count)
        .map(|n| {
            let mut job = job(n);
            job.asset_path = AssetPath::Local {
                path: "photo.jpg".into(),
            };
            job.created_at = OffsetDateTime::now_utc();
            job
        })
        .collect();
    for admitted in join_all(
        jobs.into_iter()
            .map(|job| imgchkr_core::admission::admit(engine, job, ROOMY)),
    )
    .await
    {
        admitted.unwrap();
    }
    while answered.finals.load(Ordering::SeqCst) < target {
        answered.done.notified().await;
    }
    let retention = Retention::new(Duration::ZERO, u64::MAX);
    engine
        .purge(&retention, OffsetDateTime::now_utc(), 1024)
        .await
        .unwrap();
}

fn sqlite(dir: &Path, name: &str, synchronous: Synchronous) -> SqliteEngine {
    let config = SqliteConfig::new(dir.join(format!("{name}.db"))).synchronous(synchronous);
    SqliteEngine::open(&config).unwrap()
}

fn criterion_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("criterion")
}

/// The median (ns) criterion recorded for `group/function` since `since`.
fn median_ns(group: &str, function: &str, since: SystemTime) -> Option<f64> {
    let path = criterion_dir()
        .join(group.replace('/', "_"))
        .join(function)
        .join("new/estimates.json");
    if std::fs::metadata(&path).ok()?.modified().ok()? < since {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    json["median"]["point_estimate"].as_f64()
}

fn main() {
    let since = SystemTime::now();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let memory = MemoryEngine::new();
    let normal = sqlite(dir.path(), "normal", Synchronous::Normal);
    let full = sqlite(dir.path(), "full", Synchronous::Full);
    let engines: [&dyn Engine; 3] = [&memory, &normal, &full];
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .output_directory(&criterion_dir())
        .configure_from_args();
    {
        let mut group = c.benchmark_group("engines/sequential");
        group.throughput(Throughput::Elements(1));
        for (name, engine) in ENGINES.iter().zip(engines) {
            let mut done = 0;
            group.bench_function(*name, |b| {
                b.iter(|| {
                    block_on(async {
                        one_job(engine).await;
                        purge_now_and_then(engine, &mut done, 1).await;
                    })
                })
            });
        }
        group.finish();
    }
    {
        let mut group = c.benchmark_group("engines/concurrent64");
        group.throughput(Throughput::Elements(64));
        for (name, engine) in ENGINES.iter().zip(engines) {
            let mut done = 0;
            group.bench_function(*name, |b| {
                b.iter(|| {
                    block_on(async {
                        join_all((0..64).map(|_| one_job(engine))).await;
                        purge_now_and_then(engine, &mut done, 64).await;
                    })
                })
            });
        }
        group.finish();
    }
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    // A baseline JPEG header of 800x600: within the default policy.
    let jpeg = [
        0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x0B, 8, 0x02, 0x58, 0x03, 0x20, 1, 1, 0x11, 0,
    ];
    std::fs::write(images.join("photo.jpg"), jpeg).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    {
        let shared: [Arc<dyn Engine>; 3] = [
            Arc::new(MemoryEngine::new()),
            Arc::new(sqlite(dir.path(), "worker-normal", Synchronous::Normal)),
            Arc::new(sqlite(dir.path(), "worker-full", Synchronous::Full)),
        ];
        let mut group = c.benchmark_group("engines/worker");
        group.throughput(Throughput::Elements(256));
        for (name, engine) in ENGINES.iter().zip(shared) {
            let (answered, stop) = start_worker(&rt, Arc::clone(&engine), &images);
            group.bench_function(*name, |b| {
                b.iter_custom(|iters| {
                    let started = Instant::now();
                    for _ in 0..iters {
                        rt.block_on(batch(&*engine, &answered, 256));
                    }
                    started.elapsed()
                })
            });
            let _ = stop.send(());
        }
        group.finish();
    }
    c.final_summary();
    drop((normal, full));
    report(since);
    cpu_per_job(&rt, dir.path(), &images);
    size_per_100k(dir.path());
}

/// This process's CPU time so far, all threads.
fn cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap(),
        u32::try_from(t.tv_nsec).unwrap(),
    )
}

/// CPU time per job of the whole process (tokio's workers, the worker loop, the engine's
/// threads) running 20,480 jobs through core's worker loop on each engine in turn: on a busy
/// machine, a steadier measure of what an engine costs than the wall clock.
fn cpu_per_job(rt: &tokio::runtime::Runtime, dir: &Path, images: &Path) {
    println!("\n| 20,480 jobs through the worker loop | CPU per job | wall per job |");
    println!("|---|---:|---:|");
    let mut memory_cpu = None;
    for name in ENGINES {
        let engine: Arc<dyn Engine> = match name {
            "memory" => Arc::new(MemoryEngine::new()),
            "sqlite-normal" => Arc::new(sqlite(dir, "cpu-normal", Synchronous::Normal)),
            _ => Arc::new(sqlite(dir, "cpu-full", Synchronous::Full)),
        };
        let (answered, stop) = start_worker(rt, Arc::clone(&engine), images);
        rt.block_on(batch(&*engine, &answered, 1024));
        let (cpu, wall) = (cpu_time(), Instant::now());
        for _ in 0..80 {
            rt.block_on(batch(&*engine, &answered, 256));
        }
        let (cpu, wall) = (
            (cpu_time() - cpu).as_secs_f64() * 1e6 / 20_480.0,
            wall.elapsed().as_secs_f64() * 1e6 / 20_480.0,
        );
        let extra = match memory_cpu {
            None => {
                memory_cpu = Some(cpu);
                String::new()
            }
            Some(memory) => format!(" (+{:.1} µs)", cpu - memory),
        };
        println!("| {name} | {cpu:.1} µs{extra} | {wall:.1} µs |");
        let _ = stop.send(());
    }
}

/// Per-job medians and each engine's throughput against the memory engine's.
fn report(since: SystemTime) {
    let mut header =
        Some("\n| per job (median) | memory | sqlite-normal | sqlite-full |\n|---|---:|---:|---:|");
    for (group, per) in [
        ("engines/sequential", 1.0),
        ("engines/concurrent64", 64.0),
        ("engines/worker", 256.0),
    ] {
        let times: Vec<Option<f64>> = ENGINES
            .iter()
            .map(|engine| median_ns(group, engine, since).map(|t| t / per))
            .collect();
        let Some(memory) = times[0] else { continue };
        if let Some(header) = header.take() {
            println!("{header}");
        }
        let mut row = format!("| {group} |");
        for t in &times {
            row += &match t {
                Some(t) => format!(" {:.1} µs ({:.2}×) |", t / 1000.0, memory / t),
                None => " – |".into(),
            };
        }
        println!("{row}");
    }
    if header.is_none() {
        println!("(× = the engine's jobs/s as a fraction of the memory engine's)");
    }
}

/// The file's size holding 100,000 finished jobs (with their two delivered webhooks), once
/// its log is checkpointed; then after they are all purged.
fn size_per_100k(dir: &Path) {
    let path = dir.join("size.db");
    let engine = SqliteEngine::open(&SqliteConfig::new(&path)).unwrap();
    block_on(async {
        for _ in 0..100_000 / 50 {
            join_all((0..50).map(|_| one_job(&engine))).await;
        }
    });
    let settled = |path: &Path| {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        std::fs::metadata(path).unwrap().len()
    };
    let held = settled(&path);
    let retention = Retention::new(Duration::ZERO, u64::MAX);
    block_on(async {
        while engine
            .purge(&retention, OffsetDateTime::now_utc(), 10_000)
            .await
            .unwrap()
            > 0
        {}
    });
    let mut purged = settled(&path);
    let mut rounds = 0;
    // Each purge gives at most 8 MiB back: a few more rounds.
    while rounds < 20 {
        block_on(engine.purge(&retention, OffsetDateTime::now_utc(), 10_000)).unwrap();
        let now = settled(&path);
        if now == purged {
            break;
        }
        purged = now;
        rounds += 1;
    }
    println!(
        "\nSQLite file holding 100,000 finished jobs: {:.1} MiB ({} bytes a job); after purging them: {:.1} MiB (100,000 tombstones kept)",
        held as f64 / (1 << 20) as f64,
        held / 100_000,
        purged as f64 / (1 << 20) as f64,
    );
}
