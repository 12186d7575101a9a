//! [`MemoryEngine`]: the [`Engine`] in this process's memory (`memory:`), for tests and
//! throwaway runs. Every accepted job is lost when the process exits.
//!
//! Plain data structures behind one `std` mutex (never held across an await); the only
//! asynchronous part is the wake-up of an idle worker ([`Engine::work_available`]).

mod queue;
mod records;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use event_listener::Event;
use time::OffsetDateTime;

use crate::engine::{
    Admission, Bucket, Cancel, Engine, Lease, LeaseRequest, Leased, ListQuery, Lookup, QueueStats,
    Retention, StoreError, Submitted, Token, WORKER_SEEN_FOR, WorkerId, WorkerSeen,
};
use crate::job::{Job, JobKey, JobState, JobUpdate};
use crate::map::Map;
use crate::notify::BoxFuture;

use queue::Queue;
use records::Records;

/// A time as nanoseconds since the epoch: the ordering key of the engine's time-ordered
/// indexes. Comparing `OffsetDateTime`s normalises both offsets at every step of a tree
/// search (3 % of the service's instructions, callgrind); integers compare in one.
fn nanos(at: OffsetDateTime) -> i128 {
    at.unix_timestamp_nanos()
}

#[derive(Default)]
struct State {
    records: Records,
    queue: Queue,
    workers: Vec<WorkerSeen>,
    /// Token buckets: tokens held and when last filled.
    buckets: Map<String, (f64, OffsetDateTime)>,
    /// Remembered values and when they expire.
    remembered: Map<String, (String, OffsetDateTime)>,
}

/// The in-memory engine. Bounded by the queue capacity (waiting jobs), the workers' slots (jobs
/// in flight) and the [`Retention`] its `purge` is given (finished jobs and tombstones).
#[derive(Default)]
pub struct MemoryEngine {
    state: Mutex<State>,
    /// Wakes an idle worker on a submission or a released lease.
    work: Event,
    /// Submissions and releases so far, and as many as the last `lease` had seen.
    pushes: AtomicU64,
    seen: AtomicU64,
}

