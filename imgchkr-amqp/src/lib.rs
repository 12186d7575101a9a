//! imgchkr-amqp: RabbitMQ as imgchkr's queue (`--queue amqp://…`), beside a shared store
//! that keeps the job records (`--store redis://…` or `postgres://…`). [`AmqpQueue`] is the
//! [`JobQueue`] half of core's [`Split`] engine: core keeps the rules spanning both halves
//! (record, then publish with a confirm; lease, then start in the store; record, then ack).
//!
//! ```no_run
//! use std::sync::Arc;
//! use imgchkr_core::Engine;
//! use imgchkr_core::engine::split::Split;
//! use imgchkr_amqp::{AmqpConfig, AmqpQueue};
//! use imgchkr_redis::{RedisConfig, RedisEngine};
//!
//! # async fn start() -> Result<(), imgchkr_core::StoreError> {
//! let store = RedisEngine::connect(RedisConfig::new("redis://127.0.0.1:6379/")).await?;
//! let queue = AmqpConfig::new("amqp://guest:guest@127.0.0.1:5672/%2f")
//!     .with_max_deliveries(5) // --max-deliveries
//!     .with_prefetch(64); // the worker's job slots
//! let queue = AmqpQueue::connect(queue).await?;
//! let engine: Arc<dyn Engine> = Arc::new(Split::new(store, queue));
//! engine.check().await?; // the store, then the broker
//! # Ok(())
//! # }
//! ```
//!
//! # Topology
//!
//! Declared by every process at connect (durable quorum queues: replicated by Raft on a
//! cluster, fsynced before a publisher confirm):
//!
//! | queue | holds |
//! |---|---|
//! | `<prefix>.high`, `<prefix>.normal`, `<prefix>.low` | one message per job, body `<id>:<tenant>`, persistent; `x-delivery-limit` = `--max-deliveries` − 1, dead-lettered at least once to the parked queue |
//! | `<prefix>.parked` | jobs the broker gave up on (delivered `--max-deliveries` times, each given back or lost with its worker); every worker consumes it and parks them: recorded `failed` with `Job abandoned after <N> delivery attempts`, onFailure sent |
//!
//! The prefix is `imgchkr`, or the URL's `prefix=` parameter.
//!
//! # Why one queue per priority, and how tenants share
//!
//! RabbitMQ 3.10's quorum queues (the durable, replicated kind) have no message priorities,
//! so each priority has its queue. They also have no channel-wide prefetch: every queue a
//! worker consumes pushes up to its own prefetch, and every delivery pushed ahead and not
//! run is counted as a delivery attempt when the worker stops or dies. A queue per tenant
//! would multiply both (and AMQP offers no way to list queues to discover new tenants
//! without the management plugin), so tenants share the three queues, and fairness comes
//! from three places:
//!
//! - **admission**: a tenant holds at most its share of the waiting jobs (`503` past it),
//!   counted by the store, so one tenant's burst cannot fill the queue;
//! - **each worker's window**: a worker holds at most `prefetch` (its job slots) + 1
//!   deliveries per queue and serves what it holds round-robin across tenants (least recently served
//!   first), then by priority within a tenant, FIFO within one;
//! - **in-flight caps** (`--tenant-max-in-flight`) count per worker process.
//!
//! Known gap: beyond a worker's window a tenant's backlog queued ahead is delivered first, and
//! a flooding tenant held back by its in-flight cap can fill the windows and hold back the
//! other tenants (see the crate's README).
//!
//! # Ordering guarantees
//!
//! - **FIFO within a tenant and priority** for one consumer taking one job at a time (a
//!   quorum queue delivers in order; the worker keeps arrival order within a line).
//! - **Priority and round-robin among what a worker holds**: with several jobs held, a
//!   worker takes the parked ones first, then round-robin across tenants, higher priority
//!   first within a tenant. Across workers, and beyond a worker's window (its prefetch),
//!   the broker's order rules: a `high` job is delivered as soon as a worker has a free
//!   slot in the `high` queue's prefetch, even while `normal` jobs wait, but jobs already
//!   running are never pre-empted; a tenant's jobs queued ahead of another's in the same
//!   queue are delivered first.
//! - **Redelivery** of a job given back (`release`) or whose worker died (its connection
//!   closed) goes to the back of its queue.
//!
//! # Guarantees
//!
//! - **Nothing accepted is lost**: `202` only once the job is recorded in the store *and*
//!   the broker confirmed its message (publisher confirms, `mandatory`); if the broker does
//!   not confirm within [`AmqpConfig::op_timeout`], the record is removed and the submission
//!   fails with `503`. A message the broker kept after all finds no record and is dropped.
//! - **Acks late**: a delivery is acknowledged once the job's final outcome is recorded in
//!   the store. A worker killed (`kill -9`) mid-job closes its connection: the broker hands
//!   its deliveries to another worker at once (no lease deadline), which finishes them with
//!   the same webhook ids; a job whose verdict was recorded is only settled.
//! - **Poison jobs**: past the delivery limit the broker dead-letters the message to the
//!   parked queue, which the workers consume to park it with its onFailure.
//! - **Broker down**: calls fail with [`StoreError::Unavailable`] within the op timeout
//!   (submissions `503` + `Retry-After`, `/readyz` `503`); a task connects again with backoff
//!   (0.1 s doubling to 2 s), declares the queues and resumes consuming, by itself.
//!   Deliveries held when a connection breaks are handed out again by the broker; a worker
//!   still running one finishes it in the store, and its redelivery is only settled.
//!
//! [`JobQueue`]: imgchkr_core::engine::split::JobQueue
//! [`Split`]: imgchkr_core::engine::split::Split
//! [`StoreError::Unavailable`]: imgchkr_core::StoreError::Unavailable
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod config;
mod held;
mod link;
mod queue;
mod topology;

pub use config::AmqpConfig;
pub use queue::AmqpQueue;

/// 1 while this process is connected to the broker, 0 while it is not (gauge).
pub const AMQP_UP: &str = "imgchkr_amqp_up";
/// Connections made again after one broke (counter).
pub const AMQP_RECONNECTS: &str = "imgchkr_amqp_reconnects_total";

/// Describes this crate's metrics to the installed recorder (call once after installing it).
pub fn describe_metrics() {
    metrics::describe_gauge!(AMQP_UP, "1 while the broker answers this process, else 0.");
    metrics::describe_counter!(
        AMQP_RECONNECTS,
        "Connections to the broker made again after one broke."
    );
}
