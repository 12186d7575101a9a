//! Core's engine conformance suite, unchanged, against `RedisEngine` on a real
//! `redis-server`: every case on a fresh key prefix (an empty engine).

mod support;

use std::sync::Arc;

use imgchkr_core::Engine;
use support::{RedisServer, engine, fresh_prefix};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let redis = RedisServer::start();
    let url = redis.url();
    imgchkr_core::testkit::run(&|| {
        let url = url.clone();
        async move { Arc::new(engine(&url, &fresh_prefix("conformance")).await) as Arc<dyn Engine> }
    })
    .await;
}
