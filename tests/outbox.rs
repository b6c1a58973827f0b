//! The outbox's rules against real SQLite (the Durable Object's SQL) with a host whose clock,
//! alarms and sink answers the test controls: what a stored batch arms, what an alarm sends,
//! how failures back off and pause, what the admin actions do, and what a reset does.
//! The real runtime and real receivers are in tests/e2e/outbox*.test.mjs.
#![cfg(not(target_arch = "wasm32"))]

mod support;

use std::future::Future;

use futures::executor::block_on;
use livestore_sync::config::Config;
use livestore_sync::core::outbox::SinkActionFailure;
use livestore_sync::core::Core;
use livestore_sync::outbox::{EventFilter, SinkActionError, SinkConfig, Target};
use livestore_sync::protocol::Transport;
use livestore_sync::storage::EventLog;
use serde_json::{json, Value};
use support::{conn, events, push_payload, request, send, Recorder, SqliteLog, TestHost};

type TestCore = Core<SqliteLog, TestHost, Recorder>;

const STORE: &str = "s1";

fn webhook(batch_size: usize, max_attempts: u32) -> SinkConfig {
    SinkConfig {
        name: "webhook",
        target: Target::Webhook {
            url: "https://example.test/hook".into(),
            secret: "whsec".into(),
        },
        events: EventFilter::default(),
        batch_size,
        max_attempts,
        retry_base_ms: 100,
        retry_max_ms: 1_000,
        timeout_ms: 1_000,
    }
}

fn queue() -> SinkConfig {
    SinkConfig {
        name: "queue",
        target: Target::Queue { binding: "Q".into() },
        ..webhook(100, 10)
    }
}

fn with_sinks(sinks: Vec<SinkConfig>) -> Config {
    Config {
        sinks,
        ..support::config()
    }
}

fn store(sinks: Vec<SinkConfig>) -> (TestCore, SqliteLog) {
    support::core_for(STORE, Recorder::default(), with_sinks(sinks))
}

/// Pushes `batch` over WebSocket with the store's backendId; panics unless it is stored.
fn push(core: &TestCore, batch: &[Value]) {
    let backend = block_on(core.info(STORE)).unwrap().backend_id;
    let message = request("1", "SyncWsRpc.Push", push_payload(STORE, batch, Some(&backend)));
    let socket = 1;
    let (_, frames) = send(core, &conn(Transport::Ws, Some(STORE), Some(&socket)), &message);
    assert_eq!(frames.last().unwrap()["exit"]["_tag"], "Success", "{frames:?}");
}

/// The sent batches' bodies, parsed, with the sink each went to.
fn sent(core: &TestCore) -> Vec<(String, Value)> {
    core.host()
        .sink_messages
        .borrow()
        .iter()
        .map(|(sink, m)| (sink.clone(), serde_json::from_str(&m.body).unwrap()))
        .collect()
}

fn seqs(body: &Value) -> Vec<i64> {
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seqNum"].as_i64().unwrap())
        .collect()
}

fn alarms(core: &TestCore) -> Vec<i64> {
    core.host().alarms.borrow().clone()
}

fn status(core: &TestCore) -> Value {
    serde_json::from_str(&block_on(core.outbox_status(STORE)).unwrap().to_json(STORE)).unwrap()
}

fn advance(core: &TestCore, ms: i64) {
    core.host().now.set(core.host().now.get() + ms);
}

#[test]
fn without_a_sink_a_push_sets_no_alarm_and_creates_no_table() {
    let (core, log) = store(vec![]);
    push(&core, &events(1, 0, 3));
    assert!(alarms(&core).is_empty());
    assert!(block_on(log.outbox()).unwrap().is_empty());
    block_on(core.run_outbox(STORE)).unwrap();
    assert!(sent(&core).is_empty());
}

