//! The one duration grammar of every imgchkr flag and setting (`--webhook-timeout`,
//! `--fetch-timeout`, `--job-retention`, …), so that a value accepted by one is accepted by
//! all.

use std::time::Duration;

/// A text that is not a duration; the message quotes it and shows the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {0:?}: expected seconds (30, 1.5) or units such as 300ms, 15s, 5m, 1h, 2d, 1h 30m"
)]
pub struct DurationError(String);

/// Parses a duration: a bare number of seconds (`30`, `1.5`), or `humantime`'s spans
/// (`300ms`, `1.5s`, `5m`, `1h`, `2d`, `1h 30m`; units `ms`, `s`/`sec`, `m`/`min`, `h`, `d`,
/// `w`, …). Negative, non-finite and overflowing values are refused.
///
/// ```
/// use std::time::Duration;
/// use imgchkr_core::duration::parse_duration;
/// assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
/// assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
/// assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
/// assert!(parse_duration("soon").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let t = text.trim();
    // A bare number has always meant seconds (`--webhook-connect-timeout 2`); humantime
    // wants a unit, so the number is given one.
    let bare_number = !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let parsed = if bare_number {
        humantime::parse_duration(&format!("{t}s"))
    } else {
        humantime::parse_duration(t)
    };
    parsed.map_err(|_| DurationError(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        let ms = Duration::from_millis;
        assert_eq!(parse_duration("15").unwrap(), ms(15_000));
        assert_eq!(parse_duration("15s").unwrap(), ms(15_000));
        assert_eq!(parse_duration("1.5s").unwrap(), ms(1_500));
        assert_eq!(parse_duration("300ms").unwrap(), ms(300));
        assert_eq!(parse_duration(" 2m ").unwrap(), ms(120_000));
        assert_eq!(parse_duration("1h").unwrap(), ms(3_600_000));
        for bad in ["", "s", "-1", "1x", "1e400", "1..2s", "NaN", "inf"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    /// Every form either of the two former parsers accepted (notify's `1.5s`, the service's
    /// `2d`), and the documented examples (`90s, 30m, 1h, 2d`, `15s`, `300ms`, seconds).
    #[test]
    fn one_grammar_for_every_flag() {
        let s = Duration::from_secs;
        let cases = [
            ("30", s(30)),
            ("7", s(7)),
            ("1.5", Duration::from_millis(1_500)),
            ("1.5s", Duration::from_millis(1_500)),
            ("250ms", Duration::from_millis(250)),
            ("90s", s(90)),
            ("30m", s(1_800)),
            ("1h", s(3_600)),
            ("2d", s(172_800)),
            ("1h 30m", s(5_400)),
            ("1min", s(60)),
            ("0", Duration::ZERO),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text), Ok(expected), "{text:?}");
        }
    }
}
