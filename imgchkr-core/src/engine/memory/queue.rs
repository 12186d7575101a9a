//! The waiting lines and leases in memory: per tenant, jobs by priority then submission order;
//! tenants served least recently served first; leases by deadline for takeover.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use time::OffsetDateTime;

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
    fn turn(&self, tenant: &str) -> (u64, u64, String) {
        (self.last_served, self.since, tenant.to_owned())
    }
}

/// A job's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Held {
    pub(super) worker: WorkerId,
    pub(super) until: OffsetDateTime,
}

/// Every waiting line and lease.
#[derive(Default)]
pub(super) struct Queue {
    lines: HashMap<String, Line>,
    /// Tenants with jobs waiting, in serving order: (last served turn, since, tenant).
    turns: BTreeSet<(u64, u64, String)>,
    turn: u64,
    waiting: u64,
    in_flight: u64,
    /// Held leases by key, and by deadline for takeover.
    held: HashMap<JobKey, Held>,
    deadlines: BTreeSet<(OffsetDateTime, JobKey)>,
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
        let line = self.lines.entry(tenant.to_owned()).or_default();
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
            .iter()
            .map(|(_, _, tenant)| tenant)
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
            self.deadlines.remove(&(old.until, key.clone()));
        }
        self.deadlines.insert((until, key.clone()));
        self.held.insert(
            key.clone(),
            Held {
                worker: worker.clone(),
                until,
            },
        );
    }

    /// Leases whose deadline is at or before `now`, oldest first, at most `most`.
    pub(super) fn expired(&self, now: OffsetDateTime, most: usize) -> Vec<JobKey> {
        self.deadlines
            .iter()
            .take_while(|(until, _)| *until <= now)
            .take(most)
            .map(|(_, key)| key.clone())
            .collect()
    }

    pub(super) fn holder(&self, key: &JobKey) -> Option<&Held> {
        self.held.get(key)
    }

    /// Moves a lease's deadline to `until`.
    pub(super) fn extend(&mut self, key: &JobKey, until: OffsetDateTime) {
        if let Some(held) = self.held.get_mut(key) {
            self.deadlines.remove(&(held.until, key.clone()));
            held.until = until;
            self.deadlines.insert((until, key.clone()));
        }
    }

    /// Ends `key`'s lease and its place in flight; whether it was held.
    pub(super) fn end(&mut self, key: &JobKey) -> bool {
        let Some(held) = self.held.remove(key) else {
            return false;
        };
        self.deadlines.remove(&(held.until, key.clone()));
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
            self.turns.remove(&line.turn(tenant));
        }
    }

    /// Puts `tenant` back in the turns after its line changed (if it has jobs waiting).
    fn returns(&mut self, tenant: &str) {
        match self.lines.get(tenant) {
            Some(line) if !line.waiting.is_empty() => {
                self.turns.insert(line.turn(tenant));
            }
            Some(line) if line.in_flight == 0 => {
                self.lines.remove(tenant);
            }
            _ => {}
        }
    }
}
