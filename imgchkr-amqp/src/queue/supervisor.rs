//! The connection's keeper: a supervisor task per [`AmqpQueue`](super::AmqpQueue) that
//! connects (again, with backoff, when the connection breaks), starts the consumers once the
//! process wants work, follows the registry of tenants to consume each tenant's queues, and
//! forgets what a broken connection held.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use lapin::options::BasicAckOptions;
use lapin::{Channel, Connection, Consumer};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::Shared;
use crate::held::Line;
use crate::link;
use crate::{AMQP_RECONNECTS, AMQP_UP};

/// How often the supervisor looks at its connection.
const LOOK_EVERY: Duration = Duration::from_millis(250);
/// The first wait before connecting again (doubled on each failure, up to `BACKOFF_MAX`).
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How long a connection must hold before the backoff starts over.
const STABLE_AFTER: Duration = Duration::from_secs(5);

/// Makes `publish` the live channel of a new generation; returns it.
pub(super) fn install(shared: &Shared, publish: Channel) -> u64 {
    let mut state = shared.state();
    state.generation += 1;
    state.broken = None;
    state.publish = Some(publish);
    state.announced.clear();
    state.consumed.clear();
    state.generation
}

/// Forgets the connection of `generation`: the deliveries held and not taken go (the broker
/// hands them out again); the taken ones stay until their worker settles them.
fn teardown(shared: &Shared, generation: u64, why: &str) {
    let mut state = shared.state();
    if state.generation != generation {
        return;
    }
    state.publish = None;
    state.last_error = why.to_owned();
    for receipt in state.hold.drop_waiting() {
        state.ackers.remove(&receipt);
    }
    for task in state.consumers.drain(..) {
        task.abort();
    }
    state.consumed.clear();
    state.announced.clear();
    // Deliveries of older connections arriving late are dropped.
    state.generation += 1;
    state.changes += 1;
    drop(state);
    shared.work.notify_waiters();
    metrics::gauge!(AMQP_UP).set(0.0);
}

/// Keeps a connection up until the queue closes (see the module docs).
pub(super) async fn supervise(shared: Arc<Shared>, mut first: Option<(Connection, u64)>) {
    let mut backoff = BACKOFF_FIRST;
    loop {
        if shared.closed.load(Ordering::SeqCst) {
            return;
        }
        let opened = match first.take() {
            Some(link) => Ok(link),
            None => link::open(&shared.config)
                .await
                .map(|(connection, publish)| {
                    let generation = install(&shared, publish);
                    (connection, generation)
                }),
        };
        match opened {
            Ok((connection, generation)) => {
                if generation > 1 {
                    info!("amqp: connected again");
                    metrics::counter!(AMQP_RECONNECTS).increment(1);
                }
                metrics::gauge!(AMQP_UP).set(1.0);
                let held_since = Instant::now();
                let why = hold_link(&shared, &connection, generation).await;
                // A link that breaks at once (a queue refused, say) keeps backing off
                // instead of reconnecting in a tight loop.
                if held_since.elapsed() >= STABLE_AFTER {
                    backoff = BACKOFF_FIRST;
                }
                if !shared.closed.load(Ordering::SeqCst) {
                    warn!(reason = %why, "amqp: connection lost; connecting again");
                }
                teardown(&shared, generation, &why);
                let _ = tokio::time::timeout(
                    shared.config.op_timeout,
                    connection.close(200, "bye".into()),
                )
                .await;
                if shared.closed.load(Ordering::SeqCst) {
                    return;
                }
            }
            Err(why) => {
                debug!(reason = %why, "amqp: cannot connect");
                shared.state().last_error = why;
                metrics::gauge!(AMQP_UP).set(0.0);
            }
        }
        let _ = tokio::time::timeout(backoff, shared.wake.notified()).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Watches the connection of `generation` (starting its consumers once wanted) until it
/// breaks or the queue closes; returns why it ended.
async fn hold_link(shared: &Arc<Shared>, connection: &Connection, generation: u64) -> String {
    let mut consuming = false;
    loop {
        if shared.closed.load(Ordering::SeqCst) {
            return "closed".into();
        }
        if !consuming && shared.consuming.load(Ordering::SeqCst) {
            match link::consume(connection, &shared.config).await {
                Ok((channel, parked, registry)) => {
                    let tasks = [
                        tokio::spawn(read(
                            Arc::clone(shared),
                            generation,
                            Line::Parked,
                            parked,
                            channel.clone(),
                        )),
                        tokio::spawn(follow_registry(
                            Arc::clone(shared),
                            generation,
                            registry,
                            channel,
                        )),
                    ];
                    shared.state().consumers.extend(tasks);
                    consuming = true;
                }
                Err(why) => return why,
            }
        }
        let _ = tokio::time::timeout(LOOK_EVERY, shared.wake.notified()).await;
        let state = shared.state();
        if state.broken == Some(generation) {
            return state.last_error.clone();
        }
        let publishing = state
            .publish
            .as_ref()
            .is_some_and(|channel| channel.status().connected());
        drop(state);
        if !connection.status().connected() {
            return "amqp: the connection closed".into();
        }
        if !publishing {
            return "amqp: the publishing channel closed".into();
        }
    }
}

/// Reads the registry of tenants (from its start) and consumes the queues of every tenant it
/// names, on `channel`, until it ends. One task per connection, so the `basic.qos` and
/// `basic.consume` of one tenant never interleave with another's.
async fn follow_registry(
    shared: Arc<Shared>,
    generation: u64,
    mut registry: Consumer,
    channel: Channel,
) {
    let why = loop {
        let delivery = match registry.next().await {
            Some(Ok(delivery)) => delivery,
            Some(Err(e)) => break link::describe(&e),
            None => break "amqp: the registry consumer was cancelled".to_owned(),
        };
        let tenant = String::from_utf8_lossy(&delivery.data).into_owned();
        // A stream's acknowledgements only return credit: the entry stays for every reader.
        let _ = delivery.acker.ack(BasicAckOptions::default()).await;
        let new = {
            let mut state = shared.state();
            state.generation == generation && state.consumed.insert(tenant.clone())
        };
        if !new {
            continue;
        }
        let consumers = match link::consume_tenant(&channel, &shared.config, &tenant).await {
            Ok(consumers) => consumers,
            Err(why) => break why,
        };
        let tasks: Vec<JoinHandle<()>> = consumers
            .into_iter()
            .map(|(consumer, line)| {
                tokio::spawn(read(
                    Arc::clone(&shared),
                    generation,
                    line,
                    consumer,
                    channel.clone(),
                ))
            })
            .collect();
        let mut state = shared.state();
        if state.generation == generation {
            state.consumers.extend(tasks);
        } else {
            for task in tasks {
                task.abort();
            }
        }
    };
    shared.consumer_ended(generation, why);
}

/// Reads one consumer's deliveries into the hold until it ends. `_channel` keeps the
/// consuming channel open as long as a consumer reads.
async fn read(
    shared: Arc<Shared>,
    generation: u64,
    line: Line,
    mut consumer: Consumer,
    _channel: Channel,
) {
    let why = loop {
        match consumer.next().await {
            Some(Ok(delivery)) => shared.arrive(generation, line, delivery),
            Some(Err(e)) => break link::describe(&e),
            None => break "amqp: a consumer was cancelled".to_owned(),
        }
    };
    shared.consumer_ended(generation, why);
}
