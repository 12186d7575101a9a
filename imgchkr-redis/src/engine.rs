//! [`RedisEngine`]: the [`Engine`] calls, each one script (one round trip), their arguments
//! and replies.

use std::time::Duration;

use imgchkr_core::engine::{
    Admission, Bucket, Cancel, Full, Lease, LeaseRequest, Leased, ListQuery, Lookup, QueueStats,
    Retention, Submitted, Token, WORKER_SEEN_FOR, WorkerId, WorkerSeen,
};
use imgchkr_core::notify::BoxFuture;
use imgchkr_core::{Engine, Job, JobKey, JobUpdate, StoreError};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::error;

use crate::codec::{assemble, fields, key_of, member, millis, text, update_args};
use crate::config::RedisConfig;
use crate::conn::Conn;
use crate::scripts::SCRIPTS;

/// The [`Engine`] on one shared Redis (see the [crate docs](crate) for the key layout and the
/// guarantees). Cheap to clone: clones share the connections.
#[derive(Clone)]
pub struct RedisEngine {
    pub(crate) conn: Conn,
}

impl std::fmt::Debug for RedisEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEngine")
            .field("key_prefix", &self.conn.prefix())
            .finish_non_exhaustive()
    }
}

/// A reply no script of this engine gives (another program under the same prefix?).
pub(crate) fn unexpected(call: &str, reply: &[String]) -> StoreError {
    StoreError::Unavailable(format!("redis: unexpected reply to {call}: {reply:?}"))
}

