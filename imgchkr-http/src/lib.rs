//! The imgchkr HTTP service (hyper 1, no framework) and the `imgchkr` command line: the
//! adapter that wires core's parts to HTTP, to an engine and to the webhooks.
//!
//! The data path is one line: [`handlers::submit`] decodes and vets a submission and admits
//! it (core's `admission`: recorded and queued by the [`engines`]-chosen `Engine` in one
//! step); core's `Worker` leases it and runs it: header probe ([`validation`]: `local` inline
//! or on the blocking pool, `url`/`s3` through the remote sources), policy, webhooks through
//! the [`webhooks::Webhooks`] notifier. [`service::Service`] assembles a process in a role
//! (`serve`, `api`, `worker`).
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod admin;
pub mod app;
pub mod auth;
pub mod check;
pub mod cli;
pub mod engines;
pub mod handlers;
pub mod logging;
pub mod metrics;
pub mod monitor;
pub mod response;
pub mod routes;
pub mod runtime;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod signing;
pub mod tenants;
pub mod tls;
pub mod token;
pub mod validation;
pub mod webhooks;
