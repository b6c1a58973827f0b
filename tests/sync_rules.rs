//! The sync rules (push, pull, paging, store opening) against real SQLite, running the same SQL
//! the Durable Object runs. Native only: rusqlite does not build for wasm32.
#![cfg(not(target_arch = "wasm32"))]

mod support;

use futures::executor::block_on;
use livestore_sync::core::{Core, Limits};
use livestore_sync::protocol::{SyncError, Transport};
use livestore_sync::storage::{open_store, EventLog, StoreMeta};
use serde_json::{json, Value};
use support::{
    conn, events, exit_error, pull_payload, push_payload, request, send, FailAt, Recorder, SqliteLog, TestHost,
};

type TestCore = Core<SqliteLog, TestHost, Recorder>;

/// A store "s" (or `id`), with a core serving it and a handle on its log.
fn store(id: &str) -> (TestCore, SqliteLog) {
    support::core_for(id, Recorder::default(), support::config())
}

fn open(log: &SqliteLog) -> StoreMeta {
    block_on(open_store(log, || "backend-aaaaaaaaaaaaa".to_owned(), true)).unwrap()
}

/// Pushes over HTTP; returns the pages the batch went out on (as the `on_pull_res` hook saw
/// them), or the typed error.
fn do_push(
    core: &TestCore,
    log: &SqliteLog,
    batch: &[Value],
    backend_id: Option<&str>,
) -> Result<Vec<String>, SyncError> {
    let store_id = log.store_id().to_owned();
    core.hooks().pages.borrow_mut().clear();
    let message = request("1", "SyncHttpRpc.Push", push_payload(&store_id, batch, backend_id));
    let (_, frames) = send(core, &conn(Transport::Http, Some(&store_id), None), &message);
    match exit_error(frames.last().unwrap()) {
        Some(error) => Err(error),
        None => Ok(core.hooks().pages.borrow().clone()),
    }
}

/// Pulls over HTTP with `limits`; returns the pages, or the typed error.
fn do_pull(
    core: &TestCore,
    log: &SqliteLog,
    cursor: Option<(&str, i64)>,
    limits: Limits,
) -> Result<Vec<Value>, SyncError> {
    let store_id = log.store_id().to_owned();
    core.set_limits(limits);
    let message = request("2", "SyncHttpRpc.Pull", pull_payload(&store_id, cursor, false));
    let (_, mut frames) = send(core, &conn(Transport::Http, Some(&store_id), None), &message);
    core.set_limits(Limits::default());
    let exit = frames.pop().unwrap();
    if let Some(error) = exit_error(&exit) {
        return Err(error);
    }
    Ok(frames.into_iter().map(|f| f["values"][0].clone()).collect())
}

fn seqs(pages: &[Value]) -> Vec<i64> {
    pages
        .iter()
        .flat_map(|p| {
            p["batch"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["eventEncoded"]["seqNum"].as_i64().unwrap())
        })
        .collect()
}

#[test]
fn a_new_store_starts_at_root_with_a_stable_backend_id() {
    let log = SqliteLog::new("store-1");
    let meta = open(&log);
    assert_eq!(open(&log).head, 0);
    let again = block_on(open_store(&log, || panic!("must reuse the stored backendId"), true)).unwrap();
    assert_eq!(again, meta);
    assert_eq!(log.table(), "eventlog_7_store_1");
}

#[test]
fn push_appends_with_one_created_at_and_moves_the_head() {
    let (core, log) = store("s");
    let meta = open(&log);
    let batch = events(1, 0, 3);
    let pages = do_push(&core, &log, &batch, None).unwrap();
    assert_eq!(open(&log).head, 3);
    let rows = log.rows();
    assert_eq!(rows.len(), 3);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.0, i as i64 + 1);
        assert_eq!(row.3.as_deref(), Some(batch[i]["args"].to_string().as_str()));
        assert_eq!(row.4, "2026-11-22T19:41:31.539Z");
    }
    // The broadcast page carries the events, NoMore, and the backendId.
    assert_eq!(pages.len(), 1);
    let page: Value = serde_json::from_str(&pages[0]).unwrap();
    assert_eq!(page["pageInfo"], json!({"_tag": "NoMore"}));
    assert_eq!(page["backendId"], json!(meta.backend_id));
    assert_eq!(page["batch"][2]["eventEncoded"], batch[2]);
    assert_eq!(
        page["batch"][0]["metadata"]["value"]["createdAt"],
        json!("2026-11-22T19:41:31.539Z")
    );
    // The append wrote the head with the events; reopening restores it.
    assert_eq!(log.head(), Some(3));
    assert_eq!(open(&log).head, 3);
}