/// A duration in whole milliseconds, as an `i64` (saturating).
pub(crate) fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl RedisEngine {
    /// Connects to Redis: fails with [`StoreError::Unavailable`] within about twice
    /// [`RedisConfig::op_timeout`] if Redis cannot be reached (or the URL is malformed). Call
    /// from within a Tokio runtime (the connections reconnect in its tasks).
    pub async fn connect(config: RedisConfig) -> Result<RedisEngine, StoreError> {
        Ok(RedisEngine {
            conn: Conn::open(&config).await?,
        })
    }

    /// The prefix of every key of this engine.
    pub fn key_prefix(&self) -> &str {
        self.conn.prefix()
    }

    pub(crate) async fn submit_job(
        &self,
        job: &Job,
        admission: Admission,
    ) -> Result<Submitted, StoreError> {
        let key = job.key();
        let member = member(&key);
        let fields = fields(job)?;
        let rank = job.priority.rank().to_string();
        let created = millis(job.created_at).to_string();
        let capacity = admission.capacity.to_string();
        let share = admission.tenant_share.to_string();
        let mut args = vec![member.as_str(), &rank, &created, &capacity, share.as_str()];
        for (field, value) in &fields {
            args.push(field);
            args.push(value);
        }
        let reply: Vec<String> = self.conn.run(&SCRIPTS.submit, &args).await?;
        match reply.first().map(String::as_str) {
            Some("new") => Ok(Submitted::New),
            Some("existing") => Ok(Submitted::Existing(Box::new(
                assemble(&key, &reply[1..])?.0,
            ))),
            Some("full") if reply.get(1).is_some_and(|b| b == "tenant") => {
                Err(StoreError::Full(Full::Tenant))
            }
            Some("full") => Err(StoreError::Full(Full::Queue)),
            _ => Err(unexpected("submit", &reply)),
        }
    }

    pub(crate) async fn get_job(&self, key: &JobKey) -> Result<Lookup, StoreError> {
        let member = member(key);
        let reply: Vec<String> = self.conn.run(&SCRIPTS.get, &[&member]).await?;
        match reply.first().map(String::as_str) {
            Some("found") => Ok(Lookup::Found(Box::new(assemble(key, &reply[1..])?.0))),
            Some("expired") => Ok(Lookup::Expired),
            Some("unknown") => Ok(Lookup::Unknown),
            _ => Err(unexpected("get", &reply)),
        }
    }

    pub(crate) async fn list_jobs(&self, query: &ListQuery) -> Result<Vec<Job>, StoreError> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let (scoped, tenant) = match &query.tenant {
            Some(tenant) => ("1", tenant.as_str()),
            None => ("0", ""),
        };
        let state = query.state.map_or("any", |state| state.name());
        let cursor = query.before.as_ref().map(member).unwrap_or_default();
        let limit = query.limit.min(i64::MAX as usize).to_string();
        let reply: Vec<Vec<String>> = self
            .conn
            .run(&SCRIPTS.list, &[scoped, tenant, state, &cursor, &limit])
            .await?;
        reply
            .iter()
            .map(|entry| {
                let (member, flat) = entry
                    .split_first()
                    .ok_or_else(|| unexpected("list", entry))?;
                Ok(assemble(&key_of(member)?, flat)?.0)
            })
            .collect()
    }

    pub(crate) async fn cancel_job(
        &self,
        key: &JobKey,
        at: OffsetDateTime,
    ) -> Result<Cancel, StoreError> {
        let member = member(key);
        let at_text = text(key, at)?;
        let at_ms = millis(at).to_string();
        let reply: Vec<String> = self
            .conn
            .run(&SCRIPTS.cancel, &[&member, &at_text, &at_ms])
            .await?;
        let job = || assemble(key, &reply[1..]).map(|(job, _)| Box::new(job));
        match reply.first().map(String::as_str) {
            Some("cancelled") => Ok(Cancel::Cancelled(job()?)),
            Some("notqueued") => Ok(Cancel::NotQueued(job()?)),
            Some("expired") => Ok(Cancel::Expired),
            Some("unknown") => Ok(Cancel::Unknown),
            _ => Err(unexpected("cancel", &reply)),
        }
    }

    async fn lease_jobs(&self, request: &LeaseRequest) -> Result<Vec<Leased>, StoreError> {
        let max = request.max.clamp(1, i64::MAX as usize).to_string();
        let now_ms = millis(request.now).to_string();
        let until_ms = millis(request.until).to_string();
        let now_text = text(&request.worker, request.now)?;
        let cap = request
            .tenant_in_flight
            .map(|cap| cap.to_string())
            .unwrap_or_default();
        let reply: Vec<Vec<String>> = self
            .conn
            .run(
                &SCRIPTS.lease,
                &[&request.worker.0, &max, &now_ms, &until_ms, &now_text, &cap],
            )
            .await?;
        let mut leased = Vec::with_capacity(reply.len());
        for entry in &reply {
            let taken = entry
                .split_first()
                .ok_or_else(|| unexpected("lease", entry))
                .and_then(|(member, flat)| {
                    let key = key_of(member)?;
                    let (job, deliveries) = assemble(&key, flat)?;
                    let lease = Lease::new(key, request.worker.clone(), deliveries);
                    Ok(Leased::new(lease, job))
                });
            match taken {
                Ok(taken) => leased.push(taken),
                // The others are fine: run them. This one stays leased, expires and is
                // handed out again (then parked by the worker after too many deliveries)
                // until an operator looks at it.
                Err(e) => error!(error = %e, "redis: a leased job cannot be read; skipped"),
            }
        }
        Ok(leased)
    }

    async fn heartbeat_leases(
        &self,
        worker: &WorkerId,
        leases: &[Lease],
        now: OffsetDateTime,
        until: OffsetDateTime,
        status: &str,
    ) -> Result<Vec<Lease>, StoreError> {
        let until_ms = millis(until).to_string();
        let now_ms = millis(now).to_string();
        let now_text = text(worker, now)?;
        let forget = millis(now).saturating_sub(ms(WORKER_SEEN_FOR)).to_string();
        let members: Vec<String> = leases.iter().map(|lease| member(&lease.key)).collect();
        let mut args = vec![
            worker.0.as_str(),
            &until_ms,
            &now_ms,
            &now_text,
            &forget,
            status,
        ];
        args.extend(members.iter().map(String::as_str));
        let lost: Vec<usize> = self.conn.run(&SCRIPTS.heartbeat, &args).await?;
        Ok(lost
            .into_iter()
            .filter_map(|position| leases.get(position.checked_sub(1)?).cloned())
            .collect())
    }

    async fn record_updates(
        &self,
        lease: &Lease,
        updates: &[JobUpdate],
        finish: bool,
    ) -> Result<(), StoreError> {
        self.apply_updates(&lease.key, updates, finish).await
    }

    /// Applies `updates` to the job of `key`; with `finish` also ends its lease and puts it
    /// under retention.
    pub(crate) async fn apply_updates(
        &self,
        key: &JobKey,
        updates: &[JobUpdate],
        finish: bool,
    ) -> Result<(), StoreError> {
        if updates.is_empty() && !finish {
            return Ok(());
        }
        let member = member(key);
        let updates = update_args(key, updates)?;
        let mut args = vec![member.as_str()];
        args.extend(updates.iter().map(String::as_str));
        let script = if finish {
            &SCRIPTS.finish
        } else {
            &SCRIPTS.record
        };
        let _applied: i64 = self.conn.run(script, &args).await?;
        Ok(())
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let member = member(&lease.key);
        let _released: i64 = self
            .conn
            .run(&SCRIPTS.release, &[&member, &lease.worker.0])
            .await?;
        Ok(())
    }

    pub(crate) async fn purge_jobs(
        &self,
        retention: &Retention,
        now: OffsetDateTime,
        budget: u64,
    ) -> Result<u64, StoreError> {
        let now_ms = millis(now);
        let args = [
            now_ms.to_string(),
            now_ms.saturating_sub(ms(retention.max_age)).to_string(),
            retention.max_jobs_per_tenant.to_string(),
            now_ms
                .saturating_sub(ms(retention.tombstone_age))
                .to_string(),
            retention.max_tombstones.to_string(),
            budget.min(i64::MAX as u64).to_string(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.conn.run(&SCRIPTS.purge, &args).await
    }

    pub(crate) async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        let (waiting, in_flight, lines, workers): (String, String, Vec<String>, Vec<String>) =
            self.conn.run(&SCRIPTS.stats, &[]).await?;
        let number = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| StoreError::Unavailable(format!("redis: stats: not a count: {s:?}")))
        };
        let mut stats = QueueStats::default();
        stats.waiting = number(&waiting)?;
        stats.in_flight = number(&in_flight)?;
        for line in lines.chunks_exact(3) {
            stats
                .tenants
                .push((line[0].clone(), number(&line[1])?, number(&line[2])?));
        }
        stats.tenants.sort();
        for pair in workers.chunks_exact(2) {
            // `held at status`: the status (any text) last.
            let mut parts = pair[1].splitn(3, ' ');
            let (Some(held), Some(at), Some(status)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(unexpected("stats", pair));
            };
            let at = OffsetDateTime::parse(at, &Rfc3339).map_err(|_| unexpected("stats", pair))?;
            stats.workers.push(WorkerSeen::new(
                WorkerId(pair[0].clone()),
                at,
                number(held)?,
                status,
            ));
        }
        stats.workers.sort_by(|a, b| a.worker.cmp(&b.worker));
        Ok(stats)
    }
}

