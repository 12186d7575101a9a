//! The one worker loop every engine is driven by: lease a batch of jobs up to the free job
//! slots, run each (or park it, or settle it), heartbeat the leases held, finish each with its
//! last updates, back off while the engine is away, and drain at shutdown.
//!
//! Runtime-agnostic: the caller supplies a [`Runtime`] (spawn and sleep), a [`Validator`]
//! (how an asset is read and checked) and a [`Notifier`]. Core's rules live here:
//!
//! - **Slots**: a job holds one of `max_in_flight` slots from its lease until its final
//!   webhook is settled and the lease finished; the worker leases only for free slots (no
//!   prefetch past them), so with one slot jobs start exactly in the engine's order.
//! - **Leases**: taken for `lease_idle` and pushed back every `heartbeat_every` while the job
//!   runs; a worker that dies stops heartbeating, and after `lease_idle` any worker's next
//!   lease takes the job over as a new delivery (at least once, with the same webhook ids).
//! - **Status**: each heartbeat also says what the worker did over the last minutes
//!   ([`crate::activity`]: jobs finished, webhook outcomes, slow destinations), sent at least
//!   every `status_every` so the dashboard of an API process sees it.
//! - **Poison**: a job handed out more than `max_deliveries` times is not run again: it is
//!   recorded failed with `Job abandoned after <N> delivery attempts` (unless its verdict is
//!   in, which then stands) and its final webhook is sent ([`runner::give_up`]).
//! - **Redelivery after the verdict**: a job whose verdict is already recorded is not
//!   validated again; its final webhook is sent unless already delivered ([`runner::settle`]).
//! - **Engine away**: a failed lease backs off (0.5 s doubling to 5 s); a job whose recording
//!   fails is retried from its start with the same backoff, at most [`JOB_RETRIES`] times,
//!   then its lease is released for a takeover.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_channel::mpsc;
use futures_util::{FutureExt as _, StreamExt as _};
use time::OffsetDateTime;
use tracing::{Instrument as _, debug, info, info_span, warn};

use crate::activity::{ActivityLog, Observed, WorkerStatus};
use crate::engine::{Engine, Lease, LeaseRequest, Leased, Retention, StoreError, WorkerId};
use crate::job::{Job, JobKey, JobState};
use crate::map::Map;
use crate::notify::{BoxFuture, Notifier};
use crate::recorder::Session;
use crate::runner;
use crate::source::Report;

/// Jobs run to their end, by final state (counter, label `state`).
pub const JOBS: &str = "imgchkr_jobs_total";
/// Jobs holding a slot now (gauge).
pub const JOBS_IN_FLIGHT: &str = "imgchkr_jobs_in_flight";
/// Jobs handed out again after a worker stopped heartbeating or released them (counter).
pub const REDELIVERED: &str = "imgchkr_jobs_redelivered_total";
/// Jobs parked after too many deliveries (counter).
pub const PARKED: &str = "imgchkr_jobs_parked_total";

/// How many times a job's run is retried after its engine failed (about 25 s with the
/// backoff) before its lease is released.
pub const JOB_RETRIES: u32 = 7;
/// The first wait before retrying an engine step (doubled on each failure).
pub const RETRY_FIRST: Duration = Duration::from_millis(500);
/// The longest wait between retries of an engine step.
pub const RETRY_MAX: Duration = Duration::from_secs(5);

/// Spawning and sleeping, from whatever async runtime the program runs.
pub trait Runtime: Send + Sync + 'static {
    /// Runs `task` to completion in the background.
    fn spawn(&self, task: BoxFuture<'static, ()>);
    /// Resolves after `duration`.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
}

/// How a job's asset is read and checked (local files, remote objects…): the adapter's part.
pub trait Validator: Send + Sync + 'static {
    /// Validates `job`'s asset under the server's policy.
    fn validate(&self, job: &Job) -> BoxFuture<'static, Report>;
}

/// How a worker takes and holds jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerConfig {
    /// This worker's name in the engine.
    pub worker: WorkerId,
    /// Jobs held at once (each mostly waits on its webhooks).
    pub max_in_flight: usize,
    /// How long a lease lasts without a heartbeat.
    pub lease_idle: Duration,
    /// How often held leases are pushed back (under `lease_idle`).
    pub heartbeat_every: Duration,
    /// A job handed out more than this many times is parked.
    pub max_deliveries: u32,
    /// How often an idle worker looks for jobs anyway (leases expired by dead workers wake
    /// nobody).
    pub poll_every: Duration,
    /// A tenant with this many jobs in flight (the whole deployment's) gets no more until
    /// one finishes.
    pub tenant_in_flight: Option<u64>,
    /// The most jobs one lease call takes.
    pub max_batch: usize,
    /// How often the worker's status (its recent activity, for the dashboard) is sent: the
    /// heartbeat goes at least this often (it pushes leases back as any heartbeat does).
    pub status_every: Duration,
}

