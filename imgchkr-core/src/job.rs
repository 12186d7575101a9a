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

/// A job's state: `queued → started → success | failed`, or `queued → cancelled`.
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
    /// Cancelled while queued: never run, no webhook sent.
    Cancelled,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 5] = [
        JobState::Queued,
        JobState::Started,
        JobState::Success,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// The state's name in the contract.
    pub const fn name(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Started => "started",
            JobState::Success => "success",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether the verdict is in.
    pub const fn is_final(self) -> bool {
        matches!(self, JobState::Success | JobState::Failed)
    }

    /// Whether nothing more will happen to the job's state (a verdict, or cancelled).
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Success | JobState::Failed | JobState::Cancelled
        )
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
        JobState::ALL
            .into_iter()
            .find(|state| state.name() == s)
            .ok_or(())
    }
}

/// A submission's priority: within a tenant, higher first; FIFO within a priority.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Served before `normal` and `low`.
    High,
    /// The default.
    #[default]
    Normal,
    /// Served after `high` and `normal`.
    Low,
}

impl Priority {
    /// Every priority, highest first.
    pub const ALL: [Priority; 3] = [Priority::High, Priority::Normal, Priority::Low];

    /// The priority's name in the contract.
    pub const fn name(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }

    /// 0 for `high`, 1 for `normal`, 2 for `low`: lower ranks are served first (what engines
    /// sort by).
    pub const fn rank(self) -> u8 {
        match self {
            Priority::High => 0,
            Priority::Normal => 1,
            Priority::Low => 2,
        }
    }

    /// The priority of `rank` (see [`rank`](Priority::rank)).
    pub const fn from_rank(rank: u8) -> Option<Priority> {
        match rank {
            0 => Some(Priority::High),
            1 => Some(Priority::Normal),
            2 => Some(Priority::Low),
            _ => None,
        }
    }
}

impl FromStr for Priority {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        Priority::ALL.into_iter().find(|p| p.name() == s).ok_or(())
    }
}

/// A job's identity: ids are scoped per tenant, so two tenants may each have a job `X` and
/// neither can observe the other's. The tenant is `""` when callers do not authenticate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobKey {
    /// The tenant that owns the job.
    pub tenant: String,
    /// The job's id within the tenant.
    pub id: JobId,
}

impl JobKey {
    /// The key of job `id` of `tenant`.
    pub fn new(tenant: impl Into<String>, id: JobId) -> JobKey {
        JobKey {
            tenant: tenant.into(),
            id,
        }
    }
}

impl fmt::Display for JobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tenant, self.id)
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
    /// The tenant that submitted it (`""` when callers do not authenticate).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tenant: String,
    /// Its priority within the tenant's queue.
    #[serde(default)]
    pub priority: Priority,
    /// Non-fatal findings of the validation (bytes skipped between JPEG segments, …); never
    /// part of the verdict.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// When it was accepted.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When a worker began it (`null` until then).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    /// When the verdict was known, or the job cancelled (`null` until then).
    #[serde(default, with = "time::serde::rfc3339::option")]
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
        /// Non-fatal findings, as [`Job::warnings`].
        #[serde(default)]
        warnings: Vec<String>,
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
            tenant: String::new(),
            priority: Priority::Normal,
            warnings: Vec::new(),
            created_at: OffsetDateTime::now_utc(),
            started_at: None,
            finished_at: None,
        }
    }

    /// The job's key (tenant and id).
    pub fn key(&self) -> JobKey {
        JobKey::new(self.tenant.clone(), self.id)
    }

    /// Applies `update`. A started update never moves a finished or cancelled job back, a
    /// cancelled job takes no verdict, and a give-up never replaces a verdict.
    pub fn apply(&mut self, update: &JobUpdate) {
        match update {
            JobUpdate::Started { at } => {
                if self.state == JobState::Cancelled {
                    return;
                }
                if !self.state.is_final() {
                    self.state = JobState::Started;
                }
                self.started_at.get_or_insert(*at);
            }
            JobUpdate::Verdict {
                errors,
                warnings,
                at,
            } => {
                if self.state == JobState::Cancelled {
                    return;
                }
                self.state = if errors.is_some() {
                    JobState::Failed
                } else {
                    JobState::Success
                };
                self.errors.clone_from(errors);
                self.warnings.clone_from(warnings);
                self.finished_at = Some(*at);
            }
            JobUpdate::GaveUp { errors, at } => {
                if !self.state.is_terminal() {
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
