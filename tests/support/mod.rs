//! The event log on a real SQLite database through `rusqlite`, running exactly the SQL the Durable
//! Object runs (`storage::sql`), so the sync rules and the storage layout are tested natively.
// Shared by several test crates, each using a subset of it.
#![allow(dead_code)]

use std::cell::RefCell;

use livestore_sync::protocol::EventIn;
use livestore_sync::storage::{sql, ContextRow, EventLog, StorageError, StoredItem};
use rusqlite::{params, Connection, OptionalExtension};

/// One eventlog row: seqNum, parentSeqNum, name, args, createdAt, clientId, sessionId.
pub type Row = (i64, i64, String, Option<String>, String, String, String);

/// A store's log in an in-memory (or file) SQLite database.
pub struct SqliteLog {
    /// The connection; public so tests can inspect or tamper with rows.
    pub conn: Connection,
    store_id: String,
    table: String,
    /// When set, the next `append` fails after inserting its events, to check atomicity.
    pub fail_next_append: RefCell<bool>,
    /// When set, reads use the size-bounded page query (as on D1) with this many bytes.
    pub read_budget: Option<usize>,
}

fn err(e: rusqlite::Error) -> StorageError {
    StorageError(e.to_string())
}

impl SqliteLog {
    /// A fresh in-memory database for `store_id`.
    pub fn new(store_id: &str) -> Self {
        Self::with_connection(Connection::open_in_memory().unwrap(), store_id)
    }

    /// The log of `store_id` in an existing database.
    pub fn with_connection(conn: Connection, store_id: &str) -> Self {
        SqliteLog {
            conn,
            store_id: store_id.to_owned(),
            table: sql::eventlog_table(store_id),
            fail_next_append: RefCell::new(false),
            read_budget: None,
        }
    }

    /// The eventlog table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Every stored row, as the reference's columns.
    pub fn rows(&self) -> Vec<Row> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                r#"SELECT seqNum, parentSeqNum, name, args, createdAt, clientId, sessionId FROM "{}" ORDER BY seqNum"#,
                self.table
            ))
            .unwrap();
        stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }
}

fn cursor(after: Option<i64>) -> i64 {
    after.unwrap_or(sql::NO_CURSOR)
}

impl EventLog for SqliteLog {
    async fn create_tables(&self) -> Result<(), StorageError> {
        self.conn.execute(&sql::create_eventlog(&self.table), []).map_err(err)?;
        self.conn.execute(sql::CREATE_CONTEXT, []).map_err(err)?;
        self.conn
            .execute(&sql::create_head_trigger(&self.table), [])
            .map_err(err)?;
        Ok(())
    }

    async fn load_context(&self) -> Result<Option<ContextRow>, StorageError> {
        self.conn
            .query_row(sql::SELECT_CONTEXT, [&self.store_id], |r| {
                Ok(ContextRow {
                    current_head: r.get(0)?,
                    backend_id: r.get(1)?,
                })
            })
            .optional()
            .map_err(err)
    }

    async fn save_context(&self, row: &ContextRow) -> Result<(), StorageError> {
        self.conn
            .execute(
                sql::UPSERT_CONTEXT,
                params![self.store_id, row.current_head, row.backend_id],
            )
            .map_err(err)?;
        Ok(())
    }

    async fn max_seq_num(&self) -> Result<Option<i64>, StorageError> {
        self.conn
            .query_row(&sql::select_max_seq(&self.table), [], |r| r.get(0))
            .map_err(err)
    }

    async fn size_bytes(&self) -> Result<u64, StorageError> {
        let n: i64 = self
            .conn
            .query_row(&sql::size_bytes(&self.table), [], |r| r.get(0))
            .map_err(err)?;
        Ok(n as u64)
    }

    async fn clear(&self, context: &ContextRow) -> Result<(), StorageError> {
        self.conn.execute(&sql::delete_all(&self.table), []).map_err(err)?;
        self.save_context(context).await
    }

    async fn count_after(&self, after: Option<i64>) -> Result<u64, StorageError> {
        let n: i64 = self
            .conn
            .query_row(&sql::count_after(&self.table), [cursor(after)], |r| r.get(0))
            .map_err(err)?;
        Ok(n as u64)
    }

    async fn read_after(&self, after: Option<i64>, limit: usize) -> Result<Vec<StoredItem>, StorageError> {
        let row = |r: &rusqlite::Row| {
            Ok(StoredItem {
                seq_num: r.get(0)?,
                json: r.get(1)?,
            })
        };
        let rows = match self.read_budget {
            None => {
                let mut stmt = self.conn.prepare(&sql::read_after(&self.table)).map_err(err)?;
                let rows = stmt.query_map(params![cursor(after), limit as i64], row).map_err(err)?;
                rows.collect::<Result<Vec<_>, _>>()
            }
            Some(budget) => {
                let mut stmt = self.conn.prepare(&sql::read_after_within(&self.table)).map_err(err)?;
                let rows = stmt
                    .query_map(params![cursor(after), limit as i64, budget as i64], row)
                    .map_err(err)?;
                rows.collect::<Result<Vec<_>, _>>()
            }
        };
        rows.map_err(err)
    }

    async fn append(&self, batch: &[EventIn<'_>], created_at: &str, context: &ContextRow) -> Result<(), StorageError> {
        let tx = self.conn.unchecked_transaction().map_err(err)?;
        for rows in sql::rows_json(batch, sql::MAX_INSERT_JSON_BYTES) {
            tx.execute(&sql::insert_rows(&self.table), params![created_at, rows])
                .map_err(err)?;
        }
        if self.fail_next_append.replace(false) {
            return Err(StorageError("injected failure".into()));
        }
        tx.execute(
            sql::UPSERT_CONTEXT,
            params![self.store_id, context.current_head, context.backend_id],
        )
        .map_err(err)?;
        tx.commit().map_err(err)
    }

    async fn append_timed(
        &self,
        batch: &[EventIn<'_>],
        created_at: &[&str],
        context: &ContextRow,
    ) -> Result<(), StorageError> {
        let tx = self.conn.unchecked_transaction().map_err(err)?;
        for rows in sql::rows_json_timed(batch, created_at, sql::MAX_INSERT_JSON_BYTES) {
            tx.execute(&sql::insert_rows_timed(&self.table), params![rows])
                .map_err(err)?;
        }
        tx.execute(
            sql::UPSERT_CONTEXT,
            params![self.store_id, context.current_head, context.backend_id],
        )
        .map_err(err)?;
        tx.commit().map_err(err)
    }
}
