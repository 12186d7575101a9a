//! One connection to the broker: opened, its topology declared, its consumers started. The
//! [`queue`](crate::queue) module keeps one up and makes a new one when it breaks.

use std::time::Duration;

use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer};

use crate::config::AmqpConfig;
use crate::held::Line;
use crate::topology;

/// Deliveries pushed ahead from the parked queue (parking is quick, and rare).
const PARKED_PREFETCH: u16 = 4;
/// Tenant names pushed ahead from the registry.
const REGISTRY_PREFETCH: u16 = 64;

/// The heartbeat asked for when the URL names none, in seconds.
const HEARTBEAT: u16 = 10;

/// Why a broker operation failed, as readiness and logs say it.
pub(crate) fn describe(e: &lapin::Error) -> String {
    format!("amqp: {e}")
}

/// Runs `f`, failing with a timeout message after `timeout`.
pub(crate) async fn bounded<T>(
    timeout: Duration,
    what: &str,
    f: impl Future<Output = Result<T, lapin::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(timeout, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(describe(&e)),
        Err(_) => Err(format!("amqp: {what} took longer than {timeout:?}")),
    }
}

/// A connection and its publishing channel (publisher confirms on), the queues declared.
pub(crate) async fn open(config: &AmqpConfig) -> Result<(Connection, Channel), String> {
    let mut uri: AMQPUri = config
        .url
        .parse()
        .map_err(|e| format!("amqp: bad URL: {e}"))?;
    if uri.query.heartbeat.is_none() {
        uri.query.heartbeat = Some(HEARTBEAT);
    }
    if uri.query.connection_timeout.is_none() {
        uri.query.connection_timeout =
            Some(u64::try_from(config.op_timeout.as_millis()).unwrap_or(u64::MAX));
    }
    let properties = ConnectionProperties::default().with_connection_name("imgchkr".into());
    let timeout = config.op_timeout;
    let connection = bounded(
        timeout,
        "connecting",
        Connection::connect_uri(uri, properties),
    )
    .await?;
    let publish = bounded(timeout, "opening a channel", connection.create_channel()).await?;
    bounded(
        timeout,
        "confirm.select",
        publish.confirm_select(ConfirmSelectOptions::default()),
    )
    .await?;
    declare(&publish, config).await?;
    Ok((connection, publish))
}

/// Declares the parked queue and the registry of tenants (idempotent; a queue declared before
/// with other arguments closes the channel with the broker's reason, which is then the link's
/// error).
async fn declare(channel: &Channel, config: &AmqpConfig) -> Result<(), String> {
    let parked = topology::parked_queue(&config.prefix);
    bounded(
        config.op_timeout,
        "declaring the parked queue",
        channel.queue_declare(parked.into(), durable(), topology::parked_arguments()),
    )
    .await?;
    let registry = topology::tenants_stream(&config.prefix);
    bounded(
        config.op_timeout,
        "declaring the registry of tenants",
        channel.queue_declare(registry.into(), durable(), topology::tenants_arguments()),
    )
    .await?;
    Ok(())
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

/// Declares `tenant`'s queues (idempotent).
pub(crate) async fn declare_tenant(
    channel: &Channel,
    config: &AmqpConfig,
    tenant: &str,
) -> Result<(), String> {
    for (name, _) in topology::tenant_queues(&config.prefix, tenant) {
        let args = topology::work_arguments(&config.prefix, config.max_deliveries);
        bounded(
            config.op_timeout,
            "declaring a queue",
            channel.queue_declare(name.into(), durable(), args),
        )
        .await?;
    }
    Ok(())
}

/// Publishes `body` to `queue` through the default exchange, persistent and mandatory, and
/// waits for the broker's confirm (bounded).
pub(crate) async fn publish_confirmed(
    channel: &Channel,
    config: &AmqpConfig,
    queue: &str,
    body: &[u8],
    properties: BasicProperties,
) -> Result<(), String> {
    let confirm = bounded(config.op_timeout, "a publisher confirm", async {
        channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                body,
                properties.with_delivery_mode(2),
            )
            .await?
            .await
    })
    .await?;
    match confirm {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(returned)) => Err(format!(
            "amqp: queue {queue} did not take the message ({})",
            returned.reply_text
        )),
        Confirmation::Nack(_) => Err(format!(
            "amqp: the broker refused the message (nack) on {queue}"
        )),
        Confirmation::NotRequested => Err("amqp: no publisher confirm".into()),
    }
}

/// A channel consuming the parked queue and the registry of tenants (from its start; manual
/// acknowledgements): the channel, the parked queue's consumer, the registry's consumer.
/// The tenants' queues are consumed as the registry names them ([`consume_tenant`]).
pub(crate) async fn consume(
    connection: &Connection,
    config: &AmqpConfig,
) -> Result<(Channel, Consumer, Consumer), String> {
    let timeout = config.op_timeout;
    let channel = bounded(timeout, "opening a channel", connection.create_channel()).await?;
    let parked = consumer(
        &channel,
        config,
        &topology::parked_queue(&config.prefix),
        PARKED_PREFETCH,
        FieldTable::default(),
    )
    .await?;
    let registry = consumer(
        &channel,
        config,
        &topology::tenants_stream(&config.prefix),
        REGISTRY_PREFETCH,
        topology::from_the_start(),
    )
    .await?;
    Ok((channel, parked, registry))
}

/// Consumers of `tenant`'s queues on `channel` (declared first): `prefetch` + 1 deliveries per
/// queue, one ahead of the job slots, so a slot freed by an ack is refilled from what is
/// already held and a queued `high` job is never passed over for a `normal` one in the
/// moment before the broker pushes the next `high` delivery.
pub(crate) async fn consume_tenant(
    channel: &Channel,
    config: &AmqpConfig,
    tenant: &str,
) -> Result<Vec<(Consumer, Line)>, String> {
    declare_tenant(channel, config, tenant).await?;
    let mut consumers = Vec::new();
    for (queue, line) in topology::tenant_queues(&config.prefix, tenant) {
        let prefetch = config.prefetch.saturating_add(1);
        let consumer = consumer(channel, config, &queue, prefetch, FieldTable::default()).await?;
        consumers.push((consumer, line));
    }
    Ok(consumers)
}

/// One consumer of `queue` with its own `prefetch` (per consumer, not global: quorum queues
/// have no channel-wide prefetch; fixed when it starts consuming). Callers on one channel
/// do not interleave: a `basic.qos` applies to the next `basic.consume`.
async fn consumer(
    channel: &Channel,
    config: &AmqpConfig,
    queue: &str,
    prefetch: u16,
    arguments: FieldTable,
) -> Result<Consumer, String> {
    let timeout = config.op_timeout;
    bounded(
        timeout,
        "basic.qos",
        channel.basic_qos(prefetch, BasicQosOptions { global: false }),
    )
    .await?;
    bounded(
        timeout,
        "basic.consume",
        channel.basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            arguments,
        ),
    )
    .await
}
