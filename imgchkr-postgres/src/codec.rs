//! What crosses to the server-side functions and back: updates as JSON objects the `apply`
//! function reads, jobs read back as `Job`'s own JSON.

use imgchkr_core::{DeliveryStatus, Job, JobKey, JobUpdate, StoreError};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A time as RFC 3339 (Postgres reads it to the microsecond).
pub(crate) fn text(key: &impl std::fmt::Display, at: OffsetDateTime) -> Result<String, StoreError> {
    at.format(&Rfc3339).map_err(|e| StoreError::Corrupt {
        key: key.to_string(),
        reason: format!("a time that has no RFC 3339 form: {e}"),
    })
}

/// `updates` as the JSON array `apply` takes.
pub(crate) fn updates(key: &JobKey, updates: &[JobUpdate]) -> Result<Value, StoreError> {
    let mut out = Vec::with_capacity(updates.len());
    for update in updates {
        out.push(match update {
            JobUpdate::Started { at } => json!({"k": "started", "at": text(key, *at)?}),
            JobUpdate::Verdict {
                errors,
                warnings,
                at,
            } => json!({
                "k": "verdict", "errors": errors, "warnings": warnings, "at": text(key, *at)?,
            }),
            JobUpdate::GaveUp { errors, at } => {
                json!({"k": "gaveup", "errors": errors, "at": text(key, *at)?})
            }
            JobUpdate::Delivery(record) => json!({
                "k": "delivery",
                "event": record.event.name(),
                "url": record.url.as_str(),
                "status": match record.status {
                    DeliveryStatus::Pending => "pending",
                    DeliveryStatus::Delivered => "delivered",
                    DeliveryStatus::Failed => "failed",
                },
                "attempts": record.attempts,
                "http_status": record.http_status,
                "error": record.error,
            }),
            other => {
                return Err(StoreError::Unavailable(format!(
                    "postgres: an update this engine does not know: {other:?}"
                )));
            }
        });
    }
    Ok(Value::Array(out))
}

/// A job read back from `job_json`.
pub(crate) fn job(key: &impl std::fmt::Display, value: Value) -> Result<Job, StoreError> {
    serde_json::from_value(value).map_err(|e| StoreError::Corrupt {
        key: key.to_string(),
        reason: format!("unreadable job record: {e}"),
    })
}

/// A reply's field `name` as text (`""` if absent).
pub(crate) fn field<'a>(reply: &'a Value, name: &str) -> &'a str {
    reply.get(name).and_then(Value::as_str).unwrap_or("")
}

/// A reply no function of this engine gives (another program in the schema?).
pub(crate) fn unexpected(call: &str, reply: &Value) -> StoreError {
    StoreError::Unavailable(format!("postgres: unexpected reply to {call}: {reply}"))
}
