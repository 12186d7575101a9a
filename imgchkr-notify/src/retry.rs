//! When to retry and how long to wait: exponential backoff with full jitter, and the
//! receiver's `Retry-After` on 429 / 503.

use std::time::{Duration, SystemTime};

use rand::Rng as _;

/// Whether an answer with `status` is worth another attempt: the receiver may recover from a
/// timeout (408), overload (429) or server error (5xx). Any other non-2xx (a 4xx such as
/// 410 Gone, a 3xx) will be the same next time.
pub fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}

/// Whether `status` carries a `Retry-After` worth honouring.
pub fn honours_retry_after(status: u16) -> bool {
    matches!(status, 429 | 503)
}

/// The wait before retry number `retry` (1 for the wait after the first attempt): a uniformly
/// random time in `[0, min(max, base · 2^(retry-1))]` ("full jitter", which spreads the retries
/// of many jobs failing together against the same receiver).
pub fn backoff(base: Duration, max: Duration, retry: u32) -> Duration {
    let exponent = retry.saturating_sub(1).min(31);
    let ceiling = base.saturating_mul(1u32 << exponent).min(max);
    let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::rng().random_range(0..=ceiling_ms))
}

/// A `Retry-After` value, as delay-seconds or an HTTP date, as the wait from `now`; `None`
/// if it is neither. The date may take any of the three forms RFC 9110 §5.6.7 requires
/// recipients to accept (IMF-fixdate, RFC 850, asctime). A date in the past means no wait.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        for s in [408, 429, 500, 502, 503, 504, 599] {
            assert!(retryable_status(s), "{s}");
        }
        for s in [200, 204, 301, 302, 400, 401, 403, 404, 410, 413, 422] {
            assert!(!retryable_status(s), "{s}");
        }
    }

    #[test]
    fn backoff_stays_within_its_growing_ceiling() {
        let (base, max) = (Duration::from_millis(100), Duration::from_millis(350));
        for _ in 0..200 {
            assert!(backoff(base, max, 1) <= Duration::from_millis(100));
            assert!(backoff(base, max, 2) <= Duration::from_millis(200));
            assert!(backoff(base, max, 3) <= Duration::from_millis(350));
            assert!(backoff(base, max, u32::MAX) <= max);
        }
        assert_eq!(backoff(Duration::ZERO, max, 5), Duration::ZERO);
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // 1994-11-06 08:49:37Z
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        for bad in [
            "",
            "-5",
            "soon",
            "1.5",
            "Sun, 06 Nov 1994 08:49:37",
            "06/11/1994",
        ] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    /// RFC 9110 §5.6.7: recipients must accept the two obsolete HTTP-date forms too.
    #[test]
    fn retry_after_accepts_the_obsolete_date_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // 1994-11-06 08:49:37Z
        for date in [
            "Sun, 06 Nov 1994 08:50:07 GMT",  // IMF-fixdate
            "Sunday, 06-Nov-94 08:50:07 GMT", // RFC 850
            "Sun Nov  6 08:50:07 1994",       // asctime
        ] {
            assert_eq!(
                parse_retry_after(date, now),
                Some(Duration::from_secs(30)),
                "{date:?}"
            );
        }
    }
}
