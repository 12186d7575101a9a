//! A job as a row of `jobs`, both ways, and times as microseconds.

use std::str::FromStr as _;

use imgchkr_core::{AssetPath, DeliveryRecord, ErrorMap, Job, JobId, JobState, NotificationUrls};
use imgchkr_core::{JobKey, Priority};
use rusqlite::{Connection, Row};
use time::OffsetDateTime;
use url::Url;

use crate::error::{Failure, corrupt};

/// The columns of a job, in the order [`decode`] reads them.
macro_rules! job_columns {
    () => {
        "seq, tenant, id, state, priority, location, path, on_start, on_success, on_failure, \
         errors, warnings, notifications, created_at, started_at, finished_at, deliveries, \
         worker, lease_until, retired_at"
    };
}
pub(crate) use job_columns;

/// A job's row: the job, and what the engine keeps beside it.
#[derive(Debug)]
pub(crate) struct Stored {
    pub(crate) seq: i64,
    pub(crate) job: Job,
    pub(crate) deliveries: u32,
    pub(crate) lease_until: Option<i64>,
}

/// `t` in microseconds since the epoch (every `OffsetDateTime` fits).
pub(crate) fn micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000)).unwrap_or(i64::MAX)
}

/// The time `us` microseconds after the epoch, UTC.
pub(crate) fn from_micros(us: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000).ok()
}

/// `t` as it reads back: whole microseconds.
pub(crate) fn truncate(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .unwrap_or(t)
}

/// `job` as it reads back once written (times in whole microseconds), so that what an
/// operation returns equals what a later read gives.
pub(crate) fn normalize(job: &mut Job) {
    job.created_at = truncate(job.created_at);
    job.started_at = job.started_at.map(truncate);
    job.finished_at = job.finished_at.map(truncate);
}

/// A duration in microseconds, saturating.
pub(crate) fn duration_micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// The job of `tenant`/`id`, if held.
pub(crate) fn find(conn: &Connection, tenant: &str, id: &str) -> Result<Option<Stored>, Failure> {
    let mut stmt = conn.prepare_cached(concat!(
        "SELECT ",
        job_columns!(),
        " FROM jobs WHERE tenant = ?1 AND id = ?2"
    ))?;
    let mut rows = stmt.query((tenant, id))?;
    match rows.next()? {
        Some(row) => decode(row).map(Some),
        None => Ok(None),
    }
}

/// The job at `seq`, if held.
pub(crate) fn at_seq(conn: &Connection, seq: i64) -> Result<Option<Stored>, Failure> {
    let mut stmt = conn.prepare_cached(concat!(
        "SELECT ",
        job_columns!(),
        " FROM jobs WHERE seq = ?1"
    ))?;
    let mut rows = stmt.query([seq])?;
    match rows.next()? {
        Some(row) => decode(row).map(Some),
        None => Ok(None),
    }
}

/// Whether `key` has a tombstone.
pub(crate) fn tombstoned(conn: &Connection, key: &JobKey) -> Result<bool, Failure> {
    let mut stmt = conn.prepare_cached("SELECT 1 FROM tombstones WHERE tenant = ?1 AND id = ?2")?;
    Ok(stmt.exists((&key.tenant, key.id.to_string()))?)
}

/// Reads a row of [`job_columns!`].
pub(crate) fn decode(row: &Row<'_>) -> Result<Stored, Failure> {
    let seq: i64 = row.get(0)?;
    let tenant: String = row.get(1)?;
    let id: String = row.get(2)?;
    let bad = |what: &str, why: &dyn std::fmt::Display| {
        corrupt(
            format!("{tenant}/{id} (seq {seq})"),
            format!("{what}: {why}"),
        )
    };
    let job_id = JobId::from_str(&id).map_err(|e| bad("id", &e))?;
    let state_name: String = row.get(3)?;
    let state = JobState::from_str(&state_name).map_err(|()| bad("state", &state_name))?;
    let rank: i64 = row.get(4)?;
    let priority = u8::try_from(rank)
        .ok()
        .and_then(Priority::from_rank)
        .ok_or_else(|| bad("priority", &rank))?;
    let location: String = row.get(5)?;
    let path: String = row.get(6)?;
    let asset_path = match location.as_str() {
        "local" => AssetPath::Local { path },
        "url" => AssetPath::Url { path },
        "s3" => AssetPath::S3 { path },
        other => return Err(bad("location", &other)),
    };
    let url = |i: usize, what: &str| -> Result<Url, Failure> {
        let text: String = row.get(i)?;
        Url::parse(&text).map_err(|e| bad(what, &e))
    };
    let notification_urls = NotificationUrls {
        on_start: url(7, "on_start")?,
        on_success: url(8, "on_success")?,
        on_failure: url(9, "on_failure")?,
    };
    let errors: Option<String> = row.get(10)?;
    let errors: Option<ErrorMap> = match errors {
        Some(text) => Some(serde_json::from_str(&text).map_err(|e| bad("errors", &e))?),
        None => None,
    };
    let warnings: String = row.get(11)?;
    let warnings: Vec<String> = serde_json::from_str(&warnings).map_err(|e| bad("warnings", &e))?;
    let notifications: String = row.get(12)?;
    let notifications: Vec<DeliveryRecord> =
        serde_json::from_str(&notifications).map_err(|e| bad("notifications", &e))?;
    let time = |i: usize, what: &str| -> Result<Option<OffsetDateTime>, Failure> {
        let us: Option<i64> = row.get(i)?;
        us.map(|us| from_micros(us).ok_or_else(|| bad(what, &us)))
            .transpose()
    };
    let created_at = time(13, "created_at")?.ok_or_else(|| bad("created_at", &"NULL"))?;
    let started_at = time(14, "started_at")?;
    let finished_at = time(15, "finished_at")?;
    let deliveries: i64 = row.get(16)?;
    let lease_until: Option<i64> = row.get(18)?;
    let mut job = Job::new(job_id, asset_path, notification_urls);
    job.state = state;
    job.errors = errors;
    job.notifications = notifications;
    job.tenant = tenant;
    job.priority = priority;
    job.warnings = warnings;
    job.created_at = created_at;
    job.started_at = started_at;
    job.finished_at = finished_at;
    Ok(Stored {
        seq,
        job,
        deliveries: u32::try_from(deliveries).unwrap_or(u32::MAX),
        lease_until,
    })
}

/// The JSON columns of a job: `errors`, `warnings`, `notifications`.
pub(crate) struct Documents {
    pub(crate) errors: Option<String>,
    pub(crate) warnings: String,
    pub(crate) notifications: String,
}

impl Documents {
    pub(crate) fn of(job: &Job) -> Result<Documents, Failure> {
        // Maps and lists of strings always serialize; an error would be a bug, named as such.
        fn json<T: serde::Serialize + ?Sized>(job: &Job, value: &T) -> Result<String, Failure> {
            serde_json::to_string(value).map_err(|e| corrupt(job.key(), e))
        }
        Ok(Documents {
            errors: job.errors.as_ref().map(|e| json(job, e)).transpose()?,
            warnings: json(job, &job.warnings)?,
            notifications: json(job, &job.notifications)?,
        })
    }
}

/// `Option<OffsetDateTime>` as a nullable integer column.
pub(crate) fn opt_micros(t: Option<OffsetDateTime>) -> Option<i64> {
    t.map(micros)
}
