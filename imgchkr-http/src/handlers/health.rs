//! `GET /healthz`, `GET /readyz`, `GET /metrics`.

use hyper::StatusCode;
use serde_json::json;

use crate::app::App;
use crate::response::{self, Resp};

/// Alive: the process answers.
pub fn healthz() -> Resp {
    response::json(StatusCode::OK, &json!({"status": "ok"}))
}

/// Ready: accepting jobs (the engine reachable, the queue not full, workers running, not
/// shutting down).
pub fn readyz(app: &App) -> Resp {
    match app.not_ready() {
        None => response::json(StatusCode::OK, &json!({"status": "ready"})),
        Some(reason) => response::json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "not ready", "reason": reason}),
        ),
    }
}

/// The Prometheus exposition, the queue's figures read from the engine first.
pub async fn metrics(app: &App) -> Resp {
    app.monitor.refresh(&*app.engine).await;
    crate::metrics::collect_process();
    match &app.metrics {
        Some(handle) => response::text(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            handle.render(),
        ),
        None => response::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics",
            "Metrics are not available in this process.",
        ),
    }
}
