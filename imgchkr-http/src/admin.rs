//! The operator's side: who may read the dashboard (`--admin-token`), and the dashboard's
//! figures, built from the engine's stats and the workers' heartbeat statuses so they are the
//! same in every process of a deployment (an `api` process runs no job of its own).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hyper::StatusCode;
use hyper::header::{AUTHORIZATION, HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use imgchkr_core::Job;
use imgchkr_core::activity::{Activity, HostStats, Minute, WorkerStatus};
use imgchkr_core::engine::QueueStats;
use serde::Serialize;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::response::{self, Resp};
use crate::token::{TokenDigest, digest};

/// How many failed jobs the dashboard shows.
pub const LATEST_FAILURES: usize = 20;
/// How many destinations the dashboard ranks.
pub const SLOWEST_DESTINATIONS: usize = 8;

/// Who may read the dashboard and its JSON.
#[derive(Debug, Clone, Default)]
pub struct Admin {
    /// The `--admin-token`'s digest.
    token: Option<TokenDigest>,
    /// The deployment's lease time: a worker silent for longer is dead (when its status does
    /// not say its own).
    pub lease_idle: Duration,
}

impl Admin {
    /// `token` (`--admin-token`; empty is none) and the deployment's lease time.
    pub fn new(token: Option<&str>, lease_idle: Duration) -> Admin {
        Admin {
            token: token.filter(|t| !t.is_empty()).map(digest),
            lease_idle,
        }
    }

    /// Whether an admin token is configured.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Lets the request through, or the 401 to answer. With an `--admin-token` it must be
    /// presented (`Authorization: Bearer <token>`, or Basic with the token as the password,
    /// for browsers); without one the pages are open unless tenants authenticate
    /// (`tenants_authenticate`), when nobody gets in.
    pub fn check(&self, headers: &HeaderMap, tenants_authenticate: bool) -> Result<(), Box<Resp>> {
        let Some(expected) = &self.token else {
            return if tenants_authenticate {
                Err(Box::new(unauthorized(
                    "Tenants are configured: start the server with --admin-token to open the dashboard.",
                )))
            } else {
                Ok(())
            };
        };
        let Some(presented) = presented_token(headers) else {
            return Err(Box::new(unauthorized("Admin token required.")));
        };
        if bool::from(digest(&presented).ct_eq(expected)) {
            Ok(())
        } else {
            Err(Box::new(unauthorized("Invalid admin token.")))
        }
    }
}

/// The token of `Authorization: Bearer <token>` or `Basic base64(<any user>:<token>)`.
fn presented_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        Some(rest.to_owned())
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD.decode(rest).ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        decoded
            .split_once(':')
            .map(|(_, password)| password.to_owned())
    } else {
        None
    }
}

fn unauthorized(text: &str) -> Resp {
    let mut response = response::error(StatusCode::UNAUTHORIZED, "Authorization", text);
    // Basic lets a browser ask the operator for the token (any user name, the token as the
    // password) and send it with the page's own requests; scripts use Bearer.
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Basic realm="imgchkr operators", charset="UTF-8""#),
    );
    response
}

/// `GET /admin/dashboard`: the whole dashboard in one document.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dashboard {
    /// When it was read.
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
    /// The engine as this process last checked it.
    pub engine: EngineState,
    /// The queue, all tenants.
    pub queue: Queue,
    /// Every worker heard from recently, by name.
    pub workers: Vec<WorkerView>,
    /// The last minutes, oldest first, the current (partial) one last: all workers added up.
    pub minutes: Vec<MinuteView>,
    /// The same minutes summed.
    pub totals: Totals,
    /// Webhook destinations by mean attempt latency, slowest first.
    pub slowest_destinations: Vec<Destination>,
    /// The latest failed jobs, newest first, every tenant.
    pub latest_failures: Vec<Job>,
}

/// The engine's reachability.
#[derive(Debug, Serialize)]
pub struct EngineState {
    /// Whether it answered the last check.
    pub available: bool,
    /// Why not, when not.
    pub reason: Option<String>,
}

/// The queue's figures.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Queue {
    /// Jobs waiting.
    pub waiting: u64,
    /// Jobs leased to workers.
    pub in_flight: u64,
    /// Waiting jobs at most.
    pub capacity: u64,
    /// Per tenant with jobs waiting or in flight.
    pub tenants: Vec<TenantQueue>,
}

