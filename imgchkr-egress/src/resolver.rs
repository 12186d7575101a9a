//! DNS resolution that enforces the destination policy on the addresses reqwest will connect
//! to: resolve, drop every refused address, connect only to what is left. Because the filter
//! sits between the lookup and the connect, a name that re-resolves to an internal address
//! after a submission-time check (DNS rebinding) is still refused. [`client_builder`] puts it
//! in a reqwest client.

use std::error::Error;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::policy::{DestinationPolicy, HostVerdict};

/// Every resolved address was refused by the policy; the text says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationDenied(pub String);

impl fmt::Display for DestinationDenied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "destination not allowed: {}", self.0)
    }
}

impl Error for DestinationDenied {}

/// The name did not resolve.
#[derive(Debug)]
pub struct DnsFailure(pub std::io::Error);

impl fmt::Display for DnsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dns failure: {}", self.0)
    }
}

impl Error for DnsFailure {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.0)
    }
}

/// What resolving a name under the policy can end with.
#[derive(Debug)]
pub enum ResolveError {
    /// The lookup itself failed.
    Dns(DnsFailure),
    /// Addresses came back, none allowed.
    Denied(DestinationDenied),
}

/// The submission-time check of `url` against `policy`: `Err(why)` when it is refused. With
/// no policy it answers at once, without DNS. A name that does not resolve now (or not within
/// `timeout`) is accepted: the policy is enforced again on the addresses connected to later.
pub async fn check_url(
    policy: &DestinationPolicy,
    url: &url::Url,
    timeout: std::time::Duration,
) -> Result<(), String> {
    match policy.check_host(url) {
        HostVerdict::Allowed => Ok(()),
        HostVerdict::Refused(why) => Err(why),
        HostVerdict::Resolve { host, named } => {
            match tokio::time::timeout(timeout, resolve_allowed(policy, &host, named)).await {
                Ok(Err(ResolveError::Denied(denied))) => Err(denied.0),
                Ok(Ok(_) | Err(ResolveError::Dns(_))) | Err(_) => Ok(()),
            }
        }
    }
}

/// Resolves `host` and keeps the addresses `policy` allows (`named`: the host matched a name
/// rule).
pub async fn resolve_allowed(
    policy: &DestinationPolicy,
    host: &str,
    named: bool,
) -> Result<Vec<SocketAddr>, ResolveError> {
    let resolved = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|e| ResolveError::Dns(DnsFailure(e)))?;
    let mut allowed = Vec::new();
    let mut first_refusal = None;
    for addr in resolved {
        match policy.check_ip(addr.ip(), named) {
            Ok(()) => allowed.push(addr),
            Err(refusal) => {
                first_refusal.get_or_insert(refusal);
            }
        }
    }
    match (allowed.is_empty(), first_refusal) {
        (true, Some(refusal)) => Err(ResolveError::Denied(DestinationDenied(
            refusal.describe(Some(host)),
        ))),
        (true, None) => Err(ResolveError::Dns(DnsFailure(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no addresses",
        )))),
        (false, _) => Ok(allowed),
    }
}

/// A reqwest client builder whose connections obey `policy`: the filtering resolver on every
/// name, and no system proxy (a proxy would resolve, and be judged by, its own name instead of
/// the destination's). IP-literal URLs never reach a resolver: callers also judge each URL
/// (and each redirect target) with [`DestinationPolicy::check_host`] before sending.
pub fn client_builder(policy: Arc<DestinationPolicy>) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .dns_resolver(Arc::new(PolicyResolver::new(policy)))
}

/// reqwest's resolver enforcing a [`DestinationPolicy`].
#[derive(Debug, Clone)]
pub struct PolicyResolver {
    policy: Arc<DestinationPolicy>,
}

impl PolicyResolver {
    /// A resolver enforcing `policy`.
    pub fn new(policy: Arc<DestinationPolicy>) -> PolicyResolver {
        PolicyResolver { policy }
    }
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        Box::pin(async move {
            let host = name.as_str();
            let named = policy.is_named(host);
            match resolve_allowed(&policy, host, named).await {
                Ok(addrs) => Ok(Box::new(addrs.into_iter()) as Addrs),
                Err(ResolveError::Dns(e)) => Err(e.into()),
                Err(ResolveError::Denied(e)) => Err(e.into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allow::AllowRule;

    #[tokio::test]
    async fn loopback_names_are_filtered_when_private_is_denied() {
        let policy = DestinationPolicy::new(Vec::new(), true);
        match resolve_allowed(&policy, "localhost", false).await {
            Err(ResolveError::Denied(DestinationDenied(why))) => {
                assert!(why.starts_with("localhost resolves to "), "{why}");
                assert!(why.ends_with("which is a loopback address"), "{why}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_allowed_range_lets_the_name_through() {
        let rules: Vec<AllowRule> = vec!["127.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()];
        let policy = DestinationPolicy::new(rules, true);
        let addrs = resolve_allowed(&policy, "localhost", false).await.unwrap();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));
    }

    #[tokio::test]
    async fn the_reqwest_resolver_reports_a_denial_it_can_be_told_by() {
        let resolver = PolicyResolver::new(Arc::new(DestinationPolicy::new(Vec::new(), true)));
        let Err(err) = resolver.resolve("localhost".parse().unwrap()).await else {
            panic!("localhost allowed");
        };
        assert!(err.downcast_ref::<DestinationDenied>().is_some());
    }
}
