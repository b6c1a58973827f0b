//! The store's side of backups to R2 ([`crate::backup`]): new events make a backup due, the
//! store's alarm writes them (at most once per `BACKUP_INTERVAL`), and a restore imports a
//! store's backup into it when it is empty.

use std::cell::{Cell, RefCell};

use super::admin::{ImportFailure, Imported};
use super::{Core, Error, Host};
use crate::admin::ImportError;
use crate::backup::{object_key, parse_key, restore_plan, store_prefix};
use crate::hooks::SyncHooks;
use crate::log::Level;
use crate::storage::EventLog;

/// Most events in one backup object (one export page).
const EVENTS_PER_OBJECT: usize = 10_000;

/// How soon a backup that failed is tried again.
const RETRY_MS: i64 = 60_000;

/// What this object knows of its store's backup.
#[derive(Default)]
pub(super) struct BackupState {
    /// Events were stored since the last backup (an alarm is set for it).
    due: Cell<bool>,
    /// The backendId and seqNum the bucket holds the store up to; `None` until looked up after
    /// a wake.
    backed_up: RefCell<Option<(String, i64)>>,
    /// When the last backup was written (ms); 0 for none since the wake.
    written_at: Cell<i64>,
}

/// What a backup run wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackedUp {
    /// The store's backendId, under which the objects are named.
    pub backend_id: String,
    /// The seqNum the bucket now holds the store up to.
    pub to: i64,
    /// Objects written by this run.
    pub objects: usize,
    /// Events written by this run.
    pub events: u64,
}

/// Why a restore did not happen.
#[derive(Debug)]
pub enum RestoreFailure {
    /// Nothing to restore (`404`), or the import refused it (`400`/`409`).
    Refused {
        /// The HTTP status.
        status: u16,
        /// What is wrong.
        error: ImportError,
    },
    /// Storage or the bucket failed.
    Storage(Error),
}

fn bucket_error(e: String) -> Error {
    Error::storage(format!("BACKUP_BUCKET: {e}"))
}

impl<L: EventLog + 'static, X: Host + 'static, H: SyncHooks> Core<L, X, H> {
    /// Events were stored: a backup is due within `BACKUP_INTERVAL`.
    pub(super) fn backup_due(&self) {
        let Some(backup) = &self.config.backup else { return };
        if self.backup.due.replace(true) {
            return;
        }
        let since = self.backup.written_at.get().max(self.host.now_millis());
        self.alarm_by(since + backup.interval_ms);
    }

    /// Whether events wait for a backup this object knows of.
    pub(super) fn backup_pending(&self) -> bool {
        self.backup.due.get()
    }

    /// From the alarm: writes the store's new events to the bucket if a backup is due (after a
    /// wake, when that is not known, it looks once).
    pub async fn run_backup(&self, store_id: &str) -> Result<Option<BackedUp>, Error> {
        let Some(backup) = &self.config.backup else {
            return Ok(None);
        };
        let known = self.backup.backed_up.borrow().is_some();
        if known && !self.backup.due.get() {
            return Ok(None);
        }
        let now = self.host.now_millis();
        let next = self.backup.written_at.get() + backup.interval_ms;
        if self.backup.written_at.get() != 0 && now < next {
            self.alarm_by(next);
            return Ok(None);
        }
        self.back_up(store_id).await.map(Some)
    }

