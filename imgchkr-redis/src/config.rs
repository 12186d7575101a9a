//! [`RedisConfig`]: how to reach Redis and how long a call may take.

use std::time::Duration;

/// How to reach Redis, under which key prefix, and the time bounds of every call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]` (or `rediss://`): a standalone Redis or a
    /// Sentinel-managed primary (not Redis Cluster).
    pub url: String,
    /// Prepended to every key (`imgchkr:` by default): several deployments, or tests, can
    /// share one Redis under different prefixes.
    pub key_prefix: String,
    /// The bound on every call (and on each connection attempt): past it the call fails with
    /// [`StoreError::Unavailable`](imgchkr_core::StoreError::Unavailable).
    pub op_timeout: Duration,
    /// How long one [`work_available`](imgchkr_core::Engine::work_available) waits for a
    /// wake-up in one `BLPOP` before it resolves anyway (at most 1 s is used: an idle worker
    /// also looks for leases that expired, which ring no bell).
    pub block_time: Duration,
}

impl RedisConfig {
    /// The defaults for `url`: prefix `imgchkr:`, 2 s per call, 1 s block time.
    pub fn new(url: impl Into<String>) -> RedisConfig {
        RedisConfig {
            url: url.into(),
            key_prefix: "imgchkr:".to_owned(),
            op_timeout: Duration::from_secs(2),
            block_time: Duration::from_secs(1),
        }
    }

    /// The same configuration under `prefix`.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> RedisConfig {
        self.key_prefix = prefix.into();
        self
    }

    /// The block time in use: `block_time` between 10 ms and 1 s.
    pub fn block(&self) -> Duration {
        self.block_time
            .clamp(Duration::from_millis(10), Duration::from_secs(1))
    }

    /// The call bound in use: `op_timeout`, at least 10 ms.
    pub fn timeout(&self) -> Duration {
        self.op_timeout.max(Duration::from_millis(10))
    }
}
