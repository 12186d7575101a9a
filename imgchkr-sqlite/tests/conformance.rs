//! The engine conformance suite of imgchkr-core, unchanged, against a fresh database file per
//! case.

use std::sync::{Arc, Mutex};

use imgchkr_core::Engine;
use imgchkr_sqlite::{SqliteConfig, SqliteEngine, Synchronous};
use tempfile::TempDir;

/// Runs the suite with engines opened under `synchronous`; the directories live until the end.
fn run(synchronous: Synchronous) {
    let dirs = Mutex::new(Vec::<TempDir>::new());
    let factory = || {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = SqliteConfig::new(dir.path().join("imgchkr.db")).synchronous(synchronous);
        let engine = SqliteEngine::open(&config).expect("a fresh database opens");
        dirs.lock().unwrap().push(dir);
        async move { Arc::new(engine) as Arc<dyn Engine> }
    };
    futures_executor::block_on(imgchkr_core::testkit::run(&factory));
}

#[test]
fn conformance_with_synchronous_normal() {
    run(Synchronous::Normal);
}

#[test]
fn conformance_with_synchronous_full() {
    run(Synchronous::Full);
}
