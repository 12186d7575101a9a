//! [`SqliteEngine`]: opening the file (lock, settings, migrations, takeover of the dead
//! owner's leases), and the [`Engine`] methods as ops for the writer or reads for the readers.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Sender, channel};
use std::thread::JoinHandle;

use futures_channel::oneshot;
use imgchkr_core::engine::{
    Admission, Bucket, Cancel, Engine, Lease, LeaseRequest, Leased, ListQuery, Lookup, QueueStats,
    Retention, Submitted, Token, WorkerId,
};
use imgchkr_core::notify::BoxFuture;
use imgchkr_core::{Job, JobKey, JobUpdate, StoreError};
use rusqlite::Connection;
use time::OffsetDateTime;
use tracing::warn;

use crate::checkpoint::Checkpointer;
use crate::config::SqliteConfig;
use crate::error::{Failure, OpenError};
use crate::lock::OwnerLock;
use crate::read::{Read, Readers};
use crate::wake::Wake;
use crate::writer::{Cache, Op, Pending, Tx, Writer};
use crate::{lock, queue, read, retention, tokens, writer};

/// The SQLite engine: one database file owned by this process (see the [crate docs](crate)).
///
/// Dropping it finishes the writes already queued, closes the database's connections and then
/// releases the lock (the next [`open`](SqliteEngine::open) of the file may follow at once).
pub struct SqliteEngine {
    writes: Option<Sender<Box<dyn Op>>>,
    writer: Option<JoinHandle<()>>,
    readers: Readers,
    checkpointer: Checkpointer,
    /// Released last, once every connection is closed: the next owner opens only after.
    lock: Option<OwnerLock>,
    wake: Arc<Wake>,
    path: PathBuf,
    /// The file's name in error messages.
    label: Arc<str>,
}

