//! The event log in the Durable Object's own SQLite database (`ctx.storage.sql`), the default
//! engine and the reference's `do-sqlite` storage. The context row and the DO RPC subscribers
//! live here whatever the engine (D1 uses this for them too).

use js_sys::{Array, Reflect};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use worker::worker_sys::types::{SqlStorage, SqlStorageCursor};

use super::sql;
use super::{Appended, ContextRow, CreatedAt, EventLog, SinkState, StorageError, StoredItem, Subscriber};
use crate::js::error_message;
use crate::protocol::CallerContext;
use crate::protocol::EventIn;

/// One store's log in Durable Object SQLite. Cheap to build: it holds handles, not data.
pub struct DoSqliteLog {
    storage: JsValue,
    sql: SqlStorage,
    store_id: String,
    table: String,
}

pub(super) fn js_err(e: JsValue) -> StorageError {
    StorageError(error_message(&e))
}

pub(super) fn binds(values: &[JsValue]) -> Array {
    values.iter().collect()
}

/// An insert's bound values: its rows' JSON texts, in order.
fn row_binds(chunk: &sql::RowsChunk) -> Array {
    chunk.rows.iter().map(|row| JsValue::from_str(row)).collect()
}

/// Rows of `(seqNum, item JSON)` as JavaScript arrays, into stored items.
pub(super) fn stored_items(rows: impl Iterator<Item = JsValue>) -> Result<Vec<StoredItem>, StorageError> {
    rows.map(|row| {
        let seq = Reflect::get_u32(&row, 0).map_err(js_err)?.as_f64();
        let json = Reflect::get_u32(&row, 1).map_err(js_err)?.as_string();
        match (seq, json) {
            (Some(seq), Some(json)) => Ok(StoredItem {
                seq_num: seq as i64,
                json,
            }),
            _ => Err(StorageError("eventlog row has unexpected column types".into())),
        }
    })
    .collect()
}

/// The first column of the first row of a query's raw rows (NULL when there is none).
pub(super) fn first_column(rows: &Array) -> JsValue {
    Reflect::get_u32(&rows.get(0), 0).unwrap_or(JsValue::NULL)
}

impl DoSqliteLog {
    /// The log of `store_id` in the object's storage (`ctx.storage`).
    pub fn new(storage: &worker::Storage, store_id: &str) -> Self {
        let storage: JsValue = AsRef::<JsValue>::as_ref(storage.as_raw()).clone();
        let sql = Reflect::get(&storage, &JsValue::from_str("sql"))
            .unwrap_or(JsValue::UNDEFINED)
            .unchecked_into::<SqlStorage>();
        DoSqliteLog {
            storage,
            sql,
            store_id: store_id.to_owned(),
            table: sql::eventlog_table(store_id),
        }
    }

    fn exec(&self, query: &str, values: &[JsValue]) -> Result<SqlStorageCursor, StorageError> {
        self.sql.exec(query, binds(values)).map_err(js_err)
    }

    /// Every row of a query as arrays of column values.
    fn rows(&self, query: &str, values: &[JsValue]) -> Result<Array, StorageError> {
        let cursor = self.exec(query, values)?;
        Ok(Array::from(&cursor.raw()))
    }

    fn first_value(&self, query: &str, values: &[JsValue]) -> Result<JsValue, StorageError> {
        Ok(first_column(&self.rows(query, values)?))
    }

    /// Records which store this object serves, for an engine whose context row is elsewhere.
    pub fn remember_store(&self) -> Result<(), StorageError> {
        self.exec(sql::CREATE_OBJECT_STORE, &[])?;
        self.exec(sql::SAVE_OBJECT_STORE, &[JsValue::from_str(&self.store_id)])
            .map(|_| ())
    }

    /// Creates the `context_7` table, which stays in the object's SQLite whatever the engine.
    pub fn create_context_table(&self) -> Result<(), StorageError> {
        self.exec(sql::CREATE_CONTEXT, &[]).map(|_| ())
    }