impl MemoryEngine {
    /// An empty engine.
    pub fn new() -> MemoryEngine {
        MemoryEngine::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every step leaves the state consistent, so a panic elsewhere leaves it usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake(&self) {
        self.pushes.fetch_add(1, Ordering::SeqCst);
        self.work.notify(1);
    }

    fn submit_now(&self, job: &Job, admission: Admission) -> Result<Submitted, StoreError> {
        let key = job.key();
        let mut state = self.lock();
        if let Some(existing) = state.records.get(&key) {
            return Ok(Submitted::Existing(Box::new(existing.job.clone())));
        }
        state
            .queue
            .room(&key.tenant, admission.capacity, admission.tenant_share)
            .map_err(StoreError::Full)?;
        let mut job = job.clone();
        job.state = JobState::Queued;
        let priority = job.priority;
        let seq = state.records.insert(job);
        state.queue.push(&key.tenant, priority, seq, key.id);
        drop(state);
        self.wake();
        Ok(Submitted::New)
    }

    fn cancel_now(&self, key: &JobKey, at: OffsetDateTime) -> Cancel {
        let mut state = self.lock();
        let State { records, queue, .. } = &mut *state;
        let Some(record) = records.get_mut(key) else {
            return match records.lookup(key) {
                Lookup::Expired => Cancel::Expired,
                _ => Cancel::Unknown,
            };
        };
        if record.job.state != JobState::Queued
            || !queue.remove(&key.tenant, record.job.priority, record.seq)
        {
            return Cancel::NotQueued(Box::new(record.job.clone()));
        }
        record.job.state = JobState::Cancelled;
        record.job.finished_at = Some(at);
        let job = record.job.clone();
        records.retire(key);
        Cancel::Cancelled(Box::new(job))
    }

    fn lease_now(&self, request: &LeaseRequest) -> Vec<Leased> {
        let most = request.max.max(1);
        let mut state = self.lock();
        let State { records, queue, .. } = &mut *state;
        let mut leased = Vec::new();
        for key in queue.expired(request.now, most) {
            queue.hold(&key, &request.worker, request.until);
            if let Some(taken) = start(records, &key, &request.worker, request.now) {
                leased.push(taken);
            }
        }
        while leased.len() < most {
            let Some(key) = queue.next(request.tenant_in_flight) else {
                break;
            };
            queue.hold(&key, &request.worker, request.until);
            if let Some(taken) = start(records, &key, &request.worker, request.now) {
                leased.push(taken);
            }
        }
        leased
    }

    fn heartbeat_now(
        &self,
        worker: &WorkerId,
        leases: &[Lease],
        now: OffsetDateTime,
        until: OffsetDateTime,
        status: &str,
    ) -> Vec<Lease> {
        let mut state = self.lock();
        let mut lost = Vec::new();
        for lease in leases {
            match state.queue.holder(&lease.key) {
                Some(held) if held.worker == *worker => state.queue.extend(&lease.key, until),
                _ => lost.push(lease.clone()),
            }
        }
        let held = (leases.len() - lost.len()) as u64;
        state
            .workers
            .retain(|seen| seen.worker != *worker && seen.at + WORKER_SEEN_FOR > now);
        state.workers.push(WorkerSeen {
            worker: worker.clone(),
            at: now,
            held,
            status: status.to_owned(),
        });
        state.workers.sort_by(|a, b| a.worker.cmp(&b.worker));
        lost
    }

    fn record_now(&self, key: &JobKey, updates: &[JobUpdate], finish: bool) {
        let mut state = self.lock();
        let State { records, queue, .. } = &mut *state;
        if let Some(record) = records.get_mut(key) {
            for update in updates {
                record.job.apply(update);
            }
        }
        if finish {
            queue.end(key);
            records.retire(key);
        }
    }

    fn release_now(&self, lease: &Lease) {
        let mut state = self.lock();
        if state
            .queue
            .holder(&lease.key)
            .is_some_and(|held| held.worker == lease.worker)
        {
            // Expired now: the next lease of any worker takes it over.
            state.queue.extend(&lease.key, OffsetDateTime::UNIX_EPOCH);
            drop(state);
            self.wake();
        }
    }

    fn take_token_now(&self, name: &str, bucket: Bucket, now: OffsetDateTime) -> Token {
        let mut state = self.lock();
        let burst = f64::from(bucket.burst.max(1));
        let (tokens, last) = state.buckets.entry(name.to_owned()).or_insert((burst, now));
        let elapsed = (now - *last).as_seconds_f64().max(0.0);
        *tokens = (*tokens + elapsed * bucket.rate).min(burst);
        if now > *last {
            *last = now;
        }
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Token::Granted
        } else {
            Token::Wait(token_wait(*tokens, bucket.rate))
        }
    }

