//! The Redis adapter: [`RedisStore`] (core's `JobStore`) and [`RedisQueue`] (core's
//! `JobQueue`) on one shared Redis, so API and worker processes can run apart and scale out.
//!
//! Built on the `redis` crate's `ConnectionManager`, which
//! reconnects by itself; every read-then-write step is one Lua script, so it is atomic.
//! Targets a standalone Redis (or a Sentinel-managed primary), not Redis Cluster.
//!
//! # Key layout
//!
//! Every key starts with [`RedisConfig::key_prefix`] (`imgchkr:` by default, written `<p>`);
//! a tenant name or a job id is always the last part of a key, so names cannot collide.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `<p>job:<id>` | hash | one job: `base` (the job as submitted, JSON), `state`, `errors` (JSON), `startedAt`, `finishedAt` (RFC 3339), `n:<event>` (that event's delivery record, JSON), `order` (events in first-recorded order), `seq`, `tenant` |
//! | `<p>seq` | string | the insertion counter: list order |
//! | `<p>idx:<any\|state>:g` | zset | every job (or those in a state), scored by `seq` |
//! | `<p>idx:<any\|state>:t:<tenant>` | zset | the same, for one tenant |
//! | `<p>finished` | zset | finished jobs (`<id>` or `<id>:<tenant>`) scored by verdict time, µs: the eviction order |
//! | `<p>q:s:<tenant>` | stream | the tenant's queued job ids (field `job`), consumer group `workers` |
//! | `<p>q:waiting` | hash | tenant → entries not yet handed to a worker |
//! | `<p>q:depth` | string | entries not yet handed to a worker, all tenants |
//! | `<p>q:rr` | list | tenants with entries waiting, in serving order (round-robin) |
//! | `<p>q:tenants` | set | tenants with a stream (entries waiting or pending) |
//! | `<p>q:bell` | list | wake-up tokens for idle workers (one per push, capped) |
//! | `<p>q:stats` | hash | the deployment's `reclaimed` and `parked` counts |
//!
//! # Guarantees
//!
//! - **Store**: each `JobUpdate` is one atomic script, so concurrent updates never lose each
//!   other; `get` rebuilds exactly what `Job::apply` would give (a started update never moves
//!   a finished job back; the first `startedAt` wins; deliveries keep first-recorded order).
//!   Retention as the embedded store: a finished job expires `retention.max_age` after its
//!   verdict (key TTL; its index entries are dropped on later writes), and past
//!   `retention.max_jobs` the oldest finished jobs are evicted on writes (at most
//!   [`EVICTION_BUDGET`] per write). Queued and started jobs are never evicted.
//! - **Queue**: at-least-once, Celery "acks late". `push` checks the overall capacity and the
//!   tenant's share and appends to the tenant's stream in one script (`StoreError::Full`
//!   otherwise), so a job acknowledged to the client is in Redis (the API's submission
//!   records and queues a job in one script: [`RedisQueue::submit`]). `pop` hands out one
//!   entry ([`RedisQueue::pop_batch`] up to the worker's free job slots in one round trip,
//!   each with its job record), round-robin across tenants (FIFO within a tenant), as a
//!   pending entry of this worker's consumer; it stays pending until `ack` (XACK + XDEL),
//!   which the worker calls only after `run_job` has recorded the verdict and the final
//!   notification: with [`RedisQueue::finish`], which records the job's last updates (held
//!   back by its [`JobSession`], which folds the runner's six updates into three round
//!   trips without delaying a webhook or a verdict) and acknowledges in one script. While
//!   this `RedisQueue` is alive it
//!   heartbeats its leases (XCLAIM JUSTID every [`RedisConfig::heartbeat_period`], only while
//!   still the owner), so a long job is never taken from a live worker; a worker that dies
//!   stops heartbeating, and after [`RedisConfig::reclaim_idle`] another worker's `pop`
//!   reclaims the entry (XAUTOCLAIM) with its delivery count. An entry delivered more than
//!   [`RedisConfig::max_deliveries`] times is poison ([`RedisQueue::is_poison`]): the worker
//!   that gets it parks it ([`RedisQueue::park`], core's `give_up`) instead of running it
//!   again: the job is recorded `failed` with
//!   `{"image": ["Job abandoned after <N> delivery attempts"]}` (unless it already has a
//!   verdict, which then stands) and its final webhook is sent (onFailure with those errors,
//!   same webhook-id as a normal run), then the entry is acknowledged. A job may therefore
//!   run more than once (its webhooks carry stable ids, so receivers deduplicate); a job's
//!   own updates arrive in order from the one worker holding it.
//! - **Redis unavailable**: every call fails with `StoreError::Unavailable` within
//!   [`RedisConfig::op_timeout`] (`pop`: `op_timeout` plus `block_time`) and never hangs; the
//!   connection is re-established in the background and calls succeed again once Redis is
//!   back, without rebuilding anything. Nothing accepted is lost as long as Redis keeps its
//!   data (persistence/replication is the operator's choice: without it, a Redis restart
//!   forgets queued jobs and records).

