//! [`AmqpConfig`]: the broker's URL and how this process uses it.

use std::time::Duration;

/// How to reach RabbitMQ and what to declare there.
///
/// The URL is lapin's (`amqp://user:pass@host:5672/vhost`, `amqps://…` for TLS; a vhost of
/// `/` is written `%2f`), plus one parameter of imgchkr's own: `prefix=NAME` names the queues
/// (`imgchkr` by default), so several deployments can share a vhost. Without a `heartbeat`
/// parameter, 10 s is asked for: a broker that stops answering is noticed within about 20 s
/// even when no TCP reset comes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AmqpConfig {
    /// The broker's URL, without imgchkr's parameters.
    pub url: String,
    /// The start of every queue name.
    pub prefix: String,
    /// Deliveries a job gets before the broker gives up on it (`--max-deliveries`): the
    /// queues' `x-delivery-limit` is one less (RabbitMQ counts the deliveries given back), and
    /// the job's next delivery comes from the parked queue, past the limit, to be parked.
    pub max_deliveries: u32,
    /// The worker's job slots (`--max-concurrent-jobs`): the broker pushes this process up to
    /// one more than this many deliveries per tenant and priority queue ahead of its leases
    /// (the one more keeps priorities exact when a slot frees).
    pub prefetch: u16,
    /// The most any broker operation may take (connecting, a publisher confirm, a check).
    pub op_timeout: Duration,
}

impl AmqpConfig {
    /// `url` with the defaults: prefix `imgchkr` (or the URL's `prefix=`), 5 deliveries, a
    /// prefetch of 64, operations bounded by 5 s.
    pub fn new(url: &str) -> AmqpConfig {
        let (url, prefix) = split_prefix(url);
        AmqpConfig {
            url,
            prefix: prefix.unwrap_or_else(|| "imgchkr".to_owned()),
            max_deliveries: 5,
            prefetch: 64,
            op_timeout: Duration::from_secs(5),
        }
    }

    /// With queue names starting with `prefix`.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> AmqpConfig {
        self.prefix = prefix.into();
        self
    }

    /// With `max` deliveries before a job is parked (at least 1).
    pub fn with_max_deliveries(mut self, max: u32) -> AmqpConfig {
        self.max_deliveries = max.max(1);
        self
    }

    /// With a prefetch of `prefetch` per queue (at least 1).
    pub fn with_prefetch(mut self, prefetch: u16) -> AmqpConfig {
        self.prefetch = prefetch.max(1);
        self
    }

    /// With operations bounded by `timeout`.
    pub fn with_op_timeout(mut self, timeout: Duration) -> AmqpConfig {
        self.op_timeout = timeout;
        self
    }
}

/// `url` without its `prefix=` parameter, and that parameter.
fn split_prefix(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut prefix = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.strip_prefix("prefix=") {
            Some(value) => {
                prefix = Some(value.to_owned());
                false
            }
            None => !pair.is_empty(),
        })
        .collect();
    if kept.is_empty() {
        (base.to_owned(), prefix)
    } else {
        (format!("{base}?{}", kept.join("&")), prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_parameter_is_imgchkrs() {
        let c = AmqpConfig::new("amqp://u:p@h:5672/%2f?prefix=blue&heartbeat=5");
        assert_eq!(c.url, "amqp://u:p@h:5672/%2f?heartbeat=5");
        assert_eq!(c.prefix, "blue");
        let c = AmqpConfig::new("amqp://h/%2f?prefix=green");
        assert_eq!(
            (c.url.as_str(), c.prefix.as_str()),
            ("amqp://h/%2f", "green")
        );
        let c = AmqpConfig::new("amqps://h/v");
        assert_eq!(
            (c.url.as_str(), c.prefix.as_str()),
            ("amqps://h/v", "imgchkr")
        );
    }
}
