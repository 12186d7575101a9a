//! What every request handler shares.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use imgchkr_core::admission::IdDeriver;
use imgchkr_core::engine::Admission;
use imgchkr_core::worker::Worker;
use imgchkr_core::{Engine, Policy};
use imgchkr_fetch::RemoteSources;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::monitor::EngineMonitor;
use crate::tenants::TenantsHandle;
use crate::webhooks::Webhooks;

/// The service's shared state.
pub struct App {
    /// Where jobs are recorded and queued.
    pub engine: Arc<dyn Engine>,
    /// This process's workers (`serve`, `worker`), for readiness.
    pub worker: Option<Arc<Worker>>,
    /// The engine's reachability and queue figures, refreshed in the background.
    pub monitor: Arc<EngineMonitor>,
    /// Whether this listener serves /assets (`false`: the `--metrics-listen` listener, which
    /// serves only /healthz, /readyz and /metrics).
    pub serves_api: bool,
    /// Who may call /assets, and each tenant's settings (reloaded on `SIGHUP`).
    pub tenants: Arc<TenantsHandle>,
    /// Queue capacity and the default per-tenant share.
    pub admission: Admission,
    /// Ids of `Idempotency-Key`s.
    pub ids: IdDeriver,
    /// Vets notification URLs at submission (the webhook destination policy).
    pub webhooks: Arc<dyn Webhooks>,
    /// Vets `url`/`s3` assets at submission; `None` when only `local` is enabled.
    pub remote: Option<RemoteSources>,
    /// The limits (`POST /validate`; workers have their own copy).
    pub policy: Policy,
    /// The longest `Prefer: wait` honoured.
    pub max_wait: Duration,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// How long a client may take to send a body.
    pub body_read_timeout: Duration,
    /// The accepted `assetPath.location` values.
    pub locations: Vec<&'static str>,
    /// Renders /metrics; `None` when another recorder is installed.
    pub metrics: Option<PrometheusHandle>,
    /// Set once shutdown begins: new submissions are refused.
    pub closing: Arc<AtomicBool>,
    /// Who may read the dashboard (`/ui`, `/admin`), and what it needs to know.
    pub admin: crate::admin::Admin,
}

impl App {
    /// Why the service is not ready to accept jobs, if it is not.
    pub fn not_ready(&self) -> Option<String> {
        if let Some(reason) = self.monitor.unavailable() {
            Some(reason)
        } else if self.closing.load(Ordering::SeqCst) {
            Some("shutting down".into())
        } else if self.worker.as_ref().is_some_and(|w| !w.is_running()) {
            Some("workers stopped".into())
        } else if self.monitor.waiting() >= self.admission.capacity {
            Some("queue full".into())
        } else {
            None
        }
    }
}
