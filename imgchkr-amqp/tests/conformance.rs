//! Core's conformance suite of split engines (`testkit::split`) against RabbitMQ as the queue
//! beside each shared store: a real `rabbit-server` node (one per test binary), a real
//! `redis-server`, a real Postgres cluster. Every case gets an empty store and queues of its
//! own.

mod support;

use support::pg_cluster::PgCluster;
use support::redis_server::RedisServer;
use support::{Deployments, Store, rabbit_server::RabbitServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_conformance_over_rabbitmq_and_redis() {
    RabbitServer::shared();
    let redis = RedisServer::start();
    let store = Store::Redis(redis.url(), String::new());
    imgchkr_core::testkit::split::run(&Deployments { store }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_conformance_over_rabbitmq_and_postgres() {
    RabbitServer::shared();
    let cluster = PgCluster::start();
    let store = Store::Postgres(cluster.url("postgres"), String::new());
    imgchkr_core::testkit::split::run(&Deployments { store }).await;
}
