//! Where jobs wait and where their records live: the two traits a deployment implements
//! (in memory by default, on Redis to scale out).

use crate::job::{Job, JobId, JobState, JobUpdate};
use crate::notify::BoxFuture;

/// Why a store or queue operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend cannot be reached now; the caller may retry (the API answers 503).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The queue is at capacity, overall or for this tenant (the API answers 503).
    #[error("queue full")]
    Full {
        /// A hint for `Retry-After`, in seconds.
        retry_after_secs: u32,
    },
    /// The queue was closed for shutdown.
    #[error("queue closed")]
    Closed,
}

/// What [`JobStore::insert`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Inserted {
    /// The job is new.
    New,
    /// A job with that id already exists (an idempotent resubmission): here it is, unchanged.
    Existing(Box<Job>),
}

/// Which jobs [`JobStore::list`] returns: newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ListQuery {
    /// Only this tenant's jobs (`None`: every job, when callers do not authenticate).
    pub tenant: Option<String>,
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs older than this one (the cursor of the previous page).
    pub before: Option<JobId>,
    /// At most this many.
    pub limit: usize,
}

impl ListQuery {
    /// The first page of at most `limit` jobs.
    pub fn new(limit: usize) -> ListQuery {
        ListQuery {
            limit,
            ..ListQuery::default()
        }
    }
}

/// Job records, kept for a bounded time and count.
pub trait JobStore: Send + Sync {
    /// Stores a new job, unless one with its id exists.
    fn insert(&self, job: Job) -> BoxFuture<'_, Result<Inserted, StoreError>>;
    /// The job, if it exists and has not expired.
    fn get(&self, id: JobId) -> BoxFuture<'_, Result<Option<Job>, StoreError>>;
    /// Applies `update` to the job (a no-op if it has expired).
    fn update(&self, id: JobId, update: JobUpdate) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Recent jobs, newest first.
    fn list(&self, query: ListQuery) -> BoxFuture<'_, Result<Vec<Job>, StoreError>>;
}

/// A job waiting in a queue, as a worker receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Lease {
    /// The job.
    pub id: JobId,
    /// Its tenant (`""` when callers do not authenticate).
    pub tenant: String,
    /// How many times this job has been handed to a worker, this time included.
    pub deliveries: u32,
    /// The backend's handle for acknowledging it (a stream entry id, …).
    pub receipt: String,
}

impl Lease {
    /// A lease on `id` for `tenant`, first delivery.
    pub fn new(id: JobId, tenant: impl Into<String>, receipt: impl Into<String>) -> Lease {
        Lease {
            id,
            tenant: tenant.into(),
            deliveries: 1,
            receipt: receipt.into(),
        }
    }
}

/// A bounded queue of job ids, fair across tenants.
pub trait JobQueue: Send + Sync {
    /// Enqueues `id` for `tenant`, or fails with [`StoreError::Full`].
    fn push(&self, id: JobId, tenant: &str) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Waits for the next job (round-robin across tenants); `None` once closed and drained.
    fn pop(&self) -> BoxFuture<'_, Result<Option<Lease>, StoreError>>;
    /// Acknowledges a finished job: it will not be handed out again.
    fn ack(&self, lease: &Lease) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Jobs waiting (not yet handed to a worker).
    fn depth(&self) -> BoxFuture<'_, Result<u64, StoreError>>;
}
