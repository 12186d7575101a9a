//! [`JobSession`]: the store one leased job runs against, folding the runner's updates into
//! fewer round trips without delaying anything a client or receiver could notice.
//!
//! Core's runner records a job in six updates (started, onStart pending and outcome, verdict,
//! final pending and outcome). The session holds back an update only when the runner's next
//! update follows at once, and sends the held ones together with that next one (one script,
//! in order, atomically):
//!
//! - `started` is always followed at once by onStart's pending record;
//! - an onStart outcome, once the verdict is in, is followed at once by the final pending
//!   record;
//! - a verdict, when no webhook is being sent, is followed at once by the final pending
//!   record (while onStart is being sent it goes at once: a slow receiver must not hide the
//!   verdict);
//! - the final outcome is the last update: it goes with the acknowledgement
//!   ([`RedisQueue::finish`](super::RedisQueue::finish)), in the same script.
//!
//! A pending record (a webhook about to be sent) and anything else go at once, with whatever
//! is held. So every webhook is sent only after everything before it is recorded, a verdict
//! is visible as soon as it would be unbatched (give or take one update's round trip), and
//! the entry is acknowledged only with the verdict and final outcome recorded.

use imgchkr_core::notify::BoxFuture;
use imgchkr_core::store::{Inserted, ListQuery};
use imgchkr_core::{DeliveryStatus, Event, Job, JobId, JobStore, JobUpdate, StoreError};
use tokio::sync::Mutex;

use super::store::RedisStore;

#[derive(Default)]
struct State {
    /// Updates held back, in the order the runner made them.
    held: Vec<JobUpdate>,
    /// Webhooks recorded pending and not yet recorded done.
    sending: u32,
    /// Whether the verdict was made (held or recorded).
    verdict: bool,
}

/// The store one leased job runs against (see the module docs). Updates to other jobs, and
/// every read, go straight to the store (a read sends what is held first).
pub struct JobSession {
    store: RedisStore,
    id: JobId,
    state: Mutex<State>,
}

impl std::fmt::Debug for JobSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobSession")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl JobSession {
    /// A session for job `id`.
    pub fn new(store: RedisStore, id: JobId) -> JobSession {
        JobSession {
            store,
            id,
            state: Mutex::new(State::default()),
        }
    }

    /// The job this session records.
    pub fn id(&self) -> JobId {
        self.id
    }

    /// Takes the updates held back (for [`RedisQueue::finish`](super::RedisQueue::finish)).
    pub async fn take_held(&self) -> Vec<JobUpdate> {
        std::mem::take(&mut self.state.lock().await.held)
    }

    /// Sends the updates held back, if any.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let mut state = self.state.lock().await;
        if state.held.is_empty() {
            return Ok(());
        }
        self.store.apply_all(self.id, &state.held).await?;
        state.held.clear();
        Ok(())
    }

    async fn record(&self, update: JobUpdate) -> Result<(), StoreError> {
        let mut state = self.state.lock().await;
        let hold = match &update {
            JobUpdate::Started { .. } => true,
            JobUpdate::Verdict { .. } => {
                state.verdict = true;
                state.sending == 0
            }
            JobUpdate::Delivery(record) if record.status == DeliveryStatus::Pending => {
                state.sending += 1;
                false
            }
            JobUpdate::Delivery(record) => {
                state.sending = state.sending.saturating_sub(1);
                match record.event {
                    Event::OnStart => state.verdict,
                    Event::OnSuccess | Event::OnFailure => true,
                }
            }
            _ => false,
        };
        state.held.push(update);
        if hold {
            return Ok(());
        }
        let result = self.store.apply_all(self.id, &state.held).await;
        // Sent or not, these are done with: on an error the runner fails and the job runs
        // again from the start.
        state.held.clear();
        result.map(|_| ())
    }
}

impl JobStore for JobSession {
    fn insert(&self, job: Job) -> BoxFuture<'_, Result<Inserted, StoreError>> {
        self.store.insert(job)
    }

    fn get(&self, id: JobId) -> BoxFuture<'_, Result<Option<Job>, StoreError>> {
        Box::pin(async move {
            self.flush().await?;
            self.store.get(id).await
        })
    }

    fn update(&self, id: JobId, update: JobUpdate) -> BoxFuture<'_, Result<(), StoreError>> {
        if id != self.id {
            return self.store.update(id, update);
        }
        Box::pin(self.record(update))
    }

    fn list(&self, query: ListQuery) -> BoxFuture<'_, Result<Vec<Job>, StoreError>> {
        Box::pin(async move {
            self.flush().await?;
            self.store.list(query).await
        })
    }
}
