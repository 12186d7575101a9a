//! The job model: ids, states, the events and payloads of the webhook contract, and the
//! record a job keeps of its deliveries.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use url::Url;
use uuid::Uuid;

/// Validation errors by field: `{"image": ["Image width exceeds maximum (1800/1000)"]}`.
pub type ErrorMap = BTreeMap<String, Vec<String>>;

/// The key under which image validation failures are reported.
pub const IMAGE_ERRORS_KEY: &str = "image";

/// A job's id: a UUID, written hyphenated in lower case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub Uuid);

impl JobId {
    /// A new random (v4) id.
    pub fn random() -> JobId {
        JobId(Uuid::new_v4())
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for JobId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::try_parse(s).map(JobId)
    }
}

/// A job's state: `queued → started → success | failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Accepted, waiting for a worker.
    Queued,
    /// A worker has begun: onStart is being sent and the image checked.
    Started,
    /// The image passed every check.
    Success,
    /// The image failed a check; the job carries the errors.
    Failed,
}

impl JobState {
    /// The state's name in the contract.
    pub const fn name(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Started => "started",
            JobState::Success => "success",
            JobState::Failed => "failed",
        }
    }

    /// Whether the verdict is in.
    pub const fn is_final(self) -> bool {
        matches!(self, JobState::Success | JobState::Failed)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for JobState {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        [
            JobState::Queued,
            JobState::Started,
            JobState::Success,
            JobState::Failed,
        ]
        .into_iter()
        .find(|state| state.name() == s)
        .ok_or(())
    }
}

/// A notification event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Event {
    /// Sent before validation begins.
    #[serde(rename = "onStart")]
    OnStart,
    /// Sent when the image passed.
    #[serde(rename = "onSuccess")]
    OnSuccess,
    /// Sent when the image failed, with the errors.
    #[serde(rename = "onFailure")]
    OnFailure,
}

impl Event {
    /// The event's name in the contract (`onStart`, …).
    pub const fn name(self) -> &'static str {
        match self {
            Event::OnStart => "onStart",
            Event::OnSuccess => "onSuccess",
            Event::OnFailure => "onFailure",
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the image is. Only `local` exists in every server; `url` and `s3` are enabled by
/// the server's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "location", rename_all = "lowercase")]
#[non_exhaustive]
pub enum AssetPath {
    /// A path resolved against the server's image directory.
    Local {
        /// The path as the client gave it.
        path: String,
    },
    /// An absolute `http`/`https` URL, read with range requests.
    Url {
        /// The URL as the client gave it.
        path: String,
    },
    /// An object in an S3-compatible store: `s3://bucket/key`.
    S3 {
        /// The S3 URI as the client gave it.
        path: String,
    },
}

impl AssetPath {
    /// The path, URL or S3 URI as the client gave it, used in error texts.
    pub fn path(&self) -> &str {
        match self {
            AssetPath::Local { path } | AssetPath::Url { path } | AssetPath::S3 { path } => path,
        }
    }

    /// The location's name in the contract (`local`, `url`, `s3`).
    pub fn location(&self) -> &'static str {
        match self {
            AssetPath::Local { .. } => "local",
            AssetPath::Url { .. } => "url",
            AssetPath::S3 { .. } => "s3",
        }
    }
}

/// The three webhook URLs of a submission.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationUrls {
    /// Receives onStart.
    pub on_start: Url,
    /// Receives onSuccess.
    pub on_success: Url,
    /// Receives onFailure.
    pub on_failure: Url,
}

impl NotificationUrls {
    /// The URL for `event`.
    pub fn get(&self, event: Event) -> &Url {
        match event {
            Event::OnStart => &self.on_start,
            Event::OnSuccess => &self.on_success,
            Event::OnFailure => &self.on_failure,
        }
    }
}

/// A webhook body: `{"id", "state"}`, plus `errors` on failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// The job's id.
    pub id: JobId,
    /// `started`, `success` or `failed`.
    pub state: JobState,
    /// The validation errors, on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<ErrorMap>,
}

