//! Core's engine conformance suite against core's `Sharded` engine over three real
//! `redis-server`s (one `RedisEngine` each): every case on fresh key prefixes. The cases a
//! sharded engine does not run by design are those of `imgchkr-core/tests/sharded.rs` (see
//! `imgchkr_core::engine::sharded`).

mod support;

use std::sync::Arc;

use imgchkr_core::Engine;
use imgchkr_core::engine::sharded::Sharded;
use support::{RedisServer, engine, fresh_prefix};

/// The exact global round-robin order of tenants on different shards cannot be known without
/// taking their jobs, and the capacity bounds each shard, not the deployment.
const NOT_RUN: &[&str] = &[
    "round_robin_across_tenants",
    "round_robin_holds_within_a_batch",
    "capacity_and_tenant_share_bound_the_queue",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_redis_shards_pass_the_conformance_suite() {
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    imgchkr_core::testkit::run_except(
        &|| {
            let urls = urls.clone();
            async move {
                let mut shards: Vec<Arc<dyn Engine>> = Vec::new();
                for url in &urls {
                    shards.push(Arc::new(engine(url, &fresh_prefix("sharded")).await));
                }
                Arc::new(Sharded::new(shards).expect("three shards")) as Arc<dyn Engine>
            }
        },
        NOT_RUN,
    )
    .await;
}
