//! In-memory building blocks for the embedded deployment: a [`MemoryStore`] with bounded
//! retention, and a [`FairQueue`] that hands out work round-robin across tenants.
//!
//! Both are plain data structures behind a `std` mutex (never held across an await): the
//! async wrapper that lets a worker wait for the queue lives with the runtime, in the adapter.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::job::{Job, JobId, JobUpdate};
use crate::notify::BoxFuture;
use crate::store::{Inserted, JobStore, ListQuery, StoreError};

/// How long and how many jobs a [`MemoryStore`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// A finished job is forgotten this long after its verdict.
    pub max_age: Duration,
    /// At most this many jobs are kept; past it the oldest finished jobs go first.
    pub max_jobs: usize,
}

impl Default for Retention {
    /// One hour, 100,000 jobs.
    fn default() -> Self {
        Retention {
            max_age: Duration::from_secs(3600),
            max_jobs: 100_000,
        }
    }
}

struct Entry {
    job: Job,
    /// Insertion order, for listing newest first.
    seq: u64,
}

#[derive(Default)]
struct Inner {
    jobs: HashMap<JobId, Entry>,
    /// Every stored job by insertion order.
    order: BTreeMap<u64, JobId>,
    /// Finished jobs in the order their verdicts arrived: the eviction order.
    finished: VecDeque<(Instant, JobId)>,
    next_seq: u64,
}

/// A [`JobStore`] in memory, bounded in time and count.
///
/// Only finished jobs are evicted: a queued or started job is owed a verdict and webhooks, and
/// the queue's capacity already bounds how many of those exist. So the store holds at most
/// `max_jobs` plus the unfinished jobs. Eviction is amortised O(1) and happens on writes.
pub struct MemoryStore {
    inner: Mutex<Inner>,
    retention: Retention,
}

impl MemoryStore {
    /// An empty store keeping jobs as `retention` says.
    pub fn new(retention: Retention) -> MemoryStore {
        MemoryStore {
            inner: Mutex::default(),
            retention,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The data stays consistent at every step, so a panic elsewhere leaves it usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores `job` unless its id exists.
    pub fn insert_now(&self, job: Job) -> Inserted {
        let mut inner = self.lock();
        let now = Instant::now();
        inner.evict(now, &self.retention);
        if let Some(existing) = inner.jobs.get(&job.id) {
            return Inserted::Existing(Box::new(existing.job.clone()));
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.order.insert(seq, job.id);
        let finished = job.state.is_final();
        let id = job.id;
        inner.jobs.insert(id, Entry { job, seq });
        if finished {
            inner.finished.push_back((now, id));
        }
        Inserted::New
    }

    /// The job, unless unknown or expired.
    pub fn get_now(&self, id: JobId) -> Option<Job> {
        let mut inner = self.lock();
        inner.expire(Instant::now(), self.retention.max_age);
        inner.jobs.get(&id).map(|entry| entry.job.clone())
    }

    /// Applies `update`; a no-op for an unknown or expired job.
    pub fn update_now(&self, id: JobId, update: &JobUpdate) {
        let mut inner = self.lock();
        let now = Instant::now();
        let Some(entry) = inner.jobs.get_mut(&id) else {
            return;
        };
        let was_final = entry.job.state.is_final();
        entry.job.apply(update);
        if !was_final && entry.job.state.is_final() {
            inner.finished.push_back((now, id));
            inner.evict(now, &self.retention);
        }
    }

    /// Forgets a job (a submission that could not be queued).
    pub fn remove(&self, id: JobId) -> Option<Job> {
        let mut inner = self.lock();
        let entry = inner.jobs.remove(&id)?;
        inner.order.remove(&entry.seq);
        // A stale `finished` entry is skipped when it reaches the front.
        Some(entry.job)
    }

    /// Jobs held now.
    pub fn len(&self) -> usize {
        self.lock().jobs.len()
    }

    /// Whether no job is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Recent jobs, newest first, as `query` selects them. An unknown or expired cursor gives
    /// an empty page.
    pub fn list_now(&self, query: &ListQuery) -> Vec<Job> {
        let mut inner = self.lock();
        inner.expire(Instant::now(), self.retention.max_age);
        let end = match query.before {
            None => u64::MAX,
            Some(cursor) => match inner.jobs.get(&cursor) {
                Some(entry) => entry.seq,
                None => return Vec::new(),
            },
        };
        inner
            .order
            .range(..end)
            .rev()
            .filter_map(|(_, id)| inner.jobs.get(id))
            .map(|entry| &entry.job)
            .filter(|job| query.tenant.is_none() || job.tenant == query.tenant)
            .filter(|job| query.state.is_none_or(|state| job.state == state))
            .take(query.limit)
            .cloned()
            .collect()
    }
}

impl Inner {
    /// Forgets finished jobs past their age.
    fn expire(&mut self, now: Instant, max_age: Duration) {
        while let Some(&(at, _)) = self.finished.front() {
            if now.saturating_duration_since(at) < max_age {
                break;
            }
            self.evict_front();
        }
    }

    /// Expires by age, then forgets the oldest finished jobs while over the count.
    fn evict(&mut self, now: Instant, retention: &Retention) {
        self.expire(now, retention.max_age);
        while self.jobs.len() > retention.max_jobs && !self.finished.is_empty() {
            self.evict_front();
        }
    }

    fn evict_front(&mut self) {
        if let Some((_, id)) = self.finished.pop_front()
            && let Some(entry) = self.jobs.remove(&id)
        {
            self.order.remove(&entry.seq);
        }
    }
}

impl JobStore for MemoryStore {
    fn insert(&self, job: Job) -> BoxFuture<'_, Result<Inserted, StoreError>> {
        let inserted = self.insert_now(job);
        Box::pin(std::future::ready(Ok(inserted)))
    }

    fn get(&self, id: JobId) -> BoxFuture<'_, Result<Option<Job>, StoreError>> {
        Box::pin(std::future::ready(Ok(self.get_now(id))))
    }

    fn update(&self, id: JobId, update: JobUpdate) -> BoxFuture<'_, Result<(), StoreError>> {
        self.update_now(id, &update);
        Box::pin(std::future::ready(Ok(())))
    }

