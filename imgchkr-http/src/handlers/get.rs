//! `GET /assets/image/<id>`.

use hyper::StatusCode;
use imgchkr_core::JobId;

use crate::app::App;
use crate::response::{self, Resp};

/// The job, if it exists, has not expired and belongs to `tenant`; otherwise 404 (a malformed
/// id included: no id that is not a job's is worth telling apart).
pub async fn get(app: &App, tenant: Option<&str>, raw_id: &str) -> Resp {
    let Ok(id) = raw_id.parse::<JobId>() else {
        return response::job_not_found();
    };
    match app.workers.backend.get(id).await {
        Ok(Some(job)) if job.tenant.as_deref() == tenant => response::json(StatusCode::OK, &job),
        Ok(_) => response::job_not_found(),
        Err(e) => crate::handlers::submit::store_error(&e),
    }
}
