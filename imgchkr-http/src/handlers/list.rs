//! `GET /assets/image` and `GET /assets/`: recent jobs, newest first, a page at a time.

use hyper::StatusCode;
use imgchkr_core::engine::ListQuery;
use imgchkr_core::{FieldErrors, Job, JobId, JobKey, JobState};

use crate::app::App;
use crate::response::{self, Resp};

/// Page size when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 50;
/// Largest page.
pub const MAX_LIMIT: usize = 1000;

/// The most bytes one page of a listing takes (the jobs that fit; `next` goes on).
pub const MAX_PAGE_BYTES: usize = 1 << 20;

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
    let more = jobs.len() > limit;
    jobs.truncate(limit);
    response::json_bytes(StatusCode::OK, page_body(&jobs, more, MAX_PAGE_BYTES))
}

/// `{"jobs": [...], "next": ...}` of `jobs`, as many as fit in `max_bytes` (at least one):
/// a page stays bounded in bytes whatever `limit` asked, and `next` goes on from the last
/// job shown when some did not fit (or `more` came after them).
fn page_body(jobs: &[Job], more: bool, max_bytes: usize) -> Vec<u8> {
    let mut body = b"{\"jobs\":[".to_vec();
    let mut shown = 0;
    for job in jobs {
        let Ok(json) = serde_json::to_vec(job) else {
            continue;
        };
        if shown > 0 && body.len() + json.len() + 64 > max_bytes {
            break;
        }
        if shown > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&json);
        shown += 1;
    }
    let next = (more || shown < jobs.len())
        .then(|| jobs.get(shown.wrapping_sub(1)).map(|job| job.id))
        .flatten();
    body.extend_from_slice(b"],\"next\":");
    match next {
        Some(id) => body.extend_from_slice(format!("\"{id}\"").as_bytes()),
        None => body.extend_from_slice(b"null"),
    }
    body.push(b'}');
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        let url: url::Url = "http://cb.example/x".parse().unwrap();
        Job::new(
            JobId::random(),
            imgchkr_core::AssetPath::Local {
                path: "p".repeat(500),
            },
            imgchkr_core::NotificationUrls {
                on_start: url.clone(),
                on_success: url.clone(),
                on_failure: url,
            },
        )
    }

    #[test]
    fn pages_are_bounded_in_bytes_and_go_on_where_they_stopped() {
        let jobs: Vec<Job> = (0..50).map(|_| job()).collect();
        let body = page_body(&jobs, false, 8 * 1024);
        assert!(body.len() <= 8 * 1024, "{}", body.len());
        let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let shown = page["jobs"].as_array().unwrap().len();
        assert!((1..50).contains(&shown), "{shown}");
        assert_eq!(page["next"], jobs[shown - 1].id.to_string());
        // All fit: no next unless more came after.
        let page: serde_json::Value =
            serde_json::from_slice(&page_body(&jobs[..2], false, 1 << 20)).unwrap();
        assert_eq!(page["next"], serde_json::Value::Null);
        let page: serde_json::Value =
            serde_json::from_slice(&page_body(&jobs[..2], true, 1 << 20)).unwrap();
        assert_eq!(page["next"], jobs[1].id.to_string());
        let empty: serde_json::Value = serde_json::from_slice(&page_body(&[], false, 10)).unwrap();
        assert_eq!(empty, serde_json::json!({"jobs": [], "next": null}));
    }
}
