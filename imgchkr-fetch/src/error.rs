//! Why an object could not be read, and the metric label of how a fetch ended: both told by
//! type (HTTP status, the egress [`Failure`], `object_store`'s variants), never by words.

use imgchkr_core::ValidationError;
use imgchkr_egress::Failure;

/// The metric label of a fetch's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    NotFound,
    PermissionDenied,
    NotAllowed,
    Timeout,
    Error,
}

impl Outcome {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::NotFound => "not_found",
            Outcome::PermissionDenied => "permission_denied",
            Outcome::NotAllowed => "not_allowed",
            Outcome::Timeout => "timeout",
            Outcome::Error => "error",
        }
    }
}

/// Why an object could not be read.
#[derive(Debug)]
pub(crate) enum FetchError {
    /// `404`/`410`, `NoSuchKey`, `NoSuchBucket`.
    NotFound,
    /// `401`/`403`, access denied, bad credentials.
    PermissionDenied,
    /// A request failed in transport (or its destination was refused).
    Request(Failure),
    /// The bucket is not in the allowlist.
    BucketNotAllowed(String),
    /// The asset's overall timeout ran out (waiting for a place among the fetches in
    /// flight included).
    Timeout,
    /// Anything else: a status, an invalid answer, a bound reached; the text says which.
    Unreachable(String),
}

impl FetchError {
    pub(crate) fn unreachable(reason: impl Into<String>) -> FetchError {
        FetchError::Unreachable(reason.into())
    }

    pub(crate) fn outcome(&self) -> Outcome {
        match self {
            FetchError::NotFound => Outcome::NotFound,
            FetchError::PermissionDenied => Outcome::PermissionDenied,
            FetchError::Request(Failure::Denied(_)) | FetchError::BucketNotAllowed(_) => {
                Outcome::NotAllowed
            }
            FetchError::Request(Failure::Timeout) | FetchError::Timeout => Outcome::Timeout,
            FetchError::Request(_) | FetchError::Unreachable(_) => Outcome::Error,
        }
    }

    pub(crate) fn into_validation_error(self, path: &str) -> ValidationError {
        let path = path.to_owned();
        let reason = match self {
            FetchError::NotFound => return ValidationError::NotFound { path },
            FetchError::PermissionDenied => return ValidationError::PermissionDenied { path },
            FetchError::Request(failure) => failure.to_string(),
            FetchError::BucketNotAllowed(bucket) => {
                format!("destination not allowed: bucket {bucket} is not in the allowlist")
            }
            FetchError::Timeout => "timeout".to_owned(),
            FetchError::Unreachable(reason) => reason,
        };
        ValidationError::Unreachable { path, reason }
    }
}
