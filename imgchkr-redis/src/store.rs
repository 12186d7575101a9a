//! [`RedisEngine`] as the store half of a split engine ([`JobStore`]): the same keys and
//! scripts, with the broker carrying the work (`--queue amqp://…`). Jobs are recorded by the
//! `submit` script (their place in the tenant's line counts them waiting for the capacity and
//! share checks and the queue's figures); `start.lua` takes them out of their line for a
//! broker's deliveries and leases them with no deadline (`+inf`, so no lease of this engine
//! ever takes them over); the `record` and `finish` scripts record and finish them.

use imgchkr_core::engine::split::JobStore;
use imgchkr_core::engine::{
    Admission, Bucket, Cancel, ListQuery, Lookup, QueueStats, Retention, Submitted, Token,
    WORKER_SEEN_FOR, WorkerId,
};
use imgchkr_core::notify::BoxFuture;
use imgchkr_core::{Job, JobKey, JobUpdate, StoreError};
use time::OffsetDateTime;

use crate::codec::{assemble, member, millis, text};
use crate::engine::{RedisEngine, ms, unexpected};
use crate::scripts::SCRIPTS;

impl RedisEngine {
    async fn start_jobs(
        &self,
        keys: &[JobKey],
        worker: &WorkerId,
        now: OffsetDateTime,
    ) -> Result<Vec<Option<Job>>, StoreError> {
        let now_text = text(worker, now)?;
        let members: Vec<String> = keys.iter().map(member).collect();
        let mut args = vec![worker.0.as_str(), now_text.as_str()];
        args.extend(members.iter().map(String::as_str));
        let reply: Vec<Vec<String>> = self.conn.run(&SCRIPTS.start, &args).await?;
        if reply.len() != keys.len() {
            return Err(unexpected("start", &[format!("{} replies", reply.len())]));
        }
        reply
            .iter()
            .zip(keys)
            .map(|(flat, key)| {
                if flat.is_empty() {
                    Ok(None)
                } else {
                    assemble(key, flat).map(|(job, _)| Some(job))
                }
            })
            .collect()
    }

    async fn remove_job(&self, key: &JobKey) -> Result<(), StoreError> {
        let member = member(key);
        let _removed: i64 = self.conn.run(&SCRIPTS.remove, &[&member]).await?;
        Ok(())
    }

    async fn note_worker(
        &self,
        worker: &WorkerId,
        held: u64,
        now: OffsetDateTime,
        status: &str,
    ) -> Result<(), StoreError> {
        let now_ms = millis(now).to_string();
        let now_text = text(worker, now)?;
        let forget = millis(now).saturating_sub(ms(WORKER_SEEN_FOR)).to_string();
        let held = held.to_string();
        let _seen: i64 = self
            .conn
            .run(
                &SCRIPTS.worker_seen,
                &[&worker.0, &now_ms, &now_text, &forget, status, &held],
            )
            .await?;
        Ok(())
    }
}

impl JobStore for RedisEngine {
    fn insert<'a>(
        &'a self,
        job: &'a Job,
        admission: Admission,
    ) -> BoxFuture<'a, Result<Submitted, StoreError>> {
        Box::pin(self.submit_job(job, admission))
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
        Box::pin(self.conn.ping())
    }

    fn is_shared(&self) -> bool {
        true
    }
}