impl Payload {
    /// The JSON body.
    pub fn to_json(&self) -> Vec<u8> {
        // A map of strings to lists of strings always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The webhook-id of `event` for `job`: the same on every attempt and every redelivery, so
/// receivers can deduplicate.
pub fn webhook_id(job: JobId, event: Event) -> String {
    format!("msg_{}_{}", job.0.simple(), event.name())
}

/// Where a notification delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Still being attempted.
    Pending,
    /// A 2xx answer was received.
    Delivered,
    /// Given up.
    Failed,
}

/// What a job records of one event's delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeliveryRecord {
    /// The event.
    pub event: Event,
    /// Where it was sent.
    pub url: Url,
    /// Pending, delivered or failed.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// The last HTTP status received, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// Why it failed (`connection refused`, `timeout`, `HTTP 500`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl DeliveryRecord {
    /// A delivery about to be attempted.
    pub fn pending(event: Event, url: Url) -> DeliveryRecord {
        DeliveryRecord {
            event,
            url,
            status: DeliveryStatus::Pending,
            attempts: 0,
            http_status: None,
            error: None,
        }
    }
}

/// A job as stored and as `GET /assets/image/<id>` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Job {
    /// The job's id.
    pub id: JobId,
    /// Where it stands.
    pub state: JobState,
    /// The validation errors, once failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<ErrorMap>,
    /// One entry per event sent so far.
    #[serde(default)]
    pub notifications: Vec<DeliveryRecord>,
    /// What to check.
    pub asset_path: AssetPath,
    /// Where to report.
    pub notification_urls: NotificationUrls,
    /// The tenant that submitted it, when callers authenticate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// When it was accepted.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When a worker began it.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub started_at: Option<OffsetDateTime>,
    /// When the verdict was known.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub finished_at: Option<OffsetDateTime>,
}

/// A change to a job, as the runner reports it to the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum JobUpdate {
    /// A worker began the job.
    Started {
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// The verdict: `errors` is `None` on success.
    Verdict {
        /// The failures, by field.
        errors: Option<ErrorMap>,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// A delivery began or ended (replaces the event's earlier record).
    Delivery(DeliveryRecord),
    /// The job is given up without a verdict of its own (e.g. every worker that took it
    /// stopped before finishing): failed with `errors`, unless a verdict is already in, which
    /// then stands.
    GaveUp {
        /// Why, by field (as a failed verdict carries them).
        errors: ErrorMap,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

impl Job {
    /// A new queued job.
    pub fn new(id: JobId, asset_path: AssetPath, notification_urls: NotificationUrls) -> Job {
        Job {
            id,
            state: JobState::Queued,
            errors: None,
            notifications: Vec::new(),
            asset_path,
            notification_urls,
            tenant: None,
            created_at: OffsetDateTime::now_utc(),
            started_at: None,
            finished_at: None,
        }
    }

    /// Applies `update`. A started update never moves a finished job back, and a give-up
    /// never replaces a verdict.
    pub fn apply(&mut self, update: &JobUpdate) {
        match update {
            JobUpdate::Started { at } => {
                if !self.state.is_final() {
                    self.state = JobState::Started;
                }
                self.started_at.get_or_insert(*at);
            }
            JobUpdate::Verdict { errors, at } => {
                self.state = if errors.is_some() {
                    JobState::Failed
                } else {
                    JobState::Success
                };
                self.errors.clone_from(errors);
                self.finished_at = Some(*at);
            }
            JobUpdate::GaveUp { errors, at } => {
                if !self.state.is_final() {
                    self.state = JobState::Failed;
                    self.errors = Some(errors.clone());
                    self.finished_at = Some(*at);
                }
            }
            JobUpdate::Delivery(record) => {
                match self
                    .notifications
                    .iter_mut()
                    .find(|r| r.event == record.event)
                {
                    Some(existing) => *existing = record.clone(),
                    None => self.notifications.push(record.clone()),
                }
            }
        }
    }

    /// The webhook body for `event` as the job stands.
    pub fn payload(&self, event: Event) -> Payload {
        Payload {
            id: self.id,
            state: match event {
                Event::OnStart => JobState::Started,
                Event::OnSuccess => JobState::Success,
                Event::OnFailure => JobState::Failed,
            },
            errors: match event {
                Event::OnFailure => self.errors.clone(),
                _ => None,
            },
        }
    }
}
