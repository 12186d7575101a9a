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
use crate::backend::Backend;
use crate::cli::ServeArgs;
use crate::queue::MemoryQueue;
use crate::redis::RedisConfig;
use crate::server::{self, HttpConfig};
use crate::webhooks::Webhooks;
use crate::worker::Workers;

/// Which parts of the service this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// HTTP API and workers (in memory, or on Redis with `--redis`).
    Serve,
    /// HTTP API only; jobs go to Redis.
    Api,
    /// Workers only, taking jobs from Redis; no listener.
    Worker,
}

/// Runs the service until a signal; returns the process exit status.
pub async fn run(args: ServeArgs, role: Role) -> u8 {
    if role != Role::Serve && args.redis.is_none() {
        error!("`api` and `worker` need --redis (IMGCHKR_REDIS): they share jobs through it");
        return 2;
    }
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
    let retention = Retention {
        max_age: args.job_retention,
        max_jobs: args.max_jobs,
    };
    let backend = match &args.redis {
        None => Backend::Memory {
            store: Arc::new(MemoryStore::new(retention)),
            queue: Arc::new(MemoryQueue::new(
                args.queue_capacity,
                args.tenant_queue_share(),
            )),
        },
        Some(url) => {
            let mut config = RedisConfig::new(url.clone());
            config.capacity = args.queue_capacity;
            config.per_tenant = args.tenant_queue_share();
            config.retention = retention;
            match crate::redis::connect(config).await {
                Ok((store, queue)) => {
                    crate::redis::describe_metrics();
                    Backend::Redis {
                        store,
                        queue: Arc::new(queue),
                    }
                }
                Err(e) => {
                    error!(error = %e, "cannot connect to Redis");
                    return 2;
                }
            }
        }
    };
    let workers = Arc::new(Workers {
        backend,
        webhooks,
        image_dir,
        remote,
        policy: args.limits.policy(),
        probe_slots: Arc::new(Semaphore::new(args.workers())),
        job_slots: Arc::new(Semaphore::new(max_jobs as usize)),
        max_jobs,
        alive: Arc::new(AtomicBool::new(false)),
    });
    if role == Role::Worker {
        return run_workers_only(&workers, args.drain_timeout).await;
    }
    let listener = match TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            error!(addr = %args.listen, error = %e, "cannot listen");
            return 2;
        }
    };
    let dispatcher = (role == Role::Serve).then(|| workers.spawn());
    let app = Arc::new(App {
        workers: Arc::clone(&workers),
        runs_workers: role == Role::Serve,
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
    match dispatcher {
        Some(dispatcher) => drain(&workers, dispatcher, args.drain_timeout).await,
        None => workers.backend.close(),
    }
    info!("stopped");
    0
}

/// `imgchkr worker`: the dispatcher alone, until a signal.
async fn run_workers_only(workers: &Arc<Workers>, drain_timeout: Duration) -> u8 {
    let dispatcher = workers.spawn();
    info!(
        workers = workers.probe_slots.available_permits(),
        "worker started"
    );
    crate::shutdown::signal_received().await;
    drain(workers, dispatcher, drain_timeout).await;
    info!("stopped");
    0
}

async fn drain(workers: &Workers, dispatcher: tokio::task::JoinHandle<()>, timeout: Duration) {
    info!(
        queued = workers.backend.local_len(),
        drain_timeout_secs = timeout.as_secs_f64(),
        "stopped accepting; draining jobs"
    );
    let abandoned = workers.drain(dispatcher, timeout).await;
    if abandoned > 0 {
        warn!(
            abandoned,
            "drain timeout: jobs still queued or running are lost"
        );
    }
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
