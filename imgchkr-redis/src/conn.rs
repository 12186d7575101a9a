//! The two connections of an engine and the bound on every call: a call that Redis does not
//! answer in time fails with [`StoreError::Unavailable`], and the connection is re-made in
//! the background, so calls succeed again once Redis is back.

use std::time::Duration;

use imgchkr_core::StoreError;
use metrics::Gauge;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, RedisError, Script};

use crate::REDIS_UP;
use crate::config::RedisConfig;

/// One engine's connections to Redis.
#[derive(Clone)]
pub(crate) struct Conn {
    /// Every call but the blocking one (multiplexed: concurrent calls share it).
    main: ConnectionManager,
    /// `BLPOP` only: on the shared connection it would hold up every other call.
    blocking: ConnectionManager,
    prefix: String,
    timeout: Duration,
    block: Duration,
    /// `imgchkr_redis_up` of this server (`server` = its host and port): one series per
    /// server when several are shards of one store, and no registry lookup per call.
    up: Gauge,
}

impl Conn {
    /// Connects both, failing with `Unavailable` within about twice the call bound.
    pub(crate) async fn open(config: &RedisConfig) -> Result<Conn, StoreError> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| StoreError::Unavailable(format!("redis: bad url: {e}")))?;
        let timeout = config.timeout();
        let block = config.block();
        // Host and port only: the URL may carry a password.
        let server = client.get_connection_info().addr().to_string();
        let up = metrics::gauge!(REDIS_UP, "server" => server);
        let main = manager(&client, timeout, timeout, &up).await?;
        let blocking = manager(&client, timeout, timeout + block, &up).await?;
        up.set(1.0);
        Ok(Conn {
            main,
            blocking,
            prefix: config.key_prefix.clone(),
            timeout,
            block,
            up,
        })
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Runs `script` with the key prefix as its first argument, then `args`: one round trip
    /// (three the first time after Redis restarts: the script is loaded again).
    pub(crate) async fn run<T: FromRedisValue>(
        &self,
        script: &Script,
        args: &[&str],
    ) -> Result<T, StoreError> {
        let mut call = script.prepare_invoke();
        call.arg(&self.prefix);
        for arg in args {
            call.arg(*arg);
        }
        let mut conn = self.main.clone();
        bounded(self.timeout, &self.up, call.invoke_async(&mut conn)).await
    }

    /// `PING`, bounded.
    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.main.clone();
        let _: String = bounded(
            self.timeout,
            &self.up,
            redis::cmd("PING").query_async(&mut conn),
        )
        .await?;
        Ok(())
    }

    /// Waits up to the block time for a wake-up token (a submission or a release). Resolves
    /// after at most the block time plus the call bound, also when Redis is away (then after
    /// the block time, so an idle worker does not spin).
    pub(crate) async fn wait_bell(&self) {
        let mut conn = self.blocking.clone();
        let started = tokio::time::Instant::now();
        let token: Result<Option<(String, String)>, StoreError> = bounded(
            self.timeout + self.block,
            &self.up,
            redis::cmd("BLPOP")
                .arg(format!("{}bell", self.prefix))
                .arg(format!("{:.3}", self.block.as_secs_f64()))
                .query_async(&mut conn),
        )
        .await;
        if token.is_err() {
            tokio::time::sleep_until(started + self.block).await;
        }
    }
}

/// One reconnecting connection: each attempt bounded by `connect`, each reply by `response`;
/// few, quick reconnection retries, so a caller waits for at most one round of them and the
/// next call starts another.
async fn manager(
    client: &redis::Client,
    connect: Duration,
    response: Duration,
    up: &Gauge,
) -> Result<ConnectionManager, StoreError> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(connect))
        .set_response_timeout(Some(response))
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500));
    bounded(
        connect + response,
        up,
        ConnectionManager::new_with_config(client.clone(), config),
    )
    .await
}

/// Runs one Redis call, bounded by `timeout`; keeps the `up` gauge.
async fn bounded<T>(
    timeout: Duration,
    up: &Gauge,
    call: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, StoreError> {
    let result = match tokio::time::timeout(timeout, call).await {
        Ok(result) => result.map_err(|e| (reached(&e), unavailable(&e))),
        Err(_) => Err((
            false,
            StoreError::Unavailable(format!(
                "redis: no answer within {} ms",
                timeout.as_millis()
            )),
        )),
    };
    let reached = match &result {
        Ok(_) => true,
        Err((reached, _)) => *reached,
    };
    up.set(if reached { 1.0 } else { 0.0 });
    result.map_err(|(_, e)| e)
}

/// Whether the error came from a Redis that answered (a refused write, a script error)
/// rather than from the way to it.
fn reached(e: &RedisError) -> bool {
    !(e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal())
}

/// Every Redis error is `Unavailable` to core: unreachable, or unable to write now (`OOM`,
/// `READONLY`, `MISCONF`, `LOADING`); the caller may retry.
fn unavailable(e: &RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}
