//! [`Meter`]: the bytes and reads of one asset, kept outside the fetch so a timeout does not
//! lose them.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::error::FetchError;

/// Bytes received and range reads made for one asset.
#[derive(Debug, Default)]
pub(crate) struct Meter {
    bytes: AtomicU64,
    reads: AtomicU32,
}

impl Meter {
    pub(crate) fn add_bytes(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts a read; refuses one past `max`.
    pub(crate) fn start_read(&self, max: u32) -> Result<(), FetchError> {
        let before = self.reads.fetch_add(1, Ordering::Relaxed);
        if before >= max {
            return Err(FetchError::unreachable(format!(
                "the header needs more than {max} range reads"
            )));
        }
        Ok(())
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn reads(&self) -> u32 {
        self.reads.load(Ordering::Relaxed)
    }
}