#[test]
fn push_rules_and_typed_errors() {
    let (core, log) = store("s");
    let meta = open(&log);
    assert_eq!(do_push(&core, &log, &[], None).unwrap(), Vec::<String>::new());
    do_push(&core, &log, &events(1, 0, 2), None).unwrap();
    assert_eq!(
        do_push(&core, &log, &events(1, 0, 1), None).unwrap_err(),
        SyncError::ServerAhead {
            minimum_expected_num: 2,
            provided_num: 0
        }
    );
    assert_eq!(
        do_push(&core, &log, &events(9, 8, 1), None).unwrap_err(),
        SyncError::ServerAhead {
            minimum_expected_num: 2,
            provided_num: 8
        }
    );
    assert!(matches!(
        do_push(&core, &log, &events(3, 2, 1), Some("other")).unwrap_err(),
        SyncError::BackendIdMismatch { received, .. } if received == "other"
    ));
    let backend = meta.backend_id.clone();
    do_push(&core, &log, &events(3, 2, 1), Some(&backend)).unwrap();
    assert_eq!(seqs(&do_pull(&core, &log, None, Limits::default()).unwrap()), [1, 2, 3]);
}

#[test]
fn invalid_batches_store_nothing() {
    let (core, log) = store("s");
    open(&log);
    let mut dup = events(1, 0, 2);
    dup[1]["seqNum"] = json!(1);
    let mut backwards = events(1, 0, 3);
    backwards[2]["seqNum"] = json!(2);
    let mut negative = events(1, 0, 1);
    negative[0]["seqNum"] = json!(-1);
    negative[0]["parentSeqNum"] = json!(-2);
    let mut unchained = events(1, 0, 3);
    unchained[2]["parentSeqNum"] = json!(1);
    for bad in [dup, backwards, negative, unchained] {
        let err = do_push(&core, &log, &bad, None).unwrap_err();
        assert!(
            matches!(&err, SyncError::Unknown { name, .. } if name == "InvalidPushBatchError"),
            "{err:?}"
        );
    }
    assert!(log.rows().is_empty());
    assert_eq!(open(&log).head, 0);
}

#[test]
fn batches_over_the_event_limit_are_refused_whole() {
    let (core, log) = store("s");
    open(&log);
    let err = do_push(&core, &log, &events(1, 0, 101), None).unwrap_err();
    assert!(
        matches!(&err, SyncError::Unknown { name, message, .. }
            if name == "TooManyEventsError" && message.contains("at most 100")),
        "{err:?}"
    );
    assert!(log.rows().is_empty());
    assert_eq!(open(&log).head, 0);
    // The limit itself is allowed.
    do_push(&core, &log, &events(1, 0, 100), None).unwrap();
    assert_eq!(open(&log).head, 100);
}

#[test]
fn a_failed_insert_leaves_log_and_head_unchanged() {
    let (core, log) = store("s");
    open(&log);
    do_push(&core, &log, &events(1, 0, 2), None).unwrap();
    log.fail_next_append.set(Some(FailAt::Rows));
    let err = do_push(&core, &log, &events(3, 2, 5), None).unwrap_err();
    assert!(matches!(err, SyncError::Unknown { ref name, .. } if name == "StorageError"));
    assert_eq!(open(&log).head, 2);
    assert_eq!(log.rows().len(), 2);
    do_push(&core, &log, &events(3, 2, 5), None).unwrap();
    assert_eq!(log.rows().len(), 7);
}