    /// Reads this store's `context_7` row.
    pub fn context_row(&self) -> Result<Option<ContextRow>, StorageError> {
        let rows = self.rows(sql::SELECT_CONTEXT, &[JsValue::from_str(&self.store_id)])?;
        if rows.length() == 0 {
            return Ok(None);
        }
        let row = rows.get(0);
        let head = Reflect::get_u32(&row, 0).map_err(js_err)?.as_f64();
        let backend_id = Reflect::get_u32(&row, 1).map_err(js_err)?.as_string();
        match (head, backend_id) {
            (Some(head), Some(backend_id)) => Ok(Some(ContextRow {
                current_head: head as i64,
                backend_id,
            })),
            _ => Err(StorageError("context_7 row has unexpected column types".into())),
        }
    }

    /// Moves this store's head (its context row exists).
    pub fn move_head(&self, head: i64) -> Result<(), StorageError> {
        self.exec(
            sql::UPDATE_HEAD,
            &[JsValue::from_f64(head as f64), JsValue::from_str(&self.store_id)],
        )
        .map(|_| ())
    }

    /// Writes this store's `context_7` row.
    pub fn write_context_row(&self, row: &ContextRow) -> Result<(), StorageError> {
        self.sql
            .exec(sql::UPSERT_CONTEXT, self.context_binds(row))
            .map(|_| ())
            .map_err(js_err)
    }
}

pub(super) fn cursor_value(after: Option<i64>) -> JsValue {
    JsValue::from_f64(after.unwrap_or(sql::NO_CURSOR) as f64)
}

impl DoSqliteLog {
    /// The store's DO RPC subscribers (none when the table was never created).
    pub fn subscriber_rows(&self) -> Result<Vec<Subscriber>, StorageError> {
        if self.first_value(sql::SUBSCRIBERS_EXIST, &[])?.as_f64() != Some(1.0) {
            return Ok(Vec::new());
        }
        let rows = self.rows(sql::SELECT_SUBSCRIBERS, &[])?;
        rows.iter()
            .map(|row| {
                let col = |i| Reflect::get_u32(&row, i).ok();
                let subscriber = (|| {
                    Some(Subscriber {
                        caller: CallerContext {
                            binding_name: col(0)?.as_string()?,
                            durable_object_id: col(1)?.as_string()?,
                        },
                        request_id: col(2)?.as_string()?,
                        subscribed_at: col(3)?.as_f64()? as i64,
                    })
                })();
                subscriber.ok_or_else(|| StorageError("do_rpc_subscribers row has unexpected column types".into()))
            })
            .collect()
    }

    /// Records a subscriber and trims the table to the `keep` most recent.
    pub fn subscribe_row(&self, subscriber: &Subscriber, keep: usize) -> Result<(), StorageError> {
        self.exec(sql::CREATE_SUBSCRIBERS, &[])?;
        self.exec(
            sql::UPSERT_SUBSCRIBER,
            &[
                JsValue::from_str(&subscriber.caller.binding_name),
                JsValue::from_str(&subscriber.caller.durable_object_id),
                JsValue::from_str(&subscriber.request_id),
                JsValue::from_f64(subscriber.subscribed_at as f64),
            ],
        )?;
        self.exec(sql::TRIM_SUBSCRIBERS, &[JsValue::from_f64(keep as f64)])
            .map(|_| ())
    }

    /// Forgets a subscriber.
    pub fn unsubscribe_row(&self, caller: &CallerContext) -> Result<(), StorageError> {
        if self.first_value(sql::SUBSCRIBERS_EXIST, &[])?.as_f64() != Some(1.0) {
            return Ok(());
        }
        self.exec(
            sql::DELETE_SUBSCRIBER,
            &[
                JsValue::from_str(&caller.binding_name),
                JsValue::from_str(&caller.durable_object_id),
            ],
        )
        .map(|_| ())
    }
}

