//! The embedded job queue: core's [`FairQueue`] behind a mutex, with a [`Notify`] so the
//! dispatcher sleeps until there is work.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use imgchkr_core::notify::BoxFuture;
use imgchkr_core::store::Lease;
use imgchkr_core::{FairQueue, JobId, JobQueue, QueueFull, StoreError};
use tokio::sync::Notify;

/// `Retry-After` hint, in seconds, when the queue is full.
pub const RETRY_AFTER_SECS: u32 = 1;

/// A bounded in-memory queue, round-robin across tenants. Jobs in it are lost if the process
/// exits: this is the embedded deployment.
pub struct MemoryQueue {
    queue: Mutex<FairQueue<JobId>>,
    ready: Notify,
    closed: AtomicBool,
}

impl MemoryQueue {
    /// A queue of `capacity` jobs, `per_tenant` of them per tenant.
    pub fn new(capacity: usize, per_tenant: usize) -> MemoryQueue {
        MemoryQueue {
            queue: Mutex::new(FairQueue::new(capacity, per_tenant)),
            ready: Notify::new(),
            closed: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, FairQueue<JobId>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `tenant` could enqueue now (checked before a job is stored, so a full queue
    /// usually refuses before any work is done).
    pub fn has_room(&self, tenant: &str) -> bool {
        !self.is_closed() && self.lock().has_room(tenant).is_ok()
    }

    /// Whether the queue is at its overall capacity.
    pub fn is_full(&self) -> bool {
        let queue = self.lock();
        queue.len() >= queue.capacity()
    }

    /// Enqueues `id`, waking the dispatcher.
    pub fn push_now(&self, id: JobId, tenant: &str) -> Result<(), StoreError> {
        if self.is_closed() {
            return Err(StoreError::Closed);
        }
        self.lock()
            .push(tenant, id)
            .map_err(|_: QueueFull| StoreError::Full {
                retry_after_secs: RETRY_AFTER_SECS,
            })?;
        self.ready.notify_one();
        Ok(())
    }

    /// Waits for the next job; `None` once closed and empty.
    pub async fn pop_wait(&self) -> Option<(String, JobId)> {
        loop {
            // Registered before looking, so a push between the look and the wait still wakes.
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(next) = self.lock().pop() {
                return Some(next);
            }
            if self.is_closed() {
                return None;
            }
            notified.await;
        }
    }

    /// Refuses new jobs; the waiting ones are still handed out.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.ready.notify_waiters();
        self.ready.notify_one();
    }

    /// Whether [`close`](MemoryQueue::close) was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Jobs waiting.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no job waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl JobQueue for MemoryQueue {
    fn push(&self, id: JobId, tenant: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(std::future::ready(self.push_now(id, tenant)))
    }

    fn pop(&self) -> BoxFuture<'_, Result<Option<Lease>, StoreError>> {
        Box::pin(async move {
            Ok(self
                .pop_wait()
                .await
                .map(|(tenant, id)| Lease::new(id, tenant, "")))
        })
    }

    fn ack(&self, _lease: &Lease) -> BoxFuture<'_, Result<(), StoreError>> {
        // Popped is gone: an in-memory job is never redelivered.
        Box::pin(std::future::ready(Ok(())))
    }

    fn depth(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(std::future::ready(Ok(self.len() as u64)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pop_waits_for_push_and_ends_when_closed() {
        let queue = std::sync::Arc::new(MemoryQueue::new(2, 2));
        let q = queue.clone();
        let waiter = tokio::spawn(async move { q.pop_wait().await });
        tokio::task::yield_now().await;
        let id = JobId::random();
        queue.push_now(id, "").unwrap();
        assert_eq!(waiter.await.unwrap(), Some((String::new(), id)));
        queue.close();
        assert_eq!(queue.pop_wait().await, None);
        assert_eq!(queue.push_now(id, ""), Err(StoreError::Closed));
    }
}
