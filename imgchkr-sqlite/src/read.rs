//! The reader threads: a few read-only connections serving `get`, `list` and `stats` off the
//! callers' executors, beside the writer (write-ahead logging lets them read while it writes;
//! each read sees every commit answered before it began).

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use imgchkr_core::engine::{ListQuery, Lookup, QueueStats, WorkerId, WorkerSeen};
use imgchkr_core::{Job, JobKey};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension as _};

use crate::config::SqliteConfig;
use crate::error::{Failure, OpenError};
use crate::row::{decode, find, from_micros, job_columns, tombstoned};

/// A read, run on a reader thread with its connection.
pub(crate) type Read = Box<dyn FnOnce(&Connection) + Send>;

/// The reader threads and the line of reads they take from.
pub(crate) struct Readers {
    line: Option<Sender<Read>>,
    threads: Vec<JoinHandle<()>>,
}

impl Readers {
    /// `config.readers` threads, each with a read-only connection.
    pub(crate) fn start(config: &SqliteConfig) -> Result<Readers, OpenError> {
        let (line, reads) = channel::<Read>();
        let reads = Arc::new(Mutex::new(reads));
        let mut threads = Vec::new();
        for i in 0..config.readers.max(1) {
            let conn = crate::schema::open_reader(config)?;
            let reads = Arc::clone(&reads);
            let thread = std::thread::Builder::new()
                .name(format!("sqlite-reader-{i}"))
                .spawn(move || serve(&conn, &reads))
                .map_err(|e| OpenError::Sqlite {
                    path: config.path.clone(),
                    reason: format!("cannot start a reader thread: {e}"),
                })?;
            threads.push(thread);
        }
        Ok(Readers {
            line: Some(line),
            threads,
        })
    }

    /// Queues `read`; `false` when the readers are gone.
    pub(crate) fn send(&self, read: Read) -> bool {
        self.line
            .as_ref()
            .is_some_and(|line| line.send(read).is_ok())
    }

    /// Stops the threads once the reads queued are served.
    pub(crate) fn stop(&mut self) {
        self.line = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn serve(conn: &Connection, reads: &Mutex<Receiver<Read>>) {
    loop {
        // One thread waits on the line, the others on the lock; each read goes to one.
        let read = reads.lock().unwrap_or_else(PoisonError::into_inner).recv();
        match read {
            Ok(read) => read(conn),
            Err(_) => return,
        }
    }
}

pub(crate) fn get(conn: &Connection, key: &JobKey) -> Result<Lookup, Failure> {
    if let Some(stored) = find(conn, &key.tenant, &key.id.to_string())? {
        return Ok(Lookup::Found(Box::new(stored.job)));
    }
    Ok(if tombstoned(conn, key)? {
        Lookup::Expired
    } else {
        Lookup::Unknown
    })
}

pub(crate) fn list(conn: &Connection, query: &ListQuery) -> Result<Vec<Job>, Failure> {
    let before = match &query.before {
        None => i64::MAX,
        Some(cursor) => {
            if query.tenant.as_ref().is_some_and(|t| *t != cursor.tenant) {
                return Ok(Vec::new());
            }
            let seq: Option<i64> = conn
                .prepare_cached("SELECT seq FROM jobs WHERE tenant = ?1 AND id = ?2")?
                .query_row((&cursor.tenant, cursor.id.to_string()), |row| row.get(0))
                .optional()?;
            match seq {
                Some(seq) => seq,
                None => return Ok(Vec::new()),
            }
        }
    };
    let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
    let state = query.state.map(|s| Value::Text(s.name().to_owned()));
    let tenant = query.tenant.clone().map(Value::Text);
    // In one state: the tenant's (or everyone's) jobs newest first, filtered, as the memory
    // engine does; no index per state, which every job would rewrite twice.
    let mut stmt = match &tenant {
        Some(_) => conn.prepare_cached(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs INDEXED BY jobs_tenant WHERE tenant = ?1 AND (?2 IS NULL OR state = ?2) \
             AND seq < ?3 ORDER BY seq DESC LIMIT ?4"
        ))?,
        None => conn.prepare_cached(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE ?1 IS NULL AND (?2 IS NULL OR state = ?2) \
             AND seq < ?3 ORDER BY seq DESC LIMIT ?4"
        ))?,
    };
    let mut rows = stmt.query((tenant, state, before, limit))?;
    let mut jobs = Vec::new();
    while let Some(row) = rows.next()? {
        jobs.push(decode(row)?.job);
    }
    Ok(jobs)
}

pub(crate) fn stats(conn: &Connection) -> Result<QueueStats, Failure> {
    let mut stats = QueueStats::default();
    let mut tenants = conn.prepare_cached(
        "SELECT tenant, waiting, in_flight FROM tenants \
         WHERE waiting > 0 OR in_flight > 0 ORDER BY tenant",
    )?;
    let mut rows = tenants.query([])?;
    while let Some(row) = rows.next()? {
        let (tenant, waiting, in_flight): (String, i64, i64) =
            (row.get(0)?, row.get(1)?, row.get(2)?);
        let (waiting, in_flight) = (
            u64::try_from(waiting).unwrap_or(0),
            u64::try_from(in_flight).unwrap_or(0),
        );
        stats.waiting += waiting;
        stats.in_flight += in_flight;
        stats.tenants.push((tenant, waiting, in_flight));
    }
    let mut workers =
        conn.prepare_cached("SELECT worker, at, held, status FROM workers ORDER BY worker")?;
    let mut rows = workers.query([])?;
    while let Some(row) = rows.next()? {
        let (worker, at, held, status): (String, i64, i64, String) =
            (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
        let Some(at) = from_micros(at) else {
            return Err(crate::error::corrupt(
                format!("worker {worker}"),
                format!("heartbeat time {at}"),
            ));
        };
        stats.workers.push(WorkerSeen::new(
            WorkerId(worker),
            at,
            u64::try_from(held).unwrap_or(0),
            status,
        ));
    }
    Ok(stats)
}
