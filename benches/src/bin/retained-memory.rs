//! How much memory retained jobs cost in the in-memory engine, at the largest submission the
//! API accepts (asset path and notification URLs 1.5 KiB together), each job finished with its
//! two delivery records: the figure behind "100,000 retained jobs stay under N MB".
//!
//! `cargo run --release -p imgchkr-benches --bin retained-memory [JOBS]` prints the resident
//! memory before and after, and per job.

use std::time::Duration;

use imgchkr_core::engine::{Admission, Engine, LeaseRequest, WorkerId};
use imgchkr_core::submission::{MAX_PATH_LEN, MAX_STRINGS_LEN};
use imgchkr_core::{
    AssetPath, DeliveryRecord, DeliveryStatus, Event, Job, JobId, JobUpdate, MemoryEngine,
    NotificationUrls,
};
use time::OffsetDateTime;

/// The `imgchkr` binary's allocator, so the figure is the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Resident memory now, in bytes (`/proc/self/statm`).
fn resident() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn largest_job(tenant: &str) -> Job {
    // The path at its own limit, the three URLs sharing what is left of the total.
    let url_len = (MAX_STRINGS_LEN - MAX_PATH_LEN) / 3;
    let url = |event: &str| {
        let base = format!("https://hooks.example.com/{event}/");
        format!("{base}{}", "x".repeat(url_len - base.len()))
            .parse()
            .expect("a URL")
    };
    let mut job = Job::new(
        JobId::random(),
        AssetPath::Local {
            path: "p".repeat(MAX_PATH_LEN),
        },
        NotificationUrls {
            on_start: url("onStart"),
            on_success: url("onSuccess"),
            on_failure: url("onFailure"),
        },
    );
    job.tenant = tenant.to_owned();
    job
}

/// A job as clients send them: a short path, short callback URLs.
fn typical_job(tenant: &str) -> Job {
    let url = |event: &str| {
        format!("https://hooks.example.com/imgchkr/{event}")
            .parse()
            .expect("a URL")
    };
    let mut job = Job::new(
        JobId::random(),
        AssetPath::Local {
            path: "uploads/2026/12/01/photo-1234.jpg".into(),
        },
        NotificationUrls {
            on_start: url("onStart"),
            on_success: url("onSuccess"),
            on_failure: url("onFailure"),
        },
    );
    job.tenant = tenant.to_owned();
    job
}

fn main() {
    let jobs: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let typical = std::env::args().nth(2).as_deref() == Some("typical");
    let engine = MemoryEngine::new();
    let before = resident();
    let worker = WorkerId("w".into());
    let now = OffsetDateTime::now_utc();
    futures_executor::block_on(async {
        for _ in 0..jobs {
            let job = if typical {
                typical_job("acme")
            } else {
                largest_job("acme")
            };
            engine
                .submit(&job, Admission::new(u64::MAX, u64::MAX))
                .await
                .expect("submit");
            let request = LeaseRequest::new(worker.clone(), 1, now, now + Duration::from_secs(60));
            let leased = engine.lease(&request).await.expect("lease");
            let lease = &leased[0].lease;
            let mut updates = Vec::new();
            for event in [Event::OnStart, Event::OnSuccess] {
                let mut record =
                    DeliveryRecord::pending(event, job.notification_urls.get(event).clone());
                record.status = DeliveryStatus::Delivered;
                record.attempts = 1;
                record.http_status = Some(200);
                updates.push(JobUpdate::Delivery(record));
            }
            updates.push(JobUpdate::Verdict {
                errors: None,
                warnings: Vec::new(),
                at: now,
            });
            engine.finish(lease, &updates).await.expect("finish");
        }
    });
    let after = resident();
    let per_job = (after.saturating_sub(before)) as f64 / jobs as f64;
    let size = if typical { "a typical" } else { "the largest" };
    println!(
        "{jobs} retained jobs of {size} size: {:.1} MiB resident ({:.0} bytes per job; {:.0} MiB per 100,000)",
        (after - before) as f64 / (1 << 20) as f64,
        per_job,
        per_job * 100_000.0 / (1 << 20) as f64
    );
}