impl WorkerConfig {
    /// `max_in_flight` slots, leases of 60 s heartbeated every 15 s, parking after 5
    /// deliveries, a look for jobs every 5 s when idle, batches of at most 64, the status
    /// sent every 5 s.
    pub fn new(worker: WorkerId, max_in_flight: usize) -> WorkerConfig {
        WorkerConfig {
            worker,
            max_in_flight: max_in_flight.max(1),
            lease_idle: Duration::from_secs(60),
            heartbeat_every: Duration::from_secs(15),
            max_deliveries: 5,
            poll_every: Duration::from_secs(5),
            tenant_in_flight: None,
            max_batch: 64,
            status_every: Duration::from_secs(5),
        }
    }
}

/// A worker: leases and runs jobs from one engine (see the module docs).
pub struct Worker {
    engine: Arc<dyn Engine>,
    notifier: Arc<dyn Notifier>,
    validator: Arc<dyn Validator>,
    runtime: Arc<dyn Runtime>,
    config: WorkerConfig,
    /// The leases of the jobs running now.
    held: Mutex<Map<JobKey, Lease>>,
    in_flight: AtomicUsize,
    running: AtomicBool,
    stopping: AtomicBool,
    /// What it did recently, sent with each heartbeat.
    activity: Arc<ActivityLog>,
}

impl Worker {
    /// A worker of `engine`, not running yet ([`run`](Worker::run)).
    pub fn new(
        engine: Arc<dyn Engine>,
        notifier: Arc<dyn Notifier>,
        validator: Arc<dyn Validator>,
        runtime: Arc<dyn Runtime>,
        config: WorkerConfig,
    ) -> Arc<Worker> {
        let activity = Arc::new(ActivityLog::new());
        // Every delivery's outcome is noted for the status, whatever the notifier.
        let notifier = Arc::new(Observed::new(notifier, Arc::clone(&activity)));
        Arc::new(Worker {
            engine,
            notifier,
            validator,
            runtime,
            config,
            held: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            running: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            activity,
        })
    }

    /// What this worker did over the last minutes.
    pub fn activity(&self) -> &ActivityLog {
        &self.activity
    }

    /// The status its heartbeats send now.
    pub fn status(&self, now: OffsetDateTime) -> WorkerStatus {
        WorkerStatus::new(
            self.config.max_in_flight,
            self.config.lease_idle,
            self.heartbeat_every(),
            self.activity.snapshot(now),
        )
    }

    /// How often it heartbeats: its lease period, or more often to keep its status fresh.
    fn heartbeat_every(&self) -> Duration {
        self.config
            .heartbeat_every
            .min(self.config.status_every)
            .max(Duration::from_millis(100))
    }

