//! Core's [`Runtime`] on Tokio.

use std::time::Duration;

use imgchkr_core::notify::BoxFuture;
use imgchkr_core::worker::Runtime;

/// Spawns on, and sleeps with, the current Tokio runtime.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tokio;

impl Runtime for Tokio {
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        tokio::spawn(task);
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}
