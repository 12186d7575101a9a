//! Building responses: every body is JSON, every error names its field.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use imgchkr_core::FieldErrors;
use serde::Serialize;

/// The response type of every handler.
pub type Resp = Response<Full<Bytes>>;

const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A JSON response of `body` bytes.
pub fn json_bytes(status: StatusCode, body: Vec<u8>) -> Resp {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, JSON);
    response
}

/// A JSON response of `value`.
pub fn json(status: StatusCode, value: &impl Serialize) -> Resp {
    match serde_json::to_vec(value) {
        Ok(body) => json_bytes(status, body),
        // Only our own types are serialized here, and they always serialize.
        Err(_) => json_bytes(StatusCode::INTERNAL_SERVER_ERROR, b"{}".to_vec()),
    }
}

/// `{"errors": {...}}` with `status`.
pub fn errors(status: StatusCode, errors: &FieldErrors) -> Resp {
    json_bytes(status, errors.to_json())
}

/// `{"errors": {field: [text]}}` with `status`.
pub fn error(status: StatusCode, field: &str, text: impl Into<String>) -> Resp {
    errors(status, &FieldErrors::single(field, text))
}

/// 404 for a job that does not exist for this caller.
pub fn job_not_found() -> Resp {
    error(StatusCode::NOT_FOUND, "id", "Not found.")
}

/// A plain-text response (the metrics exposition).
pub fn text(status: StatusCode, content_type: &'static str, body: String) -> Resp {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
