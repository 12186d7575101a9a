//! Job records in memory: lookup by key, listing newest first, retention with tombstones.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use time::OffsetDateTime;

use super::nanos;
use crate::map::Map;

use crate::engine::{ListQuery, Lookup, Retention};
use crate::job::{Job, JobKey};

/// One job and what the engine keeps beside it.
pub(super) struct Record {
    pub(super) job: Job,
    /// Submission order: listing and FIFO.
    pub(super) seq: u64,
    /// How many times the job was handed out.
    pub(super) deliveries: u32,
    /// Whether it is in the finished index (retention applies).
    pub(super) retired: bool,
}

/// Every job, indexed for listing and retention.
#[derive(Default)]
pub(super) struct Records {
    /// Boxed: growing the table moves pointers, not records (a job is several hundred bytes,
    /// and the table grows under the engine's lock, stalling every submission meanwhile).
    jobs: Map<JobKey, Box<Record>>,
    /// Every job by submission order (the other indexes name jobs by this number alone).
    by_seq: BTreeMap<u64, JobKey>,
    /// Per tenant: its jobs by submission order.
    tenants: Map<String, BTreeSet<u64>>,
    /// Finished and cancelled jobs, by when they finished (in nanoseconds): the age-retention
    /// order.
    retired: BTreeSet<(i128, u64)>,
    /// The same per tenant: the count-retention order.
    retired_by_tenant: Map<String, BTreeSet<(i128, u64)>>,
    /// Expired keys, remembered for `410`, and when they expired (oldest first).
    tombstones: Map<JobKey, OffsetDateTime>,
    tombstone_order: VecDeque<(OffsetDateTime, JobKey)>,
    next_seq: u64,
}

impl Records {
    pub(super) fn get(&self, key: &JobKey) -> Option<&Record> {
        self.jobs.get(key).map(|record| &**record)
    }

    pub(super) fn get_mut(&mut self, key: &JobKey) -> Option<&mut Record> {
        self.jobs.get_mut(key).map(|record| &mut **record)
    }

    pub(super) fn lookup(&self, key: &JobKey) -> Lookup {
        match self.jobs.get(key) {
            Some(record) => Lookup::Found(Box::new(record.job.clone())),
            None if self.tombstones.contains_key(key) => Lookup::Expired,
            None => Lookup::Unknown,
        }
    }

    /// Records a new job; returns its sequence number.
    pub(super) fn insert(&mut self, job: Job) -> u64 {
        self.next_seq += 1;
        let seq = self.next_seq;
        let key = job.key();
        // A key resubmitted after it expired is a new job.
        self.tombstones.remove(&key);
        self.by_seq.insert(seq, key.clone());
        self.tenants
            .entry(key.tenant.clone())
            .or_default()
            .insert(seq);
        self.jobs.insert(
            key,
            Box::new(Record {
                job,
                seq,
                deliveries: 0,
                retired: false,
            }),
        );
        seq
    }

    /// Puts a finished or cancelled job under retention (once).
    pub(super) fn retire(&mut self, key: &JobKey) {
        let Some(record) = self.jobs.get_mut(key) else {
            return;
        };
        if record.retired {
            return;
        }
        record.retired = true;
        let at = nanos(record.job.finished_at.unwrap_or(record.job.created_at));
        self.retired.insert((at, record.seq));
        self.retired_by_tenant
            .entry(key.tenant.clone())
            .or_default()
            .insert((at, record.seq));
    }

    /// Jobs held for `tenant`.
    pub(super) fn count(&self, tenant: &str) -> u64 {
        self.tenants.get(tenant).map_or(0, |jobs| jobs.len() as u64)
    }

