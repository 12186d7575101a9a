//! [`RedisQueue`]: one stream per tenant, one consumer group, round-robin hand-out, acks late.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use ::redis::aio::ConnectionManager;
use imgchkr_core::job::IMAGE_ERRORS_KEY;
use imgchkr_core::notify::BoxFuture;
use imgchkr_core::store::Lease;
use imgchkr_core::{ErrorMap, JobId, JobQueue, JobState, JobStore, Notifier, StoreError};
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::keys::GROUP;
use super::store::RedisStore;
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
    /// Leases handed out and not yet acknowledged: receipt → tenant.
    leases: Mutex<HashMap<String, String>>,
    /// Serialises `pop`; holds when the next reclaim scan is due.
    pop: tokio::sync::Mutex<Instant>,
    closed: AtomicBool,
    close: Notify,
    /// Whether Redis answered the last call made (monitor, or a call of this queue).
    up: AtomicBool,
    /// The depth (entries waiting, all tenants) last read.
    depth_seen: AtomicU64,
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

    /// Stops heartbeating `lease` without acknowledging it (its job could not be recorded):
    /// after [`RedisConfig::reclaim_idle`](super::RedisConfig::reclaim_idle) a worker,
    /// maybe this one, takes it over as a new delivery.
    pub fn release(&self, lease: &Lease) {
        self.inner.leases().remove(&lease.receipt);
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
    fn leases(&self) -> MutexGuard<'_, HashMap<String, String>> {
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

    async fn pop(&self) -> Result<Option<Lease>, StoreError> {
        let mut next_reclaim = self.pop.lock().await;
        loop {
            let closed = self.close.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if self.closed.load(Ordering::SeqCst) {
                return Ok(None);
            }
            if Instant::now() >= *next_reclaim {
                if let Some(lease) = self.reclaim().await? {
                    return Ok(Some(lease));
                }
                *next_reclaim = Instant::now() + self.shared.config.reclaim_period();
            }
            if let Some(lease) = self.take().await? {
                return Ok(Some(lease));
            }
            tokio::select! {
                woke = self.wait_bell() => woke?,
                () = &mut closed => {}
            }
        }
    }

    /// The next waiting entry, round-robin across tenants.
    async fn take(&self) -> Result<Option<Lease>, StoreError> {
        let keys = &self.shared.keys;
        for _ in 0..MAX_SKIPS {
            let mut call = self.shared.scripts.pop.prepare_invoke();
            call.key(keys.waiting())
                .key(keys.depth())
                .key(keys.rotation())
                .arg(keys.stream_prefix())
                .arg(GROUP)
                .arg(&self.consumer);
            let mut conn = self.shared.conn.clone();
            let next: Option<(String, String, String, String)> =
                bounded(self.timeout(), call.invoke_async(&mut conn)).await?;
            let Some((tenant, receipt, job, depth)) = next else {
                return Ok(None);
            };
            self.saw_depth(depth.parse().unwrap_or(0));
            match job.parse::<JobId>() {
                Ok(id) => {
                    self.leases().insert(receipt.clone(), tenant.clone());
                    return Ok(Some(Lease::new(id, tenant, receipt)));
                }
                Err(_) => {
                    warn!(entry = %receipt, tenant = %tenant, "redis queue: entry without a job id, dropped");
                    self.ack_entry(&tenant, &receipt).await?;
                }
            }
        }
        Ok(None)
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
            self.leases().insert(receipt.clone(), tenant.clone());
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
        self.ack_entry(&lease.tenant, &lease.receipt).await?;
        let mut conn = self.shared.conn.clone();
        let _parked: i64 = bounded(
            self.timeout(),
            ::redis::cmd("HINCRBY")
                .arg(self.shared.keys.stats())
                .arg("parked")
                .arg(1)
                .query_async(&mut conn),
        )
        .await?;
        warn!(job_id = %lease.id, attempts, deliveries = lease.deliveries, "redis queue: job parked after too many deliveries");
        Ok(state)
    }

    async fn ack_entry(&self, tenant: &str, receipt: &str) -> Result<(), StoreError> {
        let mut call = self.shared.scripts.ack.prepare_invoke();
        call.key(self.shared.keys.stream(tenant))
            .arg(GROUP)
            .arg(receipt);
        let mut conn = self.shared.conn.clone();
        let _acked: i64 = bounded(self.timeout(), call.invoke_async(&mut conn)).await?;
        self.leases().remove(receipt);
        Ok(())
    }

    async fn heartbeat(&self) {
        let leases: Vec<(String, String)> = self
            .leases()
            .iter()
            .map(|(receipt, tenant)| (receipt.clone(), tenant.clone()))
            .collect();
        for (receipt, tenant) in leases {
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
                    if self.leases().remove(&receipt).is_some() {
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
