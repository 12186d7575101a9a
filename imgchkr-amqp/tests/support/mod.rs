//! The servers these tests start (RabbitMQ, and a store beside it), and split engines on
//! them.
#![allow(dead_code)] // each test file uses a different part

#[path = "../../../imgchkr-postgres/tests/support/pg_cluster.rs"]
pub mod pg_cluster;
pub mod rabbit_server;
#[path = "../../../imgchkr-http/tests/support/redis_server.rs"]
pub mod redis_server;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use imgchkr_amqp::{AmqpConfig, AmqpQueue};
use imgchkr_core::Engine;
use imgchkr_core::engine::split::Split;
use imgchkr_core::notify::BoxFuture;
use imgchkr_core::testkit::split::{Deployment, Factory, MAX_DELIVERIES, Process};
use imgchkr_postgres::{PostgresConfig, PostgresEngine};
use imgchkr_redis::{RedisConfig, RedisEngine};

/// Names no other deployment of this process uses.
pub fn fresh(name: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{name}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// Where a deployment keeps its records.
#[derive(Clone)]
pub enum Store {
    /// A Redis URL and a key prefix.
    Redis(String, String),
    /// A Postgres URL and a schema.
    Postgres(String, String),
}

impl Store {
    /// An empty store of the same kind on the same server.
    pub fn fresh(&self) -> Store {
        match self {
            Store::Redis(url, _) => Store::Redis(url.clone(), format!("{}:", fresh("amqp"))),
            Store::Postgres(url, _) => Store::Postgres(url.clone(), fresh("amqp")),
        }
    }
}

/// A split engine on `store` and the broker at `amqp` (a URL with its prefix); the queue too.
pub async fn split(store: &Store, amqp: &str, prefetch: u16) -> (Arc<dyn Engine>, AmqpQueue) {
    let queue = AmqpQueue::connect(
        AmqpConfig::new(amqp)
            .with_max_deliveries(MAX_DELIVERIES)
            .with_prefetch(prefetch)
            .with_op_timeout(Duration::from_secs(5)),
    )
    .await
    .expect("connect to rabbitmq");
    let engine: Arc<dyn Engine> = match store {
        Store::Redis(url, prefix) => {
            let redis = RedisEngine::connect(RedisConfig::new(url).with_prefix(prefix))
                .await
                .expect("connect to redis");
            Arc::new(Split::new(redis, queue.clone()))
        }
        Store::Postgres(url, schema) => {
            let pg = PostgresEngine::connect(PostgresConfig::new(url).with_schema(schema))
                .await
                .expect("connect to postgres");
            Arc::new(Split::new(pg, queue.clone()))
        }
    };
    (engine, queue)
}

/// One store and one set of queues; processes on them.
pub struct Deploy {
    pub store: Store,
    pub amqp: String,
}

impl Deployment for Deploy {
    fn process(&self) -> BoxFuture<'_, Process> {
        Box::pin(async move {
            let (engine, queue) = split(&self.store, &self.amqp, 16).await;
            Process::new(engine, move || Box::pin(async move { queue.close().await }))
        })
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// Fresh deployments: an empty store of `store`'s kind, queues of their own on the shared
/// RabbitMQ node.
pub struct Deployments {
    pub store: Store,
}

impl Factory for Deployments {
    fn deployment(&self) -> BoxFuture<'_, Arc<dyn Deployment>> {
        Box::pin(async move {
            let rabbit = rabbit_server::RabbitServer::shared();
            Arc::new(Deploy {
                store: self.store.fresh(),
                amqp: rabbit.url(&rabbit_server::fresh_prefix()),
            }) as Arc<dyn Deployment>
        })
    }
}
