//! imgchkr-postgres: the [`Engine`](imgchkr_core::Engine) of imgchkr on one shared Postgres
//! database, so API and worker processes can run apart and scale out, with the job history
//! queryable in SQL.
//!
//! ```no_run
//! use std::sync::Arc;
//! use imgchkr_core::Engine;
//! use imgchkr_postgres::{PostgresConfig, PostgresEngine};
//!
//! # async fn start() -> Result<(), imgchkr_core::StoreError> {
//! let config = PostgresConfig::new("postgres://imgchkr@db.internal/imgchkr?sslmode=verify-full")
//!     .with_schema("imgchkr");
//! // Applies the migrations this build has (once, whichever process starts first).
//! let engine: Arc<dyn Engine> = Arc::new(PostgresEngine::connect(config).await?);
//! engine.check().await?; // bounded by the op timeout
//! // Hand `engine` to core's admission (API) and `Worker` (workers): every process of the
//! // deployment connects to the same database and schema.
//! # Ok(())
//! # }
//! ```
//!
//! # Round trips
//!
//! Every engine call is one statement calling one server-side function (created by the
//! migrations): one round trip and one transaction, atomic with respect to every other
//! process. Statements are prepared once per pooled connection (one more round trip the
//! first time a connection runs a kind of call). A job's five steps of the trait cost five
//! statements: `submit` (recorded and queued), `lease` (a batch up to the worker's free
//! slots, with the records, marked started), two `record`s and `finish` (the last updates and
//! the end of the lease). `heartbeat` covers all of a worker's leases in one; `record` with no
//! update costs none. Counted by Postgres (`pg_stat_statements`, top-level statements) in
//! `tests/statements.rs`:
//!
//! | driven by | statements per job |
//! |---|---|
//! | the trait's five steps | 5.00 |
//! | core's worker, leases of one | 5.00 (submit, lease, two `record`s, `finish`) |
//! | core's worker, leases of ten | 4.10 |
//!
//! Heartbeats (one per worker every `--heartbeat`, for all its leases) and each process's
//! readiness check, queue figures and retention pass (a few statements a second per process)
//! come on top, independent of the job rate.
//!
//! # Schema
//!
//! Everything lives in one schema ([`PostgresConfig::schema`], `imgchkr` by default), created
//! and migrated at start: versioned, forward-only migrations recorded in
//! `schema_migrations`, applied under `pg_advisory_lock`, each in its own transaction.
//!
//! | table | one row per | holds |
//! |---|---|---|
//! | `jobs` | job (until retention expires it) | `tenant`, `id` (the key), `seq` (submission order), `state`, `priority` (0 high, 1 normal, 2 low), `location` and `asset_path` (the asset as given), the three webhook URLs, `errors` and `warnings` (JSON), `created_at`, `started_at`, `finished_at`, `deliveries` (times handed out), `lease_worker` and `lease_until` (the lease while in flight), `retired_at` (when retention starts counting) |
//! | `deliveries` | event a job notified | `event`, `ord`, `url`, `status` (`pending`, `delivered`, `failed`), `attempts`, `http_status`, `error`; `recorded_at`, `done_at`, `latency_ms` (the database's clock: history only) |
//! | `queue` | job waiting | `tenant`, `priority`, `seq`, `id`: the waiting lines |
//! | `tenants` | tenant with jobs waiting or in flight | `last_served` (its last round-robin turn, 0 if never), `since` |
//! | `tombstones` | expired job | `expired_at`: `410 Gone` until dropped |
//! | `buckets` | token bucket | `tokens`, `at_us` (the caller's clock), `full_at` |
//! | `remembered` | remembered value | `value`, `expires` |
//! | `workers` | worker heard from | `at`, `held`, `status` |
//!
//! # Guarantees
//!
//! Those of every engine, checked by core's conformance suite (`tests/conformance.rs`): FIFO
//! within a tenant and priority, round-robin across tenants (least recently served first),
//! idempotent submission, at-least-once with takeover after lease expiry, cancel of queued
//! jobs only, ids scoped per tenant, retention with tombstones, queue capacity and tenant
//! shares, per-tenant in-flight caps. Time always comes from the caller: no function reads the
//! database's clock for anything but the history columns of `deliveries`.
//!
//! - **Unavailable**: every call fails with [`StoreError::Unavailable`] within
//!   [`PostgresConfig::op_timeout`] when Postgres cannot be reached, cannot write (a standby,
//!   out of disk) or refuses the statement, and never hangs; a connection whose call timed out
//!   is closed, and connections are made again as calls need them. `check` is a bounded
//!   `SELECT pg_is_in_recovery()`; `work_available` resolves within the block time whatever
//!   Postgres does.
//! - **Durability**: `submit` answers once the job and its place in the line are committed;
//!   with `synchronous_commit = on` (Postgres' default) that is flushed to the write-ahead
//!   log, so a crash or an immediate shutdown of Postgres loses nothing acknowledged (tested:
//!   `tests/outage.rs`).
//! - **Sharing**: any number of processes share one database and schema. Work is handed out
//!   with `SELECT … FOR UPDATE SKIP LOCKED` (two workers never wait on each other's rows, and
//!   never get the same job), each tenant's share of a batch leaving its line in one
//!   statement; idle workers are woken by `LISTEN`/`NOTIFY`, with a poll every block time as
//!   the fallback. A submission notifies after its commit, from a statement of its own (a
//!   transaction that runs `NOTIFY` holds a database-wide lock until its commit is flushed,
//!   which would serialize submissions), coalesced while one is on its way; a released lease
//!   notifies at its commit.
//! - **Bounds**: retention work per `purge` is bounded by its budget (jobs expired, and as
//!   many tombstones, remembered values and buckets dropped per kind), taken with `SKIP
//!   LOCKED` so it never waits on a busy row; the per-tenant count check reads the index of
//!   every job (skipped while the planner's estimate of all jobs is well under the count). The
//!   queue's capacity and a tenant's share are checked without a counter row (which every
//!   submission would lock): the distance between the oldest and newest submission waiting
//!   (two index probes) bounds how many wait, and only when it reaches the bound are the
//!   waiting jobs counted (at most the bound). Submissions racing for the last places may
//!   overshoot by the number of concurrent submitters.
//! - **Precision**: times are kept to the microsecond (Postgres' `timestamptz`).
//!
//! [`StoreError::Unavailable`]: imgchkr_core::StoreError::Unavailable
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod codec;
mod config;
mod conn;
mod engine;
mod listen;
mod migrate;
mod notify;
mod store;
mod tls;

pub use config::PostgresConfig;
pub use engine::PostgresEngine;

/// 1 while this process reaches Postgres, 0 while it does not (gauge; set by every call).
pub const POSTGRES_UP: &str = "imgchkr_postgres_up";

/// Describes this crate's metrics to the installed recorder (call once after installing it).
pub fn describe_metrics() {
    metrics::describe_gauge!(
        POSTGRES_UP,
        "1 while Postgres answers this process, else 0."
    );
}

/// The migrations this build applies, in order: (version, name). The schema's
/// `schema_migrations` table records those applied.
pub fn migrations() -> Vec<(i32, &'static str)> {
    migrate::MIGRATIONS
        .iter()
        .map(|(version, name, _)| (*version, *name))
        .collect()
}
