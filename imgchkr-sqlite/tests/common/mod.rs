//! Helpers shared by the SQLite engine's tests.
#![allow(dead_code)] // each test binary uses a part

use std::path::Path;
use std::time::Duration;

use imgchkr_core::engine::{Admission, LeaseRequest, WorkerId};
use imgchkr_core::{AssetPath, Job, JobId, NotificationUrls, Priority};
use imgchkr_sqlite::{SqliteConfig, SqliteEngine};
use time::OffsetDateTime;

/// Room for every test's queue.
pub const ROOMY: Admission = Admission {
    capacity: 1_000_000,
    tenant_share: 1_000_000,
};

/// A queued job of `tenant`, created `now`.
pub fn job(tenant: &str) -> Job {
    let url = |event: &str| {
        format!("http://callback.example/{tenant}/{event}")
            .parse()
            .unwrap()
    };
    let mut job = Job::new(
        JobId::random(),
        AssetPath::Local {
            path: format!("images/{tenant}/photo.jpg"),
        },
        NotificationUrls {
            on_start: url("onStart"),
            on_success: url("onSuccess"),
            on_failure: url("onFailure"),
        },
    );
    job.tenant = tenant.to_owned();
    job.priority = Priority::Normal;
    job
}

/// A lease request of `worker` for `max` jobs at `now`, for a minute.
pub fn request(worker: &str, max: usize, now: OffsetDateTime) -> LeaseRequest {
    LeaseRequest::new(
        WorkerId(worker.to_owned()),
        max,
        now,
        now + Duration::from_secs(60),
    )
}

pub fn open(path: &Path) -> SqliteEngine {
    SqliteEngine::open(&SqliteConfig::new(path)).expect("the database opens")
}

/// Bytes of the database and its write-ahead log.
pub fn sizes(path: &Path) -> (u64, u64) {
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    (size(path), size(Path::new(&wal)))
}
