//! Governance in the sync core, against real SQLite with a recording host: a read-only
//! connection's pushes, the event rules and the per-store quotas refuse a push whole and store
//! nothing; the quotas count what a store holds across another writer's events; and the alarm
//! a socket's expiry asks for never moves another one later.
#![cfg(not(target_arch = "wasm32"))]

mod support;

use livestore_sync::config::Config;
use livestore_sync::core::{Conn, Host};
use livestore_sync::hooks::NoHooks;
use livestore_sync::protocol::{SyncError, Transport};
use livestore_sync::rules::{EventFilter, EventRules};
use serde_json::{json, Value};
use support::{conn, core_for, events, exit_error, pull_payload, push_payload, request, send};

/// The typed error's name and message of the last frame, or `None` for a success.
fn refusal(frames: &[Value]) -> Option<(String, String)> {
    match exit_error(frames.last()?)? {
        SyncError::Unknown { name, message, .. } => Some((name.to_string(), message)),
        other => Some((format!("{other:?}"), String::new())),
    }
}

type TestCore = livestore_sync::core::Core<support::SqliteLog, support::TestHost, NoHooks>;

/// Pushes `batch` to store `s` over `conn`; the refusal, if any.
fn push(core: &TestCore, conn: &Conn<'_, support::Socket>, id: &str, batch: &[Value]) -> Option<(String, String)> {
    let (_, frames) = send(
        core,
        conn,
        &request(id, "SyncHttpRpc.Push", push_payload("s", batch, None)),
    );
    refusal(&frames)
}

fn with_rules(rules: EventRules) -> Config {
    Config {
        rules,
        ..support::config()
    }
}

#[test]
fn a_read_only_connection_pulls_but_never_pushes() {
    let (core, log) = core_for("s", NoHooks, support::config());
    let writer = conn(Transport::Http, Some("s"), None);
    let refused = push(&core, &writer, "1", &events(1, 0, 2));
    assert_eq!(refused, None);
    let mut reader = conn(Transport::Http, Some("s"), None);
    reader.read_only = true;
    let refused = push(&core, &reader, "2", &events(3, 2, 1));
    let (name, message) = refused.expect("refused");
    assert_eq!(name, "ReadOnlyError");
    assert!(message.contains("read-only"), "{message}");
    assert_eq!(log.rows().len(), 2, "nothing of the refused push is stored");
    // The same connection still pulls what the writer stored.
    let (_, frames) = send(
        &core,
        &reader,
        &request("3", "SyncHttpRpc.Pull", pull_payload("s", None, false)),
    );
    let page = &frames[0]["values"][0];
    assert_eq!(page["batch"].as_array().map(Vec::len), Some(2), "{frames:?}");
    // Refused before the rules or the head are looked at: an empty batch is refused too.
    let refused = push(&core, &reader, "4", &[]);
    assert_eq!(refused.map(|r| r.0).as_deref(), Some("ReadOnlyError"));
}

#[test]
fn event_rules_refuse_the_whole_push() {
    let rules = EventRules {
        names: EventFilter::parse("v1.*,!v1.Purged"),
        max_args_bytes: Some(64),
        ..EventRules::default()
    };
    let (core, log) = core_for("s", NoHooks, with_rules(rules));
    let http = conn(Transport::Http, Some("s"), None);
    let mut batch = events(1, 0, 3);
    batch[2]["name"] = json!("v1.Purged");
    let (name, message) = push(&core, &http, "1", &batch).expect("refused");
    assert_eq!(name, "EventNotAllowedError");
    assert!(
        message.contains("event 2") && message.contains("v1.Purged") && message.contains("ALLOWED_EVENTS"),
        "{message}"
    );
    let mut batch = events(1, 0, 2);
    batch[1]["args"] = json!({ "text": "x".repeat(100) });
    let (name, message) = push(&core, &http, "2", &batch).expect("refused");
    assert_eq!(name, "ArgsTooLargeError");
    assert!(
        message.contains("MAX_ARGS_BYTES") && message.contains("event 1"),
        "{message}"
    );
    assert!(log.rows().is_empty());
    let refused = push(&core, &http, "3", &events(1, 0, 2));
    assert_eq!(refused, None);
    assert_eq!(log.rows().len(), 2);
    let line = core
        .host()
        .log_lines()
        .into_iter()
        .find(|l| l["event"] == "push" && l["outcome"] == "EventNotAllowedError")
        .expect("a push line names the rule");
    assert_eq!(line["level"], "warn");
}

