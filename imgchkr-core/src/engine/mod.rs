//! The seam every job engine implements: where jobs are recorded, how they wait, and how
//! workers lease them. One [`Engine`] trait, driven by the one worker loop
//! ([`crate::worker`]) and the submission path ([`crate::admission`]).
//!
//! # What is core's and what is the engine's
//!
//! The rules live in core: when a lease expires (`now + lease_idle`, chosen by the worker),
//! when a job has been delivered too often and is parked ([`crate::worker`]), what the
//! idempotency answer is ([`crate::admission`]), which updates are folded into one write
//! ([`crate::recorder`]). An engine only stores, atomically:
//!
//! - **records**: one [`Job`] per [`JobKey`] (ids are scoped per tenant), updated by
//!   [`JobUpdate`]s in order; a finished job kept for the retention time, then a tombstone so
//!   that a `GET` answers [`Lookup::Expired`] (410) rather than [`Lookup::Unknown`] (404);
//! - **the queue**: per tenant, waiting jobs ordered by [`Priority`](crate::Priority) then
//!   submission order; tenants served least-recently-served first (round-robin);
//! - **leases**: for each job handed out, the worker holding it, until when, and how many
//!   times it has been handed out ([`Leased::deliveries`]).
//!
//! Time always comes from the caller (`now`, `until`): engines never read a clock, so every
//! process of a deployment agrees and the conformance suite is deterministic.
//!
//! # Round trips
//!
//! The interface is shaped so an engine can serve a job in five round trips: [`submit`]
//! (record and enqueue in one step), [`lease`] (a batch up to the worker's free slots, with
//! the records, marking them started), two [`record`] calls (the runner's updates folded by
//! [`crate::recorder`]), and [`finish`] (the last updates and the acknowledgement in one
//! step). Heartbeats cover every lease a worker holds in one call.
//!
//! # Guarantees every engine keeps
//!
//! Checked by the conformance suite (`testkit` feature): FIFO within a tenant and priority;
//! round-robin across tenants; idempotent submit; at-least-once with takeover after lease
//! expiry; cancel of a queued job only; tenant scoping of get/list/cancel; retention and
//! expiry with tombstones; queue capacity and per-tenant shares; per-tenant in-flight caps.
//!
//! [`submit`]: Engine::submit
//! [`lease`]: Engine::lease
//! [`record`]: Engine::record
//! [`finish`]: Engine::finish

pub mod memory;

use std::fmt;
use std::time::Duration;

use time::OffsetDateTime;

use crate::job::{Job, JobId, JobKey, JobState, JobUpdate};
use crate::notify::BoxFuture;

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
    /// per-tenant cap (for callers outside core: engine crates' tests and benchmarks).
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
    /// What the worker said of itself then (opaque to the engine: core's
    /// [`Activity`](crate::worker::Activity) as JSON).
    pub status: String,
}

impl WorkerSeen {
    /// `worker`, heard from at `at` holding `held` leases and saying `status` of itself (for
    /// engines outside core, which cannot name the fields of this non-exhaustive struct).
    pub fn new(worker: WorkerId, at: OffsetDateTime, held: u64, status: impl Into<String>) -> Self {
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

/// Where jobs are recorded and queued. See the [module docs](self) for the division of
/// labour with core and the guarantees.
///
/// Every method is one atomic step of the engine (a transaction, a script, a lock held) and
/// returns [`StoreError::Unavailable`] within a bounded time when the engine cannot be
/// reached: never a hang, never a panic.
pub trait Engine: Send + Sync {
    /// Records `job` (state `queued`) and enqueues it for its tenant, in one step: both or
    /// neither. An existing job with the same key is returned untouched
    /// ([`Submitted::Existing`]) even when the queue is full; otherwise a full queue or share
    /// fails with [`StoreError::Full`] and records nothing. Durable engines answer only once
    /// the job is durable.
    fn submit<'a>(
        &'a self,
        job: &'a Job,
        admission: Admission,
    ) -> BoxFuture<'a, Result<Submitted, StoreError>>;

    /// The job, its tombstone, or nothing.
    fn get<'a>(&'a self, key: &'a JobKey) -> BoxFuture<'a, Result<Lookup, StoreError>>;

    /// A page of jobs, newest first (see [`ListQuery`]).
    fn list<'a>(&'a self, query: &'a ListQuery) -> BoxFuture<'a, Result<Vec<Job>, StoreError>>;

    /// Cancels a queued job: it leaves the queue, its state becomes `cancelled` and its
    /// `finishedAt` is `at`. A job in any other state is left as it is.
    fn cancel<'a>(
        &'a self,
        key: &'a JobKey,
        at: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Cancel, StoreError>>;

    /// Hands out up to `request.max` jobs (none when nothing is due; never waits): first jobs
    /// whose lease expired (taken over, their delivery count incremented), then waiting jobs,
    /// round-robin across tenants (the least recently served first; FIFO within a priority,
    /// higher priorities first), skipping tenants at `request.tenant_in_flight`. Each job
    /// handed out is marked `started` (its `startedAt` kept from the first delivery), leased
    /// to `request.worker` until `request.until`, and returned with its record.
    fn lease<'a>(
        &'a self,
        request: &'a LeaseRequest,
    ) -> BoxFuture<'a, Result<Vec<Leased>, StoreError>>;

