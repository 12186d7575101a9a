//! imgchkr-core: header-only image validation, with no async runtime and no network.
//!
//! The data path reads as one line: a [`Submission`] becomes a [`Job`] ([`admission`]),
//! recorded and queued by an [`Engine`]; the one [`worker`] loop leases it and runs it with
//! [`run_job`], which probes the image's header ([`probe()`], through [`ImageDir`] for local
//! files), applies the [`Policy`], and reports each event through a [`Notifier`], recording
//! everything in the engine ([`recorder`]).
//!
//! Engines (memory here; SQLite, Redis, Postgres in their own crates) implement one trait,
//! [`Engine`]; the `testkit` feature holds the conformance suite each of them runs.
//!
//! ```
//! use imgchkr_core::{Policy, Report};
//! // A baseline JPEG header: SOI, then SOF0 for 1800x1200, one component.
//! let jpeg = [0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x0B, 8, 0x04, 0xB0, 0x07, 0x08, 1, 1, 0x11, 0];
//! let report = Report::from_bytes(&jpeg, &Policy::default());
//! assert_eq!(report.dimensions(), Some((1800, 1200)));
//! assert_eq!(report.error_texts(), ["Image width exceeds maximum (1800/1000)",
//!                                   "Image height exceeds maximum (1200/1000)"]);
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod activity;
pub mod admission;
#[cfg(feature = "decode")]
mod decode;
pub mod duration;
pub mod engine;
pub mod fetch;
pub mod job;
mod map;
pub mod notify;
pub mod policy;
pub mod probe;
pub mod recorder;
pub mod runner;
pub mod source;
pub mod submission;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod worker;

pub use engine::memory::MemoryEngine;
pub use engine::{Engine, Retention, StoreError};
pub use job::{
    AssetPath, DeliveryRecord, DeliveryStatus, ErrorMap, Event, Job, JobId, JobKey, JobState,
    JobUpdate, NotificationUrls, Payload, Priority,
};
pub use notify::{DeliveryOutcome, Notification, Notifier, RecordingNotifier};
pub use policy::{Policy, ValidationError, Verify};
pub use probe::{Format, Formats, ImageInfo, Probe, ProbeError, Step, probe};
pub use runner::run_job;
pub use source::{ImageDir, Report, validate_file};
pub use submission::{FieldErrors, Submission};
