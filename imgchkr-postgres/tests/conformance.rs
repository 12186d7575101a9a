//! Core's engine conformance suite, unchanged, against `PostgresEngine` on a throwaway
//! cluster: every case on a fresh schema (an empty engine, migrated).

mod support;

use std::sync::Arc;

use imgchkr_core::Engine;
use support::{PgCluster, engine, fresh_schema};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let cluster = PgCluster::start();
    let url = cluster.url("postgres");
    imgchkr_core::testkit::run(&|| {
        let url = url.clone();
        async move { Arc::new(engine(&url, &fresh_schema("conformance")).await) as Arc<dyn Engine> }
    })
    .await;
}
