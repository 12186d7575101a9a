//! The broker going away and coming back, against a real RabbitMQ node of its own: the queue
//! reports it unavailable meanwhile, then publishes and consumes again by itself, and what
//! was confirmed before the restart is delivered after it.

mod support;

use std::time::{Duration, Instant};

use imgchkr_amqp::{AmqpConfig, AmqpQueue};
use imgchkr_core::engine::split::JobQueue;
use imgchkr_core::{JobId, JobKey, Priority, StoreError};
use support::rabbit_server::{RabbitServer, fresh_prefix};

async fn queue(url: &str) -> AmqpQueue {
    AmqpQueue::connect(
        AmqpConfig::new(url)
            .with_prefetch(8)
            .with_op_timeout(Duration::from_secs(5)),
    )
    .await
    .expect("connect to rabbitmq")
}

/// Takes deliveries until `n` came, within `within`.
async fn take_n(queue: &AmqpQueue, n: usize, within: Duration) -> Vec<JobKey> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} deliveries came",
            got.len()
        );
        match queue.take(n - got.len(), None).await {
            Ok(deliveries) => {
                for delivery in deliveries {
                    queue.ack(&delivery).await.expect("ack");
                    got.push(delivery.key);
                }
            }
            Err(StoreError::Unavailable(_)) => {}
            Err(e) => panic!("take: {e}"),
        }
        tokio::time::timeout(Duration::from_millis(200), queue.work_available())
            .await
            .ok();
    }
    got
}

/// Waits until the queue has reconnected (its check passes).
async fn wait_ready(q: &AmqpQueue) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while q.check().await.is_err() {
        assert!(Instant::now() < deadline, "the queue did not reconnect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn restarts_and_recovers(kill: bool) {
    let mut rabbit = RabbitServer::start();
    let url = rabbit.url(&fresh_prefix());
    let q = queue(&url).await;
    let before = JobKey::new("t", JobId::random());
    q.publish(&before, Priority::Normal).await.expect("publish");
    assert_eq!(take_n(&q, 1, Duration::from_secs(10)).await, [before]);
    if kill {
        // A broker that has run a while: RabbitMQ 3.10 records a new quorum queue's Raft
        // member on disk lazily (at a clean stop, or minutes later), and a node killed before
        // that cannot start the queue again ("leader not known", forever); here the tenant's
        // queues, declared by its first publish. A clean restart first makes them as
        // established as on any broker in service.
        tokio::task::block_in_place(|| {
            rabbit.stop();
            rabbit.restart();
        });
        wait_ready(&q).await;
    }
    // Confirmed, not yet consumed when the broker goes.
    let waiting = JobKey::new("t", JobId::random());
    q.publish(&waiting, Priority::High).await.expect("publish");

    tokio::task::block_in_place(|| if kill { rabbit.kill() } else { rabbit.stop() });
    let refused = q
        .publish(&JobKey::new("t", JobId::random()), Priority::Normal)
        .await;
    assert!(
        matches!(refused, Err(StoreError::Unavailable(_))),
        "{refused:?}"
    );
    assert!(matches!(q.check().await, Err(StoreError::Unavailable(_))));

    tokio::task::block_in_place(|| rabbit.restart());
    wait_ready(&q).await;
    let after = JobKey::new("t", JobId::random());
    if let Err(e) = q.publish(&after, Priority::Low).await {
        panic!("publish after: {e}\n{}", rabbit.logs());
    }
    let mut got = take_n(&q, 2, Duration::from_secs(30)).await;
    got.sort_by_key(|k| k.id);
    let mut want = vec![waiting, after];
    want.sort_by_key(|k| k.id);
    assert_eq!(got, want);
    q.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_broker_kill_9_it_publishes_and_consumes_again_by_itself() {
    restarts_and_recovers(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_broker_stop_it_publishes_and_consumes_again_by_itself() {
    restarts_and_recovers(false).await;
}
