//! One process of the service, built by [`Service`]: the store and queue, the notifier, the
//! workers and the HTTP listeners, started together and stopped in order (stop accepting, let
//! open requests finish, drain the jobs).
//!
//! ```no_run
//! # async fn doc() -> Result<(), imgchkr_http::service::ServiceError> {
//! use imgchkr_http::cli::ServeArgs;
//! use imgchkr_http::service::Service;
//!
//! let mut args = ServeArgs::default();
//! args.listen = "127.0.0.1:0".parse().expect("an address");
//! args.limits.max_width = 4000;
//! let running = Service::new(args).start().await?;
//! println!("serving on {:?}", running.local_addr());
//! running.serve_until(imgchkr_http::shutdown::signal_received()).await;
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use imgchkr_core::{ImageDir, MemoryStore, Notifier, Retention};
use imgchkr_fetch::RemoteSources;
use imgchkr_notify::{DestinationCheck, WebhookNotifier};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::app::App;
use crate::auth::Auth;
use crate::backend::Backend;
use crate::cli::ServeArgs;
use crate::queue::MemoryQueue;
use crate::redis::RedisConfig;
use crate::server::{self, HttpConfig};
use crate::webhooks::{Checked, Webhooks};
use crate::worker::Workers;

/// Which parts of the service this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// HTTP API and workers (in memory, or on Redis with `--redis`).
    Serve,
    /// HTTP API only; jobs go to Redis.
    Api,
    /// Workers only, taking jobs from Redis; no API listener.
    Worker,
}

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// `api` and `worker` share jobs through Redis and cannot run without it.
    #[error("`api` and `worker` need --redis (IMGCHKR_REDIS): they share jobs through it")]
    NeedsRedis,
    /// The directory `local` paths resolve in cannot be opened.
    #[error("cannot open the image directory {dir}: {source}")]
    ImageDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The webhook settings are invalid.
    #[error("invalid webhook configuration: {0}")]
    Webhooks(String),
    /// The remote location settings are invalid.
    #[error("invalid remote location configuration: {0}")]
    Remote(String),
    /// The Redis settings are invalid.
    #[error("invalid Redis configuration: {0}")]
    RedisConfig(String),
    /// Redis could not be reached at start.
    #[error("cannot connect to Redis: {0}")]
    Redis(String),
    /// An address could not be listened on.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// How events reach the client.
enum Delivery {
    /// A [`WebhookNotifier`] built from the webhook flags.
    Configured,
    /// The caller's notifier; the webhook flags' destination policy vets submissions.
    Custom(Box<dyn Notifier>),
    /// The caller's notifier and destination check.
    Webhooks(Arc<dyn Webhooks>),
}

/// A service process, configured: [`ServeArgs`] (the `imgchkr serve` flags, or
/// [`ServeArgs::default`] set in code), a [`Role`], and optionally the notifier. Nothing runs
/// until [`start`](Service::start) or [`run`](Service::run).
pub struct Service {
    args: ServeArgs,
    role: Role,
    delivery: Delivery,
}

impl Service {
    /// A service running both the API and the workers, sending webhooks as `args` says.
    pub fn new(args: ServeArgs) -> Service {
        Service {
            args,
            role: Role::Serve,
            delivery: Delivery::Configured,
        }
    }

    /// Runs only part of the service (`Api` and `Worker` need `args.redis`).
    pub fn role(mut self, role: Role) -> Service {
        self.role = role;
        self
    }

    /// Delivers job events through `notifier` instead of the webhook sender the flags would
    /// build. Submissions are still vetted by the flags' destination policy
    /// (`--notify-allow`, `--notify-deny-private`). To also send the webhooks, compose
    /// `notifier` with an `imgchkr_notify::WebhookNotifier`.
    pub fn notifier(mut self, notifier: impl Notifier + 'static) -> Service {
        self.delivery = Delivery::Custom(Box::new(notifier));
        self
    }

    /// Like [`notifier`](Service::notifier), with the submission-time destination check too.
    pub fn webhooks(mut self, webhooks: impl Webhooks) -> Service {
        self.delivery = Delivery::Webhooks(Arc::new(webhooks));
        self
    }

    /// Runs until SIGINT or SIGTERM, then stops in order.
    pub async fn run(self) -> Result<(), ServiceError> {
        let running = self.start().await?;
        running
            .serve_until(crate::shutdown::signal_received())
            .await;
        Ok(())
    }