impl Engine for RedisEngine {
    fn submit<'a>(
        &'a self,
        job: &'a Job,
        admission: Admission,
    ) -> BoxFuture<'a, Result<Submitted, StoreError>> {
        Box::pin(self.submit_job(job, admission))
    }

    fn get<'a>(&'a self, key: &'a JobKey) -> BoxFuture<'a, Result<Lookup, StoreError>> {
        Box::pin(self.get_job(key))
    }

    fn list<'a>(&'a self, query: &'a ListQuery) -> BoxFuture<'a, Result<Vec<Job>, StoreError>> {
        Box::pin(self.list_jobs(query))
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
        Box::pin(self.record_updates(lease, updates, false))
    }

    fn finish<'a>(
        &'a self,
        lease: &'a Lease,
        updates: &'a [JobUpdate],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.record_updates(lease, updates, true))
    }

    fn release<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.release_lease(lease))
    }

    fn work_available(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.conn.wait_bell())
    }

    fn purge<'a>(
        &'a self,
        retention: &'a Retention,
        now: OffsetDateTime,
        budget: u64,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(self.purge_jobs(retention, now, budget))
    }

    fn stats(&self) -> BoxFuture<'_, Result<QueueStats, StoreError>> {
        Box::pin(self.queue_stats())
    }

    fn take_token<'a>(
        &'a self,
        name: &'a str,
        bucket: Bucket,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Token, StoreError>> {
        Box::pin(self.take(name, bucket, now))
    }

    fn remember<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        expires: OffsetDateTime,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        Box::pin(self.remember_value(key, value, expires, now))
    }

    fn check(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.conn.ping())
    }

    /// `true`: a job is in Redis when `submit` answers. It survives a Redis restart only as
    /// far as the operator's persistence keeps it (`appendonly yes`, `appendfsync always` for
    /// every acknowledged job; see the crate docs).
    fn is_durable(&self) -> bool {
        true
    }

    fn is_shared(&self) -> bool {
        true
    }
}
