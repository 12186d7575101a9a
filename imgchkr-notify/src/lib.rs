//! imgchkr-notify: the webhook [`Notifier`](imgchkr_core::Notifier) of imgchkr, behaving like
//! the senders receivers already trust (Svix, Stripe, the Standard Webhooks spec).
//!
//! # Delivery
//! Each event is `POST`ed as JSON with `Content-Type: application/json` and
//! `User-Agent: imgchkr/<version>` through one shared client (pooled keep-alive connections,
//! rustls). Only a 2xx is a success; redirects are not followed (a 3xx fails the delivery
//! without retry).
//!
//! Defaults ([`WebhookConfig::default`]):
//!
//! | setting | default |
//! |---|---|
//! | per-attempt timeout (connect, request, status, body read) | 15 s |
//! | connect timeout (DNS, TCP, TLS) | 5 s |
//! | attempts per event | 3 |
//! | overall deadline per event (hard bound on the returned future) | 60 s |
//! | backoff before retry n | uniform random in `[0, min(30 s, 1 s · 2^(n-1))]` (full jitter) |
//! | `Retry-After` (seconds or HTTP date) on 429 / 503 | honoured, capped at 30 s |
//! | attempts in flight at once | 256 |
//! | response body read after the status | at most 64 KiB and 1 s, then the connection is dropped |
//!
//! Retried: connection errors, DNS failures, timeouts, 408, 429 and 5xx. Not retried: any
//! other 4xx (410 Gone above all), 3xx, and destinations the policy refuses. A retry that
//! would not fit in the deadline (a long `Retry-After`, say) is not attempted. Every attempt
//! carries the same `webhook-id`; its own `webhook-timestamp` and signature.
//!
//! Error texts in the [`DeliveryOutcome`](imgchkr_core::DeliveryOutcome): `HTTP <status>`,
//! `redirect not followed (HTTP <status>)`, `connection refused`, `connection reset`,
//! `connection closed before the response`, `dns failure`, `timeout`, `host unreachable`,
//! `destination not allowed: <why>`, `timeout waiting for a delivery slot`,
//! `invalid response: <why>`, `connection failed: <why>` (TLS, …), `invalid request: <why>`.
//!
//! The body of an answer is not part of the verdict: a 2xx followed by a huge or endless body
//! is delivered (the receiver acknowledged), and the connection is dropped after 64 KiB or
//! 1 s. An answer whose head never completes is cut off by the attempt timeout.
//!
//! # Signing (Standard Webhooks)
//! Every attempt carries `webhook-id` (the notification's, identical across retries) and
//! `webhook-timestamp` (unix seconds of the attempt). With secrets configured it also carries
//! `webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, one
//! space-separated signature per secret so receivers can rotate keys. A secret is written
//! `whsec_<base64 key>`; the prefix is optional, as in the reference libraries, and the key
//! must decode to at least 16 bytes.
//!
//! # Destination policy
//! Webhooks obey the [`imgchkr_egress`] destination policy ([`WebhookConfig::destinations`]),
//! off by default: an allowlist (host names, `.domain` suffixes, IP addresses, CIDR ranges)
//! and `deny_private` (loopback, private, link-local, metadata… addresses refused). It is
//! applied to the addresses actually connected to, so DNS rebinding cannot get around it, and
//! a refused destination is never connected to. System proxies are ignored for the same
//! reason. [`WebhookNotifier::check_destination`] (or a [`DestinationCheck`], for a service
//! delivering through another notifier) applies it at submission time.
//!
//! # Example
//! ```no_run
//! use imgchkr_core::notify::Notification;
//! use imgchkr_core::{AssetPath, Event, Job, JobId, NotificationUrls, Notifier};
//! use imgchkr_notify::{DestinationPolicy, Secret, WebhookConfig, WebhookNotifier};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let notifier = WebhookNotifier::new(WebhookConfig {
//!     secrets: vec![Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?],
//!     // Clients are not trusted: no loopback, private or metadata destinations.
//!     destinations: DestinationPolicy::new(Vec::new(), true),
//!     ..WebhookConfig::default()
//! })?;
//! let hook: url::Url = "https://hooks.example.com/imgchkr".parse()?;
//! notifier.check_destination(&hook).await?; // at submission time
//! let job = Job::new(
//!     JobId::random(),
//!     AssetPath::Local { path: "a.jpg".into() },
//!     NotificationUrls { on_start: hook.clone(), on_success: hook.clone(), on_failure: hook },
//! );
//! let outcome = notifier.deliver(&Notification::new(&job, Event::OnStart)).await;
//! println!("delivered: {} after {} attempt(s)", outcome.delivered, outcome.attempts.len());
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod args;
mod attempt;
mod client;
mod config;
mod destination_check;
mod notifier;
mod retry;
mod sign;

pub use args::WebhookArgs;
pub use config::{ConfigError, WebhookConfig};
pub use destination_check::DestinationCheck;
pub use imgchkr_egress::{AllowRule, DestinationPolicy};
pub use notifier::WebhookNotifier;
pub use sign::{Secret, SecretError, SecretText};
