//! Waking idle workers: one `LISTEN` connection per engine handle (opened on the first
//! [`work_available`](imgchkr_core::Engine::work_available), so API processes hold none),
//! counting the notifications submissions and releases send at commit. A wait resolves on a
//! notification, or after the block time whatever happens (the bounded poll that also finds
//! leases that expired, which notify nobody, and covers a listener that is reconnecting).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tracing::debug;

use crate::config::{Parsed, quote_ident};
use crate::conn::{bounded, connect_one};

/// What an engine handle knows of work that may be waiting.
#[derive(Default)]
pub(crate) struct Wake {
    /// Notifications received (and reconnections, which may have missed some).
    pushes: AtomicU64,
    /// As many as the last lease had seen.
    seen: AtomicU64,
    /// The last lease took jobs and left others waiting: look again at once.
    more: AtomicBool,
    notify: Notify,
}

impl Wake {
    pub(crate) fn push(&self) {
        self.pushes.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Called as a lease begins: a notification after this point wakes the next wait.
    pub(crate) fn leasing(&self) {
        self.seen
            .store(self.pushes.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    /// Called with what the lease said of the jobs left waiting.
    pub(crate) fn leased(&self, more: bool) {
        self.more.store(more, Ordering::SeqCst);
    }

    /// Resolves on a notification since the last lease, at once if one came already or the
    /// last lease left work, and after `block` in any case.
    pub(crate) async fn wait(&self, block: Duration) {
        let notified = self.notify.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        if self.more.swap(false, Ordering::SeqCst)
            || self.pushes.load(Ordering::SeqCst) != self.seen.load(Ordering::SeqCst)
        {
            return;
        }
        let _ = tokio::time::timeout(block, notified).await;
    }
}

/// Listens on `channel` for as long as the task runs: connects, `LISTEN`s, counts each
/// notification; when the connection ends, connects again (backing off from 100 ms to 5 s).
pub(crate) async fn listen_forever(
    parsed: Arc<Parsed>,
    channel: String,
    wake: Arc<Wake>,
    timeout: Duration,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let on_notice = {
            let wake = Arc::clone(&wake);
            Arc::new(move || wake.push()) as crate::conn::OnNotice
        };
        match connect_one(&parsed, timeout, Some(on_notice)).await {
            Ok((client, driver)) => {
                let listen = format!("LISTEN {}", quote_ident(&channel));
                let listening = bounded(timeout, async {
                    client
                        .batch_execute(&listen)
                        .await
                        .map_err(|e| crate::conn::error(&e))
                })
                .await;
                match listening {
                    Ok(()) => {
                        backoff = Duration::from_millis(100);
                        // Submissions made before it listened (while it was connecting, or
                        // away) notified nobody: look once.
                        wake.push();
                        let _ = driver.await;
                        debug!("postgres: the listening connection ended; reconnecting");
                    }
                    Err(e) => {
                        debug!(error = %e, "postgres: LISTEN failed");
                        driver.abort();
                    }
                }
                drop(client);
            }
            Err(e) => debug!(error = %e, "postgres: cannot connect to listen"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