#[test]
fn quotas_count_what_the_store_holds() {
    let rules = EventRules {
        max_store_events: Some(5),
        ..EventRules::default()
    };
    let (core, log) = core_for("s", NoHooks, with_rules(rules.clone()));
    let http = conn(Transport::Http, Some("s"), None);
    let push_n = |id: &str, start: i64, count: i64| push(&core, &http, id, &events(start, start - 1, count));
    assert_eq!(push_n("1", 1, 3), None);
    let (name, message) = push_n("2", 4, 3).expect("over the quota");
    assert_eq!(name, "StoreQuotaError");
    assert!(
        message.contains("MAX_STORE_EVENTS") && message.contains('6') && message.contains('5'),
        "{message}"
    );
    assert_eq!(log.rows().len(), 3);
    assert_eq!(push_n("3", 4, 2), None, "up to the quota is fine");
    assert_eq!(push_n("4", 6, 1).map(|r| r.0).as_deref(), Some("StoreQuotaError"));
    assert_eq!(log.rows().len(), 5);

    // A second object on the same log (another node, or this one after a wake) counts what is
    // stored rather than trusting nothing.
    let (other, _) = support::core_on(log.clone(), NoHooks, with_rules(rules));
    let refused = push(&other, &conn(Transport::Http, Some("s"), None), "5", &events(6, 5, 1));
    assert_eq!(refused.map(|r| r.0).as_deref(), Some("StoreQuotaError"));
}

#[test]
fn a_byte_quota_counts_as_the_admin_api_does() {
    let rules = EventRules {
        max_store_bytes: Some(400),
        ..EventRules::default()
    };
    let (core, log) = core_for("s", NoHooks, with_rules(rules));
    let http = conn(Transport::Http, Some("s"), None);
    let mut stored = 0;
    for i in 1..=10 {
        let (_, frames) = send(
            &core,
            &http,
            &request(
                &i.to_string(),
                "SyncHttpRpc.Push",
                push_payload("s", &events(i, i - 1, 1), None),
            ),
        );
        match refusal(&frames) {
            None => stored += 1,
            Some((name, message)) => {
                assert_eq!(name, "StoreQuotaError");
                assert!(message.contains("MAX_STORE_BYTES"), "{message}");
                break;
            }
        }
    }
    assert!((1..10).contains(&stored), "{stored} events fit");
    assert_eq!(log.rows().len(), stored);
    let info = futures::executor::block_on(core.info("s")).unwrap();
    assert!(info.approx_size_bytes <= 400, "{}", info.approx_size_bytes);
}

#[test]
fn an_expiry_alarm_never_moves_an_earlier_alarm_later() {
    let (core, _) = core_for("s", NoHooks, support::config());
    let now = core.host().now_millis();
    // Not known after a wake: the alarm comes now, and sets itself again for every duty.
    core.alarm_by(now + 60_000);
    assert_eq!(core.host().alarms.borrow().last(), Some(&now));
    core.alarm_fired();
    core.alarm_by(now + 60_000);
    core.alarm_by(now + 90_000);
    core.alarm_by(now + 30_000);
    assert_eq!(*core.host().alarms.borrow(), vec![now, now + 60_000, now + 30_000]);
}

/// The store's alarm, as the object runs it: none is set any more, then its duties.
fn alarm(core: &TestCore) {
    core.alarm_fired();
    futures::executor::block_on(core.run_directory("s")).unwrap();
}

