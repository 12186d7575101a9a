//! What a worker did over the last minutes: jobs finished by state, webhook deliveries by
//! outcome, and each destination host's delivery latency, in per-minute buckets.
//!
//! Why here and not in the metrics: in a shared deployment the API process that serves the
//! dashboard runs no jobs, and it has no way to read the workers' `/metrics`. Each worker
//! therefore keeps its own rolling [`Activity`] and sends it with every heartbeat as its
//! status ([`WorkerStatus`], JSON); the engine keeps the latest one per worker
//! ([`QueueStats::workers`](crate::engine::QueueStats::workers)), and whoever reads the
//! engine's stats can add the workers' activities up ([`Activity::merge`]).
//!
//! Bounded: [`MINUTES`] buckets, each with at most [`HOSTS_PER_MINUTE`] hosts (deliveries to
//! further hosts in that minute are counted under [`OTHER_HOSTS`]), so a status stays a few
//! KiB whatever the traffic.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::job::JobState;
use crate::notify::{BoxFuture, DeliveryOutcome, Notification, Notifier};

/// How many minutes of activity are kept (the current one included).
pub const MINUTES: usize = 15;
/// The most hosts recorded per minute.
pub const HOSTS_PER_MINUTE: usize = 16;
/// The name deliveries to hosts past [`HOSTS_PER_MINUTE`] are counted under.
pub const OTHER_HOSTS: &str = "(other hosts)";
/// The version of the [`WorkerStatus`] format.
pub const STATUS_VERSION: u32 = 1;

/// Deliveries to one host within one minute.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct HostStats {
    /// The destination host (never the whole URL: its path or query may carry a secret).
    pub host: String,
    /// Deliveries (events) ended.
    pub deliveries: u64,
    /// Of which given up.
    pub failed: u64,
    /// Attempts made (each one request).
    pub attempts: u64,
    /// The attempts' latencies added up, in milliseconds.
    pub latency_ms_sum: u64,
    /// The slowest attempt, in milliseconds.
    pub latency_ms_max: u64,
}

impl HostStats {
    fn add(&mut self, other: &HostStats) {
        self.deliveries += other.deliveries;
        self.failed += other.failed;
        self.attempts += other.attempts;
        self.latency_ms_sum = self.latency_ms_sum.saturating_add(other.latency_ms_sum);
        self.latency_ms_max = self.latency_ms_max.max(other.latency_ms_max);
    }

    /// The mean attempt latency in milliseconds (0 without attempts).
    pub fn mean_latency_ms(&self) -> f64 {
        if self.attempts == 0 {
            0.0
        } else {
            self.latency_ms_sum as f64 / self.attempts as f64
        }
    }
}

/// One minute's activity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Minute {
    /// Which minute: Unix seconds / 60.
    pub minute: i64,
    /// Jobs finished `success`.
    #[serde(default)]
    pub success: u64,
    /// Jobs finished `failed` (parked jobs included).
    #[serde(default)]
    pub failed: u64,
    /// Webhook deliveries that got a 2xx.
    #[serde(default)]
    pub delivered: u64,
    /// Webhook deliveries given up.
    #[serde(default)]
    pub delivery_failed: u64,
    /// Per destination host, by host name; at most [`HOSTS_PER_MINUTE`] plus
    /// [`OTHER_HOSTS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostStats>,
}

impl Minute {
    /// An empty minute.
    pub fn new(minute: i64) -> Minute {
        Minute {
            minute,
            ..Minute::default()
        }
    }

    /// When it begins.
    pub fn start(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.minute.saturating_mul(60))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    fn add(&mut self, other: &Minute) {
        self.success += other.success;
        self.failed += other.failed;
        self.delivered += other.delivered;
        self.delivery_failed += other.delivery_failed;
        for host in &other.hosts {
            self.host(&host.host, usize::MAX).add(host);
        }
    }

    /// The stats of `host`, added when missing (under [`OTHER_HOSTS`] once `limit` hosts are
    /// there).
    fn host(&mut self, host: &str, limit: usize) -> &mut HostStats {
        let index = match self.hosts.binary_search_by(|h| h.host.as_str().cmp(host)) {
            Ok(found) => found,
            Err(_) if self.hosts.len() >= limit && host != OTHER_HOSTS => {
                return self.host(OTHER_HOSTS, usize::MAX);
            }
            Err(at) => {
                self.hosts.insert(
                    at,
                    HostStats {
                        host: host.to_owned(),
                        ..HostStats::default()
                    },
                );
                at
            }
        };
        &mut self.hosts[index]
    }
}

