//! The values engine calls take and return: errors, admission bounds, answers, list queries,
//! leases, retention, queue figures, token buckets.

use std::fmt;
use std::time::Duration;

use time::OffsetDateTime;

#[cfg(doc)]
use crate::engine::Engine;
use crate::job::{Job, JobId, JobKey, JobState};

/// Why an engine operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The engine cannot be reached or cannot write now (down, disk full, read-only); the
    /// caller may retry (the API answers 503 with `Retry-After`).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The queue is at capacity, overall or for this tenant (the API answers 503).
    #[error("queue full ({0})")]
    Full(Full),
    /// The engine was closed for shutdown.
    #[error("engine closed")]
    Closed,
    /// A record the engine holds cannot be read back (a bug or a foreign writer); the job is
    /// named so an operator can look at it.
    #[error("corrupt record {key}: {reason}")]
    Corrupt {
        /// The job whose record is unreadable.
        key: String,
        /// Why.
        reason: String,
    },
}

/// Which bound a submission hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The whole queue holds its capacity.
    Queue,
    /// The tenant holds its queue share.
    Tenant,
}

impl fmt::Display for Full {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Full::Queue => "the queue is at capacity",
            Full::Tenant => "the tenant's queue share is used",
        })
    }
}

/// The bounds a submission is admitted under (per call: a tenant's share may come from the
/// tenants file, which can change at run time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// Jobs waiting at most, all tenants.
    pub capacity: u64,
    /// Jobs waiting at most for the submitting tenant.
    pub tenant_share: u64,
}

impl Admission {
    /// `capacity` overall and `tenant_share` for the tenant (each at least 1, the share at
    /// most the capacity).
    pub fn new(capacity: u64, tenant_share: u64) -> Admission {
        let capacity = capacity.max(1);
        Admission {
            capacity,
            tenant_share: tenant_share.clamp(1, capacity),
        }
    }
}

/// What [`Engine::submit`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Submitted {
    /// The job is recorded and queued.
    New,
    /// A job with this key exists (an idempotent resubmission): here it is, untouched;
    /// nothing was queued.
    Existing(Box<Job>),
}

/// What [`Engine::get`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Lookup {
    /// The job.
    Found(Box<Job>),
    /// The job existed and was forgotten after its retention time (`410 Gone`).
    Expired,
    /// No such job, or a tombstone too old to keep (`404`).
    Unknown,
}

/// What [`Engine::cancel`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cancel {
    /// The job was queued and is now cancelled (removed from the queue; no webhook will be
    /// sent): here it is.
    Cancelled(Box<Job>),
    /// The job is not queued (started, finished or already cancelled): here it is, unchanged.
    NotQueued(Box<Job>),
    /// The job existed and expired.
    Expired,
    /// No such job.
    Unknown,
}

/// Which jobs [`Engine::list`] returns: newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListQuery {
    /// Only this tenant's jobs (`None`: every tenant's, for operators).
    pub tenant: Option<String>,
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs submitted before this one (the cursor of the previous page). An unknown
    /// cursor, or one of another tenant than `tenant`, gives an empty page.
    pub before: Option<JobKey>,
    /// At most this many.
    pub limit: usize,
}

impl ListQuery {
    /// The first page of at most `limit` of `tenant`'s jobs.
    pub fn tenant(tenant: impl Into<String>, limit: usize) -> ListQuery {
        ListQuery {
            tenant: Some(tenant.into()),
            state: None,
            before: None,
            limit,
        }
    }

    /// The first page of at most `limit` jobs of every tenant.
    pub fn all(limit: usize) -> ListQuery {
        ListQuery {
            tenant: None,
            state: None,
            before: None,
            limit,
        }
    }
}

/// A worker's name: unique among the live workers of a deployment (`<host>-<pid>-<random>`
/// by default).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerId(pub String);

