//! The engine's health as this process last saw it: reachability (readiness) and the queue's
//! figures (metrics), read every [`CHECK_EVERY`] by a background task.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use imgchkr_core::Engine;
use imgchkr_core::engine::QueueStats;
use tracing::{info, warn};

use crate::metrics as m;

/// How often the engine is checked and its queue read.
pub const CHECK_EVERY: Duration = Duration::from_millis(500);

/// What the last check found.
#[derive(Debug, Default)]
pub struct EngineMonitor {
    /// Why the engine cannot be used, while it cannot.
    down: Mutex<Option<String>>,
    /// Jobs waiting, all tenants, as last read.
    waiting: AtomicU64,
}

impl EngineMonitor {
    /// Starts checking `engine` in the background (until the returned health is dropped).
    pub fn spawn(engine: Arc<dyn Engine>) -> Arc<EngineMonitor> {
        let health = Arc::new(EngineMonitor::default());
        tokio::spawn(watch(engine, Arc::downgrade(&health)));
        health
    }

    /// The reason the engine is unavailable, if it is.
    pub fn unavailable(&self) -> Option<String> {
        self.down
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Jobs waiting, as last read.
    pub fn waiting(&self) -> u64 {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Reads the queue's figures now (a scrape of /metrics), noting whether the engine
    /// answered.
    pub async fn refresh(&self, engine: &dyn Engine) {
        match engine.stats().await {
            Ok(stats) => self.saw_stats(&stats),
            Err(e) => self.saw(Some(e.to_string())),
        }
    }

    /// Notes a submission refused because the whole queue is full: not ready until the next
    /// check says otherwise.
    pub fn saw_full(&self, capacity: u64) {
        self.saw_waiting(self.waiting().max(capacity));
    }

    fn saw_stats(&self, stats: &QueueStats) {
        self.saw_waiting(stats.waiting);
        metrics::gauge!(m::QUEUE_IN_FLIGHT).set(stats.in_flight as f64);
    }

    fn saw_waiting(&self, waiting: u64) {
        self.waiting.store(waiting, Ordering::SeqCst);
        metrics::gauge!(m::QUEUE_DEPTH).set(waiting as f64);
    }

    fn saw(&self, down: Option<String>) {
        let mut current = self.down.lock().unwrap_or_else(PoisonError::into_inner);
        match (&*current, &down) {
            (None, Some(reason)) => warn!(reason = %reason, "engine unavailable"),
            (Some(_), None) => info!("engine available again"),
            _ => {}
        }
        metrics::gauge!(m::ENGINE_UP).set(if down.is_none() { 1.0 } else { 0.0 });
        *current = down;
    }
}

async fn watch(engine: Arc<dyn Engine>, health: Weak<EngineMonitor>) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let checked = engine.check().await;
        let stats = match &checked {
            Ok(()) => engine.stats().await.ok(),
            Err(_) => None,
        };
        let Some(health) = health.upgrade() else {
            return;
        };
        health.saw(checked.err().map(|e| e.to_string()));
        if let Some(stats) = stats {
            health.saw_stats(&stats);
        }
    }
}