/// Activity over the last [`MINUTES`] minutes: buckets oldest first, only minutes with
/// something in them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Activity {
    /// The minutes, oldest first.
    #[serde(default)]
    pub minutes: Vec<Minute>,
}

/// Unix minute of `at`.
fn minute_of(at: OffsetDateTime) -> i64 {
    at.unix_timestamp().div_euclid(60)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Activity {
    /// Notes a job that ended in `state` at `at` (states other than success and failed are
    /// not jobs a worker finishes, and are ignored).
    pub fn job_finished(&mut self, state: JobState, at: OffsetDateTime) {
        let Some(minute) = self.minute(at) else {
            return;
        };
        match state {
            JobState::Success => minute.success += 1,
            JobState::Failed => minute.failed += 1,
            _ => {}
        }
    }

    /// Notes a webhook delivery to `host` that ended at `at`.
    pub fn delivery(&mut self, host: &str, outcome: &DeliveryOutcome, at: OffsetDateTime) {
        let Some(minute) = self.minute(at) else {
            return;
        };
        if outcome.delivered {
            minute.delivered += 1;
        } else {
            minute.delivery_failed += 1;
        }
        let stats = minute.host(host, HOSTS_PER_MINUTE);
        stats.deliveries += 1;
        stats.failed += u64::from(!outcome.delivered);
        for attempt in &outcome.attempts {
            let ms = millis(attempt.latency);
            stats.attempts += 1;
            stats.latency_ms_sum = stats.latency_ms_sum.saturating_add(ms);
            stats.latency_ms_max = stats.latency_ms_max.max(ms);
        }
    }

    /// The bucket of `at`'s minute, created in order; the oldest go past [`MINUTES`]
    /// buckets. `None` for a minute already out of the window (a clock that went back).
    fn minute(&mut self, at: OffsetDateTime) -> Option<&mut Minute> {
        let minute = minute_of(at);
        if let Some(newest) = self.minutes.last()
            && minute <= newest.minute - MINUTES as i64
        {
            return None;
        }
        if let Err(index) = self.minutes.binary_search_by_key(&minute, |m| m.minute) {
            self.minutes.insert(index, Minute::new(minute));
        }
        let newest = self.minutes.last().map_or(minute, |m| m.minute);
        self.prune_to(newest);
        let index = self
            .minutes
            .binary_search_by_key(&minute, |m| m.minute)
            .ok()?;
        self.minutes.get_mut(index)
    }

    /// Keeps the minutes of the window ending with minute `last`.
    fn prune_to(&mut self, last: i64) {
        let first = last - (MINUTES as i64 - 1);
        self.minutes.retain(|m| m.minute >= first);
    }

    /// Drops the minutes that left the window as of `now`.
    pub fn prune(&mut self, now: OffsetDateTime) {
        self.prune_to(minute_of(now));
    }

    /// Adds `other`'s minutes to these (another worker's activity).
    pub fn merge(&mut self, other: &Activity) {
        for minute in &other.minutes {
            let index = match self
                .minutes
                .binary_search_by_key(&minute.minute, |m| m.minute)
            {
                Ok(found) => found,
                Err(at) => {
                    self.minutes.insert(at, Minute::new(minute.minute));
                    at
                }
            };
            self.minutes[index].add(minute);
        }
    }

    /// Every minute of the window ending at `now`, oldest first, empty ones included.
    pub fn series(&self, now: OffsetDateTime) -> Vec<Minute> {
        let last = minute_of(now);
        (last - (MINUTES as i64 - 1)..=last)
            .map(|minute| {
                self.minutes
                    .iter()
                    .find(|m| m.minute == minute)
                    .cloned()
                    .unwrap_or_else(|| Minute::new(minute))
            })
            .collect()
    }

    /// Per host over the whole window, slowest mean attempt latency first, at most `n`.
    pub fn slowest_hosts(&self, n: usize) -> Vec<HostStats> {
        let mut by_host: BTreeMap<&str, HostStats> = BTreeMap::new();
        for stats in self.minutes.iter().flat_map(|m| &m.hosts) {
            by_host
                .entry(&stats.host)
                .or_insert_with(|| HostStats {
                    host: stats.host.clone(),
                    ..HostStats::default()
                })
                .add(stats);
        }
        let mut hosts: Vec<HostStats> = by_host.into_values().collect();
        hosts.sort_by(|a, b| {
            b.mean_latency_ms()
                .total_cmp(&a.mean_latency_ms())
                .then_with(|| a.host.cmp(&b.host))
        });
        hosts.truncate(n);
        hosts
    }
}

/// What a worker says of itself with each heartbeat ([`Engine::heartbeat`]'s `status`).
///
/// [`Engine::heartbeat`]: crate::engine::Engine::heartbeat
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct WorkerStatus {
    /// The format's version ([`STATUS_VERSION`]).
    pub version: u32,
    /// Jobs the worker holds at most.
    pub slots: u64,
    /// Its lease time: a worker not heard from for this long is dead (its jobs are taken
    /// over).
    pub lease_idle_ms: u64,
    /// How often it heartbeats.
    pub heartbeat_ms: u64,
    /// What it did recently.
    pub activity: Activity,
}

impl WorkerStatus {
    /// A status of a worker with `slots` job slots, `lease_idle` and `heartbeat` periods, and
    /// `activity`.
    pub fn new(
        slots: usize,
        lease_idle: Duration,
        heartbeat: Duration,
        activity: Activity,
    ) -> WorkerStatus {
        WorkerStatus {
            version: STATUS_VERSION,
            slots: slots as u64,
            lease_idle_ms: millis(lease_idle),
            heartbeat_ms: millis(heartbeat),
            activity,
        }
    }

    /// The status as sent: compact JSON.
    pub fn to_json(&self) -> String {
        // Plain data of our own: serializing it cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A status read back from an engine; `None` for an empty or foreign one (another
    /// version, another program).
    pub fn parse(status: &str) -> Option<WorkerStatus> {
        serde_json::from_str::<WorkerStatus>(status)
            .ok()
            .filter(|s| s.version == STATUS_VERSION)
    }
}

/// A worker's activity, shared by its jobs (a short lock per event).
#[derive(Debug, Default)]
pub struct ActivityLog {
    activity: Mutex<Activity>,
}

impl ActivityLog {
    /// An empty log.
    pub fn new() -> ActivityLog {
        ActivityLog::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Activity) -> T) -> T {
        f(&mut self.activity.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Notes a job that ended in `state` now.
    pub fn job_finished(&self, state: JobState) {
        let now = OffsetDateTime::now_utc();
        self.with(|a| a.job_finished(state, now));
    }

    /// Notes a delivery of `notification` that ended now with `outcome`.
    pub fn delivery(&self, notification: &Notification, outcome: &DeliveryOutcome) {
        let now = OffsetDateTime::now_utc();
        let host = notification.url.host_str().unwrap_or("");
        self.with(|a| a.delivery(host, outcome, now));
    }

    /// The activity of the window ending at `now`.
    pub fn snapshot(&self, now: OffsetDateTime) -> Activity {
        self.with(|a| {
            a.prune(now);
            a.clone()
        })
    }
}

/// A notifier that notes each delivery's outcome in an [`ActivityLog`]: how the worker sees
/// its webhooks without a change to the [`Notifier`] it was given.
pub struct Observed<N> {
    inner: N,
    log: std::sync::Arc<ActivityLog>,
}

impl<N: Notifier> Observed<N> {
    /// `inner` delivers; `log` notes the outcomes.
    pub fn new(inner: N, log: std::sync::Arc<ActivityLog>) -> Observed<N> {
        Observed { inner, log }
    }
}

impl<N: Notifier> Notifier for Observed<N> {
    fn deliver<'a>(&'a self, notification: &'a Notification) -> BoxFuture<'a, DeliveryOutcome> {
        Box::pin(async move {
            let outcome = self.inner.deliver(notification).await;
            self.log.delivery(notification, &outcome);
            outcome
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::Attempt;

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000 - 1_700_000_000 % 60 + seconds).unwrap()
    }

    fn outcome(delivered: bool, latencies_ms: &[u64]) -> DeliveryOutcome {
        let n = latencies_ms.len();
        DeliveryOutcome::from_attempts(
            latencies_ms
                .iter()
                .enumerate()
                .map(|(i, ms)| {
                    let latency = Duration::from_millis(*ms);
                    if delivered && i + 1 == n {
                        Attempt::answered(i as u32 + 1, 200, latency)
                    } else {
                        Attempt::failed(i as u32 + 1, "connection refused", latency)
                    }
                })
                .collect(),
        )
    }

    #[test]
    fn counts_jobs_and_deliveries_per_minute() {
        let mut a = Activity::default();
        a.job_finished(JobState::Success, at(1));
        a.job_finished(JobState::Success, at(59));
        a.job_finished(JobState::Failed, at(60));
        a.job_finished(JobState::Cancelled, at(61));
        a.delivery("hooks.example", &outcome(true, &[30]), at(2));
        a.delivery("hooks.example", &outcome(false, &[10, 50]), at(3));
        assert_eq!(a.minutes.len(), 2);
        let first = &a.minutes[0];
        assert_eq!((first.success, first.failed), (2, 0));
        assert_eq!((first.delivered, first.delivery_failed), (1, 1));
        assert_eq!(
            first.hosts,
            [HostStats {
                host: "hooks.example".into(),
                deliveries: 2,
                failed: 1,
                attempts: 3,
                latency_ms_sum: 90,
                latency_ms_max: 50,
            }]
        );
        assert_eq!((a.minutes[1].success, a.minutes[1].failed), (0, 1));
    }

    #[test]
    fn keeps_only_the_window() {
        let mut a = Activity::default();
        for minute in 0..40 {
            a.job_finished(JobState::Success, at(minute * 60));
        }
        assert_eq!(a.minutes.len(), MINUTES);
        assert_eq!(a.minutes[0].minute, minute_of(at(25 * 60)));
        a.prune(at(50 * 60));
        assert_eq!(a.minutes.len(), 4, "minutes 36..=39 and none after");
        let series = a.series(at(50 * 60));
        assert_eq!(series.len(), MINUTES);
        assert_eq!(series.last().unwrap().minute, minute_of(at(50 * 60)));
        assert_eq!(series.iter().map(|m| m.success).sum::<u64>(), 4);
    }

    #[test]
    fn hosts_per_minute_are_bounded() {
        let mut a = Activity::default();
        for i in 0..100 {
            a.delivery(&format!("h{i:03}"), &outcome(true, &[1]), at(0));
        }
        let hosts = &a.minutes[0].hosts;
        assert_eq!(hosts.len(), HOSTS_PER_MINUTE + 1);
        let other = hosts.iter().find(|h| h.host == OTHER_HOSTS).unwrap();
        assert_eq!(other.deliveries, 100 - HOSTS_PER_MINUTE as u64);
        assert_eq!(a.minutes[0].delivered, 100);
    }

    #[test]
    fn merges_workers_and_ranks_slow_hosts() {
        let mut one = Activity::default();
        one.job_finished(JobState::Success, at(0));
        one.delivery("fast", &outcome(true, &[5]), at(0));
        one.delivery("slow", &outcome(true, &[900]), at(0));
        let mut two = Activity::default();
        two.job_finished(JobState::Failed, at(0));
        two.job_finished(JobState::Success, at(120));
        two.delivery("slow", &outcome(false, &[100, 100]), at(120));
        one.merge(&two);
        assert_eq!(one.minutes.len(), 2);
        assert_eq!((one.minutes[0].success, one.minutes[0].failed), (1, 1));
        let slowest = one.slowest_hosts(10);
        assert_eq!(slowest[0].host, "slow");
        assert_eq!((slowest[0].deliveries, slowest[0].failed), (2, 1));
        assert_eq!(slowest[0].attempts, 3);
        assert!((slowest[0].mean_latency_ms() - 366.666).abs() < 0.01);
        assert_eq!(slowest[1].host, "fast");
        assert_eq!(one.slowest_hosts(1).len(), 1);
    }

    #[test]
    fn status_round_trips_and_refuses_foreign_text() {
        let mut activity = Activity::default();
        activity.job_finished(JobState::Success, at(0));
        let status =
            WorkerStatus::new(8, Duration::from_secs(60), Duration::from_secs(5), activity);
        let json = status.to_json();
        assert_eq!(WorkerStatus::parse(&json), Some(status));
        assert_eq!(WorkerStatus::parse(""), None);
        assert_eq!(WorkerStatus::parse(r#"{"jobs":1}"#), None);
        assert_eq!(
            WorkerStatus::parse(
                r#"{"version":99,"slots":1,"leaseIdleMs":1,"heartbeatMs":1,"activity":{}}"#
            ),
            None
        );
    }

    #[test]
    fn a_status_stays_small_under_heavy_traffic() {
        let mut a = Activity::default();
        for minute in 0..MINUTES as i64 {
            for i in 0..200 {
                let host = format!("receiver-{i:03}.hooks.example.com");
                a.delivery(&host, &outcome(i % 7 != 0, &[120, 4000]), at(minute * 60));
                a.job_finished(JobState::Success, at(minute * 60));
            }
        }
        let json =
            WorkerStatus::new(1024, Duration::from_secs(60), Duration::from_secs(5), a).to_json();
        assert!(json.len() < 64 * 1024, "{} bytes", json.len());
    }
}
