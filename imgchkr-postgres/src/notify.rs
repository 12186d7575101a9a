//! Notifying idle workers of submissions, after they commit. A transaction that runs
//! `NOTIFY` holds a database-wide lock from its commit until the commit is flushed, so
//! notifying inside each submission would serialize all of them behind one another's WAL
//! flushes. Instead each engine handle sends `SELECT pg_notify(…)` from its own statement
//! (no write, so no flush), at most one at a time: submissions made while one is on its way
//! share the next. A notification that cannot be sent costs only latency: idle workers look
//! anyway every block time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;
use tracing::debug;

use crate::conn::Conn;

/// Submissions waiting to be announced.
#[derive(Default)]
pub(crate) struct Announcer {
    pending: AtomicBool,
    wake: Notify,
}

impl Announcer {
    /// Asks for one more notification (after a submission committed).
    pub(crate) fn announce(&self) {
        self.pending.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }
}

/// Sends the notifications asked for, one at a time, for as long as the task runs.
pub(crate) async fn announce_forever(announcer: Arc<Announcer>, conn: Conn, channel: String) {
    loop {
        announcer.wake.notified().await;
        while announcer.pending.swap(false, Ordering::SeqCst) {
            if let Err(e) = conn.one("SELECT pg_notify($1, '')", &[&channel]).await {
                debug!(error = %e, "postgres: cannot notify the workers; they will poll");
            }
        }
    }
}
