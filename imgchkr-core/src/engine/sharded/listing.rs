//! Operators' listing across tenants (`ListQuery { tenant: None, .. }`) over every shard:
//! each shard's page newest first, merged by submission time (`createdAt`), a tie going to
//! the lower shard position. Each shard's own order is kept as it is in the merge.
//!
//! A page after the first names its cursor job, which only its own shard knows. That shard
//! is asked with the cursor as it is; every other shard is walked from its newest job, page
//! by page with its own cursors, for the jobs that come after the cursor in the merged order
//! (submitted earlier, or at the same instant on a higher shard position). Later pages thus
//! cost a walk over the other shards' newer jobs: bounded by what they retain, linear in the
//! depth of the page.

use time::OffsetDateTime;

use crate::engine::{Engine, ListQuery, Lookup, StoreError};
use crate::job::Job;

use super::Sharded;

/// Where the cursor job stands in the merged order.
#[derive(Clone, Copy)]
struct Cursor {
    shard: usize,
    created_at: OffsetDateTime,
}

impl Cursor {
    /// Whether a job of `shard` submitted at `created_at` comes after the cursor.
    fn precedes(&self, shard: usize, created_at: OffsetDateTime) -> bool {
        created_at < self.created_at || (created_at == self.created_at && shard > self.shard)
    }
}

pub(super) async fn list_all(sharded: &Sharded, query: &ListQuery) -> Result<Vec<Job>, StoreError> {
    let cursor = match &query.before {
        None => None,
        Some(key) => match sharded.locate(key).await? {
            Some((shard, Lookup::Found(job))) => Some(Cursor {
                shard,
                created_at: job.created_at,
            }),
            // An unknown or expired cursor gives an empty page, as on one engine.
            _ => return Ok(Vec::new()),
        },
    };
    let mut pages = Vec::with_capacity(sharded.shards.len());
    for (i, shard) in sharded.shards.iter().enumerate() {
        let page = match cursor {
            Some(c) if c.shard != i => walk(&**shard, i, query, c).await,
            _ => shard.list(query).await,
        };
        pages.push(page.map_err(|e| super::name_error(sharded, i, e))?);
    }
    Ok(merge(pages, query.limit))
}

/// `shard`'s jobs after `cursor` in the merged order, at most `query.limit`.
async fn walk(
    shard: &dyn Engine,
    position: usize,
    query: &ListQuery,
    cursor: Cursor,
) -> Result<Vec<Job>, StoreError> {
    let page_size = query.limit.max(100);
    let mut found = Vec::new();
    let mut next = ListQuery {
        tenant: None,
        state: query.state,
        before: None,
        limit: page_size,
    };
    while found.len() < query.limit {
        let page = shard.list(&next).await?;
        let full = page.len() == page_size;
        next.before = page.last().map(Job::key);
        found.extend(
            page.into_iter()
                .filter(|job| cursor.precedes(position, job.created_at)),
        );
        if !full || next.before.is_none() {
            break;
        }
    }
    found.truncate(query.limit);
    Ok(found)
}

/// The newest `limit` of `pages` (each newest first): the latest head first, a tie to the
/// lower shard position.
fn merge(pages: Vec<Vec<Job>>, limit: usize) -> Vec<Job> {
    let mut pages: Vec<std::vec::IntoIter<Job>> = pages.into_iter().map(Vec::into_iter).collect();
    let mut heads: Vec<Option<Job>> = pages.iter_mut().map(Iterator::next).collect();
    let mut merged = Vec::new();
    while merged.len() < limit {
        let mut pick: Option<usize> = None;
        for (i, head) in heads.iter().enumerate() {
            let Some(job) = head else { continue };
            let newer = match pick.and_then(|p| heads[p].as_ref()) {
                None => true,
                Some(best) => job.created_at > best.created_at,
            };
            if newer {
                pick = Some(i);
            }
        }
        let Some(i) = pick else { break };
        if let Some(job) = heads[i].take() {
            merged.push(job);
        }
        heads[i] = pages[i].next();
    }
    merged
}
