//! The queue's writes: submit, cancel, lease, heartbeat, record and finish, release, and the
//! takeover of a dead owner's leases at open. Each runs inside the writer's transaction.
//!
//! A waiting job is a `jobs` row in state `queued`; a leased one has a `lease_until`. The
//! `tenants` row of each tenant counts both and holds its round-robin turn, kept in step by
//! every write here (so admission and leasing never count rows).

use imgchkr_core::engine::{Admission, Cancel, Full, Lease, LeaseRequest, Leased, Submitted};
use imgchkr_core::engine::{StoreError, WORKER_SEEN_FOR, WorkerId};
use imgchkr_core::{Job, JobKey, JobState, JobUpdate};
use rusqlite::OptionalExtension as _;
use time::OffsetDateTime;
use tracing::error;

use crate::error::Failure;
use crate::row::{Documents, Stored, at_seq, find, micros, normalize, opt_micros, tombstoned};
use crate::writer::Tx;

/// Where an expired or released lease's deadline is put: long past, so any lease takes it.
const EXPIRED: i64 = 0;

/// Expires every lease left by the previous owner (dead: this process holds the lock), so the
/// next lease takes their jobs over at once, as new deliveries.
pub(crate) fn recover(tx: &mut Tx<'_>) -> Result<(), Failure> {
    let expired = tx
        .conn
        .prepare_cached("UPDATE jobs SET lease_until = ?1 WHERE lease_until > ?1")?
        .execute([EXPIRED])?;
    tx.wakes += expired;
    Ok(())
}

pub(crate) fn submit(
    tx: &mut Tx<'_>,
    job: &Job,
    admission: Admission,
) -> Result<Submitted, Failure> {
    let id = job.id.to_string();
    let existing = |tx: &Tx<'_>| -> Result<Option<Submitted>, Failure> {
        Ok(find(tx.conn, &job.tenant, &id)?.map(|held| Submitted::Existing(Box::new(held.job))))
    };
    let mine = tx.cache.tenants.get(&job.tenant).copied().unwrap_or(0);
    let full = if tx.cache.waiting >= admission.capacity {
        Some(Full::Queue)
    } else {
        (mine >= admission.tenant_share).then_some(Full::Tenant)
    };
    if let Some(full) = full {
        // A resubmission is answered even when the queue is full.
        return match existing(tx)? {
            Some(submitted) => Ok(submitted),
            None => Err(Failure::Refused(StoreError::Full(full))),
        };
    }
    let mut job = job.clone();
    job.state = JobState::Queued;
    normalize(&mut job);
    let docs = Documents::of(&job)?;
    let urls = &job.notification_urls;
    let inserted = tx
        .conn
        .prepare_cached(
            "INSERT INTO jobs (tenant, id, state, priority, location, path, on_start, \
             on_success, on_failure, errors, warnings, notifications, created_at, started_at, \
             finished_at, deliveries) \
             VALUES (?1, ?2, 'queued', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 0) \
             ON CONFLICT (tenant, id) DO NOTHING",
        )?
        .execute(rusqlite::params![
            job.tenant,
            id,
            job.priority.rank(),
            job.asset_path.location(),
            job.asset_path.path(),
            urls.on_start.as_str(),
            urls.on_success.as_str(),
            urls.on_failure.as_str(),
            docs.errors,
            docs.warnings,
            docs.notifications,
            micros(job.created_at),
            opt_micros(job.started_at),
            opt_micros(job.finished_at),
        ])?;
    if inserted == 0 {
        // The key is taken (the common case, a new key, costs no lookup before the insert).
        return existing(tx)?.ok_or_else(|| {
            crate::error::corrupt(job.key(), "the key is taken, yet no job holds it")
        });
    }
    let seq = tx.conn.last_insert_rowid();
    if tx.cache.tombstones > 0 {
        // A key submitted again after it expired is a new job.
        let gone = tx
            .conn
            .prepare_cached("DELETE FROM tombstones WHERE tenant = ?1 AND id = ?2")?
            .execute((&job.tenant, &id))?;
        tx.cache.tombstones = tx.cache.tombstones.saturating_sub(gone as u64);
    }
    // A tenant whose line was empty takes its place among the tenants by this job.
    tx.conn
        .prepare_cached(
            "INSERT INTO tenants (tenant, jobs, waiting, in_flight, last_served, since) \
             VALUES (?1, 1, 1, 0, 0, ?2) \
             ON CONFLICT (tenant) DO UPDATE SET jobs = jobs + 1, waiting = waiting + 1, \
             since = CASE WHEN waiting = 0 THEN excluded.since ELSE since END",
        )?
        .execute((&job.tenant, seq))?;
    tx.cache.queued(&job.tenant);
    tx.wakes += 1;
    Ok(Submitted::New)
}

