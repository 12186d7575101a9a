//! Why opening fails ([`OpenError`]), and how an operation's failure is told apart: refused
//! before writing, or aborting its transaction.

use std::path::PathBuf;

use imgchkr_core::StoreError;

/// Why [`SqliteEngine::open`](crate::SqliteEngine::open) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Another engine owns the database: another process (or another engine in this one)
    /// holds its lock file. The SQLite store is single-node: one process at a time.
    #[error(
        "{}: in use by another process{} (its lock {} is held); the sqlite: store has one owner at a time: stop that process, or use another file",
        path.display(),
        holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default(),
        lock.display()
    )]
    Locked {
        /// The database.
        path: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// The owner's process id, as it wrote it in the lock file.
        holder: Option<u32>,
    },
    /// The lock file cannot be created or locked.
    #[error("{}: {source}", lock.display())]
    Lock {
        /// The lock file.
        lock: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The database was written by a newer imgchkr (migrations only go forward).
    #[error(
        "{}: schema version {found} is newer than this build's {supported}: run a newer imgchkr",
        path.display()
    )]
    TooNew {
        /// The database.
        path: PathBuf,
        /// Its schema version (`PRAGMA user_version`).
        found: i64,
        /// The newest this build knows.
        supported: i64,
    },
    /// SQLite cannot open, configure or migrate the file (not a database, a directory that
    /// cannot be written, a read-only file that needs migrating…).
    #[error("{}: {reason}", path.display())]
    Sqlite {
        /// The database.
        path: PathBuf,
        /// SQLite's reason.
        reason: String,
    },
}

/// How an operation of the engine failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Refused before writing anything (a full queue): answered as is, and the transaction it
    /// ran in goes on.
    Refused(StoreError),
    /// A record that cannot be read back: the transaction is rolled back.
    Corrupt(StoreError),
    /// SQLite failed (disk full, read-only, I/O): the transaction is rolled back.
    Sql(rusqlite::Error),
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Failure {
        Failure::Sql(e)
    }
}

impl Failure {
    /// The caller's error, SQLite's reasons prefixed with the database's name.
    pub(crate) fn into_store(self, label: &str) -> StoreError {
        match self {
            Failure::Refused(e) | Failure::Corrupt(e) => e,
            Failure::Sql(e) => unavailable(label, &e),
        }
    }
}

/// SQLite's reason as an unavailable store: `<file>: database or disk is full`.
pub(crate) fn unavailable(label: &str, e: &rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("{label}: {e}"))
}

/// A record of `key` that cannot be decoded.
pub(crate) fn corrupt(key: impl std::fmt::Display, reason: impl std::fmt::Display) -> Failure {
    Failure::Corrupt(StoreError::Corrupt {
        key: key.to_string(),
        reason: reason.to_string(),
    })
}
