//! One delivery attempt: sign, send, read the status, drain a bounded body, and say whether
//! another attempt is worthwhile.

use std::time::{Duration, Instant, SystemTime};

use imgchkr_core::notify::{Attempt, Notification};
use imgchkr_egress::{Failure, HostVerdict};
use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};

use crate::client::WebhookClient;
use crate::retry::{honours_retry_after, parse_retry_after, retryable_status};
use crate::sign::signature_header;

/// The longest a response body is read after its status: reading it only serves connection
/// reuse, which is not worth holding a delivery slot for.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// What comes after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Delivered, or failed in a way another attempt will not change.
    Stop,
    /// Worth retrying; `after` is the receiver's `Retry-After`, already capped.
    Retry { after: Option<Duration> },
}

/// Makes attempt `number` of `n` with `body`, within `budget`.
pub async fn attempt(
    client: &WebhookClient,
    n: &Notification,
    number: u32,
    body: &[u8],
    budget: Duration,
) -> (Attempt, Next) {
    let started = Instant::now();
    if let HostVerdict::Refused(why) = client.policy.check_host(&n.url) {
        // IP literals never reach the resolver, so the policy is applied here too; a
        // refused destination is never connected to.
        return (
            Attempt::failed(
                number,
                format!("destination not allowed: {why}"),
                started.elapsed(),
            ),
            Next::Stop,
        );
    }

    let timestamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let mut request = client
        .http
        .post(n.url.clone())
        .timeout(budget)
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header("webhook-id", n.webhook_id.as_str())
        .header("webhook-timestamp", timestamp.to_string())
        .body(body.to_vec());
    if let Some(signature) =
        signature_header(&client.config.secrets, &n.webhook_id, timestamp, body)
    {
        request = request.header("webhook-signature", signature);
    }

    let response = match tokio::time::timeout(budget, request.send()).await {
        Err(_elapsed) => {
            return (
                Attempt::failed(number, "timeout", started.elapsed()),
                Next::Retry { after: None },
            );
        }
        Ok(Err(err)) => {
            let failure = Failure::of(&err);
            let next = if failure.is_retryable() {
                Next::Retry { after: None }
            } else {
                Next::Stop
            };
            return (
                Attempt::failed(number, failure.to_string(), started.elapsed()),
                next,
            );
        }
        Ok(Ok(response)) => response,
    };
    let latency = started.elapsed();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()))
        .map(|wait| wait.min(client.config.max_retry_after));

    // The status is the receiver's answer; the body is read only so the connection can go
    // back to the pool: at most `max_response_body` bytes, for at most DRAIN_TIMEOUT (and
    // within the budget). A larger, endless or trickled body just drops the connection, and
    // does not hold a delivery slot for long.
    let drain_budget = budget.saturating_sub(started.elapsed()).min(DRAIN_TIMEOUT);
    let _ = tokio::time::timeout(
        drain_budget,
        drain(response, client.config.max_response_body),
    )
    .await;

    let mut attempt = Attempt::answered(number, status, latency);
    let next = if (200..300).contains(&status) {
        Next::Stop
    } else if retryable_status(status) {
        Next::Retry {
            after: retry_after.filter(|_| honours_retry_after(status)),
        }
    } else {
        if (300..400).contains(&status) {
            attempt.error = Some(format!("redirect not followed (HTTP {status})"));
        }
        Next::Stop
    };
    (attempt, next)
}

/// Reads at most `cap` bytes of `response`, then drops it (and the connection with it if the
/// body was not finished).
async fn drain(mut response: reqwest::Response, cap: usize) {
    let mut read = 0usize;
    while let Ok(Some(chunk)) = response.chunk().await {
        read = read.saturating_add(chunk.len());
        if read > cap {
            return;
        }
    }
}