impl EventLog for DoSqliteLog {
    fn engine_name(&self) -> &'static str {
        "do-sqlite"
    }

    /// The head is written in the same synchronous turn as the events, in the same database:
    /// it is left behind only by a failed statement, which the core sees (and then verifies).
    fn head_may_lag(&self) -> bool {
        false
    }

    async fn create_tables(&self) -> Result<bool, StorageError> {
        let table = JsValue::from_str(&self.table);
        let existed = self.first_value(sql::TABLE_LISTED, &[table])?.as_f64() == Some(1.0);
        self.exec(&sql::create_eventlog(&self.table), &[])?;
        self.create_context_table()?;
        self.exec(&sql::drop_head_trigger(&self.table), &[])?;
        Ok(!existed)
    }

    async fn load_context(&self) -> Result<Option<ContextRow>, StorageError> {
        self.context_row()
    }

    async fn save_context(&self, row: &ContextRow) -> Result<(), StorageError> {
        self.write_context_row(row)
    }

    async fn max_seq_num(&self) -> Result<Option<i64>, StorageError> {
        Ok(self
            .first_value(&sql::select_max_seq(&self.table), &[])?
            .as_f64()
            .map(|n| n as i64))
    }

    async fn count_after(&self, after: Option<i64>) -> Result<u64, StorageError> {
        let count = self.first_value(&sql::count_after(&self.table), &[cursor_value(after)])?;
        Ok(count.as_f64().unwrap_or(0.0) as u64)
    }

    async fn read_after(&self, after: Option<i64>, limit: usize) -> Result<Vec<StoredItem>, StorageError> {
        let rows = self.rows(
            &sql::read_after(&self.table),
            &[cursor_value(after), JsValue::from_f64(limit as f64)],
        )?;
        stored_items(rows.iter())
    }

    async fn size_bytes(&self) -> Result<u64, StorageError> {
        let n = self.first_value(&sql::size_bytes(&self.table), &[])?;
        Ok(n.as_f64().unwrap_or(0.0) as u64)
    }

    async fn clear(&self, context: &ContextRow) -> Result<(), StorageError> {
        let statements = vec![
            (sql::delete_all(&self.table), Array::new()),
            (sql::UPSERT_CONTEXT.to_owned(), self.context_binds(context)),
        ];
        self.transaction(statements)
    }

    /// A batch that fits one insert (every batch the LiveStore client sends) is that one
    /// statement, atomic on its own, then the head, in the same synchronous turn, so the runtime
    /// commits both together: two calls into the runtime, no transaction. Should the head's
    /// statement fail alone, the head is left behind the log, never ahead of it, and the store's
    /// next opening moves it up (the core reopens after any storage error). A larger batch takes
    /// several inserts, run with the head in one `transactionSync`, so it is never stored in part.
    async fn append(
        &self,
        batch: &[EventIn<'_>],
        created_at: CreatedAt<'_>,
        context: &ContextRow,
    ) -> Result<Appended, StorageError> {
        let mut chunks = sql::rows_json(batch, created_at, sql::MAX_INSERT_JSON_BYTES);
        let head = || {
            binds(&[
                JsValue::from_f64(context.current_head as f64),
                JsValue::from_str(&self.store_id),
            ])
        };
        if let [chunk] = chunks.as_slice() {
            self.sql
                .exec(&chunk.insert(&self.table), row_binds(chunk))
                .map_err(js_err)?;
            return self
                .sql
                .exec(sql::UPDATE_HEAD, head())
                .map(|_| Appended::Stored)
                .map_err(js_err);
        }
        let mut statements: Vec<(String, Array)> = chunks
            .drain(..)
            .map(|chunk| (chunk.insert(&self.table), row_binds(&chunk)))
            .collect();
        statements.push((sql::UPDATE_HEAD.to_owned(), head()));
        self.transaction(statements).map(|()| Appended::Stored)
    }

    async fn subscribers(&self) -> Result<Vec<Subscriber>, StorageError> {
        self.subscriber_rows()
    }

    async fn subscribe(&self, subscriber: &Subscriber, keep: usize) -> Result<(), StorageError> {
        self.subscribe_row(subscriber, keep)
    }

    async fn unsubscribe(&self, caller: &CallerContext) -> Result<(), StorageError> {
        self.unsubscribe_row(caller)
    }

    async fn open_outbox(&self, sinks: &[&str], head: i64) -> Result<(), StorageError> {
        self.open_outbox_rows(sinks, head)
    }

    async fn outbox(&self) -> Result<Vec<SinkState>, StorageError> {
        self.outbox_rows()
    }

    async fn save_sink(&self, state: &SinkState) -> Result<bool, StorageError> {
        self.save_sink_row(state)
    }
}

