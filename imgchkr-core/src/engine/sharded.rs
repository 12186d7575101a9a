//! One engine over several: N standalone engines (shards, e.g. N Redis servers), each job on
//! the shard of its tenant. [`Sharded`] is itself an [`Engine`], so core's worker and
//! admission drive it unchanged, and any engine can be a shard.
//!
//! # Routing
//!
//! A tenant lives on one shard, picked by rendezvous hashing of its name over the shard
//! positions ([`Sharded::shard_of`]: FNV-1a 64 and a fixed mixer, no per-process keys), so
//! every process given the same list of shards, in the same order, agrees without talking.
//! Adding a shard at the end moves about 1/N of the tenants, all onto the new shard.
//!
//! - **submit, cancel, tenant listings**: the tenant's shard. A job's record, its place in
//!   the queue, its idempotency key and its tenant's queue share are all on that shard, so
//!   each of these is still one atomic step of one engine.
//! - **get, cancel** that find nothing on the tenant's shard ask the others in turn: after
//!   a reshard a tenant's older jobs stay on their old shard, and stay visible by id (one round
//!   trip per shard more, for unknown ids only). Tenant listings show the tenant's current
//!   shard alone.
//! - **lease** asks the shards in turn, each for the slots still free, starting one further
//!   along at each call (a rotating offset), until the batch is full or every shard was asked.
//!   Only shards that may have work are asked (their wait for work resolved, a job was
//!   submitted to them by this process, or their last lease came back full), and every shard
//!   at least once a second by the callers' clock (expired leases on a quiet shard): a
//!   shard sees lease calls in proportion to its own work, not to every shard's wake-ups.
//!   A shard that fails is skipped (it shows in [`check`](Engine::check)); the call fails only
//!   when every shard did. Each lease's receipt names the shard it came from, so **record,
//!   finish, release** go back to that shard even after a reshard.
//! - **heartbeat** goes to every shard, each with the leases it gave (none for most): each
//!   shard's worker list shows the worker alive. The lost leases are the union.
//! - **work_available** resolves when any shard's does; the other shards' waits are kept for
//!   the next call, not dropped (a dropped Redis wait would swallow the next wake-up).
//! - **purge** runs on every shard; **stats** add the shards' figures (a worker's held jobs
//!   summed over shards, its latest heartbeat kept); **check** needs every shard, and names
//!   the first that fails; durable and shared only when every shard is.
//! - **take_token**: a bucket named `kind:tenant` (the API's `submissions:<tenant>`) lives
//!   on that tenant's shard, any other by the hash of its name.
//! - **remember**: deployment-wide keys (`imgchkr:…`, such as the `Idempotency-Key` id
//!   secret) live on the first shard, so every process reads the one value; any other key
//!   (per tenant: a replay window) by the hash of the key.
//! - **operators' listing** (every tenant): merged from every shard by submission time
//!   (see `listing`).
//!
//! # What is kept
//!
//! - FIFO within a tenant and priority, higher priorities first: exact (one tenant, one
//!   shard).
//! - Round-robin across tenants: exact among the tenants of one shard (the shard's own);
//!   across shards the rotating offset approximates it. Every shard with work waiting is asked
//!   first once in every N calls, so no tenant waits more than N turns of its shard's
//!   rotation, but which of two tenants on different shards waited longer is not known without
//!   taking a job (a lease is not a look: it marks the job started and counts a delivery).
//!   The conformance cases that check the exact global order of tenants on different shards
//!   are therefore not run on a `Sharded` engine.
//! - Admission: the capacity bounds each shard (every server holds at most that many waiting
//!   jobs; the deployment up to N times it), the tenant share is exact. A global bound would
//!   need every shard's count at every submission: N round trips per job, which is the load
//!   sharding removes; the conformance case of a global capacity is not run either.
//! - The per-tenant in-flight cap: exact (one tenant, one shard).
//! - A single tenant is limited to its shard's throughput (a deployment without tenants is
//!   one tenant: one shard).
//!
//! # Resharding
//!
//! Give every process the new list (shards added at the end keep most tenants in place). A
//! moved tenant's new jobs go to its new shard; its jobs still queued on the old one are
//! leased from there as usual and stay visible by id, but not in its listing. Its
//! idempotency keys and rate bucket start afresh on the new shard: a retry of a submission
//! made before the move may create a second job.