/// One tenant's queue.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantQueue {
    /// The tenant (`""` without authentication).
    pub tenant: String,
    /// Its jobs waiting.
    pub waiting: u64,
    /// Its jobs leased.
    pub in_flight: u64,
}

/// A worker as the dashboard shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerView {
    /// Its name.
    pub worker: String,
    /// Whether it heartbeated within its lease time (else its jobs are being taken over).
    pub alive: bool,
    /// Its last heartbeat.
    #[serde(with = "time::serde::rfc3339")]
    pub last_heartbeat: OffsetDateTime,
    /// Seconds since then.
    pub seconds_since_heartbeat: f64,
    /// Jobs it held then.
    pub held: u64,
    /// Its job slots (`null` when its status is unknown: another version).
    pub slots: Option<u64>,
    /// Jobs it finished over the window.
    pub finished: u64,
}

/// One minute, all workers.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MinuteView {
    /// When it begins.
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    /// Jobs finished `success`.
    pub success: u64,
    /// Jobs finished `failed`.
    pub failed: u64,
    /// Webhooks delivered.
    pub delivered: u64,
    /// Webhooks given up.
    pub delivery_failed: u64,
}

/// Totals over the window.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    /// Jobs finished `success`.
    pub success: u64,
    /// Jobs finished `failed`.
    pub failed: u64,
    /// success / (success + failed), `null` without jobs.
    pub success_ratio: Option<f64>,
    /// Jobs finished per second over the current minute and the one before.
    pub jobs_per_second: f64,
    /// Webhooks delivered.
    pub delivered: u64,
    /// Webhooks given up.
    pub delivery_failed: u64,
}

/// A webhook destination host over the window.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    /// The host.
    pub host: String,
    /// Deliveries ended.
    pub deliveries: u64,
    /// Of which given up.
    pub failed: u64,
    /// Attempts made.
    pub attempts: u64,
    /// Mean attempt latency, ms.
    pub mean_latency_ms: f64,
    /// Slowest attempt, ms.
    pub max_latency_ms: u64,
}

impl From<HostStats> for Destination {
    fn from(h: HostStats) -> Destination {
        Destination {
            mean_latency_ms: (h.mean_latency_ms() * 10.0).round() / 10.0,
            host: h.host,
            deliveries: h.deliveries,
            failed: h.failed,
            attempts: h.attempts,
            max_latency_ms: h.latency_ms_max,
        }
    }
}

impl From<&Minute> for MinuteView {
    fn from(m: &Minute) -> MinuteView {
        MinuteView {
            start: m.start(),
            success: m.success,
            failed: m.failed,
            delivered: m.delivered,
            delivery_failed: m.delivery_failed,
        }
    }
}

