//! imgchkr-egress: where imgchkr's outbound requests may go, and why one failed.
//!
//! imgchkr makes two kinds of outbound requests on behalf of clients: webhooks
//! (`imgchkr-notify`) and reads of remote images (`imgchkr-fetch`). Both take a URL from an
//! untrusted submission, so both must obey one destination policy (SSRF protection), and both
//! report transport failures with the same short texts. That policy lives here, in a crate of
//! its own, because it belongs to neither side: with it in `imgchkr-notify`, image fetching
//! would depend on the webhook sender (or copy the filter, and the two copies would drift).
//! Both depend on this crate; it depends on neither, nor on the engine (`imgchkr-core`).
//!
//! # The policy
//! A [`DestinationPolicy`] is an allowlist of [`AllowRule`]s (host names, `.domain` suffixes
//! matching the domain and everything below it, IP addresses, CIDR ranges) and a
//! `deny_private` switch refusing loopback, private, link-local, unique-local, CGNAT,
//! multicast, unspecified, reserved and cloud-metadata addresses ([`non_public_kind`]; IPv4
//! embedded in IPv6 is judged as IPv4). Both are off by default. An allowlisted CIDR range
//! overrides `deny_private`; an allowlisted name does not (its DNS answers can change).
//!
//! # Enforcement
//! - on the addresses actually connected to: [`client_builder`] gives a reqwest client whose
//!   resolver ([`PolicyResolver`]) drops every refused address after the lookup, so DNS
//!   rebinding cannot get around a check made earlier, and which ignores system proxies;
//! - on IP-literal URLs (which never reach a resolver) and redirect targets:
//!   [`DestinationPolicy::check_host`], before anything is sent;
//! - at submission time: [`check_url`], so a refused URL is rejected up front.
//!
//! # Failures
//! [`Failure::of`] classifies a failed request by the types in its error chain
//! (`connection refused`, `dns failure`, `timeout`, `destination not allowed: …`, …).
//!
//! ```no_run
//! use std::sync::Arc;
//! use imgchkr_egress::{DestinationPolicy, Failure, HostVerdict, client_builder};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let policy = Arc::new(DestinationPolicy::new(vec![".example.com".parse()?], true));
//! let url: url::Url = "https://hooks.example.com/a".parse()?;
//! // IP literals are judged here, names by the client's resolver when it connects.
//! if let HostVerdict::Refused(why) = policy.check_host(&url) {
//!     return Err(format!("refused: {why}").into());
//! }
//! let client = client_builder(Arc::clone(&policy)).build()?;
//! match client.get(url).send().await {
//!     Ok(response) => println!("HTTP {}", response.status()),
//!     Err(e) => println!("{}", Failure::of(&e)), // e.g. "connection refused"
//! }
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod addr_class;
mod allow;
mod failure;
mod policy;
mod resolver;

pub use addr_class::non_public_kind;
pub use allow::{AllowRule, AllowRuleError};
pub use failure::Failure;
pub use policy::{DestinationPolicy, HostVerdict, Refusal};
pub use resolver::{
    DestinationDenied, DnsFailure, PolicyResolver, ResolveError, check_url, client_builder,
    resolve_allowed,
};
