//! Which shards may have work for this process: the shards' own wake-ups, kept across calls,
//! and the flags a lease reads to ask only the shards worth asking.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use crate::engine::Engine;
use crate::notify::BoxFuture;

/// How often a lease asks every shard, whatever the wake-ups said (by the callers' clock):
/// leases that expired on a quiet shard are taken over within this much more.
const SWEEP_EVERY_MS: i64 = 1_000;

/// The wake-up state of N shards.
pub(super) struct Signals {
    /// Each shard's wait for work, kept from one poll to the next until it resolves: dropping
    /// a shard's wait when another shard's resolved first could leave a wait behind on its
    /// server (Redis: a `BLPOP` still blocked, which would swallow the next wake-up).
    waits: Mutex<Vec<Option<BoxFuture<'static, ()>>>>,
    /// Per shard: whether it may have work for this process (its wait resolved, a job was
    /// submitted to it here, or its last lease was full), cleared when a lease asks it. A
    /// lease asks only these, so each shard sees lease calls in proportion to its own work,
    /// not to every shard's wake-ups.
    ready: Vec<AtomicBool>,
    /// When (the callers' clock, Unix ms) a lease last asked every shard.
    swept: AtomicI64,
}

impl Signals {
    /// `n` shards, each assumed to have work until asked.
    pub(super) fn new(n: usize) -> Signals {
        Signals {
            waits: Mutex::new((0..n).map(|_| None).collect()),
            ready: (0..n).map(|_| AtomicBool::new(true)).collect(),
            swept: AtomicI64::new(i64::MIN),
        }
    }

    /// Shard `i` may have work (a submission went there, or its lease came back full).
    pub(super) fn mark(&self, i: usize) {
        self.ready[i].store(true, Ordering::Relaxed);
    }

    /// Whether shard `i` may have work, clearing the flag: asked now, a wake-up during the
    /// call sets it again.
    pub(super) fn take(&self, i: usize) -> bool {
        self.ready[i].swap(false, Ordering::Relaxed)
    }

    /// Whether a lease at `now_ms` should ask every shard: once every [`SWEEP_EVERY_MS`] (a
    /// clock that went back counts as due), or when no shard is known to have work.
    pub(super) fn ask_all(&self, now_ms: i64) -> bool {
        let last = self.swept.load(Ordering::Relaxed);
        let sweep = now_ms >= last.saturating_add(SWEEP_EVERY_MS) || now_ms < last;
        if sweep {
            self.swept.store(now_ms, Ordering::Relaxed);
        }
        sweep || !self.ready.iter().any(|r| r.load(Ordering::Relaxed))
    }

    /// Ready when any of `shards`' waits resolved (marking those shards); the others' waits
    /// are kept for the next poll.
    pub(super) fn poll_any(&self, shards: &[Arc<dyn Engine>], cx: &mut Context<'_>) -> Poll<()> {
        let mut waits = self.waits.lock().unwrap_or_else(PoisonError::into_inner);
        let mut woke = false;
        for (i, slot) in waits.iter_mut().enumerate() {
            let wait = slot.get_or_insert_with(|| {
                let shard = Arc::clone(&shards[i]);
                Box::pin(async move { shard.work_available().await })
            });
            if wait.as_mut().poll(cx).is_ready() {
                *slot = None;
                self.mark(i);
                woke = true;
            }
        }
        if woke { Poll::Ready(()) } else { Poll::Pending }
    }
}
