//! `s3` locations: `HEAD` for the size, then ranged `GET`s of what the probe needs, through
//! `object_store`'s `AmazonS3`, one store per bucket.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use imgchkr_core::fetch::probe_ranges;
use imgchkr_core::submission::parse_s3_uri;
use imgchkr_egress::Failure;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::client::HttpError;
use object_store::path::Path;
use object_store::{BackoffConfig, ClientConfigKey, ObjectStore, RetryConfig};

use crate::config::{RemoteConfig, s3_key};
use crate::error::FetchError;
use crate::fetched::{CHUNK, FIRST_READ, Fetched};
use crate::meter::Meter;

/// Stores kept at most; the cache is emptied when a new bucket would exceed it (bucket names
/// come from clients).
const MAX_CACHED_STORES: usize = 64;

/// Retries of a failed S3 request (5xx, connection errors), within the asset's timeout.
const MAX_RETRIES: usize = 2;

/// The S3 settings and the stores built so far, by bucket.
pub(crate) struct Stores {
    base: AmazonS3Builder,
    buckets: Vec<String>,
    max_reads: u32,
    cache: Mutex<HashMap<String, Arc<AmazonS3>>>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The builder holds credentials: not printed.
        f.debug_struct("Stores")
            .field("buckets", &self.buckets)
            .finish_non_exhaustive()
    }
}

impl Stores {
    /// Settings from the environment (if asked), then `config.s3_options`, then the timeouts
    /// and retries of `config`. Options were checked by [`RemoteConfig::validate`].
    pub(crate) fn new(config: &RemoteConfig) -> Stores {
        let mut base = if config.s3_from_env {
            AmazonS3Builder::from_env()
        } else {
            AmazonS3Builder::new()
        };
        for (key, value) in &config.s3_options {
            if let Some(key) = s3_key(key) {
                base = base.with_config(key, value);
            }
        }
        let millis = |d: std::time::Duration| format!("{}ms", d.as_millis());
        base = base
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
                millis(config.request_timeout),
            )
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                millis(config.connect_timeout),
            )
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: MAX_RETRIES,
                retry_timeout: config.timeout,
            });
        Stores {
            base,
            buckets: config.s3_buckets.clone(),
            max_reads: config.max_reads,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `uri`'s bucket may be named (the submission-time check; `store` checks again).
    pub(crate) fn check_bucket(&self, uri: &str) -> Result<(), String> {
        match imgchkr_core::submission::parse_s3_uri(uri) {
            Some((bucket, _)) if !self.allows(bucket) => Err(format!(
                "S3 bucket not allowed: {bucket}; allowed: {}.",
                self.buckets.join(", ")
            )),
            _ => Ok(()),
        }
    }

    fn allows(&self, bucket: &str) -> bool {
        self.buckets.is_empty() || self.buckets.iter().any(|b| b == bucket)
    }

    fn store(&self, bucket: &str) -> Result<Arc<AmazonS3>, FetchError> {
        if !self.allows(bucket) {
            return Err(FetchError::BucketNotAllowed(bucket.to_owned()));
        }
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(store) = cache.get(bucket) {
            return Ok(Arc::clone(store));
        }
        let store = self
            .base
            .clone()
            .with_bucket_name(bucket)
            .build()
            .map_err(|e| FetchError::unreachable(format!("S3 configuration: {e}")))?;
        let store = Arc::new(store);
        if cache.len() >= MAX_CACHED_STORES {
            cache.clear();
        }
        cache.insert(bucket.to_owned(), Arc::clone(&store));
        Ok(store)
    }

    /// Validates the object at `uri` (`s3://bucket/key` as the client gave it).
    pub(crate) async fn fetch(&self, uri: &str, meter: &Meter) -> Result<Fetched, FetchError> {
        let (bucket, key) = parse_s3_uri(uri)
            .ok_or_else(|| FetchError::unreachable("not an s3://bucket/key URI"))?;
        let path = Path::parse(key)
            .map_err(|_| FetchError::unreachable("a key object_store cannot address"))?;
        let store = self.store(bucket)?;
        let max_reads = self.max_reads;
        meter.start_read(max_reads)?;
        let meta = store.head(&path).await.map_err(store_error)?;
        let size = meta.size;
        let (store, path) = (&store, &path);
        let probed = probe_ranges(size, CHUNK, u32::MAX, move |offset, len| async move {
            meter.start_read(max_reads)?;
            // The first read takes a little more: a typical header fits in it.
            let len = if offset == 0 {
                len.max(FIRST_READ)
            } else {
                len
            } as u64;
            let end = offset.saturating_add(len).min(size);
            let bytes = store
                .get_range(path, offset..end)
                .await
                .map_err(store_error)?;
            meter.add_bytes(bytes.len());
            Ok::<_, FetchError>(bytes)
        })
        .await?;
        Ok(Fetched {
            size,
            probed: probed.result,
        })
    }
}

/// An `object_store` error by type: its not-found and permission variants, then a transport
/// failure (an [`HttpError`] in the chain) as the egress [`Failure`] of its cause; anything
/// else is the store's answer, shown by its deepest text.
fn store_error(e: object_store::Error) -> FetchError {
    match e {
        object_store::Error::NotFound { .. } => FetchError::NotFound,
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => FetchError::PermissionDenied,
        other => match (has_http_error(&other), Failure::of(&other)) {
            (false, Failure::Other(answer)) => FetchError::Unreachable(answer),
            (_, failure) => FetchError::Request(failure),
        },
    }
}

/// Whether the request itself failed (connect, timeout, reset…), rather than being answered.
fn has_http_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(e) = source {
        if e.downcast_ref::<HttpError>().is_some() {
            return true;
        }
        source = e.source();
    }
    false
}
