//! An engine in two halves: job records in a shared store ([`JobStore`]: Redis, Postgres) and
//! the work carried by a broker ([`JobQueue`]: RabbitMQ). [`Split`] puts them together as an
//! [`Engine`], keeping the rules that span both here, in core:
//!
//! - **submit**: the job is recorded (queued) first, then published, and answered only once
//!   the broker confirmed it. If the broker does not confirm, the record is removed again
//!   (unless a delivery already started it) and the submission fails cleanly: a client that
//!   got an error finds no job, and a message the broker kept after all is acknowledged
//!   without running when it is delivered (its record is gone). A resubmission finds the
//!   record and publishes nothing.
//! - **lease**: deliveries the broker has handed this process are taken (never more than the
//!   free slots), and marked started in the store in one call; a delivery whose job is gone
//!   or was cancelled meanwhile is acknowledged without running. The broker's delivery count
//!   is the lease's, so core's worker parks a job delivered too often. When the store cannot
//!   be reached, the deliveries go back to the queue's hands untouched (not to the broker,
//!   which would count a delivery each time).
//! - **heartbeat**: a broker holds a delivery while its consumer's connection lives and hands
//!   it to another consumer as soon as it dies, so deliveries need no deadline; the store
//!   notes the worker's liveness for operators, and a lease is reported lost once the queue no
//!   longer holds its delivery (the connection it came on broke: the broker redelivers it).
//! - **finish**: the last updates are recorded, then the delivery acknowledged. A delivery
//!   lost before its acknowledgement is redelivered; its record is final by then, so the
//!   worker that gets it only settles it (its final webhook is sent unless already delivered).
//! - **release** gives the delivery back to the broker at once (a new delivery, counted).
//! - **cancel** changes the record alone; the message is acknowledged when a worker gets it.
//!
//! The store keeps what the API reads (records, the queue's figures, tenants' shares and
//! capacity, tokens, remembered values); the broker only says which job to run next.

use std::sync::Arc;

use time::OffsetDateTime;

use crate::engine::{
    Admission, Bucket, Cancel, Engine, Lease, LeaseRequest, Leased, ListQuery, Lookup, QueueStats,
    Retention, StoreError, Submitted, Token, WorkerId,
};
use crate::job::{Job, JobKey, JobUpdate, Priority};
use crate::notify::BoxFuture;

/// The record-keeping half of a split engine: an engine's records without its queue. The
/// store counts the jobs recorded `queued` (not started yet) for the admission bounds and the
/// queue's figures; which job runs next is the [`JobQueue`]'s business.
pub trait JobStore: Send + Sync {
    /// Records `job` as queued, unless its key exists ([`Submitted::Existing`], answered
    /// even when full); fails with [`StoreError::Full`] when its tenant has
    /// `admission.tenant_share` jobs queued, or all tenants `admission.capacity`.
    fn insert<'a>(
        &'a self,
        job: &'a Job,
        admission: Admission,
    ) -> BoxFuture<'a, Result<Submitted, StoreError>>;

    /// Forgets a job recorded by `insert` whose publication failed, as if it had never been
    /// submitted, if it is still queued (a delivery that started it meanwhile wins: the job
    /// is kept and runs).
    fn remove<'a>(&'a self, key: &'a JobKey) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Marks each job of `keys` started for a delivery to `worker` at `now`, in one step: a
    /// queued job becomes `started` (its `startedAt` kept from the first delivery) and counts
    /// in flight until [`apply`](JobStore::apply) finishes it; a started or finished job is
    /// returned as it is. `None` for a job that no longer exists or was cancelled (nothing is
    /// changed then). The answers are in the order of `keys`.
    fn start<'a>(
        &'a self,
        keys: &'a [JobKey],
        worker: &'a WorkerId,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Vec<Option<Job>>, StoreError>>;

    /// Applies `updates` in order, in one step; `finished` says the job's delivery ends: it
    /// no longer counts in flight and goes under retention. A job that no longer exists takes
    /// nothing (not an error).
    fn apply<'a>(
        &'a self,
        key: &'a JobKey,
        updates: &'a [JobUpdate],
        finished: bool,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// As [`Engine::get`].
    fn get<'a>(&'a self, key: &'a JobKey) -> BoxFuture<'a, Result<Lookup, StoreError>>;

    /// As [`Engine::list`].
    fn list<'a>(&'a self, query: &'a ListQuery) -> BoxFuture<'a, Result<Vec<Job>, StoreError>>;

    /// As [`Engine::cancel`], on the record alone: a queued job becomes `cancelled`.
    fn cancel<'a>(
        &'a self,
        key: &'a JobKey,
        at: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Cancel, StoreError>>;

    /// Notes that `worker` was alive at `now` holding `held` jobs, saying `status` of itself
    /// (as [`Engine::heartbeat`] does, without leases).
    fn worker_seen<'a>(
        &'a self,
        worker: &'a WorkerId,
        held: u64,
        now: OffsetDateTime,
        status: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// As [`Engine::purge`].
    fn purge<'a>(
        &'a self,
        retention: &'a Retention,
        now: OffsetDateTime,
        budget: u64,
    ) -> BoxFuture<'a, Result<u64, StoreError>>;

    /// The queue's figures as the records show them: jobs queued (waiting) and started, not
    /// finished (in flight), per tenant; the workers heard from.
    fn stats(&self) -> BoxFuture<'_, Result<QueueStats, StoreError>>;

    /// As [`Engine::take_token`].
    fn take_token<'a>(
        &'a self,
        name: &'a str,
        bucket: Bucket,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Token, StoreError>>;

    /// As [`Engine::remember`].
    fn remember<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        expires: OffsetDateTime,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>>;

    /// As [`Engine::check`].
    fn check(&self) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Whether other processes can share this store.
    fn is_shared(&self) -> bool;
}