mod keys;
mod queue;
mod scripts;
mod session;
mod store;

use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use imgchkr_core::{Retention, StoreError};

pub use queue::{Leased, MAX_BATCH, Record, RedisQueue};
pub use session::JobSession;
pub use store::RedisStore;

use keys::Keys;
use scripts::Scripts;

/// Jobs handed to a worker and not yet acknowledged (gauge, all workers and tenants).
pub const PENDING_JOBS: &str = "imgchkr_redis_pending_jobs";
/// Entries taken over from a worker that stopped heartbeating (counter, the whole
/// deployment's, as counted in Redis).
pub const RECLAIMED: &str = "imgchkr_redis_reclaimed_total";
/// Jobs parked as failed after too many deliveries (counter, the whole deployment's, as
/// counted in Redis).
pub const PARKED: &str = "imgchkr_redis_parked_total";
/// 1 while this process reaches Redis, 0 while it does not (gauge).
pub const REDIS_UP: &str = "imgchkr_redis_up";

/// How often each process reads the queue's figures (depth, pending, counts) into its
/// metrics, and checks that Redis answers (readiness).
pub const MONITOR_EVERY: Duration = Duration::from_millis(500);

/// Describes this adapter's metrics to the installed recorder (call once after
/// `crate::metrics::install`). Every process (API or worker) exports the deployment's
/// figures, read from Redis every [`MONITOR_EVERY`]: scrape any one of them.
pub fn describe_metrics() {
    metrics::describe_gauge!(
        PENDING_JOBS,
        "Jobs handed to a worker and not yet acknowledged (Redis queue, all workers)."
    );
    metrics::describe_counter!(
        RECLAIMED,
        "Jobs taken over from a worker that stopped heartbeating (whole deployment)."
    );
    metrics::describe_counter!(
        PARKED,
        "Jobs recorded as failed after too many deliveries (whole deployment)."
    );
    metrics::describe_gauge!(REDIS_UP, "1 while Redis answers this process, else 0.");
}

/// The most finished jobs one write evicts (retention work per call stays bounded; the rest
/// goes on later writes).
pub const EVICTION_BUDGET: usize = 100;

/// The error text of a parked job, `N` being the delivery attempts made.
pub fn abandoned_text(attempts: u32) -> String {
    format!("Job abandoned after {attempts} delivery attempts")
}

/// How to reach Redis and how the queue and store behave.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]` (or `rediss://`).
    pub url: String,
    /// Prepended to every key: several deployments (or tests) can share a Redis.
    pub key_prefix: String,
    /// This worker's consumer name in the group (`None`: `<pid>-<random>`, unique per
    /// process start). It only needs to be unique among live workers.
    pub consumer: Option<String>,
    /// An entry pending this long without a heartbeat is taken over by another worker.
    pub reclaim_idle: Duration,
    /// How often a live queue refreshes its leases' idle time (at most a third of
    /// `reclaim_idle` is used, so a live worker never looks dead).
    pub heartbeat_every: Duration,
    /// How often `pop` looks for entries to reclaim (at most half of `reclaim_idle` is used).
    pub reclaim_every: Duration,
    /// A job handed out more than this many times is parked as failed.
    pub max_deliveries: u32,
    /// How long `pop` waits for a wake-up in one Redis call (shutdown is noticed within it,
    /// and it bounds the pickup delay if a wake-up is missed).
    pub block_time: Duration,
    /// The bound on every Redis call (and on each connection attempt).
    pub op_timeout: Duration,
    /// Jobs waiting, all tenants.
    pub capacity: usize,
    /// Jobs waiting, per tenant.
    pub per_tenant: usize,
    /// How long and how many job records are kept.
    pub retention: Retention,
}