impl std::fmt::Debug for SqliteEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteEngine")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteEngine {
    /// Opens (creating it if missing) the database of `config`, as its only owner:
    ///
    /// 1. takes `<path>.lock`, failing at once with [`OpenError::Locked`] if another process
    ///    (or another engine of this one) owns the file;
    /// 2. sets write-ahead logging and `config.synchronous`, and applies the migrations the
    ///    file lacks;
    /// 3. expires every lease recorded (they belong to the previous owner, dead), so the first
    ///    lease takes those jobs over at once as new deliveries;
    /// 4. starts the writer thread and `config.readers` reader threads.
    ///
    /// Blocking (file I/O): call it at startup, or from a blocking task. A file that is
    /// already migrated but cannot be written (read-only) opens: reads work, and every write
    /// answers [`StoreError::Unavailable`] with SQLite's reason (as does
    /// [`check`](Engine::check)); step 3 waits for the first write that succeeds. SQLite then
    /// creates `<path>-wal` and `<path>-shm` read-only too, and a connection keeps the mode
    /// it opened with: make the three files writable and open the engine again.
    pub fn open(config: &SqliteConfig) -> Result<SqliteEngine, OpenError> {
        let path = config.path.clone();
        let owner = lock::acquire(&path)?;
        let conn = crate::schema::open_writer(config)?;
        let (checkpointer, nudge) = Checkpointer::start(config)?;
        let label: Arc<str> = Arc::from(path.display().to_string());
        let wake = Arc::new(Wake::default());
        let mut writer = Writer {
            cache: Cache::load(&conn).map_err(|e| OpenError::Sqlite {
                path: path.clone(),
                reason: e.to_string(),
            })?,
            conn,
            recovered: false,
            max_group: config.max_group.max(1),
            label: label.to_string(),
            wake: Arc::clone(&wake),
            checkpoints: nudge,
        };
        if let Err(e) = writer.recover_now() {
            warn!(
                error = %e,
                "cannot expire the previous owner's leases yet: the first write that succeeds will"
            );
        }
        let readers = Readers::start(config)?;
        let (writes, ops) = channel::<Box<dyn Op>>();
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer.run(ops))
            .map_err(|e| OpenError::Sqlite {
                path: path.clone(),
                reason: format!("cannot start the writer thread: {e}"),
            })?;
        Ok(SqliteEngine {
            writes: Some(writes),
            writer: Some(thread),
            readers,
            checkpointer,
            lock: Some(owner),
            wake,
            path,
            label,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` on the writer thread in the next group; resolves once it is committed
    /// (or failed).
    fn write<'a, T, F>(&'a self, work: F) -> BoxFuture<'a, Result<T, StoreError>>
    where
        T: Send + 'static,
        F: FnMut(&mut Tx<'_>) -> Result<T, Failure> + Send + 'static,
    {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            let op: Box<dyn Op> = Box::new(Pending::new(work, reply));
            let sent = self.writes.as_ref().is_some_and(|w| w.send(op).is_ok());
            if !sent {
                return Err(StoreError::Closed);
            }
            answer.await.map_err(|_| StoreError::Closed)?
        })
    }

    /// Runs `work` on a reader thread.
    fn read<'a, T, F>(&'a self, work: F) -> BoxFuture<'a, Result<T, StoreError>>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, Failure> + Send + 'static,
    {
        let label = Arc::clone(&self.label);
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            let read: Read = Box::new(move |conn| {
                let _ = reply.send(work(conn).map_err(|f| f.into_store(&label)));
            });
            if !self.readers.send(read) {
                return Err(StoreError::Closed);
            }
            answer.await.map_err(|_| StoreError::Closed)?
        })
    }
}

impl Writer {
    /// Expires the previous owner's leases in a transaction of its own.
    fn recover_now(&mut self) -> Result<(), StoreError> {
        let label = self.label.clone();
        let sql = |e| Failure::Sql(e).into_store(&label);
        let conn = self.conn.transaction().map_err(sql)?;
        let mut cache = Cache::default();
        let mut tx = Tx {
            conn: &conn,
            cache: &mut cache,
            wakes: 0,
        };
        queue::recover(&mut tx).map_err(|f| f.into_store(&label))?;
        let wakes = tx.wakes;
        conn.commit().map_err(sql)?;
        self.recovered = true;
        self.wake.notify(wakes);
        Ok(())
    }
}

impl Drop for SqliteEngine {
    fn drop(&mut self) {
        self.writes = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        self.readers.stop();
        self.checkpointer.stop();
        self.lock = None;
    }
}

impl Engine for SqliteEngine {
    fn submit<'a>(
        &'a self,
        job: &'a Job,
        admission: Admission,
    ) -> BoxFuture<'a, Result<Submitted, StoreError>> {
        let job = job.clone();
        self.write(move |tx| queue::submit(tx, &job, admission))
    }

    fn get<'a>(&'a self, key: &'a JobKey) -> BoxFuture<'a, Result<Lookup, StoreError>> {
        let key = key.clone();
        self.read(move |conn| read::get(conn, &key))
    }

    fn list<'a>(&'a self, query: &'a ListQuery) -> BoxFuture<'a, Result<Vec<Job>, StoreError>> {
        let query = query.clone();
        self.read(move |conn| read::list(conn, &query))
    }

    fn cancel<'a>(
        &'a self,
        key: &'a JobKey,
        at: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Cancel, StoreError>> {
        let key = key.clone();
        self.write(move |tx| queue::cancel(tx, &key, at))
    }

    fn lease<'a>(
        &'a self,
        request: &'a LeaseRequest,
    ) -> BoxFuture<'a, Result<Vec<Leased>, StoreError>> {
        // Seen before looking: a submission committed after this wakes the next wait.
        self.wake.seen();
        let request = request.clone();
        self.write(move |tx| queue::lease(tx, &request))
    }

    fn heartbeat<'a>(
        &'a self,
        worker: &'a WorkerId,
        leases: &'a [Lease],
        now: OffsetDateTime,
        until: OffsetDateTime,
        status: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Lease>, StoreError>> {
        let (worker, leases, status) = (worker.clone(), leases.to_vec(), status.to_owned());
        self.write(move |tx| queue::heartbeat(tx, &worker, &leases, now, until, &status))
    }

    fn record<'a>(
        &'a self,
        lease: &'a Lease,
        updates: &'a [JobUpdate],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let (key, updates) = (lease.key.clone(), updates.to_vec());
        self.write(move |tx| queue::record(tx, &key, &updates, false))
    }

    fn finish<'a>(
        &'a self,
        lease: &'a Lease,
        updates: &'a [JobUpdate],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let (key, updates) = (lease.key.clone(), updates.to_vec());
        self.write(move |tx| queue::record(tx, &key, &updates, true))
    }

    fn release<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<(), StoreError>> {
        let lease = lease.clone();
        self.write(move |tx| queue::release(tx, &lease))
    }

    fn work_available(&self) -> BoxFuture<'_, ()> {
        match self.wake.listen() {
            Some(listener) => Box::pin(listener),
            None => Box::pin(std::future::ready(())),
        }
    }

    fn purge<'a>(
        &'a self,
        retention: &'a Retention,
        now: OffsetDateTime,
        budget: u64,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        let retention = *retention;
        self.write(move |tx| retention::purge(tx, &retention, now, budget))
    }

    fn stats(&self) -> BoxFuture<'_, Result<QueueStats, StoreError>> {
        self.read(read::stats)
    }

    fn take_token<'a>(
        &'a self,
        name: &'a str,
        bucket: Bucket,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Token, StoreError>> {
        let name = name.to_owned();
        self.write(move |tx| tokens::take_token(tx, &name, bucket, now))
    }

    fn remember<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        expires: OffsetDateTime,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.write(move |tx| tokens::remember(tx, &key, &value, expires, now))
    }

    fn check(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        self.write(writer::probe)
    }

    fn is_durable(&self) -> bool {
        true
    }

    fn is_shared(&self) -> bool {
        false
    }
}
