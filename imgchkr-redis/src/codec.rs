//! Jobs to and from their Redis hashes, updates to script arguments, times to text and
//! milliseconds.
//!
//! A job's hash holds its submission as JSON (`base`, its mutable parts left out) and each
//! mutable part in a field of its own, so a script changes a job without parsing JSON:
//! `state`, `errors` (JSON, absent when none), `warnings` (JSON), `startedAt` and
//! `finishedAt` (RFC 3339, absent when not yet), `order` (events in first-recorded order)
//! and `n:<event>` (that event's delivery record, JSON). Beside them: `seq`, `createdMs`,
//! `finishedMs`, `deliveries`, `worker` (the lease holder) and `retired`.

use std::collections::HashMap;

use imgchkr_core::{DeliveryRecord, ErrorMap, Job, JobKey, JobState, JobUpdate, StoreError};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A job's member in the global sets and the tail of its hash key: `<id>:<tenant>` (the id
/// is always 36 characters, so any tenant name is unambiguous).
pub(crate) fn member(key: &JobKey) -> String {
    format!("{}:{}", key.id, key.tenant)
}

/// The key a member names back (for error messages and leases).
pub(crate) fn key_of(member: &str) -> Result<JobKey, StoreError> {
    let corrupt = || StoreError::Corrupt {
        key: member.to_owned(),
        reason: "not an <id>:<tenant> member".to_owned(),
    };
    let (id, tenant) = member.split_at_checked(36).ok_or_else(corrupt)?;
    let tenant = tenant.strip_prefix(':').ok_or_else(corrupt)?;
    Ok(JobKey::new(tenant, id.parse().map_err(|_| corrupt())?))
}

/// Whole milliseconds since the Unix epoch (rounded down).
pub(crate) fn millis(at: OffsetDateTime) -> i64 {
    let ms = at.unix_timestamp_nanos().div_euclid(1_000_000);
    i64::try_from(ms).unwrap_or(if ms < 0 { i64::MIN } else { i64::MAX })
}

/// Whole microseconds since the Unix epoch (rounded down).
pub(crate) fn micros(at: OffsetDateTime) -> i64 {
    let us = at.unix_timestamp_nanos().div_euclid(1_000);
    i64::try_from(us).unwrap_or(if us < 0 { i64::MIN } else { i64::MAX })
}

/// A time as RFC 3339 (exact to the nanosecond); `of` names what it belongs to in the error
/// (a time outside the years 0 to 9999 has no RFC 3339 form).
pub(crate) fn text(of: &dyn std::fmt::Display, at: OffsetDateTime) -> Result<String, StoreError> {
    at.format(&Rfc3339).map_err(|e| StoreError::Corrupt {
        key: of.to_string(),
        reason: format!("time {at} cannot be written as RFC 3339: {e}"),
    })
}

fn to_json<T: serde::Serialize + ?Sized>(key: &JobKey, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt {
        key: key.to_string(),
        reason: format!("cannot be written as JSON: {e}"),
    })
}

/// The hash fields of a new job (`state` and the counters are the script's).
pub(crate) fn fields(job: &Job) -> Result<Vec<(String, String)>, StoreError> {
    let key = job.key();
    let mut base = job.clone();
    base.state = JobState::Queued;
    base.errors = None;
    base.notifications = Vec::new();
    base.warnings = Vec::new();
    base.started_at = None;
    base.finished_at = None;
    let mut fields = vec![
        ("base".to_owned(), to_json(&key, &base)?),
        ("warnings".to_owned(), to_json(&key, &job.warnings)?),
    ];
    if let Some(errors) = &job.errors {
        fields.push(("errors".to_owned(), to_json(&key, errors)?));
    }
    if let Some(at) = job.started_at {
        fields.push(("startedAt".to_owned(), text(&key, at)?));
    }
    if let Some(at) = job.finished_at {
        fields.push(("finishedAt".to_owned(), text(&key, at)?));
        fields.push(("finishedMs".to_owned(), millis(at).to_string()));
    }
    // As `Job::apply` keeps them: one record per event, in first-recorded order.
    let mut order: Vec<&str> = Vec::new();
    for record in &job.notifications {
        if !order.contains(&record.event.name()) {
            order.push(record.event.name());
        }
        fields.push((format!("n:{}", record.event), to_json(&key, record)?));
    }
    if !order.is_empty() {
        fields.push(("order".to_owned(), order.join(",")));
    }
    Ok(fields)
}

