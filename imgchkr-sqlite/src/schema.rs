//! The schema, its forward-only migrations (numbered by `PRAGMA user_version`, each applied in
//! one transaction when the engine opens), and the connections' settings.
//!
//! Times are integers: microseconds since 1970-01-01 UTC (`datetime(created_at / 1e6,
//! 'unixepoch')` in the `sqlite3` shell). The crate documentation describes every table.

use std::path::Path;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::config::SqliteConfig;
use crate::error::OpenError;

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Migration `i` takes the schema from version `i` to `i + 1`. Never edit one that shipped:
/// add the next.
const MIGRATIONS: &[&str] = &[V1];

const V1: &str = "
-- One row per job held: queued, running, or finished and kept for the retention time.
CREATE TABLE jobs (
    seq           INTEGER PRIMARY KEY,  -- submission order
    tenant        TEXT    NOT NULL,     -- '' when callers do not authenticate
    id            TEXT    NOT NULL,     -- the job's UUID, hyphenated, lower case
    state         TEXT    NOT NULL,     -- queued | started | success | failed | cancelled
    priority      INTEGER NOT NULL,     -- 0 high, 1 normal, 2 low
    location      TEXT    NOT NULL,     -- local | url | s3
    path          TEXT    NOT NULL,     -- the asset's path, URL or S3 URI as submitted
    on_start      TEXT    NOT NULL,     -- the webhook URLs
    on_success    TEXT    NOT NULL,
    on_failure    TEXT    NOT NULL,
    errors        TEXT,                 -- JSON {\"image\": [\"...\"]} when failed
    warnings      TEXT    NOT NULL,     -- JSON array of strings
    notifications TEXT    NOT NULL,     -- JSON array of delivery records
    created_at    INTEGER NOT NULL,
    started_at    INTEGER,
    finished_at   INTEGER,
    deliveries    INTEGER NOT NULL,     -- times handed to a worker
    worker        TEXT,                 -- the worker that was last handed it
    lease_until   INTEGER,              -- its lease's deadline; NULL when not leased
    retired_at    INTEGER               -- when it left the queue for good (retention's clock)
);
CREATE UNIQUE INDEX jobs_key ON jobs (tenant, id);
-- Listing: a tenant's jobs newest first (in one state: the same, filtered).
CREATE INDEX jobs_tenant ON jobs (tenant, seq);
-- Leasing: a tenant's waiting jobs by priority then submission; leases by deadline.
CREATE INDEX jobs_waiting ON jobs (tenant, priority, seq) WHERE state = 'queued';
CREATE INDEX jobs_leases ON jobs (lease_until) WHERE lease_until IS NOT NULL;
-- Retention: a tenant's finished jobs, oldest first.
CREATE INDEX jobs_retired ON jobs (tenant, retired_at) WHERE retired_at IS NOT NULL;

-- One row per tenant holding jobs: its counts and its turn in the round-robin.
CREATE TABLE tenants (
    tenant      TEXT    PRIMARY KEY,
    jobs        INTEGER NOT NULL,  -- rows in jobs
    waiting     INTEGER NOT NULL,  -- of which queued
    in_flight   INTEGER NOT NULL,  -- of which leased and not finished
    last_served INTEGER NOT NULL,  -- the turn it was last served in (0: not since it was idle)
    since       INTEGER NOT NULL   -- seq of the job that ended its idleness (ties of turns)
) WITHOUT ROWID;
CREATE INDEX tenants_turns ON tenants (last_served, since, tenant) WHERE waiting > 0;

-- Jobs forgotten after their retention time: GET answers 410 rather than 404.
CREATE TABLE tombstones (
    tenant TEXT    NOT NULL,
    id     TEXT    NOT NULL,
    at     INTEGER NOT NULL,  -- when the job was forgotten
    PRIMARY KEY (tenant, id)
) WITHOUT ROWID;
CREATE INDEX tombstones_at ON tombstones (at);

-- Workers as their last heartbeat left them.
CREATE TABLE workers (
    worker TEXT    PRIMARY KEY,
    at     INTEGER NOT NULL,  -- the heartbeat
    held   INTEGER NOT NULL,  -- leases held then
    status TEXT    NOT NULL   -- what the worker said of itself (JSON)
) WITHOUT ROWID;

-- Rate-limit token buckets.
CREATE TABLE buckets (
    name   TEXT    PRIMARY KEY,
    tokens REAL    NOT NULL,
    at     INTEGER NOT NULL  -- when last filled
) WITHOUT ROWID;

-- Values remembered until they expire (signed requests' replay window, secrets).
CREATE TABLE remembered (
    key     TEXT    PRIMARY KEY,
    value   TEXT    NOT NULL,
    expires INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX remembered_expires ON remembered (expires);

-- Written and emptied by the readiness check: can a page be written now?
CREATE TABLE probe (data BLOB);
";

fn sqlite(path: &Path) -> impl Fn(rusqlite::Error) -> OpenError + '_ {
    move |e| OpenError::Sqlite {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// Opens the write connection (creating the file if missing) with its settings, and applies
/// the migrations up to [`SCHEMA_VERSION`].
pub(crate) fn open_writer(config: &SqliteConfig) -> Result<Connection, OpenError> {
    let path = &config.path;
    let err = sqlite(path);
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(&err)?;
    settle_plans(&conn).map_err(&err)?;
    conn.busy_timeout(config.busy_timeout).map_err(&err)?;
    conn.set_prepared_statement_cache_capacity(64);
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(&err)?;
    if !(0..=SCHEMA_VERSION).contains(&version) {
        return Err(OpenError::TooNew {
            path: path.clone(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version == 0 {
        // Only possible before the first table: freed pages can then be given back to the
        // file system by `purge` (`PRAGMA incremental_vacuum`).
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
            .map_err(&err)?;
    }
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(&err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::Sqlite {
            path: path.clone(),
            reason: format!("cannot use write-ahead logging (journal_mode is {mode})"),
        });
    }
    conn.pragma_update(None, "synchronous", config.synchronous.pragma())
        .map_err(&err)?;
    // The checkpointer thread copies the log back; this is only its backstop.
    conn.pragma_update(
        None,
        "wal_autocheckpoint",
        crate::checkpoint::BACKSTOP_PAGES,
    )
    .map_err(&err)?;
    // The log is truncated back to 20 MiB after a checkpoint that emptied it.
    conn.pragma_update(None, "journal_size_limit", 20 * 1024 * 1024)
        .map_err(&err)?;
    // 16 MiB of pages: the hot part of the indexes of a few hundred thousand jobs.
    conn.pragma_update(None, "cache_size", -16_000)
        .map_err(&err)?;
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(&err)?;
    if let Some(max) = config.max_size {
        let page: i64 = conn
            .pragma_query_value(None, "page_size", |row| row.get(0))
            .map_err(&err)?;
        let pages = i64::try_from(max).unwrap_or(i64::MAX) / page.max(512);
        conn.pragma_update(None, "max_page_count", pages.max(1))
            .map_err(&err)?;
    }
    let done = usize::try_from(version).unwrap_or(0);
    for (from, migration) in MIGRATIONS.iter().enumerate().skip(done) {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        tx.execute_batch(migration).map_err(&err)?;
        tx.pragma_update(None, "user_version", from as i64 + 1)
            .map_err(&err)?;
        tx.commit().map_err(&err)?;
    }
    Ok(conn)
}

/// Plans made when a statement is prepared stay: the bundled SQLite has STAT4, which would
/// otherwise prepare a statement again each time a new value is bound to a range bound or a
/// `LIMIT` (every lease's `now`), the engine's hottest statements.
fn settle_plans(conn: &Connection) -> rusqlite::Result<bool> {
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
}

/// Opens the checkpointer's connection (it writes the database file, not the log).
pub(crate) fn open_checkpointer(config: &SqliteConfig) -> Result<Connection, OpenError> {
    let err = sqlite(&config.path);
    let conn = Connection::open_with_flags(
        &config.path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(&err)?;
    conn.busy_timeout(config.busy_timeout).map_err(&err)?;
    conn.pragma_update(None, "synchronous", config.synchronous.pragma())
        .map_err(&err)?;
    Ok(conn)
}

/// Opens a read-only connection with its settings.
pub(crate) fn open_reader(config: &SqliteConfig) -> Result<Connection, OpenError> {
    let err = sqlite(&config.path);
    let conn = Connection::open_with_flags(
        &config.path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(&err)?;
    settle_plans(&conn).map_err(&err)?;
    conn.busy_timeout(config.busy_timeout).map_err(&err)?;
    conn.set_prepared_statement_cache_capacity(32);
    conn.pragma_update(None, "cache_size", -8_000)
        .map_err(&err)?;
    Ok(conn)
}
