//! The in-process workers: a dispatcher takes jobs off the queue (round-robin across tenants)
//! and runs each as a task; a `local` header is read inline (or on the blocking pool with
//! `--blocking-local-reads`), `url`/`s3` ones fetched asynchronously, at most `workers` at
//! once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use imgchkr_core::{
    AssetPath, ImageDir, Job, JobId, JobState, JobStore, Policy, Report, StoreError,
    ValidationError, run_job,
};
use imgchkr_fetch::RemoteSources;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info_span, warn};

use crate::redis::{JobSession, Leased, MAX_BATCH, Record, RedisQueue};

use crate::backend::Backend;
use crate::metrics as m;
use crate::webhooks::Webhooks;

/// The first wait before retrying a Redis step (doubled on each failure).
const RETRY_FIRST: Duration = Duration::from_millis(500);
/// The longest wait between retries of a Redis step.
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How many times a leased job's run or acknowledgement is retried (about 25 s with the
/// backoff) before its lease is released for another worker.
const LEASE_RETRIES: u32 = 7;

/// Everything a job needs to run.
pub struct Workers {
    /// Where jobs are recorded and wait.
    pub backend: Backend,
    /// Sends the webhooks.
    pub webhooks: Arc<dyn Webhooks>,
    /// Where `local` paths resolve.
    pub image_dir: Arc<ImageDir>,
    /// Reads `url` and `s3` assets; `None` when only `local` is enabled.
    pub remote: Option<RemoteSources>,
    /// The limits.
    pub policy: Policy,
    /// One permit per header read in progress.
    pub probe_slots: Arc<Semaphore>,
    /// Whether `local` reads run on the blocking pool (network filesystems) rather than
    /// inline.
    pub blocking_local_reads: bool,
    /// One permit per job in flight.
    pub job_slots: Arc<Semaphore>,
    /// How many job permits exist (to wait for all of them at shutdown).
    pub max_jobs: u32,
    /// Cleared when the dispatcher stops (readiness).
    pub alive: Arc<AtomicBool>,
}

impl Workers {
    /// Starts the dispatcher. It stops once the queue is closed and empty.
    pub fn spawn(self: &Arc<Self>) -> JoinHandle<()> {
        let workers = Arc::clone(self);
        workers.alive.store(true, Ordering::SeqCst);
        tokio::spawn(async move {
            workers.dispatch().await;
            workers.alive.store(false, Ordering::SeqCst);
        })
    }

    async fn dispatch(self: &Arc<Self>) {
        match &self.backend {
            Backend::Memory { queue, .. } => self.dispatch_memory(Arc::clone(queue)).await,
            Backend::Redis { queue, .. } => self.dispatch_redis(Arc::clone(queue)).await,
        }
    }

    async fn dispatch_memory(self: &Arc<Self>, queue: Arc<crate::queue::MemoryQueue>) {
        loop {
            // A slot first, then a job: a job leaves the queue only when it can start.
            let Ok(slot) = Arc::clone(&self.job_slots).acquire_owned().await else {
                return;
            };
            let Some((_tenant, id)) = queue.pop_wait().await else {
                return;
            };
            metrics::gauge!(m::QUEUE_DEPTH).set(queue.len() as f64);
            let workers = Arc::clone(self);
            tokio::spawn(async move {
                metrics::gauge!(m::JOBS_IN_FLIGHT).increment(1.0);
                workers.run(id).await;
                metrics::gauge!(m::JOBS_IN_FLIGHT).decrement(1.0);
                drop(slot);
            });
        }
    }