/// A job from its hash (an `HGETALL` reply, flattened), and its delivery count.
pub(crate) fn assemble(key: &JobKey, flat: &[String]) -> Result<(Job, u32), StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: key.to_string(),
        reason,
    };
    let fields: HashMap<&str, &str> = flat
        .chunks_exact(2)
        .map(|pair| (pair[0].as_str(), pair[1].as_str()))
        .collect();
    let field = |name: &str| fields.get(name).copied();
    let time = |name: &str| {
        field(name)
            .map(|s| OffsetDateTime::parse(s, &Rfc3339))
            .transpose()
            .map_err(|e| corrupt(format!("{name}: {e}")))
    };
    let base = field("base").ok_or_else(|| corrupt("no base field".to_owned()))?;
    let mut job: Job = serde_json::from_str(base).map_err(|e| corrupt(format!("base: {e}")))?;
    let state = field("state").ok_or_else(|| corrupt("no state field".to_owned()))?;
    job.state = state
        .parse()
        .map_err(|()| corrupt(format!("state {state:?}")))?;
    job.errors = field("errors")
        .map(serde_json::from_str::<ErrorMap>)
        .transpose()
        .map_err(|e| corrupt(format!("errors: {e}")))?;
    job.warnings = field("warnings")
        .map(serde_json::from_str::<Vec<String>>)
        .transpose()
        .map_err(|e| corrupt(format!("warnings: {e}")))?
        .unwrap_or_default();
    job.started_at = time("startedAt")?;
    job.finished_at = time("finishedAt")?;
    job.notifications = field("order")
        .unwrap_or_default()
        .split(',')
        .filter(|event| !event.is_empty())
        .map(|event| {
            let record = field(&format!("n:{event}"))
                .ok_or_else(|| corrupt(format!("no delivery record for {event}")))?;
            serde_json::from_str::<DeliveryRecord>(record)
                .map_err(|e| corrupt(format!("n:{event}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    if job.key() != *key {
        return Err(corrupt(format!("holds the job {}", job.key())));
    }
    let deliveries = field("deliveries")
        .map(str::parse)
        .transpose()
        .map_err(|e| corrupt(format!("deliveries: {e}")))?
        .unwrap_or(0);
    Ok((job, deliveries))
}

/// The script arguments of `updates`, in order (as the scripts' `apply` reads them).
pub(crate) fn update_args(key: &JobKey, updates: &[JobUpdate]) -> Result<Vec<String>, StoreError> {
    let mut args = Vec::with_capacity(updates.len() * 6);
    for update in updates {
        match update {
            JobUpdate::Started { at } => args.extend(["started".to_owned(), text(key, *at)?]),
            JobUpdate::Verdict {
                errors,
                warnings,
                at,
            } => {
                let state = if errors.is_some() {
                    JobState::Failed
                } else {
                    JobState::Success
                };
                args.extend([
                    "verdict".to_owned(),
                    state.name().to_owned(),
                    text(key, *at)?,
                    millis(*at).to_string(),
                    match errors {
                        Some(errors) => to_json(key, errors)?,
                        None => String::new(),
                    },
                    to_json(key, warnings)?,
                ]);
            }
            JobUpdate::GaveUp { errors, at } => args.extend([
                "gaveup".to_owned(),
                text(key, *at)?,
                millis(*at).to_string(),
                to_json(key, errors)?,
            ]),
            JobUpdate::Delivery(record) => args.extend([
                "delivery".to_owned(),
                record.event.name().to_owned(),
                to_json(key, record)?,
            ]),
            // `JobUpdate` is non-exhaustive: a kind this engine does not know yet is refused
            // whole rather than half applied.
            other => {
                return Err(StoreError::Corrupt {
                    key: key.to_string(),
                    reason: format!("an update this engine cannot record: {other:?}"),
                });
            }
        }
    }
    Ok(args)
}