impl Dashboard {
    /// The dashboard of `stats` and `latest_failures` as of `now`.
    pub fn build(
        admin: &Admin,
        now: OffsetDateTime,
        engine: EngineState,
        capacity: u64,
        stats: &QueueStats,
        latest_failures: Vec<Job>,
    ) -> Dashboard {
        let mut activity = Activity::default();
        let workers = stats
            .workers
            .iter()
            .map(|seen| {
                let status = WorkerStatus::parse(&seen.status);
                let lease_idle = status
                    .as_ref()
                    .map_or(admin.lease_idle, |s| Duration::from_millis(s.lease_idle_ms));
                let since = (now - seen.at).as_seconds_f64().max(0.0);
                let mut finished = 0;
                if let Some(status) = &status {
                    let mut own = status.activity.clone();
                    own.prune(now);
                    finished = own.minutes.iter().map(|m| m.success + m.failed).sum();
                    activity.merge(&own);
                }
                WorkerView {
                    worker: seen.worker.0.clone(),
                    alive: since <= lease_idle.as_secs_f64(),
                    last_heartbeat: seen.at,
                    seconds_since_heartbeat: (since * 10.0).round() / 10.0,
                    held: seen.held,
                    slots: status.map(|s| s.slots),
                    finished,
                }
            })
            .collect();
        let series = activity.series(now);
        let sum = |f: fn(&Minute) -> u64| series.iter().map(f).sum::<u64>();
        let (success, failed) = (sum(|m| m.success), sum(|m| m.failed));
        // The current minute is still filling: the rate over it and the minute before.
        let recent: u64 = series
            .iter()
            .rev()
            .take(2)
            .map(|m| m.success + m.failed)
            .sum();
        let into_minute =
            (now.unix_timestamp().rem_euclid(60)) as f64 + f64::from(now.nanosecond()) / 1e9;
        let totals = Totals {
            success,
            failed,
            success_ratio: (success + failed > 0)
                .then(|| success as f64 / (success + failed) as f64),
            jobs_per_second: ((recent as f64 / (60.0 + into_minute)) * 1000.0).round() / 1000.0,
            delivered: sum(|m| m.delivered),
            delivery_failed: sum(|m| m.delivery_failed),
        };
        Dashboard {
            generated_at: now,
            engine,
            queue: Queue {
                waiting: stats.waiting,
                in_flight: stats.in_flight,
                capacity,
                tenants: stats
                    .tenants
                    .iter()
                    .map(|(tenant, waiting, in_flight)| TenantQueue {
                        tenant: tenant.clone(),
                        waiting: *waiting,
                        in_flight: *in_flight,
                    })
                    .collect(),
            },
            workers,
            minutes: series.iter().map(MinuteView::from).collect(),
            totals,
            slowest_destinations: activity
                .slowest_hosts(SLOWEST_DESTINATIONS)
                .into_iter()
                .map(Destination::from)
                .collect(),
            latest_failures,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgchkr_core::JobState;
    use imgchkr_core::engine::{WorkerId, WorkerSeen};

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn admin_token_by_bearer_or_basic() {
        let admin = Admin::new(Some("s3cret"), Duration::from_secs(60));
        assert!(admin.check(&HeaderMap::new(), false).is_err());
        assert!(admin.check(&headers("Bearer s3cret"), true).is_ok());
        assert!(admin.check(&headers("Bearer nope"), true).is_err());
        let basic = format!("Basic {}", STANDARD.encode("ops:s3cret"));
        assert!(admin.check(&headers(&basic), true).is_ok());
        let wrong = format!("Basic {}", STANDARD.encode("s3cret:x"));
        assert!(admin.check(&headers(&wrong), true).is_err());
        assert!(admin.check(&headers("Basic !!"), true).is_err());
        let refused = admin.check(&HeaderMap::new(), false).unwrap_err();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        assert!(
            refused.headers()[WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Basic ")
        );
    }

    #[test]
    fn without_a_token_open_unless_tenants_authenticate() {
        let admin = Admin::new(None, Duration::from_secs(60));
        assert!(!admin.has_token());
        assert!(!Admin::new(Some(""), Duration::from_secs(60)).has_token());
        assert!(admin.check(&HeaderMap::new(), false).is_ok());
        assert!(admin.check(&headers("Bearer anything"), true).is_err());
    }

    #[test]
    fn dashboard_adds_workers_up_and_marks_dead_ones() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_080).unwrap();
        let mut a = Activity::default();
        a.job_finished(JobState::Success, now);
        a.job_finished(JobState::Failed, now - Duration::from_secs(60));
        let mut b = Activity::default();
        b.job_finished(JobState::Success, now);
        let status = |activity| {
            WorkerStatus::new(4, Duration::from_secs(60), Duration::from_secs(5), activity)
                .to_json()
        };
        let mut stats = QueueStats::default();
        stats.waiting = 3;
        stats.tenants = vec![("t".into(), 3, 0)];
        stats.workers = vec![
            WorkerSeen::new(WorkerId("a".into()), now, 1, status(a)),
            WorkerSeen::new(
                WorkerId("b".into()),
                now - Duration::from_secs(90),
                0,
                status(b),
            ),
            WorkerSeen::new(WorkerId("c".into()), now, 0, "not json"),
        ];
        let admin = Admin::new(None, Duration::from_secs(60));
        let engine = EngineState {
            available: true,
            reason: None,
        };
        let d = Dashboard::build(&admin, now, engine, 100, &stats, vec![]);
        assert_eq!(d.totals.success, 2);
        assert_eq!(d.totals.failed, 1);
        // 3 jobs over the minute before and 40 s of this one.
        assert_eq!(d.totals.jobs_per_second, 0.03);
        assert_eq!(d.minutes.len(), imgchkr_core::activity::MINUTES);
        let alive: Vec<bool> = d.workers.iter().map(|w| w.alive).collect();
        assert_eq!(alive, [true, false, true]);
        assert_eq!(d.workers[2].slots, None);
        assert_eq!(d.workers[0].finished, 2);
        assert_eq!(d.queue.tenants[0].waiting, 3);
    }
}