    fn remember_now(
        &self,
        key: &str,
        value: &str,
        expires: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Option<String> {
        let mut state = self.lock();
        match state.remembered.get(key) {
            Some((held, until)) if *until > now => Some(held.clone()),
            _ => {
                state
                    .remembered
                    .insert(key.to_owned(), (value.to_owned(), expires));
                None
            }
        }
    }

    fn purge_now(&self, retention: &Retention, now: OffsetDateTime, budget: u64) -> u64 {
        let mut state = self.lock();
        state.remembered.retain(|_, (_, until)| *until > now);
        state.records.purge(retention, now, budget)
    }

    fn stats_now(&self) -> QueueStats {
        let state = self.lock();
        QueueStats {
            waiting: state.queue.waiting(),
            in_flight: state.queue.in_flight(),
            tenants: state.queue.tenants(),
            workers: state.workers.clone(),
        }
    }
}

/// How long until a bucket holding `tokens` (< 1) at `rate` a second has one.
pub(crate) fn token_wait(tokens: f64, rate: f64) -> std::time::Duration {
    if rate <= 0.0 {
        return std::time::Duration::from_secs(3600);
    }
    std::time::Duration::from_secs_f64(((1.0 - tokens) / rate).clamp(0.001, 3600.0))
}

/// Marks the job of `key` started for its delivery to `worker`.
fn start(
    records: &mut Records,
    key: &JobKey,
    worker: &WorkerId,
    now: OffsetDateTime,
) -> Option<Leased> {
    let record = records.get_mut(key)?;
    record.deliveries = record.deliveries.saturating_add(1);
    record.job.apply(&JobUpdate::Started { at: now });
    Some(Leased::new(
        Lease::new(key.clone(), worker.clone(), record.deliveries),
        record.job.clone(),
    ))
}

fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

impl Engine for MemoryEngine {
    fn submit<'a>(
        &'a self,
        job: &'a Job,
        admission: Admission,
    ) -> BoxFuture<'a, Result<Submitted, StoreError>> {
        ready(self.submit_now(job, admission))
    }

    fn get<'a>(&'a self, key: &'a JobKey) -> BoxFuture<'a, Result<Lookup, StoreError>> {
        ready(Ok(self.lock().records.lookup(key)))
    }

    fn list<'a>(&'a self, query: &'a ListQuery) -> BoxFuture<'a, Result<Vec<Job>, StoreError>> {
        ready(Ok(self.lock().records.list(query)))
    }

    fn cancel<'a>(
        &'a self,
        key: &'a JobKey,
        at: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Cancel, StoreError>> {
        ready(Ok(self.cancel_now(key, at)))
    }

    fn lease<'a>(
        &'a self,
        request: &'a LeaseRequest,
    ) -> BoxFuture<'a, Result<Vec<Leased>, StoreError>> {
        // Seen before looking: a submission after this point wakes the next wait.
        self.seen
            .store(self.pushes.load(Ordering::SeqCst), Ordering::SeqCst);
        ready(Ok(self.lease_now(request)))
    }

    fn heartbeat<'a>(
        &'a self,
        worker: &'a WorkerId,
        leases: &'a [Lease],
        now: OffsetDateTime,
        until: OffsetDateTime,
        status: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Lease>, StoreError>> {
        ready(Ok(self.heartbeat_now(worker, leases, now, until, status)))
    }

    fn record<'a>(
        &'a self,
        lease: &'a Lease,
        updates: &'a [JobUpdate],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.record_now(&lease.key, updates, false);
        ready(Ok(()))
    }

    fn finish<'a>(
        &'a self,
        lease: &'a Lease,
        updates: &'a [JobUpdate],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.record_now(&lease.key, updates, true);
        ready(Ok(()))
    }

    fn release<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<(), StoreError>> {
        self.release_now(lease);
        ready(Ok(()))
    }

    fn work_available(&self) -> BoxFuture<'_, ()> {
        let listener = self.work.listen();
        if self.pushes.load(Ordering::SeqCst) != self.seen.load(Ordering::SeqCst) {
            return ready(());
        }
        Box::pin(listener)
    }

    fn purge<'a>(
        &'a self,
        retention: &'a Retention,
        now: OffsetDateTime,
        budget: u64,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        ready(Ok(self.purge_now(retention, now, budget)))
    }

    fn stats(&self) -> BoxFuture<'_, Result<QueueStats, StoreError>> {
        ready(Ok(self.stats_now()))
    }

    fn take_token<'a>(
        &'a self,
        name: &'a str,
        bucket: Bucket,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Token, StoreError>> {
        ready(Ok(self.take_token_now(name, bucket, now)))
    }

    fn remember<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        expires: OffsetDateTime,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        ready(Ok(self.remember_now(key, value, expires, now)))
    }

    fn check(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        ready(Ok(()))
    }

    fn is_durable(&self) -> bool {
        false
    }

    fn is_shared(&self) -> bool {
        false
    }
}
