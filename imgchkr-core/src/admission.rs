//! Admitting a submission: the job it becomes, and the answer to a resubmission.
//!
//! Idempotency is core's rule, the same on every engine: a submission names its job's id (the
//! body's `id`, or one derived from an `Idempotency-Key`, or a random one). The engine records
//! the job only if its tenant has no job with that id ([`Engine::submit`]); when it has one,
//! the same submission (location, path, notification URLs and priority) gets that job back
//! (`200`), any other gets [`Admitted::Conflict`] (`409`). Ids are scoped per tenant, so what
//! one tenant submits is never visible to another.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::engine::{Admission, Engine, StoreError, Submitted};
use crate::job::{Job, JobId};
use crate::submission::Submission;

/// What became of a submission.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Admitted {
    /// A new job, recorded and queued (`202`).
    Accepted(Box<Job>),
    /// The same submission was made before: its job as it stands (`200`).
    Existing(Box<Job>),
    /// Another submission of this tenant uses the id (`409`).
    Conflict,
}

/// The job `submission` of `tenant` becomes, with id `id`, accepted at `now`.
pub fn new_job(submission: &Submission, tenant: &str, id: JobId, now: OffsetDateTime) -> Job {
    let mut job = Job::new(
        id,
        submission.asset_path.clone(),
        submission.notification_urls.clone(),
    );
    job.tenant = tenant.to_owned();
    job.priority = submission.priority;
    job.created_at = now;
    job
}

/// Records and queues `job` under `admission`, answering a resubmission by the rule above.
pub async fn admit<E: Engine + ?Sized>(
    engine: &E,
    job: Job,
    admission: Admission,
) -> Result<Admitted, StoreError> {
    Ok(match engine.submit(&job, admission).await? {
        Submitted::New => Admitted::Accepted(Box::new(job)),
        Submitted::Existing(existing) if same_submission(&existing, &job) => {
            Admitted::Existing(existing)
        }
        Submitted::Existing(_) => Admitted::Conflict,
    })
}

/// Whether `job` asks for what `existing` asked for.
pub fn same_submission(existing: &Job, job: &Job) -> bool {
    existing.tenant == job.tenant
        && existing.asset_path == job.asset_path
        && existing.notification_urls == job.notification_urls
        && existing.priority == job.priority
}

/// Derives job ids from `Idempotency-Key`s: the same key from the same tenant always names
/// the same job. Keyed by a server secret, so nobody can compute the id a key will get.
#[derive(Clone)]
pub struct IdDeriver {
    namespace: Uuid,
}

impl std::fmt::Debug for IdDeriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdDeriver").finish_non_exhaustive()
    }
}

impl IdDeriver {
    /// Ids derived under `secret` (every API process of a deployment must use the same).
    pub fn new(secret: &[u8]) -> IdDeriver {
        // A secret namespace makes the name-based (SHA-1) UUID a keyed hash of the name.
        let namespace = Uuid::new_v5(&Uuid::NAMESPACE_OID, secret);
        IdDeriver { namespace }
    }

    /// The id of `tenant`'s `key`.
    pub fn derive(&self, tenant: &str, key: &str) -> JobId {
        let mut name = Vec::with_capacity(tenant.len() + key.len() + 1);
        name.extend_from_slice(tenant.as_bytes());
        name.push(b'\n');
        name.extend_from_slice(key.as_bytes());
        JobId(Uuid::new_v5(&self.namespace, &name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_depend_on_tenant_key_and_secret() {
        let a = IdDeriver::new(b"secret one");
        let b = IdDeriver::new(b"secret two");
        assert_eq!(a.derive("t", "order-42"), a.derive("t", "order-42"));
        assert_ne!(a.derive("t", "order-42"), a.derive("u", "order-42"));
        assert_ne!(a.derive("t", "order-42"), a.derive("t", "order-43"));
        assert_ne!(a.derive("t", "order-42"), b.derive("t", "order-42"));
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(a.derive("ab", "c"), a.derive("a", "bc"));
    }
}