mod listing;
mod route;
mod signals;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::future::join_all;
use time::OffsetDateTime;

use crate::engine::{
    Admission, Bucket, Cancel, Engine, Lease, LeaseRequest, Leased, ListQuery, Lookup, QueueStats,
    Retention, StoreError, Submitted, Token, WorkerId, WorkerSeen,
};
use crate::job::{Job, JobKey, JobUpdate};
use crate::notify::BoxFuture;
use signals::Signals;

/// The prefix of keys [`Engine::remember`] keeps for the whole deployment (on the first
/// shard).
const DEPLOYMENT_KEYS: &str = "imgchkr:";

/// Several engines as one, each tenant on one of them (see the [module docs](self)).
pub struct Sharded {
    shards: Vec<Arc<dyn Engine>>,
    /// How each shard is named in errors (`shard 2` unless set).
    labels: Vec<String>,
    /// Where the next lease starts asking.
    turn: AtomicUsize,
    /// Which shards may have work: their wake-ups, kept across calls.
    signals: Signals,
}

impl std::fmt::Debug for Sharded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sharded")
            .field("shards", &self.labels)
            .finish()
    }
}

/// [`Sharded::new`] was given no shard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a sharded engine needs at least one shard")]
pub struct NoShards;

impl Sharded {
    /// `shards` as one engine, in this order (every process of a deployment must list them in
    /// the same order: a position is part of the routing).
    pub fn new(shards: Vec<Arc<dyn Engine>>) -> Result<Sharded, NoShards> {
        if shards.is_empty() {
            return Err(NoShards);
        }
        let labels = (0..shards.len()).map(|i| format!("shard {i}")).collect();
        let signals = Signals::new(shards.len());
        Ok(Sharded {
            shards,
            labels,
            turn: AtomicUsize::new(0),
            signals,
        })
    }

    /// Names the shards in errors (`check`'s reason): `labels[i]` for shard `i`, e.g. its URL
    /// without credentials. Missing labels keep `shard i`.
    pub fn with_labels(mut self, labels: impl IntoIterator<Item = String>) -> Sharded {
        for (i, label) in labels.into_iter().take(self.shards.len()).enumerate() {
            self.labels[i] = format!("shard {i} ({label})");
        }
        self
    }

    /// The shard (`0..n`) of `tenant` among `n` shards: rendezvous hashing with FNV-1a 64 and
    /// the SplitMix64 finaliser, fixed for every process and build (0 when `n` ≤ 1).
    pub fn shard_of(tenant: &str, n: usize) -> usize {
        route::shard_of(tenant, n)
    }

    /// The shards, in order.
    pub fn shards(&self) -> &[Arc<dyn Engine>] {
        &self.shards
    }

    fn home(&self, tenant: &str) -> usize {
        route::shard_of(tenant, self.shards.len())
    }

    /// The shard a lease came from (its receipt says so), else its tenant's.
    fn origin(&self, lease: &Lease) -> (usize, Lease) {
        if let Some((shard, inner)) = unwrap_receipt(&lease.receipt)
            && shard < self.shards.len()
        {
            let mut inner_lease = lease.clone();
            inner_lease.receipt = inner.to_owned();
            return (shard, inner_lease);
        }
        (self.home(&lease.key.tenant), lease.clone())
    }

