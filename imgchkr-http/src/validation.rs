//! How a job's asset is read and checked ([`Validator`]): `local` headers inline on the async
//! worker (a few syscalls cost less than waking a pool thread), or on the blocking pool when
//! reads can stall (`--blocking-local-reads`, for network filesystems) or decode fully
//! (`--verify decode`, which reads and decodes the whole image); `url` and `s3` through the
//! remote sources, which bound their own concurrency.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use imgchkr_core::notify::BoxFuture;
use imgchkr_core::worker::Validator;
use imgchkr_core::{AssetPath, ImageDir, Job, Policy, Report, ValidationError, Verify};
use imgchkr_fetch::RemoteSources;
use tokio::sync::Semaphore;

use crate::metrics as m;
use crate::tenants::TenantsHandle;

/// The service's [`Validator`].
pub struct Validation {
    /// Where `local` paths resolve: the image directory, or a tenant's `image_subdir` in it.
    pub image_dirs: ImageDirs,
    /// Reads `url` and `s3` assets; `None` when only `local` is enabled.
    pub remote: Option<RemoteSources>,
    /// The limits.
    pub policy: Policy,
    /// Whether `local` reads run on the blocking pool rather than inline.
    pub blocking_local_reads: bool,
    /// One permit per blocking-pool read or decode in progress (`--workers`).
    pub blocking_slots: Arc<Semaphore>,
}

/// The image directory and the tenants' subdirectories of it, opened once each.
pub struct ImageDirs {
    root: Arc<ImageDir>,
    tenants: Arc<TenantsHandle>,
    /// Opened subdirectories by path (a reload that changes a tenant's subdirectory opens
    /// the new one; the set stays as small as the subdirectories configured).
    opened: Mutex<HashMap<PathBuf, Arc<ImageDir>>>,
}

impl ImageDirs {
    /// The image directory `root`, with the subdirectories `tenants` name.
    pub fn new(root: ImageDir, tenants: Arc<TenantsHandle>) -> ImageDirs {
        ImageDirs {
            root: Arc::new(root),
            tenants,
            opened: Mutex::default(),
        }
    }

    /// The directory `tenant`'s `local` paths resolve in.
    fn for_tenant(&self, tenant: &str) -> Result<Arc<ImageDir>, String> {
        let Some(subdir) = self
            .tenants
            .current()
            .get(tenant)
            .and_then(|t| t.image_subdir.clone())
        else {
            return Ok(Arc::clone(&self.root));
        };
        let mut opened = self.opened.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(dir) = opened.get(&subdir) {
            return Ok(Arc::clone(dir));
        }
        let dir = ImageDir::open(self.root.path().join(&subdir))
            .map(Arc::new)
            .map_err(|e| format!("the tenant's image directory cannot be opened: {e}"))?;
        opened.insert(subdir, Arc::clone(&dir));
        Ok(dir)
    }
}

impl Validation {
    async fn check(
        image_dir: Result<Arc<ImageDir>, String>,
        remote: Option<RemoteSources>,
        policy: Policy,
        blocking: Option<Arc<Semaphore>>,
        asset: AssetPath,
    ) -> Report {
        let started = Instant::now();
        let report = match &asset {
            AssetPath::Local { path } => match (image_dir, blocking) {
                (Err(why), _) => Report::unreachable(read_failed(&asset, &why)),
                (Ok(dir), None) => dir.validate(path, &policy),
                (Ok(dir), Some(slots)) => {
                    let Ok(_slot) = slots.acquire_owned().await else {
                        return Report::unreachable(read_failed(&asset, "shutting down"));
                    };
                    let path = path.clone();
                    tokio::task::spawn_blocking(move || dir.validate(&path, &policy))
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
        let image_dir = match &job.asset_path {
            AssetPath::Local { .. } => self.image_dirs.for_tenant(&job.tenant),
            _ => Ok(Arc::clone(&self.image_dirs.root)),
        };
        Box::pin(Validation::check(
            image_dir,
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
