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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use imgchkr_core::admission::IdDeriver;
use imgchkr_core::engine::WorkerId;
use imgchkr_core::engine::{Admission, Retention};
use imgchkr_core::worker::{Worker, WorkerConfig, purge_forever};
use imgchkr_core::{Engine, ImageDir, JobId, Notifier};
use imgchkr_fetch::RemoteSources;
use imgchkr_notify::{DestinationCheck, WebhookNotifier};
use metrics_exporter_prometheus::PrometheusHandle;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::app::App;
use crate::cli::ServeArgs;
use crate::monitor::EngineMonitor;
use crate::server::{self, HttpConfig};
use crate::tenants::{TenantsError, TenantsHandle};
use crate::tls::Tls;
use crate::validation::Validation;
use crate::webhooks::{Checked, Webhooks};

/// Which parts of the service this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// HTTP API and workers.
    Serve,
    /// HTTP API only; jobs go to a shared store.
    Api,
    /// Workers only, taking jobs from a shared store; no API listener.
    Worker,
}

/// How often finished jobs past their retention are forgotten, and how many at a time.
const PURGE_EVERY: Duration = Duration::from_secs(1);
const PURGE_BUDGET: u64 = 1000;

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// `api` and `worker` share jobs through a shared store and cannot run on a single-node
    /// one.
    #[error(
        "`api` and `worker` need a shared --store (redis:// or postgres://): {store} is single-node, for `serve` only"
    )]
    SingleNode {
        /// The store URL.
        store: String,
    },
    /// The engine could not be chosen or opened.
    #[error(transparent)]
    Engine(#[from] crate::engines::EngineError),
    /// The settings contradict each other.
    #[error("invalid configuration: {0}")]
    Config(String),
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
    /// The tenants file cannot be used.
    #[error(transparent)]
    Tenants(#[from] TenantsError),
    /// The TLS certificate or key cannot be used.
    #[error("invalid TLS configuration: {0}")]
    Tls(String),
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

    /// Runs only part of the service (`Api` and `Worker` need a shared store).
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

    /// Sets everything up: opens the engine, binds the listeners and starts the workers.
    /// Requests are answered once [`Running::serve_until`] is called.
    pub async fn start(self) -> Result<Running, ServiceError> {
        let Service {
            args,
            role,
            delivery,
        } = self;
        if args.heartbeat.is_zero() || args.heartbeat >= args.lease_idle {
            return Err(ServiceError::Config(format!(
                "--heartbeat ({:?}) must be above zero and under --lease-idle ({:?})",
                args.heartbeat, args.lease_idle
            )));
        }
        let metrics = metrics_handle();
        let locations = args.remote.location_names();
        let tenants = Arc::new(TenantsHandle::load(
            args.tenants.as_deref(),
            &args.auth_tokens,
            &locations,
        )?);
        // Shares are split among the tenants configured at start.
        let tenant_count = tenants.current().len().max(1);
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => {
                Some(Arc::new(Tls::load(cert, key).map_err(ServiceError::Tls)?))
            }
            _ => None,
        };
        let image_dir =
            ImageDir::open(&args.image_dir).map_err(|source| ServiceError::ImageDir {
                dir: args.image_dir.clone(),
                source,
            })?;
        let webhooks = notifier(&args, delivery, tenant_count)?;
        let remote = remote_sources(&args)?;
        crate::engines::check(&args)?;
        if role != Role::Serve && !crate::engines::is_shared(&args) {
            return Err(ServiceError::SingleNode {
                store: crate::engines::redacted(args.store_url()),
            });
        }
        let engine = crate::engines::open(&args).await?;
        if role != Role::Serve && !engine.is_shared() {
            return Err(ServiceError::SingleNode {
                store: crate::engines::redacted(args.store_url()),
            });
        }
        let monitor = EngineMonitor::spawn(Arc::clone(&engine));
        let closing = Arc::new(AtomicBool::new(false));
        let worker = (role != Role::Api).then(|| {
            let validation = Validation {
                image_dirs: crate::validation::ImageDirs::new(image_dir, Arc::clone(&tenants)),
                remote: remote.clone(),
                policy: args.limits.policy(),
                blocking_local_reads: args.blocking_local_reads,
                blocking_slots: Arc::new(Semaphore::new(args.workers())),
            };
            let mut config = WorkerConfig::new(WorkerId::generate(), args.max_concurrent_jobs);
            config.lease_idle = args.lease_idle;
            config.heartbeat_every = args.heartbeat;
            config.max_deliveries = args.max_deliveries;
            config.poll_every = (args.lease_idle / 4).min(Duration::from_secs(5));
            config.tenant_in_flight = args.tenant_max_in_flight.or_else(|| {
                (tenant_count > 1).then(|| (args.max_concurrent_jobs / tenant_count).max(1) as u64)
            });
            Worker::new(
                Arc::clone(&engine),
                Arc::clone(&webhooks) as Arc<dyn Notifier>,
                Arc::new(validation),
                Arc::new(crate::runtime::Tokio),
                config,
            )
        });
        let ids = IdDeriver::new(id_secret(&*engine).await.as_bytes());
        let admission = Admission::new(
            args.queue_capacity as u64,
            args.tenant_queue_share(tenant_count) as u64,
        );
        let admin = crate::admin::Admin::new(args.admin_token.as_deref(), args.lease_idle);
        if tenants.current().enabled() && !admin.has_token() {
            info!("tenants authenticate and no --admin-token is set: /ui and /admin answer 401");
        }
        let app = |serves_api: bool| {
            Arc::new(App {
                engine: Arc::clone(&engine),
                worker: worker.clone(),
                monitor: Arc::clone(&monitor),
                serves_api,
                tenants: Arc::clone(&tenants),
                admission,
                ids: ids.clone(),
                webhooks: Arc::clone(&webhooks),
                remote: remote.clone(),
                policy: args.limits.policy(),
                max_wait: args.max_wait,
                max_body_bytes: args.max_body_bytes,
                body_read_timeout: args.body_read_timeout,
                locations: locations.clone(),
                metrics: metrics.clone(),
                closing: Arc::clone(&closing),
                admin: admin.clone(),
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
        let retention = Retention::new(args.job_retention, args.max_jobs);
        let purge = tokio::spawn(purge_forever(
            Arc::clone(&engine),
            Arc::new(crate::runtime::Tokio),
            retention,
            PURGE_EVERY,
            PURGE_BUDGET,
        ));
        let workers = worker.map(|worker| {
            let (stop, stopped) = oneshot::channel::<()>();
            let drain = args.drain_timeout;
            let until_stopped = async move {
                let _ = stopped.await;
            };
            // Called here, not in the task: the worker is running (ready) before the
            // listener answers its first /readyz.
            let task = tokio::spawn(worker.run(until_stopped, drain));
            (stop, task)
        });
        let reloads = tokio::spawn(reload_on_hangup(Arc::clone(&tenants), tls.clone()));
        let running = Running {
            api,
            ops,
            tls,
            workers,
            purge,
            reloads,
            closing,
            http: HttpConfig {
                header_read_timeout: args.header_read_timeout,
                close_timeout: args.drain_timeout.min(Duration::from_secs(5)),
                max_connections: args
                    .max_connections
                    .unwrap_or_else(server::default_max_connections),
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
                image_dir = %args.image_dir.display(),
                store = %crate::engines::redacted(args.store_url()),
                workers = args.workers(),
                "listening addr={addr}"
            ),
            None => info!(
                store = %crate::engines::redacted(args.store_url()),
                workers = args.workers(),
                "worker started"
            ),
        }
        Ok(running)
    }
}

/// The deployment's secret for `Idempotency-Key` ids: the first process to start makes it and
/// the engine keeps it, so every API process (and the next start) derives the same ids. A
/// process that cannot reach the engine uses one of its own meanwhile (its derived ids then
/// differ, which only weakens deduplication of retries across processes).
async fn id_secret(engine: &dyn Engine) -> String {
    let mine = format!(
        "{}{}",
        JobId::random().0.simple(),
        JobId::random().0.simple()
    );
    let now = OffsetDateTime::now_utc();
    let forever = now + Duration::from_secs(100 * 365 * 86_400);
    match engine
        .remember("imgchkr:id-secret", &mine, forever, now)
        .await
    {
        Ok(Some(existing)) => existing,
        Ok(None) => mine,
        Err(e) => {
            warn!(error = %e, "cannot read the deployment's id secret; using this process's own");
            mine
        }
    }
}

/// On each `SIGHUP`, reads the tenants file and the TLS certificate again; a file that does
/// not load leaves the settings in force, with the reason logged. Open connections are not
/// touched.
async fn reload_on_hangup(tenants: Arc<TenantsHandle>, tls: Option<Arc<Tls>>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        warn!("SIGHUP cannot be caught: the tenants file is not reloaded");
        return;
    };
    while hangups.recv().await.is_some() {
        match tenants.reload() {
            Ok(()) => info!(
                tenants = tenants.current().len(),
                file = ?tenants.file(),
                "tenants reloaded"
            ),
            Err(e) => error!(error = %e, "tenants not reloaded; the previous ones stay"),
        }
        if let Some(tls) = &tls {
            match tls.reload() {
                Ok(()) => info!("TLS certificate reloaded"),
                Err(e) => {
                    error!(error = %e, "TLS certificate not reloaded; the previous one stays")
                }
            }
        }
    }
}

/// A started service: listeners bound, workers taking jobs.
pub struct Running {
    api: Option<(TcpListener, Arc<App>)>,
    ops: Option<(TcpListener, Arc<App>)>,
    tls: Option<Arc<Tls>>,
    workers: Option<(oneshot::Sender<()>, JoinHandle<usize>)>,
    purge: JoinHandle<()>,
    reloads: JoinHandle<()>,
    closing: Arc<AtomicBool>,
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
            api,
            ops,
            tls,
            workers,
            purge,
            reloads,
            closing,
            http,
            drain_timeout,
        } = self;
        let (stop_tx, stop_rx) = watch::channel(());
        let stopped = |mut rx: watch::Receiver<()>| async move {
            // Err: the sender is gone, which is the signal too.
            let _ = rx.changed().await;
        };
        // HTTPS on the API listener; the --metrics-listen one stays plain (scrapes, probes).
        let servers: Vec<_> = [api.map(|api| (api, tls)), ops.map(|ops| (ops, None))]
            .into_iter()
            .flatten()
            .map(|((listener, app), tls)| {
                tokio::spawn(server::serve(
                    listener,
                    app,
                    http,
                    tls,
                    stopped(stop_rx.clone()),
                ))
            })
            .collect();
        stop.await;
        closing.store(true, Ordering::SeqCst);
        drop(stop_tx);
        for server in servers {
            if let Err(e) = server.await {
                warn!(error = %e, "listener task failed");
            }
        }
        if let Some((stop_workers, task)) = workers {
            info!(
                drain_timeout_secs = drain_timeout.as_secs_f64(),
                "stopped accepting; draining jobs"
            );
            let _ = stop_workers.send(());
            match task.await {
                Ok(0) => {}
                Ok(released) => warn!(
                    released,
                    "drain timeout: jobs still running were released for a takeover"
                ),
                Err(e) => warn!(error = %e, "worker task failed"),
            }
        }
        purge.abort();
        reloads.abort();
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

/// The notifier: the webhook sender the flags describe, or the caller's.
fn notifier(
    args: &ServeArgs,
    delivery: Delivery,
    tenant_count: usize,
) -> Result<Arc<dyn Webhooks>, ServiceError> {
    let config = || {
        let mut config = args
            .webhooks
            .config()
            .map_err(|e| ServiceError::Webhooks(e.to_string()))?;
        // With several tenants, each gets its share of the attempts in flight unless told.
        if config.max_in_flight_per_tenant.is_none() && tenant_count > 1 {
            config.max_in_flight_per_tenant = Some((config.max_in_flight / tenant_count).max(1));
        }
        Ok::<_, ServiceError>(config)
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
