//! [`RedisStore`]: job records as Redis hashes, one atomic script per write.

use std::collections::HashMap;
use std::sync::Arc;

use imgchkr_core::notify::BoxFuture;
use imgchkr_core::store::{Inserted, ListQuery};
use imgchkr_core::{
    DeliveryRecord, ErrorMap, Event, Job, JobId, JobState, JobStore, JobUpdate, StoreError,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{EVICTION_BUDGET, Shared, bounded};

/// The most index entries one `list` call looks at (entries of jobs that expired but are
/// still indexed are skipped, and count against it).
const LIST_SCAN_BUDGET: usize = 1000;

/// A [`JobStore`] on Redis: each job a hash (`<p>job:<id>`), listed through sorted-set
/// indexes, kept as [`Retention`](imgchkr_core::Retention) says. Cheap to clone.
#[derive(Clone)]
pub struct RedisStore {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("key_prefix", &self.shared.config.key_prefix)
            .finish_non_exhaustive()
    }
}

fn encoding(what: &str, e: impl std::fmt::Display) -> StoreError {
    // StoreError has no variant for this; it cannot happen for jobs core builds.
    StoreError::Unavailable(format!("redis: cannot encode or decode {what}: {e}"))
}

fn timestamp(at: OffsetDateTime) -> Result<String, StoreError> {
    at.format(&Rfc3339).map_err(|e| encoding("timestamp", e))
}

fn parse_time(field: Option<&String>) -> Result<Option<OffsetDateTime>, StoreError> {
    field
        .map(|s| OffsetDateTime::parse(s, &Rfc3339).map_err(|e| encoding("timestamp", e)))
        .transpose()
}

fn json<T: serde::Serialize>(what: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| encoding(what, e))
}

/// A job from its hash fields (an HGETALL reply, flattened).
pub(crate) fn assemble(flat: Vec<String>) -> Result<Job, StoreError> {
    let mut fields = HashMap::with_capacity(flat.len() / 2);
    let mut flat = flat.into_iter();
    while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
        fields.insert(k, v);
    }
    let base = fields
        .get("base")
        .ok_or_else(|| encoding("job", "no base field"))?;
    let mut job: Job = serde_json::from_str(base).map_err(|e| encoding("job", e))?;
    if let Some(state) = fields.get("state") {
        job.state = state.parse().map_err(|()| encoding("job state", state))?;
    }
    job.errors = fields
        .get("errors")
        .map(|e| serde_json::from_str::<ErrorMap>(e).map_err(|e| encoding("errors", e)))
        .transpose()?;
    job.started_at = parse_time(fields.get("startedAt"))?;
    job.finished_at = parse_time(fields.get("finishedAt"))?;
    job.notifications = fields
        .get("order")
        .map(String::as_str)
        .unwrap_or_default()
        .split(',')
        .filter(|event| !event.is_empty())
        .filter_map(|event| fields.get(&format!("n:{event}")))
        .map(|record| {
            serde_json::from_str::<DeliveryRecord>(record).map_err(|e| encoding("delivery", e))
        })
        .collect::<Result<_, _>>()?;
    Ok(job)
}

/// The hash fields of a new job.
pub(crate) fn fields(job: &Job) -> Result<Vec<(String, String)>, StoreError> {
    let mut fields = vec![
        ("base".to_owned(), json("job", job)?),
        ("state".to_owned(), job.state.name().to_owned()),
    ];
    if let Some(errors) = &job.errors {
        fields.push(("errors".to_owned(), json("errors", errors)?));
    }
    if let Some(at) = job.started_at {
        fields.push(("startedAt".to_owned(), timestamp(at)?));
    }
    if let Some(at) = job.finished_at {
        fields.push(("finishedAt".to_owned(), timestamp(at)?));
    }
    if let Some(tenant) = &job.tenant {
        fields.push(("tenant".to_owned(), tenant.clone()));
    }
    // Job::apply keeps one record per event, in first-recorded order.
    let mut order: Vec<Event> = Vec::new();
    for record in &job.notifications {
        if !order.contains(&record.event) {
            order.push(record.event);
        }
    }
    for event in &order {
        if let Some(last) = job.notifications.iter().rev().find(|r| r.event == *event) {
            fields.push((format!("n:{event}"), json("delivery", last)?));
        }
    }
    if !order.is_empty() {
        let names: Vec<&str> = order.iter().map(|e| e.name()).collect();
        fields.push(("order".to_owned(), names.join(",")));
    }
    Ok(fields)
}

/// What the update script did (a give-up, `park` in the script, does nothing if a verdict
/// is in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// The job is unknown or has expired.
    Missing,
    /// Done.
    Done,
    /// A park found the job already finished.
    AlreadyFinal,
}

impl RedisStore {
    pub(crate) fn new(shared: Arc<Shared>) -> RedisStore {
        RedisStore { shared }
    }

    fn retention_args(&self) -> [String; 4] {
        let retention = self.shared.config.retention;
        [
            retention.max_age.as_micros().to_string(),
            retention.max_age.as_millis().to_string(),
            retention.max_jobs.to_string(),
            EVICTION_BUDGET.to_string(),
        ]
    }

    async fn insert_job(&self, job: Job) -> Result<Inserted, StoreError> {
        let keys = &self.shared.keys;
        let mut call = self.shared.scripts.insert.prepare_invoke();
        call.key(keys.job(job.id))
            .key(keys.seq())
            .key(keys.finished());
        for arg in self.insert_args(&job) {
            call.arg(arg);
        }
        for (field, value) in &fields(&job)? {
            call.arg(field).arg(value);
        }
        let mut conn = self.shared.conn.clone();
        let existing: Vec<String> =
            bounded(self.shared.config.op_timeout, call.invoke_async(&mut conn)).await?;
        if existing.is_empty() {
            Ok(Inserted::New)
        } else {
            Ok(Inserted::Existing(Box::new(assemble(existing)?)))
        }
    }