/// The batch's insert and the head are two statements: should the second fail alone, the batch
/// is stored whole, as after a lost acknowledgement, and the head, behind the log, is moved up
/// when the store is next opened — never left behind, never ahead.
#[test]
fn a_failed_head_write_leaves_the_batch_whole_and_the_head_repaired() {
    let (core, log) = store("s");
    let meta = open(&log);
    do_push(&core, &log, &events(1, 0, 2), None).unwrap();
    log.fail_next_append.set(Some(FailAt::Head));
    let err = do_push(&core, &log, &events(3, 2, 5), None).unwrap_err();
    assert!(matches!(err, SyncError::Unknown { ref name, .. } if name == "StorageError"));
    assert_eq!(log.rows().len(), 7, "the batch is stored whole");
    assert_eq!(log.head(), Some(2), "the head's statement failed");
    // The client retries: the store reopens (after the storage error), repairs its head, and
    // answers as it would after a lost acknowledgement.
    assert_eq!(
        do_push(&core, &log, &events(3, 2, 5), Some(&meta.backend_id)).unwrap_err(),
        SyncError::ServerAhead {
            minimum_expected_num: 7,
            provided_num: 2
        }
    );
    assert_eq!(log.head(), Some(7));
    assert_eq!(
        seqs(&do_pull(&core, &log, None, Limits::default()).unwrap()),
        (1..=7).collect::<Vec<_>>()
    );
}

