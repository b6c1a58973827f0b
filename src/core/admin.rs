//! The admin API's actions on a store: its figures, an export page, an import into an empty
//! store, a reset. They take the same push lock as pushes, and an import's events reach every
//! live pull and the `on_pull_res` hook as a push's do.

use super::push::check_args;
use super::{Core, Error, Host};
use crate::admin::{export_line, parse_import, ImportError};
use crate::hooks::{RequestContext, SyncHooks};
use crate::protocol::Transport;
use crate::storage::{Appended, ContextRow, CreatedAt, EventLog};
use crate::util::time::iso8601_from_millis;

/// Events read per storage call while exporting.
const EXPORT_PAGE: usize = 1_000;

/// A store's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// The last event's `seqNum`.
    pub head: i64,
    /// Events stored.
    pub event_count: u64,
    /// The store's current backendId.
    pub backend_id: String,
    /// The storage engine, as `STORAGE` names it.
    pub storage: &'static str,
    /// Approximate bytes of the stored events.
    pub approx_size_bytes: u64,
    /// Open WebSockets.
    pub open_sockets: usize,
    /// Live pulls on those sockets.
    pub live_pulls: usize,
    /// Client objects whose DO RPC live pull receives the store's new events.
    pub rpc_subscribers: usize,
    /// Pulls held until the store changes (sync-electric long-polls).
    pub held_pulls: usize,
}

/// One page of an export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportPage {
    /// NDJSON, one line per event.
    pub body: String,
    /// Lines in `body`.
    pub lines: usize,
    /// When more events remain: the `after` of the next page.
    pub next_after: Option<i64>,
}

/// What an import stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    /// Events imported.
    pub events: usize,
    /// The store's head after it.
    pub head: i64,
}

/// Why an import did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportFailure {
    /// The body or the store's state refuses it (`400`, or `409` for a store that is not empty).
    Refused {
        /// The HTTP status.
        status: u16,
        /// What is wrong.
        error: ImportError,
    },
    /// Storage failed.
    Storage(Error),
}

/// What a reset did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetDone {
    /// The backendId before.
    pub previous_backend_id: String,
    /// The new backendId.
    pub backend_id: String,
    /// Events deleted.
    pub removed_events: u64,
    /// Sockets closed.
    pub closed_sockets: usize,
}

/// Close code of the sockets a reset closes: application-defined (4000–4999), since the runtime
/// accepts only 1000 and 3000–4999, and not 1000, which clients take as a normal end.
pub const RESET_CLOSE_CODE: u16 = 4000;

impl<L: EventLog + 'static, X: Host + 'static, H: SyncHooks> Core<L, X, H> {
    /// The store's figures.
    pub async fn info(&self, store_id: &str) -> Result<Info, Error> {
        let figures = async {
            let (meta, log) = self.open(store_id).await?;
            let event_count = log.count_after(None).await?;
            let approx_size_bytes = log.size_bytes().await?;
            let rpc_subscribers = self.subscriber_count(&log).await;
            Ok::<_, Error>(Info {
                head: meta.head,
                event_count,
                backend_id: meta.backend_id,
                storage: log.engine_name(),
                approx_size_bytes,
                open_sockets: self.host.socket_count(),
                live_pulls: self.live_pull_count(),
                rpc_subscribers,
                held_pulls: self.live.changes.held(),
            })
        }
        .await;
        self.forget_store_on_storage_error(&figures);
        figures
    }