    /// Leases from Redis: acknowledged only once the job's verdict and final webhook are
    /// recorded; a lease left unacknowledged is taken over by another worker later. Takes
    /// as many leases at once as there are free job slots (one round trip, job records
    /// included), so no lease waits in this process for a slot.
    async fn dispatch_redis(self: &Arc<Self>, queue: Arc<RedisQueue>) {
        let mut backoff = RETRY_FIRST;
        loop {
            let Ok(slot) = Arc::clone(&self.job_slots).acquire_owned().await else {
                return;
            };
            let mut slots = vec![slot];
            while slots.len() < MAX_BATCH {
                match Arc::clone(&self.job_slots).try_acquire_owned() {
                    Ok(slot) => slots.push(slot),
                    Err(_) => break,
                }
            }
            let batch = match queue.pop_batch(slots.len()).await {
                Ok(batch) if batch.is_empty() => return,
                Ok(batch) => {
                    backoff = RETRY_FIRST;
                    batch
                }
                Err(e) => {
                    drop(slots);
                    if queue.is_closed() {
                        return;
                    }
                    warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "queue unavailable; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RETRY_MAX);
                    continue;
                }
            };
            // Slots left over (fewer entries than free slots) go back as `slots` drops.
            for (leased, slot) in batch.into_iter().zip(slots.drain(..)) {
                let workers = Arc::clone(self);
                let queue = Arc::clone(&queue);
                tokio::spawn(async move {
                    metrics::gauge!(m::JOBS_IN_FLIGHT).increment(1.0);
                    workers.run_lease(&queue, leased).await;
                    metrics::gauge!(m::JOBS_IN_FLIGHT).decrement(1.0);
                    drop(slot);
                });
            }
        }
    }

    /// Runs (or parks) a leased job, then acknowledges it together with the job's last
    /// updates ([`JobSession`] holds them back). A step that fails on Redis is retried with
    /// backoff ([`LEASE_RETRIES`]); if Redis stays away, the lease is released: no longer
    /// heartbeated, so a worker takes it over after the reclaim idle time.
    async fn run_lease(&self, queue: &RedisQueue, leased: Leased) {
        let Leased { lease, record, .. } = leased;
        let Backend::Redis { store, .. } = &self.backend else {
            return;
        };
        let span = info_span!("job", job_id = %lease.id);
        // The record read with the lease serves the first attempt; a retry reads it again.
        let mut prefetched = Some(record);
        let session = JobSession::new(store.clone(), lease.id);
        let ran = self
            .with_retries(queue, "job could not be recorded", || {
                let record = prefetched.take().unwrap_or(Record::Unread);
                let session = &session;
                let lease = &lease;
                async move {
                    if queue.is_poison(lease) {
                        // Every worker that took it stopped before finishing: the client
                        // hears onFailure instead of the job running again (acknowledged by
                        // `park`).
                        if let Some(state) = queue.park(lease, &*self.webhooks).await? {
                            metrics::counter!(m::JOBS, "state" => state.name()).increment(1);
                        }
                        return Ok(true);
                    }
                    let job = match record {
                        Record::Found(job) => Some(*job),
                        Record::Missing => None,
                        _ => self.backend.get(lease.id).await?,
                    };
                    // Removed (refused at submission) or expired: nothing is owed.
                    if let Some(job) = job {
                        // A failed attempt's held updates are dropped: the job runs again.
                        session.take_held().await;
                        self.run_with(&job, session).await?;
                    }
                    Ok(false)
                }
            })
            .instrument(span.clone())
            .await;
        let settled = match ran {
            Some(true) => true,
            Some(false) => {
                let held = session.take_held().await;
                self.with_retries(queue, "job could not be acknowledged", || {
                    queue.finish(&lease, &held)
                })
                .instrument(span.clone())
                .await
                .is_some()
            }
            None => false,
        };
        if !settled {
            queue.release(&lease);
            span.in_scope(|| {
                warn!("Redis unavailable: job released for another worker to take over")
            });
        }
    }

