//! The SQL of the Postgres engine, in `@livestore/sync-electric`'s layout: a store's events in
//! `eventlog_6_<storeId>` with the example proxy's columns, so a database that proxy wrote is
//! served as it is and what we write is read by anything that reads that layout (Electric
//! included). What sync-cf clients need beyond it lives beside it without breaking it:
//!
//! - `createdAt`: one nullable column added to the event table. The proxy's inserts leave it
//!   out; Electric streams it as one more field, which the sync-electric client ignores. Events
//!   without it are pulled with `metadata: None`.
//! - backendId: a row per store in `livestore_stores` (also which table is whose, as on D1).
//! - the head: none stored. It is the highest `seqNum`, so it can never disagree with the log,
//!   and a push is stored by one statement only while that is still its parent (the primary key
//!   settles two nodes racing for the same numbers).
//!
//! Table names are built from `[A-Za-z0-9_-]` only and always quoted; a storeId reaches SQL only
//! as a bound parameter.

/// The table that records each store's event table and backendId.
pub const REGISTRY_TABLE: &str = "livestore_stores";

/// The registry's DDL. `backendId` is NULL between the store's registration and its first
/// opening, which sets it once (the first node to open a store decides).
pub const CREATE_REGISTRY: &str = r#"CREATE TABLE IF NOT EXISTS livestore_stores ("storeId" TEXT PRIMARY KEY, "eventlogTable" TEXT NOT NULL UNIQUE, "backendId" TEXT, "createdAt" TEXT NOT NULL)"#;

/// A store's event table and backendId. Binds: storeId.
pub const SELECT_REGISTERED: &str = r#"SELECT "eventlogTable", "backendId" FROM livestore_stores WHERE "storeId" = $1"#;

/// Registers a table for a store; a no-op when either is taken. Binds: storeId, table, createdAt.
pub const REGISTER_TABLE: &str = r#"INSERT INTO livestore_stores ("storeId", "eventlogTable", "createdAt") VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"#;

/// Gives a store its backendId unless it has one. Binds: storeId, backendId.
pub const SET_BACKEND_ID: &str =
    r#"UPDATE livestore_stores SET "backendId" = $2 WHERE "storeId" = $1 AND "backendId" IS NULL"#;

/// Locks a store's registry row for a reset. Binds: storeId.
pub const LOCK_STORE: &str = r#"SELECT 1 FROM livestore_stores WHERE "storeId" = $1 FOR UPDATE"#;

/// Gives a store a new backendId (a reset). Binds: storeId, backendId.
pub const RESET_BACKEND_ID: &str = r#"UPDATE livestore_stores SET "backendId" = $2 WHERE "storeId" = $1"#;

/// How a storeId is kept in the registry's `storeId` column. Postgres TEXT cannot hold a NUL
/// character, which a storeId may contain: NUL is written `%00`, and `%` itself `%25`, so every
/// storeId has one key and ordinary ones (without `%`) are kept as they are.
pub fn registry_key(store_id: &str) -> String {
    let mut key = String::with_capacity(store_id.len());
    for c in store_id.chars() {
        match c {
            '%' => key.push_str("%25"),
            '\0' => key.push_str("%00"),
            c => key.push(c),
        }
    }
    key
}

/// Longest identifier Postgres keeps; longer ones are cut silently, so no name may exceed it.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// sync-electric's table name for a store (`toTableName` in its `make-electric-url.ts`):
/// `eventlog_6_` and the storeId with every UTF-16 code unit outside `[A-Za-z0-9_]` replaced by
/// `_`, or `eventlog_6_hash_<Effect's Hash.string(storeId)>` when that is longer than 63.
pub fn electric_table(store_id: &str) -> String {
    let name = crate::protocol::electric::table_name(store_id);
    if name.len() > MAX_IDENTIFIER_BYTES {
        format!("eventlog_6_hash_{}", effect_string_hash(store_id))
    } else {
        name
    }
}

/// Effect's `Hash.string`: djb2 over UTF-16 code units from the last to the first, in 32-bit
/// integer arithmetic, then its `optimize` step. What sync-electric names long stores by.
pub fn effect_string_hash(text: &str) -> i32 {
    let units: Vec<u16> = text.encode_utf16().collect();
    let mut h: i32 = 5381;
    for &unit in units.iter().rev() {
        h = h.wrapping_mul(33) ^ i32::from(unit);
    }
    let n = h as u32;
    ((n & 0xbfff_ffff) | ((n >> 1) & 0x4000_0000)) as i32
}