#[test]
fn a_stored_batch_arms_the_alarm_once_and_the_alarm_delivers_in_order_in_batches() {
    let (core, _log) = store(vec![webhook(3, 10)]);
    let now = core.host().now.get();
    push(&core, &events(1, 0, 4));
    push(&core, &events(5, 4, 3));
    // One alarm for both batches: the first is still due.
    assert_eq!(alarms(&core), [now]);
    block_on(core.run_outbox(STORE)).unwrap();
    let bodies = sent(&core);
    let batches: Vec<Vec<i64>> = bodies.iter().map(|(_, b)| seqs(b)).collect();
    assert_eq!(batches, [vec![1, 2, 3], vec![4, 5, 6], vec![7]]);
    let (sink, first) = &bodies[0];
    assert_eq!(sink, "webhook");
    assert_eq!(first["storeId"], STORE);
    assert_eq!(first["sink"], "webhook");
    assert_eq!(first["events"][0]["idempotencyKey"], "s1:1");
    assert_eq!(first["events"][0]["name"], "v1.TodoCreated");
    assert_eq!(first["events"][0]["args"]["id"], "t1");
    assert!(first["events"][0]["createdAt"].is_string());
    assert_eq!(
        first["backendId"],
        json!(block_on(core.info(STORE)).unwrap().backend_id)
    );
    let message = &core.host().sink_messages.borrow()[0].1;
    let header = |name: &str| message.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone());
    assert_eq!(header("idempotency-key").as_deref(), Some("s1:1-3"));
    assert_eq!(header("x-livestore-attempt").as_deref(), Some("1"));
    let signature = header("x-livestore-signature").unwrap();
    assert_eq!(
        signature,
        livestore_sync::outbox::signature("whsec", core.host().now.get(), &message.body)
    );
    // Caught up: no further alarm, and the next batch arms a new one.
    assert_eq!(alarms(&core).len(), 1);
    let s = status(&core);
    assert_eq!(s["sinks"][0]["cursor"], 7);
    assert_eq!(s["sinks"][0]["delivered"], 7);
    assert_eq!(s["sinks"][0]["backlog"], 0);
    assert_eq!(s["sinks"][0]["nextAttemptAt"], Value::Null);
    push(&core, &events(8, 7, 1));
    assert_eq!(alarms(&core).len(), 2);
}

