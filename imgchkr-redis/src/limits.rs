//! Token buckets and remembered values: state every API process of a deployment shares
//! (rate limits that hold across processes, the replay window of signed requests), kept with
//! the caller's clock.

use std::time::Duration;

use imgchkr_core::StoreError;
use imgchkr_core::engine::{Bucket, Token};
use time::OffsetDateTime;

use crate::codec::{micros, millis};
use crate::engine::{RedisEngine, ms, unexpected};
use crate::scripts::SCRIPTS;

impl RedisEngine {
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
        let burst = bucket.burst.max(1);
        // Gone from Redis only well after it would be full again (absent means full).
        let ttl = if rate > 0.0 {
            let full =
                Duration::try_from_secs_f64(2.0 * f64::from(burst) / rate).unwrap_or(Duration::MAX);
            ms(full.saturating_add(Duration::from_secs(60)))
        } else {
            0
        };
        let args = [
            name.to_owned(),
            rate.to_string(),
            burst.to_string(),
            micros(now).to_string(),
            ttl.to_string(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (granted, tokens): (i64, String) = self.conn.run(&SCRIPTS.take_token, &args).await?;
        if granted == 1 {
            return Ok(Token::Granted);
        }
        let tokens: f64 = tokens
            .parse()
            .map_err(|_| unexpected("take_token", &[tokens]))?;
        Ok(Token::Wait(token_wait(tokens, rate)))
    }

    pub(crate) async fn remember_value(
        &self,
        key: &str,
        value: &str,
        expires: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Option<String>, StoreError> {
        let expires_ms = millis(expires);
        let now_ms = millis(now);
        // Redis drops the key a minute after it expires by the caller's clock.
        let ttl = expires_ms
            .saturating_sub(now_ms)
            .max(0)
            .saturating_add(60_000);
        let args = [
            key.to_owned(),
            value.to_owned(),
            expires_ms.to_string(),
            now_ms.to_string(),
            ttl.to_string(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let reply: Vec<String> = self.conn.run(&SCRIPTS.remember, &args).await?;
        match reply.as_slice() {
            [stored] if stored == "stored" => Ok(None),
            [held, value] if held == "held" => Ok(Some(value.clone())),
            _ => Err(unexpected("remember", &reply)),
        }
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
