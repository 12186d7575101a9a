//! How a [`SqliteEngine`](crate::SqliteEngine) is opened: the file, how hard each commit is
//! pushed to the disk, and the threads serving it.

use std::path::PathBuf;
use std::time::Duration;

/// How far a commit is pushed towards the disk before [`submit`](imgchkr_core::Engine::submit)
/// (or any write) answers: SQLite's `PRAGMA synchronous`, in WAL mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// `synchronous=NORMAL` (the default). Each commit is written to the write-ahead log (handed
    /// to the operating system) before it is answered; the log is `fsync`ed only at
    /// checkpoints. Every answered write survives the process crashing or being killed
    /// (`kill -9`) at any moment, the operating system keeping what it was handed. A power loss
    /// or kernel crash may lose the last transactions answered before it (never corrupting the
    /// file): the jobs accepted in the last moments before the machine went down.
    #[default]
    Normal,
    /// `synchronous=FULL`. The write-ahead log is also `fsync`ed at each commit before it is
    /// answered: every answered write survives a power loss or kernel crash too, on a disk that
    /// honours flushes. Costs one `fsync` per transaction; group commit shares it among all the
    /// writes that arrive together.
    Full,
}

impl Synchronous {
    pub(crate) fn pragma(self) -> &'static str {
        match self {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

/// How to open a [`SqliteEngine`](crate::SqliteEngine).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteConfig {
    /// The database file (created if missing). Its directory also holds `<path>-wal` and
    /// `<path>-shm` (SQLite's write-ahead log and its index) and `<path>.lock` (the owner's
    /// lock): it must be on a local file system.
    pub path: PathBuf,
    /// How durable each commit is before it is answered (see [`Synchronous`]).
    pub synchronous: Synchronous,
    /// Reader threads, each with its own connection, serving `get`, `list` and `stats`
    /// (at least 1).
    pub readers: usize,
    /// How long a statement waits for a lock held by another connection (an operator's
    /// `sqlite3` shell in a write transaction) before failing as unavailable.
    pub busy_timeout: Duration,
    /// A cap on the database file's size in bytes: writes past it fail as on a full disk
    /// (`database or disk is full`). `None`: the disk is the limit.
    pub max_size: Option<u64>,
    /// The most writes committed together in one transaction.
    pub max_group: usize,
}

impl SqliteConfig {
    /// The file at `path` with `synchronous=NORMAL`, two readers, a 5 s busy timeout, no size
    /// cap, and groups of up to 1024 writes.
    pub fn new(path: impl Into<PathBuf>) -> SqliteConfig {
        SqliteConfig {
            path: path.into(),
            synchronous: Synchronous::Normal,
            readers: 2,
            busy_timeout: Duration::from_secs(5),
            max_size: None,
            max_group: 1024,
        }
    }

    /// The configuration of a store URL `sqlite:PATH` (`PATH` relative to the working
    /// directory, or absolute), optionally `?synchronous=full` (or `normal`, the default);
    /// `None` for any other URL, an empty path or another parameter.
    ///
    /// ```
    /// # use imgchkr_sqlite::{SqliteConfig, Synchronous};
    /// let config = SqliteConfig::from_url("sqlite:imgchkr.db").unwrap();
    /// assert_eq!(config.path.to_str(), Some("imgchkr.db"));
    /// assert_eq!(config.synchronous, Synchronous::Normal);
    /// let strict = SqliteConfig::from_url("sqlite:/var/lib/imgchkr.db?synchronous=full").unwrap();
    /// assert_eq!(strict.synchronous, Synchronous::Full);
    /// assert!(SqliteConfig::from_url("sqlite:a.db?sync=off").is_none());
    /// assert!(SqliteConfig::from_url("redis://localhost").is_none());
    /// ```
    pub fn from_url(url: &str) -> Option<SqliteConfig> {
        let rest = url.strip_prefix("sqlite:")?;
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        if path.is_empty() {
            return None;
        }
        let synchronous = match query {
            None | Some("synchronous=normal") => Synchronous::Normal,
            Some("synchronous=full") => Synchronous::Full,
            Some(_) => return None,
        };
        Some(SqliteConfig::new(path).synchronous(synchronous))
    }

    /// The same with `synchronous`.
    pub fn synchronous(mut self, synchronous: Synchronous) -> SqliteConfig {
        self.synchronous = synchronous;
        self
    }
}
