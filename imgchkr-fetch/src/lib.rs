//! imgchkr-fetch: remote image locations, `url` (HTTP(S) with `Range` requests) and `s3` (an
//! S3-compatible store through `object_store`), read the imgchkr way: only the header bytes the
//! probe asks for, never the whole image. [`RemoteSources`] does the reading, [`RemoteConfig`]
//! says how, [`RemoteArgs`] are its `imgchkr serve` flags.
//!
//! It depends on `imgchkr-core` (the probe, the policy, the report) and on `imgchkr-egress`
//! (the destination policy it shares with the webhooks), never on the webhook sender or the
//! HTTP service.
//!
//! ```no_run
//! use imgchkr_core::{AssetPath, Policy};
//! use imgchkr_fetch::{DestinationPolicy, RemoteConfig, RemoteSources};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let sources = RemoteSources::new(RemoteConfig::with_destinations(
//!     DestinationPolicy::new(Vec::new(), true), // no loopback, private or metadata addresses
//! ))?;
//! let asset = AssetPath::Url { path: "https://cdn.example.com/a.jpg".into() };
//! sources.check_asset(&asset).await?; // the submission-time check
//! let report = sources.validate(&asset, &Policy::default()).await;
//! println!("{:?} after {} bytes", report.error_texts(), report.bytes_read);
//! # Ok(())
//! # }
//! ```
//!
//! # `url`
//! The first request is `GET` with `Range: bytes=0-2047`; a `206` gives the object's total size
//! (from `Content-Range`) and its first bytes, and each further range the probe needs (after a
//! 60 KB EXIF block, say) is one more ranged `GET` of at least 1 KiB. A server that ignores
//! ranges (`200`) is read as a stream: the body is fed to the probe as it arrives and dropped
//! as soon as the probe has its answer when `Content-Length` gave the size; without a
//! `Content-Length` the body is read to its end to learn the size, and never more than the size
//! limit + 1 bytes in any case (an image that is still going then is reported as
//! `File size exceeds maximum (<limit + 1>/<limit>)`, the size being a lower bound).
//!
//! Requests go through their own client under [`RemoteConfig::destinations`], the egress
//! destination policy (allowlist and `deny_private`, enforced by the filtering resolver on the
//! addresses connected to, and on IP literals before any connection), no system proxy, `Accept-Encoding: identity`, a connect
//! timeout, a per-request timeout (status and body), an overall timeout per asset, at most
//! `max_redirects` redirects (each one judged by the policy again; only http and https) and at
//! most `max_reads` range reads per asset.
//!
//! Outcomes: `404`/`410` → `File not found: <url>`; `401`/`403` → `Permission denied: <url>`;
//! a refused destination, connection refused, DNS failure, timeout, any other status and an
//! invalid `Content-Range` → `Cannot fetch <url>: <reason>`; otherwise the policy's size,
//! format and dimension checks, the size being the object's total size.
//!
//! # `s3`
//! `s3://bucket/key`, read through `object_store`'s `AmazonS3` (one store per bucket, cached):
//! `HEAD` for the size, then one ranged `GET` per range the probe needs. Credentials, region
//! and endpoint come from the environment as the AWS tools read it ([`RemoteConfig::s3_from_env`],
//! `AmazonS3Builder::from_env`): `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`, `AWS_REGION` / `AWS_DEFAULT_REGION` (default `us-east-1`),
//! `AWS_ENDPOINT_URL` (an S3-compatible store: MinIO, moto, R2…), `AWS_ALLOW_HTTP=true` (a plain
//! http endpoint), `AWS_VIRTUAL_HOSTED_STYLE_REQUEST`, and the web-identity / container
//! credential variables (`AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_ARN`,
//! `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`, …); instance metadata credentials otherwise. The
//! endpoint is the operator's, so the destination policy does not apply to it; a bucket
//! allowlist ([`RemoteConfig::s3_buckets`]) restricts what clients may name.
//! `NoSuchKey`/`NoSuchBucket` → `File not found: s3://…`; access denied or bad credentials →
//! `Permission denied: s3://…`; anything else → `Cannot fetch s3://…: <reason>`.
//!
//! # Metrics
//! `imgchkr_remote_fetch_bytes_total{location}` (body bytes received) and
//! `imgchkr_remote_fetches_total{location, outcome}`, `outcome` being `ok` (the header was
//! read; the image may still fail the policy), `not_found`, `permission_denied`, `not_allowed`,
//! `timeout` or `error`.

#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod args;
mod config;
mod error;
mod fetched;
mod meter;
mod s3;
mod sources;
mod url;

pub use args::{Location, RemoteArgs};
pub use config::{
    ConfigError, DEFAULT_FETCH_CONNECT_TIMEOUT, DEFAULT_FETCH_REQUEST_TIMEOUT,
    DEFAULT_FETCH_TIMEOUT, DEFAULT_MAX_CONCURRENT, DEFAULT_MAX_READS, DEFAULT_MAX_REDIRECTS,
    MAX_DURATION, RemoteConfig,
};
pub use imgchkr_egress::{AllowRule, DestinationPolicy};
pub use sources::{FETCH_BYTES, FETCHES, RemoteSources, describe_metrics};
