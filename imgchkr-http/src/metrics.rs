//! Prometheus metrics: the recorder, and the names the service records under.

use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Requests by route and status.
pub const REQUESTS: &str = "imgchkr_http_requests_total";
/// Request latency by route and status class (`2xx`, `4xx`, `5xx`), seconds.
pub const REQUEST_SECONDS: &str = "imgchkr_http_request_duration_seconds";
/// Jobs waiting for a worker (the engine's, all processes).
pub const QUEUE_DEPTH: &str = "imgchkr_queue_depth";
/// Jobs leased to workers and not finished (the engine's, all processes).
pub const QUEUE_IN_FLIGHT: &str = "imgchkr_queue_in_flight";
/// 1 while the engine answers this process's checks, else 0.
pub const ENGINE_UP: &str = "imgchkr_engine_up";
pub use imgchkr_core::worker::{JOBS, JOBS_IN_FLIGHT, PARKED, REDELIVERED};
/// Header probe and policy check, seconds.
pub const VALIDATION_SECONDS: &str = "imgchkr_validation_duration_seconds";
/// Body bytes read by `POST /validate`.
pub const VALIDATE_BYTES: &str = "imgchkr_validate_bytes_read_total";
/// Webhook deliveries by event and outcome (`delivered`, `failed`), counted by
/// imgchkr-notify.
pub const WEBHOOK_DELIVERIES: &str = "imgchkr_webhook_deliveries_total";
/// Each webhook attempt's latency by event, seconds (recorded by imgchkr-notify).
pub const WEBHOOK_ATTEMPT_SECONDS: &str = "imgchkr_webhook_attempt_seconds";
/// Submissions refused because their tenant's rate was exceeded.
pub const RATE_LIMITED: &str = "imgchkr_rate_limited_total";
/// Submissions refused because the queue was full.
pub const QUEUE_REJECTIONS: &str = "imgchkr_queue_rejections_total";

const LATENCY_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0,
];

/// The class of `status` as a label: `2xx`, `3xx`, `4xx`, `5xx` (`1xx` never reaches it).
pub fn status_class(status: hyper::StatusCode) -> &'static str {
    match status.as_u16() {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The process's CPU time, memory, threads and descriptors (`process_*`, the names every
/// Prometheus client uses), read from `/proc` when `/metrics` is scraped.
pub fn collect_process() {
    static COLLECTOR: std::sync::OnceLock<metrics_process::Collector> = std::sync::OnceLock::new();
    COLLECTOR
        .get_or_init(|| {
            let collector = metrics_process::Collector::default();
            collector.describe();
            collector
        })
        .collect();
}

/// Webhook attempts take network round trips, up to the attempt timeout (15 s by default).
const WEBHOOK_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0,
];

/// Installs the global recorder and returns the handle that renders it. Histograms get
/// buckets (not the exporter's default summaries), so they aggregate across instances.
pub fn install() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_duration_seconds".into()), LATENCY_BUCKETS)
        .map_err(|e| e.to_string())?
        .set_buckets_for_metric(
            Matcher::Full(WEBHOOK_ATTEMPT_SECONDS.into()),
            WEBHOOK_BUCKETS,
        )
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| e.to_string())?;
    describe();
    imgchkr_fetch::describe_metrics();
    zero();
    collect_process();
    Ok(handle)
}

/// Counters exist from the start at 0: a series that appears only on its first event reads
/// as "no data" rather than "none happened" (and rates over it break).
fn zero() {
    for state in ["success", "failed"] {
        metrics::counter!(JOBS, "state" => state).absolute(0);
    }
    for counter in [
        REDELIVERED,
        PARKED,
        VALIDATE_BYTES,
        QUEUE_REJECTIONS,
        RATE_LIMITED,
    ] {
        metrics::counter!(counter).absolute(0);
    }
    // imgchkr-notify's deliveries: the webhook-failure alert divides by their rate.
    for event in ["onStart", "onSuccess", "onFailure"] {
        for outcome in ["delivered", "failed"] {
            metrics::counter!(WEBHOOK_DELIVERIES, "event" => event, "outcome" => outcome)
                .absolute(0);
        }
    }
}

fn describe() {
    metrics::describe_counter!(REQUESTS, "HTTP requests by route and status.");
    metrics::describe_histogram!(
        REQUEST_SECONDS,
        "HTTP request latency by route and status class."
    );
    metrics::describe_gauge!(QUEUE_DEPTH, "Jobs waiting for a worker.");
    metrics::describe_gauge!(
        ENGINE_UP,
        "1 while the engine answers this process, else 0."
    );
    metrics::describe_gauge!(JOBS_IN_FLIGHT, "Jobs this process is running.");
    metrics::describe_counter!(
        JOBS,
        "Jobs run to their end by this process, by final state."
    );
    metrics::describe_counter!(
        REDELIVERED,
        "Jobs taken over after their worker stopped heartbeating or released them."
    );
    metrics::describe_counter!(PARKED, "Jobs parked as failed after too many deliveries.");
    metrics::describe_histogram!(VALIDATION_SECONDS, "Header probe and policy check time.");
    metrics::describe_counter!(VALIDATE_BYTES, "Body bytes read by POST /validate.");
    metrics::describe_counter!(
        RATE_LIMITED,
        "Submissions refused with 429, tenant rate exceeded."
    );
    metrics::describe_counter!(
        QUEUE_REJECTIONS,
        "Submissions refused with 503, queue full."
    );
}

/// Keeps the exporter's histogram buffers drained; runs until the process ends.
pub async fn upkeep(handle: PrometheusHandle) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        handle.run_upkeep();
    }
}