    /// The shard that knows `key` and what it knows: the tenant's shard first, then the
    /// others (jobs left behind by a reshard). `None` when no shard knows it; an `Expired`
    /// answer only when no shard has the job.
    async fn locate(&self, key: &JobKey) -> Result<Option<(usize, Lookup)>, StoreError> {
        let home = self.home(&key.tenant);
        let mut expired = None;
        match self.shards[home].get(key).await {
            Ok(Lookup::Found(job)) => return Ok(Some((home, Lookup::Found(job)))),
            Ok(Lookup::Expired) => expired = Some(home),
            Ok(_) => {}
            Err(e) => return Err(name_error(self, home, e)),
        }
        for (i, shard) in self.shards.iter().enumerate() {
            if i == home {
                continue;
            }
            match shard.get(key).await {
                Ok(Lookup::Found(job)) => return Ok(Some((i, Lookup::Found(job)))),
                Ok(Lookup::Expired) => {
                    expired.get_or_insert(i);
                }
                Ok(_) => {}
                // The tenant's own shard answered: another one that is down leaves only
                // jobs from before a reshard unseen.
                Err(e) => {
                    tracing::debug!(job = %key, shard = %self.labels[i], error = %e, "shard not asked");
                }
            }
        }
        Ok(expired.map(|i| (i, Lookup::Expired)))
    }

    async fn get_job(&self, key: &JobKey) -> Result<Lookup, StoreError> {
        Ok(match self.locate(key).await? {
            Some((_, lookup)) => lookup,
            None => Lookup::Unknown,
        })
    }

    async fn cancel_job(&self, key: &JobKey, at: OffsetDateTime) -> Result<Cancel, StoreError> {
        let home = self.home(&key.tenant);
        match self.shards[home].cancel(key, at).await {
            Ok(Cancel::Unknown) if self.shards.len() > 1 => {}
            other => return other,
        }
        match self.locate(key).await? {
            Some((shard, Lookup::Found(_))) => self.shards[shard].cancel(key, at).await,
            Some((_, Lookup::Expired)) => Ok(Cancel::Expired),
            _ => Ok(Cancel::Unknown),
        }
    }

