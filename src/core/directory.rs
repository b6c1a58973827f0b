//! The store's side of the store directory ([`crate::directory`]) and of its lifecycle: a store
//! that is used sends its figures from its alarm, at most every
//! [`crate::directory::UPDATE_INTERVAL_MS`]; with `EXPIRE_IDLE_STORES_AFTER` set, the same alarm
//! deletes the store once it has been idle that long; and the admin API deletes a store for good.

use std::cell::Cell;

use super::admin::RESET_CLOSE_CODE;
use super::{Core, Error, Host};
use crate::directory::{Entry, UPDATE_INTERVAL_MS};
use crate::hooks::SyncHooks;
use crate::log::Level;
use crate::storage::EventLog;

/// How soon a directory update that failed is tried again.
const RETRY_MS: i64 = 30_000;

/// How soon an alarm that came before its store was opened comes again.
const RETRY_BEFORE_OPEN_MS: i64 = 1_000;

/// What this object knows of its store's directory entry.
#[derive(Default)]
pub(super) struct DirectoryState {
    /// The store was used since its figures were last sent.
    dirty: Cell<bool>,
    /// When they were last sent (ms); 0 when not since the object woke.
    sent_at: Cell<i64>,
    /// The store's last use seen by this object (ms); 0 when none since it woke.
    last_at: Cell<i64>,
    /// The directory was told, since the object woke, that the store has no events.
    unlisted: Cell<bool>,
}

/// What deleting a store removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleted {
    /// Events deleted.
    pub removed_events: u64,
    /// Sockets closed.
    pub closed_sockets: usize,
}

/// Close code of the sockets a deletion closes (application-defined, as a reset's).
pub const DELETE_CLOSE_CODE: u16 = RESET_CLOSE_CODE;

impl<L: EventLog + 'static, X: Host + 'static, H: SyncHooks> Core<L, X, H> {
    /// The store was used (a request, a stored batch): its figures are due in the directory,
    /// now if they were not sent for an interval, else once it has passed.
    pub(super) fn directory_due(&self) {
        if !self.config.store_directory {
            return;
        }
        let now = self.host.now_millis();
        self.directory.last_at.set(now);
        if self.directory.dirty.replace(true) {
            return;
        }
        self.alarm_by((self.directory.sent_at.get() + UPDATE_INTERVAL_MS).max(now));
    }

    /// The store got its first events (a push or an import into a new or reset store): it is
    /// listed at once, not an interval after the report that left it out; the `directory_due`
    /// of their delivery sets the alarm for now.
    pub(super) fn directory_listing_due(&self) {
        self.directory.sent_at.set(0);
        self.directory.dirty.set(false);
    }

    /// The alarm came before the store it is for was opened (on an engine that awaits, a first
    /// request's alarm can): a report still due sets it again, a moment later.
    pub fn alarm_before_open(&self) {
        if self.directory.dirty.get() || self.backup_pending() {
            self.alarm_by(self.host.now_millis() + RETRY_BEFORE_OPEN_MS);
        }
    }