impl RedisConfig {
    /// The defaults for `url`: prefix `imgchkr:`, reclaim after 60 s without a heartbeat
    /// (heartbeat every 15 s, reclaim scan every 5 s), park after 5 deliveries, 1 s block
    /// time, 2 s operation timeout, 10,000 jobs waiting (all of them for one tenant), and the
    /// embedded retention (1 h, 100,000 jobs).
    pub fn new(url: impl Into<String>) -> RedisConfig {
        RedisConfig {
            url: url.into(),
            key_prefix: "imgchkr:".to_owned(),
            consumer: None,
            reclaim_idle: Duration::from_secs(60),
            heartbeat_every: Duration::from_secs(15),
            reclaim_every: Duration::from_secs(5),
            max_deliveries: 5,
            block_time: Duration::from_secs(1),
            op_timeout: Duration::from_secs(2),
            capacity: 10_000,
            per_tenant: 10_000,
            retention: Retention::default(),
        }
    }
}

impl RedisConfig {
    /// The heartbeat period in use: `heartbeat_every`, but at most a third of
    /// `reclaim_idle` (and at least 10 ms).
    pub fn heartbeat_period(&self) -> Duration {
        self.heartbeat_every
            .min(self.reclaim_idle / 3)
            .max(Duration::from_millis(10))
    }

    /// The reclaim scan period in use: `reclaim_every`, but at most half of `reclaim_idle`
    /// (and at least 10 ms).
    pub fn reclaim_period(&self) -> Duration {
        self.reclaim_every
            .min(self.reclaim_idle / 2)
            .max(Duration::from_millis(10))
    }
}

/// Errors from Redis, as the traits report them.
fn unavailable(e: ::redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

/// Runs one Redis call, bounded by `timeout`.
async fn bounded<T>(
    timeout: Duration,
    call: impl Future<Output = ::redis::RedisResult<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result.map_err(unavailable),
        Err(_) => Err(StoreError::Unavailable(format!(
            "redis: no answer within {} ms",
            timeout.as_millis()
        ))),
    }
}

/// One reconnecting connection, its calls bounded by `response` (and each connection attempt
/// by `connect`). Few, quick reconnection retries: a caller waits for at most one round of
/// them, and the next call starts a new round.
async fn manager(
    client: &::redis::Client,
    connect: Duration,
    response: Duration,
) -> Result<ConnectionManager, StoreError> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(connect))
        .set_response_timeout(Some(response))
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500));
    let attempt = ConnectionManager::new_with_config(client.clone(), config);
    bounded(connect + response, attempt).await
}

/// State shared by the store and the queue of one [`connect`].
pub(crate) struct Shared {
    pub(crate) conn: ConnectionManager,
    pub(crate) keys: Keys,
    pub(crate) scripts: Scripts,
    pub(crate) config: RedisConfig,
}

/// Connects to Redis (failing with `Unavailable` within about twice `op_timeout` if it cannot)
/// and returns the store and the queue. The queue starts its lease heartbeat task, which ends
/// when the queue is dropped; call from within a Tokio runtime.
pub async fn connect(config: RedisConfig) -> Result<(RedisStore, RedisQueue), StoreError> {
    let client = ::redis::Client::open(config.url.as_str()).map_err(unavailable)?;
    let conn = manager(&client, config.op_timeout, config.op_timeout).await?;
    // Blocking reads (BLPOP) get their own connection: on the shared, multiplexed one they
    // would hold up every other call for the block time.
    let blocking = manager(
        &client,
        config.op_timeout,
        config.op_timeout + config.block_time,
    )
    .await?;
    let shared = Arc::new(Shared {
        conn,
        keys: Keys::new(&config.key_prefix),
        scripts: Scripts::new(),
        config,
    });
    let store = RedisStore::new(Arc::clone(&shared));
    let queue = RedisQueue::new(shared, blocking, store.clone());
    Ok((store, queue))
}
