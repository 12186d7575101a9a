//! The writer thread: it owns the one write connection and commits writes in groups.
//!
//! Every write of the engine (submit, lease, record, finish, …) is an [`Op`] sent to this
//! thread. The thread takes the first waiting op, then every op queued behind it (up to
//! `max_group`), runs them in order in one `BEGIN IMMEDIATE` … `COMMIT`, and only then answers
//! each through its oneshot channel: a caller hears of its write once it is committed, and the
//! writes that arrive together share one commit (and, with `synchronous=FULL`, one `fsync`).
//!
//! An op refused before writing (a full queue) is answered as refused and the group goes on.
//! When an op fails in SQLite (disk full, read-only file, I/O error) or the commit fails, the
//! whole group is rolled back (SQLite itself rolls back on a full disk) and each op is run again
//! alone in its own transaction, so that only the ops that fail again are answered with the
//! error: no op is ever answered as done unless it is committed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::Receiver;

use futures_channel::oneshot;
use imgchkr_core::{JobKey, StoreError};
use rusqlite::Connection;
use tracing::{debug, warn};

use crate::checkpoint::Nudge;
use crate::error::Failure;
use crate::row::Stored;
use crate::wake::Wake;

/// What the writer keeps in memory between transactions, all of it also in the database
/// (which it alone writes): figures that every submission or lease would otherwise count,
/// and the jobs in flight, which every `record` and `finish` would otherwise read and decode
/// again. Reloaded from the database (the jobs in flight emptied, read again as needed) after
/// a rollback.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    /// Jobs waiting, all tenants.
    pub(crate) waiting: u64,
    /// Jobs waiting, by tenant (tenants with none left out).
    pub(crate) tenants: HashMap<String, u64>,
    /// The last round-robin turn given.
    pub(crate) turn: i64,
    /// Tombstones held.
    pub(crate) tombstones: u64,
    /// The rows of the jobs this writer leased and that are not finished, as written last
    /// (added by a lease, removed by their finish; never a job that is not leased).
    pub(crate) in_flight: HashMap<JobKey, Stored>,
}

impl Cache {
    /// A job of `tenant` joined the queue.
    pub(crate) fn queued(&mut self, tenant: &str) {
        self.waiting += 1;
        match self.tenants.get_mut(tenant) {
            Some(waiting) => *waiting += 1,
            None => {
                self.tenants.insert(tenant.to_owned(), 1);
            }
        }
    }

    /// A job of `tenant` left the queue (leased, cancelled).
    pub(crate) fn dequeued(&mut self, tenant: &str) {
        self.waiting = self.waiting.saturating_sub(1);
        if let Some(waiting) = self.tenants.get_mut(tenant) {
            *waiting = waiting.saturating_sub(1);
            if *waiting == 0 {
                self.tenants.remove(tenant);
            }
        }
    }

    pub(crate) fn load(conn: &Connection) -> rusqlite::Result<Cache> {
        let turn: i64 = conn.query_row(
            "SELECT coalesce(max(last_served), 0) FROM tenants",
            [],
            |row| row.get(0),
        )?;
        let tenants: HashMap<String, u64> = conn
            .prepare("SELECT tenant, waiting FROM tenants WHERE waiting > 0")?
            .query_map([], |row| {
                Ok((
                    row.get(0)?,
                    u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
                ))
            })?
            .collect::<Result<_, _>>()?;
        let tombstones: i64 =
            conn.query_row("SELECT count(*) FROM tombstones", [], |row| row.get(0))?;
        Ok(Cache {
            waiting: tenants.values().sum(),
            tenants,
            turn,
            tombstones: u64::try_from(tombstones).unwrap_or(0),
            in_flight: HashMap::new(),
        })
    }
}

/// An open write transaction, as ops see it.
pub(crate) struct Tx<'c> {
    pub(crate) conn: &'c Connection,
    pub(crate) cache: &'c mut Cache,
    /// Idle workers to wake once committed (jobs queued or released).
    pub(crate) wakes: usize,
}