/// One job handed out by a [`JobQueue`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivery {
    /// The job.
    pub key: JobKey,
    /// How many times the broker has handed it out, this time included (past the queue's
    /// delivery limit for a job the broker gave up on: core's worker then parks it).
    pub deliveries: u32,
    /// The queue's handle for acknowledging it (opaque to core).
    pub receipt: String,
}

impl Delivery {
    /// A delivery of `key`, the `deliveries`-th, acknowledged by `receipt`.
    pub fn new(key: JobKey, deliveries: u32, receipt: impl Into<String>) -> Delivery {
        Delivery {
            key,
            deliveries,
            receipt: receipt.into(),
        }
    }

    /// The delivery a lease was made of.
    pub fn of(lease: &Lease) -> Delivery {
        Delivery::new(lease.key.clone(), lease.deliveries, lease.receipt.clone())
    }
}

/// The work-carrying half of a split engine: a broker's queues, as one process sees them.
///
/// Deliveries are pushed to the process ahead of [`take`](JobQueue::take) (a consumer's
/// prefetch) and held by it until acknowledged or given back; the broker hands a delivery to
/// another consumer once the connection it came on is gone.
pub trait JobQueue: Send + Sync {
    /// Publishes `key` at `priority`, answering once the broker holds it durably (a publisher
    /// confirm); an error otherwise, within a bounded time.
    fn publish<'a>(
        &'a self,
        key: &'a JobKey,
        priority: Priority,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Up to `max` of the deliveries this process holds (none: nothing is there yet; never
    /// waits for the broker), skipping tenants with `tenant_in_flight` deliveries taken and
    /// not yet acknowledged or given back in this process.
    fn take(
        &self,
        max: usize,
        tenant_in_flight: Option<u64>,
    ) -> BoxFuture<'_, Result<Vec<Delivery>, StoreError>>;

    /// Puts deliveries just taken back among those held, as if never taken (the store could
    /// not start them): the broker is not told, and counts no delivery.
    fn untake(&self, deliveries: Vec<Delivery>);

    /// Acknowledges a delivery: the broker forgets the message. A delivery the queue no
    /// longer holds (its connection broke) is not an error: the broker hands it out again.
    fn ack<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Gives a delivery back: the broker hands it out again, as a new delivery. A delivery
    /// the queue no longer holds is back with the broker already (not an error).
    fn requeue<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Whether this process still holds `delivery` (false once the connection it came on
    /// broke, or once it was acknowledged or given back).
    fn holds(&self, delivery: &Delivery) -> bool;

    /// Resolves when deliveries may be there to take (or after a while, at most a few
    /// seconds); spurious wake-ups allowed. The first call makes the process a consumer: a
    /// process that never takes (an API) never gets deliveries.
    fn work_available(&self) -> BoxFuture<'_, ()>;

    /// Whether the broker answers; the reason when it does not.
    fn check(&self) -> BoxFuture<'_, Result<(), StoreError>>;
}

impl<Q: JobQueue + ?Sized> JobQueue for Arc<Q> {
    fn publish<'a>(
        &'a self,
        key: &'a JobKey,
        priority: Priority,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        (**self).publish(key, priority)
    }
    fn take(
        &self,
        max: usize,
        tenant_in_flight: Option<u64>,
    ) -> BoxFuture<'_, Result<Vec<Delivery>, StoreError>> {
        (**self).take(max, tenant_in_flight)
    }
    fn untake(&self, deliveries: Vec<Delivery>) {
        (**self).untake(deliveries)
    }
    fn ack<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, Result<(), StoreError>> {
        (**self).ack(delivery)
    }
    fn requeue<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, Result<(), StoreError>> {
        (**self).requeue(delivery)
    }
    fn holds(&self, delivery: &Delivery) -> bool {
        (**self).holds(delivery)
    }
    fn work_available(&self) -> BoxFuture<'_, ()> {
        (**self).work_available()
    }
    fn check(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        (**self).check()
    }
}

