//! The key layout under one prefix. Every variable part (a tenant, a job id) is the *last*
//! component of its key, so no two tenants' keys can collide whatever their names contain.

use imgchkr_core::{JobId, JobState};

/// The consumer group every worker joins on every tenant stream.
pub(crate) const GROUP: &str = "workers";

/// Key names, built from the configured prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    /// `<p>job:` — followed by the id: one hash per job.
    pub(crate) fn job_prefix(&self) -> String {
        format!("{}job:", self.prefix)
    }

    /// `<p>job:<id>`.
    pub(crate) fn job(&self, id: JobId) -> String {
        format!("{}job:{id}", self.prefix)
    }

    /// `<p>seq`: the insertion counter (list order).
    pub(crate) fn seq(&self) -> String {
        format!("{}seq", self.prefix)
    }

    /// `<p>finished`: finished jobs scored by verdict time in µs (eviction order).
    pub(crate) fn finished(&self) -> String {
        format!("{}finished", self.prefix)
    }

    /// `<p>idx:` — the list indexes: `idx:<any|state>:g` (every job) and
    /// `idx:<any|state>:t:<tenant>` (one tenant's), scored by insertion sequence.
    pub(crate) fn index_prefix(&self) -> String {
        format!("{}idx:", self.prefix)
    }

    /// The index a list query reads.
    pub(crate) fn index(&self, state: Option<JobState>, tenant: Option<&str>) -> String {
        let state = state.map_or("any", JobState::name);
        match tenant {
            None => format!("{}idx:{state}:g", self.prefix),
            Some(tenant) => format!("{}idx:{state}:t:{tenant}", self.prefix),
        }
    }

    /// `<p>q:s:` — followed by the tenant: one stream per tenant.
    pub(crate) fn stream_prefix(&self) -> String {
        format!("{}q:s:", self.prefix)
    }

    /// `<p>q:s:<tenant>`.
    pub(crate) fn stream(&self, tenant: &str) -> String {
        format!("{}q:s:{tenant}", self.prefix)
    }

    /// `<p>q:waiting`: hash, tenant → entries not yet handed to a worker.
    pub(crate) fn waiting(&self) -> String {
        format!("{}q:waiting", self.prefix)
    }

    /// `<p>q:depth`: entries not yet handed to a worker, all tenants.
    pub(crate) fn depth(&self) -> String {
        format!("{}q:depth", self.prefix)
    }

    /// `<p>q:rr`: list, the tenants with waiting entries in serving order.
    pub(crate) fn rotation(&self) -> String {
        format!("{}q:rr", self.prefix)
    }

    /// `<p>q:tenants`: set, every tenant with a stream (waiting or pending entries).
    pub(crate) fn tenants(&self) -> String {
        format!("{}q:tenants", self.prefix)
    }

    /// `<p>q:stats`: hash, the deployment's counts (`reclaimed`, `parked`).
    pub(crate) fn stats(&self) -> String {
        format!("{}q:stats", self.prefix)
    }

    /// `<p>q:bell`: list of wake-up tokens, one per push (capped), for idle workers' BLPOP.
    pub(crate) fn bell(&self) -> String {
        format!("{}q:bell", self.prefix)
    }
}