    /// The insert scripts' first nine arguments (id … eviction budget).
    pub(crate) fn insert_args(&self, job: &Job) -> Vec<String> {
        let keys = &self.shared.keys;
        let mut args = vec![
            job.id.to_string(),
            if job.tenant.is_some() { "1" } else { "0" }.to_owned(),
            job.tenant.clone().unwrap_or_default(),
            keys.job_prefix(),
            keys.index_prefix(),
        ];
        args.extend(self.retention_args());
        args
    }

    async fn get_job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        let mut conn = self.shared.conn.clone();
        let key = self.shared.keys.job(id);
        let flat: Vec<String> = bounded(
            self.shared.config.op_timeout,
            ::redis::cmd("HGETALL").arg(key).query_async(&mut conn),
        )
        .await?;
        if flat.is_empty() {
            return Ok(None);
        }
        assemble(flat).map(Some)
    }

    /// Applies `update` (a give-up is a failed verdict only if the job has none yet).
    pub(crate) async fn apply(&self, id: JobId, update: &JobUpdate) -> Result<Applied, StoreError> {
        self.apply_all(id, std::slice::from_ref(update)).await
    }

    /// Applies `updates` in order, in one atomic script (one round trip).
    pub(crate) async fn apply_all(
        &self,
        id: JobId,
        updates: &[JobUpdate],
    ) -> Result<Applied, StoreError> {
        let keys = &self.shared.keys;
        let mut call = self.shared.scripts.update.prepare_invoke();
        call.key(keys.job(id)).key(keys.finished());
        for arg in self.update_args(id, updates)? {
            call.arg(arg);
        }
        let mut conn = self.shared.conn.clone();
        let applied: i64 =
            bounded(self.shared.config.op_timeout, call.invoke_async(&mut conn)).await?;
        Ok(match applied {
            0 => Applied::Missing,
            2 => Applied::AlreadyFinal,
            _ => Applied::Done,
        })
    }

    /// The arguments the scripts' `apply_updates` reads: id, prefixes, retention, then each
    /// update's kind and arguments.
    pub(crate) fn update_args(
        &self,
        id: JobId,
        updates: &[JobUpdate],
    ) -> Result<Vec<String>, StoreError> {
        let keys = &self.shared.keys;
        let mut args = vec![id.to_string(), keys.job_prefix(), keys.index_prefix()];
        args.extend(self.retention_args());
        for update in updates {
            match update {
                JobUpdate::Started { at } => {
                    args.extend(["started".into(), timestamp(*at)?]);
                }
                JobUpdate::Verdict { errors, at } => {
                    let state = if errors.is_some() {
                        JobState::Failed
                    } else {
                        JobState::Success
                    };
                    let errors = match errors {
                        Some(errors) => json("errors", errors)?,
                        None => String::new(),
                    };
                    args.extend([
                        "verdict".into(),
                        state.name().into(),
                        timestamp(*at)?,
                        errors,
                    ]);
                }
                JobUpdate::GaveUp { errors, at } => args.extend([
                    "park".into(),
                    JobState::Failed.name().into(),
                    timestamp(*at)?,
                    json("errors", errors)?,
                ]),
                JobUpdate::Delivery(record) => args.extend([
                    "delivery".into(),
                    record.event.name().into(),
                    json("delivery", record)?,
                ]),
                // JobUpdate is non_exhaustive: a kind this adapter does not know yet.
                #[allow(unreachable_patterns)]
                other => {
                    return Err(encoding("update", format!("{other:?}")));
                }
            }
        }
        Ok(args)
    }

    /// Forgets a job (a submission that could not be queued), returning it if it existed.
    /// Not part of `JobStore`: the embedded `MemoryStore::remove` counterpart.
    pub async fn remove(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        let keys = &self.shared.keys;
        let mut call = self.shared.scripts.remove.prepare_invoke();
        call.key(keys.job(id))
            .key(keys.finished())
            .arg(id.to_string())
            .arg(keys.index_prefix());
        let mut conn = self.shared.conn.clone();
        let flat: Vec<String> =
            bounded(self.shared.config.op_timeout, call.invoke_async(&mut conn)).await?;
        if flat.is_empty() {
            return Ok(None);
        }
        assemble(flat).map(Some)
    }

    async fn list_jobs(&self, query: ListQuery) -> Result<Vec<Job>, StoreError> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let keys = &self.shared.keys;
        let mut call = self.shared.scripts.list.prepare_invoke();
        call.key(keys.index(query.state, query.tenant.as_deref()))
            .arg(keys.job_prefix())
            .arg(query.before.map(|id| id.to_string()).unwrap_or_default())
            .arg(query.limit)
            .arg(LIST_SCAN_BUDGET.max(query.limit));
        let mut conn = self.shared.conn.clone();
        let jobs: Vec<Vec<String>> =
            bounded(self.shared.config.op_timeout, call.invoke_async(&mut conn)).await?;
        jobs.into_iter().map(assemble).collect()
    }
}

impl JobStore for RedisStore {
    fn insert(&self, job: Job) -> BoxFuture<'_, Result<Inserted, StoreError>> {
        Box::pin(self.insert_job(job))
    }

    fn get(&self, id: JobId) -> BoxFuture<'_, Result<Option<Job>, StoreError>> {
        Box::pin(self.get_job(id))
    }

    fn update(&self, id: JobId, update: JobUpdate) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move { self.apply(id, &update).await.map(|_| ()) })
    }

    fn list(&self, query: ListQuery) -> BoxFuture<'_, Result<Vec<Job>, StoreError>> {
        Box::pin(self.list_jobs(query))
    }
}
