//! One connection to the broker: opened, its topology declared, its consumers started. The
//! [`queue`](crate::queue) module keeps one up and makes a new one when it breaks.

use std::time::Duration;

use lapin::options::{
    BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::uri::AMQPUri;
use lapin::{Channel, Connection, ConnectionProperties, Consumer};

use crate::config::AmqpConfig;
use crate::held::Line;
use crate::topology;

/// Deliveries pushed ahead from the parked queue (parking is quick, and rare).
const PARKED_PREFETCH: u16 = 4;

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

/// Declares the queues (idempotent; a queue declared before with other arguments closes the
/// channel with the broker's reason, which is then the link's error).
async fn declare(channel: &Channel, config: &AmqpConfig) -> Result<(), String> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let parked = topology::parked_queue(&config.prefix);
    bounded(
        config.op_timeout,
        "declaring the parked queue",
        channel.queue_declare(parked.into(), durable, topology::parked_arguments()),
    )
    .await?;
    for priority in imgchkr_core::Priority::ALL {
        let name = topology::queue_of(&config.prefix, priority);
        let args = topology::work_arguments(&config.prefix, config.max_deliveries);
        bounded(
            config.op_timeout,
            "declaring a queue",
            channel.queue_declare(name.into(), durable, args),
        )
        .await?;
    }
    Ok(())
}

/// A channel consuming every queue (manual acknowledgements; `prefetch` deliveries per
/// priority queue, a few from the parked queue): the channel and its consumers.
pub(crate) async fn consume(
    connection: &Connection,
    config: &AmqpConfig,
) -> Result<(Channel, Vec<(Consumer, Line)>), String> {
    let timeout = config.op_timeout;
    let channel = bounded(timeout, "opening a channel", connection.create_channel()).await?;
    let mut consumers = Vec::new();
    for (queue, line) in topology::consumed(&config.prefix) {
        // Per consumer (not global: quorum queues have no channel-wide prefetch), fixed
        // when it starts consuming.
        let prefetch = match line {
            Line::Parked => PARKED_PREFETCH,
            // One ahead of the job slots: a slot freed by an ack is refilled from what is
            // already held, so a queued `high` job is never passed over for a `normal` one
            // in the moment before the broker pushes the next `high` delivery.
            Line::Priority(_) => config.prefetch.saturating_add(1),
        };
        bounded(
            timeout,
            "basic.qos",
            channel.basic_qos(prefetch, BasicQosOptions { global: false }),
        )
        .await?;
        let consumer = bounded(
            timeout,
            "basic.consume",
            channel.basic_consume(
                queue.into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await?;
        consumers.push((consumer, line));
    }
    Ok((channel, consumers))
}