fn with_directory(idle_expiry_ms: Option<i64>) -> Config {
    Config {
        store_directory: true,
        idle_expiry_ms,
        ..support::config()
    }
}

#[test]
fn a_used_store_reports_to_the_directory_at_most_every_interval() {
    let (core, _) = core_for("s", NoHooks, with_directory(None));
    let http = conn(Transport::Http, Some("s"), None);
    let start = core.host().now_millis();
    // A read of an empty store asks for the alarm, but lists nothing.
    send(
        &core,
        &http,
        &request("1", "SyncHttpRpc.Pull", pull_payload("s", None, false)),
    );
    assert_eq!(
        core.host().alarms.borrow().last(),
        Some(&start),
        "after a wake: at once"
    );
    alarm(&core);
    assert!(
        core.host().directory.borrow().is_empty(),
        "a store without events is not listed"
    );
    // Nothing was reported, so the first push's report is not held back.
    send(
        &core,
        &http,
        &request("2", "SyncHttpRpc.Push", push_payload("s", &events(1, 0, 1), None)),
    );
    assert_eq!(core.host().alarms.borrow().last(), Some(&start));
    alarm(&core);
    assert_eq!(core.host().directory.borrow().get("s").map(|e| e.events), Some(1));
    send(
        &core,
        &http,
        &request("2b", "SyncHttpRpc.Push", push_payload("s", &events(2, 1, 2), None)),
    );
    let due = start + livestore_sync::directory::UPDATE_INTERVAL_MS;
    assert_eq!(
        core.host().alarms.borrow().last(),
        Some(&due),
        "not sooner than an interval after the last report"
    );
    let alarms = core.host().alarms.borrow().len();
    // More use before then sets nothing new.
    send(
        &core,
        &http,
        &request("3", "SyncHttpRpc.Push", push_payload("s", &events(4, 3, 2), None)),
    );
    assert_eq!(core.host().alarms.borrow().len(), alarms);
    core.host().now.set(due);
    alarm(&core);
    let entry = core.host().directory.borrow().get("s").cloned().expect("listed");
    assert_eq!((entry.events, entry.engine.as_str()), (5, "sqlite"));
    let info = futures::executor::block_on(core.info("s")).unwrap();
    assert_eq!(entry.bytes, info.approx_size_bytes, "counted as the admin API counts");
    assert_eq!(entry.expires_at, None);
    // Unused since: the alarm sends nothing more.
    core.host().directory.borrow_mut().clear();
    alarm(&core);
    assert!(core.host().directory.borrow().is_empty());
}

#[test]
fn an_idle_store_expires_and_a_used_one_does_not() {
    let day = 86_400_000;
    let (core, log) = core_for("s", NoHooks, with_directory(Some(day)));
    let http = conn(Transport::Http, Some("s"), None);
    send(
        &core,
        &http,
        &request("1", "SyncHttpRpc.Push", push_payload("s", &events(1, 0, 2), None)),
    );
    let used = core.host().now_millis();
    alarm(&core);
    let entry = core.host().directory.borrow().get("s").cloned().unwrap();
    assert_eq!(entry.expires_at, Some(used + day), "the directory shows when");
    assert_eq!(core.host().alarms.borrow().last(), Some(&(used + day)));
    // Before then: nothing happens, and the alarm stays.
    core.host().now.set(used + day - 1);
    alarm(&core);
    assert_eq!(log.rows().len(), 2);
    assert_eq!(core.host().alarms.borrow().last(), Some(&(used + day)));
    // An open socket keeps it.
    core.host().now.set(used + day);
    core.host().open_socket(7);
    alarm(&core);
    assert_eq!(log.rows().len(), 2);
    core.host().sockets.borrow_mut().clear();
    alarm(&core);
    assert!(log.rows().is_empty(), "deleted");
    assert_eq!(core.host().wipes.get(), 1);
    assert!(
        core.host().directory.borrow().get("s").is_none(),
        "and gone from the directory"
    );
    let line = core
        .host()
        .log_lines()
        .into_iter()
        .find(|l| l["event"] == "expired")
        .unwrap();
    assert_eq!(
        (line["storeId"].as_str(), line["events"].as_i64()),
        (Some("s"), Some(2))
    );
}

