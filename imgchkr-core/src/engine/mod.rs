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
//!   times it has been handed out ([`Lease::deliveries`]).
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
//! A broker can carry the work while a shared store keeps the records: [`split`] makes an
//! [`Engine`] of a [`split::JobStore`] and a [`split::JobQueue`], with the rules spanning both
//! in core. [`sharded`] makes one [`Engine`] of several (N standalone servers), each tenant
//! on one of them.
//!
//! [`submit`]: Engine::submit
//! [`lease`]: Engine::lease
//! [`record`]: Engine::record
//! [`finish`]: Engine::finish

pub mod memory;
mod model;
pub mod sharded;
pub mod split;

pub use model::*;

use time::OffsetDateTime;

use crate::job::{Job, JobKey, JobUpdate};
use crate::notify::BoxFuture;

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
