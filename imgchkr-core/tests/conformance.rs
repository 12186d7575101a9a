//! The engine conformance suite against the in-memory engine.

use std::sync::Arc;

use imgchkr_core::{Engine, MemoryEngine};

#[test]
fn memory_engine_passes_the_conformance_suite() {
    futures_executor::block_on(imgchkr_core::testkit::run(&|| async {
        Arc::new(MemoryEngine::new()) as Arc<dyn Engine>
    }));
}
