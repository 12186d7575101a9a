//! What imgchkr declares on the broker and what its messages say.
//!
//! | queue | kind | holds |
//! |---|---|---|
//! | `<prefix>.high`, `<prefix>.normal`, `<prefix>.low` | quorum, durable | one message per job waiting (or running, unacknowledged) at that priority; `x-delivery-limit` = max deliveries − 1, dead-lettered (at least once) to `<prefix>.parked` |
//! | `<prefix>.parked` | quorum, durable | jobs the broker gave up on, each to be parked by a worker (recorded failed, onFailure sent) |
//!
//! A message's body is the job's key, `<id>:<tenant>` (the id is always 36 characters, so any
//! tenant name is unambiguous); it is persistent, its `message-id` the job id.

use imgchkr_core::{JobId, JobKey, Priority};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

use crate::held::Line;

/// The queue of `priority`.
pub(crate) fn queue_of(prefix: &str, priority: Priority) -> String {
    format!("{prefix}.{}", priority.name())
}

/// The dead-letter queue.
pub(crate) fn parked_queue(prefix: &str) -> String {
    format!("{prefix}.parked")
}

/// Every queue a consumer reads, with the line its deliveries belong to.
pub(crate) fn consumed(prefix: &str) -> Vec<(String, Line)> {
    let mut queues: Vec<(String, Line)> = Priority::ALL
        .iter()
        .map(|p| (queue_of(prefix, *p), Line::Priority(p.rank())))
        .collect();
    queues.push((parked_queue(prefix), Line::Parked));
    queues
}

fn quorum() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), long_string("quorum"));
    args
}

fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

/// The arguments of a priority queue.
pub(crate) fn work_arguments(prefix: &str, max_deliveries: u32) -> FieldTable {
    let mut args = quorum();
    let limit = i64::from(max_deliveries.saturating_sub(1));
    args.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(limit));
    args.insert("x-dead-letter-exchange".into(), long_string(""));
    args.insert(
        "x-dead-letter-routing-key".into(),
        long_string(&parked_queue(prefix)),
    );
    // At-least-once dead-lettering (a message is not dropped on its way to the parked
    // queue); RabbitMQ requires the reject-publish overflow with it (no length limit is set).
    args.insert(
        "x-dead-letter-strategy".into(),
        long_string("at-least-once"),
    );
    args.insert("x-overflow".into(), long_string("reject-publish"));
    args
}

/// The arguments of the parked queue.
pub(crate) fn parked_arguments() -> FieldTable {
    quorum()
}

/// A job's message body.
pub(crate) fn body(key: &JobKey) -> Vec<u8> {
    format!("{}:{}", key.id, key.tenant).into_bytes()
}

/// The job of a message body, if it is one of imgchkr's.
pub(crate) fn key_of(body: &[u8]) -> Option<JobKey> {
    let text = std::str::from_utf8(body).ok()?;
    let id = text.get(..36)?;
    let tenant = text.get(36..)?.strip_prefix(':')?;
    let id: JobId = id.parse().ok()?;
    Some(JobKey::new(tenant, id))
}

/// How many times the broker handed a message out, this time included: quorum queues count
/// the deliveries given back in `x-delivery-count`.
pub(crate) fn deliveries(headers: Option<&FieldTable>) -> u32 {
    let count = headers
        .and_then(|h| h.inner().get(&ShortString::from("x-delivery-count")))
        .and_then(|v| match v {
            AMQPValue::LongLongInt(n) => u32::try_from(*n).ok(),
            AMQPValue::LongInt(n) => u32::try_from(*n).ok(),
            AMQPValue::LongUInt(n) => Some(*n),
            AMQPValue::ShortInt(n) => u32::try_from(*n).ok(),
            AMQPValue::ShortUInt(n) => Some(u32::from(*n)),
            AMQPValue::ShortShortInt(n) => u32::try_from(*n).ok(),
            AMQPValue::ShortShortUInt(n) => Some(u32::from(*n)),
            _ => None,
        })
        .unwrap_or(0);
    count.saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_round_trips_through_its_body_whatever_the_tenant() {
        for tenant in ["", "acme", "a:b:c", "ünï code"] {
            let key = JobKey::new(tenant, JobId::random());
            assert_eq!(key_of(&body(&key)), Some(key));
        }
        assert_eq!(key_of(b"not a job"), None);
        assert_eq!(key_of(&[0xff; 40]), None);
    }

    #[test]
    fn deliveries_count_the_given_back_ones() {
        assert_eq!(deliveries(None), 1);
        let mut headers = FieldTable::default();
        headers.insert("x-delivery-count".into(), AMQPValue::LongLongInt(2));
        assert_eq!(deliveries(Some(&headers)), 3);
    }
}
