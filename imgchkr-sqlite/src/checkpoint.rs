//! The checkpointer thread: copies the write-ahead log back into the database file with a
//! connection of its own, so the writer never does it inside a commit (SQLite's automatic
//! checkpoint would: every few thousand pages, one group of writes would wait for it).
//!
//! The writer nudges it every [`NUDGE_EVERY`] commits; it also looks once a second. Its
//! checkpoints are `PASSIVE`: they never wait for the writer or the readers, and copy what they
//! can. Once a checkpoint has copied the whole log, the writer's next transaction starts the
//! log again from its beginning; under a steady load the writer keeps appending while this
//! thread copies, so SQLite's own automatic checkpoint stays on in the writer at
//! [`BACKSTOP_PAGES`]: it then finds most of the log copied already, copies the rest, and the
//! log starts again. The log stays under about 16 MiB plus one transaction.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;
use tracing::debug;

use crate::config::SqliteConfig;
use crate::error::OpenError;

/// Commits between two nudges (a group's commit adds some tens of pages to the log). A hot
/// page rewritten by many commits is copied once per checkpoint: 256 commits (a few MiB of log)
/// took 7 % off the server's CPU per job against 32 (loadgen, 20,000 jobs, three rounds each);
/// 1,024 gave nothing more.
pub(crate) const NUDGE_EVERY: u64 = 256;
/// The writer's own automatic checkpoint, in pages (16 MiB of 4 KiB pages).
pub(crate) const BACKSTOP_PAGES: i64 = 4_000;
/// How often it looks without a nudge.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// The thread, and the writer's way to nudge it.
pub(crate) struct Checkpointer {
    nudge: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// The writer's handle: nudges the checkpointer every [`NUDGE_EVERY`] commits.
pub(crate) struct Nudge {
    nudge: SyncSender<()>,
    commits: u64,
}

impl Nudge {
    /// One more commit.
    pub(crate) fn committed(&mut self) {
        self.commits += 1;
        if self.commits.is_multiple_of(NUDGE_EVERY) {
            // A nudge already waiting is enough.
            match self.nudge.try_send(()) {
                Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
            }
        }
    }
}

impl Checkpointer {
    /// Starts the thread with its connection; returns it and the writer's handle.
    pub(crate) fn start(config: &SqliteConfig) -> Result<(Checkpointer, Nudge), OpenError> {
        let conn = crate::schema::open_checkpointer(config)?;
        let (nudge, nudges) = sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(&conn, &nudges))
            .map_err(|e| OpenError::Sqlite {
                path: config.path.clone(),
                reason: format!("cannot start the checkpoint thread: {e}"),
            })?;
        let writer = Nudge {
            nudge: nudge.clone(),
            commits: 0,
        };
        Ok((
            Checkpointer {
                nudge: Some(nudge),
                thread: Some(thread),
            },
            writer,
        ))
    }

    /// Stops the thread (after the writer has stopped: no nudge is left to send).
    pub(crate) fn stop(&mut self) {
        self.nudge = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(conn: &Connection, nudges: &Receiver<()>) {
    loop {
        match nudges.recv_timeout(LOOK_EVERY) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let done: rusqlite::Result<(i64, i64, i64)> =
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            });
        match done {
            Ok((_, log, copied)) => debug!(log, copied, "checkpoint"),
            // Read-only, full, or busy: the next one tries again.
            Err(e) => debug!(error = %e, "checkpoint"),
        }
    }
}
