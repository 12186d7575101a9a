//! [`AmqpQueue`]: the [`JobQueue`] on RabbitMQ: publishing with confirms, taking what is
//! held, settling. A supervisor task (`supervisor`) keeps one connection up (made again with
//! backoff when it breaks: publishers and consumers reconnect by themselves); consumer tasks
//! put the broker's deliveries in the process's [`Hold`], from which leases take them.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use imgchkr_core::engine::split::{Delivery, JobQueue};
use imgchkr_core::notify::BoxFuture;
use imgchkr_core::{JobKey, Priority, StoreError};
use lapin::options::{BasicAckOptions, BasicNackOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Acker, BasicProperties, Channel};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{debug, error};

use crate::AMQP_UP;
use crate::config::AmqpConfig;
use crate::held::{Held, Hold, Line};
use crate::link::{self, bounded};
use crate::topology;

mod supervisor;

/// How long `work_available` waits at most.
const WAIT_AT_MOST: Duration = Duration::from_secs(2);
/// How long it waits while a line waits for a refill (see `look_at_starved_lines`).
const LOOK_AGAIN: Duration = Duration::from_millis(100);

/// The [`JobQueue`] on RabbitMQ (see the [crate docs](crate)). Cheap to clone: clones share
/// the connection and the deliveries held; the connection closes when the last is dropped.
#[derive(Clone)]
pub struct AmqpQueue {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AmqpQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpQueue")
            .field("prefix", &self.inner.shared.config.prefix)
            .finish_non_exhaustive()
    }
}

struct Inner {
    shared: Arc<Shared>,
    supervisor: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.wake.notify_one();
        if let Some(task) = lock(&self.supervisor).take() {
            task.abort();
        }
        for task in self.shared.state().consumers.drain(..) {
            task.abort();
        }
    }
}

/// What the supervisor, the consumer tasks and the calls share.
struct Shared {
    config: AmqpConfig,
    state: Mutex<State>,
    /// Deliveries arrived or settled: idle workers look again.
    work: Notify,
    /// The supervisor looks at once: consuming was asked for, a consumer ended, or closing.
    wake: Notify,
    /// Whether this process consumes (it took or waited for work once).
    consuming: AtomicBool,
    closed: AtomicBool,
    receipts: AtomicU64,
}

#[derive(Default)]
struct State {
    /// The channel publishing on the live connection, if any.
    publish: Option<Channel>,
    /// Counts connections made: deliveries of an older one cannot be acknowledged.
    generation: u64,
    /// A consumer of this generation ended: the connection is made again.
    broken: Option<u64>,
    hold: Hold,
    /// The acknowledgement handle of every delivery held, with its generation.
    ackers: HashMap<u64, (u64, Acker)>,
    /// Why the last connection failed or ended.
    last_error: String,
    /// Changes (arrivals, settlements) so far, and as of the last take: a wait resolves
    /// only on news, never on deliveries left over (those of tenants at their cap).
    changes: u64,
    seen: u64,
    consumers: Vec<JoinHandle<()>>,
    /// Tenants whose queues this connection declared and announced in the registry.
    announced: HashSet<String>,
    /// Tenants whose queues this connection consumes.
    consumed: HashSet<String>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn unavailable(reason: impl Into<String>) -> StoreError {
    StoreError::Unavailable(reason.into())
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// A delivery came on a consumer of `generation` from `line`.
    fn arrive(&self, generation: u64, line: Line, delivery: lapin::message::Delivery) {
        let Some(key) = topology::key_of(&delivery.data) else {
            error!(
                body = %String::from_utf8_lossy(&delivery.data),
                "amqp: a message that names no job; dropped"
            );
            let acker = delivery.acker;
            tokio::spawn(async move {
                let _ = acker.ack(BasicAckOptions::default()).await;
            });
            return;
        };
        let mut deliveries = topology::deliveries(delivery.properties.headers().as_ref());
        if line == Line::Parked {
            // The broker gave up on it: the worker parks it.
            deliveries = deliveries.max(self.config.max_deliveries.saturating_add(1));
        }
        let receipt = self.receipts.fetch_add(1, Ordering::SeqCst) + 1;
        let mut state = self.state();
        if state.generation != generation {
            // Its connection is gone: the broker hands it out again.
            return;
        }
        state.hold.arrive(Held {
            receipt,
            key,
            line,
            deliveries,
        });
        state.ackers.insert(receipt, (generation, delivery.acker));
        state.changes += 1;
        drop(state);
        self.work.notify_waiters();
    }

    /// A consumer of `generation` ended.
    fn consumer_ended(&self, generation: u64, why: String) {
        let mut state = self.state();
        if state.generation == generation && state.broken.is_none() {
            debug!(reason = %why, "amqp: a consumer ended");
            state.broken = Some(generation);
            state.last_error = why;
        }
        drop(state);
        self.wake.notify_one();
    }

    fn start_consuming(&self) {
        if !self.consuming.swap(true, Ordering::SeqCst) {
            self.wake.notify_one();
        }
    }
}

impl AmqpQueue {
    /// Connects to the broker and declares the queues: fails with
    /// [`StoreError::Unavailable`] within about [`AmqpConfig::op_timeout`] if it cannot (a
    /// bad URL, the broker away, queues declared with other arguments). From then on the
    /// connection is kept up by a task of its own. Call from within a Tokio runtime.
    pub async fn connect(config: AmqpConfig) -> Result<AmqpQueue, StoreError> {
        let (connection, publish) = link::open(&config).await.map_err(unavailable)?;
        // Each priority consumer's window: one past the job slots (see `link`).
        let window = usize::from(config.prefetch) + 1;
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(State {
                hold: Hold::with_window(window),
                ..State::default()
            }),
            work: Notify::new(),
            wake: Notify::new(),
            consuming: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            receipts: AtomicU64::new(0),
        });
        let generation = supervisor::install(&shared, publish);
        metrics::gauge!(AMQP_UP).set(1.0);
        let task = tokio::spawn(supervisor::supervise(
            Arc::clone(&shared),
            Some((connection, generation)),
        ));
        Ok(AmqpQueue {
            inner: Arc::new(Inner {
                shared,
                supervisor: Mutex::new(Some(task)),
            }),
        })
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &AmqpConfig {
        &self.inner.shared.config
    }

