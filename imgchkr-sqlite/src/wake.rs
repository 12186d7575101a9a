//! Waking idle workers of this process when jobs are queued or released: the writer counts
//! what it committed, and `work_available` resolves once something was committed since the
//! last lease.

use std::sync::atomic::{AtomicU64, Ordering};

use event_listener::{Event, EventListener};

#[derive(Default)]
pub(crate) struct Wake {
    event: Event,
    /// Jobs queued or released so far, and as many as the last lease had seen.
    pushes: AtomicU64,
    seen: AtomicU64,
}

impl Wake {
    /// `count` jobs were committed queued or released.
    pub(crate) fn notify(&self, count: usize) {
        if count > 0 {
            self.pushes.fetch_add(count as u64, Ordering::SeqCst);
            self.event.notify(count);
        }
    }

    /// A lease is about to look: what was pushed until now is seen.
    pub(crate) fn seen(&self) {
        self.seen
            .store(self.pushes.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    /// `None` when something was pushed since the last lease; else a listener for the next
    /// push (taken before looking, so no push is missed).
    pub(crate) fn listen(&self) -> Option<EventListener> {
        let listener = self.event.listen();
        (self.pushes.load(Ordering::SeqCst) == self.seen.load(Ordering::SeqCst)).then_some(listener)
    }
}
