//! Single ownership of a database: an exclusive `flock` on `<path>.lock`, held as long as
//! the engine lives and released by the kernel when its process dies, `kill -9` included.
//!
//! Why a lock file and not SQLite's `locking_mode=EXCLUSIVE`: exclusive mode keeps the
//! write-ahead log index in the one connection's memory, so the engine's reader connections
//! could not read beside its writer; and a second process would only learn of the owner at
//! its first statement, as `database is locked` after its busy timeout. The lock file fails
//! the second opener at once, naming the owner's pid, and leaves SQLite's own locking as it
//! is (an operator's `sqlite3` shell can still read the history while the engine runs).

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

use crate::error::OpenError;

/// The held lock (released when dropped, or when the process dies).
#[derive(Debug)]
pub(crate) struct OwnerLock {
    _file: File,
}

/// `<db>.lock`.
pub(crate) fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the lock of `db`, without waiting: [`OpenError::Locked`] when another owner holds it.
pub(crate) fn acquire(db: &Path) -> Result<OwnerLock, OpenError> {
    let lock = lock_path(db);
    let io = |source| OpenError::Lock {
        lock: lock.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock)
        .map_err(io)?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => {
            let mut text = String::new();
            // The owner's pid is a courtesy for the message: unreadable, it is left out.
            let holder = file
                .read_to_string(&mut text)
                .ok()
                .and_then(|_| text.trim().parse().ok());
            return Err(OpenError::Locked {
                path: db.to_owned(),
                lock,
                holder,
            });
        }
        Err(e) => return Err(io(e.into())),
    }
    // Ours now: say who holds it.
    file.set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| writeln!(file, "{}", std::process::id()))
        .map_err(io)?;
    Ok(OwnerLock { _file: file })
}
