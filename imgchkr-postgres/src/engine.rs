//! [`PostgresEngine`]: the [`Engine`] calls, each one statement calling one server-side
//! function (one round trip, one transaction), their arguments and replies.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use imgchkr_core::engine::{
    Admission, Bucket, Cancel, Full, Lease, LeaseRequest, Leased, ListQuery, Lookup, QueueStats,
    Retention, Submitted, Token, WORKER_SEEN_FOR, WorkerId, WorkerSeen,
};
use imgchkr_core::notify::BoxFuture;
use imgchkr_core::{Engine, Job, JobKey, JobUpdate, StoreError};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::task::AbortHandle;
use tracing::error;
use uuid::Uuid;

use crate::codec::{self, field, unexpected};
use crate::config::{Parsed, PostgresConfig, check_schema, parse, quote_ident};
use crate::conn::Conn;
use crate::listen::{Wake, listen_forever};
use crate::migrate::migrate;
use crate::notify::{Announcer, announce_forever};

/// The statements of the engine's calls, for its schema.
pub(crate) struct Sql {
    submit: String,
    get: String,
    list: String,
    cancel: String,
    lease: String,
    heartbeat: String,
    apply: String,
    release: String,
    purge: String,
    stats: String,
    take_token: String,
    remember: String,
    pub(crate) start: String,
    pub(crate) remove: String,
    pub(crate) worker_seen: String,
}

impl Sql {
    fn new(schema: &str) -> Sql {
        let s = quote_ident(schema);
        let call = |name: &str, args: usize| {
            let params: Vec<String> = (1..=args).map(|i| format!("${i}")).collect();
            format!("SELECT {s}.{name}({})", params.join(", "))
        };
        Sql {
            submit: call("submit", 13),
            get: call("get", 2),
            list: call("list", 7),
            cancel: call("cancel", 3),
            lease: call("lease", 5),
            heartbeat: call("heartbeat", 7),
            apply: call("apply", 4),
            release: call("release", 3),
            purge: call("purge", 6),
            stats: call("stats", 0),
            take_token: call("take_token", 4),
            remember: call("remember", 4),
            start: call("start", 4),
            remove: call("remove", 2),
            worker_seen: call("worker_seen", 5),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) conn: Conn,
    pub(crate) sql: Sql,
    schema: String,
    parsed: Arc<Parsed>,
    timeout: Duration,
    block: Duration,
    wake: Arc<Wake>,
    listener: OnceLock<AbortHandle>,
    announcer: Arc<Announcer>,
    notifier: OnceLock<AbortHandle>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in [self.listener.get(), self.notifier.get()]
            .into_iter()
            .flatten()
        {
            task.abort();
        }
    }
}

/// The [`Engine`] on one shared Postgres database (see the [crate docs](crate) for the schema
/// and the guarantees). Cheap to clone: clones share the pool and the listener.
#[derive(Clone)]
pub struct PostgresEngine {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for PostgresEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresEngine")
            .field("schema", &self.inner.schema)
            .finish_non_exhaustive()
    }
}

/// The earliest time a retention bound is computed to (a huge age keeps everything).
const FLOOR: OffsetDateTime = time::macros::datetime!(0001-01-01 0:00 UTC);

pub(crate) fn minus(now: OffsetDateTime, age: Duration) -> OffsetDateTime {
    time::Duration::try_from(age)
        .ok()
        .and_then(|age| now.checked_sub(age))
        .map_or(FLOOR, |at| at.max(FLOOR))
}

pub(crate) fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The caller's clock in microseconds since the Unix epoch.
fn micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

impl PostgresEngine {
    /// Connects to Postgres and applies the migrations this build has (under an advisory
    /// lock: processes starting together apply each once). Fails with
    /// [`StoreError::Unavailable`] if Postgres cannot be reached within
    /// [`PostgresConfig::migrate_timeout`], the URL is malformed or the schema is newer than
    /// this build. Call from within a Tokio runtime.
    pub async fn connect(config: PostgresConfig) -> Result<PostgresEngine, StoreError> {
        check_schema(&config.schema)?;
        let parsed = parse(&config.url)?;
        migrate(&parsed, &config.schema, config.migrate_timeout).await?;
        let timeout = config.timeout();
        Ok(PostgresEngine {
            inner: Arc::new(Inner {
                conn: Conn::new(&parsed, config.pool_size, timeout)?,
                sql: Sql::new(&config.schema),
                schema: config.schema.clone(),
                parsed: Arc::new(parsed),
                timeout,
                block: config.block(),
                wake: Arc::default(),
                listener: OnceLock::new(),
                announcer: Arc::default(),
                notifier: OnceLock::new(),
            }),
        })
    }

