//! The HTTP/1.1 accept loop: hyper with timeouts against slow clients, a cap on open
//! connections, and a graceful stop.
//!
//! **Connection cap.** At most `max_connections` connections are served normally. Past it, a
//! small overflow lane (a quarter of the cap, 2 to 64) still accepts, but serves only
//! `/healthz`, `/readyz` and `/metrics` (anything else: 503 with `Retry-After`), closes after
//! one answer and drops a client that has not sent its request within 100 ms, so health
//! checks keep answering while the service is saturated, even by idle clients. When both are
//! full the loop stops accepting until a connection ends: the kernel's backlog holds new
//! ones, rather than the process running out of file descriptors.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{debug, warn};

use crate::app::App;
use crate::routes;
use crate::tls::Tls;

/// Connection settings.
#[derive(Debug, Clone, Copy)]
pub struct HttpConfig {
    /// How long a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// How long open requests may take to finish once shutdown begins.
    pub close_timeout: Duration,
    /// Connections served at once (see the module docs for the overflow lane).
    pub max_connections: usize,
}

/// How long a connection of the overflow lane may take to send its request's headers.
/// Short: a health probe sends its request at once, and in this lane an idle client must not
/// keep the next one waiting.
const OVERFLOW_HEADER_TIMEOUT: Duration = Duration::from_millis(100);

/// The default connection cap: two fifths of the file descriptors this process may open, so
/// that with the overflow lane connections take half (the rest serve webhooks, remote
/// fetches and the engine); at most 10,000.
pub fn default_max_connections() -> usize {
    use rustix::process::{Resource, getrlimit};
    let nofile = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    usize::try_from(nofile.saturating_mul(2) / 5)
        .unwrap_or(usize::MAX)
        .clamp(8, 10_000)
}

/// The overflow lane's size for a cap of `max_connections`: a quarter of it, 2 to 64.
fn overflow_lane(max_connections: usize) -> usize {
    (max_connections / 4).clamp(2, 64)
}

/// Which lane a connection was admitted in.
enum Lane {
    Normal(#[allow(dead_code)] OwnedSemaphorePermit),
    Overflow(#[allow(dead_code)] OwnedSemaphorePermit),
}

impl Lane {
    /// A permit of the normal lane if free, else of the overflow lane, else waits for either.
    async fn admit(normal: &Arc<Semaphore>, overflow: &Arc<Semaphore>) -> Lane {
        if let Ok(permit) = Arc::clone(normal).try_acquire_owned() {
            return Lane::Normal(permit);
        }
        if let Ok(permit) = Arc::clone(overflow).try_acquire_owned() {
            return Lane::Overflow(permit);
        }
        tokio::select! {
            biased;
            Ok(permit) = Arc::clone(normal).acquire_owned() => Lane::Normal(permit),
            Ok(permit) = Arc::clone(overflow).acquire_owned() => Lane::Overflow(permit),
        }
    }
}

/// Serves `listener` until `stop` resolves, then stops accepting and lets requests already
/// being answered finish (within `close_timeout`); idle keep-alive connections are closed.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    config: HttpConfig,
    tls: Option<Arc<Tls>>,
    stop: impl Future<Output = ()>,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .keep_alive(true);
    // The overflow lane closes after one answer, and drops a client that sends nothing for a
    // second: idle connections cannot hold it.
    let mut last_resort = http.clone();
    last_resort
        .keep_alive(false)
        .header_read_timeout(OVERFLOW_HEADER_TIMEOUT.min(config.header_read_timeout));
    let graceful = GracefulShutdown::new();
    let normal = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let overflow = Arc::new(Semaphore::new(overflow_lane(config.max_connections)));
    let mut last_warning: Option<Instant> = None;
    tokio::pin!(stop);
    loop {
        let lane = tokio::select! {
            () = &mut stop => break,
            lane = Lane::admit(&normal, &overflow) => lane,
        };
        let stream = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning,
                    // and say so once a second at most.
                    if last_warning.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                        warn!(error = %e, "accept failed");
                        last_warning = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = Arc::clone(&app);
        let limited = matches!(lane, Lane::Overflow(_));
        let service = service_fn(move |request: Request<Incoming>| {
            let app = Arc::clone(&app);
            async move {
                Ok::<_, Infallible>(if limited {
                    routes::handle_saturated(&app, request).await
                } else {
                    routes::handle(&app, request).await
                })
            }
        });
        let builder = if limited { &last_resort } else { &http };
        let Some(tls) = &tls else {
            let connection =
                graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    debug!(error = %e, "connection ended with an error");
                }
                // The lane's permit goes back as the connection ends.
                drop(lane);
            });
            continue;
        };
        // The handshake runs in the connection's task, bounded like a request's headers: a
        // client that never finishes it holds its lane's permit no longer than that.
        let acceptor = tls.acceptor();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let handshake_timeout = config.header_read_timeout;
        tokio::spawn(async move {
            let stream =
                match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        debug!("TLS handshake timed out");
                        return;
                    }
                };
            let connection = watcher.watch(builder.serve_connection(TokioIo::new(stream), service));
            if let Err(e) = connection.await {
                debug!(error = %e, "connection ended with an error");
            }
            drop(lane);
        });
    }
    drop(listener);
    if tokio::time::timeout(config.close_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("requests still open at the close deadline were cut off");
    }
}
