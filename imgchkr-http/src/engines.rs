//! Choosing the engine from `--store` and `--queue` (ENGINES.md): the one place the binary
//! names engine crates.

use std::sync::Arc;

use imgchkr_core::{Engine, MemoryEngine};

use crate::cli::ServeArgs;

/// Why the configured engine cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The URL names no engine this binary has.
    #[error(
        "unsupported {what} URL {url:?}: use sqlite:PATH, memory:, redis://…, postgres://… (queue: also amqp://…)"
    )]
    Unsupported {
        /// `--store` or `--queue`.
        what: &'static str,
        /// The URL, credentials removed.
        url: String,
    },
    /// This combination of store and queue does not run.
    #[error("{0}")]
    Combination(String),
    /// The engine could not be opened or reached.
    #[error("cannot open the {what} {url}: {reason}")]
    Open {
        /// `store` or `queue`.
        what: &'static str,
        /// The URL, credentials removed.
        url: String,
        /// Why.
        reason: String,
    },
}

/// The kinds of URL `--store` and `--queue` take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Memory,
    Sqlite,
    Redis,
    Postgres,
    Amqp,
}

fn kind(url: &str) -> Option<Kind> {
    let scheme = url.split_once(':')?.0.to_ascii_lowercase();
    Some(match scheme.as_str() {
        "memory" => Kind::Memory,
        "sqlite" => Kind::Sqlite,
        "redis" | "rediss" => Kind::Redis,
        "postgres" | "postgresql" => Kind::Postgres,
        "amqp" | "amqps" => Kind::Amqp,
        _ => return None,
    })
}