/// A table name for a store whose sync-electric name belongs to another store (`a-b` and `a_b`
/// map to one name): the start of that name, then a hash of the exact storeId and `attempt`, at
/// most 63 bytes.
pub fn collision_free_table(store_id: &str, attempt: u32) -> String {
    let full = super::sql::collision_free_table(store_id, attempt);
    let hash = &full[full.len() - 16..];
    let base = electric_table(store_id);
    let keep = base.len().min(MAX_IDENTIFIER_BYTES - 17);
    format!("{}_{hash}", &base[..keep])
}

/// The event table's DDL: the sync-electric example's columns, then `createdAt`.
pub fn create_eventlog(table: &str) -> String {
    format!(
        r#"CREATE TABLE IF NOT EXISTS "{table}" ("seqNum" INTEGER PRIMARY KEY, "parentSeqNum" INTEGER, "name" TEXT NOT NULL, "args" JSONB NOT NULL, "clientId" TEXT NOT NULL, "sessionId" TEXT NOT NULL, "createdAt" TEXT)"#
    )
}

/// Adds `createdAt` to a table the sync-electric proxy created, only when missing (an
/// `ALTER TABLE` locks the table even when it changes nothing).
pub fn add_created_at(table: &str) -> String {
    format!(
        r#"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = '"{table}"'::regclass AND attname = 'createdAt' AND NOT attisdropped) THEN ALTER TABLE "{table}" ADD COLUMN "createdAt" TEXT; END IF; END $$"#
    )
}

