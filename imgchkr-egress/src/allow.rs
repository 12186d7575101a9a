//! Allowlist entries: host names, `.domain` suffixes, IP addresses and CIDR ranges.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// An allowlist entry that is not a host name, `.domain` suffix, IP address or CIDR range;
/// the text quotes the entry and says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid allowlist entry {0}")]
pub struct AllowRuleError(String);

/// One allowlist entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowRule {
    /// Exactly this host name (`hooks.example.com`).
    Host(String),
    /// This domain and every name under it, written `.example.com`.
    Suffix(String),
    /// Addresses in this range; a bare address is a /32 or /128.
    Net(IpNet),
}

impl FromStr for AllowRule {
    type Err = AllowRuleError;

    fn from_str(text: &str) -> Result<AllowRule, AllowRuleError> {
        let text = text.trim();
        let bad = |why: &str| AllowRuleError(format!("{text:?}: {why}"));
        if let Ok(net) = text.parse::<IpNet>() {
            return Ok(AllowRule::Net(net.trunc()));
        }
        if let Ok(ip) = text
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return Ok(AllowRule::Net(IpNet::from(ip)));
        }
        if text.contains('/') {
            return Err(bad("not a valid CIDR range"));
        }
        let (suffix, name) = match text.strip_prefix('.') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let name = normalize_host(name);
        let valid_label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if name.is_empty() || !name.split('.').all(valid_label) {
            return Err(bad(
                "expected a host name, .domain suffix, IP address or CIDR range",
            ));
        }
        Ok(if suffix {
            AllowRule::Suffix(name)
        } else {
            AllowRule::Host(name)
        })
    }
}

impl fmt::Display for AllowRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllowRule::Host(h) => f.write_str(h),
            AllowRule::Suffix(s) => write!(f, ".{s}"),
            AllowRule::Net(n) => n.fmt(f),
        }
    }
}

/// Lower case, without the root's trailing dot: how names are compared.
pub(crate) fn normalize_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(list: &[&str]) -> Vec<AllowRule> {
        list.iter().map(|r| r.parse().unwrap()).collect()
    }

    #[test]
    fn rules_parse() {
        assert_eq!(
            rules(&[
                "Hooks.Example.com.",
                ".example.org",
                "10.0.0.0/8",
                "10.1.2.3",
                "[::1]",
                "10.1.2.3/8"
            ]),
            vec![
                AllowRule::Host("hooks.example.com".into()),
                AllowRule::Suffix("example.org".into()),
                AllowRule::Net("10.0.0.0/8".parse().unwrap()),
                AllowRule::Net("10.1.2.3/32".parse().unwrap()),
                AllowRule::Net("::1/128".parse().unwrap()),
                AllowRule::Net("10.0.0.0/8".parse().unwrap()),
            ]
        );
        for bad in ["", ".", "10.0.0.0/33", "a b", "http://x", "foo..bar", "x/y"] {
            assert!(bad.parse::<AllowRule>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn rules_display_as_written() {
        let written = ["hooks.example.com", ".example.org", "10.0.0.0/8", "::1/128"];
        let shown: Vec<String> = rules(&written).iter().map(ToString::to_string).collect();
        assert_eq!(shown, written);
    }
}
