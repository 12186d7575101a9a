//! `POST /validate`: validates the request body (the image bytes) at once, reading it only as
//! far as the header probe needs, never buffering more than the probe's token, and closing
//! the connection on the rest. No job, no webhook: the answer is `imgchkr check --json`'s
//! object without `path`.
//!
//! A tenant that must sign its requests signs the whole body, so its uploads are read to
//! their end (at most the size limit; the signature is computed as the bytes pass, nothing is
//! buffered) before the answer.

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{CONNECTION, CONTENT_LENGTH, HeaderValue};
use hyper::{Request, StatusCode};
use imgchkr_core::probe::{Probe, Step};
use imgchkr_core::{Policy, Report};

use crate::app::App;
use crate::check::CheckLine;
use crate::metrics as m;
use crate::response::{self, Resp};
use crate::signing::{Signed, Verifier};
use crate::tenants::Tenant;

/// What was read of an upload.
struct Upload {
    report: Report,
    /// Whether the body was read to its end (if not, the connection is closed).
    ended: bool,
}

/// Validates the body of `request` under the service's policy (header checks only).
pub async fn validate(app: &App, tenant: &Tenant, request: Request<Incoming>) -> Resp {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut verifier = None;
    if !tenant.request_secrets.is_empty() {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        match Signed::from_headers(request.headers(), now) {
            Ok(signed) => verifier = Some(signed.verifier(&tenant.request_secrets)),
            Err(refusal) => return *refusal,
        }
        if declared.is_some_and(|len| len > app.policy.max_bytes) {
            return response::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body",
                format!(
                    "A signed upload is read whole to check its signature: at most {} bytes.",
                    app.policy.max_bytes
                ),
            );
        }
    }
    let read = tokio::time::timeout(
        app.body_read_timeout,
        read_upload(
            request.into_body(),
            declared,
            &app.policy,
            verifier.as_mut(),
        ),
    )
    .await;
    let upload = match read {
        Ok(Ok(upload)) => upload,
        Ok(Err(ReadError::TooLarge)) => {
            return response::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body",
                format!(
                    "A signed upload is read whole to check its signature: at most {} bytes.",
                    app.policy.max_bytes
                ),
            );
        }
        Ok(Err(ReadError::Broken)) => {
            return response::error(
                StatusCode::BAD_REQUEST,
                "body",
                "The request body could not be read.",
            );
        }
        Err(_) => {
            let mut refusal = response::error(
                StatusCode::REQUEST_TIMEOUT,
                "body",
                "The request body did not arrive in time.",
            );
            refusal
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            return refusal;
        }
    };
    metrics::counter!(m::VALIDATE_BYTES).increment(upload.report.bytes_read);
    if let Some(verifier) = verifier
        && let Err(refusal) = verifier.finish()
    {
        return *refusal;
    }
    let mut line = match serde_json::to_value(CheckLine::new("", &upload.report)) {
        Ok(serde_json::Value::Object(line)) => line,
        _ => serde_json::Map::new(),
    };
    line.remove("path");
    let mut answer = response::json(StatusCode::OK, &line);
    if !upload.ended {
        // The rest is not wanted: hyper closes the connection instead of reading it.
        answer
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    answer
}

/// Feeds the body to the probe frame by frame, skipping what it does not ask for, and stops
/// as soon as it has its answer (or past the size limit). The size is `declared` when the
/// client gave one, else the bytes read.
/// Why an upload could not be read.
enum ReadError {
    /// The connection broke.
    Broken,
    /// A signed upload is larger than the size limit.
    TooLarge,
}

async fn read_upload(
    mut body: Incoming,
    declared: Option<u64>,
    policy: &Policy,
    mut verifier: Option<&mut Verifier>,
) -> Result<Upload, ReadError> {
    let mut probe = Probe::new();
    let mut step = probe.step();
    let mut received = 0u64;
    let mut ended = false;
    // Past the limit the size check fails whatever follows: no reason to read on (a signed
    // upload is read to its end, the signature covering it all).
    let enough = policy.max_bytes.saturating_add(1);
    while (matches!(step, Step::Need(_)) || verifier.is_some()) && received < enough {
        match body.frame().await {
            None => {
                ended = true;
                break;
            }
            Some(Err(_)) => return Err(ReadError::Broken),
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    if let Some(verifier) = verifier.as_deref_mut() {
                        verifier.update(data);
                    }
                    step = probe.feed(received, data);
                    received += data.len() as u64;
                }
            }
        }
    }
    if verifier.is_some() && !ended {
        return Err(ReadError::TooLarge);
    }
    if !ended && declared == Some(received) {
        // Everything announced has arrived.
        ended = hyper::body::Body::is_end_stream(&body);
    }
    let result = match step {
        Step::Done(result) => result,
        Step::Need(_) => probe.finish(),
    };
    // Without a Content-Length the size is what was read (a lower bound when reading
    // stopped early: past the limit it fails the size check as it should).
    let size = declared.unwrap_or(received);
    let report = Report::from_probe(size, result, received, policy);
    Ok(Upload { report, ended })
}
