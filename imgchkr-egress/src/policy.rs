//! The destination policy: which hosts and addresses an outbound request may reach.
//!
//! Two independent knobs, both off by default so loopback and internal callbacks work:
//! - an allowlist of host names, domain suffixes (`.example.com`) and CIDR ranges; when it is
//!   non-empty, a destination must match one of them;
//! - `deny_private`: refuse loopback, private, link-local, unique-local, CGNAT, multicast,
//!   unspecified, reserved and cloud-metadata addresses ([`crate::non_public_kind`]).
//!
//! An allowlisted CIDR range wins over `deny_private` (that is how an operator lets one internal
//! network through); an allowlisted *name* does not, because a name's DNS answers can change
//! after it was vetted. Every rule is enforced on the addresses actually connected to (see
//! [`crate::PolicyResolver`]), so DNS rebinding cannot bypass it.

use std::net::IpAddr;

use crate::addr_class::non_public_kind;
use crate::allow::{AllowRule, normalize_host};

/// Why an address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `deny_private` is on and the address is not public.
    NonPublic(IpAddr, &'static str),
    /// An allowlist is set and neither the name nor the address is on it.
    NotAllowed(IpAddr),
}

impl Refusal {
    /// The human text, for an IP-literal URL (`host == None`) or a resolved name.
    pub fn describe(self, host: Option<&str>) -> String {
        let (ip, what) = match self {
            Refusal::NonPublic(ip, kind) => (ip, kind),
            Refusal::NotAllowed(ip) => (ip, "not in the allowlist"),
        };
        match host {
            None => format!("{ip} is {what}"),
            Some(host) => format!("{host} resolves to {ip}, which is {what}"),
        }
    }
}

/// What the URL's host alone says, before any DNS lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostVerdict {
    /// Allowed whatever it resolves to.
    Allowed,
    /// Refused (the text says why).
    Refused(String),
    /// A name whose resolved addresses decide; `named` says it matched a name rule.
    Resolve {
        /// The name to resolve.
        host: String,
        /// Whether it matched a name rule.
        named: bool,
    },
}

/// The policy: the allowlist and the deny-private switch. `Default` is open (any destination).
/// It is both the setting (what a configuration holds) and the judge (what the resolver and
/// the URL checks consult); cheap to clone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestinationPolicy {
    allow: Vec<AllowRule>,
    deny_private: bool,
}

impl DestinationPolicy {
    /// A policy from allowlist rules (empty: any host) and the deny-private switch.
    pub fn new(allow: Vec<AllowRule>, deny_private: bool) -> DestinationPolicy {
        DestinationPolicy {
            allow,
            deny_private,
        }
    }

    /// The allowlist; empty allows any host.
    pub fn allow(&self) -> &[AllowRule] {
        &self.allow
    }

    /// Whether non-public addresses are refused.
    pub fn deny_private(&self) -> bool {
        self.deny_private
    }

    /// No allowlist and private destinations allowed: everything passes, no lookup needed.
    pub fn is_open(&self) -> bool {
        !self.deny_private && !self.has_allowlist()
    }

    fn has_allowlist(&self) -> bool {
        !self.allow.is_empty()
    }

    fn nets(&self) -> impl Iterator<Item = &ipnet::IpNet> {
        self.allow.iter().filter_map(|rule| match rule {
            AllowRule::Net(net) => Some(net),
            AllowRule::Host(_) | AllowRule::Suffix(_) => None,
        })
    }

    /// Whether `host` matches a name rule.
    pub fn is_named(&self, host: &str) -> bool {
        let host = normalize_host(host);
        self.allow.iter().any(|rule| match rule {
            AllowRule::Host(h) => *h == host,
            AllowRule::Suffix(s) => {
                host == *s
                    || host
                        .strip_suffix(s.as_str())
                        .is_some_and(|rest| rest.ends_with('.'))
            }
            AllowRule::Net(_) => false,
        })
    }

    /// Whether a connection to `ip` is allowed, for a host that did (`named`) or did not
    /// match a name rule.
    pub fn check_ip(&self, ip: IpAddr, named: bool) -> Result<(), Refusal> {
        let ip = ip.to_canonical();
        if self.nets().any(|net| net.contains(&ip)) {
            return Ok(());
        }
        if self.deny_private
            && let Some(kind) = non_public_kind(ip)
        {
            return Err(Refusal::NonPublic(ip, kind));
        }
        if self.has_allowlist() && !named {
            return Err(Refusal::NotAllowed(ip));
        }
        Ok(())
    }

