//! The deliveries a process holds, and which it takes next: sans-IO, so the order rules are
//! tested without a broker.
//!
//! The broker pushes deliveries ahead of the worker's leases (up to its prefetch per queue);
//! they wait here until taken. A take serves tenants round-robin (the least recently served
//! first; a tenant never served, by its first delivery's arrival), and within a tenant the
//! parked queue first, then higher priorities, FIFO within one (arrival order, which is the
//! queue's order). Tenants at the in-flight cap are skipped. So among what a process holds,
//! the order is the one every other engine keeps for its whole queue.

use std::collections::{BTreeMap, HashMap, HashSet};

use imgchkr_core::JobKey;

/// Where a delivery came from, in serving order within a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Line {
    /// The dead-letter queue: jobs past the delivery limit, to be parked.
    Parked,
    /// A priority queue, by rank (0 high, 1 normal, 2 low).
    Priority(u8),
}

/// One delivery held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Held {
    /// The process's handle of it (unique per process).
    pub(crate) receipt: u64,
    /// The job.
    pub(crate) key: JobKey,
    /// Where it came from.
    pub(crate) line: Line,
    /// How many times the broker handed it out, this time included.
    pub(crate) deliveries: u32,
}

/// The deliveries waiting to be taken, and the taken ones' tenants (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Hold {
    /// Waiting, by arrival.
    waiting: BTreeMap<u64, Held>,
    /// Taken and not yet settled: receipt → (arrival, delivery).
    taken: HashMap<u64, (u64, Held)>,
    /// Per tenant: deliveries taken and not settled.
    in_flight: HashMap<String, u64>,
    /// Per tenant: the turn it was last served in.
    served: HashMap<String, u64>,
    arrivals: u64,
    turns: u64,
    /// A priority queue's consumer window (its prefetch); 0 tracks no credit.
    window: usize,
    /// Per tenant and line: deliveries arrived on this connection and not settled (the
    /// window in use).
    unsettled: HashMap<(String, Line), usize>,
    /// The receipts counted in `unsettled`.
    counted: HashSet<u64>,
    /// Lines whose whole window was in use when one of theirs settled: the broker may be
    /// about to push the next, so the tenant's lower lines wait until it comes or the queue
    /// is seen empty.
    starved: HashSet<(String, Line)>,
}

/// Tenants remembered as served at most (beyond, those with nothing held are forgotten and
/// queue as never served).
const SERVED_KEPT: usize = 4096;

impl Hold {
    /// A hold whose priority lines each have `window` deliveries of credit from the broker.
    pub(crate) fn with_window(window: usize) -> Hold {
        Hold {
            window,
            ..Hold::default()
        }
    }

    /// A delivery arrived.
    pub(crate) fn arrive(&mut self, held: Held) {
        if matches!(held.line, Line::Priority(_)) {
            let line = (held.key.tenant.clone(), held.line);
            self.starved.remove(&line);
            *self.unsettled.entry(line).or_default() += 1;
            self.counted.insert(held.receipt);
        }
        self.arrivals += 1;
        self.waiting.insert(self.arrivals, held);
    }

