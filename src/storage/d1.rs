//! The event log in D1 (`STORAGE=d1`), the reference's `{ _tag: 'd1', binding }` storage, without
//! its flaws:
//!
//! - **No shared tables.** The reference names a store's D1 table by replacing every
//!   non-alphanumeric character of its id with `_`, so `a-b` and `a_b` write into one table. Here a
//!   registry table (`livestore_stores`, from `migrations/`, which the engine applies itself when
//!   they were not) records which table is whose: a store
//!   takes the reference's name when nobody else has it — so non-colliding stores keep the
//!   reference's layout and stay readable by it — and a collision-free name otherwise.
//! - **Consistent across two databases.** Events go to D1 in one atomic batch, and only then is
//!   the head written to the object's own SQLite (`context_7`, where the reference keeps it too).
//!   A crash between the two leaves the head behind the log, never ahead of it, and opening a
//!   store moves the head up to the last stored event; nothing acknowledged is lost, and `seqNum`,
//!   the table's primary key, can never repeat.
//! - **Within D1's limits.** Two bound parameters per statement (the batch is one JSON text), and
//!   reads bounded by bytes, not only rows, so events of hundreds of KB still sync.

use std::cell::RefCell;

use wasm_bindgen::JsValue;
use worker::D1Database;

use super::do_sqlite::{cursor_value, first_column, stored_items, DoSqliteLog};
use super::sql::{self, CandidateFacts};
use super::{Appended, ContextRow, CreatedAt, EventLog, SinkState, StorageError, StoredItem, Subscriber};
use crate::protocol::CallerContext;
use crate::protocol::EventIn;

/// Most bytes of events one read returns (at least one event is always returned).
const READ_BUDGET_BYTES: usize = 1_000_000;

/// Event name that makes the object crash right after the D1 write, in builds with the
/// `test-faults` feature and `TEST_FAULTS=true` (the D1 recovery test; release builds lack it).
#[cfg(feature = "test-faults")]
pub const CRASH_AFTER_APPEND: &str = "test.crashAfterD1Append";

/// One store's log in D1, with its context in the object's SQLite.
pub struct D1Log {
    db: D1Database,
    context: DoSqliteLog,
    store_id: String,
    /// Resolved by `create_tables` through the registry.
    table: RefCell<String>,
    /// `TEST_FAULTS` (builds with the `test-faults` feature only).
    test_faults: bool,
}

fn d1_err(e: worker::Error) -> StorageError {
    StorageError(format!("D1: {e}"))
}

impl D1Log {
    /// The log of `store_id` in `db`; `context` is the object's SQLite, for the head.
    pub fn new(db: D1Database, context: DoSqliteLog, store_id: &str, test_faults: bool) -> Self {
        D1Log {
            db,
            context,
            store_id: store_id.to_owned(),
            table: RefCell::new(sql::eventlog_table(store_id)),
            test_faults,
        }
    }

    fn table(&self) -> String {
        self.table.borrow().clone()
    }

    /// Runs one statement and returns its rows as arrays.
    async fn rows(&self, query: &str, values: &[JsValue]) -> Result<Vec<JsValue>, StorageError> {
        let statement = self.db.prepare(query).bind(values).map_err(d1_err)?;
        statement.raw_js_value().await.map_err(d1_err)
    }

    async fn first(&self, query: &str, values: &[JsValue]) -> Result<JsValue, StorageError> {
        let rows = self.rows(query, values).await?;
        Ok(first_column(&rows.into_iter().collect()))
    }

    async fn registered_table(&self) -> Result<Option<String>, StorageError> {
        Ok(self
            .first(sql::SELECT_REGISTERED, &[JsValue::from_str(&self.store_id)])
            .await?
            .as_string())
    }

    /// Finds this store's table, registering one on first use.
    async fn resolve_table(&self) -> Result<String, StorageError> {
        let registered = match self.registered_table().await {
            Ok(registered) => registered,
            Err(e) if self.registry_missing().await => {
                self.create_registry().await.map_err(|created| {
                    StorageError(format!("the D1 database has no livestore_stores table and creating it failed ({}): apply the migrations (npx wrangler d1 migrations apply <database> --remote, or --local for wrangler dev); the first error was: {}", created.0, e.0))
                })?;
                self.registered_table().await?
            }
            Err(e) => return Err(e),
        };
        if let Some(table) = registered {
            return Ok(table);
        }
        let store_has_context = self.context.context_row()?.is_some();
        for attempt in 0..8 {
            let candidate = match attempt {
                0 => sql::eventlog_table(&self.store_id),
                n => sql::collision_free_table(&self.store_id, n - 1),
            };
            let name = JsValue::from_str(&candidate);
            let owner = self
                .first(sql::SELECT_TABLE_OWNER, std::slice::from_ref(&name))
                .await?
                .as_string();
            let exists = self
                .first(sql::TABLE_EXISTS, std::slice::from_ref(&name))
                .await?
                .as_f64()
                .unwrap_or(0.0)
                > 0.0;
            let has_rows = exists
                && self
                    .first(&sql::select_any_row(&candidate), &[])
                    .await?
                    .as_f64()
                    .unwrap_or(0.0)
                    > 0.0;
            let facts = CandidateFacts {
                owner,
                has_rows,
                store_has_context,
            };
            if !sql::may_claim_reference_table(&self.store_id, &facts) {
                // Not an error: the store gets a name of its own on the next attempt.
                continue;
            }
            let created_at = crate::util::time::iso8601_from_millis(crate::js::now_millis());
            self.rows(
                sql::REGISTER_TABLE,
                &[JsValue::from_str(&self.store_id), name, JsValue::from_str(&created_at)],
            )
            .await?;
            // Another store may have registered the name in the meantime; the registry decides.
            if let Some(table) = self.registered_table().await? {
                return Ok(table);
            }
        }
        Err(StorageError(format!(
            "could not register a D1 table for store {:?}",
            self.store_id
        )))
    }
}