    /// Judges `url`'s host as far as possible without DNS.
    pub fn check_host(&self, url: &url::Url) -> HostVerdict {
        if self.is_open() {
            return HostVerdict::Allowed;
        }
        match url.host() {
            None => HostVerdict::Refused("the URL has no host".into()),
            Some(url::Host::Ipv4(ip)) => self.literal(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.literal(IpAddr::V6(ip)),
            Some(url::Host::Domain(domain)) => {
                // `url` leaves an IPv4 literal as a domain for non-special schemes.
                if let Ok(ip) = domain.parse::<IpAddr>() {
                    return self.literal(ip);
                }
                let named = self.is_named(domain);
                if self.has_allowlist() && !named && self.nets().next().is_none() {
                    HostVerdict::Refused(format!(
                        "{} is not in the allowlist",
                        normalize_host(domain)
                    ))
                } else if !self.deny_private && (named || !self.has_allowlist()) {
                    HostVerdict::Allowed
                } else {
                    HostVerdict::Resolve {
                        host: domain.to_owned(),
                        named,
                    }
                }
            }
        }
    }

    fn literal(&self, ip: IpAddr) -> HostVerdict {
        match self.check_ip(ip, false) {
            Ok(()) => HostVerdict::Allowed,
            Err(refusal) => HostVerdict::Refused(refusal.describe(None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(list: &[&str]) -> Vec<AllowRule> {
        list.iter().map(|r| r.parse().unwrap()).collect()
    }

    fn verdict(policy: &DestinationPolicy, url: &str) -> HostVerdict {
        policy.check_host(&url.parse().unwrap())
    }

    #[test]
    fn suffix_matches_the_domain_and_below_only() {
        let p = DestinationPolicy::new(rules(&[".example.com", "exact.org"]), false);
        assert!(p.is_named("example.com"));
        assert!(p.is_named("a.b.Example.COM."));
        assert!(!p.is_named("badexample.com"));
        assert!(!p.is_named("example.com.evil.net"));
        assert!(p.is_named("exact.org"));
        assert!(!p.is_named("sub.exact.org"));
    }

    #[test]
    fn open_policy_allows_everything_without_lookup() {
        let p = DestinationPolicy::default();
        assert_eq!(verdict(&p, "http://10.0.0.1/x"), HostVerdict::Allowed);
        assert_eq!(
            verdict(&p, "http://anything.invalid/"),
            HostVerdict::Allowed
        );
    }

    #[test]
    fn deny_private_refuses_literals_and_resolves_names() {
        let p = DestinationPolicy::new(Vec::new(), true);
        assert_eq!(
            verdict(&p, "http://10.0.0.1/x"),
            HostVerdict::Refused("10.0.0.1 is a private address".into())
        );
        assert_eq!(
            verdict(&p, "http://[::ffff:169.254.169.254]/"),
            HostVerdict::Refused("169.254.169.254 is a cloud metadata address".into())
        );
        assert_eq!(verdict(&p, "http://8.8.8.8/"), HostVerdict::Allowed);
        assert_eq!(
            verdict(&p, "http://hooks.example.com/"),
            HostVerdict::Resolve {
                host: "hooks.example.com".into(),
                named: false
            }
        );
    }

    #[test]
    fn allowlist_of_names_refuses_other_hosts_without_lookup() {
        let p = DestinationPolicy::new(rules(&[".example.com"]), false);
        assert_eq!(verdict(&p, "https://a.example.com/"), HostVerdict::Allowed);
        assert_eq!(
            verdict(&p, "https://evil.net/"),
            HostVerdict::Refused("evil.net is not in the allowlist".into())
        );
        assert_eq!(
            verdict(&p, "http://127.0.0.1/"),
            HostVerdict::Refused("127.0.0.1 is not in the allowlist".into())
        );
    }

    #[test]
    fn allowlisted_range_wins_over_deny_private_but_a_name_does_not() {
        let p = DestinationPolicy::new(rules(&["10.1.0.0/16", "internal.example"]), true);
        assert_eq!(verdict(&p, "http://10.1.2.3/"), HostVerdict::Allowed);
        assert!(matches!(
            verdict(&p, "http://10.2.0.1/"),
            HostVerdict::Refused(_)
        ));
        let ip: IpAddr = "10.9.9.9".parse().unwrap();
        assert_eq!(
            p.check_ip(ip, true),
            Err(Refusal::NonPublic(ip, "a private address"))
        );
        assert_eq!(p.check_ip("10.1.9.9".parse().unwrap(), true), Ok(()));
        assert_eq!(p.check_ip("8.8.8.8".parse().unwrap(), true), Ok(()));
        assert!(p.check_ip("8.8.8.8".parse().unwrap(), false).is_err());
    }

    #[test]
    fn refusals_read_well() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            Refusal::NonPublic(ip, "a loopback address").describe(Some("localhost")),
            "localhost resolves to 127.0.0.1, which is a loopback address"
        );
        assert_eq!(
            Refusal::NotAllowed(ip).describe(None),
            "127.0.0.1 is not in the allowlist"
        );
    }
}