pub(crate) fn cancel(tx: &mut Tx<'_>, key: &JobKey, at: OffsetDateTime) -> Result<Cancel, Failure> {
    let Some(Stored { seq, mut job, .. }) = find(tx.conn, &key.tenant, &key.id.to_string())? else {
        return Ok(if tombstoned(tx.conn, key)? {
            Cancel::Expired
        } else {
            Cancel::Unknown
        });
    };
    if job.state != JobState::Queued {
        return Ok(Cancel::NotQueued(Box::new(job)));
    }
    job.state = JobState::Cancelled;
    job.finished_at = Some(at);
    normalize(&mut job);
    let at = micros(at);
    tx.conn
        .prepare_cached(
            "UPDATE jobs SET state = 'cancelled', finished_at = ?2, retired_at = ?2 WHERE seq = ?1",
        )?
        .execute((seq, at))?;
    tx.conn
        .prepare_cached(
            "UPDATE tenants SET waiting = waiting - 1, \
             last_served = CASE WHEN waiting = 1 AND in_flight = 0 THEN 0 ELSE last_served END \
             WHERE tenant = ?1",
        )?
        .execute([&key.tenant])?;
    tx.cache.dequeued(&key.tenant);
    Ok(Cancel::Cancelled(Box::new(job)))
}