    /// Sets everything up: connects the backend, binds the listeners and starts the workers.
    /// Requests are answered once [`Running::serve_until`] is called.
    pub async fn start(self) -> Result<Running, ServiceError> {
        let Service {
            args,
            role,
            delivery,
        } = self;
        if role != Role::Serve && args.redis.is_none() {
            return Err(ServiceError::NeedsRedis);
        }
        let metrics = metrics_handle();
        let image_dir =
            ImageDir::open(&args.image_dir).map_err(|source| ServiceError::ImageDir {
                dir: args.image_dir.clone(),
                source,
            })?;
        let webhooks = notifier(&args, delivery)?;
        let remote = remote_sources(&args)?;
        let backend = backend(&args).await?;
        let max_jobs = u32::try_from(args.max_concurrent_jobs.clamp(1, Semaphore::MAX_PERMITS))
            .unwrap_or(u32::MAX);
        let workers = Arc::new(Workers {
            backend,
            webhooks,
            image_dir: Arc::new(image_dir),
            remote,
            policy: args.limits.policy(),
            probe_slots: Arc::new(Semaphore::new(args.workers())),
            blocking_local_reads: args.blocking_local_reads,
            job_slots: Arc::new(Semaphore::new(max_jobs as usize)),
            max_jobs,
            alive: Arc::new(AtomicBool::new(false)),
        });
        let app = |serves_api: bool| {
            Arc::new(App {
                workers: Arc::clone(&workers),
                runs_workers: role != Role::Api,
                serves_api,
                auth: Auth::new(&args.auth_tokens),
                max_body_bytes: args.max_body_bytes,
                body_read_timeout: args.body_read_timeout,
                locations: args.remote.location_names(),
                metrics: metrics.clone(),
            })
        };
        let api = match role {
            Role::Worker => None,
            Role::Serve | Role::Api => Some((bind(args.listen).await?, app(true))),
        };
        let ops = match args.metrics_listen {
            Some(addr) => Some((bind(addr).await?, app(false))),
            None => None,
        };
        let dispatcher = (role != Role::Api).then(|| workers.spawn());
        let running = Running {
            workers,
            api,
            ops,
            dispatcher,
            http: HttpConfig {
                header_read_timeout: args.header_read_timeout,
                close_timeout: args.drain_timeout.min(Duration::from_secs(5)),
            },
            drain_timeout: args.drain_timeout,
        };
        if let Some(addr) = running.metrics_addr() {
            info!(%addr, "serving /healthz, /readyz and /metrics on metrics_addr={addr}");
        }
        match running.local_addr() {
            // The exact form tests and scripts look for: `listening addr=<ip>:<port>`.
            Some(addr) => info!(
                %addr,
                image_dir = %running.workers.image_dir.path().display(),
                workers = args.workers(),
                "listening addr={addr}"
            ),
            None => info!(workers = args.workers(), "worker started"),
        }
        Ok(running)
    }
}

/// A started service: listeners bound, workers taking jobs.
pub struct Running {
    workers: Arc<Workers>,
    api: Option<(TcpListener, Arc<App>)>,
    ops: Option<(TcpListener, Arc<App>)>,
    dispatcher: Option<JoinHandle<()>>,
    http: HttpConfig,
    drain_timeout: Duration,
}

impl Running {
    /// The API's address (`None` for the `Worker` role).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        listener_addr(self.api.as_ref())
    }

    /// The `--metrics-listen` address, if any.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        listener_addr(self.ops.as_ref())
    }

    /// Answers requests until `stop` resolves; then stops accepting, lets open requests
    /// finish, and drains the jobs (within the drain timeout).
    pub async fn serve_until(self, stop: impl Future<Output = ()>) {
        let Running {
            workers,
            api,
            ops,
            dispatcher,
            http,
            drain_timeout,
        } = self;
        let (stop_tx, stop_rx) = watch::channel(());
        let stopped = |mut rx: watch::Receiver<()>| async move {
            // Err: the sender is gone, which is the signal too.
            let _ = rx.changed().await;
        };
        let servers: Vec<_> = [api, ops]
            .into_iter()
            .flatten()
            .map(|(listener, app)| {
                tokio::spawn(server::serve(listener, app, http, stopped(stop_rx.clone())))
            })
            .collect();
        stop.await;
        drop(stop_tx);
        for server in servers {
            if let Err(e) = server.await {
                warn!(error = %e, "listener task failed");
            }
        }
        match dispatcher {
            Some(dispatcher) => drain(&workers, dispatcher, drain_timeout).await,
            None => workers.backend.close(),
        }
        info!("stopped");
    }
}

