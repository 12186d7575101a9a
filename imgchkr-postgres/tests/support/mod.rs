//! A throwaway Postgres cluster for the tests (`pg_cluster.rs`), engines on fresh schemas,
//! and the jobs and requests the tests submit.
#![allow(dead_code)] // each test file uses a different part

#[path = "pg_cluster.rs"]
mod pg_cluster;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use imgchkr_postgres::{PostgresConfig, PostgresEngine};
#[allow(unused_imports)]
pub use pg_cluster::{PgCluster, free_port, run_as};

/// A schema no other engine of this test process uses.
pub fn fresh_schema(name: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{name}_{}", NEXT.fetch_add(1, Ordering::SeqCst))
}

/// The call bound the test engines use.
pub const OP_TIMEOUT: Duration = Duration::from_millis(1000);

/// The configuration of a test engine on `url` under `schema`: a short call bound and block
/// time.
pub fn config(url: &str, schema: &str) -> PostgresConfig {
    let mut config = PostgresConfig::new(url).with_schema(schema);
    config.op_timeout = OP_TIMEOUT;
    config.block_time = Duration::from_millis(200);
    config.pool_size = 4;
    config
}

/// An engine on `url` under `schema` (migrated).
pub async fn engine(url: &str, schema: &str) -> PostgresEngine {
    PostgresEngine::connect(config(url, schema))
        .await
        .expect("the engine connects")
}

/// The tests' clock: a fixed instant in whole milliseconds (engines never read a clock).
pub const T0: time::OffsetDateTime = time::macros::datetime!(2030-01-02 03:04:05.678 UTC);

/// `T0` plus `secs` seconds.
pub fn at(secs: u64) -> time::OffsetDateTime {
    T0 + Duration::from_secs(secs)
}

/// A queued job of `tenant` created at `T0`.
pub fn job(tenant: &str) -> imgchkr_core::Job {
    let url = |event: &str| {
        format!("http://callback.example/{event}")
            .parse()
            .expect("a valid URL")
    };
    let mut job = imgchkr_core::Job::new(
        imgchkr_core::JobId::random(),
        imgchkr_core::AssetPath::Local {
            path: "images/a.jpg".to_owned(),
        },
        imgchkr_core::NotificationUrls {
            on_start: url("onStart"),
            on_success: url("onSuccess"),
            on_failure: url("onFailure"),
        },
    );
    job.tenant = tenant.to_owned();
    job.created_at = T0;
    job
}

/// A lease request of `worker` for `max` jobs at `now`, for 60 s.
pub fn request(
    worker: &str,
    max: usize,
    now: time::OffsetDateTime,
) -> imgchkr_core::engine::LeaseRequest {
    imgchkr_core::engine::LeaseRequest::new(
        imgchkr_core::engine::WorkerId(worker.to_owned()),
        max,
        now,
        now + Duration::from_secs(60),
    )
}

/// Room to spare.
pub const ROOMY: imgchkr_core::engine::Admission = imgchkr_core::engine::Admission {
    capacity: 100_000,
    tenant_share: 100_000,
};
