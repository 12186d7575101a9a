//! The pool of connections and the bound on every call: a call that Postgres does not answer
//! in time fails with [`StoreError::Unavailable`], and the connection it held is closed rather
//! than handed to the next call (it may still be waiting for the answer). Connections are made
//! again as calls need them, so calls succeed again once Postgres is back.

use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use imgchkr_core::StoreError;
use tokio::task::JoinHandle;
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, Row};
use tracing::debug;

use crate::POSTGRES_UP;
use crate::config::Parsed;
use crate::tls;

/// What a connection's driver does with a notification (`LISTEN`).
pub(crate) type OnNotice = Arc<dyn Fn() + Send + Sync>;

/// Connects one client outside the pool (the listener's, the migrations'), bounded by
/// `timeout`; its connection is driven by a task of its own, which ends when the connection
/// does (the handle says when), calling `on_notice` for each notification.
pub(crate) async fn connect_one(
    parsed: &Parsed,
    timeout: Duration,
    on_notice: Option<OnNotice>,
) -> Result<(tokio_postgres::Client, JoinHandle<()>), StoreError> {
    let connect = async {
        match tls::connector(parsed.ssl, parsed.root_cert.as_deref())? {
            None => {
                let (client, connection) = parsed
                    .pg
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(|e| error(&e))?;
                Ok((client, drive(connection, on_notice)))
            }
            Some(tls) => {
                let (client, connection) = parsed.pg.connect(tls).await.map_err(|e| error(&e))?;
                Ok((client, drive(connection, on_notice)))
            }
        }
    };
    bounded(timeout, connect).await
}

/// Drives `connection` in a task until it ends.
fn drive<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
    on_notice: Option<OnNotice>,
) -> JoinHandle<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let ended = std::future::poll_fn(|cx| {
            loop {
                match connection.poll_message(cx) {
                    Poll::Ready(Some(Ok(AsyncMessage::Notification(_)))) => {
                        if let Some(on_notice) = &on_notice {
                            on_notice();
                        }
                    }
                    Poll::Ready(Some(Ok(_))) => {}
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(e)),
                    Poll::Ready(None) => return Poll::Ready(None),
                    Poll::Pending => return Poll::Pending,
                }
            }
        })
        .await;
        if let Some(e) = ended {
            debug!(error = %e, "postgres: a connection ended");
        }
    })
}

/// One engine's pool of connections.
#[derive(Clone)]
pub(crate) struct Conn {
    pool: Pool,
    timeout: Duration,
}

impl Conn {
    /// A pool of `size` connections (made as calls need them).
    pub(crate) fn new(parsed: &Parsed, size: usize, timeout: Duration) -> Result<Conn, StoreError> {
        let mut pg = parsed.pg.clone();
        pg.connect_timeout(timeout);
        let config = ManagerConfig {
            // A connection whose socket closed is dropped by the pool; a call that timed
            // out closes its connection itself (`Held`).
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match tls::connector(parsed.ssl, parsed.root_cert.as_deref())? {
            None => Manager::from_config(pg, tokio_postgres::NoTls, config),
            Some(tls) => Manager::from_config(pg, tls, config),
        };
        let pool = Pool::builder(manager)
            .max_size(size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .build()
            .map_err(|e| StoreError::Unavailable(format!("postgres: pool: {e}")))?;
        Ok(Conn { pool, timeout })
    }

    /// Runs `sql` (one statement, prepared once per connection) with `params` and returns
    /// its one row: one round trip, bounded by the call bound.
    pub(crate) async fn one(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, StoreError> {
        let call = async {
            let object =
                self.pool.get().await.map_err(|e| {
                    StoreError::Unavailable(format!("postgres: no connection: {e}"))
                })?;
            let mut held = Held(Some(object));
            let client = held
                .0
                .as_ref()
                .ok_or_else(|| StoreError::Unavailable("postgres: no connection".to_owned()))?;
            let statement = client.prepare_cached(sql).await.map_err(|e| error(&e))?;
            let row = client
                .query_one(&statement, params)
                .await
                .map_err(|e| error(&e))?;
            held.keep();
            Ok(row)
        };
        bounded(self.timeout, call).await
    }
}

/// A pooled connection in use: unless the call completes ([`Held::keep`]), it is taken out of
/// the pool and closed when dropped (a call cut off by its bound may leave an answer coming).
struct Held(Option<Object>);

impl Held {
    fn keep(&mut self) {
        self.0 = None;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(object) = self.0.take() {
            drop(Object::take(object));
        }
    }
}

/// Runs one call, bounded by `timeout`; keeps the up gauge.
pub(crate) async fn bounded<T>(
    timeout: Duration,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let result = match tokio::time::timeout(timeout, call).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Unavailable(format!(
            "postgres: no answer within {} ms",
            timeout.as_millis()
        ))),
    };
    let up = match &result {
        Ok(_) => true,
        // An answer from Postgres (an error it raised) says it is up.
        Err(StoreError::Unavailable(why)) => why.starts_with("postgres: server: "),
        Err(_) => true,
    };
    metrics::gauge!(POSTGRES_UP).set(if up { 1.0 } else { 0.0 });
    result
}

/// Every driver error is `Unavailable` to core: Postgres unreachable, or unable to do the
/// call now (read-only, shutting down, out of disk, a statement it refused); the caller may
/// retry. An error Postgres raised says so (`postgres: server: `), with its SQLSTATE.
pub(crate) fn error(e: &tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => StoreError::Unavailable(format!(
            "postgres: server: {} ({})",
            db.message(),
            db.code().code()
        )),
        None => {
            // The driver's text alone hides the cause ("error performing TLS handshake").
            let mut text = format!("postgres: {e}");
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            StoreError::Unavailable(text)
        }
    }
}
