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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use imgchkr_core::{JobId, NotificationUrls};

    use super::*;

    /// A full decode must not run on the async worker thread: on a one-thread runtime, other
    /// tasks keep running while a large image is decoded.
    #[test]
    fn a_full_decode_leaves_the_async_thread_free() {
        let dir = tempfile::tempdir().unwrap();
        let image = image::RgbImage::from_fn(1500, 1500, |x, y| {
            image::Rgb([(x * 7 + y) as u8, (y * 3) as u8, (x ^ y) as u8])
        });
        image.save(dir.path().join("big.png")).unwrap();
        let mut policy = Policy::default();
        policy.verify = Verify::Decode;
        policy.formats = "png".parse().unwrap();
        policy.max_width = 2000;
        policy.max_height = 2000;
        let tenants = Arc::new(TenantsHandle::load(None, &[], &["local"]).unwrap());
        let validation = Validation {
            image_dirs: ImageDirs::new(ImageDir::open(dir.path()).unwrap(), tenants),
            remote: None,
            policy,
            blocking_local_reads: false,
            blocking_slots: Arc::new(Semaphore::new(1)),
        };
        let url: url::Url = "http://cb.example/x".parse().unwrap();
        let job = Job::new(
            JobId::random(),
            AssetPath::Local {
                path: "big.png".into(),
            },
            NotificationUrls {
                on_start: url.clone(),
                on_success: url.clone(),
                on_failure: url,
            },
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let ticks = Arc::new(AtomicU64::new(0));
        let (report, ticked) = runtime.block_on(async {
            let counter = Arc::clone(&ticks);
            let ticker = tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            });
            let started = std::time::Instant::now();
            let report = validation.validate(&job).await;
            let took = started.elapsed();
            ticker.abort();
            (report, (ticks.load(Ordering::SeqCst), took))
        });
        assert!(report.is_valid(), "{:?}", report.errors);
        let (ticks, took) = ticked;
        // The ticker ran during the decode: at least a tick for every 10 ms it took.
        assert!(
            ticks as u128 >= took.as_millis() / 10,
            "{ticks} ticks during a {took:?} decode"
        );
    }
}