    /// Writes the store's events that the bucket does not hold yet (the admin API's backup,
    /// and the alarm's).
    pub async fn back_up(&self, store_id: &str) -> Result<BackedUp, Error> {
        let Some(backup) = &self.config.backup else {
            return Err(Error::Config("backups are off: set BACKUP_BUCKET".into()));
        };
        let was_due = self.backup.due.replace(false);
        let written = self.write_backup(store_id).await;
        match &written {
            Ok(done) => {
                self.backup.written_at.set(self.host.now_millis());
                *self.backup.backed_up.borrow_mut() = Some((done.backend_id.clone(), done.to));
                if done.objects > 0 {
                    if let Some(line) = self.config.log_level.line(Level::Info, "backup") {
                        self.host.log(
                            line.str("storeId", store_id)
                                .str("outcome", "written")
                                .int("to", done.to)
                                .int("events", done.events as i64)
                                .int("objects", done.objects as i64),
                        );
                    }
                }
            }
            Err(e) => {
                self.backup.due.set(was_due || self.backup.due.get());
                self.alarm_by(self.host.now_millis() + RETRY_MS);
                if let Some(line) = self.config.log_level.line(Level::Error, "backup") {
                    self.host.log(
                        line.str("storeId", store_id)
                            .str("outcome", "failed")
                            .str("error", &e.to_string())
                            .str("bucket", &backup.bucket),
                    );
                }
            }
        }
        written
    }

    async fn write_backup(&self, store_id: &str) -> Result<BackedUp, Error> {
        let (meta, _) = self.open(store_id).await?;
        let backend_id = meta.backend_id.clone();
        let known = self.backup.backed_up.borrow().clone();
        let mut after = match known {
            Some((id, to)) if id == backend_id => to,
            _ => self.backed_up_to(store_id, &backend_id).await?,
        };
        let mut done = BackedUp {
            backend_id: backend_id.clone(),
            to: after,
            objects: 0,
            events: 0,
        };
        let head = meta.head;
        while after < head {
            let page = self
                .export(store_id, Some(after), Some(head), EVENTS_PER_OBJECT)
                .await?;
            if page.lines == 0 {
                break;
            }
            let to = page.next_after.unwrap_or(head);
            let key = object_key(store_id, &backend_id, after, to);
            self.host.backup_put(&key, page.body).await.map_err(bucket_error)?;
            done.objects += 1;
            done.events += page.lines as u64;
            done.to = to;
            after = to;
        }
        Ok(done)
    }

    /// The seqNum the bucket holds an incarnation of the store up to (0 for none).
    async fn backed_up_to(&self, store_id: &str, backend_id: &str) -> Result<i64, Error> {
        let listed = self
            .host
            .backup_list(&store_prefix(store_id))
            .await
            .map_err(bucket_error)?;
        let chunks = listed
            .into_iter()
            .filter_map(|(key, uploaded)| parse_key(store_id, &key, uploaded))
            .collect();
        Ok(restore_plan(chunks, Some(backend_id)).map_or(0, |plan| plan.last().map_or(0, |c| c.to)))
    }

    /// Imports the store's backup (of `backend_id`, or of the incarnation written last) into it;
    /// the store must be empty, as for an import.
    pub async fn restore(&self, store_id: &str, backend_id: Option<&str>) -> Result<Imported, RestoreFailure> {
        if self.config.backup.is_none() {
            return Err(RestoreFailure::Storage(Error::Config(
                "backups are off: set BACKUP_BUCKET".into(),
            )));
        }
        let storage = |e: String| RestoreFailure::Storage(bucket_error(e));
        let listed = self.host.backup_list(&store_prefix(store_id)).await.map_err(storage)?;
        let chunks = listed
            .into_iter()
            .filter_map(|(key, uploaded)| parse_key(store_id, &key, uploaded))
            .collect();
        let plan = restore_plan(chunks, backend_id).map_err(|message| RestoreFailure::Refused {
            status: 404,
            error: ImportError {
                kind: "NoBackup",
                message,
                line: None,
            },
        })?;
        let mut body = String::new();
        for chunk in &plan {
            match self.host.backup_get(&chunk.key).await.map_err(storage)? {
                Some(text) => body.push_str(&text),
                None => return Err(storage(format!("{} went missing during the restore", chunk.key))),
            }
        }
        self.import(store_id, &body).await.map_err(|failure| match failure {
            ImportFailure::Refused { status, error } => RestoreFailure::Refused { status, error },
            ImportFailure::Storage(e) => RestoreFailure::Storage(e),
        })
    }
}