    /// Jobs holding a slot now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Whether the loop runs and has not begun to stop (readiness).
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst) && !self.stopping.load(Ordering::SeqCst)
    }

    /// This worker's configuration.
    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    fn held(&self) -> MutexGuard<'_, Map<JobKey, Lease>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Leases and runs jobs until `stop` resolves; then drains: no new leases (a volatile
    /// engine's queued jobs are still run, since they would be lost), the running jobs get
    /// up to `drain` to finish with their webhooks. Jobs still running then are released
    /// (another worker, or this one restarted, takes them over). Returns how many were.
    ///
    /// The worker counts as running ([`is_running`](Worker::is_running)) from this call, not
    /// from the returned future's first poll: a service that spawns the loop and starts
    /// answering `/readyz` at once is ready from the start, not "stopped" until its runtime
    /// gets to the task.
    pub fn run(
        self: Arc<Self>,
        stop: impl Future<Output = ()> + Send,
        drain: Duration,
    ) -> impl Future<Output = usize> + Send {
        self.running.store(true, Ordering::SeqCst);
        self.run_loop(stop, drain)
    }

    async fn run_loop(
        self: Arc<Self>,
        stop: impl Future<Output = ()> + Send,
        drain: Duration,
    ) -> usize {
        self.runtime
            .spawn(Box::pin(heartbeats(Arc::downgrade(&self))));
        let (done_tx, mut done_rx) = mpsc::unbounded::<()>();
        let mut stop = pin!(stop.fuse());
        let mut deadline: Option<BoxFuture<'static, ()>> = None;
        let mut look = true;
        let mut drained = false;
        let mut backoff = RETRY_FIRST;
        let mut in_flight = 0usize;
        // Kept across wake-ups until it resolves: an engine's wait may be under way on its
        // side (a blocking pop), and dropping it could lose the wake-up it would have taken.
        let mut work: Option<BoxFuture<'_, ()>> = None;
        // The fallback poll's timer, kept across wake-ups until it fires: the loop wakes once or
        // twice per job, and a timer armed on each wake costs a timer-wheel entry each time.
        let mut poll: Option<BoxFuture<'static, ()>> = None;
        let durable = self.engine.is_durable();
        loop {
            let stopping = deadline.is_some();
            let leasing = !stopping || (!durable && !drained);
            if stopping && in_flight == 0 && !leasing {
                break;
            }
            let free = self.config.max_in_flight.saturating_sub(in_flight);
            if look && leasing && free > 0 {
                let want = free.min(self.config.max_batch.max(1));
                let now = OffsetDateTime::now_utc();
                let request = LeaseRequest {
                    worker: self.config.worker.clone(),
                    max: want,
                    now,
                    until: now + self.config.lease_idle,
                    tenant_in_flight: self.config.tenant_in_flight,
                };
                match self.engine.lease(&request).await {
                    Ok(batch) => {
                        backoff = RETRY_FIRST;
                        look = batch.len() == want;
                        drained = stopping && batch.is_empty();
                        for leased in batch {
                            in_flight += 1;
                            self.start(leased, done_tx.clone());
                        }
                        continue;
                    }
                    Err(e) => {
                        warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "cannot lease jobs; retrying");
                        let pause = self.runtime.sleep(backoff);
                        backoff = (backoff * 2).min(RETRY_MAX);
                        if stop.as_mut().now_or_never().is_some() && deadline.is_none() {
                            deadline = Some(self.begin_stop(drain));
                        }
                        pause.await;
                        continue;
                    }
                }
            }
            if work.is_none() && leasing && free > 0 {
                work = Some(self.engine.work_available());
            }
            let waiting_for_work = leasing && free > 0;
            let poll_timer = poll.get_or_insert_with(|| self.runtime.sleep(self.config.poll_every));
            let wake = std::future::poll_fn(|cx| {
                if deadline.is_none() && stop.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Wake::Stop);
                }
                if let Some(deadline) = deadline.as_mut()
                    && deadline.poll_unpin(cx).is_ready()
                {
                    return Poll::Ready(Wake::Deadline);
                }
                if let Poll::Ready(Some(())) = done_rx.poll_next_unpin(cx) {
                    return Poll::Ready(Wake::Done);
                }
                if waiting_for_work
                    && let Some(pending) = work.as_mut()
                    && pending.poll_unpin(cx).is_ready()
                {
                    return Poll::Ready(Wake::WorkAvailable);
                }
                if poll_timer.poll_unpin(cx).is_ready() {
                    return Poll::Ready(Wake::Work);
                }
                Poll::Pending
            })
            .await;
            match wake {
                Wake::Stop => {
                    deadline = Some(self.begin_stop(drain));
                    look = true;
                }
                Wake::Deadline => break,
                Wake::Done => {
                    in_flight -= 1;
                    while done_rx.try_recv().is_ok() {
                        in_flight -= 1;
                    }
                }
                Wake::WorkAvailable => {
                    work = None;
                    look = true;
                }
                Wake::Work => {
                    poll = None;
                    look = true;
                }
            }
        }
        let left: Vec<Lease> = self.held().values().cloned().collect();
        for lease in &left {
            if let Err(e) = self.engine.release(lease).await {
                debug!(job = %lease.key, error = %e, "could not release a lease at shutdown");
            }
        }
        self.running.store(false, Ordering::SeqCst);
        left.len()
    }

    fn begin_stop(&self, drain: Duration) -> BoxFuture<'static, ()> {
        self.stopping.store(true, Ordering::SeqCst);
        self.runtime.sleep(drain)
    }

    fn start(self: &Arc<Self>, leased: Leased, done: mpsc::UnboundedSender<()>) {
        let worker = Arc::clone(self);
        let span =
            info_span!("job", job_id = %leased.lease.key.id, tenant = %leased.lease.key.tenant);
        self.runtime.spawn(Box::pin(
            async move {
                worker.process(leased).await;
                // The loop may be gone (shutdown past its deadline): nothing to tell then.
                let _ = done.unbounded_send(());
            }
            .instrument(span),
        ));
    }

    /// Runs, parks or settles one leased job, retrying while its engine fails; releases the
    /// lease if the engine stays away.
    async fn process(&self, leased: Leased) {
        let lease = &leased.lease;
        self.held().insert(lease.key.clone(), lease.clone());
        let in_flight = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        metrics::gauge!(JOBS_IN_FLIGHT).set(in_flight as f64);
        if lease.deliveries > 1 {
            // Its previous worker died, stalled past its lease, or released it at shutdown.
            info!(deliveries = lease.deliveries, "redelivered");
            metrics::counter!(REDELIVERED).increment(1);
        }
        debug!(deliveries = lease.deliveries, "started");
        let mut backoff = RETRY_FIRST;
        let mut settled = false;
        for retry in 0..=JOB_RETRIES {
            match self.handle(&leased).await {
                Ok(state) => {
                    debug!(state = %state, deliveries = lease.deliveries, "finished");
                    metrics::counter!(JOBS, "state" => state.name()).increment(1);
                    self.activity.job_finished(state);
                    settled = true;
                    break;
                }
                Err(e) if retry < JOB_RETRIES && !self.stopping.load(Ordering::SeqCst) => {
                    warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "job could not be recorded; retrying");
                    self.runtime.sleep(backoff).await;
                    backoff = (backoff * 2).min(RETRY_MAX);
                }
                Err(e) => {
                    warn!(error = %e, "job could not be recorded; released for a takeover");
                    break;
                }
            }
        }
        if !settled && let Err(e) = self.engine.release(lease).await {
            debug!(error = %e, "could not release the lease; it expires by itself");
        }
        self.held().remove(&lease.key);
        let in_flight = self.in_flight.fetch_sub(1, Ordering::SeqCst) - 1;
        metrics::gauge!(JOBS_IN_FLIGHT).set(in_flight as f64);
    }

    /// Runs one leased job once, in the caller's task: parks it if it was delivered too
    /// often, settles it if its verdict is in, runs it otherwise; then finishes its lease with
    /// its last updates. On an engine error nothing more is done (the caller retries or
    /// releases the lease).
    pub async fn handle(&self, leased: &Leased) -> Result<JobState, StoreError> {
        let Leased { lease, job } = leased;
        let session = Session::new(&*self.engine, lease);
        let notifier = &*self.notifier;
        let ran = if lease.deliveries > self.config.max_deliveries {
            warn!(
                deliveries = lease.deliveries,
                "job parked after too many deliveries"
            );
            metrics::counter!(PARKED).increment(1);
            let errors = runner::abandoned(self.config.max_deliveries);
            runner::give_up(job, &session, notifier, errors).await
        } else if job.state.is_final() {
            runner::settle(job, &session, notifier)
                .await
                .map(|()| job.state)
        } else {
            let validate = self.validator.validate(job);
            runner::run_job(job, &session, notifier, validate).await
        };
        match ran {
            Ok(state) => {
                session.finish().await?;
                Ok(state)
            }
            Err(e) => {
                session.discard().await;
                Err(e)
            }
        }
    }
}

