//! What imgchkr declares on the broker and what its messages say.
//!
//! | queue | kind | holds |
//! |---|---|---|
//! | `<prefix>.tenants` | stream, durable | the registry: one message per tenant announced (its name), appended by a publisher before its first job of that tenant on a connection; every consuming process reads it from the start and consumes the tenants' queues it names |
//! | `<prefix>.high.<tenant>`, `<prefix>.normal.<tenant>`, `<prefix>.low.<tenant>` | quorum, durable | one message per job of that tenant waiting (or running, unacknowledged) at that priority; `x-delivery-limit` = max deliveries − 1, dead-lettered (at least once) to `<prefix>.parked` |
//! | `<prefix>.parked` | quorum, durable | jobs the broker gave up on, each to be parked by a worker (recorded failed, onFailure sent) |
//!
//! A tenant's part of a queue name is the tenant itself when it is short and made of
//! `[A-Za-z0-9_-]`, else an escaped form (`~` and two hex digits per other byte), cut at 120
//! bytes with a hash of the whole appended. A message's body is the job's key,
//! `<id>:<tenant>` (the id is always 36 characters, so any tenant name is unambiguous); it is
//! persistent, its `message-id` the job id.

use imgchkr_core::{JobId, JobKey, Priority};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

use crate::held::Line;

/// The queue of `tenant`'s jobs at `priority`.
pub(crate) fn queue_of(prefix: &str, tenant: &str, priority: Priority) -> String {
    format!("{prefix}.{}.{}", priority.name(), tenant_part(tenant))
}

/// The registry of tenants (a stream).
pub(crate) fn tenants_stream(prefix: &str) -> String {
    format!("{prefix}.tenants")
}

/// The arguments of the registry.
pub(crate) fn tenants_arguments() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), long_string("stream"));
    args
}

/// The consumer arguments that read the registry from its start.
pub(crate) fn from_the_start() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-stream-offset".into(), long_string("first"));
    args
}

/// `tenant` as part of a queue name (queue names are at most 255 bytes).
fn tenant_part(tenant: &str) -> String {
    const KEPT: usize = 120;
    let mut part = String::new();
    for byte in tenant.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
            part.push(char::from(byte));
        } else {
            part.push_str(&format!("~{byte:02x}"));
        }
    }
    if part.len() > KEPT {
        // FNV-1a of the whole name keeps long names apart (a clash would only share a queue:
        // every message names its tenant).
        let hash = tenant.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        part.truncate(KEPT);
        part.push_str(&format!("~~{hash:016x}"));
    }
    part
}

/// The dead-letter queue.
pub(crate) fn parked_queue(prefix: &str) -> String {
    format!("{prefix}.parked")
}

/// The queues of `tenant`, with the line their deliveries belong to.
pub(crate) fn tenant_queues(prefix: &str, tenant: &str) -> Vec<(String, Line)> {
    Priority::ALL
        .iter()
        .map(|p| (queue_of(prefix, tenant, *p), Line::Priority(p.rank())))
        .collect()
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
    fn tenants_get_queue_names_of_their_own_within_the_limit() {
        assert_eq!(queue_of("p", "acme-1_x", Priority::High), "p.high.acme-1_x");
        assert_eq!(queue_of("p", "", Priority::Low), "p.low.");
        assert_eq!(queue_of("p", "a.b", Priority::Normal), "p.normal.a~2eb");
        assert_ne!(
            queue_of("p", "a.b", Priority::Normal),
            queue_of("p", "a~2eb", Priority::Normal)
        );
        let long_a = "ü".repeat(200);
        let long_b = format!("{}x", "ü".repeat(199));
        let a = queue_of("imgchkr", &long_a, Priority::Normal);
        let b = queue_of("imgchkr", &long_b, Priority::Normal);
        assert!(a.len() <= 255 && b.len() <= 255, "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn deliveries_count_the_given_back_ones() {
        assert_eq!(deliveries(None), 1);
        let mut headers = FieldTable::default();
        headers.insert("x-delivery-count".into(), AMQPValue::LongLongInt(2));
        assert_eq!(deliveries(Some(&headers)), 3);
    }
}
