//! [`RedisQueue`]: one stream per tenant, one consumer group, round-robin hand-out, acks late.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use ::redis::aio::ConnectionManager;
use imgchkr_core::job::IMAGE_ERRORS_KEY;
use imgchkr_core::notify::BoxFuture;
use imgchkr_core::store::{Inserted, Lease};
use imgchkr_core::{
    ErrorMap, Job, JobId, JobQueue, JobState, JobStore, JobUpdate, Notifier, StoreError,
};
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::keys::GROUP;
use super::store::{RedisStore, assemble, fields};
use super::{
    MONITOR_EVERY, PARKED, PENDING_JOBS, RECLAIMED, REDIS_UP, Shared, abandoned_text, bounded,
};
use crate::metrics::QUEUE_DEPTH;

/// `Retry-After` hint, in seconds, when the queue is full.
pub const RETRY_AFTER_SECS: u32 = 1;

/// Wake-up tokens kept at most (one per push; idle workers take one each).
const BELL_CAP: usize = 64;

/// How many PEL steps (of 10 entries each) one reclaim scan takes per tenant stream.
const RECLAIM_SCAN_STEPS: usize = 100;

/// Unreadable entries one `pop` gets rid of before it goes on waiting.
const MAX_SKIPS: usize = 64;

/// One entry as the pop script returns it: tenant, entry id, job id, job HGETALL.
type PoppedEntry = (String, String, String, Vec<String>);

/// Submissions remembered between their insert and push, at most.
const SUBMITTED_CAP: usize = 100_000;

/// The most entries one `pop_batch` takes.
pub const MAX_BATCH: usize = 64;

/// A lease handed out by [`RedisQueue::pop_batch`], with the job record read with it.
#[derive(Debug)]
#[non_exhaustive]
pub struct Leased {
    /// The lease.
    pub lease: Lease,
    /// The job as it was when the lease was taken.
    pub record: Record,
}

/// The job record read with a lease.
#[derive(Debug)]
#[non_exhaustive]
pub enum Record {
    /// Not read (a reclaimed entry, or an unreadable record): read it from the store.
    Unread,
    /// The job does not exist (removed at submission, or expired): nothing is owed.
    Missing,
    /// The job.
    Found(Box<Job>),
}

/// A [`JobQueue`] on Redis Streams, fair across tenants, at-least-once.
///
/// One per worker process (its consumer name identifies it in the group); `pop` is meant to
/// be called by one dispatcher loop at a time (concurrent calls take turns). While it is
/// alive a background task heartbeats the leases it handed out and has not acknowledged; it
/// stops when the queue is dropped, and those leases are then reclaimed by other workers
/// after [`RedisConfig::reclaim_idle`](super::RedisConfig::reclaim_idle).
pub struct RedisQueue {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueue")
            .field("key_prefix", &self.inner.shared.config.key_prefix)
            .field("consumer", &self.inner.consumer)
            .finish_non_exhaustive()
    }
}

struct Inner {
    shared: Arc<Shared>,
    /// For BLPOP only.
    blocking: ConnectionManager,
    /// Where parked jobs are recorded.
    store: RedisStore,
    consumer: String,
    /// Leases handed out and not yet acknowledged: (tenant, receipt). Entry ids are per
    /// stream, so two tenants' entries can have the same one.
    leases: Mutex<HashSet<(String, String)>>,
    /// Serialises `pop`; holds when the next reclaim scan is due.
    pop: tokio::sync::Mutex<Instant>,
    closed: AtomicBool,
    close: Notify,
    /// Whether Redis answered the last call made (monitor, or a call of this queue).
    up: AtomicBool,
    /// The depth (entries waiting, all tenants) last read.
    depth_seen: AtomicU64,
    /// Whether the last take left nothing waiting (the next `pop` waits for the bell first).
    drained: AtomicBool,
    /// Jobs queued by `Backend::insert` (a submission's insert and push in one script),
    /// whose `Backend::push` is then already done.
    submitted: Mutex<HashSet<JobId>>,
}