/// A store and a queue as one [`Engine`] (see the [module docs](self)).
pub struct Split<S, Q> {
    store: S,
    queue: Q,
}

impl<S: std::fmt::Debug, Q: std::fmt::Debug> std::fmt::Debug for Split<S, Q> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Split")
            .field("store", &self.store)
            .field("queue", &self.queue)
            .finish()
    }
}

impl<S: JobStore, Q: JobQueue> Split<S, Q> {
    /// Records in `store`, work through `queue`.
    pub fn new(store: S, queue: Q) -> Split<S, Q> {
        Split { store, queue }
    }

    /// The store half.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The queue half.
    pub fn queue(&self) -> &Q {
        &self.queue
    }

    async fn submit_job(&self, job: &Job, admission: Admission) -> Result<Submitted, StoreError> {
        match self.store.insert(job, admission).await? {
            Submitted::New => {}
            existing => return Ok(existing),
        }
        let key = job.key();
        if let Err(e) = self.queue.publish(&key, job.priority).await {
            // Nothing half done: no job is visible without its message. Should the broker
            // have kept the message after all, its delivery finds no record and is dropped.
            if let Err(removal) = self.store.remove(&key).await {
                tracing::warn!(job = %key, error = %removal, "an unpublished job could not be removed");
            }
            return Err(e);
        }
        Ok(Submitted::New)
    }

    async fn lease_jobs(&self, request: &LeaseRequest) -> Result<Vec<Leased>, StoreError> {
        let deliveries = self
            .queue
            .take(request.max.max(1), request.tenant_in_flight)
            .await?;
        if deliveries.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<JobKey> = deliveries.iter().map(|d| d.key.clone()).collect();
        let started = match self.store.start(&keys, &request.worker, request.now).await {
            Ok(started) if started.len() == deliveries.len() => started,
            Ok(other) => {
                self.queue.untake(deliveries);
                return Err(StoreError::Unavailable(format!(
                    "the store started {} of {} jobs",
                    other.len(),
                    keys.len()
                )));
            }
            Err(e) => {
                // Held again, uncounted: the worker backs off and takes them later.
                self.queue.untake(deliveries);
                return Err(e);
            }
        };
        let mut leased = Vec::with_capacity(deliveries.len());
        for (delivery, job) in deliveries.into_iter().zip(started) {
            match job {
                Some(job) => {
                    let mut lease = Lease::new(
                        delivery.key.clone(),
                        request.worker.clone(),
                        delivery.deliveries,
                    );
                    lease.receipt = delivery.receipt;
                    leased.push(Leased::new(lease, job));
                }
                // Gone or cancelled: nothing is owed. Should the acknowledgement fail, the
                // next delivery is dropped the same way.
                None => {
                    if let Err(e) = self.queue.ack(&delivery).await {
                        tracing::debug!(job = %delivery.key, error = %e, "could not drop the delivery of a gone job");
                    }
                }
            }
        }
        Ok(leased)
    }

