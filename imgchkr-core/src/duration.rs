//! The one duration grammar of every imgchkr flag and setting (`--webhook-timeout`,
//! `--fetch-timeout`, `--job-retention`, …), so that a value accepted by one is accepted by
//! all.

use std::time::Duration;

/// A duration that is not a number of seconds or `<n>ms|s|m|h`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {0:?}: expected e.g. 15, 15s, 300ms or 1m")]
pub struct DurationError(String);

/// Parses `15`, `15s`, `1.5s`, `300ms`, `2m` or `1h` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let bad = || DurationError(text.to_owned());
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit.trim() {
        "" | "s" | "sec" | "secs" => value,
        "ms" => value / 1000.0,
        "m" | "min" | "mins" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| bad())
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
