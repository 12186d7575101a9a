//! The waiting lines and leases in memory: per tenant, jobs by priority then submission order;
//! tenants served least recently served first; leases by deadline for takeover.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use super::nanos;
use crate::map::Map;

use crate::engine::{Full, WorkerId};
use crate::job::{JobId, JobKey, Priority};

/// One tenant's line and counters.
#[derive(Default)]
struct Line {
    /// Waiting jobs by (priority rank, submission order).
    waiting: BTreeMap<(u8, u64), JobId>,
    /// Jobs leased and not finished.
    in_flight: u64,
    /// The turn it was last served in (0: never).
    last_served: u64,
    /// The submission that made its line non-empty: among tenants never served, the one
    /// waiting longest goes first.
    since: u64,
}

impl Line {
    /// Its place in the turns: unique among lines with jobs waiting (each turn serves one
    /// tenant, and `since` is a submission's sequence number), so it alone finds the entry.
    fn turn(&self) -> (u64, u64) {
        (self.last_served, self.since)
    }
}

/// A job's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Held {
    pub(super) worker: WorkerId,
    pub(super) until: OffsetDateTime,
    /// Its entry in the deadlines, beside `until` (leases can share a deadline).
    stamp: u64,
}

/// Every waiting line and lease.
#[derive(Default)]
pub(super) struct Queue {
    lines: Map<String, Line>,
    /// Tenants with jobs waiting, in serving order: (last served turn, since) → tenant.
    turns: BTreeMap<(u64, u64), String>,
    turn: u64,
    waiting: u64,
    in_flight: u64,
    /// Held leases by key, and by (deadline, stamp) for takeover: found again without a copy
    /// of the key (the lookups run several times per job).
    held: Map<JobKey, Held>,
    /// By (deadline in nanoseconds, stamp).
    deadlines: BTreeMap<(i128, u64), JobKey>,
    stamps: u64,
}

impl Queue {
    /// Whether `tenant` may queue one more under `capacity` and `share`.
    pub(super) fn room(&self, tenant: &str, capacity: u64, share: u64) -> Result<(), Full> {
        if self.waiting >= capacity {
            return Err(Full::Queue);
        }
        let mine = self
            .lines
            .get(tenant)
            .map_or(0, |line| line.waiting.len() as u64);
        if mine >= share {
            return Err(Full::Tenant);
        }
        Ok(())
    }

    pub(super) fn push(&mut self, tenant: &str, priority: Priority, seq: u64, id: JobId) {
        self.unturn(tenant);
        if !self.lines.contains_key(tenant) {
            self.lines.insert(tenant.to_owned(), Line::default());
        }
        let Some(line) = self.lines.get_mut(tenant) else {
            return;
        };
        if line.waiting.is_empty() {
            line.since = seq;
        }
        line.waiting.insert((priority.rank(), seq), id);
        self.waiting += 1;
        self.returns(tenant);
    }

    /// Takes a waiting job out of its line (cancelled); whether it was waiting.
    pub(super) fn remove(&mut self, tenant: &str, priority: Priority, seq: u64) -> bool {
        self.unturn(tenant);
        let removed = self
            .lines
            .get_mut(tenant)
            .and_then(|line| line.waiting.remove(&(priority.rank(), seq)))
            .is_some();
        if removed {
            self.waiting -= 1;
        }
        self.returns(tenant);
        removed
    }

    /// The next waiting job of the tenant whose turn it is, skipping tenants with
    /// `in_flight_cap` jobs in flight; the tenant goes to the back of the turns.
    pub(super) fn next(&mut self, in_flight_cap: Option<u64>) -> Option<JobKey> {
        let tenant = self
            .turns
            .values()
            .find(|tenant| {
                in_flight_cap
                    .is_none_or(|cap| self.lines.get(*tenant).is_some_and(|l| l.in_flight < cap))
            })?
            .clone();
        self.unturn(&tenant);
        self.turn += 1;
        let turn = self.turn;
        let line = self.lines.get_mut(&tenant)?;
        let (_, id) = line.waiting.pop_first()?;
        line.last_served = turn;
        line.in_flight += 1;
        self.waiting -= 1;
        self.in_flight += 1;
        self.returns(&tenant);
        Some(JobKey::new(tenant, id))
    }

    /// Leases `key` to `worker` until `until` (replacing any earlier lease).
    pub(super) fn hold(&mut self, key: &JobKey, worker: &WorkerId, until: OffsetDateTime) {
        if let Some(old) = self.held.remove(key) {
            self.deadlines.remove(&(nanos(old.until), old.stamp));
        }
        self.stamps += 1;
        let stamp = self.stamps;
        self.deadlines.insert((nanos(until), stamp), key.clone());
        self.held.insert(
            key.clone(),
            Held {
                worker: worker.clone(),
                until,
                stamp,
            },
        );
    }

    /// Leases whose deadline is at or before `now`, oldest first, at most `most`.
    pub(super) fn expired(&self, now: OffsetDateTime, most: usize) -> Vec<JobKey> {
        let now = nanos(now);
        self.deadlines
            .iter()
            .take_while(|((until, _), _)| *until <= now)
            .take(most)
            .map(|(_, key)| key.clone())
            .collect()
    }

    pub(super) fn holder(&self, key: &JobKey) -> Option<&Held> {
        self.held.get(key)
    }

    /// Moves a lease's deadline to `until`.
    pub(super) fn extend(&mut self, key: &JobKey, until: OffsetDateTime) {
        if let Some(held) = self.held.get_mut(key)
            && let Some(entry) = self.deadlines.remove(&(nanos(held.until), held.stamp))
        {
            held.until = until;
            self.deadlines.insert((nanos(until), held.stamp), entry);
        }
    }

    /// Ends `key`'s lease and its place in flight; whether it was held.
    pub(super) fn end(&mut self, key: &JobKey) -> bool {
        let Some(held) = self.held.remove(key) else {
            return false;
        };
        self.deadlines.remove(&(nanos(held.until), held.stamp));
        self.in_flight -= 1;
        if let Some(line) = self.lines.get_mut(&key.tenant) {
            line.in_flight = line.in_flight.saturating_sub(1);
            if line.in_flight == 0 && line.waiting.is_empty() {
                self.lines.remove(&key.tenant);
            }
        }
        true
    }

    pub(super) fn waiting(&self) -> u64 {
        self.waiting
    }

    pub(super) fn in_flight(&self) -> u64 {
        self.in_flight
    }

    /// (tenant, waiting, in flight) for every tenant with either.
    pub(super) fn tenants(&self) -> Vec<(String, u64, u64)> {
        let mut tenants: Vec<_> = self
            .lines
            .iter()
            .map(|(tenant, line)| (tenant.clone(), line.waiting.len() as u64, line.in_flight))
            .collect();
        tenants.sort();
        tenants
    }

    /// Removes `tenant` from the turns before its line changes.
    fn unturn(&mut self, tenant: &str) {
        if let Some(line) = self.lines.get(tenant)
            && !line.waiting.is_empty()
        {
            self.turns.remove(&line.turn());
        }
    }

    /// Puts `tenant` back in the turns after its line changed (if it has jobs waiting).
    fn returns(&mut self, tenant: &str) {
        match self.lines.get(tenant) {
            Some(line) if !line.waiting.is_empty() => {
                self.turns.insert(line.turn(), tenant.to_owned());
            }
            Some(line) if line.in_flight == 0 => {
                self.lines.remove(tenant);
            }
            _ => {}
        }
    }
}
