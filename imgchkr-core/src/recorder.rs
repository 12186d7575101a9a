//! [`Session`]: how the runner's updates of one leased job reach its engine, folded into fewer
//! writes without delaying anything a client or receiver could notice.
//!
//! The runner records a job in five updates (onStart pending and outcome, verdict, final
//! pending and outcome). The session holds an update back while the runner's next update is
//! sure to follow soon, and sends the held ones together with that next one (one
//! [`Engine::record`], in order, atomically):
//!
//! - onStart's pending record waits for the next update: the verdict or onStart's outcome,
//!   whichever comes first (the lease already marked the job started; a job whose worker
//!   dies meanwhile is run again from its start anyway);
//! - an onStart outcome, once the verdict is in, is followed at once by the final pending
//!   record;
//! - a verdict, when no webhook is being sent, is followed at once by the final pending
//!   record (while onStart is being sent it goes at once: a slow receiver must not hide the
//!   verdict);
//! - the final outcome is the last update: it goes with the end of the lease
//!   ([`Session::finish`], one [`Engine::finish`]).
//!
//! The final event's pending record and anything else go at once, with whatever is held. So
//! the final webhook is sent only after everything before it is recorded, a verdict is
//! visible as soon as it would be unbatched, and the lease ends only with the verdict and
//! final outcome recorded: a job costs its engine two writes between lease and finish, in
//! either order of verdict and onStart outcome.

use futures_util::lock::Mutex;

use crate::engine::{Engine, Lease, StoreError};
use crate::job::{DeliveryStatus, Event, JobUpdate};
use crate::notify::BoxFuture;

/// Where the runner records what happens to a job.
pub trait Recorder: Send + Sync {
    /// Records `update` (or holds it for the next write; see [`Session`]).
    fn record(&self, update: JobUpdate) -> BoxFuture<'_, Result<(), StoreError>>;
}

#[derive(Default)]
struct Held {
    /// Updates held back, in the order the runner made them.
    updates: Vec<JobUpdate>,
    /// Webhooks recorded pending and not yet recorded done.
    sending: u32,
    /// Whether the verdict was made (held or recorded).
    verdict: bool,
}

/// The [`Recorder`] of one leased job (see the module docs).
pub struct Session<'a> {
    engine: &'a dyn Engine,
    lease: &'a Lease,
    held: Mutex<Held>,
}

impl<'a> Session<'a> {
    /// A session recording the job of `lease` in `engine`.
    pub fn new(engine: &'a dyn Engine, lease: &'a Lease) -> Session<'a> {
        Session {
            engine,
            lease,
            held: Mutex::new(Held::default()),
        }
    }

    /// Records what is held and ends the lease, in one step.
    pub async fn finish(&self) -> Result<(), StoreError> {
        let mut held = self.held.lock().await;
        self.engine.finish(self.lease, &held.updates).await?;
        held.updates.clear();
        Ok(())
    }

    /// Drops what is held (a failed run: the job runs again from the start).
    pub async fn discard(&self) {
        *self.held.lock().await = Held::default();
    }

    async fn hold_or_send(&self, update: JobUpdate) -> Result<(), StoreError> {
        let mut held = self.held.lock().await;
        let hold = match &update {
            JobUpdate::Verdict { .. } => {
                held.verdict = true;
                held.sending == 0
            }
            JobUpdate::Delivery(record) if record.status == DeliveryStatus::Pending => {
                held.sending += 1;
                record.event == Event::OnStart
            }
            JobUpdate::Delivery(record) => {
                held.sending = held.sending.saturating_sub(1);
                match record.event {
                    Event::OnStart => held.verdict,
                    Event::OnSuccess | Event::OnFailure => true,
                }
            }
            _ => false,
        };
        held.updates.push(update);
        if hold {
            return Ok(());
        }
        let result = self.engine.record(self.lease, &held.updates).await;
        // Sent or not, these are done with: on an error the runner fails and the job runs
        // again from the start.
        held.updates.clear();
        result
    }
}

impl Recorder for Session<'_> {
    fn record(&self, update: JobUpdate) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.hold_or_send(update))
    }
}