/// One write, run by the writer thread and answered after its commit.
pub(crate) trait Op: Send {
    /// Runs in the open transaction, keeping the outcome for [`answer`](Op::answer); an error
    /// means the transaction must be rolled back.
    fn run(&mut self, tx: &mut Tx<'_>, label: &str) -> Result<(), StoreError>;
    /// The outcome is this error (the transaction that ran it was rolled back).
    fn fail(&mut self, error: StoreError);
    /// Sends the outcome to the caller.
    fn answer(self: Box<Self>);
}

/// An [`Op`] made of a closure (run again from the start if its group is rolled back).
pub(crate) struct Pending<T, F> {
    work: F,
    outcome: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Pending<T, F> {
    pub(crate) fn new(work: F, reply: oneshot::Sender<Result<T, StoreError>>) -> Pending<T, F> {
        Pending {
            work,
            outcome: None,
            reply,
        }
    }
}

impl<T, F> Op for Pending<T, F>
where
    T: Send,
    F: FnMut(&mut Tx<'_>) -> Result<T, Failure> + Send,
{
    fn run(&mut self, tx: &mut Tx<'_>, label: &str) -> Result<(), StoreError> {
        match (self.work)(tx) {
            Ok(value) => {
                self.outcome = Some(Ok(value));
                Ok(())
            }
            Err(Failure::Refused(e)) => {
                self.outcome = Some(Err(e));
                Ok(())
            }
            Err(failure) => {
                let e = failure.into_store(label);
                self.outcome = Some(Err(e.clone()));
                Err(e)
            }
        }
    }

    fn fail(&mut self, error: StoreError) {
        self.outcome = Some(Err(error));
    }

    fn answer(self: Box<Self>) {
        let outcome = self.outcome.unwrap_or(Err(StoreError::Closed));
        // The caller may have stopped waiting: nothing to tell then.
        let _ = self.reply.send(outcome);
    }
}

/// The writer thread's state.
pub(crate) struct Writer {
    pub(crate) conn: Connection,
    pub(crate) cache: Cache,
    /// Whether the leases of the previous owner are expired (done by the first write
    /// transaction that commits, when the file could not be written at open).
    pub(crate) recovered: bool,
    pub(crate) max_group: usize,
    pub(crate) label: String,
    pub(crate) wake: Arc<Wake>,
    pub(crate) checkpoints: Nudge,
}

impl Writer {
    /// Commits groups of ops until every sender is gone; then closes the connection.
    pub(crate) fn run(mut self, ops: Receiver<Box<dyn Op>>) {
        let mut group: Vec<Box<dyn Op>> = Vec::new();
        while let Ok(first) = ops.recv() {
            group.push(first);
            while group.len() < self.max_group {
                match ops.try_recv() {
                    Ok(op) => group.push(op),
                    Err(_) => break,
                }
            }
            let wakes = self.commit(&mut group);
            self.wake.notify(wakes);
            for op in group.drain(..) {
                op.answer();
            }
        }
        if let Err((_, e)) = self.conn.close() {
            warn!(error = %e, "closing the SQLite writer connection");
        }
    }

    /// Runs `group` in one transaction, or each op alone if that fails; returns the workers
    /// to wake.
    fn commit(&mut self, group: &mut [Box<dyn Op>]) -> usize {
        match self.transaction(group) {
            Ok(wakes) => wakes,
            Err(e) if group.len() == 1 => {
                group[0].fail(e);
                0
            }
            Err(e) => {
                debug!(error = %e, ops = group.len(), "group rolled back; each op alone");
                let mut wakes = 0;
                for op in group.iter_mut() {
                    match self.transaction(std::slice::from_mut(op)) {
                        Ok(woken) => wakes += woken,
                        Err(e) => op.fail(e),
                    }
                }
                wakes
            }
        }
    }

    /// Runs `ops` in one transaction and commits it; on an error rolls it back.
    fn transaction(&mut self, ops: &mut [Box<dyn Op>]) -> Result<usize, StoreError> {
        let label = self.label.as_str();
        let sql = |e: rusqlite::Error| Failure::Sql(e).into_store(label);
        self.conn
            .prepare_cached("BEGIN IMMEDIATE")
            .and_then(|mut s| s.execute([]))
            .map_err(sql)?;
        let mut tx = Tx {
            conn: &self.conn,
            cache: &mut self.cache,
            wakes: 0,
        };
        let mut result = Ok(());
        if !self.recovered {
            result = crate::queue::recover(&mut tx).map_err(|f| f.into_store(label));
        }
        if result.is_ok() {
            for op in ops.iter_mut() {
                result = op.run(&mut tx, label);
                if result.is_err() {
                    break;
                }
            }
        }
        let wakes = tx.wakes;
        if result.is_ok() {
            result = self
                .conn
                .prepare_cached("COMMIT")
                .and_then(|mut s| s.execute([]))
                .map(|_| ())
                .map_err(sql);
        }
        match result {
            Ok(()) => {
                self.recovered = true;
                self.checkpoints.committed();
                Ok(wakes)
            }
            Err(e) => {
                // A full disk has SQLite roll back by itself: then there is nothing to undo.
                if !self.conn.is_autocommit()
                    && let Err(rollback) = self.conn.execute_batch("ROLLBACK")
                {
                    warn!(error = %rollback, "rolling back a failed group");
                }
                match Cache::load(&self.conn) {
                    Ok(cache) => self.cache = cache,
                    Err(reload) => warn!(error = %reload, "reloading the queue's figures"),
                }
                Err(e)
            }
        }
    }
}

/// The readiness probe: writes eight pages' worth and frees them again, so that it fails as a
/// group of jobs' writes would on a full disk, a read-only file or a failing device (a single
/// page could still be found free in a file too full for the next submissions).
pub(crate) fn probe(tx: &mut Tx<'_>) -> Result<(), Failure> {
    tx.conn
        .prepare_cached("INSERT INTO probe (data) VALUES (zeroblob(32768))")?
        .execute([])?;
    tx.conn.prepare_cached("DELETE FROM probe")?.execute([])?;
    Ok(())
}