/// `url` without its password, for messages and logs (each URL of a comma-separated list).
pub fn redacted(url: &str) -> String {
    if url.contains(',') {
        return shard_urls(url)
            .iter()
            .map(|one| redacted(one))
            .collect::<Vec<_>>()
            .join(",");
    }
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// The URLs of a `--store` value: one, or a comma-separated list of shards (a comma inside
/// a password is written `%2C`).
fn shard_urls(store: &str) -> Vec<&str> {
    store.split(',').map(str::trim).collect()
}

/// Whether the store `args` name can be shared by several processes (`redis://`,
/// `postgres://`, or a list of them), judged from its URLs alone: `api` and `worker` refuse a
/// single-node store before touching it (no file is created for a process that will not run).
pub fn is_shared(args: &ServeArgs) -> bool {
    shard_urls(args.store_url())
        .iter()
        .all(|url| matches!(kind(url), Some(Kind::Redis | Kind::Postgres)))
}

/// The store and queue `args` name, checked from their URLs alone — before anything is opened,
/// created or connected, so a refused combination leaves no file behind and waits for no
/// server.
pub fn check(args: &ServeArgs) -> Result<(), EngineError> {
    kinds(args).map(|_| ())
}

/// The kind of a sharded store (a comma-separated list of URLs), if its shards go together:
/// all `redis://`/`rediss://` or all `postgres://`, each listed once, no separate queue.
fn sharded_kind(store: &str, queue: &str) -> Result<Kind, EngineError> {
    let urls = shard_urls(store);
    let mut kinds = Vec::with_capacity(urls.len());
    for (i, url) in urls.iter().enumerate() {
        let found = kind(url).ok_or_else(|| EngineError::Unsupported {
            what: "--store",
            url: redacted(url),
        })?;
        if !matches!(found, Kind::Redis | Kind::Postgres) {
            return Err(EngineError::Combination(format!(
                "--store {}: a list of shards takes only shared stores (redis://… or \
                 postgres://…), not {}",
                redacted(store),
                redacted(url)
            )));
        }
        if urls[..i].contains(url) {
            return Err(EngineError::Combination(format!(
                "--store {}: {} is listed twice (each shard is a server of its own)",
                redacted(store),
                redacted(url)
            )));
        }
        kinds.push(found);
    }
    if kinds.iter().any(|k| *k != kinds[0]) {
        return Err(EngineError::Combination(format!(
            "--store {}: the shards of a list must be of one kind, all redis://… or all \
             postgres://…",
            redacted(store)
        )));
    }
    if queue != store {
        return Err(EngineError::Combination(format!(
            "--queue {} with a sharded --store {}: each shard carries its own jobs' queue; \
             leave --queue unset",
            redacted(queue),
            redacted(store)
        )));
    }
    Ok(kinds[0])
}

/// The kinds of store and queue `args` name, if they go together.
fn kinds(args: &ServeArgs) -> Result<(Kind, Kind), EngineError> {
    let store = args.store_url();
    let queue = args.queue_url();
    if store.contains(',') {
        let kind = sharded_kind(store, queue)?;
        return Ok((kind, kind));
    }
    let store_kind = kind(store).ok_or_else(|| EngineError::Unsupported {
        what: "--store",
        url: redacted(store),
    })?;
    let queue_kind = kind(queue).ok_or_else(|| EngineError::Unsupported {
        what: "--queue",
        url: redacted(queue),
    })?;
    if store_kind == Kind::Amqp {
        return Err(EngineError::Combination(
            "amqp:// is a queue only: give it as --queue beside a shared --store (redis:// or postgres://)".into(),
        ));
    }
    if queue_kind == Kind::Amqp {
        if !matches!(store_kind, Kind::Redis | Kind::Postgres) {
            return Err(EngineError::Combination(format!(
                "--queue {} needs a shared store (--store redis://… or postgres://…), not {}: \
                 the broker carries only the work, the records must be reachable by every process",
                redacted(queue),
                redacted(store)
            )));
        }
    } else if queue != store {
        return Err(EngineError::Combination(format!(
            "--queue {} with --store {}: a separate queue is supported only as amqp://… beside redis://… or postgres://…; leave --queue unset",
            redacted(queue),
            redacted(store)
        )));
    }
    Ok((store_kind, queue_kind))
}

/// Opens the engine `args` configure.
pub async fn open(args: &ServeArgs) -> Result<Arc<dyn Engine>, EngineError> {
    let (store_kind, queue_kind) = kinds(args)?;
    let store = args.store_url();
    if queue_kind == Kind::Amqp {
        return open_split(args, store, store_kind, args.queue_url()).await;
    }
    if store.contains(',') {
        return open_sharded(store, store_kind).await;
    }
    open_one(store, store_kind).await
}

/// Several servers as one engine, each tenant on one of them: core's
/// [`Sharded`](imgchkr_core::engine::sharded::Sharded), shards in the order listed.
async fn open_sharded(store: &str, kind: Kind) -> Result<Arc<dyn Engine>, EngineError> {
    use imgchkr_core::engine::sharded::Sharded;
    let urls = shard_urls(store);
    let mut shards = Vec::with_capacity(urls.len());
    for url in &urls {
        shards.push(open_one(url, kind).await?);
    }
    let sharded = Sharded::new(shards).map_err(|e| EngineError::Open {
        what: "store",
        url: redacted(store),
        reason: e.to_string(),
    })?;
    Ok(Arc::new(
        sharded.with_labels(urls.iter().map(|url| redacted(url))),
    ))
}

/// The engine of one store URL of `kind`.
async fn open_one(store: &str, store_kind: Kind) -> Result<Arc<dyn Engine>, EngineError> {
    let open_failed = |reason: String| EngineError::Open {
        what: "store",
        url: redacted(store),
        reason,
    };
    match store_kind {
        Kind::Memory => Ok(Arc::new(MemoryEngine::new())),
        Kind::Sqlite => {
            let config = imgchkr_sqlite::SqliteConfig::from_url(store).ok_or_else(|| {
                open_failed("expected sqlite:PATH or sqlite:PATH?synchronous=full|normal".into())
            })?;
            // Opening reads the file and takes its lock: off the async threads.
            let engine =
                tokio::task::spawn_blocking(move || imgchkr_sqlite::SqliteEngine::open(&config))
                    .await
                    .map_err(|e| open_failed(e.to_string()))?
                    .map_err(|e| open_failed(e.to_string()))?;
            Ok(Arc::new(engine))
        }
        Kind::Redis => {
            let engine =
                imgchkr_redis::RedisEngine::connect(imgchkr_redis::RedisConfig::new(store))
                    .await
                    .map_err(|e| open_failed(e.to_string()))?;
            imgchkr_redis::describe_metrics();
            Ok(Arc::new(engine))
        }
        Kind::Postgres => {
            let engine = imgchkr_postgres::PostgresEngine::connect(
                imgchkr_postgres::PostgresConfig::new(store),
            )
            .await
            .map_err(|e| open_failed(e.to_string()))?;
            imgchkr_postgres::describe_metrics();
            Ok(Arc::new(engine))
        }
        other => Err(open_failed(format!(
            "the {other:?} engine is not built into this binary"
        ))),
    }
}

/// RabbitMQ carrying the work (`--queue amqp://…`) beside the shared store that keeps the
/// records: core's [`Split`](imgchkr_core::engine::split::Split) of the two.
async fn open_split(
    args: &ServeArgs,
    store: &str,
    store_kind: Kind,
    queue: &str,
) -> Result<Arc<dyn Engine>, EngineError> {
    use imgchkr_core::engine::split::Split;
    let open_failed = |what: &'static str, url: &str, reason: String| EngineError::Open {
        what,
        url: redacted(url),
        reason,
    };
    // The worker's job slots: the broker pushes one more per queue ahead of its leases.
    let prefetch = u16::try_from(args.max_concurrent_jobs.max(1)).unwrap_or(u16::MAX);
    let config = imgchkr_amqp::AmqpConfig::new(queue)
        .with_max_deliveries(args.max_deliveries)
        .with_prefetch(prefetch);
    let amqp = imgchkr_amqp::AmqpQueue::connect(config)
        .await
        .map_err(|e| open_failed("queue", queue, e.to_string()))?;
    imgchkr_amqp::describe_metrics();
    match store_kind {
        Kind::Redis => {
            let records =
                imgchkr_redis::RedisEngine::connect(imgchkr_redis::RedisConfig::new(store))
                    .await
                    .map_err(|e| open_failed("store", store, e.to_string()))?;
            imgchkr_redis::describe_metrics();
            Ok(Arc::new(Split::new(records, amqp)))
        }
        Kind::Postgres => {
            let records = imgchkr_postgres::PostgresEngine::connect(
                imgchkr_postgres::PostgresConfig::new(store),
            )
            .await
            .map_err(|e| open_failed("store", store, e.to_string()))?;
            imgchkr_postgres::describe_metrics();
            Ok(Arc::new(Split::new(records, amqp)))
        }
        // `check` admits no other store beside an AMQP queue.
        other => Err(EngineError::Combination(format!(
            "an AMQP queue beside a {other:?} store"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_of_urls_is_redacted_url_by_url() {
        assert_eq!(
            redacted("redis://:pw1@a:6379/,redis://b:6379/, rediss://u:pw2@c:6380/"),
            "redis://:***@a:6379/,redis://b:6379/,rediss://u:***@c:6380/"
        );
        assert_eq!(redacted("redis://:pw@a:6379/"), "redis://:***@a:6379/");
    }

    #[test]
    fn a_list_of_one_kind_of_shared_store_is_sharded() {
        let list = "redis://a/,redis://b/";
        assert!(matches!(sharded_kind(list, list), Ok(Kind::Redis)));
        let list = "postgres://a/db,postgres://b/db";
        assert!(matches!(sharded_kind(list, list), Ok(Kind::Postgres)));
        for bad in [
            "redis://a/,sqlite:x.db",
            "redis://a/,memory:",
            "redis://a/,postgres://b/db",
            "redis://a/,redis://a/",
            "redis://a/,",
            "redis://a/,ftp://b/",
        ] {
            assert!(sharded_kind(bad, bad).is_err(), "{bad}");
        }
        assert!(sharded_kind("redis://a/,redis://b/", "amqp://c/").is_err());
    }
}