#[test]
fn deleting_a_store_empties_it_and_a_client_starts_over() {
    let (core, log) = core_for("s", NoHooks, with_directory(None));
    let http = conn(Transport::Http, Some("s"), None);
    send(
        &core,
        &http,
        &request("1", "SyncHttpRpc.Push", push_payload("s", &events(1, 0, 4), None)),
    );
    core.host().now.set(core.host().now_millis() + 60_000);
    alarm(&core);
    assert!(core.host().directory.borrow().contains_key("s"));
    let done = futures::executor::block_on(core.delete_store("s")).unwrap();
    assert_eq!(done.removed_events, 4);
    assert!(log.rows().is_empty());
    assert!(!core.host().directory.borrow().contains_key("s"));
    // A client of the old store is told it is gone; a new one starts from nothing.
    let refused = push(&core, &http, "2", &events(1, 0, 1));
    assert_eq!(refused, None);
    assert_eq!(log.rows().len(), 1);
}

fn with_backups() -> Config {
    Config {
        backup: Some(livestore_sync::config::BackupConfig {
            bucket: "BACKUPS".into(),
            interval_ms: 3_600_000,
        }),
        ..support::config()
    }
}

#[test]
fn backups_are_incremental_and_restore_an_emptied_store() {
    let (core, log) = core_for("team/1", NoHooks, with_backups());
    let http = conn(Transport::Http, Some("team/1"), None);
    let push = |id: &str, start: i64, count: i64| {
        let (_, frames) = send(
            &core,
            &http,
            &request(
                id,
                "SyncHttpRpc.Push",
                push_payload("team/1", &events(start, start - 1, count), None),
            ),
        );
        assert_eq!(refusal(&frames), None);
    };
    let now = core.host().now_millis();
    core.alarm_fired();
    push("1", 1, 3);
    assert_eq!(
        core.host().alarms.borrow().last(),
        Some(&(now + 3_600_000)),
        "due within the interval"
    );
    // The alarm then writes them (here it runs early: the test's clock stands still).
    core.alarm_fired();
    let first = futures::executor::block_on(core.run_backup("team/1"))
        .unwrap()
        .expect("ran");
    assert_eq!((first.to, first.objects, first.events), (3, 1, 3));
    push("2", 4, 2);
    core.alarm_fired();
    assert_eq!(
        futures::executor::block_on(core.run_backup("team/1")).unwrap(),
        None,
        "once per interval"
    );
    core.host().now.set(now + 3_600_000);
    let second = futures::executor::block_on(core.run_backup("team/1"))
        .unwrap()
        .expect("ran");
    assert_eq!((second.to, second.events), (5, 2), "only the new events");
    let keys: Vec<String> = core.host().bucket.borrow().keys().cloned().collect();
    assert_eq!(keys.len(), 2);
    assert!(
        keys[0].starts_with("team%2F1/") && keys[0].ends_with("0000000000000000-0000000000000003.ndjson"),
        "{keys:?}"
    );
    // Nothing new: nothing written.
    let none = futures::executor::block_on(core.back_up("team/1")).unwrap();
    assert_eq!(none.objects, 0);

    // A restore refuses a store that holds events, and fills an emptied one.
    assert!(futures::executor::block_on(core.restore("team/1", None)).is_err());
    futures::executor::block_on(core.reset("team/1")).unwrap();
    assert!(log.rows().is_empty());
    let restored = futures::executor::block_on(core.restore("team/1", None)).unwrap();
    assert_eq!((restored.events, restored.head), (5, 5));
    assert_eq!(log.rows().len(), 5);
    let (_, frames) = send(
        &core,
        &http,
        &request("3", "SyncHttpRpc.Pull", pull_payload("team/1", None, false)),
    );
    let seqs: Vec<i64> = frames[0]["values"][0]["batch"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["eventEncoded"]["seqNum"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    // The restored store is a new incarnation: its next backup starts over under its backendId.
    let third = futures::executor::block_on(core.back_up("team/1")).unwrap();
    assert_eq!((third.to, third.events), (5, 5));
    assert_ne!(third.backend_id, second.backend_id);
    // A store never backed up has nothing to restore.
    let (other, _) = core_for("other", NoHooks, with_backups());
    assert!(futures::executor::block_on(other.restore("other", None)).is_err());
}

#[test]
fn an_empty_store_is_left_out_once_per_wake_and_listed_by_its_first_push_or_import_at_once() {
    let (core, _) = core_for("s", NoHooks, with_directory(None));
    let http = conn(Transport::Http, Some("s"), None);
    let pull = |id: &str| {
        send(
            &core,
            &http,
            &request(id, "SyncHttpRpc.Pull", pull_payload("s", None, false)),
        )
    };
    let start = core.host().now_millis();
    pull("1");
    alarm(&core);
    assert_eq!(core.host().directory_tells.get(), 1, "left out once");
    // Clients connecting to it again and again ask for one alarm an interval on, not one each.
    let interval = livestore_sync::directory::UPDATE_INTERVAL_MS;
    pull("2");
    pull("3");
    assert_eq!(core.host().alarms.borrow().last(), Some(&(start + interval)));
    let alarms = core.host().alarms.borrow().len();
    core.host().now.set(start + interval);
    alarm(&core);
    assert_eq!(core.host().directory_tells.get(), 1, "and not told again");
    pull("4");
    assert_eq!(core.host().alarms.borrow().len(), alarms + 1);
    // Its first events: listed at once, not an interval after the last report.
    let pushed_at = start + interval + 1_000;
    core.host().now.set(pushed_at);
    send(
        &core,
        &http,
        &request("5", "SyncHttpRpc.Push", push_payload("s", &events(1, 0, 2), None)),
    );
    assert_eq!(core.host().alarms.borrow().last(), Some(&pushed_at));
    alarm(&core);
    let entry = core.host().directory.borrow().get("s").cloned().expect("listed");
    assert_eq!(entry.events, 2);
    let info = futures::executor::block_on(core.info("s")).unwrap();
    assert_eq!(
        entry.bytes, info.approx_size_bytes,
        "counted from zero as the admin API counts"
    );
    // Reset, left out again, then imported into: listed at once as well.
    futures::executor::block_on(core.reset("s")).unwrap();
    core.host().now.set(pushed_at + interval);
    alarm(&core);
    assert!(
        core.host().directory.borrow().get("s").is_none(),
        "left out after the reset"
    );
    let imported_at = pushed_at + interval + 1_000;
    core.host().now.set(imported_at);
    let ndjson: String = events(1, 0, 3).iter().map(|e| e.to_string() + "\n").collect();
    futures::executor::block_on(core.import("s", &ndjson)).unwrap();
    assert_eq!(core.host().alarms.borrow().last(), Some(&imported_at));
    alarm(&core);
    assert_eq!(core.host().directory.borrow().get("s").map(|e| e.events), Some(3));
}

#[test]
fn a_reset_store_leaves_the_directory_until_written_again() {
    let (core, _) = core_for("s", NoHooks, with_directory(None));
    let http = conn(Transport::Http, Some("s"), None);
    send(
        &core,
        &http,
        &request("1", "SyncHttpRpc.Push", push_payload("s", &events(1, 0, 2), None)),
    );
    alarm(&core);
    assert!(core.host().directory.borrow().contains_key("s"));
    futures::executor::block_on(core.reset("s")).unwrap();
    core.host()
        .now
        .set(core.host().now_millis() + livestore_sync::directory::UPDATE_INTERVAL_MS);
    alarm(&core);
    assert!(!core.host().directory.borrow().contains_key("s"));
}
