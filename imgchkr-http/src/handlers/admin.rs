//! `GET /admin/dashboard` and `GET /admin/jobs/<id>`: the JSON the dashboard reads, usable by
//! scripts (behind the admin token, [`crate::admin::Admin`]).

use hyper::StatusCode;
use imgchkr_core::engine::{ListQuery, Lookup};
use imgchkr_core::{JobId, JobKey, JobState};
use serde_json::json;
use time::OffsetDateTime;

use crate::admin::{Dashboard, EngineState, LATEST_FAILURES};
use crate::app::App;
use crate::handlers::submit::store_error;
use crate::response::{self, Resp};

/// The dashboard's figures: the queue, the workers and their recent activity, the latest
/// failures. 503 when the engine cannot be read.
pub async fn dashboard(app: &App) -> Resp {
    let stats = match app.engine.stats().await {
        Ok(stats) => stats,
        Err(e) => return store_error(&e),
    };
    let mut failed = ListQuery::all(LATEST_FAILURES);
    failed.state = Some(JobState::Failed);
    let failures = match app.engine.list(&failed).await {
        Ok(jobs) => jobs,
        Err(e) => return store_error(&e),
    };
    let reason = app.monitor.unavailable();
    let engine = EngineState {
        available: reason.is_none(),
        reason,
    };
    let dashboard = Dashboard::build(
        &app.admin,
        OffsetDateTime::now_utc(),
        engine,
        app.admission.capacity,
        &stats,
        failures,
    );
    response::json(StatusCode::OK, &dashboard)
}

/// A job by id, under `?tenant=` or, without one, under every tenant known (no tenant, the
/// configured ones, those with jobs queued or in flight): `{"jobs": [...]}` with each match;
/// 404 when none has it, 410 when it expired; 400 for an id that is not a UUID.
pub async fn find_job(app: &App, raw_id: &str, query: Option<&str>) -> Resp {
    let Ok(id) = raw_id.parse::<JobId>() else {
        return response::error(StatusCode::BAD_REQUEST, "id", "Must be a job id (a UUID).");
    };
    let asked = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "tenant")
        .map(|(_, v)| v.into_owned());
    let tenants = match asked {
        Some(tenant) => vec![tenant],
        None => {
            let mut tenants = vec![String::new()];
            for name in app.tenants.current().names() {
                if !tenants.iter().any(|t| t == name) {
                    tenants.push(name.to_owned());
                }
            }
            match app.engine.stats().await {
                Ok(stats) => {
                    for (tenant, _, _) in stats.tenants {
                        if !tenants.contains(&tenant) {
                            tenants.push(tenant);
                        }
                    }
                }
                Err(e) => return store_error(&e),
            }
            tenants
        }
    };
    let mut jobs = Vec::new();
    let mut expired = false;
    for tenant in &tenants {
        match app.engine.get(&JobKey::new(tenant.as_str(), id)).await {
            Ok(Lookup::Found(job)) => jobs.push(*job),
            Ok(Lookup::Expired) => expired = true,
            Ok(_) => {}
            Err(e) => return store_error(&e),
        }
    }
    if !jobs.is_empty() {
        response::json(StatusCode::OK, &json!({ "jobs": jobs }))
    } else if expired {
        response::error(StatusCode::GONE, "id", "Job expired.")
    } else {
        response::job_not_found()
    }
}
