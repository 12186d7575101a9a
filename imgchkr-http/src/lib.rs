//! The imgchkr HTTP service (hyper 1, no framework) with in-process workers, and the
//! `imgchkr` command line.
//!
//! The data path is one line: [`handlers::submit`] decodes and vets a submission, stores the
//! job and enqueues its id on the fair [`queue::MemoryQueue`]; a [`worker::Workers`]
//! dispatcher takes it off the queue and runs core's `run_job`: header probe (`local` inline,
//! or on the blocking pool with `--blocking-local-reads`; `url` and `s3` through
//! imgchkr-fetch's remote sources), policy, webhooks through the [`webhooks::Webhooks`]
//! notifier. With `--redis` the store and queue are [`redis::RedisStore`] /
//! [`redis::RedisQueue`] instead ([`backend::Backend`]), and `imgchkr api` / `imgchkr worker`
//! run the two halves in separate processes; [`service::Service`] assembles a process.
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod app;
pub mod auth;
pub mod backend;
pub mod check;
pub mod cli;
pub mod handlers;
pub mod logging;
pub mod metrics;
pub mod queue;
pub mod redis;
pub mod response;
pub mod routes;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod webhooks;
pub mod worker;
