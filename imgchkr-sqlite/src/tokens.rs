//! What the deployment shares beside jobs: rate-limit token buckets and remembered values.

use std::time::Duration;

use imgchkr_core::engine::{Bucket, Token};
use rusqlite::OptionalExtension as _;
use time::OffsetDateTime;

use crate::error::Failure;
use crate::row::{from_micros, micros};
use crate::writer::Tx;

pub(crate) fn take_token(
    tx: &mut Tx<'_>,
    name: &str,
    bucket: Bucket,
    now: OffsetDateTime,
) -> Result<Token, Failure> {
    let burst = f64::from(bucket.burst.max(1));
    let held: Option<(f64, i64)> = tx
        .conn
        .prepare_cached("SELECT tokens, at FROM buckets WHERE name = ?1")?
        .query_row([name], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    // A new bucket is full.
    let (mut tokens, last) = match held {
        Some((tokens, at)) => (tokens, from_micros(at).unwrap_or(now)),
        None => (burst, now),
    };
    let elapsed = (now - last).as_seconds_f64().max(0.0);
    tokens = (tokens + elapsed * bucket.rate).min(burst);
    // A clock that goes back adds nothing, and moves nothing back.
    let last = last.max(now);
    let token = if tokens >= 1.0 {
        tokens -= 1.0;
        Token::Granted
    } else {
        Token::Wait(wait(tokens, bucket.rate))
    };
    tx.conn
        .prepare_cached(
            "INSERT INTO buckets (name, tokens, at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET tokens = excluded.tokens, at = excluded.at",
        )?
        .execute((name, tokens, micros(last)))?;
    Ok(token)
}

/// How long until a bucket holding `tokens` (< 1) at `rate` a second has one.
fn wait(tokens: f64, rate: f64) -> Duration {
    if rate <= 0.0 {
        return Duration::from_secs(3600);
    }
    Duration::from_secs_f64(((1.0 - tokens) / rate).clamp(0.001, 3600.0))
}

pub(crate) fn remember(
    tx: &mut Tx<'_>,
    key: &str,
    value: &str,
    expires: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<Option<String>, Failure> {
    let now = micros(now);
    let held: Option<(String, i64)> = tx
        .conn
        .prepare_cached("SELECT value, expires FROM remembered WHERE key = ?1")?
        .query_row([key], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    if let Some((value, until)) = held
        && until > now
    {
        return Ok(Some(value));
    }
    tx.conn
        .prepare_cached(
            "INSERT INTO remembered (key, value, expires) VALUES (?1, ?2, ?3) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires = excluded.expires",
        )?
        .execute((key, value, micros(expires)))?;
    Ok(None)
}