impl DoSqliteLog {
    /// [`EventLog::open_outbox`], for every engine (the outbox stays in the object's SQLite).
    pub fn open_outbox_rows(&self, sinks: &[&str], head: i64) -> Result<(), StorageError> {
        self.exec(sql::CREATE_OUTBOX, &[])?;
        for sink in sinks {
            self.exec(
                sql::ADD_SINK,
                &[
                    JsValue::from_str(sink),
                    JsValue::from_str(&self.store_id),
                    JsValue::from_f64(head as f64),
                ],
            )?;
        }
        Ok(())
    }

    /// [`EventLog::outbox`].
    pub fn outbox_rows(&self) -> Result<Vec<SinkState>, StorageError> {
        if self.first_value(sql::OUTBOX_EXISTS, &[])?.as_f64() != Some(1.0) {
            return Ok(Vec::new());
        }
        let rows = self.rows(sql::SELECT_OUTBOX, &[])?;
        rows.iter()
            .map(|row| {
                let col = |i| Reflect::get_u32(&row, i).unwrap_or(JsValue::NULL);
                let int = |i| col(i).as_f64().map(|n| n as i64);
                let state = (|| {
                    Some(SinkState {
                        sink: col(0).as_string()?,
                        store_id: col(1).as_string()?,
                        cursor: int(2)?,
                        delivered: int(3)?,
                        attempts: u32::try_from(int(4)?).ok()?,
                        paused: int(5)? != 0,
                        last_error: col(6).as_string(),
                        last_attempt_at: int(7),
                        next_at: int(8)?,
                        version: int(9)?,
                        pending_to: int(10),
                    })
                })();
                state.ok_or_else(|| StorageError("outbox_sinks_1 row has unexpected column types".into()))
            })
            .collect()
    }

    /// [`EventLog::save_sink`].
    pub fn save_sink_row(&self, state: &SinkState) -> Result<bool, StorageError> {
        let opt_int = |v: Option<i64>| v.map_or(JsValue::NULL, |n| JsValue::from_f64(n as f64));
        let cursor = self.exec(
            sql::SAVE_SINK,
            &[
                JsValue::from_f64(state.cursor as f64),
                JsValue::from_f64(state.delivered as f64),
                JsValue::from_f64(f64::from(state.attempts)),
                JsValue::from_f64(if state.paused { 1.0 } else { 0.0 }),
                state.last_error.as_deref().map_or(JsValue::NULL, JsValue::from_str),
                opt_int(state.last_attempt_at),
                JsValue::from_f64(state.next_at as f64),
                opt_int(state.pending_to),
                JsValue::from_f64((state.version + 1) as f64),
                JsValue::from_str(&state.sink),
                JsValue::from_f64(state.version as f64),
            ],
        )?;
        // Drained so the statement has surely run; its count of written rows says whether it matched.
        let _ = Array::from(&cursor.raw());
        Ok(cursor.rows_written() > 0.0)
    }

    /// The store this object serves, as its storage records it (its context row, the record an
    /// engine without one there keeps, or its outbox): an alarm arrives with no request to name it.
    pub fn stored_store_id(storage: &worker::Storage) -> Option<String> {
        let log = DoSqliteLog::new(storage, "");
        let listed = |exists: &str| log.first_value(exists, &[]).ok().and_then(|v| v.as_f64()) == Some(1.0);
        let first = |query: &str| log.first_value(query, &[]).ok().and_then(|v| v.as_string());
        let from_context = if listed(sql::CONTEXT_EXISTS) {
            first(sql::CONTEXT_STORE)
        } else {
            None
        };
        from_context.or_else(|| {
            if listed(sql::OUTBOX_EXISTS) {
                first(sql::OUTBOX_STORE)
            } else {
                None
            }
        })
    }
}

impl DoSqliteLog {
    fn context_binds(&self, row: &ContextRow) -> Array {
        binds(&[
            JsValue::from_str(&self.store_id),
            JsValue::from_f64(row.current_head as f64),
            JsValue::from_str(&row.backend_id),
        ])
    }