/// A store whose context row is gone (its events are not) takes its head from the log when it
/// opens: a new log's opening reads no event row, an old one's must.
#[test]
fn a_lost_context_row_takes_its_head_from_the_log() {
    let (core, log) = store("s");
    open(&log);
    do_push(&core, &log, &events(1, 0, 4), None).unwrap();
    log.conn.execute(r#"DELETE FROM "context_7""#, []).unwrap();
    let (fresh, log) = support::core_on(log.clone(), Recorder::default(), support::config());
    let reads = log.last_seq_reads.get();
    let meta = block_on(open_store(&log, || "backend-bbbbbbbbbbbbb".to_owned(), false)).unwrap();
    assert_eq!((meta.head, log.last_seq_reads.get()), (4, reads + 1));
    do_push(&fresh, &log, &events(5, 4, 1), Some(&meta.backend_id)).unwrap();
    assert_eq!(log.head(), Some(5));
}

/// A store with a head opens without reading the log's end (Cloudflare bills that row read);
/// a head another writer left behind (the reference, or a server of ours whose head write was
/// lost without a request seeing it) is moved up by the first push built on a later event.
#[test]
fn a_head_left_behind_elsewhere_is_found_by_the_first_push_beyond_it() {
    let (core, log) = store("s");
    let meta = block_on(open_store(&log, || "backend-aaaaaaaaaaaaa".to_owned(), false)).unwrap();
    assert_eq!(log.last_seq_reads.get(), 0, "a new store's opening read no event row");
    do_push(&core, &log, &events(1, 0, 8), None).unwrap();
    log.conn
        .execute(r#"UPDATE "context_7" SET currentHead = 5 WHERE storeId = 's'"#, [])
        .unwrap();

    // A new object: its opening reads the context row, not the log.
    let (fresh, log) = support::core_on(log.clone(), Recorder::default(), support::config());
    let reads = log.last_seq_reads.get();
    let pages = do_pull(&fresh, &log, None, Limits::default()).unwrap();
    assert_eq!(seqs(&pages).len(), 8);
    assert_eq!(log.last_seq_reads.get(), reads, "the opening read no event row");

    // A client at the log's head pushes: the head is read from the log, and the push is taken.
    do_push(&fresh, &log, &events(9, 8, 2), Some(&meta.backend_id)).unwrap();
    assert_eq!(log.last_seq_reads.get(), reads + 1);
    assert_eq!(log.head(), Some(10));
    // A client at the stale head is told the real one.
    assert_eq!(
        do_push(&fresh, &log, &events(6, 5, 1), Some(&meta.backend_id)).unwrap_err(),
        SyncError::ServerAhead {
            minimum_expected_num: 10,
            provided_num: 5
        }
    );
    assert_eq!(
        log.last_seq_reads.get(),
        reads + 1,
        "a client behind is no sign of a lagging head"
    );
}

#[test]
fn pull_pages_by_count_with_exact_remaining() {
    let (core, log) = store("s");
    let meta = open(&log);
    for start in (1..=250).step_by(50) {
        do_push(&core, &log, &events(start, start - 1, 50), None).unwrap();
    }
    let pages = do_pull(&core, &log, None, Limits::default()).unwrap();
    let sizes: Vec<usize> = pages.iter().map(|p| p["batch"].as_array().unwrap().len()).collect();
    assert_eq!(sizes, [100, 100, 50]);
    assert_eq!(pages[0]["pageInfo"], json!({"_tag": "MoreKnown", "remaining": 150}));
    assert_eq!(pages[1]["pageInfo"], json!({"_tag": "MoreKnown", "remaining": 50}));
    assert_eq!(pages[2]["pageInfo"], json!({"_tag": "NoMore"}));
    assert_eq!(seqs(&pages), (1..=250).collect::<Vec<_>>());

    // Storage is read in chunks; paging must not depend on where a chunk ends.
    let small_reads = Limits {
        read_batch: 7,
        ..Limits::default()
    };
    assert_eq!(do_pull(&core, &log, None, small_reads).unwrap(), pages);

    let from_cursor = do_pull(&core, &log, Some((&meta.backend_id.clone(), 120)), Limits::default()).unwrap();
    assert_eq!(seqs(&from_cursor), (121..=250).collect::<Vec<_>>());
    assert_eq!(
        from_cursor[0]["pageInfo"],
        json!({"_tag": "MoreKnown", "remaining": 30})
    );
}

#[test]
fn pull_edge_cases() {
    let (core, log) = store("s");
    let meta = open(&log);
    let empty = do_pull(&core, &log, None, Limits::default()).unwrap();
    assert_eq!(
        empty,
        [json!({"batch": [], "pageInfo": {"_tag": "NoMore"}, "backendId": meta.backend_id})]
    );
    do_push(&core, &log, &events(1, 0, 2), None).unwrap();
    let backend = meta.backend_id.clone();
    // A cursor ahead of the head is not an error: the client gets the empty page.
    assert_eq!(
        do_pull(&core, &log, Some((&backend, 99)), Limits::default()).unwrap(),
        empty
    );
    assert!(matches!(
        do_pull(&core, &log, Some(("stale", 1)), Limits::default()).unwrap_err(),
        SyncError::BackendIdMismatch { ref expected, ref received } if *expected == backend && received == "stale"
    ));
}

#[test]
fn pull_splits_by_bytes() {
    let (core, log) = store("s");
    open(&log);
    let big = "x".repeat(120_000);
    for start in (1..=60).step_by(6) {
        let mut batch = events(start, start - 1, 6);
        for e in batch.iter_mut() {
            e["args"]["text"] = json!(big);
        }
        do_push(&core, &log, &batch, None).unwrap();
    }
    let pages = do_pull(&core, &log, None, Limits::default()).unwrap();
    assert_eq!(seqs(&pages), (1..=60).collect::<Vec<_>>());
    for p in &pages {
        assert!(p.to_string().len() <= 900_000);
    }
    assert!(pages.len() >= 9);
}

#[test]
fn size_bounded_reads_deliver_every_event_in_order() {
    // As on D1: each query returns at most ~300 KB (but at least one row), so large events come
    // a few per query; the pages seen by the client must not change.
    let (core, log) = store("s");
    open(&log);
    let big = "x".repeat(120_000);
    for start in (1..=30).step_by(6) {
        let mut batch = events(start, start - 1, 6);
        for e in batch.iter_mut() {
            e["args"]["text"] = json!(big);
        }
        do_push(&core, &log, &batch, None).unwrap();
    }
    do_push(&core, &log, &events(31, 30, 40), None).unwrap();
    let unbounded = do_pull(&core, &log, None, Limits::default()).unwrap();
    log.read_budget.set(Some(300_000));
    assert_eq!(do_pull(&core, &log, None, Limits::default()).unwrap(), unbounded);
    log.read_budget.set(Some(1));
    assert_eq!(do_pull(&core, &log, None, Limits::default()).unwrap(), unbounded);
    assert_eq!(seqs(&unbounded), (1..=70).collect::<Vec<_>>());
    let items = block_on(log.read_after(None, 256)).unwrap();
    assert_eq!(items.len(), 1, "a budget smaller than one row still returns that row");
}

#[test]
fn stored_and_broadcast_encodings_are_identical() {
    // SQLite builds the JSON of stored events, Rust the JSON of pushed ones; a client must not be
    // able to tell them apart.
    let (core, log) = store("s");
    open(&log);
    let tricky = [
        json!({"t": "quote \" backslash \\ slash / tab \t nl \n"}),
        json!({"t": "ctl \u{1} \u{1f} del \u{7f}", "u": "é ✓ 😀 \u{2028}"}),
        json!([1, 2.5, -3e-7, true, null, {"deep": [[[]]]}]),
        json!("just a string"),
        json!(12345678901234567u64),
        Value::Null,
    ];
    let mut batch = events(1, 0, tricky.len() as i64 + 1);
    for (e, args) in batch.iter_mut().zip(tricky.iter()) {
        e["args"] = args.clone();
        e["name"] = json!("name \"with\" \u{1} ctl");
        e["clientId"] = json!("cli\\ent");
    }
    batch.last_mut().unwrap().as_object_mut().unwrap().remove("args");
    let broadcast = do_push(&core, &log, &batch, None).unwrap();
    let stored = do_pull(&core, &log, None, Limits::default()).unwrap();
    let broadcast: Value = serde_json::from_str(&broadcast[0]).unwrap();
    assert_eq!(broadcast["batch"], stored[0]["batch"]);
    // A missing `args` is stored as NULL and sent as null; an explicit null is stored as 'null'.
    let rows = log.rows();
    assert_eq!(rows[5].3.as_deref(), Some("null"));
    assert_eq!(rows[6].3, None);
    assert_eq!(stored[0]["batch"][6]["eventEncoded"]["args"], Value::Null);
}

#[test]
fn serves_rows_written_the_reference_way() {
    // The reference inserts with VALUES and JSON.stringify(args); create such rows directly.
    let (core, log) = store("ref-store");
    block_on(log.create_tables()).unwrap();
    let t = log.table().to_owned();
    log.conn
        .execute_batch(&format!(
            r#"INSERT INTO "{t}" (seqNum, parentSeqNum, args, name, createdAt, clientId, sessionId) VALUES
               (1, 0, '{{"id":"a"}}', 'todoCreated', '2025-01-01T00:00:00.000Z', 'c', 's'),
               (2, 1, NULL, 'todoCleared', '2025-01-01T00:00:00.000Z', 'c', 's'),
               (3, 2, 'not json', 'weird', '2025-01-01T00:00:00.000Z', 'c', 's');
               INSERT OR REPLACE INTO "context_7" (storeId, currentHead, backendId) VALUES ('ref-store', 3, 'refBackendId000000000');"#
        ))
        .unwrap();
    let meta = open(&log);
    assert_eq!(
        meta,
        StoreMeta {
            backend_id: "refBackendId000000000".into(),
            head: 3
        }
    );
    let pages = do_pull(&core, &log, None, Limits::default()).unwrap();
    let batch = &pages[0]["batch"];
    assert_eq!(batch[0]["eventEncoded"]["args"], json!({"id": "a"}));
    assert_eq!(batch[1]["eventEncoded"]["args"], Value::Null);
    // A row that is not valid JSON is sent as a string rather than breaking the page.
    assert_eq!(batch[2]["eventEncoded"]["args"], json!("not json"));
    assert_eq!(
        batch[0]["metadata"]["value"]["createdAt"],
        json!("2025-01-01T00:00:00.000Z")
    );
}

#[test]
fn opening_repairs_a_head_behind_the_log() {
    let (core, log) = store("s");
    open(&log);
    do_push(&core, &log, &events(1, 0, 4), None).unwrap();
    log.conn
        .execute(r#"UPDATE "context_7" SET currentHead = 1"#, [])
        .unwrap();
    assert_eq!(open(&log).head, 4);
    log.conn.execute(r#"DELETE FROM "context_7""#, []).unwrap();
    let reopened = block_on(open_store(&log, || "fresh-backend-id-0000".into(), true)).unwrap();
    assert_eq!(reopened.head, 4);
}

#[test]
fn reference_ddl_is_reproduced_exactly() {
    let log = SqliteLog::new("a-b");
    block_on(log.create_tables()).unwrap();
    let ddl: String = log
        .conn
        .query_row("SELECT sql FROM sqlite_master WHERE name = 'eventlog_7_a_b'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        ddl,
        r#"CREATE TABLE "eventlog_7_a_b" ("seqNum" integer primary key   , "parentSeqNum" integer   not null , "name" text   not null , "args" text    , "createdAt" text   not null , "clientId" text   not null , "sessionId" text   not null ) strict"#
    );
}

#[test]
fn registry_sees_table_names_that_differ_only_in_case_as_one() {
    use livestore_sync::storage::sql;
    let db = rusqlite::Connection::open_in_memory().unwrap();
    for migration in [
        "migrations/0001_store_registry.sql",
        "migrations/0002_store_registry_nocase.sql",
    ] {
        db.execute_batch(&std::fs::read_to_string(migration).unwrap()).unwrap();
    }
    let upper = sql::eventlog_table("Upper");
    let lower = sql::eventlog_table("upper");
    db.execute(sql::REGISTER_TABLE, rusqlite::params!["Upper", upper, "t"])
        .unwrap();
    db.execute_batch(&sql::create_eventlog(&upper)).unwrap();
    // "upper"'s reference name is "Upper"'s table to SQLite: it is found, and owned.
    let owner: String = db.query_row(sql::SELECT_TABLE_OWNER, [&lower], |r| r.get(0)).unwrap();
    assert_eq!(owner, "Upper");
    let exists: i64 = db.query_row(sql::TABLE_EXISTS, [&lower], |r| r.get(0)).unwrap();
    assert_eq!(exists, 1);
    // And a racing registration of it is ignored rather than sharing the table.
    let changed = db
        .execute(sql::REGISTER_TABLE, rusqlite::params!["upper", lower, "t"])
        .unwrap();
    assert_eq!(changed, 0);
    let other = sql::collision_free_table("upper", 0);
    assert_eq!(
        db.execute(sql::REGISTER_TABLE, rusqlite::params!["upper", other, "t"])
            .unwrap(),
        1
    );
}

/// The admin API's export → import round trip and its reset, through the core: exported lines
/// import into another store as the same pull, and a reset empties the store under a new
/// backendId.
#[test]
fn admin_export_import_and_reset() {
    let (from_core, from) = store("from");
    let meta = open(&from);
    do_push(&from_core, &from, &events(1, 0, 4), None).unwrap();
    let page = block_on(from_core.export("from", None, None, 10_000)).unwrap();
    assert_eq!((page.lines, page.next_after), (4, None));
    let (to_core, to) = store("to");
    let imported = block_on(to_core.import("to", &page.body)).unwrap();
    assert_eq!((imported.events, imported.head), (4, 4));
    // The copy pulls exactly as the original, createdAt included.
    let copied = block_on(to.read_after(None, 100)).unwrap();
    let original = block_on(from.read_after(None, 100)).unwrap();
    assert_eq!(
        copied
            .iter()
            .map(|i| serde_json::from_str::<Value>(&i.json).unwrap())
            .collect::<Vec<_>>(),
        original
            .iter()
            .map(|i| serde_json::from_str::<Value>(&i.json).unwrap())
            .collect::<Vec<_>>()
    );
    // Paged: a limit cuts the page and says where the next one starts.
    let first = block_on(from_core.export("from", None, None, 3)).unwrap();
    assert_eq!((first.lines, first.next_after), (3, Some(3)));
    // Reset: no events, head 0, a new backendId kept when the store is opened again.
    let done = block_on(from_core.reset("from")).unwrap();
    assert_eq!(
        (done.removed_events, done.previous_backend_id.as_str()),
        (4, meta.backend_id.as_str())
    );
    assert_eq!(block_on(from.count_after(None)).unwrap(), 0);
    assert_eq!(block_on(from.size_bytes()).unwrap(), 0);
    let reopened = block_on(open_store(&from, || panic!("the reset wrote a backendId"), true)).unwrap();
    assert_eq!((reopened.head, reopened.backend_id), (0, done.backend_id));
}