impl D1Log {
    /// Whether the registry table is missing (the migrations were never applied).
    async fn registry_missing(&self) -> bool {
        let exists = self
            .first(sql::TABLE_EXISTS, &[JsValue::from_str(sql::REGISTRY_TABLE)])
            .await;
        matches!(exists.map(|n| n.as_f64()), Ok(Some(0.0)))
    }

    /// Runs the registry's migrations (idempotent statements; another object may run them at the
    /// same moment).
    async fn create_registry(&self) -> Result<(), StorageError> {
        for file in sql::REGISTRY_MIGRATIONS {
            for statement in sql::migration_statements(file) {
                self.db.prepare(&statement).run().await.map_err(d1_err)?;
            }
        }
        Ok(())
    }
}

impl EventLog for D1Log {
    fn engine_name(&self) -> &'static str {
        "d1"
    }

    async fn create_tables(&self) -> Result<bool, StorageError> {
        self.context.create_context_table()?;
        let table = self.resolve_table().await?;
        self.db
            .prepare(sql::create_eventlog(&table))
            .run()
            .await
            .map_err(d1_err)?;
        *self.table.borrow_mut() = table;
        // Its head is read from the log on every opening anyway (`head_may_lag`).
        Ok(false)
    }

    async fn load_context(&self) -> Result<Option<ContextRow>, StorageError> {
        self.context.context_row()
    }

    async fn save_context(&self, row: &ContextRow) -> Result<(), StorageError> {
        self.context.write_context_row(row)
    }

    async fn max_seq_num(&self) -> Result<Option<i64>, StorageError> {
        Ok(self
            .first(&sql::select_max_seq(&self.table()), &[])
            .await?
            .as_f64()
            .map(|n| n as i64))
    }

    async fn count_after(&self, after: Option<i64>) -> Result<u64, StorageError> {
        let count = self
            .first(&sql::count_after(&self.table()), &[cursor_value(after)])
            .await?;
        Ok(count.as_f64().unwrap_or(0.0) as u64)
    }

    async fn read_after(&self, after: Option<i64>, limit: usize) -> Result<Vec<StoredItem>, StorageError> {
        let rows = self
            .rows(
                &sql::read_after_within(&self.table()),
                &[
                    cursor_value(after),
                    JsValue::from_f64(limit as f64),
                    JsValue::from_f64(READ_BUDGET_BYTES as f64),
                ],
            )
            .await?;
        stored_items(rows.into_iter())
    }

    async fn size_bytes(&self) -> Result<u64, StorageError> {
        let n = self.first(&sql::size_bytes(&self.table()), &[]).await?;
        Ok(n.as_f64().unwrap_or(0.0) as u64)
    }

    async fn clear(&self, context: &ContextRow) -> Result<(), StorageError> {
        // The table stays registered to this store; only its rows go.
        self.db
            .prepare(sql::delete_all(&self.table()))
            .run()
            .await
            .map_err(d1_err)?;
        self.context.write_context_row(context)
    }

    async fn append(
        &self,
        batch: &[EventIn<'_>],
        created_at: CreatedAt<'_>,
        context: &ContextRow,
    ) -> Result<Appended, StorageError> {
        let table = self.table();
        let statements = sql::rows_json(batch, created_at, sql::MAX_INSERT_JSON_BYTES)
            .into_iter()
            .map(|chunk| {
                self.db
                    .prepare(chunk.insert(&table))
                    .bind(&chunk.rows.iter().map(|row| JsValue::from_str(row)).collect::<Vec<_>>())
                    .map_err(d1_err)
            })
            .collect::<Result<Vec<_>, _>>()?;
        // D1 runs a batch as one transaction: every event is stored, or none.
        self.db.batch(statements).await.map_err(d1_err)?;
        self.crash_if_asked(batch);
        self.context.move_head(context.current_head).map_err(|e| {
            StorageError(format!(
                "the events are stored, but the head could not be written: {}",
                e.0
            ))
        })?;
        Ok(Appended::Stored)
    }

    async fn subscribers(&self) -> Result<Vec<Subscriber>, StorageError> {
        self.context.subscriber_rows()
    }

    async fn subscribe(&self, subscriber: &Subscriber, keep: usize) -> Result<(), StorageError> {
        self.context.subscribe_row(subscriber, keep)
    }

    async fn unsubscribe(&self, caller: &CallerContext) -> Result<(), StorageError> {
        self.context.unsubscribe_row(caller)
    }
    async fn open_outbox(&self, sinks: &[&str], head: i64) -> Result<(), StorageError> {
        self.context.open_outbox_rows(sinks, head)
    }

    async fn outbox(&self) -> Result<Vec<SinkState>, StorageError> {
        self.context.outbox_rows()
    }

    async fn save_sink(&self, state: &SinkState) -> Result<bool, StorageError> {
        self.context.save_sink_row(state)
    }
}

impl D1Log {
    /// Stands for a crash between the two databases' writes (see the D1 recovery test).
    #[cfg(feature = "test-faults")]
    fn crash_if_asked(&self, batch: &[EventIn<'_>]) {
        if self.test_faults && batch.first().is_some_and(|e| e.name == CRASH_AFTER_APPEND) {
            panic!("test fault: crash after the D1 append, before the head is written");
        }
    }

    #[cfg(not(feature = "test-faults"))]
    fn crash_if_asked(&self, _batch: &[EventIn<'_>]) {
        let _ = self.test_faults;
    }
}
