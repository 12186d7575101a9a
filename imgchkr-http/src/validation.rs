//! How a job's asset is read and checked ([`Validator`]): `local` headers inline on the async
//! worker (a few syscalls cost less than waking a pool thread), or on the blocking pool when
//! reads can stall (`--blocking-local-reads`, for network filesystems) or decode fully
//! (`--verify decode`, which reads and decodes the whole image); `url` and `s3` through the
//! remote sources, which bound their own concurrency.

use std::sync::Arc;
use std::time::Instant;

use imgchkr_core::notify::BoxFuture;
use imgchkr_core::worker::Validator;
use imgchkr_core::{AssetPath, ImageDir, Job, Policy, Report, ValidationError, Verify};
use imgchkr_fetch::RemoteSources;
use tokio::sync::Semaphore;

use crate::metrics as m;

/// The service's [`Validator`].
pub struct Validation {
    /// Where `local` paths resolve.
    pub image_dir: Arc<ImageDir>,
    /// Reads `url` and `s3` assets; `None` when only `local` is enabled.
    pub remote: Option<RemoteSources>,
    /// The limits.
    pub policy: Policy,
    /// Whether `local` reads run on the blocking pool rather than inline.
    pub blocking_local_reads: bool,
    /// One permit per blocking-pool read or decode in progress (`--workers`).
    pub blocking_slots: Arc<Semaphore>,
}

impl Validation {
    async fn check(
        image_dir: Arc<ImageDir>,
        remote: Option<RemoteSources>,
        policy: Policy,
        blocking: Option<Arc<Semaphore>>,
        asset: AssetPath,
    ) -> Report {
        let started = Instant::now();
        let report = match &asset {
            AssetPath::Local { path } => match blocking {
                None => image_dir.validate(path, &policy),
                Some(slots) => {
                    let Ok(_slot) = slots.acquire_owned().await else {
                        return Report::unreachable(read_failed(&asset, "shutting down"));
                    };
                    let path = path.clone();
                    tokio::task::spawn_blocking(move || image_dir.validate(&path, &policy))
                        .await
                        .unwrap_or_else(|_| {
                            Report::unreachable(read_failed(&asset, "validation aborted"))
                        })
                }
            },
            AssetPath::Url { .. } | AssetPath::S3 { .. } => match &remote {
                Some(remote) => remote.validate(&asset, &policy).await,
                None => Report::unreachable(read_failed(&asset, "unsupported location")),
            },
            #[allow(unreachable_patterns)]
            _ => Report::unreachable(read_failed(&asset, "unsupported location")),
        };
        metrics::histogram!(m::VALIDATION_SECONDS).record(started.elapsed().as_secs_f64());
        report
    }
}

impl Validator for Validation {
    fn validate(&self, job: &Job) -> BoxFuture<'static, Report> {
        // A full decode reads and decodes the whole image: never on an async worker thread.
        let blocking = (self.blocking_local_reads || self.policy.verify == Verify::Decode)
            .then(|| Arc::clone(&self.blocking_slots));
        Box::pin(Validation::check(
            Arc::clone(&self.image_dir),
            self.remote.clone(),
            self.policy,
            blocking,
            job.asset_path.clone(),
        ))
    }
}

fn read_failed(asset: &AssetPath, reason: &str) -> ValidationError {
    ValidationError::ReadFailed {
        path: asset.path().to_owned(),
        reason: reason.to_owned(),
    }
}
