//! The sync rules, independent of transport and storage engine: what a push must satisfy to be
//! appended, and how a pull is cut into pages.

pub mod pager;

use crate::protocol::server::push_batch_item;
use crate::protocol::{Cursor, EventIn, PushPayload, SyncError};
use crate::storage::{ContextRow, EventLog, StorageError, StoreMeta};
use crate::util::json::str_literal;
use crate::util::time::iso8601_from_millis;
pub use pager::{Limits, Pager};

impl From<StorageError> for SyncError {
    fn from(e: StorageError) -> Self {
        SyncError::unknown("StorageError", e.0)
    }
}

/// Appends a pushed batch if it continues the store's log. Returns the `createdAt` the events
/// were stored with (empty for an empty batch, which stores nothing); [`broadcast_pages`] then
/// makes the pages that carry the batch to live pulls.
///
/// Rules, in the reference's order: an empty batch is acknowledged without effect; a client
/// `backendId` from another incarnation of the store is refused; the first event's parent must be
/// the head. On top of those, the batch's sequence numbers must strictly increase
/// ([`PushPayload::validate`]). Callers serialise pushes per store, so the head cannot move
/// between the check and the append.
pub async fn push<L: EventLog>(
    log: &L,
    meta: &mut StoreMeta,
    request: &PushPayload<'_>,
    limits: &Limits,
    now_millis: i64,
) -> Result<String, SyncError> {
    if request.batch.len() > limits.max_events_per_push {
        // Refused whole, before any rule runs: nothing of an oversize batch is stored.
        return Err(SyncError::unknown(
            "TooManyEventsError",
            format!(
                "a push may carry at most {} events, this one has {}; send them in several pushes",
                limits.max_events_per_push,
                request.batch.len()
            ),
        ));
    }
    request.validate()?;
    let (Some(first), Some(last)) = (request.batch.first(), request.batch.last()) else {
        return Ok(String::new());
    };
    if let Some(received) = request.backend_id.as_ref() {
        if *received != meta.backend_id {
            return Err(SyncError::BackendIdMismatch {
                expected: meta.backend_id.clone(),
                received: received.clone(),
            });
        }
    }
    if first.parent_seq_num.0 != meta.head {
        return Err(SyncError::ServerAhead {
            minimum_expected_num: meta.head,
            provided_num: first.parent_seq_num.0,
        });
    }

    let created_at = iso8601_from_millis(now_millis);
    let context = ContextRow {
        current_head: last.seq_num.0,
        backend_id: meta.backend_id.clone(),
    };
    log.append(&request.batch, &created_at, &context).await?;
    meta.head = last.seq_num.0;
    Ok(created_at)
}

/// The `PullResponse` pages that carry an accepted batch to every live pull (the pusher's own
/// included: the LiveStore client confirms its pushes from that echo). Built only when someone
/// receives them.
pub fn broadcast_pages(batch: &[EventIn<'_>], created_at: &str, backend_id: &str, limits: &Limits) -> Vec<String> {
    let created_at_literal = str_literal(created_at);
    pages_of(batch, |_| &created_at_literal, backend_id, limits)
}

/// [`broadcast_pages`] with each event's own `createdAt` (`created_at[i]` for `batch[i]`), for
/// the admin import.
pub fn broadcast_pages_timed(
    batch: &[EventIn<'_>],
    created_at: &[&str],
    backend_id: &str,
    limits: &Limits,
) -> Vec<String> {
    let literals: Vec<String> = created_at.iter().map(|t| str_literal(t)).collect();
    let fallback = String::from("\"\"");
    pages_of(batch, |i| literals.get(i).unwrap_or(&fallback), backend_id, limits)
}

fn pages_of<'t>(
    batch: &[EventIn<'_>],
    created_at_literal: impl Fn(usize) -> &'t String,
    backend_id: &str,
    limits: &Limits,
) -> Vec<String> {
    let mut pager = Pager::broadcast(backend_id, *limits);
    let mut pages = Vec::new();
    let mut item = String::new();
    for (i, event) in batch.iter().enumerate() {
        item.clear();
        push_batch_item(&mut item, event, created_at_literal(i));
        pages.extend(pager.add(&item));
    }
    pages.extend(pager.finish());
    pages
}

/// Streams every event after `cursor` to `emit` as `PullResponse` pages: at most
/// `limits.max_events_per_page` events and `limits.max_page_bytes` bytes each, `MoreKnown` with
/// the exact number of events still to come on every page but the last, `NoMore` on the last,
/// and exactly one empty `NoMore` page when there is nothing to send. Returns the number of
/// events sent.
pub async fn pull<L: EventLog>(
    log: &L,
    meta: &StoreMeta,
    cursor: Option<&Cursor>,
    limits: &Limits,
    mut emit: impl FnMut(String),
) -> Result<u64, SyncError> {
    if let Some(cursor) = cursor {
        if cursor.backend_id != meta.backend_id {
            return Err(SyncError::BackendIdMismatch {
                expected: meta.backend_id.clone(),
                received: cursor.backend_id.clone(),
            });
        }
    }
    let mut after = cursor.map(|c| c.event_sequence_number.0);
    let total = log.count_after(after).await?;
    let mut pager = Pager::counted(&meta.backend_id, total, *limits);
    let mut sent = 0;
    if total > 0 {
        loop {
            let rows = log.read_after(after, limits.read_batch).await?;
            let Some(last) = rows.last() else { break };
            after = Some(last.seq_num);
            sent += rows.len() as u64;
            for row in &rows {
                if let Some(page) = pager.add(&row.json) {
                    emit(page);
                }
            }
            // A short read ends the log, unless the engine cut it short to bound its response
            // size: then events counted at the start are still to come.
            if rows.len() < limits.read_batch && sent >= total {
                break;
            }
        }
    }
    if let Some(page) = pager.finish() {
        emit(page);
    }
    Ok(sent)
}