/// Whether a table exists and holds an event. Binds: none.
pub fn select_any_row(table: &str) -> String {
    format!(r#"SELECT EXISTS (SELECT 1 FROM "{table}")"#)
}

/// A store's backendId and head (NULL backendId: not set yet). Binds: storeId.
pub fn select_context(table: &str) -> String {
    format!(
        r#"SELECT "backendId", (SELECT COALESCE(MAX("seqNum"), 0)::int8 FROM "{table}") FROM livestore_stores WHERE "storeId" = $1"#
    )
}

/// The highest `seqNum` (NULL when empty).
pub fn select_max_seq(table: &str) -> String {
    format!(r#"SELECT MAX("seqNum")::int8 FROM "{table}""#)
}

/// Events after a cursor. Binds: cursor (int8).
pub fn count_after(table: &str) -> String {
    format!(r#"SELECT COUNT(*)::int8 FROM "{table}" WHERE "seqNum" > $1::int8"#)
}

/// Approximate bytes of a store's events, summed as on the other engines
/// ([`crate::storage::sql::size_bytes`]): the text of each column and 16 for the numbers, the args
/// as Postgres prints its JSONB (not the compressed size it stores, so a quota means the same on
/// every engine).
pub fn size_bytes(table: &str) -> String {
    format!(
        r#"SELECT COALESCE(SUM(octet_length("name") + octet_length("args"::text) + COALESCE(octet_length("createdAt"), 0) + octet_length("clientId") + octet_length("sessionId") + 16), 0)::int8 FROM "{table}""#
    )
}

/// Deletes every event (a reset, in a transaction with [`RESET_BACKEND_ID`]).
pub fn delete_all(table: &str) -> String {
    format!(r#"DELETE FROM "{table}""#)
}

/// A page of events as `(seqNum, item)`, `item` being the pull's batch item JSON, built by the
/// database as the SQLite engines build it. `args` is JSONB, so it comes back as Postgres prints
/// it (the same value; key order and spacing normalised, as sync-electric's own reads get it).
/// A row without `parentSeqNum` (nullable in the proxy's DDL) names its predecessor; one without
/// `createdAt` (written by the proxy) carries no metadata. Binds: cursor (int8).
///
/// The page walks the primary key: the output column is named `seq`, because `ORDER BY
/// "seqNum"` would otherwise name the `::int8` output column, not the table's, and sort a scan of
/// the whole table for every page (a 100,000-event pull took 13 s instead of under one). The
/// limit is written into the text so a generic plan knows it too; the core reads with one or two
/// limits, so the statements stay few.
pub fn read_after(table: &str, limit: usize) -> String {
    format!(
        r#"SELECT "seqNum"::int8 AS seq, '{{"eventEncoded":{{"name":' || to_json("name")::text || ',"args":' || "args"::text || ',"seqNum":' || "seqNum" || ',"parentSeqNum":' || COALESCE("parentSeqNum", "seqNum" - 1) || ',"clientId":' || to_json("clientId")::text || ',"sessionId":' || to_json("sessionId")::text || '}},"metadata":' || CASE WHEN "createdAt" IS NULL THEN '{{"_tag":"None"}}' ELSE '{{"_tag":"Some","value":{{"_tag":"SyncMessage.SyncMetadata","createdAt":' || to_json("createdAt")::text || '}}}}' END || '}}' FROM "{table}" WHERE "seqNum" > $1::int8 ORDER BY "seqNum" LIMIT {limit}"#
    )
}

/// Stores a batch if, when the statement runs, the store's backendId is the pusher's and its
/// head the batch's first parent; notifies the other nodes on the store's channel (delivered at
/// commit). Returns how many rows it stored: 0 means the state moved (see [`super::Appended`]).
/// Two nodes storing the same numbers at once collide on the primary key (SQLSTATE 23505),
/// which is the same answer. The registry row is read `FOR SHARE`, so a reset (which locks it
/// for update) waits for the pushes under way and they for it.
///
/// Binds: storeId, backendId, expected head (int8), then the batch as arrays: seqNums (int4[]),
/// parents (int4[]), names, args as JSON text, clientIds, sessionIds, createdAts (text[]), then
/// the channel and the payload of the notification.
pub fn append(table: &str) -> String {
    format!(
        r#"WITH cur AS (SELECT r."backendId" AS backend, (SELECT COALESCE(MAX("seqNum"), 0)::int8 FROM "{table}") AS head FROM livestore_stores r WHERE r."storeId" = $1 FOR SHARE), ins AS (INSERT INTO "{table}" ("seqNum", "parentSeqNum", "name", "args", "clientId", "sessionId", "createdAt") SELECT e.s, e.p, e.n, e.a::jsonb, e.c, e.x, e.t FROM unnest($4::int4[], $5::int4[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[]) AS e(s, p, n, a, c, x, t), cur WHERE cur.backend = $2 AND cur.head = $3::int8 RETURNING 1), told AS (SELECT pg_notify($11, $12) FROM (SELECT 1 FROM ins LIMIT 1) AS any_row) SELECT (SELECT COUNT(*) FROM ins)::int8, (SELECT COUNT(*) FROM told)::int8"#
    )
}

/// Tells the other nodes serving a store that it changed (after a reset). Binds: channel, payload.
pub const NOTIFY: &str = "SELECT pg_notify($1, $2)";

/// Subscribes a connection to a store's notifications. The channel is the store's table name.
pub fn listen(channel: &str) -> String {
    format!(r#"LISTEN "{channel}""#)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_sync_electrics() {
        assert_eq!(electric_table("store-ws"), "eventlog_6_store_ws");
        assert_eq!(electric_table("a_b"), "eventlog_6_a_b");
        assert_eq!(electric_table("😀"), "eventlog_6___");
        let long = "x".repeat(60);
        let name = electric_table(&long);
        assert!(name.starts_with("eventlog_6_hash_"), "{name}");
        assert!(name.len() <= MAX_IDENTIFIER_BYTES);
        // 63 characters exactly is kept.
        assert_eq!(electric_table(&"y".repeat(52)).len(), 63);
    }

    #[test]
    fn effect_hash_matches_javascript() {
        // Computed with `Hash.string` from the `effect` package the clients ship with.
        assert_eq!(effect_string_hash(""), 5381);
        assert_eq!(effect_string_hash("abc"), 193415941);
        assert_eq!(effect_string_hash(&"x".repeat(60)), 513662213);
        let long = format!("store-😀-é-{}", "y".repeat(70));
        assert_eq!(effect_string_hash(&long), -718130941);
        assert_eq!(electric_table(&long), "eventlog_6_hash_-718130941");
    }

    #[test]
    fn registry_keys_are_one_to_one() {
        assert_eq!(registry_key("store-1"), "store-1");
        assert_eq!(registry_key("a\0b"), "a%00b");
        assert_eq!(registry_key("a%00b"), "a%2500b");
        assert_ne!(registry_key("a\0b"), registry_key("a%00b"));
    }

    #[test]
    fn collision_free_names_fit() {
        for id in ["a-b", &"z".repeat(200), "😀-😀"] {
            let a = collision_free_table(id, 0);
            assert!(a.len() <= MAX_IDENTIFIER_BYTES, "{a}");
            assert_ne!(a, electric_table(id));
            assert_ne!(a, collision_free_table(id, 1));
            assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-'));
        }
        assert_ne!(collision_free_table("a-b", 0), collision_free_table("a_b", 0));
    }
}