    fn list(&self, query: ListQuery) -> BoxFuture<'_, Result<Vec<Job>, StoreError>> {
        Box::pin(std::future::ready(Ok(self.list_now(&query))))
    }
}

/// Why [`FairQueue::push`] refused an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueueFull {
    /// The queue holds its capacity.
    #[error("queue full")]
    Overall,
    /// The tenant holds its share.
    #[error("tenant's queue share full")]
    Tenant,
}

/// A bounded queue, fair across tenants.
///
/// - At most `capacity` items overall, and at most `per_tenant` for any one tenant, so one
///   tenant flooding the queue leaves room for the others (with `per_tenant < capacity`).
/// - [`pop`](FairQueue::pop) serves tenants round-robin: one item from each tenant with
///   waiting items in turn, each tenant in FIFO order. A tenant with one job waiting behind
///   another tenant's thousand waits for one item, not a thousand.
#[derive(Debug)]
pub struct FairQueue<T> {
    tenants: HashMap<String, VecDeque<T>>,
    /// Tenants with waiting items, in serving order.
    rotation: VecDeque<String>,
    len: usize,
    capacity: usize,
    per_tenant: usize,
}

impl<T> FairQueue<T> {
    /// A queue of at most `capacity` items, `per_tenant` of them per tenant (both at least 1).
    pub fn new(capacity: usize, per_tenant: usize) -> FairQueue<T> {
        let capacity = capacity.max(1);
        FairQueue {
            tenants: HashMap::new(),
            rotation: VecDeque::new(),
            len: 0,
            capacity,
            per_tenant: per_tenant.clamp(1, capacity),
        }
    }

    /// Whether `tenant` could push an item now.
    pub fn has_room(&self, tenant: &str) -> Result<(), QueueFull> {
        if self.len >= self.capacity {
            return Err(QueueFull::Overall);
        }
        if self.tenants.get(tenant).map_or(0, VecDeque::len) >= self.per_tenant {
            return Err(QueueFull::Tenant);
        }
        Ok(())
    }

    /// Appends `item` to `tenant`'s line.
    pub fn push(&mut self, tenant: &str, item: T) -> Result<(), QueueFull> {
        self.has_room(tenant)?;
        let line = match self.tenants.get_mut(tenant) {
            Some(line) => line,
            None => self.tenants.entry(tenant.to_owned()).or_default(),
        };
        if line.is_empty() {
            self.rotation.push_back(tenant.to_owned());
        }
        line.push_back(item);
        self.len += 1;
        Ok(())
    }