    /// Runs statements in one `transactionSync`, which rolls every one back if one throws.
    fn transaction(&self, statements: Vec<(String, Array)>) -> Result<(), StorageError> {
        let sql = self.sql.clone();
        let callback = Closure::once_into_js(move || -> Result<(), JsValue> {
            for (query, values) in statements {
                sql.exec(&query, values)?;
            }
            Ok(())
        });
        let transaction_sync = crate::js::method(&self.storage, "transactionSync")
            .ok_or_else(|| StorageError("storage.transactionSync is not a function".into()))?;
        transaction_sync.call1(&self.storage, &callback).map_err(js_err)?;
        Ok(())
    }
}

/// The store directory's table ([`crate::directory`]) in its own object's SQLite.
pub struct DirectoryTable {
    sql: SqlStorage,
}

impl DirectoryTable {
    /// The table in the object's storage, created if missing.
    pub fn open(storage: &worker::Storage) -> Result<DirectoryTable, StorageError> {
        let log = DoSqliteLog::new(storage, "");
        log.exec(sql::CREATE_DIRECTORY, &[])?;
        Ok(DirectoryTable { sql: log.sql })
    }

    fn rows(&self, query: &str, values: &[JsValue]) -> Result<Array, StorageError> {
        let cursor = self.sql.exec(query, binds(values)).map_err(js_err)?;
        Ok(Array::from(&cursor.raw()))
    }

    /// Records a store's figures.
    pub fn upsert(&self, entry: &crate::directory::Entry, now: i64) -> Result<(), StorageError> {
        let expires = entry
            .expires_at
            .map_or(JsValue::NULL, |at| JsValue::from_f64(at as f64));
        self.rows(
            sql::UPSERT_DIRECTORY,
            &[
                JsValue::from_str(&entry.store_id),
                JsValue::from_str(&entry.engine),
                JsValue::from_f64(entry.events as f64),
                JsValue::from_f64(entry.bytes as f64),
                JsValue::from_f64(now.min(entry.last_at) as f64),
                expires,
            ],
        )
        .map(|_| ())
    }

    /// Forgets a store.
    pub fn remove(&self, store_id: &str) -> Result<(), StorageError> {
        self.rows(sql::DELETE_DIRECTORY, &[JsValue::from_str(store_id)])
            .map(|_| ())
    }

    /// One page of a listing, and how many stores its prefix matches.
    pub fn list(
        &self,
        query: &crate::directory::ListQuery,
    ) -> Result<(Vec<crate::directory::Entry>, u64), StorageError> {
        let prefix = JsValue::from_str(&query.prefix);
        let total = first_column(&self.rows(sql::COUNT_DIRECTORY, std::slice::from_ref(&prefix))?)
            .as_f64()
            .unwrap_or(0.0) as u64;
        let rows = self.rows(
            &sql::list_directory(query.sort.column(), query.descending),
            &[
                prefix,
                JsValue::from_f64(query.limit as f64),
                JsValue::from_f64(query.offset as f64),
            ],
        )?;
        let entries = rows.iter().map(|row| directory_entry(&row)).collect::<Result<_, _>>()?;
        Ok((entries, total))
    }

    /// One store's entry.
    pub fn get(&self, store_id: &str) -> Result<Option<crate::directory::Entry>, StorageError> {
        let query = crate::directory::ListQuery {
            prefix: store_id.to_owned(),
            sort: crate::directory::Sort::Id,
            descending: false,
            limit: 1,
            offset: 0,
        };
        Ok(self.list(&query)?.0.into_iter().find(|e| e.store_id == store_id))
    }
}

/// A directory row (storeId, engine, events, bytes, firstAt, lastAt, expiresAt) as an entry.
fn directory_entry(row: &JsValue) -> Result<crate::directory::Entry, StorageError> {
    let col = |i: u32| Reflect::get_u32(row, i).unwrap_or(JsValue::NULL);
    let number = |i: u32| col(i).as_f64().map(|n| n as i64);
    match (
        col(0).as_string(),
        col(1).as_string(),
        number(2),
        number(3),
        number(4),
        number(5),
    ) {
        (Some(store_id), Some(engine), Some(events), Some(bytes), Some(first_at), Some(last_at)) => {
            Ok(crate::directory::Entry {
                store_id,
                engine,
                events: events.max(0) as u64,
                bytes: bytes.max(0) as u64,
                first_at,
                last_at,
                expires_at: number(6),
            })
        }
        _ => Err(StorageError("store directory row has unexpected column types".into())),
    }
}