    async fn lease_jobs(&self, request: &LeaseRequest) -> Result<Vec<Leased>, StoreError> {
        let n = self.shards.len();
        let start = self.turn.fetch_add(1, Ordering::Relaxed) % n;
        let want = request.max.max(1);
        // Every shard now and then (expired leases, wake-ups another process took), else
        // those that may have work; all of them when none is known to.
        let now_ms = i64::try_from(request.now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        let ask_all = self.signals.ask_all(now_ms);
        let mut leased = Vec::new();
        let mut failed = None;
        let mut answered = false;
        for step in 0..n {
            if leased.len() >= want {
                break;
            }
            let i = (start + step) % n;
            let was_ready = self.signals.take(i);
            if !ask_all && !was_ready {
                continue;
            }
            let mut ask = request.clone();
            ask.max = want - leased.len();
            match self.shards[i].lease(&ask).await {
                Ok(jobs) => {
                    answered = true;
                    if jobs.len() >= ask.max {
                        // Full: more may be waiting there.
                        self.signals.mark(i);
                    }
                    leased.extend(jobs.into_iter().map(|mut l| {
                        l.lease.receipt = wrap_receipt(i, &l.lease.receipt);
                        l
                    }));
                }
                Err(e) => {
                    tracing::debug!(shard = %self.labels[i], error = %e, "lease skipped a shard");
                    failed.get_or_insert_with(|| name_error(self, i, e));
                }
            }
        }
        match failed {
            Some(e) if !answered => Err(e),
            _ => Ok(leased),
        }
    }

    async fn heartbeat_leases(
        &self,
        worker: &WorkerId,
        leases: &[Lease],
        now: OffsetDateTime,
        until: OffsetDateTime,
        status: &str,
    ) -> Result<Vec<Lease>, StoreError> {
        let mut by_shard: Vec<Vec<Lease>> = vec![Vec::new(); self.shards.len()];
        for lease in leases {
            let (shard, inner) = self.origin(lease);
            by_shard[shard].push(inner);
        }
        let answers = join_all(
            self.shards
                .iter()
                .zip(&by_shard)
                .map(|(shard, held)| shard.heartbeat(worker, held, now, until, status)),
        )
        .await;
        let mut lost = Vec::new();
        let mut failed = None;
        let mut answered = false;
        for (i, answer) in answers.into_iter().enumerate() {
            match answer {
                Ok(gone) => {
                    answered = true;
                    lost.extend(gone.into_iter().map(|mut lease| {
                        lease.receipt = wrap_receipt(i, &lease.receipt);
                        lease
                    }));
                }
                Err(e) => {
                    failed.get_or_insert_with(|| name_error(self, i, e));
                }
            }
        }
        match failed {
            Some(e) if !answered => Err(e),
            _ => Ok(lost),
        }
    }

    async fn purge_all(
        &self,
        retention: &Retention,
        now: OffsetDateTime,
        budget: u64,
    ) -> Result<u64, StoreError> {
        let answers = join_all(
            self.shards
                .iter()
                .map(|shard| shard.purge(retention, now, budget)),
        )
        .await;
        let mut expired = 0;
        for (i, answer) in answers.into_iter().enumerate() {
            expired += answer.map_err(|e| name_error(self, i, e))?;
        }
        Ok(expired)
    }

    async fn stats_all(&self) -> Result<QueueStats, StoreError> {
        let answers = join_all(self.shards.iter().map(|shard| shard.stats())).await;
        let mut total = QueueStats::default();
        let mut tenants = std::collections::BTreeMap::<String, (u64, u64)>::new();
        let mut workers = std::collections::BTreeMap::<WorkerId, WorkerSeen>::new();
        for (i, answer) in answers.into_iter().enumerate() {
            let stats = answer.map_err(|e| name_error(self, i, e))?;
            total.waiting += stats.waiting;
            total.in_flight += stats.in_flight;
            for (tenant, waiting, in_flight) in stats.tenants {
                let entry = tenants.entry(tenant).or_default();
                entry.0 += waiting;
                entry.1 += in_flight;
            }
            for seen in stats.workers {
                match workers.get_mut(&seen.worker) {
                    None => {
                        workers.insert(seen.worker.clone(), seen);
                    }
                    Some(known) => {
                        let held = known.held + seen.held;
                        if seen.at > known.at {
                            *known = seen;
                        }
                        known.held = held;
                    }
                }
            }
        }
        total.tenants = tenants
            .into_iter()
            .map(|(tenant, (waiting, in_flight))| (tenant, waiting, in_flight))
            .collect();
        total.workers = workers.into_values().collect();
        Ok(total)
    }

    async fn check_all(&self) -> Result<(), StoreError> {
        let answers = join_all(self.shards.iter().map(|shard| shard.check())).await;
        for (i, answer) in answers.into_iter().enumerate() {
            answer.map_err(|e| name_error(self, i, e))?;
        }
        Ok(())
    }

    fn token_shard(&self, name: &str) -> usize {
        match name.split_once(':') {
            Some((_, tenant)) => self.home(tenant),
            None => self.home(name),
        }
    }

    fn remember_shard(&self, key: &str) -> usize {
        if key.starts_with(DEPLOYMENT_KEYS) {
            0
        } else {
            self.home(key)
        }
    }
}

/// `error` of shard `i`, saying which shard when it is about reaching it.
fn name_error(sharded: &Sharded, i: usize, error: StoreError) -> StoreError {
    match error {
        StoreError::Unavailable(reason) if sharded.shards.len() > 1 => {
            StoreError::Unavailable(format!("{}: {reason}", sharded.labels[i]))
        }
        other => other,
    }
}

/// A shard's receipt as the sharded engine hands it out: `s<position>:<receipt>`.
fn wrap_receipt(shard: usize, receipt: &str) -> String {
    format!("s{shard}:{receipt}")
}

fn unwrap_receipt(receipt: &str) -> Option<(usize, &str)> {
    let (shard, inner) = receipt.strip_prefix('s')?.split_once(':')?;
    Some((shard.parse().ok()?, inner))
}

impl Engine for Sharded {
    fn submit<'a>(
        &'a self,
        job: &'a Job,
        admission: Admission,
    ) -> BoxFuture<'a, Result<Submitted, StoreError>> {
        let home = self.home(&job.tenant);
        // A worker of this process may lease it next (`serve`).
        self.signals.mark(home);
        self.shards[home].submit(job, admission)
    }

    fn get<'a>(&'a self, key: &'a JobKey) -> BoxFuture<'a, Result<Lookup, StoreError>> {
        if self.shards.len() == 1 {
            return self.shards[0].get(key);
        }
        Box::pin(self.get_job(key))
    }

    fn list<'a>(&'a self, query: &'a ListQuery) -> BoxFuture<'a, Result<Vec<Job>, StoreError>> {
        match &query.tenant {
            Some(tenant) => self.shards[self.home(tenant)].list(query),
            None if self.shards.len() == 1 => self.shards[0].list(query),
            None => Box::pin(listing::list_all(self, query)),
        }
    }

    fn cancel<'a>(
        &'a self,
        key: &'a JobKey,
        at: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Cancel, StoreError>> {
        Box::pin(self.cancel_job(key, at))
    }

    fn lease<'a>(
        &'a self,
        request: &'a LeaseRequest,
    ) -> BoxFuture<'a, Result<Vec<Leased>, StoreError>> {
        Box::pin(self.lease_jobs(request))
    }

    fn heartbeat<'a>(
        &'a self,
        worker: &'a WorkerId,
        leases: &'a [Lease],
        now: OffsetDateTime,
        until: OffsetDateTime,
        status: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Lease>, StoreError>> {
        Box::pin(self.heartbeat_leases(worker, leases, now, until, status))
    }

    fn record<'a>(
        &'a self,
        lease: &'a Lease,
        updates: &'a [JobUpdate],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let (shard, inner) = self.origin(lease);
            self.shards[shard].record(&inner, updates).await
        })
    }

    fn finish<'a>(
        &'a self,
        lease: &'a Lease,
        updates: &'a [JobUpdate],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let (shard, inner) = self.origin(lease);
            self.shards[shard].finish(&inner, updates).await
        })
    }

    fn release<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let (shard, inner) = self.origin(lease);
            self.shards[shard].release(&inner).await
        })
    }

    /// Resolves when any shard's wait does. The other shards' waits are kept for the next
    /// call (one waiter at a time: the worker loop).
    fn work_available(&self) -> BoxFuture<'_, ()> {
        if self.shards.len() == 1 {
            return self.shards[0].work_available();
        }
        Box::pin(std::future::poll_fn(move |cx| {
            self.signals.poll_any(&self.shards, cx)
        }))
    }

    fn purge<'a>(
        &'a self,
        retention: &'a Retention,
        now: OffsetDateTime,
        budget: u64,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(self.purge_all(retention, now, budget))
    }

    fn stats(&self) -> BoxFuture<'_, Result<QueueStats, StoreError>> {
        Box::pin(self.stats_all())
    }

    fn take_token<'a>(
        &'a self,
        name: &'a str,
        bucket: Bucket,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Token, StoreError>> {
        self.shards[self.token_shard(name)].take_token(name, bucket, now)
    }

    fn remember<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        expires: OffsetDateTime,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        self.shards[self.remember_shard(key)].remember(key, value, expires, now)
    }

    fn check(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.check_all())
    }

    fn is_durable(&self) -> bool {
        self.shards.iter().all(|shard| shard.is_durable())
    }

    fn is_shared(&self) -> bool {
        self.shards.iter().all(|shard| shard.is_shared())
    }
}
