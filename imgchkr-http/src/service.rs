//! `imgchkr serve`: wires the store, queue, notifier, workers and HTTP server together, and
//! stops them in order on SIGINT/SIGTERM.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use imgchkr_core::{ImageDir, MemoryStore, Retention};
use imgchkr_notify::RemoteSources;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{error, info, warn};

use crate::app::App;
use crate::auth::Auth;
use crate::cli::ServeArgs;
use crate::queue::MemoryQueue;
use crate::server::{self, HttpConfig};
use crate::webhooks::Webhooks;
use crate::worker::Workers;

/// Runs the service until a signal; returns the process exit status.
pub async fn run(args: ServeArgs) -> u8 {
    let metrics = match crate::metrics::install() {
        Ok(handle) => {
            tokio::spawn(crate::metrics::upkeep(handle.clone()));
            Some(handle)
        }
        Err(e) => {
            warn!(error = %e, "metrics disabled");
            None
        }
    };
    let image_dir = match ImageDir::open(&args.image_dir) {
        Ok(dir) => Arc::new(dir),
        Err(e) => {
            error!(dir = %args.image_dir.display(), error = %e, "cannot open the image directory");
            return 2;
        }
    };
    let webhooks = match notifier(&args) {
        Ok(webhooks) => webhooks,
        Err(e) => {
            error!(error = %e, "invalid webhook configuration");
            return 2;
        }
    };
    let remote = match remote_sources(&args) {
        Ok(remote) => remote,
        Err(e) => {
            error!(error = %e, "invalid remote location configuration");
            return 2;
        }
    };
    let max_jobs = u32::try_from(args.max_concurrent_jobs.clamp(1, Semaphore::MAX_PERMITS))
        .unwrap_or(u32::MAX);
    let workers = Arc::new(Workers {
        store: Arc::new(MemoryStore::new(Retention {
            max_age: args.job_retention,
            max_jobs: args.max_jobs,
        })),
        queue: Arc::new(MemoryQueue::new(
            args.queue_capacity,
            args.tenant_queue_share(),
        )),
        webhooks,
        image_dir,
        remote,
        policy: args.limits.policy(),
        probe_slots: Arc::new(Semaphore::new(args.workers())),
        job_slots: Arc::new(Semaphore::new(max_jobs as usize)),
        max_jobs,
        alive: Arc::new(AtomicBool::new(false)),
    });
    let listener = match TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            error!(addr = %args.listen, error = %e, "cannot listen");
            return 2;
        }
    };
    let dispatcher = workers.spawn();
    let app = Arc::new(App {
        workers: Arc::clone(&workers),
        auth: Auth::new(&args.auth_tokens),
        max_body_bytes: args.max_body_bytes,
        body_read_timeout: args.body_read_timeout,
        locations: args.remote.location_names(),
        metrics,
    });
    let addr = listener.local_addr().unwrap_or(args.listen);
    // The exact form tests and scripts look for: `listening addr=<ip>:<port>`.
    info!(
        %addr,
        image_dir = %workers.image_dir.path().display(),
        workers = args.workers(),
        "listening addr={addr}"
    );

    let http = HttpConfig {
        header_read_timeout: args.header_read_timeout,
        close_timeout: args.drain_timeout.min(Duration::from_secs(5)),
    };
    server::serve(listener, app, http, crate::shutdown::signal_received()).await;
    info!(
        queued = workers.queue.len(),
        drain_timeout_secs = args.drain_timeout.as_secs_f64(),
        "stopped accepting; draining jobs"
    );
    let abandoned = workers.drain(dispatcher, args.drain_timeout).await;
    if abandoned > 0 {
        warn!(
            abandoned,
            "drain timeout: jobs still queued or running are lost"
        );
    }
    info!("stopped");
    0
}

/// The webhook sender: one shared client for every job (pooled connections).
fn notifier(args: &ServeArgs) -> Result<Arc<dyn Webhooks>, String> {
    let config = args.webhooks.config().map_err(|e| e.to_string())?;
    let notifier = imgchkr_notify::WebhookNotifier::new(config).map_err(|e| e.to_string())?;
    Ok(Arc::new(notifier))
}

/// The `url`/`s3` reader when one of them is enabled, with the webhooks' destination policy.
fn remote_sources(args: &ServeArgs) -> Result<Option<RemoteSources>, String> {
    if !args.remote.remote_enabled() {
        return Ok(None);
    }
    let webhooks = args.webhooks.config().map_err(|e| e.to_string())?;
    let config = args.remote.config(&webhooks).map_err(|e| e.to_string())?;
    RemoteSources::new(config)
        .map(Some)
        .map_err(|e| e.to_string())
}