    /// Pushes the deadline of each of `leases` still held by `worker` to `until`, and notes
    /// that `worker` was alive at `now` holding them, saying `status` of itself
    /// ([`QueueStats::workers`] shows it for [`WORKER_SEEN_FOR`]). Returns the leases no
    /// longer held (taken over by another worker after expiring, or finished).
    fn heartbeat<'a>(
        &'a self,
        worker: &'a WorkerId,
        leases: &'a [Lease],
        now: OffsetDateTime,
        until: OffsetDateTime,
        status: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Lease>, StoreError>>;

    /// Applies `updates` to the job of `lease`, in order, in one step. A job that no longer
    /// exists takes nothing (not an error).
    fn record<'a>(
        &'a self,
        lease: &'a Lease,
        updates: &'a [JobUpdate],
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Applies `updates` (the job's last ones) and ends the lease, in one step: the job
    /// leaves the queue for good. Finishing a lease another worker has taken over since
    /// still applies the updates and ends the job's lease.
    fn finish<'a>(
        &'a self,
        lease: &'a Lease,
        updates: &'a [JobUpdate],
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Gives a lease up without finishing it: the job's lease expires now, so the next
    /// [`lease`](Engine::lease) of any worker takes it over (as a new delivery).
    fn release<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Resolves when jobs may have been queued since the last [`lease`](Engine::lease) of
    /// this engine handle (or after an engine-chosen while, at most a few seconds): the
    /// worker loop's wake-up. Spurious wake-ups are allowed.
    fn work_available(&self) -> BoxFuture<'_, ()>;

    /// Forgets jobs past `retention` as of `now`, leaving tombstones, and drops tombstones
    /// past theirs; at most `budget` jobs per call. Returns how many jobs it expired.
    fn purge<'a>(
        &'a self,
        retention: &'a Retention,
        now: OffsetDateTime,
        budget: u64,
    ) -> BoxFuture<'a, Result<u64, StoreError>>;

    /// The queue's figures now.
    fn stats(&self) -> BoxFuture<'_, Result<QueueStats, StoreError>>;

    /// Takes a token from the bucket named `name` (created full), shared by every process of
    /// the deployment: rate limits that hold across API processes. Tokens accrue with the
    /// caller's clock `now`; a clock that goes back adds none.
    fn take_token<'a>(
        &'a self,
        name: &'a str,
        bucket: Bucket,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Token, StoreError>>;

    /// Remembers `value` under `key` until `expires` (as of `now`), unless a live value is
    /// there already: then returns it and changes nothing (`None`: stored). Shared by every
    /// process: the replay window of signed requests, and deployment-wide secrets. Expired
    /// entries are dropped by [`purge`](Engine::purge) or on the way.
    fn remember<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        expires: OffsetDateTime,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>>;

    /// Whether the engine answers and can write (readiness); the reason when it cannot.
    fn check(&self) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Whether an accepted job survives this process's crash (`false` for `memory:`): a
    /// durable engine leaves queued jobs for the next start at shutdown, a volatile one runs
    /// them while draining.
    fn is_durable(&self) -> bool;

    /// Whether other processes can share this engine (`api` and `worker` roles need it).
    fn is_shared(&self) -> bool;
}

impl<E: Engine + ?Sized> Engine for std::sync::Arc<E> {
    fn submit<'a>(
        &'a self,
        job: &'a Job,
        admission: Admission,
    ) -> BoxFuture<'a, Result<Submitted, StoreError>> {
        (**self).submit(job, admission)
    }
    fn get<'a>(&'a self, key: &'a JobKey) -> BoxFuture<'a, Result<Lookup, StoreError>> {
        (**self).get(key)
    }
    fn list<'a>(&'a self, query: &'a ListQuery) -> BoxFuture<'a, Result<Vec<Job>, StoreError>> {
        (**self).list(query)
    }
    fn cancel<'a>(
        &'a self,
        key: &'a JobKey,
        at: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Cancel, StoreError>> {
        (**self).cancel(key, at)
    }
    fn lease<'a>(
        &'a self,
        request: &'a LeaseRequest,
    ) -> BoxFuture<'a, Result<Vec<Leased>, StoreError>> {
        (**self).lease(request)
    }
    fn heartbeat<'a>(
        &'a self,
        worker: &'a WorkerId,
        leases: &'a [Lease],
        now: OffsetDateTime,
        until: OffsetDateTime,
        status: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Lease>, StoreError>> {
        (**self).heartbeat(worker, leases, now, until, status)
    }
    fn record<'a>(
        &'a self,
        lease: &'a Lease,
        updates: &'a [JobUpdate],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        (**self).record(lease, updates)
    }
    fn finish<'a>(
        &'a self,
        lease: &'a Lease,
        updates: &'a [JobUpdate],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        (**self).finish(lease, updates)
    }
    fn release<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<(), StoreError>> {
        (**self).release(lease)
    }
    fn work_available(&self) -> BoxFuture<'_, ()> {
        (**self).work_available()
    }
    fn purge<'a>(
        &'a self,
        retention: &'a Retention,
        now: OffsetDateTime,
        budget: u64,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        (**self).purge(retention, now, budget)
    }
    fn stats(&self) -> BoxFuture<'_, Result<QueueStats, StoreError>> {
        (**self).stats()
    }
    fn take_token<'a>(
        &'a self,
        name: &'a str,
        bucket: Bucket,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Token, StoreError>> {
        (**self).take_token(name, bucket, now)
    }
    fn remember<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        expires: OffsetDateTime,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        (**self).remember(key, value, expires, now)
    }
    fn check(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        (**self).check()
    }
    fn is_durable(&self) -> bool {
        (**self).is_durable()
    }
    fn is_shared(&self) -> bool {
        (**self).is_shared()
    }
}
