//! `POST /assets/image`: decode, vet, admit (record and enqueue in one engine step), answer.
//! Every refusal happens before anything is queued or sent.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION, RETRY_AFTER};
use hyper::{Request, StatusCode};
use imgchkr_core::admission::{self, Admitted};
use imgchkr_core::engine::Full;
use imgchkr_core::engine::{Admission, Lookup, Token};
use imgchkr_core::{AssetPath, Event, FieldErrors, JobId, JobKey, StoreError, Submission};
use imgchkr_egress::check_url;
use serde_json::json;
use time::OffsetDateTime;

use crate::app::App;
use crate::metrics as m;
use crate::response::{self, Resp};
use crate::signing::Signed;
use crate::tenants::Tenant;

/// How long a tenant allowlist's DNS check of a host name may take at submission.
const TENANT_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest accepted `Idempotency-Key`.
const MAX_KEY_LEN: usize = 255;

/// `Retry-After` on a 503, in seconds.
pub const RETRY_AFTER_SECS: u32 = 1;

/// Handles a submission from `tenant` (the anonymous one without auth).
pub async fn submit(app: &App, tenant: &Tenant, request: Request<Incoming>) -> Resp {
    if let Err(refusal) = check_content_type(request.headers()) {
        return *refusal;
    }
    let key = match idempotency_key(request.headers()) {
        Ok(key) => key.map(str::to_owned),
        Err(refusal) => return *refusal,
    };
    let now = OffsetDateTime::now_utc();
    let signed = match tenant.request_secrets.is_empty() {
        true => None,
        false => match Signed::from_headers(request.headers(), now.unix_timestamp()) {
            Ok(signed) => Some(signed),
            Err(refusal) => return *refusal,
        },
    };
    if let Err(refusal) = rate_limit(app, tenant, now).await {
        return *refusal;
    }
    let wait = preferred_wait(request.headers()).map(|wait| wait.min(app.max_wait));
    let body = match read_body(app, request).await {
        Ok(body) => body,
        Err(refusal) => return *refusal,
    };
    if let Some(signed) = &signed
        && let Err(refusal) = signed.verify(&tenant.request_secrets, &body)
    {
        return *refusal;
    }
    let locations = tenant.locations.as_deref().unwrap_or(&app.locations);
    let submission = match Submission::from_json(&body, locations) {
        Ok(submission) => submission,
        Err(errors) => return response::errors(StatusCode::BAD_REQUEST, &errors),
    };
    if let Err(errors) = check_destinations(app, tenant, &submission).await {
        return response::errors(StatusCode::BAD_REQUEST, &errors);
    }
    if app.closing.load(std::sync::atomic::Ordering::SeqCst) {
        return store_error(&StoreError::Closed);
    }

    let name = tenant.name.as_str();
    // A signed request's id names its job, as an Idempotency-Key would: a replay within
    // the window finds the job it made (in every API process: the engine answers).
    let key = key.or_else(|| signed.map(|s| format!("imgchkr-request-id:{}", s.id)));
    let id = submission
        .id
        .or_else(|| key.map(|key| app.ids.derive(name, &key)))
        .unwrap_or_else(JobId::random);
    let job = admission::new_job(&submission, name, id, now);
    let mut admission = app.admission;
    if let Some(share) = tenant.max_queued {
        admission = Admission::new(admission.capacity, share);
    }
    match admission::admit(&*app.engine, job, admission).await {
        Ok(Admitted::Accepted(job)) => match wait {
            None => accepted(job.id),
            Some(wait) => waited(app, &job.key(), wait).await,
        },
        Ok(Admitted::Existing(job)) => response::json(StatusCode::OK, &*job),
        Ok(Admitted::Conflict) => response::error(
            StatusCode::CONFLICT,
            "id",
            "A different submission already uses this id.",
        ),
        Err(e) => {
            if matches!(e, StoreError::Full(Full::Queue)) {
                app.monitor.saw_full(app.admission.capacity);
            }
            store_error(&e)
        }
        // A kind of answer this server does not know: refuse rather than guess.
        Ok(_) => store_error(&StoreError::Closed),
    }
}

/// The `wait` preference of RFC 7240 (`Prefer: wait=<seconds>`, in any `Prefer` header,
/// among other preferences), if any.
fn preferred_wait(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|pref| {
            let (name, value) = pref.split(';').next()?.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("wait")
                .then(|| value.trim().trim_matches('"').parse::<u64>().ok())?
        })
        .map(Duration::from_secs)
        .next()
}

