//! The SQL of the event log, shared by every SQLite-dialect engine (Durable Object SQLite, D1,
//! and `rusqlite` in tests), in the reference's layout (`@livestore/sync-cf` 0.4.0,
//! `PERSISTENCE_FORMAT_VERSION = 7`).
//!
//! Writes send a whole batch as one bound JSON text that SQLite takes apart by JSON paths, and
//! reads have SQLite build each event's JSON, so a push or a page is one call into the runtime
//! instead of one per event or per column.

use super::CreatedAt;
use crate::protocol::EventIn;
use crate::util::json::push_str_literal;

/// The reference's persistence format version; part of every table name.
pub const FORMAT_VERSION: u32 = 7;

/// The context table (one row per store: head and backendId).
pub const CONTEXT_TABLE: &str = "context_7";

/// Bound in place of a cursor when pulling from the start: below every possible `seqNum`.
pub const NO_CURSOR: i64 = -crate::protocol::seq::MAX_SAFE_INTEGER;

/// Name of a store's eventlog table: `eventlog_7_` followed by the storeId with every character
/// outside `[A-Za-z0-9]` replaced by `_`.
///
/// The reference does this with a JavaScript regex over UTF-16 code units, so a character outside
/// the Basic Multilingual Plane (an emoji) becomes two underscores; so it does here. The result
/// contains only `[A-Za-z0-9_]` and is always safe to quote as an identifier.
pub fn eventlog_table(store_id: &str) -> String {
    let mut name = format!("eventlog_{FORMAT_VERSION}_");
    for c in store_id.chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c);
        } else {
            for _ in 0..c.len_utf16() {
                name.push('_');
            }
        }
    }
    name
}

/// The reference's eventlog DDL, whitespace included.
pub fn create_eventlog(table: &str) -> String {
    format!(
        r#"CREATE TABLE IF NOT EXISTS "{table}" ("seqNum" integer primary key   , "parentSeqNum" integer   not null , "name" text   not null , "args" text    , "createdAt" text   not null , "clientId" text   not null , "sessionId" text   not null ) strict"#
    )
}

