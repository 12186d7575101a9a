//! Retention: finished jobs past their age or their tenant's count become tombstones, old
//! tombstones and expired remembered values go, and the pages freed are reused or given back.
//! Every step is bounded by the call's budget, so a purge never holds the writer for long.
//!
//! Freed pages go to SQLite's free list and are reused by later writes, so a steady load keeps
//! the file at a steady size. The database is created with `auto_vacuum=INCREMENTAL`: when
//! more than a tenth of the file (and more than [`SLACK_PAGES`]) is free, after a burst
//! drained, `purge` also gives up to [`VACUUM_PAGES`] pages a call back to the file system
//! (`PRAGMA incremental_vacuum`), keeping that much as room to grow into.

use imgchkr_core::Retention;
use time::OffsetDateTime;

use crate::error::Failure;
use crate::row::{duration_micros, micros};
use crate::writer::Tx;

/// The most pages one purge gives back to the file system (8 MiB of 4 KiB pages).
pub(crate) const VACUUM_PAGES: i64 = 2048;
/// Free pages always kept as room to grow into (4 MiB).
pub(crate) const SLACK_PAGES: i64 = 1024;

pub(crate) fn purge(
    tx: &mut Tx<'_>,
    retention: &Retention,
    now: OffsetDateTime,
    budget: u64,
) -> Result<u64, Failure> {
    let now = micros(now);
    let limit = i64::try_from(budget).unwrap_or(i64::MAX);
    tx.conn
        .prepare_cached(
            "DELETE FROM remembered WHERE key IN \
             (SELECT key FROM remembered WHERE expires <= ?1 ORDER BY expires LIMIT ?2)",
        )?
        .execute((now, limit))?;
    let mut expired = 0;
    // Past their age: each tenant's oldest finished jobs.
    let cut = now.saturating_sub(duration_micros(retention.max_age));
    let tenants: Vec<String> = tx
        .conn
        .prepare_cached("SELECT tenant FROM tenants")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    for tenant in &tenants {
        if expired >= budget {
            break;
        }
        expired += expire(tx, tenant, Some(cut), budget - expired, now)?;
    }
    // Past their tenant's count: its oldest finished jobs, whatever their age.
    let max = i64::try_from(retention.max_jobs_per_tenant).unwrap_or(i64::MAX);
    let crowded: Vec<(String, i64)> = tx
        .conn
        .prepare_cached("SELECT tenant, jobs FROM tenants WHERE jobs > ?1")?
        .query_map([max], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (tenant, jobs) in crowded {
        let over = u64::try_from(jobs - max).unwrap_or(0);
        expired += expire(tx, &tenant, None, over.min(budget - expired), now)?;
    }
    drop_tombstones(tx, retention, now, budget)?;
    vacuum(tx)?;
    Ok(expired)
}

/// Forgets up to `most` of `tenant`'s finished jobs, oldest first (retired at or before `cut`
/// when given), leaving tombstones dated `now`. Returns how many.
fn expire(
    tx: &mut Tx<'_>,
    tenant: &str,
    cut: Option<i64>,
    most: u64,
    now: i64,
) -> Result<u64, Failure> {
    if most == 0 {
        return Ok(0);
    }
    let gone: Vec<(i64, String)> = tx
        .conn
        .prepare_cached(
            "DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs INDEXED BY jobs_retired \
             WHERE tenant = ?1 AND retired_at IS NOT NULL AND retired_at <= ?2 \
             ORDER BY retired_at, seq LIMIT ?3) RETURNING seq, id",
        )?
        .query_map(
            (
                tenant,
                cut.unwrap_or(i64::MAX),
                i64::try_from(most).unwrap_or(i64::MAX),
            ),
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?
        .collect::<Result<_, _>>()?;
    if gone.is_empty() {
        return Ok(0);
    }
    {
        let mut bury = tx.conn.prepare_cached(
            "INSERT INTO tombstones (tenant, id, at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (tenant, id) DO UPDATE SET at = excluded.at",
        )?;
        for (_, id) in &gone {
            bury.execute((tenant, id, now))?;
        }
    }
    tx.cache.tombstones += gone.len() as u64;
    tx.conn
        .prepare_cached("UPDATE tenants SET jobs = jobs - ?2 WHERE tenant = ?1")?
        .execute((tenant, gone.len() as i64))?;
    tx.conn
        .prepare_cached("DELETE FROM tenants WHERE tenant = ?1 AND jobs <= 0")?
        .execute([tenant])?;
    Ok(gone.len() as u64)
}

/// Drops tombstones past their age, then the oldest past the most kept; at most twice
/// `budget` a call (tombstones come from expired jobs, at most `budget` a call).
fn drop_tombstones(
    tx: &mut Tx<'_>,
    retention: &Retention,
    now: i64,
    budget: u64,
) -> Result<(), Failure> {
    if tx.cache.tombstones == 0 {
        return Ok(());
    }
    let most = budget.saturating_mul(2).max(1);
    let cut = now.saturating_sub(duration_micros(retention.tombstone_age));
    drop_older(tx, cut, most)?;
    if tx.cache.tombstones > retention.max_tombstones {
        let over = tx.cache.tombstones - retention.max_tombstones;
        drop_older(tx, i64::MAX, over.min(most))?;
    }
    Ok(())
}

/// Drops up to `most` tombstones dated at or before `cut`, oldest first.
fn drop_older(tx: &mut Tx<'_>, cut: i64, most: u64) -> Result<(), Failure> {
    let dropped = tx
        .conn
        .prepare_cached(
            "DELETE FROM tombstones WHERE (tenant, id) IN (SELECT tenant, id FROM tombstones \
             WHERE at <= ?1 ORDER BY at LIMIT ?2)",
        )?
        .execute((cut, i64::try_from(most).unwrap_or(i64::MAX)))?;
    tx.cache.tombstones = tx.cache.tombstones.saturating_sub(dropped as u64);
    Ok(())
}

/// Gives free pages beyond a tenth of the file (and beyond [`SLACK_PAGES`]) back to the file
/// system, at most [`VACUUM_PAGES`].
fn vacuum(tx: &mut Tx<'_>) -> Result<(), Failure> {
    let free: i64 = tx
        .conn
        .query_row("PRAGMA freelist_count", [], |row| row.get(0))?;
    let pages: i64 = tx
        .conn
        .query_row("PRAGMA page_count", [], |row| row.get(0))?;
    // Truncating the file also walks the writer's page cache: worth it for a burst drained,
    // not for the churn of a small file.
    let slack = (pages / 10).max(SLACK_PAGES);
    if free > slack {
        let give = (free - slack).min(VACUUM_PAGES);
        // One page a step, each answering a row: step to the end.
        let mut stmt = tx
            .conn
            .prepare(&format!("PRAGMA incremental_vacuum({give})"))?;
        let mut rows = stmt.query([])?;
        while rows.next()?.is_some() {}
    }
    Ok(())
}