    /// Up to `limit` events after `after` (and at most up to `until`), as export lines.
    pub async fn export(
        &self,
        store_id: &str,
        after: Option<i64>,
        until: Option<i64>,
        limit: usize,
    ) -> Result<ExportPage, Error> {
        let (_, log) = self.open(store_id).await?;
        let mut page = ExportPage {
            body: String::new(),
            lines: 0,
            next_after: None,
        };
        let mut cursor = after;
        'pages: loop {
            let rows = log.read_after(cursor, EXPORT_PAGE.min(limit - page.lines + 1)).await?;
            if rows.is_empty() {
                break;
            }
            for item in &rows {
                if until.is_some_and(|until| item.seq_num > until) {
                    break 'pages;
                }
                if page.lines == limit {
                    // More remain: the caller continues after the last line sent.
                    page.next_after = cursor;
                    break 'pages;
                }
                // Moved past every row, even one that could not be turned into a line, so a
                // page of such rows cannot make the loop read it again forever.
                cursor = Some(item.seq_num);
                let Some(line) = export_line(&item.json) else {
                    continue;
                };
                page.body.push_str(&line);
                page.body.push('\n');
                page.lines += 1;
            }
        }
        Ok(page)
    }

    /// Imports NDJSON into an empty store, all or nothing, keeping exported times; the events
    /// then reach every live pull as a push's would.
    pub async fn import(&self, store_id: &str, body: &str) -> Result<Imported, ImportFailure> {
        // Pushes wait meanwhile, so nothing lands between the emptiness check and the write.
        let _turn = self.turns.ticket().await;
        let storage = ImportFailure::Storage;
        let (mut meta, log) = self.open(store_id).await.map_err(storage)?;
        let stored = log.count_after(None).await.map_err(|e| storage(e.into()))?;
        if meta.head != 0 || stored != 0 {
            return Err(ImportFailure::Refused {
                status: 409,
                error: ImportError {
                    kind: "StoreNotEmpty",
                    message: format!(
                        "the store holds {stored} events (head {}); import only into an empty store (reset it first)",
                        meta.head
                    ),
                    line: None,
                },
            });
        }
        let refused = |error| ImportFailure::Refused { status: 400, error };
        let import = parse_import(body, meta.head).map_err(refused)?;
        for (i, event) in import.events.iter().enumerate() {
            check_args(event, i).map_err(|e| {
                refused(ImportError {
                    kind: "InvalidArgs",
                    message: e.to_string(),
                    line: None,
                })
            })?;
        }
        let events = &import.events;
        let Some(last) = events.last().map(|e| e.seq_num.0) else {
            return Ok(Imported {
                events: 0,
                head: meta.head,
            });
        };
        // A line without a time gets the import's.
        let now = iso8601_from_millis(self.host.now_millis());
        let times: Vec<&str> = import.created_at.iter().map(|t| t.as_deref().unwrap_or(&now)).collect();
        let context = ContextRow {
            current_head: last,
            backend_id: meta.backend_id.clone(),
        };
        let appended = log
            .append(events, CreatedAt::Each(&times), &context)
            .await
            .map_err(Error::from);
        self.forget_store_on_storage_error(&appended);
        let refused = |status, kind, message| ImportFailure::Refused {
            status,
            error: ImportError {
                kind,
                message,
                line: None,
            },
        };
        match appended.map_err(storage)? {
            Appended::Stored => {}
            Appended::Stale => {
                let message = "another node wrote to the store during the import; nothing was imported";
                return Err(refused(409, "StoreNotEmpty", message.into()));
            }
            Appended::Unstorable(reason) => return Err(refused(400, "Unstorable", reason)),
        }
        meta.head = last;
        self.set_meta(&meta);
        // Into an empty store, so its first events.
        self.directory_listing_due();
        // The admin API is HTTP; no client payload or headers come with it.
        let ctx = RequestContext {
            store_id,
            transport: Transport::Http,
            payload: None,
            headers: &[],
        };
        self.fan_out(&log, events, CreatedAt::Each(&times), &meta.backend_id, &ctx)
            .await;
        Ok(Imported {
            events: events.len(),
            head: last,
        })
    }

    /// Deletes every event and gives the store a new backendId; closes every socket, whose
    /// clients then reconnect and, carrying the old backendId, are told to reset.
    pub async fn reset(&self, store_id: &str) -> Result<ResetDone, Error> {
        let _turn = self.turns.ticket().await;
        self.reset_in_turn(store_id).await
    }

    /// [`Core::reset`], by a caller that holds the push lock's turn.
    pub(super) async fn reset_in_turn(&self, store_id: &str) -> Result<ResetDone, Error> {
        let (meta, log) = self.open(store_id).await?;
        let removed_events = log.count_after(None).await.unwrap_or(0);
        let backend_id = self.host.new_backend_id();
        let context = ContextRow {
            current_head: 0,
            backend_id: backend_id.clone(),
        };
        let cleared = match log.clear(&context).await {
            Ok(()) => self.outbox_after_reset(&log).await,
            Err(e) => Err(e),
        };
        // Reopened on the next request either way, so the cache never holds the old backendId.
        *self.store.borrow_mut() = None;
        cleared?;
        // A live pull would otherwise wait on a log that no longer exists; a held one is answered
        // (it finds the new backendId).
        let closed_sockets = self.host.close_sockets(RESET_CLOSE_CODE, "store reset");
        self.forget_sockets();
        self.live.changes.notify();
        // The directory lists stores with events: this one leaves it until written again.
        self.directory_due();
        Ok(ResetDone {
            previous_backend_id: meta.backend_id,
            backend_id,
            removed_events,
            closed_sockets,
        })
    }
}