#[test]
fn failures_back_off_doubling_then_pause_and_resume_delivers_the_same_batch() {
    let (core, _log) = store(vec![webhook(100, 3)]);
    push(&core, &events(1, 0, 2));
    core.host()
        .sink_answers
        .borrow_mut()
        .extend([Ok(Some(500)), Err("connection refused".to_owned()), Ok(Some(429))]);
    let start = core.host().now.get();
    block_on(core.run_outbox(STORE)).unwrap();
    assert_eq!(*alarms(&core).last().unwrap(), start + 100);
    let s = status(&core);
    assert_eq!(s["sinks"][0]["attempts"], 1);
    assert_eq!(s["sinks"][0]["lastError"], "HTTP 500");
    assert_eq!(s["sinks"][0]["backlog"], 2);
    // A batch stored while the sink waits does not bring its retry forward.
    let armed = alarms(&core).len();
    push(&core, &events(3, 2, 1));
    assert_eq!(alarms(&core).len(), armed);
    // An early alarm sends nothing.
    block_on(core.run_outbox(STORE)).unwrap();
    assert_eq!(sent(&core).len(), 1);
    advance(&core, 100);
    block_on(core.run_outbox(STORE)).unwrap();
    assert_eq!(*alarms(&core).last().unwrap(), core.host().now.get() + 200);
    assert_eq!(status(&core)["sinks"][0]["lastError"], "connection refused");
    advance(&core, 200);
    let armed = alarms(&core).len();
    block_on(core.run_outbox(STORE)).unwrap();
    let s = status(&core);
    assert_eq!(s["sinks"][0]["paused"], true);
    assert_eq!(s["sinks"][0]["attempts"], 3);
    assert_eq!(s["sinks"][0]["nextAttemptAt"], Value::Null);
    assert_eq!(alarms(&core).len(), armed, "a paused sink sets no alarm");
    let lines = core.host().log_lines();
    let outcomes: Vec<&str> = lines
        .iter()
        .filter(|l| l["event"] == "deliver")
        .map(|l| l["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["failed", "failed", "paused"]);
    assert!(lines.iter().any(|l| l["outcome"] == "paused" && l["level"] == "error"));
    // Paused: new batches arm nothing, nothing is dropped.
    push(&core, &events(4, 3, 1));
    assert_eq!(alarms(&core).len(), armed);
    let resumed = block_on(core.outbox_resume(STORE, "webhook")).unwrap();
    assert!(!resumed.state.paused && resumed.state.attempts == 0);
    assert_eq!(resumed.backlog, 4);
    assert_eq!(*alarms(&core).last().unwrap(), core.host().now.get());
    block_on(core.run_outbox(STORE)).unwrap();
    let batches: Vec<Vec<i64>> = sent(&core).iter().map(|(_, b)| seqs(b)).collect();
    // Every attempt sent the same batch, under the same batch key; what came after follows it.
    assert_eq!(batches, [vec![1, 2], vec![1, 2], vec![1, 2], vec![1, 2], vec![3, 4]]);
    let keys: Vec<String> = core.host().sink_messages.borrow()[..4]
        .iter()
        .map(|(_, m)| {
            m.headers
                .iter()
                .find(|(n, _)| *n == "idempotency-key")
                .unwrap()
                .1
                .clone()
        })
        .collect();
    assert!(keys.iter().all(|k| k == "s1:1-2"), "{keys:?}");
    assert_eq!(status(&core)["sinks"][0]["cursor"], 4);
}

#[test]
fn a_waiting_sink_does_not_hold_back_another() {
    let (core, _log) = store(vec![webhook(100, 10), queue()]);
    push(&core, &events(1, 0, 1));
    core.host().sink_answers.borrow_mut().push_back(Ok(Some(503)));
    block_on(core.run_outbox(STORE)).unwrap();
    let kinds: Vec<String> = sent(&core).into_iter().map(|(sink, _)| sink).collect();
    assert_eq!(kinds, ["webhook", "queue"]);
    // The webhook waits 100 ms; the queue is caught up and must get the next batch at once.
    let now = core.host().now.get();
    push(&core, &events(2, 1, 1));
    assert_eq!(*alarms(&core).last().unwrap(), now);
    block_on(core.run_outbox(STORE)).unwrap();
    let last = sent(&core).pop().unwrap();
    assert_eq!((last.0.as_str(), seqs(&last.1)), ("queue", vec![2]));
}

#[test]
fn filters_choose_events_and_the_cursor_passes_the_rest() {
    let mut sink = webhook(2, 10);
    sink.events = EventFilter::parse("v1.Member*,!v1.MemberLeft").unwrap();
    let (core, _log) = store(vec![sink]);
    let names = [
        "v1.TodoCreated",
        "v1.MemberInvited",
        "v1.MemberLeft",
        "v1.MemberJoined",
        "v1.TodoDone",
    ];
    let batch: Vec<Value> = events(1, 0, names.len() as i64)
        .into_iter()
        .zip(names)
        .map(|(mut e, name)| {
            e["name"] = json!(name);
            e
        })
        .collect();
    push(&core, &batch);
    block_on(core.run_outbox(STORE)).unwrap();
    let bodies = sent(&core);
    assert_eq!(bodies.len(), 1);
    assert_eq!(seqs(&bodies[0].1), [2, 4]);
    assert_eq!(
        status(&core)["sinks"][0]["cursor"],
        5,
        "the cursor passes unwanted events"
    );
}

#[test]
fn a_sink_configured_on_an_existing_store_starts_at_its_head() {
    let (core, log) = store(vec![]);
    push(&core, &events(1, 0, 5));
    let (core, _) = support::core_on(log, Recorder::default(), with_sinks(vec![webhook(100, 10)]));
    assert_eq!(status(&core)["sinks"][0]["cursor"], 5);
    push(&core, &events(6, 5, 1));
    block_on(core.run_outbox(STORE)).unwrap();
    assert_eq!(sent(&core).iter().map(|(_, b)| seqs(b)).collect::<Vec<_>>(), [vec![6]]);
}

#[test]
fn skip_moves_the_cursor_within_the_log_and_names_what_it_refuses() {
    let (core, _log) = store(vec![webhook(100, 10)]);
    push(&core, &events(1, 0, 6));
    let skipped = block_on(core.outbox_skip(STORE, "webhook", Some(4))).unwrap();
    assert_eq!((skipped.state.cursor, skipped.backlog), (4, 2));
    block_on(core.run_outbox(STORE)).unwrap();
    assert_eq!(seqs(&sent(&core)[0].1), [5, 6]);
    // Lower than the cursor: those events are delivered again.
    block_on(core.outbox_skip(STORE, "webhook", Some(5))).unwrap();
    block_on(core.run_outbox(STORE)).unwrap();
    assert_eq!(seqs(&sent(&core)[1].1), [6]);
    let head = block_on(core.outbox_skip(STORE, "webhook", None)).unwrap();
    assert_eq!(head.state.cursor, 6);
    match block_on(core.outbox_skip(STORE, "webhook", Some(7))) {
        Err(SinkActionFailure::Refused(SinkActionError::InvalidSkip(_))) => {}
        other => panic!("{other:?}"),
    }
    match block_on(core.outbox_resume(STORE, "nope")) {
        Err(SinkActionFailure::Refused(e @ SinkActionError::UnknownSink(_))) => {
            assert_eq!(e.status_and_body().0, 404)
        }
        other => panic!("{other:?}"),
    }
    let lines = core.host().log_lines();
    assert!(lines
        .iter()
        .any(|l| l["event"] == "outbox" && l["action"] == "skip" && l["cursor"] == 4));
}

#[test]
fn a_reset_starts_every_sink_again_on_the_new_log() {
    let (core, _log) = store(vec![webhook(100, 10)]);
    push(&core, &events(1, 0, 3));
    block_on(core.run_outbox(STORE)).unwrap();
    let old_backend = block_on(core.info(STORE)).unwrap().backend_id;
    block_on(core.reset(STORE)).unwrap();
    assert_eq!(status(&core)["sinks"][0]["cursor"], 0);
    push(&core, &events(1, 0, 2));
    block_on(core.run_outbox(STORE)).unwrap();
    let (_, last) = sent(&core).pop().unwrap();
    assert_eq!(seqs(&last), [1, 2]);
    assert_ne!(last["backendId"], json!(old_backend));
}

#[test]
fn a_write_based_on_an_older_read_is_refused() {
    let (core, log) = store(vec![webhook(100, 10)]);
    push(&core, &events(1, 0, 1));
    let read = block_on(log.outbox()).unwrap().remove(0);
    let mut first = read.clone();
    first.cursor = 1;
    assert!(block_on(log.save_sink(&first)).unwrap());
    let mut stale = read;
    stale.attempts = 5;
    assert!(!block_on(log.save_sink(&stale)).unwrap());
    assert_eq!(block_on(log.outbox()).unwrap()[0].cursor, 1);
}

#[test]
fn queue_batches_stay_under_the_message_limit_and_an_oversize_event_goes_without_its_args() {
    let (core, _log) = store(vec![queue()]);
    let mut batch = events(1, 0, 5);
    batch[2]["args"]["text"] = json!("x".repeat(130_000));
    batch[3]["args"]["text"] = json!("y".repeat(70_000));
    batch[4]["args"]["text"] = json!("z".repeat(60_000));
    push(&core, &batch);
    block_on(core.run_outbox(STORE)).unwrap();
    let bodies: Vec<Value> = sent(&core).into_iter().map(|(_, b)| b).collect();
    let batches: Vec<Vec<i64>> = bodies.iter().map(seqs).collect();
    // 3 alone is over the limit: it goes first in its own batch, without its args; 4 then fits
    // beside it but not beside 5 as well.
    assert_eq!(batches, [vec![1, 2], vec![3, 4], vec![5]]);
    let big = &bodies[1]["events"][0];
    assert_eq!(big["argsOmitted"], true);
    assert!(big["args"].is_null());
    assert!(big["bytes"].as_u64().unwrap() > 130_000);
    assert_eq!(big["idempotencyKey"], "s1:3");
    for message in core.host().sink_messages.borrow().iter() {
        assert!(
            message.1.body.len() <= livestore_sync::outbox::QUEUE_BODY_BYTES,
            "{}",
            message.1.body.len()
        );
    }
    assert_eq!(status(&core)["sinks"][0]["cursor"], 5);
}

#[test]
fn a_reset_lifts_a_pause() {
    let (core, _log) = store(vec![webhook(100, 1)]);
    push(&core, &events(1, 0, 1));
    core.host().sink_answers.borrow_mut().push_back(Ok(Some(500)));
    block_on(core.run_outbox(STORE)).unwrap();
    assert_eq!(status(&core)["sinks"][0]["paused"], true);
    let armed = alarms(&core).len();
    push(&core, &events(2, 1, 1));
    assert_eq!(alarms(&core).len(), armed, "paused: a push arms nothing");
    block_on(core.reset(STORE)).unwrap();
    assert_eq!(status(&core)["sinks"][0]["paused"], false);
    push(&core, &events(1, 0, 1));
    assert_eq!(alarms(&core).len(), armed + 1, "the new log's batch arms the alarm");
    block_on(core.run_outbox(STORE)).unwrap();
    assert_eq!(seqs(&sent(&core).pop().unwrap().1), [1]);
}

#[test]
fn a_batch_stored_during_a_run_keeps_its_alarm_when_another_sink_backs_off() {
    // The queue runs first here, so it is caught up while the webhook's attempt is in flight.
    let (core, _log) = store(vec![queue(), webhook(100, 10)]);
    push(&core, &events(1, 0, 1));
    let (answer, gate) = futures::channel::oneshot::channel();
    *core.host().sink_gate.borrow_mut() = Some(("webhook".into(), gate));
    let mut run = Box::pin(core.run_outbox(STORE));
    let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());
    assert!(
        run.as_mut().poll(&mut cx).is_pending(),
        "the webhook's attempt waits at the gate"
    );
    let before = alarms(&core).len();
    push(&core, &events(2, 1, 1));
    let armed = core.host().now.get();
    assert_eq!(alarms(&core)[before..], [armed], "the push arms the alarm");
    answer.send(Ok(Some(503))).unwrap();
    block_on(run).unwrap();
    // The webhook waits 100 ms, but the queue must get event 2 now: the push's alarm stands.
    assert_eq!(*alarms(&core).last().unwrap(), armed);
    block_on(core.run_outbox(STORE)).unwrap();
    let last = sent(&core).pop().unwrap();
    assert_eq!((last.0.as_str(), seqs(&last.1)), ("queue", vec![2]));
}