    /// From the alarm: sends the store's figures if it was used since they were last sent, and
    /// deletes it if `EXPIRE_IDLE_STORES_AFTER` has passed since its last use (as the directory
    /// recorded it: an evicted object remembers nothing) with no socket open. Then sets the
    /// alarm for the next of these.
    pub async fn run_directory(&self, store_id: &str) -> Result<(), Error> {
        if !self.config.store_directory {
            return Ok(());
        }
        let now = self.host.now_millis();
        let last_at = if self.directory.dirty.get() {
            let due = self.directory.sent_at.get() + UPDATE_INTERVAL_MS;
            if now >= due {
                return self.send_entry(store_id, now).await;
            }
            self.alarm_by(due);
            // Used since the last report, so its last use is the one this object saw.
            let last_at = self.directory.last_at.get();
            match self.config.idle_expiry_ms {
                Some(expiry) if now >= last_at + expiry => last_at,
                Some(expiry) => {
                    self.alarm_by(last_at + expiry);
                    return Ok(());
                }
                None => return Ok(()),
            }
        } else {
            if self.config.idle_expiry_ms.is_none() {
                return Ok(());
            }
            let entry = match self.host.directory_entry(store_id).await {
                Ok(entry) => entry,
                Err(e) => {
                    self.alarm_by(now + RETRY_MS);
                    return Err(Error::storage(e));
                }
            };
            let Some(entry) = entry else { return Ok(()) };
            entry.last_at.max(self.directory.last_at.get())
        };
        let Some(expiry) = self.config.idle_expiry_ms else {
            return Ok(());
        };
        if now < last_at + expiry {
            self.alarm_by(last_at + expiry);
            return Ok(());
        }
        let sockets = self.host.socket_count();
        if sockets > 0 {
            // Connected clients use the store, even without a request for a while.
            self.alarm_by(now + expiry);
            if let Some(line) = self.config.log_level.line(Level::Debug, "expiry_postponed") {
                self.host.log(
                    line.str("storeId", store_id)
                        .int("sockets", sockets as i64)
                        .str("nextCheckAt", &crate::util::time::iso8601_from_millis(now + expiry)),
                );
            }
            return Ok(());
        }
        let deleted = self.delete_store(store_id).await?;
        if let Some(line) = self.config.log_level.line(Level::Warn, "expired") {
            self.host.log(
                line.str("storeId", store_id)
                    .int("events", deleted.removed_events as i64)
                    .str("lastActivityAt", &crate::util::time::iso8601_from_millis(last_at)),
            );
        }
        Ok(())
    }

    /// Sends the store's figures to the directory (a store without events is not listed), and
    /// sets the alarm for its expiry.
    async fn send_entry(&self, store_id: &str, now: i64) -> Result<(), Error> {
        self.directory.dirty.set(false);
        let (meta, log) = self.open(store_id).await?;
        self.directory.sent_at.set(now);
        if meta.head == 0 {
            // Not listed: a store without events (never written, or reset since it was listed),
            // told once per wake however often its clients connect; its first push lists it at
            // once (`directory_listing_due`), even one stored just after this report.
            if self.directory.unlisted.replace(true) {
                return Ok(());
            }
            let told = self.host.tell_directory(store_id, None).await;
            self.directory.unlisted.set(told.is_ok());
            return told.map_err(Error::storage);
        }
        self.directory.unlisted.set(false);
        let usage = self.current_usage(&log, &meta).await?;
        let last_at = match self.directory.last_at.get() {
            0 => now,
            at => at,
        };
        let expires_at = self.config.idle_expiry_ms.map(|ms| last_at + ms);
        let entry = Entry {
            store_id: store_id.to_owned(),
            engine: log.engine_name().to_owned(),
            events: usage.events,
            bytes: usage.bytes,
            first_at: now,
            last_at,
            expires_at,
        };
        if let Err(e) = self.host.tell_directory(store_id, Some(&entry)).await {
            self.directory.dirty.set(true);
            self.alarm_by(now + RETRY_MS);
            return Err(Error::storage(format!(
                "the store directory did not take the update: {e}"
            )));
        }
        if let Some(at) = expires_at {
            self.alarm_by(at);
        }
        Ok(())
    }

    /// Deletes a store for good: its events, head and backendId, its outbox and everything else
    /// the object keeps, and its directory entry; its sockets are closed. The next request for
    /// it finds a new, empty store.
    pub async fn delete_store(&self, store_id: &str) -> Result<Deleted, Error> {
        // One turn for all of it: a push waiting behind the reset must not be stored, and
        // acknowledged, in the storage about to be wiped.
        let _turn = self.turns.ticket().await;
        let reset = self.reset_in_turn(store_id).await?;
        self.host.wipe_object().await.map_err(Error::storage)?;
        *self.usage.borrow_mut() = None;
        self.directory.dirty.set(false);
        self.directory.last_at.set(0);
        self.alarm_fired();
        if self.config.store_directory {
            self.host.tell_directory(store_id, None).await.map_err(Error::storage)?;
            self.directory.unlisted.set(true);
        }
        Ok(Deleted {
            removed_events: reset.removed_events,
            closed_sockets: reset.closed_sockets,
        })
    }
}