    /// Newest first, as `query` selects.
    pub(super) fn list(&self, query: &ListQuery) -> Vec<Job> {
        let end = match &query.before {
            None => u64::MAX,
            Some(cursor) => match self.jobs.get(cursor) {
                Some(record)
                    if query
                        .tenant
                        .as_ref()
                        .is_none_or(|tenant| *tenant == cursor.tenant) =>
                {
                    record.seq
                }
                _ => return Vec::new(),
            },
        };
        let seqs: Box<dyn Iterator<Item = &u64>> = match &query.tenant {
            Some(tenant) => match self.tenants.get(tenant) {
                Some(index) => Box::new(index.range(..end).rev()),
                None => return Vec::new(),
            },
            None => Box::new(self.by_seq.range(..end).rev().map(|(seq, _)| seq)),
        };
        seqs.filter_map(|seq| self.by_seq.get(seq))
            .filter_map(|key| self.jobs.get(key))
            .map(|record| &record.job)
            .filter(|job| query.state.is_none_or(|state| job.state == state))
            .take(query.limit)
            .cloned()
            .collect()
    }

    /// Expires finished jobs past `retention.max_age` and, per tenant, the oldest finished
    /// jobs past `retention.max_jobs_per_tenant`, at most `budget`; drops old tombstones.
    /// Returns the jobs expired.
    pub(super) fn purge(&mut self, retention: &Retention, now: OffsetDateTime, budget: u64) -> u64 {
        let mut expired = 0;
        // Finished at or before this, a job is past its age (`at + max_age <= now`).
        let age = i128::try_from(retention.max_age.as_nanos()).unwrap_or(i128::MAX);
        let cutoff = nanos(now).saturating_sub(age);
        while expired < budget {
            let Some(&(at, seq)) = self.retired.first() else {
                break;
            };
            if at > cutoff {
                break;
            }
            let Some(key) = self.by_seq.get(&seq).cloned() else {
                self.retired.remove(&(at, seq));
                continue;
            };
            self.expire(&key, now);
            expired += 1;
        }
        let crowded: Vec<String> = self
            .tenants
            .iter()
            .filter(|(_, jobs)| jobs.len() as u64 > retention.max_jobs_per_tenant)
            .map(|(tenant, _)| tenant.clone())
            .collect();
        for tenant in crowded {
            expired += self.evict_tenant(&tenant, retention, now, budget.saturating_sub(expired));
        }
        while let Some((at, key)) = self.tombstone_order.front() {
            let old = *at + retention.tombstone_age <= now;
            if !old && self.tombstone_order.len() as u64 <= retention.max_tombstones {
                break;
            }
            if self.tombstones.get(key) == Some(at) {
                self.tombstones.remove(key);
            }
            self.tombstone_order.pop_front();
        }
        expired
    }

    /// Expires `tenant`'s oldest finished jobs while it holds more than its share, at most
    /// `budget`.
    pub(super) fn evict_tenant(
        &mut self,
        tenant: &str,
        retention: &Retention,
        now: OffsetDateTime,
        budget: u64,
    ) -> u64 {
        let mut expired = 0;
        while expired < budget && self.count(tenant) > retention.max_jobs_per_tenant {
            let Some(&(_, seq)) = self.retired_by_tenant.get(tenant).and_then(BTreeSet::first)
            else {
                break;
            };
            let Some(key) = self.by_seq.get(&seq).cloned() else {
                break;
            };
            self.expire(&key, now);
            expired += 1;
        }
        expired
    }

    /// Forgets `key`, leaving a tombstone.
    fn expire(&mut self, key: &JobKey, now: OffsetDateTime) {
        let Some(record) = self.jobs.remove(key) else {
            return;
        };
        self.by_seq.remove(&record.seq);
        if let Some(jobs) = self.tenants.get_mut(&key.tenant) {
            jobs.remove(&record.seq);
            if jobs.is_empty() {
                self.tenants.remove(&key.tenant);
            }
        }
        let at = nanos(record.job.finished_at.unwrap_or(record.job.created_at));
        self.retired.remove(&(at, record.seq));
        if let Some(retired) = self.retired_by_tenant.get_mut(&key.tenant) {
            retired.remove(&(at, record.seq));
            if retired.is_empty() {
                self.retired_by_tenant.remove(&key.tenant);
            }
        }
        self.tombstones.insert(key.clone(), now);
        self.tombstone_order.push_back((now, key.clone()));
    }
}