impl RedisQueue {
    pub(crate) fn new(
        shared: Arc<Shared>,
        blocking: ConnectionManager,
        store: RedisStore,
    ) -> RedisQueue {
        let consumer = shared.config.consumer.clone().unwrap_or_else(|| {
            let random = JobId::random().0.simple().to_string();
            format!("{}-{}", std::process::id(), &random[..12])
        });
        let inner = Arc::new(Inner {
            shared,
            blocking,
            store,
            consumer,
            leases: Mutex::default(),
            pop: tokio::sync::Mutex::new(Instant::now()),
            closed: AtomicBool::new(false),
            close: Notify::new(),
            up: AtomicBool::new(true),
            depth_seen: AtomicU64::new(0),
            drained: AtomicBool::new(false),
            submitted: Mutex::default(),
        });
        let every = inner.shared.config.heartbeat_period();
        tokio::spawn(heartbeat_loop(Arc::downgrade(&inner), every));
        tokio::spawn(monitor_loop(Arc::downgrade(&inner)));
        RedisQueue { inner }
    }

    /// This worker's consumer name in the group.
    pub fn consumer(&self) -> &str {
        &self.inner.consumer
    }

    /// Leases handed out by this queue and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.inner.leases().len()
    }

    /// Stops `pop` (it returns `None` at once, or within the block time if it is waiting) and
    /// refuses `push` with [`StoreError::Closed`]. Waiting entries stay in Redis for other
    /// workers; leases in flight can still be acknowledged and are still heartbeated.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.inner.close.notify_waiters();
    }

    /// Whether [`close`](RedisQueue::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }

    /// Whether `tenant` could enqueue now: an advisory check (another process may fill the
    /// queue meanwhile; `push` decides), so a full queue usually refuses before any work.
    pub async fn has_room(&self, tenant: &str) -> Result<bool, StoreError> {
        if self.is_closed() {
            return Ok(false);
        }
        let keys = &self.inner.shared.keys;
        let config = &self.inner.shared.config;
        let mut conn = self.inner.shared.conn.clone();
        let read = bounded(
            self.inner.timeout(),
            ::redis::pipe()
                .cmd("GET")
                .arg(keys.depth())
                .cmd("HGET")
                .arg(keys.waiting())
                .arg(tenant)
                .query_async(&mut conn),
        )
        .await;
        let (depth, mine): (Option<u64>, Option<u64>) = self.inner.seen(read)?;
        let depth = depth.unwrap_or(0);
        self.inner.saw_depth(depth);
        let capacity = config.capacity.max(1) as u64;
        let per_tenant = config.per_tenant.clamp(1, config.capacity.max(1)) as u64;
        Ok(depth < capacity && mine.unwrap_or(0) < per_tenant)
    }

    /// Whether Redis answered this process's last check (every [`MONITOR_EVERY`], and
    /// every call the queue makes): readiness.
    pub fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::SeqCst)
    }

    /// Whether the queue was at its overall capacity when last seen (by the monitor every
    /// [`MONITOR_EVERY`], or a submission's check): readiness. Advisory, as
    /// [`has_room`](RedisQueue::has_room).
    pub fn looks_full(&self) -> bool {
        let capacity = self.inner.shared.config.capacity.max(1) as u64;
        self.inner.depth_seen.load(Ordering::SeqCst) >= capacity
    }

    /// Reads the queue's figures into the metrics now (the monitor task does it every
    /// [`MONITOR_EVERY`]); `Err` if Redis does not answer.
    pub async fn refresh(&self) -> Result<(), StoreError> {
        self.inner.refresh().await
    }

    /// Looks for an entry another worker left pending past the idle time and takes it over,
    /// with its delivery count (one delivered too often comes back as poison:
    /// [`is_poison`](RedisQueue::is_poison)). `pop` does this itself every
    /// [`RedisConfig::reclaim_period`](super::RedisConfig::reclaim_period).
    pub async fn reclaim(&self) -> Result<Option<Lease>, StoreError> {
        self.inner.reclaim().await
    }

    /// Refreshes the idle time of this queue's leases now (the background task does it
    /// every [`RedisConfig::heartbeat_period`](super::RedisConfig::heartbeat_period)).
    pub async fn heartbeat(&self) {
        self.inner.heartbeat().await;
    }

    /// Records `job` and queues it for its tenant (`""` without one) in one atomic script:
    /// `insert` then `push` in one round trip. A job with the same id is returned as
    /// `Existing` (nothing queued); a full queue or tenant share fails with
    /// [`StoreError::Full`] and records nothing.
    pub async fn submit(&self, job: Job) -> Result<Inserted, StoreError> {
        self.inner.submit(job).await
    }

    /// Notes that `id` was queued by [`submit`](RedisQueue::submit), for
    /// [`take_submitted`](RedisQueue::take_submitted).
    pub(crate) fn note_submitted(&self, id: JobId) {
        let mut submitted = self
            .inner
            .submitted
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Only submissions abandoned between their insert and push stay: bounded anyway.
        if submitted.len() >= SUBMITTED_CAP {
            submitted.clear();
        }
        submitted.insert(id);
    }

    /// Whether `id` was queued by `submit` (and not asked about since).
    pub(crate) fn take_submitted(&self, id: JobId) -> bool {
        self.inner
            .submitted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id)
    }

    /// Waits for up to `most` leases (at least one; none once closed): like `pop`, in one
    /// round trip for all of them, each with its job record as read when it was taken.
    pub async fn pop_batch(&self, most: usize) -> Result<Vec<Leased>, StoreError> {
        self.inner.pop_batch(most).await
    }

    /// Acknowledges `lease` (as `ack`) after recording `updates` (the job's last ones, as a
    /// [`JobSession`](super::JobSession) held them back), in one atomic script: either both
    /// happen or neither.
    pub async fn finish(&self, lease: &Lease, updates: &[JobUpdate]) -> Result<(), StoreError> {
        self.inner.finish_with(lease, updates, false).await
    }

    /// Stops heartbeating `lease` without acknowledging it (its job could not be recorded):
    /// after [`RedisConfig::reclaim_idle`](super::RedisConfig::reclaim_idle) a worker,
    /// maybe this one, takes it over as a new delivery.
    pub fn release(&self, lease: &Lease) {
        self.inner
            .leases()
            .remove(&(lease.tenant.clone(), lease.receipt.clone()));
    }

    /// Whether `lease` was handed out more than
    /// [`RedisConfig::max_deliveries`](super::RedisConfig::max_deliveries) times: the job is
    /// not to be run again but parked with [`park`](RedisQueue::park).
    pub fn is_poison(&self, lease: &Lease) -> bool {
        lease.deliveries > self.inner.shared.config.max_deliveries
    }

    /// Parks a poison job: core's [`give_up`](imgchkr_core::runner::give_up) records it
    /// `failed` with `{"image": ["Job abandoned after <N> delivery attempts"]}` (unless a
    /// verdict is already in) and sends its final webhook through `notifier` (onFailure, with
    /// the webhook-id a normal run uses), then the entry is acknowledged and counted
    /// (`parked` in the stats). A job that no longer exists is just acknowledged. On a Redis
    /// error the entry stays pending; calling again (or another worker reclaiming it) parks
    /// it then, without sending a final webhook already recorded delivered.
    pub async fn park<N: Notifier + ?Sized>(
        &self,
        lease: &Lease,
        notifier: &N,
    ) -> Result<Option<JobState>, StoreError> {
        self.inner.park(lease, notifier).await
    }
}