    async fn finish_job(&self, lease: &Lease, updates: &[JobUpdate]) -> Result<(), StoreError> {
        self.store.apply(&lease.key, updates, true).await?;
        self.queue.ack(&Delivery::of(lease)).await
    }

    async fn heartbeat_leases(
        &self,
        worker: &WorkerId,
        leases: &[Lease],
        now: OffsetDateTime,
        status: &str,
    ) -> Result<Vec<Lease>, StoreError> {
        let lost: Vec<Lease> = leases
            .iter()
            .filter(|lease| !self.queue.holds(&Delivery::of(lease)))
            .cloned()
            .collect();
        let held = (leases.len() - lost.len()) as u64;
        self.store.worker_seen(worker, held, now, status).await?;
        Ok(lost)
    }
}

impl<S: JobStore, Q: JobQueue> Engine for Split<S, Q> {
    fn submit<'a>(
        &'a self,
        job: &'a Job,
        admission: Admission,
    ) -> BoxFuture<'a, Result<Submitted, StoreError>> {
        Box::pin(self.submit_job(job, admission))
    }

    fn get<'a>(&'a self, key: &'a JobKey) -> BoxFuture<'a, Result<Lookup, StoreError>> {
        self.store.get(key)
    }

    fn list<'a>(&'a self, query: &'a ListQuery) -> BoxFuture<'a, Result<Vec<Job>, StoreError>> {
        self.store.list(query)
    }

    fn cancel<'a>(
        &'a self,
        key: &'a JobKey,
        at: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Cancel, StoreError>> {
        self.store.cancel(key, at)
    }

    /// Takes the deliveries this process holds (see the [module docs](self)): `request.until`
    /// is not used (a delivery is held while its connection lives), `tenant_in_flight`
    /// counts this process's deliveries.
    fn lease<'a>(
        &'a self,
        request: &'a LeaseRequest,
    ) -> BoxFuture<'a, Result<Vec<Leased>, StoreError>> {
        Box::pin(self.lease_jobs(request))
    }

    /// Notes the worker alive in the store; returns the leases whose delivery the queue no
    /// longer holds (`until` is not used).
    fn heartbeat<'a>(
        &'a self,
        worker: &'a WorkerId,
        leases: &'a [Lease],
        now: OffsetDateTime,
        _until: OffsetDateTime,
        status: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Lease>, StoreError>> {
        Box::pin(self.heartbeat_leases(worker, leases, now, status))
    }

    fn record<'a>(
        &'a self,
        lease: &'a Lease,
        updates: &'a [JobUpdate],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        if updates.is_empty() {
            return Box::pin(std::future::ready(Ok(())));
        }
        self.store.apply(&lease.key, updates, false)
    }

    fn finish<'a>(
        &'a self,
        lease: &'a Lease,
        updates: &'a [JobUpdate],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.finish_job(lease, updates))
    }

    fn release<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move { self.queue.requeue(&Delivery::of(lease)).await })
    }

    fn work_available(&self) -> BoxFuture<'_, ()> {
        self.queue.work_available()
    }

    fn purge<'a>(
        &'a self,
        retention: &'a Retention,
        now: OffsetDateTime,
        budget: u64,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        self.store.purge(retention, now, budget)
    }

    fn stats(&self) -> BoxFuture<'_, Result<QueueStats, StoreError>> {
        self.store.stats()
    }

    fn take_token<'a>(
        &'a self,
        name: &'a str,
        bucket: Bucket,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Token, StoreError>> {
        self.store.take_token(name, bucket, now)
    }

    fn remember<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        expires: OffsetDateTime,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        self.store.remember(key, value, expires, now)
    }

    fn check(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.store.check().await?;
            self.queue.check().await
        })
    }

    /// `true`: a job is recorded in the store and confirmed by the broker before `submit`
    /// answers.
    fn is_durable(&self) -> bool {
        true
    }

    fn is_shared(&self) -> bool {
        self.store.is_shared()
    }
}