/// `imgchkr serve|api|worker`: runs `args` in `role` until a signal; returns the process exit
/// status (2 when it cannot start, the reason logged).
pub async fn run(args: ServeArgs, role: Role) -> u8 {
    match Service::new(args).role(role).run().await {
        Ok(()) => 0,
        Err(e) => {
            error!(error = %e, "cannot start");
            2
        }
    }
}

fn listener_addr(listener: Option<&(TcpListener, Arc<App>)>) -> Option<SocketAddr> {
    listener.and_then(|(listener, _)| listener.local_addr().ok())
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServiceError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServiceError::Listen { addr, source })
}

/// The Prometheus recorder is process-wide: installed by the first service, shared by any
/// later one in the same process.
fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| match crate::metrics::install() {
            Ok(handle) => {
                tokio::spawn(crate::metrics::upkeep(handle.clone()));
                Some(handle)
            }
            Err(e) => {
                warn!(error = %e, "metrics disabled");
                None
            }
        })
        .clone()
}

async fn drain(workers: &Workers, dispatcher: JoinHandle<()>, timeout: Duration) {
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

/// The store and queue: in memory, or the shared Redis.
async fn backend(args: &ServeArgs) -> Result<Backend, ServiceError> {
    let retention = Retention {
        max_age: args.job_retention,
        max_jobs: args.max_jobs,
    };
    let Some(url) = &args.redis else {
        return Ok(Backend::Memory {
            store: Arc::new(MemoryStore::new(retention)),
            queue: Arc::new(MemoryQueue::new(
                args.queue_capacity,
                args.tenant_queue_share(),
            )),
        });
    };
    let config = redis_config(args, url, retention)?;
    let (store, queue) = crate::redis::connect(config)
        .await
        .map_err(|e| ServiceError::Redis(e.to_string()))?;
    crate::redis::describe_metrics();
    Ok(Backend::Redis {
        store,
        queue: Arc::new(queue),
    })
}

fn redis_config(
    args: &ServeArgs,
    url: &str,
    retention: Retention,
) -> Result<RedisConfig, ServiceError> {
    if args.redis_heartbeat.is_zero() || args.redis_heartbeat >= args.redis_reclaim_idle {
        return Err(ServiceError::RedisConfig(format!(
            "--redis-heartbeat ({:?}) must be above zero and under --redis-reclaim-idle ({:?})",
            args.redis_heartbeat, args.redis_reclaim_idle
        )));
    }
    let mut config = RedisConfig::new(url);
    config.capacity = args.queue_capacity;
    config.per_tenant = args.tenant_queue_share();
    config.retention = retention;
    config.reclaim_idle = args.redis_reclaim_idle;
    config.heartbeat_every = args.redis_heartbeat;
    // Scan for abandoned jobs often enough that one is taken over within about the idle time.
    config.reclaim_every = config.reclaim_every.min(args.redis_reclaim_idle / 2);
    config.max_deliveries = args.redis_max_deliveries;
    Ok(config)
}

/// The notifier: the webhook sender the flags describe, or the caller's.
fn notifier(args: &ServeArgs, delivery: Delivery) -> Result<Arc<dyn Webhooks>, ServiceError> {
    let config = || {
        args.webhooks
            .config()
            .map_err(|e| ServiceError::Webhooks(e.to_string()))
    };
    Ok(match delivery {
        // One shared client for every job (pooled connections).
        Delivery::Configured => Arc::new(
            WebhookNotifier::new(config()?).map_err(|e| ServiceError::Webhooks(e.to_string()))?,
        ),
        Delivery::Custom(notifier) => {
            Arc::new(Checked::new(notifier, DestinationCheck::new(&config()?)))
        }
        Delivery::Webhooks(webhooks) => webhooks,
    })
}

/// The `url`/`s3` reader when one of them is enabled, with the webhooks' destination policy.
fn remote_sources(args: &ServeArgs) -> Result<Option<RemoteSources>, ServiceError> {
    if !args.remote.remote_enabled() {
        return Ok(None);
    }
    let remote = |e: String| ServiceError::Remote(e);
    let webhooks = args
        .webhooks
        .config()
        .map_err(|e| ServiceError::Webhooks(e.to_string()))?;
    let config = args
        .remote
        .config(&webhooks.destinations)
        .map_err(|e| remote(e.to_string()))?;
    RemoteSources::new(config)
        .map(Some)
        .map_err(|e| remote(e.to_string()))
}