async fn monitor_loop(inner: Weak<Inner>) {
    let mut tick = tokio::time::interval(MONITOR_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if let Err(e) = inner.refresh().await {
            debug!(error = %e, "redis queue: monitor could not read the queue");
        }
    }
}

async fn heartbeat_loop(inner: Weak<Inner>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        inner.heartbeat().await;
    }
}

impl Inner {
    fn leases(&self) -> MutexGuard<'_, HashSet<(String, String)>> {
        self.leases.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn timeout(&self) -> Duration {
        self.shared.config.op_timeout
    }

    /// Notes whether Redis answered.
    fn seen<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        let up = !matches!(result, Err(StoreError::Unavailable(_)));
        self.up.store(up, Ordering::SeqCst);
        metrics::gauge!(REDIS_UP).set(if up { 1.0 } else { 0.0 });
        result
    }

    /// Notes the depth just read, in the readiness check and the gauge.
    fn saw_depth(&self, depth: u64) {
        self.depth_seen.store(depth, Ordering::SeqCst);
        metrics::gauge!(QUEUE_DEPTH).set(depth as f64);
    }

    async fn refresh(&self) -> Result<(), StoreError> {
        let keys = &self.shared.keys;
        let mut call = self.shared.scripts.stats.prepare_invoke();
        call.key(keys.depth())
            .key(keys.tenants())
            .key(keys.stats())
            .arg(keys.stream_prefix())
            .arg(GROUP);
        let mut conn = self.shared.conn.clone();
        let read = bounded(self.timeout(), call.invoke_async(&mut conn)).await;
        let (depth, pending, reclaimed, parked): (i64, i64, i64, i64) = self.seen(read)?;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        self.saw_depth(count(depth));
        metrics::gauge!(PENDING_JOBS).set(count(pending) as f64);
        metrics::counter!(RECLAIMED).absolute(count(reclaimed));
        metrics::counter!(PARKED).absolute(count(parked));
        Ok(())
    }

    async fn push(&self, id: JobId, tenant: &str) -> Result<(), StoreError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        let keys = &self.shared.keys;
        let config = &self.shared.config;
        let mut call = self.shared.scripts.push.prepare_invoke();
        call.key(keys.stream(tenant))
            .key(keys.waiting())
            .key(keys.depth())
            .key(keys.rotation())
            .key(keys.tenants())
            .key(keys.bell())
            .arg(tenant)
            .arg(id.to_string())
            .arg(config.capacity.max(1))
            .arg(config.per_tenant.clamp(1, config.capacity.max(1)))
            .arg(GROUP)
            .arg(BELL_CAP);
        let mut conn = self.shared.conn.clone();
        let entry: String =
            self.seen(bounded(self.timeout(), call.invoke_async(&mut conn)).await)?;
        if entry.starts_with('-') {
            return Err(StoreError::Full {
                retry_after_secs: RETRY_AFTER_SECS,
            });
        }
        Ok(())
    }

    async fn submit(&self, job: Job) -> Result<Inserted, StoreError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        let keys = &self.shared.keys;
        let config = &self.shared.config;
        let tenant = job.tenant.clone().unwrap_or_default();
        let mut call = self.shared.scripts.submit.prepare_invoke();
        call.key(keys.job(job.id))
            .key(keys.seq())
            .key(keys.finished())
            .key(keys.stream(&tenant))
            .key(keys.waiting())
            .key(keys.depth())
            .key(keys.rotation())
            .key(keys.tenants())
            .key(keys.bell());
        for arg in self.store.insert_args(&job) {
            call.arg(arg);
        }
        call.arg(&tenant)
            .arg(config.capacity.max(1))
            .arg(config.per_tenant.clamp(1, config.capacity.max(1)))
            .arg(GROUP)
            .arg(BELL_CAP);
        for (field, value) in &fields(&job)? {
            call.arg(field).arg(value);
        }
        let mut conn = self.shared.conn.clone();
        let mut reply: Vec<String> =
            self.seen(bounded(self.timeout(), call.invoke_async(&mut conn)).await)?;
        let depth = || reply.get(1).and_then(|d| d.parse().ok()).unwrap_or(0);
        match reply.first().map(String::as_str) {
            Some("new") => {
                self.saw_depth(depth());
                Ok(Inserted::New)
            }
            Some("existing") => {
                reply.remove(0);
                Ok(Inserted::Existing(Box::new(assemble(reply)?)))
            }
            _ => {
                self.saw_depth(depth());
                Err(StoreError::Full {
                    retry_after_secs: RETRY_AFTER_SECS,
                })
            }
        }
    }

    async fn pop(&self) -> Result<Option<Lease>, StoreError> {
        let mut batch = self.pop_batch(1).await?;
        Ok(batch.pop().map(|leased| leased.lease))
    }

    /// Up to `most` leases (at least one, or none once closed).
    async fn pop_batch(&self, most: usize) -> Result<Vec<Leased>, StoreError> {
        let most = most.clamp(1, MAX_BATCH);
        let mut next_reclaim = self.pop.lock().await;
        loop {
            let closed = self.close.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if self.closed.load(Ordering::SeqCst) {
                return Ok(Vec::new());
            }
            if Instant::now() >= *next_reclaim {
                if let Some(lease) = self.reclaim().await? {
                    return Ok(vec![Leased {
                        lease,
                        record: Record::Unread,
                    }]);
                }
                *next_reclaim = Instant::now() + self.shared.config.reclaim_period();
            }
            // The last take left nothing waiting: a push since then left a wake-up token, so
            // the bell answers at once if there is something to take.
            if !self.drained.swap(false, Ordering::SeqCst) {
                let taken = self.take(most).await?;
                if !taken.is_empty() {
                    return Ok(taken);
                }
            }
            tokio::select! {
                woke = self.wait_bell() => woke?,
                () = &mut closed => {}
            }
        }
    }

    /// Up to `most` waiting entries, round-robin across tenants, with their job records.
    async fn take(&self, most: usize) -> Result<Vec<Leased>, StoreError> {
        let keys = &self.shared.keys;
        for _ in 0..MAX_SKIPS {
            let mut call = self.shared.scripts.pop.prepare_invoke();
            call.key(keys.waiting())
                .key(keys.depth())
                .key(keys.rotation())
                .key(keys.bell())
                .arg(keys.stream_prefix())
                .arg(GROUP)
                .arg(&self.consumer)
                .arg(most)
                .arg(keys.job_prefix());
            let mut conn = self.shared.conn.clone();
            let (depth, entries): (u64, Vec<PoppedEntry>) =
                bounded(self.timeout(), call.invoke_async(&mut conn)).await?;
            self.saw_depth(depth);
            if entries.is_empty() {
                return Ok(Vec::new());
            }
            self.drained.store(depth == 0, Ordering::SeqCst);
            let mut taken = Vec::with_capacity(entries.len());
            for (tenant, receipt, job, record) in entries {
                let Ok(id) = job.parse::<JobId>() else {
                    warn!(entry = %receipt, tenant = %tenant, "redis queue: entry without a job id, dropped");
                    self.ack_entry(&tenant, &receipt).await?;
                    continue;
                };
                let record = if record.is_empty() {
                    Record::Missing
                } else {
                    match assemble(record) {
                        Ok(job) => Record::Found(Box::new(job)),
                        Err(e) => {
                            debug!(job_id = %id, error = %e, "redis queue: job record unreadable at pop");
                            Record::Unread
                        }
                    }
                };
                self.leases().insert((tenant.clone(), receipt.clone()));
                taken.push(Leased {
                    lease: Lease::new(id, tenant, receipt),
                    record,
                });
            }
            if !taken.is_empty() {
                return Ok(taken);
            }
        }
        Ok(Vec::new())
    }

    /// Waits up to the block time for a push's wake-up token.
    async fn wait_bell(&self) -> Result<(), StoreError> {
        let block = self.shared.config.block_time;
        let mut conn = self.blocking.clone();
        let _token: Option<(String, String)> = bounded(
            self.timeout() + block,
            ::redis::cmd("BLPOP")
                .arg(self.shared.keys.bell())
                .arg(format!("{:.3}", block.as_secs_f64().max(0.001)))
                .query_async(&mut conn),
        )
        .await?;
        Ok(())
    }

    async fn reclaim(&self) -> Result<Option<Lease>, StoreError> {
        let keys = &self.shared.keys;
        let config = &self.shared.config;
        for _ in 0..MAX_SKIPS {
            let mut call = self.shared.scripts.reclaim.prepare_invoke();
            call.key(keys.tenants())
                .key(keys.stats())
                .arg(keys.stream_prefix())
                .arg(GROUP)
                .arg(&self.consumer)
                .arg(config.reclaim_idle.as_millis().to_string())
                .arg(RECLAIM_SCAN_STEPS);
            let mut conn = self.shared.conn.clone();
            let reply: Vec<String> = bounded(self.timeout(), call.invoke_async(&mut conn)).await?;
            let pending: f64 = reply.first().and_then(|p| p.parse().ok()).unwrap_or(0.0);
            metrics::gauge!(PENDING_JOBS).set(pending);
            let Ok([_, tenant, receipt, job, deliveries]) = <[String; 5]>::try_from(reply) else {
                return Ok(None);
            };
            let deliveries: u32 = deliveries.parse().unwrap_or(u32::MAX);
            let Ok(id) = job.parse::<JobId>() else {
                warn!(entry = %receipt, tenant = %tenant, "redis queue: entry without a job id, dropped");
                self.ack_entry(&tenant, &receipt).await?;
                continue;
            };
            debug!(job_id = %id, deliveries, "redis queue: reclaimed");
            self.leases().insert((tenant.clone(), receipt.clone()));
            let mut lease = Lease::new(id, tenant, receipt);
            lease.deliveries = deliveries;
            return Ok(Some(lease));
        }
        Ok(None)
    }

    async fn park<N: Notifier + ?Sized>(
        &self,
        lease: &Lease,
        notifier: &N,
    ) -> Result<Option<JobState>, StoreError> {
        let attempts = self.shared.config.max_deliveries;
        let state = match self.store.get(lease.id).await? {
            Some(job) => {
                let errors =
                    ErrorMap::from([(IMAGE_ERRORS_KEY.to_owned(), vec![abandoned_text(attempts)])]);
                Some(imgchkr_core::runner::give_up(&job, &self.store, notifier, errors).await?)
            }
            None => None,
        };
        warn!(job_id = %lease.id, attempts, deliveries = lease.deliveries, "redis queue: job parked after too many deliveries");
        // Acknowledged and counted at once.
        self.finish_with(lease, &[], true).await?;
        Ok(state)
    }

    async fn ack_entry(&self, tenant: &str, receipt: &str) -> Result<(), StoreError> {
        let mut call = self.shared.scripts.ack.prepare_invoke();
        call.key(self.shared.keys.stream(tenant))
            .arg(GROUP)
            .arg(receipt);
        let mut conn = self.shared.conn.clone();
        let _acked: i64 = bounded(self.timeout(), call.invoke_async(&mut conn)).await?;
        self.leases()
            .remove(&(tenant.to_owned(), receipt.to_owned()));
        Ok(())
    }

    async fn finish_with(
        &self,
        lease: &Lease,
        updates: &[JobUpdate],
        parked: bool,
    ) -> Result<(), StoreError> {
        let keys = &self.shared.keys;
        let mut call = self.shared.scripts.finish.prepare_invoke();
        call.key(keys.stream(&lease.tenant))
            .key(keys.job(lease.id))
            .key(keys.finished())
            .key(keys.stats())
            .arg(GROUP)
            .arg(&lease.receipt)
            .arg(if parked { "1" } else { "0" });
        if !updates.is_empty() {
            for arg in self.store.update_args(lease.id, updates)? {
                call.arg(arg);
            }
        }
        let mut conn = self.shared.conn.clone();
        let _acked: i64 = bounded(self.timeout(), call.invoke_async(&mut conn)).await?;
        self.leases()
            .remove(&(lease.tenant.clone(), lease.receipt.clone()));
        Ok(())
    }

    async fn heartbeat(&self) {
        let leases: Vec<(String, String)> = self.leases().iter().cloned().collect();
        for (tenant, receipt) in leases {
            let mut call = self.shared.scripts.heartbeat.prepare_invoke();
            call.key(self.shared.keys.stream(&tenant))
                .arg(GROUP)
                .arg(&self.consumer)
                .arg(&receipt);
            let mut conn = self.shared.conn.clone();
            match bounded::<i64>(self.timeout(), call.invoke_async(&mut conn)).await {
                Ok(1) => {}
                Ok(_) => {
                    // Taken over (this worker looked dead) or acknowledged meanwhile.
                    if self.leases().remove(&(tenant.clone(), receipt.clone())) {
                        warn!(entry = %receipt, tenant = %tenant, "redis queue: lease lost to another worker");
                    }
                }
                Err(e) => debug!(error = %e, "redis queue: heartbeat failed"),
            }
        }
    }

    async fn depth(&self) -> Result<u64, StoreError> {
        let mut conn = self.shared.conn.clone();
        let depth: Option<i64> = bounded(
            self.timeout(),
            ::redis::cmd("GET")
                .arg(self.shared.keys.depth())
                .query_async(&mut conn),
        )
        .await?;
        let depth = u64::try_from(depth.unwrap_or(0)).unwrap_or(0);
        self.saw_depth(depth);
        Ok(depth)
    }
}

impl JobQueue for RedisQueue {
    fn push(&self, id: JobId, tenant: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        let tenant = tenant.to_owned();
        Box::pin(async move { self.inner.push(id, &tenant).await })
    }

    fn pop(&self) -> BoxFuture<'_, Result<Option<Lease>, StoreError>> {
        Box::pin(self.inner.pop())
    }

    fn ack(&self, lease: &Lease) -> BoxFuture<'_, Result<(), StoreError>> {
        let tenant = lease.tenant.clone();
        let receipt = lease.receipt.clone();
        Box::pin(async move { self.inner.ack_entry(&tenant, &receipt).await })
    }

    fn depth(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.inner.depth())
    }
}
