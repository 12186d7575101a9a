//! The engine conformance suite (feature `testkit`): what every [`Engine`] must do, run
//! unchanged against each of them.
//!
//! ```ignore
//! #[tokio::test]
//! async fn conformance() {
//!     imgchkr_core::testkit::run(&|| async { Arc::new(MyEngine::open_empty().await) as _ }).await;
//! }
//! ```
//!
//! Each case gets a fresh, empty engine from the factory and drives it with explicit times
//! (engines never read a clock), so the suite is deterministic and needs no sleeping. Cases
//! that need a worker use core's own [`Worker::handle`] with a [`RecordingNotifier`], so the
//! worker's rules (poison parking, settling a redelivered verdict) are checked on each engine
//! too. [`run`] runs every case and panics with the names of those that failed.
//!
//! Split engines (records in a store, work carried by a broker) run [`split::run`]: the cases a
//! broker can honour, on several processes of one deployment.
//!
//! [`Worker::handle`]: crate::worker::Worker::handle
//! [`RecordingNotifier`]: crate::RecordingNotifier
// Test support: an assumption that does not hold is a failed test, as in any test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cases;
mod lifecycle;
pub mod split;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use time::macros::datetime;

use crate::engine::{Admission, Engine, Lease, LeaseRequest, Leased, StoreError, WorkerId};
use crate::job::{AssetPath, Job, JobId, JobKey, NotificationUrls, Priority};
use crate::notify::BoxFuture;

/// What a case returns: `Err` with what went wrong.
pub type Outcome = Result<(), String>;

/// One case of the suite.
pub struct Case {
    /// What it checks.
    pub name: &'static str,
    /// The check, given a fresh empty engine.
    pub run: fn(Arc<dyn Engine>) -> BoxFuture<'static, Outcome>,
}

/// Makes a fresh, empty engine for each case.
pub trait Factory: Sync {
    /// A new engine that holds no job.
    fn engine(&self) -> BoxFuture<'_, Arc<dyn Engine>>;
}

impl<F, Fut> Factory for F
where
    F: Fn() -> Fut + Sync,
    Fut: Future<Output = Arc<dyn Engine>> + Send + 'static,
{
    fn engine(&self) -> BoxFuture<'_, Arc<dyn Engine>> {
        Box::pin(self())
    }
}

/// Every case.
pub fn cases() -> Vec<Case> {
    let mut all = cases::cases();
    all.extend(lifecycle::cases());
    all
}

/// Runs every case against engines from `factory`; panics naming the cases that failed.
pub async fn run(factory: &dyn Factory) {
    run_except(factory, &[]).await;
}

/// Runs every case but those named in `skip` (an engine that cannot keep a guarantee by
/// design, and documents why: the sharded engine's global round-robin and capacity); panics
/// naming the cases that failed, or a name in `skip` that is no case.
pub async fn run_except(factory: &dyn Factory, skip: &[&str]) {
    let all = cases();
    for name in skip {
        assert!(
            all.iter().any(|case| case.name == *name),
            "no conformance case is named {name:?}"
        );
    }
    let mut failed = Vec::new();
    for case in all.into_iter().filter(|case| !skip.contains(&case.name)) {
        let engine = factory.engine().await;
        if let Err(why) = (case.run)(engine).await {
            failed.push(format!("{}: {why}", case.name));
        }
    }
    assert!(
        failed.is_empty(),
        "{} conformance case(s) failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

/// Fails the case with `why` unless `cond`.
pub(crate) fn ensure(cond: bool, why: impl FnOnce() -> String) -> Outcome {
    if cond { Ok(()) } else { Err(why()) }
}

/// The suite's clock: a fixed instant, whole milliseconds, so engines that store coarser
/// timestamps still compare equal.
pub(crate) const T0: OffsetDateTime = datetime!(2030-01-02 03:04:05.678 UTC);

pub(crate) fn at(secs: u64) -> OffsetDateTime {
    T0 + Duration::from_secs(secs)
}

/// A roomy admission.
pub(crate) const ROOMY: Admission = Admission {
    capacity: 1_000,
    tenant_share: 1_000,
};

/// A queued job of `tenant` created at the suite's fixed start time, with `priority`, a
/// random id, a local asset and callback URLs naming the tenant: the job every case submits,
/// for engine crates' own tests too.
pub fn job(tenant: &str, priority: Priority) -> Job {
    let url = |e: &str| {
        format!("http://callback.example/{tenant}/{e}")
            .parse()
            .expect("a valid URL")
    };
    let mut job = Job::new(
        JobId::random(),
        AssetPath::Local {
            path: format!("images/{tenant}.jpg"),
        },
        NotificationUrls {
            on_start: url("onStart"),
            on_success: url("onSuccess"),
            on_failure: url("onFailure"),
        },
    );
    job.tenant = tenant.to_owned();
    job.priority = priority;
    job.created_at = T0;
    job
}

/// Submits `job` with room to spare; the case fails unless it is new.
pub(crate) async fn submit(engine: &dyn Engine, job: &Job) -> Outcome {
    match engine.submit(job, ROOMY).await {
        Ok(crate::engine::Submitted::New) => Ok(()),
        other => Err(format!("submit {}: expected New, got {other:?}", job.key())),
    }
}

pub(crate) fn worker(name: &str) -> WorkerId {
    WorkerId(name.to_owned())
}

/// A lease request of `worker` for `max` jobs at `now` for 60 s.
pub(crate) fn request(worker: &str, max: usize, now: OffsetDateTime) -> LeaseRequest {
    LeaseRequest {
        worker: self::worker(worker),
        max,
        now,
        until: now + Duration::from_secs(60),
        tenant_in_flight: None,
    }
}

pub(crate) async fn lease(
    engine: &dyn Engine,
    request: &LeaseRequest,
) -> Result<Vec<Leased>, String> {
    engine
        .lease(request)
        .await
        .map_err(|e| format!("lease: {e}"))
}

/// The keys of `leased`, in order.
pub(crate) fn keys(leased: &[Leased]) -> Vec<JobKey> {
    leased.iter().map(|l| l.lease.key.clone()).collect()
}

pub(crate) async fn get(engine: &dyn Engine, key: &JobKey) -> Result<Job, String> {
    match engine.get(key).await {
        Ok(crate::engine::Lookup::Found(job)) => Ok(*job),
        other => Err(format!("get {key}: expected the job, got {other:?}")),
    }
}

pub(crate) async fn finish(engine: &dyn Engine, lease: &Lease) -> Outcome {
    engine
        .finish(lease, &[])
        .await
        .map_err(|e: StoreError| format!("finish {}: {e}", lease.key))
}
