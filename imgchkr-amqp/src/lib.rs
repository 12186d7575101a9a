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
//! Durable queues, declared idempotently (quorum queues: replicated by Raft on a cluster,
//! fsynced before a publisher confirm):
//!
//! | queue | holds |
//! |---|---|
//! | `<prefix>.tenants` | a stream: the registry of tenants, one entry (the name) appended by a publisher before its first job of a tenant on a connection; every consuming process reads it from the start and consumes the queues of each tenant it names |
//! | `<prefix>.high.<tenant>`, `<prefix>.normal.<tenant>`, `<prefix>.low.<tenant>` | quorum; one message per job, body `<id>:<tenant>`, persistent; `x-delivery-limit` = `--max-deliveries` − 1, dead-lettered at least once to the parked queue |
//! | `<prefix>.parked` | quorum; jobs the broker gave up on (delivered `--max-deliveries` times, each given back or lost with its worker); every worker consumes it and parks them: recorded `failed` with `Job abandoned after <N> delivery attempts`, onFailure sent |
//!
//! The prefix is `imgchkr`, or the URL's `prefix=` parameter.
//!
//! # Why a queue per tenant and priority
//!
//! RabbitMQ 3.10's quorum queues (the durable, replicated kind) have no message priorities,
//! so each priority has its queue. Tenants get queues of their own too: in a shared queue a
//! worker sees only its window (its prefetch), so a tenant's backlog queued ahead would be
//! delivered first, and a flooding tenant held back by its in-flight cap would fill every
//! window and stop the others. With a queue per tenant, every worker holds the head of every
//! tenant's lines and serves them round-robin across tenants (least recently served first),
//! then by priority within a tenant, FIFO within one. New tenants are discovered through the
//! registry stream (AMQP cannot list queues without the management plugin).
//!
//! The cost, and how it is bounded: quorum queues have no channel-wide prefetch, so a worker
//! holds up to its job slots + 1 deliveries per tenant and priority it consumes, and in
//! RabbitMQ 3.10 a delivery pushed ahead and not run still counts as a delivery attempt when
//! its worker dies. Admission (a tenant's share of the waiting jobs, counted by the store)
//! and the in-flight caps (`--tenant-max-in-flight`, per worker process) are as on every
//! engine.
//!
//! # Ordering guarantees
//!
//! - **Within a tenant, higher priority first, FIFO within a priority**: a quorum queue
//!   delivers in order, and a worker keeps arrival order within a line. A line whose window
//!   was full when one of its deliveries settled may be about to get its next one: until it
//!   comes (or its queue is seen empty, asked with a passive declare) the tenant's lower lines
//!   wait, so a freed slot never passes over a queued `high` job.
//! - **Across tenants, round-robin** among what a worker holds, which is the head of every
//!   tenant's queues. Running jobs are never pre-empted.
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