    /// The next item, from the tenant whose turn it is.
    pub fn pop(&mut self) -> Option<(String, T)> {
        let tenant = self.rotation.pop_front()?;
        let line = self.tenants.get_mut(&tenant)?;
        let item = line.pop_front()?;
        self.len -= 1;
        if line.is_empty() {
            // Dropping the empty line keeps memory bounded by the tenants with work waiting.
            self.tenants.remove(&tenant);
        } else {
            self.rotation.push_back(tenant.clone());
        }
        Some((tenant, item))
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The overall bound.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The per-tenant bound.
    pub fn per_tenant(&self) -> usize {
        self.per_tenant
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{AssetPath, NotificationUrls};
    use time::OffsetDateTime;

    fn job(tenant: Option<&str>) -> Job {
        let url: url::Url = "http://cb/x".parse().unwrap();
        let mut job = Job::new(
            JobId::random(),
            AssetPath::Local {
                path: "a.jpg".into(),
            },
            NotificationUrls {
                on_start: url.clone(),
                on_success: url.clone(),
                on_failure: url,
            },
        );
        job.tenant = tenant.map(str::to_owned);
        job
    }

    fn finish(store: &MemoryStore, id: JobId) {
        store.update_now(
            id,
            &JobUpdate::Verdict {
                errors: None,
                at: OffsetDateTime::now_utc(),
            },
        );
    }

    #[test]
    fn insert_is_idempotent_and_updates_apply() {
        let store = MemoryStore::new(Retention::default());
        let j = job(None);
        assert_eq!(store.insert_now(j.clone()), Inserted::New);
        assert!(matches!(store.insert_now(j.clone()), Inserted::Existing(_)));
        finish(&store, j.id);
        assert!(store.get_now(j.id).unwrap().state.is_final());
        assert_eq!(store.remove(j.id).map(|j| j.id), Some(j.id));
        assert!(store.get_now(j.id).is_none());
    }

    #[test]
    fn evicts_finished_jobs_oldest_first_by_count() {
        let store = MemoryStore::new(Retention {
            max_age: Duration::from_secs(3600),
            max_jobs: 3,
        });
        let unfinished = job(None);
        store.insert_now(unfinished.clone());
        let mut ids = Vec::new();
        for _ in 0..10 {
            let j = job(None);
            ids.push(j.id);
            store.insert_now(j.clone());
            finish(&store, j.id);
        }
        assert_eq!(store.len(), 3);
        assert!(store.get_now(unfinished.id).is_some(), "unfinished kept");
        assert!(store.get_now(ids[9]).is_some());
        assert!(store.get_now(ids[8]).is_some());
        assert!(store.get_now(ids[0]).is_none());
    }

    #[test]
    fn expires_finished_jobs_by_age() {
        let store = MemoryStore::new(Retention {
            max_age: Duration::ZERO,
            max_jobs: 10,
        });
        let j = job(None);
        store.insert_now(j.clone());
        assert!(store.get_now(j.id).is_some(), "queued jobs never expire");
        finish(&store, j.id);
        assert!(store.get_now(j.id).is_none());
        assert!(store.is_empty());
    }

    #[test]
    fn lists_newest_first_by_tenant_with_cursor() {
        let store = MemoryStore::new(Retention::default());
        let jobs: Vec<Job> = (0..5)
            .map(|i| job(Some(if i % 2 == 0 { "a" } else { "b" })))
            .collect();
        for j in &jobs {
            store.insert_now(j.clone());
        }
        let mut query = ListQuery::new(2);
        query.tenant = Some("a".into());
        let page: Vec<JobId> = store.list_now(&query).iter().map(|j| j.id).collect();
        assert_eq!(page, [jobs[4].id, jobs[2].id]);
        query.before = Some(jobs[2].id);
        let page: Vec<JobId> = store.list_now(&query).iter().map(|j| j.id).collect();
        assert_eq!(page, [jobs[0].id]);
    }

    #[test]
    fn fair_queue_round_robins_and_bounds_shares() {
        let mut q = FairQueue::new(10, 4);
        for i in 0..4 {
            q.push("flood", i).unwrap();
        }
        assert_eq!(q.push("flood", 99), Err(QueueFull::Tenant));
        q.push("quiet", 100).unwrap();
        let order: Vec<(String, i32)> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order[0], ("flood".into(), 0));
        assert_eq!(order[1], ("quiet".into(), 100));
        assert_eq!(order.len(), 5);
        assert!(q.is_empty());
        let mut q = FairQueue::new(2, 2);
        q.push("a", 1).unwrap();
        q.push("b", 2).unwrap();
        assert_eq!(q.push("c", 3), Err(QueueFull::Overall));
    }
}