impl WorkerId {
    /// A fresh name for this process.
    pub fn generate() -> WorkerId {
        let random = JobId::random().0.simple().to_string();
        WorkerId(format!("{}-{}", std::process::id(), &random[..12]))
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a worker asks [`Engine::lease`] for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaseRequest {
    /// Who takes the jobs.
    pub worker: WorkerId,
    /// At most this many (the worker's free job slots); at least 1.
    pub max: usize,
    /// The caller's clock: leases with a deadline at or before it are expired.
    pub now: OffsetDateTime,
    /// The deadline of the new leases (`now + lease_idle`), pushed back by heartbeats.
    pub until: OffsetDateTime,
    /// A tenant with this many jobs in flight (leased, not finished, all workers) gets no
    /// more until one finishes (`None`: no cap).
    pub tenant_in_flight: Option<u64>,
}

impl LeaseRequest {
    /// A request of `worker` for up to `max` jobs at `now`, leased until `until`, with no
    /// per-tenant cap (set [`tenant_in_flight`](LeaseRequest::tenant_in_flight) for one).
    pub fn new(
        worker: WorkerId,
        max: usize,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> LeaseRequest {
        LeaseRequest {
            worker,
            max,
            now,
            until,
            tenant_in_flight: None,
        }
    }
}

/// A job handed to a worker: who holds it, and how often it was handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Lease {
    /// The job.
    pub key: JobKey,
    /// The worker holding it.
    pub worker: WorkerId,
    /// How many times the job has been handed out, this time included (1 the first time).
    pub deliveries: u32,
    /// The engine's own handle for this delivery (a broker's delivery tag, …), opaque to
    /// core; empty when the engine needs none.
    pub receipt: String,
}

impl Lease {
    /// A lease on `key` for `worker`, its `deliveries`-th delivery.
    pub fn new(key: JobKey, worker: WorkerId, deliveries: u32) -> Lease {
        Lease {
            key,
            worker,
            deliveries,
            receipt: String::new(),
        }
    }
}

/// A lease with the job's record as it stood when taken (already marked started).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Leased {
    /// The lease.
    pub lease: Lease,
    /// The job.
    pub job: Job,
}

impl Leased {
    /// `job` leased as `lease`.
    pub fn new(lease: Lease, job: Job) -> Leased {
        Leased { lease, job }
    }
}

/// How long and how many finished jobs an engine keeps, and their tombstones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Retention {
    /// A finished (or cancelled) job is forgotten this long after it finished.
    pub max_age: Duration,
    /// At most this many jobs per tenant; past it that tenant's oldest finished jobs go
    /// first (one tenant never evicts another's).
    pub max_jobs_per_tenant: u64,
    /// How long an expired job is remembered as expired (`410`), after which it is unknown
    /// (`404`).
    pub tombstone_age: Duration,
    /// At most this many tombstones; past it the oldest go first.
    pub max_tombstones: u64,
}

impl Default for Retention {
    /// One hour and 100,000 jobs per tenant; tombstones for a day, 1,000,000 at most.
    fn default() -> Self {
        Retention {
            max_age: Duration::from_secs(3600),
            max_jobs_per_tenant: 100_000,
            tombstone_age: Duration::from_secs(86_400),
            max_tombstones: 1_000_000,
        }
    }
}

impl Retention {
    /// Finished jobs kept `max_age`, at most `max_jobs_per_tenant` per tenant; tombstones as
    /// the default.
    pub fn new(max_age: Duration, max_jobs_per_tenant: u64) -> Retention {
        Retention {
            max_age,
            max_jobs_per_tenant: max_jobs_per_tenant.max(1),
            ..Retention::default()
        }
    }
}

/// A worker as the engine last heard of it (its heartbeats).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerSeen {
    /// The worker.
    pub worker: WorkerId,
    /// Its last heartbeat.
    pub at: OffsetDateTime,
    /// Jobs it held then.
    pub held: u64,
    /// What the worker said of itself then (opaque to the engine: what core's worker reports
    /// of its recent activity, as JSON).
    pub status: String,
}

impl WorkerSeen {
    /// `worker`, last heard from at `at` holding `held` jobs, saying `status` of itself (an
    /// engine outside core builds [`QueueStats::workers`] with it).
    pub fn new(
        worker: WorkerId,
        at: OffsetDateTime,
        held: u64,
        status: impl Into<String>,
    ) -> WorkerSeen {
        WorkerSeen {
            worker,
            at,
            held,
            status: status.into(),
        }
    }
}

/// What [`Engine::take_token`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// A token was taken: go ahead.
    Granted,
    /// The bucket is empty: the next token comes after this long.
    Wait(Duration),
}

/// A token bucket: `rate` tokens a second, holding at most `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Tokens added per second.
    pub rate: f64,
    /// The most tokens held (a full bucket allows this many requests at once).
    pub burst: u32,
}

/// The queue's figures, for metrics, readiness and the dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueStats {
    /// Jobs waiting, all tenants.
    pub waiting: u64,
    /// Jobs leased and not finished, all tenants.
    pub in_flight: u64,
    /// Per tenant with jobs waiting or in flight: (tenant, waiting, in flight), by tenant.
    pub tenants: Vec<(String, u64, u64)>,
    /// Workers heard from within the last [`WORKER_SEEN_FOR`], by name.
    pub workers: Vec<WorkerSeen>,
}

/// How long [`QueueStats::workers`] remembers a worker after its last heartbeat.
pub const WORKER_SEEN_FOR: Duration = Duration::from_secs(600);
