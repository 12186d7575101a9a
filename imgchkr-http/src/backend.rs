//! Where jobs are stored and queued: in this process ([`Backend::Memory`]) or in a shared
//! Redis ([`Backend::Redis`]), behind the few calls the handlers and workers make.

use std::sync::Arc;

use imgchkr_core::store::Inserted;
use imgchkr_core::store::ListQuery;
use imgchkr_core::{Job, JobId, JobQueue, JobStore, MemoryStore, StoreError};

use crate::queue::MemoryQueue;
use crate::redis::{RedisQueue, RedisStore};

/// The store and queue of one process.
pub enum Backend {
    /// In-process: jobs live and die with this process.
    Memory {
        /// The jobs.
        store: Arc<MemoryStore>,
        /// The fair queue.
        queue: Arc<MemoryQueue>,
    },
    /// One shared Redis: API and worker processes can run apart.
    Redis {
        /// The jobs.
        store: RedisStore,
        /// The queue (leases, acknowledged after the final webhook).
        queue: Arc<RedisQueue>,
    },
}

impl Backend {
    /// The store, as core's runner takes it.
    pub fn store(&self) -> &dyn JobStore {
        match self {
            Backend::Memory { store, .. } => &**store,
            Backend::Redis { store, .. } => store,
        }
    }

    /// The job, if known.
    pub async fn get(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        match self {
            Backend::Memory { store, .. } => Ok(store.get_now(id)),
            Backend::Redis { store, .. } => store.get(id).await,
        }
    }

    /// Records a new job (or finds the existing one with its id).
    ///
    /// Redis: the job is also queued for its tenant (`""` without one), in the same script
    /// (one round trip for the submission, and never a recorded job left unqueued); a full
    /// queue fails here with [`StoreError::Full`], recording nothing, and the
    /// [`push`](Backend::push) that follows for this id does nothing more.
    pub async fn insert(&self, job: Job) -> Result<Inserted, StoreError> {
        match self {
            Backend::Memory { store, .. } => Ok(store.insert_now(job)),
            Backend::Redis { queue, .. } => {
                let id = job.id;
                let inserted = queue.submit(job).await?;
                if matches!(inserted, Inserted::New) {
                    queue.note_submitted(id);
                }
                Ok(inserted)
            }
        }
    }

    /// Forgets a job that could not be queued.
    pub async fn remove(&self, id: JobId) -> Result<(), StoreError> {
        match self {
            Backend::Memory { store, .. } => {
                store.remove(id);
                Ok(())
            }
            Backend::Redis { store, .. } => store.remove(id).await.map(|_| ()),
        }
    }

    /// A page of jobs.
    pub async fn list(&self, query: &ListQuery) -> Result<Vec<Job>, StoreError> {
        match self {
            Backend::Memory { store, .. } => Ok(store.list_now(query)),
            Backend::Redis { store, .. } => store.list(query.clone()).await,
        }
    }

    /// Whether `tenant` could enqueue now (advisory; `insert`/`push` decide).
    ///
    /// Redis: asks Redis only while the queue looked full when last seen (this process's
    /// monitor reads it every half second); otherwise the submission's insert script checks
    /// the capacity and the tenant's share itself, without a round trip of its own.
    pub async fn has_room(&self, tenant: &str) -> Result<bool, StoreError> {
        match self {
            Backend::Memory { queue, .. } => Ok(queue.has_room(tenant)),
            Backend::Redis { queue, .. } if queue.is_closed() => Ok(false),
            Backend::Redis { queue, .. } if !queue.looks_full() => Ok(true),
            Backend::Redis { queue, .. } => queue.has_room(tenant).await,
        }
    }

    /// Enqueues a stored job.
    pub async fn push(&self, id: JobId, tenant: &str) -> Result<(), StoreError> {
        match self {
            Backend::Memory { queue, .. } => queue.push_now(id, tenant),
            // Queued with its insert already.
            Backend::Redis { queue, .. } if queue.take_submitted(id) => Ok(()),
            Backend::Redis { queue, .. } => queue.push(id, tenant).await,
        }
    }

    /// Stops handing out jobs (and taking new ones).
    pub fn close(&self) {
        match self {
            Backend::Memory { queue, .. } => queue.close(),
            Backend::Redis { queue, .. } => queue.close(),
        }
    }

    /// Whether [`close`](Backend::close) was called.
    pub fn is_closed(&self) -> bool {
        match self {
            Backend::Memory { queue, .. } => queue.is_closed(),
            Backend::Redis { queue, .. } => queue.is_closed(),
        }
    }

    /// Whether the queue is full: the in-process queue now, the Redis queue as last seen
    /// (by this process's monitor, every half second, or a submission's check).
    pub fn is_full(&self) -> bool {
        match self {
            Backend::Memory { queue, .. } => queue.is_full(),
            Backend::Redis { queue, .. } => queue.looks_full(),
        }
    }

    /// Whether the store and queue can be reached: always in memory; for Redis, whether it
    /// answered this process's last check (every half second).
    pub fn is_reachable(&self) -> bool {
        match self {
            Backend::Memory { .. } => true,
            Backend::Redis { queue, .. } => queue.is_up(),
        }
    }

    /// Jobs waiting in this process's queue (0 for Redis: its depth gauge is set on pop).
    pub fn local_len(&self) -> usize {
        match self {
            Backend::Memory { queue, .. } => queue.len(),
            Backend::Redis { .. } => 0,
        }
    }
}