    /// The schema of this engine's tables.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    pub(crate) async fn json(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Value, StoreError> {
        let row = self.inner.conn.one(sql, params).await?;
        row.try_get(0)
            .map_err(|e| StoreError::Unavailable(format!("postgres: reply: {e}")))
    }

    async fn submit_job(&self, job: &Job, admission: Admission) -> Result<Submitted, StoreError> {
        let submitted = self.insert_job(job, admission).await?;
        if submitted == Submitted::New {
            self.announce();
        }
        Ok(submitted)
    }

    /// Records and queues `job` (see `submit`), telling no worker.
    pub(crate) async fn insert_job(
        &self,
        job: &Job,
        admission: Admission,
    ) -> Result<Submitted, StoreError> {
        let key = job.key();
        let priority = i16::from(job.priority.rank());
        let errors = job
            .errors
            .as_ref()
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| StoreError::Corrupt {
                key: key.to_string(),
                reason: e.to_string(),
            })?;
        let warnings = Value::from(job.warnings.clone());
        let urls = &job.notification_urls;
        let capacity = count(admission.capacity);
        let share = count(admission.tenant_share);
        let reply = self
            .json(
                &self.inner.sql.submit,
                &[
                    &key.tenant,
                    &key.id.0,
                    &priority,
                    &job.asset_path.location(),
                    &job.asset_path.path(),
                    &urls.on_start.as_str(),
                    &urls.on_success.as_str(),
                    &urls.on_failure.as_str(),
                    &job.created_at,
                    &errors,
                    &warnings,
                    &capacity,
                    &share,
                ],
            )
            .await?;
        match field(&reply, "r") {
            "new" => Ok(Submitted::New),
            "existing" => Ok(Submitted::Existing(Box::new(codec::job(
                &key,
                reply["job"].clone(),
            )?))),
            "full" if field(&reply, "which") == "tenant" => Err(StoreError::Full(Full::Tenant)),
            "full" => Err(StoreError::Full(Full::Queue)),
            _ => Err(unexpected("submit", &reply)),
        }
    }

    /// Tells idle workers (of every process) that a job was queued, from a task of this
    /// handle's (started on first use).
    fn announce(&self) {
        let inner = &self.inner;
        inner.notifier.get_or_init(|| {
            tokio::spawn(announce_forever(
                Arc::clone(&inner.announcer),
                inner.conn.clone(),
                inner.schema.clone(),
            ))
            .abort_handle()
        });
        inner.announcer.announce();
    }

    pub(crate) async fn get_job(&self, key: &JobKey) -> Result<Lookup, StoreError> {
        let reply = self
            .json(&self.inner.sql.get, &[&key.tenant, &key.id.0])
            .await?;
        match field(&reply, "r") {
            "found" => Ok(Lookup::Found(Box::new(codec::job(
                key,
                reply["job"].clone(),
            )?))),
            "expired" => Ok(Lookup::Expired),
            "unknown" => Ok(Lookup::Unknown),
            _ => Err(unexpected("get", &reply)),
        }
    }

    pub(crate) async fn list_jobs(&self, query: &ListQuery) -> Result<Vec<Job>, StoreError> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let scoped = query.tenant.is_some();
        let tenant = query.tenant.clone().unwrap_or_default();
        let state = query.state.map(|state| state.name());
        let has_cursor = query.before.is_some();
        let (cursor_tenant, cursor_id) = match &query.before {
            Some(cursor) => (cursor.tenant.clone(), cursor.id.0),
            None => (String::new(), Uuid::nil()),
        };
        let limit = count(query.limit as u64);
        let reply = self
            .json(
                &self.inner.sql.list,
                &[
                    &scoped,
                    &tenant,
                    &state,
                    &has_cursor,
                    &cursor_tenant,
                    &cursor_id,
                    &limit,
                ],
            )
            .await?;
        let Value::Array(jobs) = reply else {
            return Err(unexpected("list", &reply));
        };
        jobs.into_iter()
            .map(|job| codec::job(&"a listed job", job))
            .collect()
    }

    pub(crate) async fn cancel_job(
        &self,
        key: &JobKey,
        at: OffsetDateTime,
    ) -> Result<Cancel, StoreError> {
        let reply = self
            .json(&self.inner.sql.cancel, &[&key.tenant, &key.id.0, &at])
            .await?;
        let job = || codec::job(key, reply["job"].clone()).map(Box::new);
        match field(&reply, "r") {
            "cancelled" => Ok(Cancel::Cancelled(job()?)),
            "notqueued" => Ok(Cancel::NotQueued(job()?)),
            "expired" => Ok(Cancel::Expired),
            "unknown" => Ok(Cancel::Unknown),
            _ => Err(unexpected("cancel", &reply)),
        }
    }

    async fn lease_jobs(&self, request: &LeaseRequest) -> Result<Vec<Leased>, StoreError> {
        let max = i32::try_from(request.max.max(1)).unwrap_or(i32::MAX);
        let cap = request.tenant_in_flight.map(count);
        self.inner.wake.leasing();
        let reply = self
            .json(
                &self.inner.sql.lease,
                &[&request.worker.0, &max, &request.now, &request.until, &cap],
            )
            .await?;
        self.inner
            .wake
            .leased(reply.get("more").and_then(Value::as_bool).unwrap_or(false));
        let Some(Value::Array(entries)) = reply.get("leased") else {
            return Err(unexpected("lease", &reply));
        };
        let mut leased = Vec::with_capacity(entries.len());
        for entry in entries {
            let taken = (|| {
                let deliveries = entry
                    .get("d")
                    .and_then(Value::as_u64)
                    .and_then(|d| u32::try_from(d).ok())
                    .ok_or_else(|| unexpected("lease", entry))?;
                let job = codec::job(&"a leased job", entry["job"].clone())?;
                let lease = Lease::new(job.key(), request.worker.clone(), deliveries);
                Ok::<_, StoreError>(Leased::new(lease, job))
            })();
            match taken {
                Ok(taken) => leased.push(taken),
                // The others are fine: run them. This one stays leased, expires and is
                // handed out again (then parked by the worker after too many deliveries)
                // until an operator looks at it.
                Err(e) => error!(error = %e, "postgres: a leased job cannot be read; skipped"),
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
        let tenants: Vec<&str> = leases.iter().map(|l| l.key.tenant.as_str()).collect();
        let ids: Vec<Uuid> = leases.iter().map(|l| l.key.id.0).collect();
        let forget = minus(now, WORKER_SEEN_FOR);
        let row = self
            .inner
            .conn
            .one(
                &self.inner.sql.heartbeat,
                &[&worker.0, &tenants, &ids, &now, &until, &forget, &status],
            )
            .await?;
        let lost: Vec<i32> = row
            .try_get(0)
            .map_err(|e| StoreError::Unavailable(format!("postgres: reply: {e}")))?;
        Ok(lost
            .into_iter()
            .filter_map(|position| {
                let index = usize::try_from(position).ok()?.checked_sub(1)?;
                leases.get(index).cloned()
            })
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

    /// Applies `updates` to the job of `key`; with `finish` also ends its lease.
    pub(crate) async fn apply_updates(
        &self,
        key: &JobKey,
        updates: &[JobUpdate],
        finish: bool,
    ) -> Result<(), StoreError> {
        if updates.is_empty() && !finish {
            return Ok(());
        }
        let json = codec::updates(key, updates)?;
        self.inner
            .conn
            .one(
                &self.inner.sql.apply,
                &[&key.tenant, &key.id.0, &json, &finish],
            )
            .await?;
        Ok(())
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        self.inner
            .conn
            .one(
                &self.inner.sql.release,
                &[&lease.key.tenant, &lease.key.id.0, &lease.worker.0],
            )
            .await?;
        Ok(())
    }

    pub(crate) async fn purge_jobs(
        &self,
        retention: &Retention,
        now: OffsetDateTime,
        budget: u64,
    ) -> Result<u64, StoreError> {
        let row = self
            .inner
            .conn
            .one(
                &self.inner.sql.purge,
                &[
                    &now,
                    &minus(now, retention.max_age),
                    &count(retention.max_jobs_per_tenant),
                    &minus(now, retention.tombstone_age),
                    &count(retention.max_tombstones),
                    &count(budget),
                ],
            )
            .await?;
        let expired: i64 = row
            .try_get(0)
            .map_err(|e| StoreError::Unavailable(format!("postgres: reply: {e}")))?;
        Ok(u64::try_from(expired).unwrap_or(0))
    }

    pub(crate) async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        let reply = self.json(&self.inner.sql.stats, &[]).await?;
        let number = |v: &Value| v.as_u64().ok_or_else(|| unexpected("stats", &reply));
        let mut stats = QueueStats::default();
        stats.waiting = number(&reply["waiting"])?;
        stats.in_flight = number(&reply["in_flight"])?;
        for line in reply["tenants"].as_array().into_iter().flatten() {
            let tenant = line[0]
                .as_str()
                .ok_or_else(|| unexpected("stats", &reply))?;
            stats
                .tenants
                .push((tenant.to_owned(), number(&line[1])?, number(&line[2])?));
        }
        stats.tenants.sort();
        for seen in reply["workers"].as_array().into_iter().flatten() {
            let at = OffsetDateTime::parse(field(seen, "at"), &Rfc3339)
                .map_err(|_| unexpected("stats", seen))?;
            stats.workers.push(WorkerSeen::new(
                WorkerId(field(seen, "worker").to_owned()),
                at,
                number(&seen["held"])?,
                field(seen, "status"),
            ));
        }
        stats.workers.sort_by(|a, b| a.worker.cmp(&b.worker));
        Ok(stats)
    }

    pub(crate) async fn take(
        &self,
        name: &str,
        bucket: Bucket,
        now: OffsetDateTime,
    ) -> Result<Token, StoreError> {
        let rate = if bucket.rate.is_finite() && bucket.rate > 0.0 {
            bucket.rate
        } else {
            0.0
        };
        let burst = i32::try_from(bucket.burst.max(1)).unwrap_or(i32::MAX);
        let reply = self
            .json(
                &self.inner.sql.take_token,
                &[&name, &rate, &burst, &micros(now)],
            )
            .await?;
        if reply.get("granted").and_then(Value::as_bool) == Some(true) {
            return Ok(Token::Granted);
        }
        let tokens = reply
            .get("tokens")
            .and_then(Value::as_f64)
            .ok_or_else(|| unexpected("take_token", &reply))?;
        Ok(Token::Wait(token_wait(tokens, rate)))
    }

    pub(crate) async fn remember_value(
        &self,
        key: &str,
        value: &str,
        expires: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Option<String>, StoreError> {
        let row = self
            .inner
            .conn
            .one(&self.inner.sql.remember, &[&key, &value, &expires, &now])
            .await?;
        row.try_get(0)
            .map_err(|e| StoreError::Unavailable(format!("postgres: reply: {e}")))
    }

    pub(crate) async fn check_now(&self) -> Result<(), StoreError> {
        let row = self
            .inner
            .conn
            .one("SELECT pg_is_in_recovery()", &[])
            .await?;
        let recovering: bool = row
            .try_get(0)
            .map_err(|e| StoreError::Unavailable(format!("postgres: reply: {e}")))?;
        if recovering {
            return Err(StoreError::Unavailable(
                "postgres: read-only (a standby in recovery)".to_owned(),
            ));
        }
        Ok(())
    }

    async fn wait_work(&self) {
        let inner = &self.inner;
        inner.listener.get_or_init(|| {
            tokio::spawn(listen_forever(
                Arc::clone(&inner.parsed),
                inner.schema.clone(),
                Arc::clone(&inner.wake),
                inner.timeout,
            ))
            .abort_handle()
        });
        inner.wake.wait(inner.block).await;
    }
}

/// How long until a bucket holding `tokens` (< 1) at `rate` a second has one (as the memory
/// engine answers).
fn token_wait(tokens: f64, rate: f64) -> Duration {
    if rate <= 0.0 {
        return Duration::from_secs(3600);
    }
    Duration::from_secs_f64(((1.0 - tokens) / rate).clamp(0.001, 3600.0))
}

impl Engine for PostgresEngine {
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
        Box::pin(self.wait_work())
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
        Box::pin(self.check_now())
    }

    /// `true`: `submit` answers once Postgres has committed the job (with the server's
    /// `synchronous_commit`, on by default: flushed to its write-ahead log).
    fn is_durable(&self) -> bool {
        true
    }

    fn is_shared(&self) -> bool {
        true
    }
}
