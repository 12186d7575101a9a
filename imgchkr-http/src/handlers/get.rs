//! `GET /assets/image/<id>` and `DELETE /assets/image/<id>` (cancel).

use hyper::StatusCode;
use imgchkr_core::engine::{Cancel, Lookup};
use imgchkr_core::{JobId, JobKey};
use time::OffsetDateTime;

use crate::app::App;
use crate::handlers::submit::store_error;
use crate::response::{self, Resp};

/// The caller's job: 200 with it, 410 if it expired, 404 if there never was one for this
/// tenant (a malformed id included: no id that is not a job's is worth telling apart).
pub async fn get(app: &App, tenant: &str, raw_id: &str) -> Resp {
    let Ok(id) = raw_id.parse::<JobId>() else {
        return response::job_not_found();
    };
    match app.engine.get(&JobKey::new(tenant, id)).await {
        Ok(Lookup::Found(job)) => response::json(StatusCode::OK, &*job),
        Ok(Lookup::Expired) => expired(),
        Ok(_) => response::job_not_found(),
        Err(e) => store_error(&e),
    }
}

/// Cancels the caller's queued job: 200 with it, 409 if it is not queued, 410 expired, 404.
pub async fn cancel(app: &App, tenant: &str, raw_id: &str) -> Resp {
    let Ok(id) = raw_id.parse::<JobId>() else {
        return response::job_not_found();
    };
    let key = JobKey::new(tenant, id);
    match app.engine.cancel(&key, OffsetDateTime::now_utc()).await {
        Ok(Cancel::Cancelled(job)) => response::json(StatusCode::OK, &*job),
        Ok(Cancel::NotQueued(job)) => response::error(
            StatusCode::CONFLICT,
            "state",
            format!(
                "Job is {}; only a queued job can be cancelled.",
                job.state.name()
            ),
        ),
        Ok(Cancel::Expired) => expired(),
        Ok(_) => response::job_not_found(),
        Err(e) => store_error(&e),
    }
}

fn expired() -> Resp {
    response::error(StatusCode::GONE, "id", "Job expired.")
}