/// Name of the head trigger earlier versions created on DO SQLite (it moved the head once per
/// inserted row, doubling the rows a batch writes); stores opened now drop it.
pub fn drop_head_trigger(table: &str) -> String {
    format!(r#"DROP TRIGGER IF EXISTS "livestore_head_{table}""#)
}

/// The reference's context DDL.
pub const CREATE_CONTEXT: &str = r#"CREATE TABLE IF NOT EXISTS "context_7" ("storeId" text primary key   , "currentHead" integer   not null , "backendId" text   not null ) strict"#;

/// Moves a store's head, once per append: one row written, whatever the batch's size (the context
/// row exists from the store's opening). Binds: currentHead, storeId.
pub const UPDATE_HEAD: &str = r#"UPDATE "context_7" SET currentHead = ? WHERE storeId = ?"#;

/// Reads a store's context row. Binds: storeId.
pub const SELECT_CONTEXT: &str = r#"SELECT currentHead, backendId FROM "context_7" WHERE storeId = ?"#;

/// Writes a store's context row, as the reference does. Binds: storeId, currentHead, backendId.
pub const UPSERT_CONTEXT: &str =
    r#"INSERT OR REPLACE INTO "context_7" (storeId, currentHead, backendId) VALUES (?, ?, ?)"#;

/// The highest stored `seqNum` (NULL when empty); O(1) since `seqNum` is the rowid.
pub fn select_max_seq(table: &str) -> String {
    format!(r#"SELECT MAX(seqNum) FROM "{table}""#)
}

/// Approximate bytes of a store's events: the sum of their stored text lengths (for the admin
/// API's figures; not the database's page usage).
pub fn size_bytes(table: &str) -> String {
    format!(
        r#"SELECT COALESCE(SUM(length(name) + COALESCE(length(args), 0) + length(createdAt) + length(clientId) + length(sessionId) + 16), 0) FROM "{table}""#
    )
}

/// Deletes every event of a store (the admin API's reset).
pub fn delete_all(table: &str) -> String {
    format!(r#"DELETE FROM "{table}""#)
}

/// Counts events after a cursor. Binds: cursor (or [`NO_CURSOR`]).
pub fn count_after(table: &str) -> String {
    format!(r#"SELECT COUNT(*) FROM "{table}" WHERE seqNum > ?"#)
}

/// Reads a page of events as `(seqNum, item)`, `item` being the batch item JSON. Binds: cursor, limit.
///
/// The JSON is exactly what `protocol::server::push_batch_item` writes for a pushed event.
/// Stored `args` are embedded as they are when they are valid JSON (the reference and we only
/// ever store `JSON.stringify` output); anything else is sent as a JSON string rather than
/// breaking the page.
pub fn read_after(table: &str) -> String {
    format!(
        r#"SELECT seqNum, '{{"eventEncoded":{{"name":' || json_quote(name) || ',"args":' || CASE WHEN args IS NULL THEN 'null' WHEN json_valid(args) THEN args ELSE json_quote(args) END || ',"seqNum":' || seqNum || ',"parentSeqNum":' || parentSeqNum || ',"clientId":' || json_quote(clientId) || ',"sessionId":' || json_quote(sessionId) || '}},"metadata":{{"_tag":"Some","value":{{"_tag":"SyncMessage.SyncMetadata","createdAt":' || json_quote(createdAt) || '}}}}}}' AS item FROM "{table}" WHERE seqNum > ? ORDER BY seqNum ASC LIMIT ?"#
    )
}

/// Inserts the rows of one chunk built by [`rows_json`], `rows` of them. Binds: each row's JSON,
/// one parameter per row.
///
/// Each row is `[seqNum, parentSeqNum, name, clientId, sessionId, createdAt, args?]`: `args`
/// comes last and is left out when the event has none, so `-> 6` is SQL NULL for a missing
/// `args` and the JSON text (`'null'` included) otherwise — what the reference stores.
///
/// Values are taken from each row's text by index, not by joining `json_each` over the batch: a
/// table-valued source counts a row read per event, which Cloudflare bills; this way an event
/// costs the row written and the one read of its primary-key check, as the reference's bound
/// `VALUES` rows do, in one statement where the reference needs one per 14 events. (One text per
/// row rather than one for the batch: SQLite looks a parsed JSON text up by comparing its bytes,
/// so seven lookups into one large text per row cost more than the whole insert.)
pub fn insert_rows(table: &str, rows: usize) -> String {
    use std::fmt::Write as _;
    let mut sql =
        format!(r#"INSERT INTO "{table}" (seqNum, parentSeqNum, name, clientId, sessionId, args, createdAt) VALUES "#);
    for i in 1..=rows {
        if i > 1 {
            sql.push(',');
        }
        let _ = write!(
            sql,
            "(?{i} ->> 0,?{i} ->> 1,?{i} ->> 2,?{i} ->> 3,?{i} ->> 4,?{i} -> 6,?{i} ->> 5)"
        );
    }
    sql
}

/// Largest JSON text bound to one insert. Durable Object SQLite refuses strings over 2 MB;
/// half of that leaves room.
pub const MAX_INSERT_JSON_BYTES: usize = 1_000_000;

/// Most events one insert takes: one bound parameter each, and D1 and Durable Object SQLite take
/// at most 100 per statement.
pub const MAX_INSERT_ROWS: usize = 100;

/// One insert's share of a batch: each row's JSON, bound in order to [`insert_rows`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RowsChunk {
    /// The rows, each a JSON array.
    pub rows: Vec<String>,
    bytes: usize,
}

impl RowsChunk {
    /// The insert statement for this chunk.
    pub fn insert(&self, table: &str) -> String {
        insert_rows(table, self.rows.len())
    }
}

/// Encodes a batch as rows for [`insert_rows`], split so no chunk's texts together exceed
/// `max_bytes` (a single larger event gets a chunk of its own) and no chunk has more than
/// [`MAX_INSERT_ROWS`] rows.
pub fn rows_json(batch: &[EventIn<'_>], created_at: CreatedAt<'_>, max_bytes: usize) -> Vec<RowsChunk> {
    let mut chunks = Vec::new();
    let mut current = RowsChunk::default();
    for (i, event) in batch.iter().enumerate() {
        let mut row = String::with_capacity(96 + event.args.map_or(0, |a| a.get().len()));
        row.push('[');
        row.push_str(&event.seq_num.0.to_string());
        row.push(',');
        row.push_str(&event.parent_seq_num.0.to_string());
        row.push(',');
        push_str_literal(&mut row, &event.name);
        row.push(',');
        push_str_literal(&mut row, &event.client_id);
        row.push(',');
        push_str_literal(&mut row, &event.session_id);
        row.push(',');
        push_str_literal(&mut row, created_at.of(i));
        if let Some(args) = event.args {
            row.push(',');
            row.push_str(args.get());
        }
        row.push(']');
        let full = current.bytes + row.len() > max_bytes || current.rows.len() == MAX_INSERT_ROWS;
        if !current.rows.is_empty() && full {
            chunks.push(std::mem::take(&mut current));
        }
        current.bytes += row.len();
        current.rows.push(row);
    }
    if !current.rows.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// The D1 table that records which eventlog table belongs to which store (created by
/// `migrations/0001_store_registry.sql`). It is what keeps colliding storeIds (`a-b`, `a_b`) apart.
pub const REGISTRY_TABLE: &str = "livestore_stores";

/// The migrations that create the registry, in order. `wrangler d1 migrations apply` runs them;
/// the engine runs them itself when it finds the registry missing, so a deployment works without
/// that step, as the reference's does. Every statement in them is idempotent.
pub const REGISTRY_MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_store_registry.sql"),
    include_str!("../../migrations/0002_store_registry_nocase.sql"),
];

/// The statements of a migration file, without its comment lines, one per `;`.
pub fn migration_statements(file: &str) -> Vec<String> {
    let code: String = file
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    code.split(';')
        .map(str::trim)
        .filter(|statement| !statement.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The table registered for a store. Binds: storeId.
pub const SELECT_REGISTERED: &str = "SELECT eventlogTable FROM livestore_stores WHERE storeId = ?";

/// The store a table is registered to. Binds: table name. SQLite table names are
/// case-insensitive, so `eventlog_7_Upper` and `eventlog_7_upper` are one table and must have one
/// owner.
pub const SELECT_TABLE_OWNER: &str = "SELECT storeId FROM livestore_stores WHERE eventlogTable = ? COLLATE NOCASE";

/// Registers a table for a store; a no-op when either is already registered. Binds: storeId,
/// table, createdAt.
pub const REGISTER_TABLE: &str =
    "INSERT OR IGNORE INTO livestore_stores (storeId, eventlogTable, createdAt) VALUES (?, ?, ?)";

/// Whether a table exists, under any spelling of its name's case (which SQLite ignores). Binds:
/// table name.
pub const TABLE_EXISTS: &str = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ? COLLATE NOCASE";

/// Whether a table holds any event.
pub fn select_any_row(table: &str) -> String {
    format!(r#"SELECT EXISTS (SELECT 1 FROM "{table}")"#)
}

/// A table name for a store whose reference name is taken by another store: the reference name
/// plus a hash of the exact storeId (and `attempt`, should even that be taken), so it stays
/// readable and is deterministic.
pub fn collision_free_table(store_id: &str, attempt: u32) -> String {
    // FNV-1a, 64 bits: stable across builds and platforms, unlike std's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in store_id.bytes().chain(attempt.to_le_bytes()) {
        hash ^= byte as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{}_{hash:016x}", eventlog_table(store_id))
}

/// What is known about a store's candidate (reference-named) table in a shared database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandidateFacts {
    /// The store the candidate table is registered to, if any.
    pub owner: Option<String>,
    /// The candidate table exists and holds events.
    pub has_rows: bool,
    /// This store has a context row (a head) from earlier use of its object.
    pub store_has_context: bool,
}

/// Decides whether a store not yet registered may take the reference's table name.
///
/// It may, unless another store owns it, or the table already holds events while this store has
/// never been used: then the events are a colliding store's, written by the reference before
/// the registry existed, and this store must not see them.
pub fn may_claim_reference_table(store_id: &str, facts: &CandidateFacts) -> bool {
    match &facts.owner {
        Some(owner) => owner == store_id,
        None => !facts.has_rows || facts.store_has_context,
    }
}

/// Reads a page of events, like [`read_after`], but stops once the rows reach `budget` bytes
/// (always returning at least one row), so a query's result stays within D1's response limits
/// however large the events are. Binds: cursor, limit, budget.
pub fn read_after_within(table: &str) -> String {
    let inner = read_after(table);
    format!(
        "SELECT seqNum, item FROM (SELECT seqNum, item, ROW_NUMBER() OVER (ORDER BY seqNum) AS n, \
         SUM(length(CAST(item AS BLOB))) OVER (ORDER BY seqNum ROWS UNBOUNDED PRECEDING) AS bytes FROM ({inner})) \
         WHERE n = 1 OR bytes <= ? ORDER BY seqNum"
    )
}

/// The table of a store's DO RPC subscribers, in the object's own SQLite whatever the engine.
/// Created by the first subscription, so stores that never see DO RPC do not get it.
pub const CREATE_SUBSCRIBERS: &str = "CREATE TABLE IF NOT EXISTS do_rpc_subscribers (binding_name TEXT NOT NULL, durable_object_id TEXT NOT NULL, request_id TEXT NOT NULL, subscribed_at INTEGER NOT NULL, PRIMARY KEY (binding_name, durable_object_id))";

/// Whether the subscribers table exists (1 or 0). The table-valued pragma looks the name up
/// without reading a row; a query of `sqlite_master` reads every table's row, which Cloudflare
/// bills as rows read.
pub const SUBSCRIBERS_EXIST: &str = "SELECT COUNT(*) FROM pragma_table_list('do_rpc_subscribers')";

/// 1 if the table named by the bound parameter exists, else 0, found as [`SUBSCRIBERS_EXIST`] is:
/// without reading a row, unlike [`TABLE_EXISTS`] (kept for D1, whose pragma support is
/// narrower). Binds: table name.
pub const TABLE_LISTED: &str = "SELECT COUNT(*) FROM pragma_table_list(?1)";

/// Every subscriber, oldest first: binding, object id, request id, subscribedAt.
pub const SELECT_SUBSCRIBERS: &str =
    "SELECT binding_name, durable_object_id, request_id, subscribed_at FROM do_rpc_subscribers ORDER BY subscribed_at";

/// Records a subscriber, replacing the same object's. Binds: binding, object id, request id,
/// subscribedAt.
pub const UPSERT_SUBSCRIBER: &str = "INSERT OR REPLACE INTO do_rpc_subscribers (binding_name, durable_object_id, request_id, subscribed_at) VALUES (?, ?, ?, ?)";

/// Keeps the most recent subscribers. Binds: how many.
pub const TRIM_SUBSCRIBERS: &str = "DELETE FROM do_rpc_subscribers WHERE rowid NOT IN (SELECT rowid FROM do_rpc_subscribers ORDER BY subscribed_at DESC LIMIT ?)";

/// Forgets a subscriber. Binds: binding, object id.
pub const DELETE_SUBSCRIBER: &str = "DELETE FROM do_rpc_subscribers WHERE binding_name = ? AND durable_object_id = ?";

/// The outbox: one row per configured sink of the store ([`crate::outbox::SinkState`]), in the
/// object's own SQLite whatever the engine, so the cursor moves with the alarm that moves it.
/// Created when a sink is first configured, so stores without one do not get it.
pub const CREATE_OUTBOX: &str = "CREATE TABLE IF NOT EXISTS outbox_sinks_1 (sink TEXT PRIMARY KEY, store_id TEXT NOT NULL, cursor INTEGER NOT NULL, delivered INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0, paused INTEGER NOT NULL DEFAULT 0, last_error TEXT, last_attempt_at INTEGER, next_at INTEGER NOT NULL DEFAULT 0, pending_to INTEGER, version INTEGER NOT NULL DEFAULT 0)";

/// Adds a sink that is not recorded yet, its cursor at the head. Binds: sink, storeId, cursor.
pub const ADD_SINK: &str = "INSERT OR IGNORE INTO outbox_sinks_1 (sink, store_id, cursor) VALUES (?, ?, ?)";

/// Whether the outbox table exists (1 or 0), found without reading a row.
pub const OUTBOX_EXISTS: &str = "SELECT COUNT(*) FROM pragma_table_list('outbox_sinks_1')";

/// Every sink's state, by name: sink, storeId, cursor, delivered, attempts, paused, last error,
/// last attempt, next attempt, version, pending batch's end.
pub const SELECT_OUTBOX: &str = "SELECT sink, store_id, cursor, delivered, attempts, paused, last_error, last_attempt_at, next_at, version, pending_to FROM outbox_sinks_1 ORDER BY sink";

/// Writes a sink's state if nobody wrote it since it was read (its version is unchanged).
/// Binds: cursor, delivered, attempts, paused, last error, last attempt, next attempt, pending
/// batch's end, new version, sink, version read.
pub const SAVE_SINK: &str = "UPDATE outbox_sinks_1 SET cursor = ?, delivered = ?, attempts = ?, paused = ?, last_error = ?, last_attempt_at = ?, next_at = ?, pending_to = ?, version = ? WHERE sink = ? AND version = ?";

/// The store an outbox belongs to, for an alarm that arrives before any request.
pub const OUTBOX_STORE: &str = "SELECT store_id FROM outbox_sinks_1 LIMIT 1";

/// The store an object serves, for an alarm that arrives before any request: its context row.
pub const CONTEXT_STORE: &str = r#"SELECT storeId FROM "context_7" LIMIT 1"#;

/// The store an object serves, on an engine that keeps its context row elsewhere (Postgres), so
/// that an alarm arriving before any request finds it.
pub const CREATE_OBJECT_STORE: &str = "CREATE TABLE IF NOT EXISTS object_store_1 (storeId TEXT PRIMARY KEY) STRICT";

/// Records it (a row written once per object). Binds: storeId.
pub const SAVE_OBJECT_STORE: &str = "INSERT OR IGNORE INTO object_store_1 (storeId) VALUES (?)";

/// Whether that table exists (1 or 0).
pub const OBJECT_STORE_EXISTS: &str = "SELECT COUNT(*) FROM pragma_table_list('object_store_1')";

/// The store recorded there.
pub const OBJECT_STORE: &str = "SELECT storeId FROM object_store_1 LIMIT 1";

/// Whether the context table exists (1 or 0), found without reading a row.
pub const CONTEXT_EXISTS: &str = "SELECT COUNT(*) FROM pragma_table_list('context_7')";

/// The store directory ([`crate::directory`]), in its own object's SQLite: one row per store.
pub const CREATE_DIRECTORY: &str = "CREATE TABLE IF NOT EXISTS store_directory_1 (storeId TEXT PRIMARY KEY, engine TEXT NOT NULL, events INTEGER NOT NULL, bytes INTEGER NOT NULL, firstAt INTEGER NOT NULL, lastAt INTEGER NOT NULL, expiresAt INTEGER) STRICT";

/// Records a store's figures; the first time it is heard of stays. Binds: storeId, engine,
/// events, bytes, now (first and last activity), expiry.
pub const UPSERT_DIRECTORY: &str = "INSERT INTO store_directory_1 (storeId, engine, events, bytes, firstAt, lastAt, expiresAt) VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6) ON CONFLICT (storeId) DO UPDATE SET engine = excluded.engine, events = excluded.events, bytes = excluded.bytes, lastAt = MAX(lastAt, excluded.lastAt), expiresAt = excluded.expiresAt";

/// Forgets a store. Binds: storeId.
pub const DELETE_DIRECTORY: &str = "DELETE FROM store_directory_1 WHERE storeId = ?";

/// How many stores a listing's prefix matches. Binds: prefix.
pub const COUNT_DIRECTORY: &str = "SELECT COUNT(*) FROM store_directory_1 WHERE substr(storeId, 1, length(?1)) = ?1";

/// A page of the directory: storeId, engine, events, bytes, firstAt, lastAt, expiresAt, ordered
/// by `column` (one of [`crate::directory::Sort::column`]'s fixed names), then by storeId.
/// Binds: prefix, limit, offset.
pub fn list_directory(column: &str, descending: bool) -> String {
    let order = if descending { "DESC" } else { "ASC" };
    format!(
        "SELECT storeId, engine, events, bytes, firstAt, lastAt, expiresAt FROM store_directory_1 WHERE substr(storeId, 1, length(?1)) = ?1 ORDER BY {column} {order}, storeId {order} LIMIT ?2 OFFSET ?3"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // rusqlite is a native dev-dependency: the wasm32 lint of the tests leaves this one out.
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn the_registry_migrations_run_as_statements() {
        let statements: Vec<String> = REGISTRY_MIGRATIONS
            .iter()
            .flat_map(|f| migration_statements(f))
            .collect();
        assert_eq!(statements.len(), 2, "{statements:?}");
        assert!(statements[0].starts_with("CREATE TABLE IF NOT EXISTS livestore_stores"));
        assert!(statements[1].starts_with("CREATE UNIQUE INDEX IF NOT EXISTS"));
        // They run on the production SQL engine, twice (idempotent).
        let db = rusqlite::Connection::open_in_memory().unwrap();
        for _ in 0..2 {
            for statement in &statements {
                db.execute_batch(statement).unwrap();
            }
        }
    }

    // Runs the production insert on the native SQLite engine.
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn a_batch_inserts_in_chunks_by_json_paths() {
        use crate::protocol::EventIn;
        let json: String = format!(
            "[{}]",
            (1..=250)
                .map(|i| match i {
                    // No args (stored NULL), and args `null` (stored as the text `null`).
                    7 => format!(r#"{{"name":"n","seqNum":{i},"parentSeqNum":{},"clientId":"c","sessionId":"s"}}"#, i - 1),
                    8 => format!(r#"{{"name":"n","args":null,"seqNum":{i},"parentSeqNum":{},"clientId":"c","sessionId":"s"}}"#, i - 1),
                    _ => format!(r#"{{"name":"n'\"{i}","args":{{"i":{i},"t":"é'"}},"seqNum":{i},"parentSeqNum":{},"clientId":"c","sessionId":"s"}}"#, i - 1),
                })
                .collect::<Vec<_>>()
                .join(",")
        );
        let batch: Vec<EventIn<'_>> = serde_json::from_str(&json).unwrap();
        let chunks = rows_json(
            &batch,
            CreatedAt::All("2026-11-30T00:00:00.000Z"),
            MAX_INSERT_JSON_BYTES,
        );
        assert_eq!(chunks.iter().map(|c| c.rows.len()).collect::<Vec<_>>(), [100, 100, 50]);
        // A byte budget splits too, and a chunk always takes at least one row.
        let small = rows_json(&batch[..5], CreatedAt::All("t"), 10);
        assert_eq!(small.iter().map(|c| c.rows.len()).collect::<Vec<_>>(), [1, 1, 1, 1, 1]);

        let db = rusqlite::Connection::open_in_memory().unwrap();
        let table = eventlog_table("s");
        db.execute_batch(&create_eventlog(&table)).unwrap();
        for chunk in &chunks {
            let stored = db.execute(&chunk.insert(&table), rusqlite::params_from_iter(&chunk.rows));
            assert_eq!(stored.unwrap(), chunk.rows.len());
        }
        let row = |seq: i64| {
            db.query_row(
                &format!(r#"SELECT parentSeqNum, name, args, createdAt, clientId, sessionId, typeof(seqNum) FROM "{table}" WHERE seqNum = ?"#),
                [seq],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<String>>(2)?, r.get::<_, String>(3)?, r.get::<_, String>(4)?, r.get::<_, String>(5)?, r.get::<_, String>(6)?)),
            )
            .unwrap()
        };
        let (parent, name, args, created_at, client, session, seq_type) = row(250);
        assert_eq!(
            (
                parent,
                name.as_str(),
                created_at.as_str(),
                client.as_str(),
                session.as_str(),
                seq_type.as_str()
            ),
            (249, "n'\"250", "2026-11-30T00:00:00.000Z", "c", "s", "integer")
        );
        assert_eq!(args.as_deref(), Some(r#"{"i":250,"t":"é'"}"#));
        assert_eq!(row(7).2, None);
        assert_eq!(row(8).2.as_deref(), Some("null"));
        let count: i64 = db
            .query_row(&format!(r#"SELECT COUNT(*) FROM "{table}""#), [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 250);
    }

    #[test]
    fn collision_free_names() {
        let a = collision_free_table("a-b", 0);
        let b = collision_free_table("a_b", 0);
        assert_ne!(a, b);
        assert!(a.starts_with("eventlog_7_a_b_") && a.len() == "eventlog_7_a_b_".len() + 16);
        assert_eq!(a, collision_free_table("a-b", 0), "deterministic");
        assert_ne!(a, collision_free_table("a-b", 1));
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_'));
    }

    #[test]
    fn claiming_the_reference_table() {
        let facts = |owner: Option<&str>, has_rows, store_has_context| CandidateFacts {
            owner: owner.map(str::to_owned),
            has_rows,
            store_has_context,
        };
        // A fresh store, a fresh table.
        assert!(may_claim_reference_table("a-b", &facts(None, false, false)));
        // The reference wrote this store's events there before (its context row exists).
        assert!(may_claim_reference_table("a-b", &facts(None, true, true)));
        // Someone else's events.
        assert!(!may_claim_reference_table("a_b", &facts(None, true, false)));
        assert!(!may_claim_reference_table("a_b", &facts(Some("a-b"), false, true)));
        assert!(may_claim_reference_table("a-b", &facts(Some("a-b"), true, true)));
    }

    #[test]
    fn table_names_follow_the_reference() {
        assert_eq!(eventlog_table("store-ws"), "eventlog_7_store_ws");
        assert_eq!(eventlog_table("a_b"), "eventlog_7_a_b");
        assert_eq!(eventlog_table("Ab9"), "eventlog_7_Ab9");
        assert_eq!(eventlog_table("é"), "eventlog_7__");
        assert_eq!(eventlog_table("😀"), "eventlog_7___");
        assert_eq!(
            eventlog_table("x\"; DROP TABLE y; --"),
            "eventlog_7_x___DROP_TABLE_y____"
        );
    }
}
