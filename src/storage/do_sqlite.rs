//! The event log in the Durable Object's own SQLite database (`ctx.storage.sql`), the default
//! engine and the reference's `do-sqlite` storage.

use js_sys::{Array, Function, Reflect};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use worker::worker_sys::types::{SqlStorage, SqlStorageCursor};

use super::sql;
use super::{ContextRow, EventLog, StorageError, StoredItem};
use crate::js::error_message;
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

    /// Writes this store's `context_7` row.
    pub fn write_context_row(&self, row: &ContextRow) -> Result<(), StorageError> {
        self.exec(
            sql::UPSERT_CONTEXT,
            &[
                JsValue::from_str(&self.store_id),
                JsValue::from_f64(row.current_head as f64),
                JsValue::from_str(&row.backend_id),
            ],
        )?;
        Ok(())
    }
}

pub(super) fn cursor_value(after: Option<i64>) -> JsValue {
    JsValue::from_f64(after.unwrap_or(sql::NO_CURSOR) as f64)
}

impl EventLog for DoSqliteLog {
    async fn create_tables(&self) -> Result<(), StorageError> {
        self.exec(&sql::create_eventlog(&self.table), &[])?;
        self.create_context_table()?;
        self.exec(&sql::create_head_trigger(&self.table), &[]).map(|_| ())
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

    /// Both statements run in the same synchronous turn, so the runtime commits them together.
    async fn clear(&self, context: &ContextRow) -> Result<(), StorageError> {
        self.exec(&sql::delete_all(&self.table), &[])?;
        self.write_context_row(context)
    }

    /// Appends with the head trigger moving the head ([`DoSqliteLog::insert_chunks`]).
    async fn append(&self, batch: &[EventIn<'_>], created_at: &str, _context: &ContextRow) -> Result<(), StorageError> {
        let rows = sql::rows_json(batch, sql::MAX_INSERT_JSON_BYTES);
        self.insert_chunks(sql::insert_rows(&self.table), rows, Some(JsValue::from_str(created_at)))
    }

    async fn append_timed(
        &self,
        batch: &[EventIn<'_>],
        created_at: &[&str],
        _context: &ContextRow,
    ) -> Result<(), StorageError> {
        let rows = sql::rows_json_timed(batch, created_at, sql::MAX_INSERT_JSON_BYTES);
        self.insert_chunks(sql::insert_rows_timed(&self.table), rows, None)
    }
}

impl DoSqliteLog {
    /// Runs `insert` once per chunk of rows (bound after `created_at`, when given). One chunk
    /// (every batch the LiveStore client sends) is a single statement, atomic on its own; more
    /// run in `transactionSync`, which rolls every statement back if one throws.
    fn insert_chunks(
        &self,
        insert: String,
        mut chunks: Vec<String>,
        created_at: Option<JsValue>,
    ) -> Result<(), StorageError> {
        let values = |rows: &str| match &created_at {
            Some(created_at) => vec![created_at.clone(), JsValue::from_str(rows)],
            None => vec![JsValue::from_str(rows)],
        };
        if chunks.len() == 1 {
            let rows = chunks.pop().unwrap_or_default();
            return self.exec(&insert, &values(&rows)).map(|_| ());
        }
        let statements: Vec<Array> = chunks.iter().map(|rows| binds(&values(rows))).collect();
        let sql = self.sql.clone();
        let callback = Closure::once_into_js(move || -> Result<(), JsValue> {
            for values in statements {
                sql.exec(&insert, values)?;
            }
            Ok(())
        });
        let transaction_sync: Function = Reflect::get(&self.storage, &JsValue::from_str("transactionSync"))
            .and_then(|f| f.dyn_into::<Function>())
            .map_err(js_err)?;
        transaction_sync.call1(&self.storage, &callback).map_err(js_err)?;
        Ok(())
    }
}