/// Waits up to `wait` for the verdict of a job just accepted: 200 with the job if it comes,
/// else the usual 202; either way `Preference-Applied` says it waited.
async fn waited(app: &App, key: &JobKey, wait: Duration) -> Resp {
    let deadline = tokio::time::Instant::now() + wait;
    let mut pause = Duration::from_millis(2);
    let mut response = loop {
        if let Ok(Lookup::Found(job)) = app.engine.get(key).await
            && job.state.is_final()
        {
            break response::json(StatusCode::OK, &*job);
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            break accepted(key.id);
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    };
    if let Ok(applied) = HeaderValue::from_str(&format!("wait={}", wait.as_secs())) {
        response.headers_mut().insert("preference-applied", applied);
    }
    response
}

fn accepted(id: JobId) -> Resp {
    let mut response = response::json(StatusCode::ACCEPTED, &json!({"id": id, "state": "queued"}));
    if let Ok(location) = HeaderValue::from_str(&format!("/assets/image/{id}")) {
        response.headers_mut().insert(LOCATION, location);
    }
    response
}

/// 503 with `Retry-After` for an engine failure: full, shutting down, or unreachable.
pub fn store_error(e: &StoreError) -> Resp {
    let (field, text) = match e {
        StoreError::Full(_) => {
            metrics::counter!(m::QUEUE_REJECTIONS).increment(1);
            ("queue", "The job queue is full; retry later.")
        }
        StoreError::Closed => ("queue", "The service is shutting down; retry later."),
        _ => {
            tracing::warn!(error = %e, "job store unavailable");
            ("store", "The job store is unavailable; retry later.")
        }
    };
    let mut response = response::error(StatusCode::SERVICE_UNAVAILABLE, field, text);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
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

/// Takes one of `tenant`'s submission tokens (shared by every API process), or the 429 to
/// answer with the wait in `Retry-After`.
async fn rate_limit(app: &App, tenant: &Tenant, now: OffsetDateTime) -> Result<(), Box<Resp>> {
    let Some(bucket) = tenant.rate_limit else {
        return Ok(());
    };
    let name = format!("submissions:{}", tenant.name);
    match app.engine.take_token(&name, bucket, now).await {
        Ok(Token::Granted) => Ok(()),
        Ok(Token::Wait(wait)) => {
            let mut refusal = response::error(
                StatusCode::TOO_MANY_REQUESTS,
                "tenant",
                "Rate limit exceeded; retry later.",
            );
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            refusal
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs));
            metrics::counter!(m::RATE_LIMITED).increment(1);
            Err(Box::new(refusal))
        }
        Err(e) => Err(Box::new(store_error(&e))),
    }
}

/// Asks the remote sources whether a `url` or `s3` asset may be read, and the notifier
/// whether it would send to each URL, under the global policy and `tenant`'s allowlist;
/// refusals name the field.
async fn check_destinations(
    app: &App,
    tenant: &Tenant,
    submission: &Submission,
) -> Result<(), FieldErrors> {
    let mut errors = FieldErrors::default();
    if let Some(remote) = &app.remote
        && let Err(text) = remote.check_asset(&submission.asset_path).await
    {
        errors.add("assetPath.path", text);
    }
    if let (AssetPath::Url { path }, Some(allow)) = (&submission.asset_path, &tenant.notify_allow)
        && let Ok(url) = url::Url::parse(path)
        && let Err(why) = check_url(allow, &url, TENANT_CHECK_TIMEOUT).await
    {
        errors.add(
            "assetPath.path",
            format!("URL not allowed for this tenant: {why}"),
        );
    }
    for event in [Event::OnStart, Event::OnSuccess, Event::OnFailure] {
        let url = submission.notification_urls.get(event);
        let refusal = match app.webhooks.check_destination(url).await {
            Err(text) => Some(text),
            Ok(()) => match &tenant.notify_allow {
                Some(allow) => check_url(allow, url, TENANT_CHECK_TIMEOUT)
                    .await
                    .err()
                    .map(|why| format!("URL not allowed for this tenant: {why}")),
                None => None,
            },
        };
        // The field's name is spelled only for a refusal: the accepted path allocates nothing.
        if let Some(text) = refusal {
            errors.add(format!("notifications.{}", event.name()), text);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}