    /// Whether a take could give something now (ignoring caps).
    #[cfg(test)]
    pub(crate) fn any_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// How many wait.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Takes up to `max` deliveries in serving order, skipping tenants with `cap` taken.
    pub(crate) fn take(&mut self, max: usize, cap: Option<u64>) -> Vec<Held> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some(arrival) = self.next(cap) else {
                break;
            };
            let Some(held) = self.waiting.remove(&arrival) else {
                break;
            };
            self.turns += 1;
            self.served.insert(held.key.tenant.clone(), self.turns);
            *self.in_flight.entry(held.key.tenant.clone()).or_default() += 1;
            self.taken.insert(held.receipt, (arrival, held.clone()));
            out.push(held);
        }
        self.forget_served();
        out
    }

    /// The arrival of the next delivery to take.
    fn next(&self, cap: Option<u64>) -> Option<u64> {
        // Per tenant: its turn key and its best delivery (line, arrival).
        let mut best: HashMap<&str, (Line, u64)> = HashMap::new();
        let mut first: HashMap<&str, u64> = HashMap::new();
        for (&arrival, held) in &self.waiting {
            let tenant = held.key.tenant.as_str();
            if let Some(cap) = cap
                && self.in_flight.get(tenant).copied().unwrap_or(0) >= cap
            {
                continue;
            }
            if self.behind_a_starved_line(held) {
                continue;
            }
            first.entry(tenant).or_insert(arrival);
            let candidate = (held.line, arrival);
            best.entry(tenant)
                .and_modify(|b| *b = (*b).min(candidate))
                .or_insert(candidate);
        }
        // Never served (by first arrival) before served (by last turn).
        let tenant = best
            .keys()
            .min_by_key(|tenant| match self.served.get(**tenant) {
                Some(turn) => (1, *turn),
                None => (0, first[**tenant]),
            })?;
        Some(best[tenant].1)
    }

    /// Whether a higher line of `held`'s tenant may be about to get a delivery.
    fn behind_a_starved_line(&self, held: &Held) -> bool {
        !self.starved.is_empty()
            && self
                .starved
                .iter()
                .any(|(tenant, line)| *tenant == held.key.tenant && *line < held.line)
    }

    /// The lines waiting for the broker's next delivery (see `starved`).
    pub(crate) fn starved(&self) -> Vec<(String, Line)> {
        self.starved.iter().cloned().collect()
    }

    /// Whether any line waits for the broker's next delivery.
    pub(crate) fn any_starved(&self) -> bool {
        !self.starved.is_empty()
    }

    /// `line` of `tenant` has nothing more coming (its queue was seen empty).
    pub(crate) fn unstarve(&mut self, tenant: &str, line: Line) {
        self.starved.remove(&(tenant.to_owned(), line));
    }

    /// Forgets a taken delivery (acknowledged, given back to the broker, or lost); its
    /// line's window has room again.
    pub(crate) fn settle(&mut self, receipt: u64) -> Option<Held> {
        let held = self.release(receipt)?;
        if self.counted.remove(&receipt) {
            let line = (held.key.tenant.clone(), held.line);
            if let Some(n) = self.unsettled.get_mut(&line) {
                if self.window > 0 && *n >= self.window {
                    self.starved.insert(line.clone());
                }
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.unsettled.remove(&line);
                }
            }
        }
        Some(held)
    }

    fn release(&mut self, receipt: u64) -> Option<Held> {
        let (_, held) = self.taken.remove(&receipt)?;
        if let Some(n) = self.in_flight.get_mut(&held.key.tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.in_flight.remove(&held.key.tenant);
            }
        }
        Some(held)
    }

    /// Puts a taken delivery back where it was, as if never taken.
    pub(crate) fn untake(&mut self, receipt: u64) {
        if let Some((arrival, _)) = self.taken.get(&receipt) {
            let arrival = *arrival;
            if let Some(held) = self.release(receipt) {
                self.waiting.insert(arrival, held);
            }
        }
    }

    /// Drops every waiting delivery (their connection is gone: the broker hands them out
    /// again); returns their receipts. Taken ones stay until settled.
    pub(crate) fn drop_waiting(&mut self) -> Vec<u64> {
        let gone = self.waiting.values().map(|held| held.receipt).collect();
        self.waiting.clear();
        // A new connection's consumers start with their whole window.
        self.unsettled.clear();
        self.counted.clear();
        self.starved.clear();
        gone
    }

    /// Whether `receipt` is taken and not settled.
    pub(crate) fn is_taken(&self, receipt: u64) -> bool {
        self.taken.contains_key(&receipt)
    }

    fn forget_served(&mut self) {
        if self.served.len() <= SERVED_KEPT {
            return;
        }
        let busy: std::collections::HashSet<&str> = self
            .waiting
            .values()
            .map(|h| h.key.tenant.as_str())
            .chain(self.in_flight.keys().map(String::as_str))
            .collect();
        let keep: HashMap<String, u64> = self
            .served
            .iter()
            .filter(|(tenant, _)| busy.contains(tenant.as_str()))
            .map(|(t, n)| (t.clone(), *n))
            .collect();
        self.served = keep;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgchkr_core::JobId;

    fn held(receipt: u64, tenant: &str, line: Line) -> Held {
        Held {
            receipt,
            key: JobKey::new(tenant, JobId::random()),
            line,
            deliveries: 1,
        }
    }

    fn receipts(taken: &[Held]) -> Vec<u64> {
        taken.iter().map(|h| h.receipt).collect()
    }

    #[test]
    fn higher_priority_first_fifo_within_one() {
        let mut hold = Hold::default();
        for (receipt, rank) in [(1, 2), (2, 1), (3, 0), (4, 1), (5, 0), (6, 2)] {
            hold.arrive(held(receipt, "acme", Line::Priority(rank)));
        }
        let order: Vec<u64> = (0..6).flat_map(|_| receipts(&hold.take(1, None))).collect();
        assert_eq!(order, [3, 5, 2, 4, 1, 6]);
    }

    #[test]
    fn round_robin_across_tenants_in_a_batch_and_after() {
        let mut hold = Hold::default();
        for (receipt, tenant) in [(1, "a"), (2, "a"), (3, "a"), (4, "b"), (5, "c"), (6, "c")] {
            hold.arrive(held(receipt, tenant, Line::Priority(1)));
        }
        assert_eq!(receipts(&hold.take(6, None)), [1, 4, 5, 2, 6, 3]);
        for (receipt, tenant) in [(7, "a"), (8, "b"), (9, "c")] {
            hold.arrive(held(receipt, tenant, Line::Priority(1)));
        }
        // a was served last, b longest ago.
        assert_eq!(receipts(&hold.take(3, None)), [8, 9, 7]);
    }

    #[test]
    fn parked_first_within_a_tenant() {
        let mut hold = Hold::default();
        hold.arrive(held(1, "a", Line::Priority(0)));
        hold.arrive(held(2, "a", Line::Parked));
        assert_eq!(receipts(&hold.take(2, None)), [2, 1]);
    }

    #[test]
    fn a_tenant_at_its_cap_waits_until_one_settles() {
        let mut hold = Hold::default();
        hold.arrive(held(1, "a", Line::Priority(1)));
        hold.arrive(held(2, "a", Line::Priority(1)));
        hold.arrive(held(3, "b", Line::Priority(1)));
        assert_eq!(receipts(&hold.take(3, Some(1))), [1, 3]);
        assert!(hold.take(3, Some(1)).is_empty());
        assert!(hold.settle(1).is_some());
        assert_eq!(receipts(&hold.take(3, Some(1))), [2]);
    }

    #[test]
    fn untaken_deliveries_go_back_in_their_place() {
        let mut hold = Hold::default();
        hold.arrive(held(1, "a", Line::Priority(1)));
        hold.arrive(held(2, "a", Line::Priority(1)));
        let first = hold.take(1, Some(1));
        assert_eq!(receipts(&first), [1]);
        hold.untake(1);
        assert!(!hold.is_taken(1));
        assert_eq!(receipts(&hold.take(2, None)), [1, 2]);
    }

    #[test]
    fn a_lower_line_waits_while_a_full_higher_window_is_refilled() {
        // Windows of 2: the high line's two deliveries fill its window.
        let mut hold = Hold::with_window(2);
        hold.arrive(held(1, "a", Line::Priority(0)));
        hold.arrive(held(2, "a", Line::Priority(0)));
        hold.arrive(held(3, "a", Line::Priority(1)));
        hold.arrive(held(4, "b", Line::Priority(1)));
        assert_eq!(receipts(&hold.take(1, None)), [1]);
        assert!(hold.settle(1).is_some());
        assert_eq!(hold.starved(), [("a".to_owned(), Line::Priority(0))]);
        assert_eq!(receipts(&hold.take(1, None)), [4], "b is not held back");
        assert_eq!(receipts(&hold.take(1, None)), [2]);
        assert!(hold.settle(2).is_some());
        // a's normal delivery waits for the high line's refill…
        assert!(hold.take(1, None).is_empty());
        hold.arrive(held(5, "a", Line::Priority(0)));
        assert!(hold.starved().is_empty());
        assert_eq!(receipts(&hold.take(2, None)), [5, 3]);
        // …or for its queue to be seen empty.
        hold.arrive(held(6, "a", Line::Priority(0)));
        hold.arrive(held(7, "a", Line::Priority(1)));
        assert_eq!(receipts(&hold.take(1, None)), [6]);
        assert!(hold.settle(6).is_some());
        assert!(hold.take(1, None).is_empty());
        hold.unstarve("a", Line::Priority(0));
        assert_eq!(receipts(&hold.take(1, None)), [7]);
    }

    #[test]
    fn a_window_not_full_starves_nothing() {
        let mut hold = Hold::with_window(3);
        hold.arrive(held(1, "a", Line::Priority(0)));
        hold.arrive(held(2, "a", Line::Priority(1)));
        assert_eq!(receipts(&hold.take(1, None)), [1]);
        assert!(hold.settle(1).is_some());
        assert!(hold.starved().is_empty());
        assert_eq!(receipts(&hold.take(1, None)), [2]);
    }

    #[test]
    fn dropped_waiting_deliveries_leave_taken_ones() {
        let mut hold = Hold::default();
        hold.arrive(held(1, "a", Line::Priority(1)));
        hold.arrive(held(2, "a", Line::Priority(1)));
        hold.take(1, None);
        assert_eq!(hold.drop_waiting(), [2]);
        assert!(hold.is_taken(1));
        assert!(!hold.any_waiting());
    }
}
