//! `POST /assets/image`: decode, vet, store, enqueue, answer 202. Every refusal happens
//! before anything is queued or sent.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION, RETRY_AFTER};
use hyper::{Request, StatusCode};
use imgchkr_core::store::Inserted;
use imgchkr_core::{Event, FieldErrors, Job, JobId, StoreError, Submission};
use serde_json::json;
use uuid::Uuid;

use crate::app::App;
use crate::metrics as m;
use crate::response::{self, Resp};

/// Namespace of ids derived from an `Idempotency-Key` (UUID v5 of `tenant \n key`).
const IDEMPOTENCY_NAMESPACE: Uuid = Uuid::from_u128(0x6b1f_3c2e_9a4d_4e0b_8f7a_2d5c_1e9b_0a37);

/// Longest accepted `Idempotency-Key`.
const MAX_KEY_LEN: usize = 255;

/// Handles a submission from `tenant`.
pub async fn submit(app: &App, tenant: Option<String>, request: Request<Incoming>) -> Resp {
    if let Err(refusal) = check_content_type(request.headers()) {
        return *refusal;
    }
    let key = match idempotency_key(request.headers()) {
        Ok(key) => key.map(str::to_owned),
        Err(refusal) => return *refusal,
    };
    let body = match read_body(app, request).await {
        Ok(body) => body,
        Err(refusal) => return *refusal,
    };
    let submission = match Submission::from_json(&body, &app.locations) {
        Ok(submission) => submission,
        Err(errors) => return response::errors(StatusCode::BAD_REQUEST, &errors),
    };
    if let Err(errors) = check_destinations(app, &submission).await {
        return response::errors(StatusCode::BAD_REQUEST, &errors);
    }

    let id = submission
        .id
        .or_else(|| key.map(|key| derived_id(tenant.as_deref(), &key)))
        .unwrap_or_else(JobId::random);
    let queue_tenant = tenant.clone().unwrap_or_default();
    let backend = &app.workers.backend;
    match backend.has_room(&queue_tenant).await {
        Ok(true) => {}
        Ok(false) => {
            // A resubmission of a known job still gets its answer when the queue is full.
            return match backend.get(id).await {
                Ok(Some(existing)) => resubmitted(&existing, &submission, tenant.as_deref()),
                Ok(None) => queue_full(),
                Err(e) => store_error(&e),
            };
        }
        Err(e) => return store_error(&e),
    }

    let mut job = Job::new(
        id,
        submission.asset_path.clone(),
        submission.notification_urls.clone(),
    );
    job.tenant = tenant.clone();
    match backend.insert(job).await {
        Ok(Inserted::New) => {}
        Ok(Inserted::Existing(existing)) => {
            return resubmitted(&existing, &submission, tenant.as_deref());
        }
        Err(e) => return store_error(&e),
        // A store kind this server does not know: refuse rather than guess.
        Ok(_) => return queue_full(),
    }
    if let Err(e) = backend.push(id, &queue_tenant).await {
        // Nothing queued: the job must not be visible either.
        if let Err(removal) = backend.remove(id).await {
            tracing::warn!(job_id = %id, error = %removal, "an unqueued job could not be removed");
        }
        return store_error(&e);
    }
    accepted(id)
}

fn accepted(id: JobId) -> Resp {
    let mut response = response::json(StatusCode::ACCEPTED, &json!({"id": id, "state": "queued"}));
    if let Ok(location) = HeaderValue::from_str(&format!("/assets/image/{id}")) {
        response.headers_mut().insert(LOCATION, location);
    }
    response
}

/// 200 with the job when the resubmission matches it, else 409.
fn resubmitted(existing: &Job, submission: &Submission, tenant: Option<&str>) -> Resp {
    let same = existing.tenant.as_deref() == tenant
        && existing.asset_path == submission.asset_path
        && existing.notification_urls == submission.notification_urls;
    if same {
        response::json(StatusCode::OK, existing)
    } else {
        response::error(
            StatusCode::CONFLICT,
            "id",
            "A different submission already uses this id.",
        )
    }
}

