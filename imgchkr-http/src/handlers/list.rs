//! `GET /assets/image` and `GET /assets/`: recent jobs, newest first, a page at a time.

use hyper::StatusCode;
use imgchkr_core::engine::ListQuery;
use imgchkr_core::{FieldErrors, Job, JobId, JobKey, JobState};
use serde::Serialize;

use crate::app::App;
use crate::response::{self, Resp};

/// Page size when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 50;
/// Largest page.
pub const MAX_LIMIT: usize = 1000;

#[derive(Serialize)]
struct Page {
    jobs: Vec<Job>,
    /// The `cursor` of the next page, `null` on the last.
    next: Option<JobId>,
}

/// `?state=failed&limit=50&cursor=<id>`: `{"jobs": [...], "next": "<id>" | null}`.
pub async fn list(app: &App, tenant: &str, query: Option<&str>) -> Resp {
    let mut errors = FieldErrors::default();
    let mut page = ListQuery::tenant(tenant, DEFAULT_LIMIT);
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*key {
            "state" => match value.parse::<JobState>() {
                Ok(state) => page.state = Some(state),
                Err(()) => errors.add(
                    "state",
                    "Must be one of: queued, started, success, failed, cancelled.",
                ),
            },
            "limit" => match value.parse::<usize>() {
                Ok(limit @ 1..=MAX_LIMIT) => page.limit = limit,
                _ => errors.add(
                    "limit",
                    format!("Must be an integer from 1 to {MAX_LIMIT}."),
                ),
            },
            "cursor" => match value.parse::<JobId>() {
                Ok(id) => page.before = Some(JobKey::new(tenant, id)),
                Err(_) => errors.add("cursor", "Must be a job id from a previous page's next."),
            },
            // Unknown parameters are ignored, as clients ignore unknown fields.
            _ => {}
        }
    }
    if !errors.is_empty() {
        return response::errors(StatusCode::BAD_REQUEST, &errors);
    }
    let limit = page.limit;
    // One extra tells whether another page exists.
    page.limit += 1;
    let mut jobs = match app.engine.list(&page).await {
        Ok(jobs) => jobs,
        Err(e) => return crate::handlers::submit::store_error(&e),
    };
    let next = (jobs.len() > limit).then(|| {
        jobs.truncate(limit);
        jobs.last().map(|job| job.id)
    });
    response::json(
        StatusCode::OK,
        &Page {
            jobs,
            next: next.flatten(),
        },
    )
}