    /// Closes the connection now (the broker hands the deliveries held out again) and stops
    /// reconnecting: every call fails with [`StoreError::Closed`] from then on.
    pub async fn close(&self) {
        let shared = &self.inner.shared;
        shared.closed.store(true, Ordering::SeqCst);
        shared.wake.notify_one();
        let task = lock(&self.inner.supervisor).take();
        if let Some(task) = task {
            // The supervisor closes its connection on its way out (bounded).
            let _ = tokio::time::timeout(shared.config.op_timeout * 2, task).await;
        }
        for task in shared.state().consumers.drain(..) {
            task.abort();
        }
    }

    /// Deliveries held and not taken yet (what the broker pushed ahead).
    pub fn held(&self) -> usize {
        self.inner.shared.state().hold.waiting()
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    fn closed(&self) -> Result<(), StoreError> {
        if self.shared().closed.load(Ordering::SeqCst) {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }

    fn publishing_channel(&self) -> Result<Channel, StoreError> {
        self.closed()?;
        let state = self.shared().state();
        match &state.publish {
            Some(channel) if channel.status().connected() => Ok(channel.clone()),
            _ => Err(unavailable(format!(
                "amqp: not connected ({})",
                state.last_error
            ))),
        }
    }

    async fn publish_job(&self, key: &JobKey, priority: Priority) -> Result<(), StoreError> {
        let channel = self.publishing_channel()?;
        let shared = self.shared();
        let config = &shared.config;
        let (announced, generation) = {
            let state = shared.state();
            (state.announced.contains(&key.tenant), state.generation)
        };
        if !announced {
            // The tenant's queues exist before its first job goes out, and every consumer
            // hears of them (the registry); repeated after a reconnect, in case the broker
            // lost them.
            link::declare_tenant(&channel, config, &key.tenant)
                .await
                .map_err(unavailable)?;
            link::publish_confirmed(
                &channel,
                config,
                &topology::tenants_stream(&config.prefix),
                key.tenant.as_bytes(),
                BasicProperties::default().with_app_id("imgchkr".into()),
            )
            .await
            .map_err(unavailable)?;
            let mut state = shared.state();
            if state.generation == generation {
                state.announced.insert(key.tenant.clone());
            }
        }
        let properties = BasicProperties::default()
            .with_message_id(key.id.to_string().into())
            .with_content_type("text/plain".into())
            .with_app_id("imgchkr".into());
        link::publish_confirmed(
            &channel,
            config,
            &topology::queue_of(&config.prefix, &key.tenant, priority),
            &topology::body(key),
            properties,
        )
        .await
        .map_err(unavailable)
    }

    async fn take_held(&self, max: usize, cap: Option<u64>) -> Result<Vec<Delivery>, StoreError> {
        self.closed()?;
        let shared = self.shared();
        shared.start_consuming();
        self.look_at_starved_lines().await;
        let mut state = shared.state();
        state.seen = state.changes;
        Ok(state
            .hold
            .take(max, cap)
            .into_iter()
            .map(|held| Delivery::new(held.key, held.deliveries, held.receipt.to_string()))
            .collect())
    }

    /// Asks the broker about each line waiting for a refill (its window was full when one of
    /// its deliveries settled): one whose queue holds nothing ready has nothing coming, and
    /// stops holding back its tenant's lower lines. A line whose queue holds more keeps
    /// waiting for its delivery (or for the next look, if another worker got it).
    async fn look_at_starved_lines(&self) {
        let starved = self.shared().state().hold.starved();
        if starved.is_empty() {
            return;
        }
        let Ok(channel) = self.publishing_channel() else {
            return;
        };
        let config = &self.shared().config;
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        for (tenant, line) in starved {
            let Line::Priority(rank) = line else {
                continue;
            };
            let Some(priority) = Priority::ALL.get(usize::from(rank)) else {
                continue;
            };
            let queue = topology::queue_of(&config.prefix, &tenant, *priority);
            let looked = bounded(
                config.op_timeout,
                "a look at a queue",
                channel.queue_declare(queue.as_str().into(), passive, FieldTable::default()),
            )
            .await;
            if let Ok(queue) = looked
                && queue.message_count() == 0
            {
                self.shared().state().hold.unstarve(&tenant, line);
            }
        }
    }

    /// Settles `delivery` here and hands its acknowledgement handle back, if it still has one.
    fn settle(&self, delivery: &Delivery) -> Option<Acker> {
        let receipt: u64 = delivery.receipt.parse().ok()?;
        let mut state = self.shared().state();
        state.hold.settle(receipt);
        state.changes += 1;
        let acker = state.ackers.remove(&receipt).map(|(_, acker)| acker);
        drop(state);
        self.shared().work.notify_waiters();
        acker
    }

    async fn ack_delivery(&self, delivery: &Delivery) -> Result<(), StoreError> {
        let Some(acker) = self.settle(delivery) else {
            return Ok(());
        };
        let timeout = self.shared().config.op_timeout;
        match bounded(timeout, "basic.ack", acker.ack(BasicAckOptions::default())).await {
            Ok(true) => {}
            // Its connection broke: the broker hands it out again, and the worker that gets
            // it finds the job finished (and only settles it).
            Ok(false) => debug!(job = %delivery.key, "amqp: acknowledgement of a lost delivery"),
            Err(e) => debug!(job = %delivery.key, error = %e, "amqp: acknowledgement failed"),
        }
        Ok(())
    }

    async fn requeue_delivery(&self, delivery: &Delivery) -> Result<(), StoreError> {
        let Some(acker) = self.settle(delivery) else {
            return Ok(());
        };
        let timeout = self.shared().config.op_timeout;
        let requeue = BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        };
        if let Err(e) = bounded(timeout, "basic.nack", acker.nack(requeue)).await {
            debug!(job = %delivery.key, error = %e, "amqp: giving a delivery back failed");
        }
        Ok(())
    }

    async fn wait_work(&self) {
        let shared = self.shared();
        shared.start_consuming();
        let notified = shared.work.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        let wait = {
            let state = shared.state();
            if state.changes != state.seen || shared.closed.load(Ordering::SeqCst) {
                return;
            }
            // A line waiting for a refill that may go to another worker: look again soon.
            if state.hold.any_starved() {
                LOOK_AGAIN
            } else {
                WAIT_AT_MOST
            }
        };
        let _ = tokio::time::timeout(wait, notified).await;
    }

    async fn check_broker(&self) -> Result<(), StoreError> {
        let channel = self.publishing_channel()?;
        let config = &self.shared().config;
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let parked = topology::parked_queue(&config.prefix);
        bounded(
            config.op_timeout,
            "a check",
            channel.queue_declare(parked.into(), passive, FieldTable::default()),
        )
        .await
        .map(|_| ())
        .map_err(unavailable)
    }
}

impl JobQueue for AmqpQueue {
    fn publish<'a>(
        &'a self,
        key: &'a JobKey,
        priority: Priority,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.publish_job(key, priority))
    }

    fn take(
        &self,
        max: usize,
        tenant_in_flight: Option<u64>,
    ) -> BoxFuture<'_, Result<Vec<Delivery>, StoreError>> {
        Box::pin(self.take_held(max, tenant_in_flight))
    }

    fn untake(&self, deliveries: Vec<Delivery>) {
        let mut state = self.shared().state();
        for delivery in deliveries {
            if let Ok(receipt) = delivery.receipt.parse() {
                state.hold.untake(receipt);
            }
        }
    }

    fn ack<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.ack_delivery(delivery))
    }

    fn requeue<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.requeue_delivery(delivery))
    }

    fn holds(&self, delivery: &Delivery) -> bool {
        let Ok(receipt) = delivery.receipt.parse::<u64>() else {
            return false;
        };
        let state = self.shared().state();
        state.hold.is_taken(receipt)
            && state
                .ackers
                .get(&receipt)
                .is_some_and(|(generation, acker)| {
                    *generation == state.generation && acker.usable()
                })
    }

    fn work_available(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.wait_work())
    }

    fn check(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.check_broker())
    }
}
