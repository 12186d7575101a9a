//! What every request handler shares.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::Auth;
use crate::worker::Workers;

/// The service's shared state.
pub struct App {
    /// The store, queue and notifier, shared with the workers.
    pub workers: Arc<Workers>,
    /// Whether this process runs workers (`serve`, `worker`).
    pub runs_workers: bool,
    /// Whether this listener serves /assets (`false`: the `--metrics-listen` listener, which
    /// serves only /healthz, /readyz and /metrics).
    pub serves_api: bool,
    /// Who may call /assets.
    pub auth: Auth,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// How long a client may take to send a body.
    pub body_read_timeout: Duration,
    /// The accepted `assetPath.location` values.
    pub locations: Vec<&'static str>,
    /// Renders /metrics; `None` when another recorder is installed.
    pub metrics: Option<PrometheusHandle>,
}

impl App {
    /// Why the service is not ready to accept jobs, if it is not.
    pub fn not_ready(&self) -> Option<&'static str> {
        if !self.workers.backend.is_reachable() {
            Some("redis unavailable")
        } else if self.runs_workers && !self.workers.alive.load(Ordering::SeqCst) {
            Some("workers stopped")
        } else if self.workers.backend.is_closed() {
            Some("shutting down")
        } else if self.workers.backend.is_full() {
            Some("queue full")
        } else {
            None
        }
    }
}
