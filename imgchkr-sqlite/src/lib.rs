//! imgchkr-sqlite: the embedded, durable [`Engine`] behind the `sqlite:PATH` store (imgchkr's
//! default): jobs, their queue and their leases in one SQLite file owned by one process.
//!
//! ```no_run
//! use std::sync::Arc;
//! use imgchkr_core::Engine;
//! use imgchkr_sqlite::{SqliteConfig, SqliteEngine, Synchronous};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = SqliteConfig::new("imgchkr.db").synchronous(Synchronous::Normal);
//! // Fails at once with `OpenError::Locked` while another process owns imgchkr.db.
//! let engine: Arc<dyn Engine> = Arc::new(SqliteEngine::open(&config)?);
//! assert!(engine.is_durable() && !engine.is_shared());
//! # Ok(())
//! # }
//! ```
//!
//! # Durability
//!
//! A write ([`submit`](Engine::submit) and every other) answers only once its transaction is
//! committed, in write-ahead-log mode (WAL):
//!
//! - [`Synchronous::Normal`] (the default, `synchronous=NORMAL`): a committed job survives the
//!   process crashing or being killed (`kill -9`) at any moment. A power loss or a kernel
//!   crash may lose the transactions committed in the last moments before it (the log is
//!   flushed to the disk at checkpoints, not at each commit); the file is never corrupted.
//! - [`Synchronous::Full`] (`synchronous=FULL`): the log is flushed (`fsync`) before each
//!   commit is answered: a committed job survives a power loss too, on a disk that honours
//!   flushes.
//!
//! **Group commit**: one writer thread owns the write connection; it takes every write queued
//! while it was busy and commits them in one transaction (one flush with `Full`), then answers
//! each through a oneshot channel. A write refused before writing (a full queue) is answered as
//! refused without undoing the others; when SQLite fails, the group is rolled back and each
//! write runs again alone, so only those that fail again get the error. Reads (`get`, `list`,
//! `stats`) are served by reader threads, each with its own connection, and checkpoints by a
//! thread of their own: no SQLite I/O ever runs on the caller's executor.
//!
//! **Restart**: the engine is single-node, so when it opens, every lease recorded belongs to a
//! dead process: they are all expired at once, and the first [`lease`](Engine::lease) hands
//! those jobs out again as new deliveries. Every accepted job reaches its verdict across any
//! number of crashes.
//!
//! **One owner**: [`SqliteEngine::open`] takes an exclusive `flock` on `<path>.lock` and fails
//! at once with [`OpenError::Locked`] (naming the owner's pid) while another process, or
//! another engine of this one, holds it. The kernel releases it when the owner dies, `kill -9`
//! included. (SQLite's `locking_mode=EXCLUSIVE` would keep the reader connections out, and
//! would only fail the second process at its first statement, after a busy timeout.) The file
//! must be on a local file system.
//!
//! **Unavailable**: a write that SQLite refuses (a full disk: `database or disk is full`; a
//! read-only file: `attempt to write a readonly database`; an I/O error) answers
//! [`StoreError::Unavailable`] with that reason, after its transaction was rolled back: never
//! a panic, never a success for a job that is not recorded. [`check`](Engine::check) writes
//! and frees a page through the writer, so readiness fails with the same reason while writes
//! would, and recovers by itself when they succeed again (space freed by `purge` or the
//! operator). A file that is read-only when the engine opens is served for reading; SQLite then
//! creates `<path>-wal` and `<path>-shm` read-only too, and a connection keeps the mode it
//! opened with: make the three files writable and open the engine again.
//!
//! # Schema
//!
//! Version [`SCHEMA_VERSION`], in `PRAGMA user_version`; migrations only go forward and are
//! applied when the engine opens, each in one transaction. Times are integers, microseconds
//! since 1970-01-01 UTC (`datetime(created_at / 1e6, 'unixepoch')` in the `sqlite3` shell).
//!
//! | table | one row per | columns |
//! |---|---|---|
//! | `jobs` | job held (queued, running, or finished and kept for the retention time) | `seq` (submission order), `tenant` (`''` without authentication), `id` (UUID), `state` (`queued`, `started`, `success`, `failed`, `cancelled`), `priority` (0 high, 1 normal, 2 low), `location` (`local`, `url`, `s3`), `path`, `on_start`, `on_success`, `on_failure` (webhook URLs), `errors` (JSON `{"image": […]}` or NULL), `warnings` (JSON array), `notifications` (JSON array of delivery records: `event`, `url`, `status`, `attempts`, `http_status`, `error`), `created_at`, `started_at`, `finished_at`, `deliveries` (times handed to a worker), `worker` (the last one handed it), `lease_until` (lease deadline; NULL when not leased), `retired_at` (when it left the queue for good: retention's clock) |
//! | `tenants` | tenant holding jobs | `tenant`, `jobs`, `waiting`, `in_flight` (counts), `last_served` (round-robin turn; 0 since it was idle), `since` (`seq` that ended its idleness) |
//! | `tombstones` | job forgotten after its retention (`GET` answers 410) | `tenant`, `id`, `at` |
//! | `workers` | worker, as its last heartbeat left it | `worker`, `at`, `held`, `status` (JSON) |
//! | `buckets` | rate-limit token bucket | `name`, `tokens`, `at` |
//! | `remembered` | value remembered until it expires | `key`, `value`, `expires` |
//! | `probe` | (empty: written and emptied by the readiness check) | `data` |
//!
//! Indexes on `jobs`: `(tenant, id)` unique; `(tenant, seq)` for listing (a listing in one
//! state filters it, as the memory engine does: an index per state would be rewritten twice per
//! job); `(tenant, priority, seq) WHERE state = 'queued'` and `(lease_until) WHERE lease_until
//! IS NOT NULL` for leasing; `(tenant, retired_at) WHERE retired_at IS NOT NULL` for retention.
//! On `tenants`: `(last_served, since, tenant) WHERE waiting > 0` (whose turn).
//!
//! The history is plain SQL, readable while the engine runs:
//!
//! ```sql
//! SELECT tenant, state, count(*) FROM jobs GROUP BY 1, 2;
//! SELECT id, errors FROM jobs WHERE state = 'failed' ORDER BY seq DESC LIMIT 20;
//! SELECT id, datetime(finished_at / 1e6, 'unixepoch') FROM jobs WHERE tenant = 'acme';
//! ```
//!
//! # Bounded
//!
//! [`purge`](Engine::purge) (core's `purge_forever`) forgets finished jobs past their
//! [`Retention`](imgchkr_core::Retention) (age, and count per tenant), leaving tombstones
//! (a tenant, an id and a time: about 80 bytes each), which go after their own age or past
//! their most count; everything in bounded batches. Freed pages are reused by later writes;
//! the database is created with `auto_vacuum=INCREMENTAL`, and when more than a tenth of the
//! file (and more than 4 MiB) is free, `purge` also gives pages back to the file system
//! (`incremental_vacuum`, 8 MiB a call at most), so the file shrinks after a burst. The write-ahead log is copied back into
//! the file by the checkpoint thread (and by the writer when it passes 16 MiB), so it stays
//! under about 16 MiB plus one transaction.
//!
//! # Cost
//!
//! A job takes five writes (submit, lease, two records, finish), each in a transaction shared
//! with whatever arrives with it. The writer keeps in memory what would otherwise be read back
//! (the queue's counts, the rows of the jobs in flight): a submission is an insert and a
//! count, a record one update, a finish two, and a lease reads only the rows it hands out.
//! SQLite's plans are kept across bindings (`SQLITE_DBCONFIG_ENABLE_QPSG`: the bundled
//! SQLite's STAT4 would otherwise plan range queries again for every new value).
//! `cargo bench -p imgchkr-sqlite --bench engines` compares it with the memory engine
//! (figures in the crate's README).
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod checkpoint;
mod config;
mod engine;
mod error;
mod lock;
mod queue;
mod read;
mod retention;
mod row;
mod schema;
mod tokens;
mod wake;
mod writer;

pub use config::{SqliteConfig, Synchronous};
pub use engine::SqliteEngine;
pub use error::OpenError;
pub use schema::SCHEMA_VERSION;

#[doc(no_inline)]
pub use imgchkr_core::{Engine, StoreError};