fn queue_full() -> Resp {
    metrics::counter!(m::QUEUE_REJECTIONS).increment(1);
    let mut response = response::error(
        StatusCode::SERVICE_UNAVAILABLE,
        "queue",
        "The job queue is full; retry later.",
    );
    response.headers_mut().insert(
        RETRY_AFTER,
        HeaderValue::from(crate::queue::RETRY_AFTER_SECS),
    );
    response
}

/// 503 for a store or queue failure: full, shutting down, or the backend unreachable.
pub fn store_error(e: &StoreError) -> Resp {
    match e {
        StoreError::Full { .. } => queue_full(),
        StoreError::Unavailable(reason) => {
            tracing::warn!(error = %reason, "job backend unavailable");
            let mut response = response::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store",
                "The job store is unavailable; retry later.",
            );
            response.headers_mut().insert(
                RETRY_AFTER,
                HeaderValue::from(crate::queue::RETRY_AFTER_SECS),
            );
            response
        }
        _ => unavailable(),
    }
}

fn unavailable() -> Resp {
    let mut response = response::error(
        StatusCode::SERVICE_UNAVAILABLE,
        "queue",
        "The service is shutting down; retry later.",
    );
    response.headers_mut().insert(
        RETRY_AFTER,
        HeaderValue::from(crate::queue::RETRY_AFTER_SECS),
    );
    response
}

/// `application/json`, any case, parameters (charset) allowed.
fn check_content_type(headers: &HeaderMap) -> Result<(), Box<Resp>> {
    let value = headers.get(CONTENT_TYPE).map(|v| v.to_str());
    let essence = match value {
        Some(Ok(v)) => v.split(';').next().unwrap_or("").trim(),
        Some(Err(_)) => "",
        None => {
            return Err(unsupported("Content-Type is required: application/json."));
        }
    };
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(unsupported(format!(
            "Unsupported media type \"{}\"; expected application/json.",
            essence.chars().take(100).collect::<String>()
        )))
    }
}

fn unsupported(text: impl Into<String>) -> Box<Resp> {
    Box::new(response::error(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "Content-Type",
        text,
    ))
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, Box<Resp>> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key) if !key.is_empty() && key.len() <= MAX_KEY_LEN => Ok(Some(key)),
        _ => Err(Box::new(response::error(
            StatusCode::BAD_REQUEST,
            "Idempotency-Key",
            format!("Must be 1 to {MAX_KEY_LEN} visible ASCII characters."),
        ))),
    }
}

/// The same key from the same tenant always names the same job; tenants never collide.
fn derived_id(tenant: Option<&str>, key: &str) -> JobId {
    let name = format!("{}\n{key}", tenant.unwrap_or(""));
    JobId(Uuid::new_v5(&IDEMPOTENCY_NAMESPACE, name.as_bytes()))
}

/// Reads at most `max_body_bytes`, within the body timeout: never buffers more than the limit.
async fn read_body(app: &App, request: Request<Incoming>) -> Result<Bytes, Box<Resp>> {
    let limit = app.max_body_bytes;
    let too_large = || {
        Box::new(response::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body",
            format!("Request body exceeds maximum ({limit} bytes)."),
        ))
    };
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    let body = Limited::new(request.into_body(), limit);
    match tokio::time::timeout(app.body_read_timeout, body.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Ok(Err(_)) => Err(Box::new(response::error(
            StatusCode::BAD_REQUEST,
            "body",
            "The request body could not be read.",
        ))),
        Err(_) => Err(Box::new(response::error(
            StatusCode::REQUEST_TIMEOUT,
            "body",
            format!(
                "The request body did not arrive within {}.",
                human(app.body_read_timeout)
            ),
        ))),
    }
}

fn human(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

/// Asks the remote sources whether a `url` or `s3` asset may be read, and the notifier
/// whether it would send to each URL; refusals name the field.
async fn check_destinations(app: &App, submission: &Submission) -> Result<(), FieldErrors> {
    let mut errors = FieldErrors::default();
    if let Some(remote) = &app.workers.remote
        && let Err(text) = remote.check_asset(&submission.asset_path).await
    {
        errors.add("assetPath.path", text);
    }
    for event in [Event::OnStart, Event::OnSuccess, Event::OnFailure] {
        let url = submission.notification_urls.get(event);
        if let Err(text) = app.workers.webhooks.check_destination(url).await {
            errors.add(format!("notifications.{}", event.name()), text);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}
