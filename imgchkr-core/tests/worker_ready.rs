//! A worker is running from the call to `Worker::run`, before its loop is first polled: a
//! service that spawns the loop and answers `/readyz` at once must not report it stopped.

use std::sync::Arc;
use std::time::Duration;

use imgchkr_core::engine::WorkerId;
use imgchkr_core::notify::BoxFuture;
use imgchkr_core::worker::{Runtime, Validator, Worker, WorkerConfig};
use imgchkr_core::{Job, MemoryEngine, RecordingNotifier, Report, ValidationError};

/// Never runs what it is given: the loop under test is never polled.
struct Idle;

impl Runtime for Idle {
    fn spawn(&self, _task: BoxFuture<'static, ()>) {}
    fn sleep(&self, _duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(std::future::pending())
    }
}

struct Unreachable;

impl Validator for Unreachable {
    fn validate(&self, _job: &Job) -> BoxFuture<'static, Report> {
        Box::pin(std::future::ready(Report::unreachable(
            ValidationError::NotFound {
                path: "never.jpg".into(),
            },
        )))
    }
}

#[test]
fn a_worker_is_running_from_the_call_to_run_not_from_its_first_poll() {
    let worker = Worker::new(
        Arc::new(MemoryEngine::new()),
        Arc::new(RecordingNotifier::new()),
        Arc::new(Unreachable),
        Arc::new(Idle),
        WorkerConfig::new(WorkerId("w".into()), 1),
    );
    assert!(!worker.is_running(), "not running before run");
    let looping = Arc::clone(&worker).run(std::future::pending(), Duration::ZERO);
    assert!(
        worker.is_running(),
        "running as soon as run is called, its loop not yet polled"
    );
    drop(looping);
}