pub(crate) fn lease(tx: &mut Tx<'_>, request: &LeaseRequest) -> Result<Vec<Leased>, Failure> {
    let most = request.max.max(1);
    let now = micros(request.now);
    let until = micros(request.until);
    let mut leased = Vec::with_capacity(most);
    // Jobs whose holder stopped heartbeating first: taken over as new deliveries.
    let expired: Vec<i64> = tx
        .conn
        .prepare_cached(
            "SELECT seq FROM jobs INDEXED BY jobs_leases WHERE lease_until <= ?1 \
             ORDER BY lease_until, seq LIMIT ?2",
        )?
        .query_map((now, most as i64), |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    for seq in expired {
        match at_seq(tx.conn, seq) {
            Ok(Some(stored)) => leased.push(hand_out(tx, stored, request, until)?),
            Ok(None) => {}
            Err(Failure::Corrupt(why)) => quarantine(tx, seq, Held::Leased, &why, now)?,
            Err(e) => return Err(e),
        }
    }
    let cap = request
        .tenant_in_flight
        .map(|cap| i64::try_from(cap).unwrap_or(i64::MAX));
    while leased.len() < most {
        // The tenant whose turn it is: least recently served, then waiting longest.
        let tenant: Option<String> = tx
            .conn
            .prepare_cached(
                "SELECT tenant FROM tenants INDEXED BY tenants_turns \
                 WHERE waiting > 0 AND (?1 IS NULL OR in_flight < ?1) \
                 ORDER BY last_served, since, tenant LIMIT 1",
            )?
            .query_row([cap], |row| row.get(0))
            .optional()?;
        let Some(tenant) = tenant else {
            break;
        };
        // Its next job: higher priority first, then submission order.
        let next = {
            let mut stmt = tx.conn.prepare_cached(concat!(
                "SELECT ",
                crate::row::job_columns!(),
                " FROM jobs INDEXED BY jobs_waiting WHERE tenant = ?1 AND state = 'queued' \
                 ORDER BY priority, seq LIMIT 1"
            ))?;
            let mut rows = stmt.query([&tenant])?;
            match rows.next()? {
                Some(row) => Some((row.get::<_, i64>(0)?, crate::row::decode(row))),
                None => None,
            }
        };
        let stored = match next {
            Some((_, Ok(stored))) => stored,
            Some((seq, Err(Failure::Corrupt(why)))) => {
                quarantine(tx, seq, Held::Waiting, &why, now)?;
                continue;
            }
            Some((_, Err(e))) => return Err(e),
            None => {
                // Its count is off (a hand edit?): count again, and look at the next tenant.
                tx.conn
                    .prepare_cached(
                        "UPDATE tenants SET waiting = (SELECT count(*) FROM jobs \
                         WHERE tenant = ?1 AND state = 'queued') WHERE tenant = ?1",
                    )?
                    .execute([&tenant])?;
                *tx.cache = crate::writer::Cache::load(tx.conn)?;
                continue;
            }
        };
        tx.cache.turn += 1;
        tx.conn
            .prepare_cached(
                "UPDATE tenants SET waiting = waiting - 1, in_flight = in_flight + 1, \
                 last_served = ?2 WHERE tenant = ?1",
            )?
            .execute((&tenant, tx.cache.turn))?;
        tx.cache.dequeued(&tenant);
        leased.push(hand_out(tx, stored, request, until)?);
    }
    Ok(leased)
}

/// Where an unreadable job was in the queue.
enum Held {
    /// Waiting in its tenant's line.
    Waiting,
    /// Leased (its lease expired).
    Leased,
}

/// Takes a job whose row cannot be read out of the queue, so that it does not stop the jobs
/// behind it: marked `failed` and put under retention, the rest of the row left as it is for
/// an operator to look at (`get` names it as corrupt).
fn quarantine(
    tx: &mut Tx<'_>,
    seq: i64,
    held: Held,
    why: &StoreError,
    now: i64,
) -> Result<(), Failure> {
    error!(
        seq,
        error = %why,
        "a queued job's record cannot be read: taken out of the queue as failed"
    );
    tx.cache.in_flight.retain(|_, held| held.seq != seq);
    let tenant: String = tx
        .conn
        .prepare_cached(
            "UPDATE jobs SET state = 'failed', lease_until = NULL, \
             retired_at = coalesce(retired_at, ?2) WHERE seq = ?1 RETURNING tenant",
        )?
        .query_row((seq, now), |row| row.get(0))?;
    match held {
        Held::Waiting => {
            tx.conn
                .prepare_cached(
                    "UPDATE tenants SET waiting = waiting - 1, \
                     last_served = CASE WHEN waiting = 1 AND in_flight = 0 THEN 0 \
                     ELSE last_served END WHERE tenant = ?1",
                )?
                .execute([&tenant])?;
            tx.cache.dequeued(&tenant);
        }
        Held::Leased => end_in_flight(tx, &tenant)?,
    }
    Ok(())
}

/// One job of `tenant` is no longer in flight.
fn end_in_flight(tx: &mut Tx<'_>, tenant: &str) -> Result<(), Failure> {
    tx.conn
        .prepare_cached(
            "UPDATE tenants SET in_flight = in_flight - 1, \
             last_served = CASE WHEN waiting = 0 AND in_flight = 1 THEN 0 ELSE last_served END \
             WHERE tenant = ?1",
        )?
        .execute([tenant])?;
    Ok(())
}

/// Marks `stored` started and leased to `request.worker` until `until`.
fn hand_out(
    tx: &mut Tx<'_>,
    stored: Stored,
    request: &LeaseRequest,
    until: i64,
) -> Result<Leased, Failure> {
    let Stored {
        seq,
        mut job,
        deliveries,
        ..
    } = stored;
    let deliveries = deliveries.saturating_add(1);
    job.apply(&JobUpdate::Started { at: request.now });
    normalize(&mut job);
    tx.conn
        .prepare_cached(
            "UPDATE jobs SET state = ?2, started_at = ?3, deliveries = ?4, worker = ?5, \
             lease_until = ?6 WHERE seq = ?1",
        )?
        .execute(rusqlite::params![
            seq,
            job.state.name(),
            opt_micros(job.started_at),
            deliveries,
            request.worker.0,
            until,
        ])?;
    let lease = Lease::new(job.key(), request.worker.clone(), deliveries);
    tx.cache.in_flight.insert(
        lease.key.clone(),
        Stored {
            seq,
            job: job.clone(),
            deliveries,
            lease_until: Some(until),
        },
    );
    Ok(Leased::new(lease, job))
}

pub(crate) fn heartbeat(
    tx: &mut Tx<'_>,
    worker: &WorkerId,
    leases: &[Lease],
    now: OffsetDateTime,
    until: OffsetDateTime,
    status: &str,
) -> Result<Vec<Lease>, Failure> {
    let until = micros(until);
    let now = micros(now);
    let mut lost = Vec::new();
    {
        let mut extend = tx.conn.prepare_cached(
            "UPDATE jobs SET lease_until = ?4 \
             WHERE tenant = ?1 AND id = ?2 AND worker = ?3 AND lease_until IS NOT NULL",
        )?;
        for lease in leases {
            let held = extend.execute((
                &lease.key.tenant,
                lease.key.id.to_string(),
                &worker.0,
                until,
            ))?;
            if held == 0 {
                lost.push(lease.clone());
            }
        }
    }
    let held = (leases.len() - lost.len()) as i64;
    let forgotten = now.saturating_sub(crate::row::duration_micros(WORKER_SEEN_FOR));
    tx.conn
        .prepare_cached("DELETE FROM workers WHERE at <= ?1")?
        .execute([forgotten])?;
    tx.conn
        .prepare_cached(
            "INSERT INTO workers (worker, at, held, status) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (worker) DO UPDATE SET at = excluded.at, held = excluded.held, \
             status = excluded.status",
        )?
        .execute((&worker.0, now, held, status))?;
    Ok(lost)
}

/// Applies `updates` to the job of `key`; with `finish`, also ends its lease and puts it under
/// retention.
pub(crate) fn record(
    tx: &mut Tx<'_>,
    key: &JobKey,
    updates: &[JobUpdate],
    finish: bool,
) -> Result<(), Failure> {
    if updates.is_empty() && !finish {
        return Ok(());
    }
    // Jobs this writer handed out are in its cache; another's (a worker that lost its lease to
    // a takeover and finishes anyway, or a job of the previous owner) are read.
    let mut read;
    let stored = match tx.cache.in_flight.get_mut(key) {
        Some(cached) => cached,
        None => match find(tx.conn, &key.tenant, &key.id.to_string())? {
            Some(stored) => {
                read = stored;
                &mut read
            }
            None => return Ok(()),
        },
    };
    let seq = stored.seq;
    let held = stored.lease_until.is_some();
    let job = &mut stored.job;
    let state = job.state;
    for update in updates {
        job.apply(update);
    }
    normalize(job);
    let docs = Documents::of(job)?;
    let fields = rusqlite::params![
        seq,
        job.state.name(),
        docs.errors,
        docs.warnings,
        docs.notifications,
        opt_micros(job.started_at),
        opt_micros(job.finished_at),
        micros(job.finished_at.unwrap_or(job.created_at)),
    ];
    // The state is indexed: written only when it changes (the runner's first record and the
    // last updates rarely change it), so its index entries are rewritten only then.
    let statement = match (finish, state == job.state) {
        (false, true) => {
            "UPDATE jobs SET errors = ?3, warnings = ?4, notifications = ?5, started_at = ?6, \
             finished_at = ?7 WHERE seq = ?1"
        }
        (false, false) => {
            "UPDATE jobs SET state = ?2, errors = ?3, warnings = ?4, notifications = ?5, \
             started_at = ?6, finished_at = ?7 WHERE seq = ?1"
        }
        (true, true) => {
            "UPDATE jobs SET errors = ?3, warnings = ?4, notifications = ?5, started_at = ?6, \
             finished_at = ?7, lease_until = NULL, retired_at = coalesce(retired_at, ?8) \
             WHERE seq = ?1"
        }
        (true, false) => {
            "UPDATE jobs SET state = ?2, errors = ?3, warnings = ?4, notifications = ?5, \
             started_at = ?6, finished_at = ?7, lease_until = NULL, \
             retired_at = coalesce(retired_at, ?8) WHERE seq = ?1"
        }
    };
    // Parameters are counted up to the highest used: an unused `?2` is bound and ignored.
    let used = if finish { 8 } else { 7 };
    tx.conn
        .prepare_cached(statement)?
        .execute(&fields[..used])?;
    if finish {
        tx.cache.in_flight.remove(key);
        if held {
            end_in_flight(tx, &key.tenant)?;
        }
    }
    Ok(())
}

pub(crate) fn release(tx: &mut Tx<'_>, lease: &Lease) -> Result<(), Failure> {
    let released = tx
        .conn
        .prepare_cached(
            "UPDATE jobs SET lease_until = ?4 \
             WHERE tenant = ?1 AND id = ?2 AND worker = ?3 AND lease_until IS NOT NULL",
        )?
        .execute((
            &lease.key.tenant,
            lease.key.id.to_string(),
            &lease.worker.0,
            EXPIRED,
        ))?;
    tx.wakes += released;
    Ok(())
}