    /// Runs `step` until it succeeds, retrying a failure after 0.5 s, 1 s, 2 s, … (at most
    /// [`LEASE_RETRIES`] retries, none once shutdown began). `None` if it never succeeded.
    async fn with_retries<T, F, Fut>(
        &self,
        queue: &RedisQueue,
        what: &str,
        mut step: F,
    ) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut backoff = RETRY_FIRST;
        for retry in 0..=LEASE_RETRIES {
            match step().await {
                Ok(value) => return Some(value),
                Err(e) => {
                    if retry == LEASE_RETRIES || queue.is_closed() {
                        warn!(error = %e, "{what}; giving up");
                        return None;
                    }
                    warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "{what}; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RETRY_MAX);
                }
            }
        }
        None
    }

    /// Runs one job: submission → probe → policy → notifier, as core's runner orders it.
    async fn run(&self, id: JobId) {
        // Removed (refused at submission) or expired while waiting: nothing is owed.
        let Ok(Some(job)) = self.backend.get(id).await else {
            return;
        };
        let _ = self.run_recorded(&job).await;
    }

    async fn run_recorded(&self, job: &Job) -> Result<JobState, StoreError> {
        self.run_with(job, self.backend.store()).await
    }

    /// Runs one job, recording it in `store`.
    async fn run_with(&self, job: &Job, store: &dyn JobStore) -> Result<JobState, StoreError> {
        let span = info_span!("job", job_id = %job.id);
        async {
            debug!("started");
            let validate = self.validate(job.asset_path.clone());
            let result = run_job(job, store, &*self.webhooks, validate).await;
            match &result {
                Ok(state) => {
                    debug!(state = %state, "finished");
                    metrics::counter!(m::JOBS, "state" => state.name()).increment(1);
                }
                Err(e) => warn!(error = %e, "job could not be recorded"),
            }
            result
        }
        .instrument(span)
        .await
    }

    /// Probes and checks the image, holding a probe slot: `local` off the reactor on the
    /// blocking pool, `url` and `s3` through the remote sources (async).
    async fn validate(&self, asset: AssetPath) -> Report {
        let Ok(_slot) = self.probe_slots.acquire().await else {
            return Report::unreachable(read_failed(&asset, "shutting down"));
        };
        let policy = self.policy;
        let started = Instant::now();
        let report = match &asset {
            // Inline: a few syscalls on a local file cost less than waking a pool thread
            // (measured: about a quarter of the server's CPU per job under load).
            AssetPath::Local { path } if !self.blocking_local_reads => {
                self.image_dir.validate(path, &policy)
            }
            AssetPath::Local { .. } => {
                let dir = Arc::clone(&self.image_dir);
                let probe = asset.clone();
                tokio::task::spawn_blocking(move || match &probe {
                    AssetPath::Local { path } => dir.validate(path, &policy),
                    other => Report::unreachable(read_failed(other, "unsupported location")),
                })
                .await
                .unwrap_or_else(|_| Report::unreachable(read_failed(&asset, "validation aborted")))
            }
            AssetPath::Url { .. } | AssetPath::S3 { .. } => match &self.remote {
                Some(remote) => remote.validate(&asset, &policy).await,
                None => Report::unreachable(read_failed(&asset, "unsupported location")),
            },
            #[allow(unreachable_patterns)]
            _ => Report::unreachable(read_failed(&asset, "unsupported location")),
        };
        metrics::histogram!(m::VALIDATION_SECONDS).record(started.elapsed().as_secs_f64());
        report
    }

    /// Stops taking new jobs and waits, up to `timeout`, for the queued and in-flight ones to
    /// finish with their webhooks. Returns how many jobs were abandoned (queued or running).
    pub async fn drain(&self, dispatcher: JoinHandle<()>, timeout: Duration) -> usize {
        self.backend.close();
        let finished = tokio::time::timeout(timeout, async {
            let _ = dispatcher.await;
            // Every slot back means every job task has ended.
            let _all = self.job_slots.acquire_many(self.max_jobs).await;
        })
        .await;
        match finished {
            Ok(()) => 0,
            Err(_) => {
                let running = self.max_jobs as usize - self.job_slots.available_permits();
                self.backend.local_len() + running
            }
        }
    }
}

fn read_failed(asset: &AssetPath, reason: &str) -> ValidationError {
    ValidationError::ReadFailed {
        path: asset.path().to_owned(),
        reason: reason.to_owned(),
    }
}
