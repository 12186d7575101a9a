//! [`PostgresEngine`] as the store half of a split engine ([`JobStore`]): the same schema and
//! functions, with the broker carrying the work (`--queue amqp://…`). Jobs are recorded by
//! `submit` (their line entry counts them waiting) without waking this database's workers;
//! `start` (migration 3) takes them out of their line for a broker's deliveries and leases
//! them with no deadline; `apply` records and finishes them.

use imgchkr_core::engine::split::JobStore;
use imgchkr_core::engine::{
    Admission, Bucket, Cancel, ListQuery, Lookup, QueueStats, Retention, Submitted, Token,
    WORKER_SEEN_FOR, WorkerId,
};
use imgchkr_core::notify::BoxFuture;
use imgchkr_core::{Job, JobKey, JobUpdate, StoreError};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::codec::{self, unexpected};
use crate::engine::{PostgresEngine, count, minus};

impl PostgresEngine {
    async fn start_jobs(
        &self,
        keys: &[JobKey],
        worker: &WorkerId,
        now: OffsetDateTime,
    ) -> Result<Vec<Option<Job>>, StoreError> {
        let tenants: Vec<&str> = keys.iter().map(|k| k.tenant.as_str()).collect();
        let ids: Vec<Uuid> = keys.iter().map(|k| k.id.0).collect();
        let reply = self
            .json(&self.inner.sql.start, &[&tenants, &ids, &worker.0, &now])
            .await?;
        let Value::Array(entries) = reply else {
            return Err(unexpected("start", &reply));
        };
        if entries.len() != keys.len() {
            return Err(unexpected("start", &Value::Array(entries)));
        }
        entries
            .into_iter()
            .zip(keys)
            .map(|(entry, key)| match entry {
                Value::Null => Ok(None),
                job => codec::job(key, job).map(Some),
            })
            .collect()
    }

    async fn remove_job(&self, key: &JobKey) -> Result<(), StoreError> {
        self.inner
            .conn
            .one(&self.inner.sql.remove, &[&key.tenant, &key.id.0])
            .await?;
        Ok(())
    }

    async fn note_worker(
        &self,
        worker: &WorkerId,
        held: u64,
        now: OffsetDateTime,
        status: &str,
    ) -> Result<(), StoreError> {
        let forget = minus(now, WORKER_SEEN_FOR);
        self.inner
            .conn
            .one(
                &self.inner.sql.worker_seen,
                &[&worker.0, &now, &forget, &count(held), &status],
            )
            .await?;
        Ok(())
    }
}

impl JobStore for PostgresEngine {
    fn insert<'a>(
        &'a self,
        job: &'a Job,
        admission: Admission,
    ) -> BoxFuture<'a, Result<Submitted, StoreError>> {
        Box::pin(self.insert_job(job, admission))
    }

    fn remove<'a>(&'a self, key: &'a JobKey) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.remove_job(key))
    }

    fn start<'a>(
        &'a self,
        keys: &'a [JobKey],
        worker: &'a WorkerId,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Vec<Option<Job>>, StoreError>> {
        Box::pin(self.start_jobs(keys, worker, now))
    }

    fn apply<'a>(
        &'a self,
        key: &'a JobKey,
        updates: &'a [JobUpdate],
        finished: bool,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.apply_updates(key, updates, finished))
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

    fn worker_seen<'a>(
        &'a self,
        worker: &'a WorkerId,
        held: u64,
        now: OffsetDateTime,
        status: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.note_worker(worker, held, now, status))
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

    fn is_shared(&self) -> bool {
        true
    }
}