enum Wake {
    Stop,
    Deadline,
    Done,
    /// The engine said work may be there.
    WorkAvailable,
    /// Time to look anyway.
    Work,
}

/// Pushes back the leases of `worker` every heartbeat period (and says it is alive), until
/// the worker is dropped or has stopped.
async fn heartbeats(worker: Weak<Worker>) {
    let mut first = true;
    loop {
        let Some(w) = worker.upgrade() else {
            return;
        };
        if !first {
            let pause = w.runtime.sleep(w.heartbeat_every());
            drop(w);
            pause.await;
        } else {
            drop(w);
        }
        first = false;
        let Some(w) = worker.upgrade() else {
            return;
        };
        if !w.running.load(Ordering::SeqCst) {
            return;
        }
        let leases: Vec<Lease> = w.held().values().cloned().collect();
        let now = OffsetDateTime::now_utc();
        let until = now + w.config.lease_idle;
        let status = w.status(now).to_json();
        match w
            .engine
            .heartbeat(&w.config.worker, &leases, now, until, &status)
            .await
        {
            Ok(lost) => {
                for lease in lost {
                    // Taken over after this worker looked dead: both may finish it.
                    if w.held().contains_key(&lease.key) {
                        warn!(job = %lease.key, "lease lost to another worker");
                    }
                }
            }
            Err(e) => debug!(error = %e, "heartbeat failed"),
        }
    }
}

/// Forgets finished jobs past `retention` every `every`, at most `budget` per call (bounded
/// work, so retention never holds an engine for long; a full batch goes again at once). Never
/// returns: run it in a task of its own and drop that task at shutdown.
pub async fn purge_forever(
    engine: Arc<dyn Engine>,
    runtime: Arc<dyn Runtime>,
    retention: Retention,
    every: Duration,
    budget: u64,
) {
    loop {
        let started = Instant::now();
        // A full batch means more is due: go again at once.
        let full = match engine
            .purge(&retention, OffsetDateTime::now_utc(), budget)
            .await
        {
            Ok(expired) => expired >= budget,
            Err(e) => {
                debug!(error = %e, "purge failed");
                false
            }
        };
        if !full {
            runtime.sleep(every.saturating_sub(started.elapsed())).await;
        }
    }
}
