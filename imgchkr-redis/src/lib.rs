//! imgchkr-redis: the [`Engine`](imgchkr_core::Engine) of imgchkr on one shared Redis, so API
//! and worker processes can run apart and scale out.
//!
//! ```no_run
//! use std::sync::Arc;
//! use imgchkr_core::Engine;
//! use imgchkr_redis::{RedisConfig, RedisEngine};
//!
//! # async fn start() -> Result<(), imgchkr_core::StoreError> {
//! let config = RedisConfig::new("redis://127.0.0.1:6379/").with_prefix("imgchkr:");
//! let engine: Arc<dyn Engine> = Arc::new(RedisEngine::connect(config).await?);
//! engine.check().await?; // PING, bounded by the op timeout
//! // Hand `engine` to core's admission (API) and `Worker` (workers): every process of the
//! // deployment connects to the same Redis with the same prefix.
//! # Ok(())
//! # }
//! ```
//!
//! # Round trips
//!
//! Every engine call is one Lua script (`EVALSHA`): one round trip, atomic with respect to
//! every other client (a script is sent again, two more round trips, the first time it is used
//! after Redis restarts empty). A job's five steps of the trait cost five: `submit` (recorded
//! and queued), `lease` (a batch up to the worker's free slots, with the records, marked
//! started), two `record`s and `finish` (the last updates and the end of the lease).
//! `heartbeat` covers all of a worker's leases in one; `record` with no update costs none.
//! Counted by Redis (`MONITOR`, `INFO commandstats`) in `tests/round_trips.rs`:
//!
//! | driven by | round trips per job |
//! |---|---|
//! | the trait's five steps | 5.00 |
//! | core's worker, leases of one | 6.00 (core's `Session` makes three `record` calls) |
//! | core's worker, leases of ten | 5.10 |
//!
//! # Key layout
//!
//! Every key starts with [`RedisConfig::key_prefix`] (written `<p>`). A job is named by its
//! member `<id>:<tenant>`: the id is always 36 characters, so any tenant name (empty, with
//! colons, …) is unambiguous. A tenant, a bucket name or a remembered key is always the last
//! part of its key, after a fixed word, so names cannot collide.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `<p>job:<id>:<tenant>` | hash | one job: `base` (the submission, JSON), `state`, `errors`, `warnings` (JSON), `startedAt`, `finishedAt` (RFC 3339), `order` and `n:<event>` (delivery records, JSON), `seq`, `createdMs`, `finishedMs`, `deliveries`, `worker` (the lease holder), `retired` |
//! | `<p>seq` | string | the submission counter (FIFO and listing order) |
//! | `<p>wait:<tenant>` | zset | the tenant's waiting job ids, score `rank · 2^40 + seq`: higher priority first, FIFO within one |
//! | `<p>nwait` | string | jobs waiting, all tenants (the capacity check) |
//! | `<p>turns` | zset | tenants with jobs waiting, in serving order: score the turn it was last served in, or `seq − 2^52` (the submission that made its line non-empty) if never served |
//! | `<p>turn` | string | the turn counter (one turn per job handed out) |
//! | `<p>served` | hash | tenant → its last turn, while it has jobs waiting or in flight |
//! | `<p>inflight` | hash | tenant → jobs leased and not finished (`tenant_in_flight`) |
//! | `<p>leases` | zset | leased jobs (members), score the deadline in ms (`-inf` once released) |
//! | `<p>list:g:<any\|state>` | zset | every job (or those in a state), members by `seq`: listing newest first |
//! | `<p>list:t:<any\|state>:<tenant>` | zset | the same for one tenant, job ids |
//! | `<p>count` | zset | tenant → jobs held (the per-tenant retention count) |
//! | `<p>fin` | zset | finished and cancelled jobs (members) by finish time, ms: the age order |
//! | `<p>fin:<tenant>` | zset | the same for one tenant, job ids: the count order |
//! | `<p>tomb` | zset | expired jobs (members) by expiry time, ms: `410` until dropped |
//! | `<p>workers` | hash | worker → `<held> <last heartbeat, RFC 3339> <status>` |
//! | `<p>workers:at` | zset | workers by last heartbeat, ms (forgotten after ten minutes) |
//! | `<p>bucket:<name>` | hash | a token bucket: `tokens`, `at` (µs, the caller's clock) |
//! | `<p>mem:<key>` | hash | a remembered value: `value`, `expires` (ms, the caller's clock) |
//! | `<p>bell` | list | wake-up tokens (one per submission or release, at most 64) for idle workers' `BLPOP` |
//!
//! # Guarantees
//!
//! Those of every engine, checked by core's conformance suite (`tests/conformance.rs`): FIFO
//! within a tenant and priority, round-robin across tenants (least recently served first),
//! idempotent submission, at-least-once with takeover after lease expiry, cancel of queued
//! jobs only, ids scoped per tenant, retention with tombstones, queue capacity and tenant
//! shares, per-tenant in-flight caps. Time always comes from the caller: no script reads
//! Redis's clock. Redis's own key expiry is used only to forget token buckets (well after they
//! would be full again) and remembered values (a minute after they expire), which the caller's
//! clock decides.
//!
//! - **Unavailable**: every call fails with [`StoreError::Unavailable`] within
//!   [`RedisConfig::op_timeout`] when Redis cannot be reached or cannot write (`OOM`,
//!   `READONLY`, `MISCONF`), and never hangs; the connection is made again in the background
//!   and calls succeed once Redis is back. `work_available` resolves within the block time
//!   (plus the op timeout) whatever Redis does. `check` is a bounded `PING`.
//! - **Durability**: `submit` answers once Redis has applied the script. Whether the job
//!   survives a Redis crash is the operator's choice of persistence: with `appendonly yes` and
//!   `appendfsync always` every acknowledged job is on disk before the answer (tested:
//!   `tests/engine.rs`, `a_job_survives_a_redis_restart_with_aof`); `appendfsync everysec`
//!   may lose the last second. Replication is asynchronous: a failover may lose the last
//!   writes.
//! - **Sharing**: any number of processes (API and workers) share one Redis under one prefix;
//!   each call is atomic, so a lease taken by one is seen by all.
//! - **Topology**: the scripts build keys inside (a tenant's line, a job's hash), so a
//!   standalone Redis or a Sentinel-managed primary, not Redis Cluster.
//! - **Bounds**: retention work per `purge` is bounded by its budget (jobs expired, and as
//!   many tombstones dropped by age and by count); a lease scans at most the tenants with jobs
//!   waiting; sequence numbers stay exact up to 2^40 submissions.
//! - **Precision**: a job's times are kept exactly (RFC 3339, to the nanosecond); lease
//!   deadlines and retention compare whole milliseconds, token buckets whole microseconds.
//!
//! [`StoreError::Unavailable`]: imgchkr_core::StoreError::Unavailable
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod codec;
mod config;
mod conn;
mod engine;
mod limits;
mod scripts;
mod store;

pub use config::RedisConfig;
pub use engine::RedisEngine;

/// 1 while this process reaches Redis, 0 while it does not (gauge; set by every call).
pub const REDIS_UP: &str = "imgchkr_redis_up";

/// Describes this crate's metrics to the installed recorder (call once after installing it).
pub fn describe_metrics() {
    metrics::describe_gauge!(
        REDIS_UP,
        "1 while the Redis server `server` (host:port; one per shard) answers this process, else 0."
    );
}
