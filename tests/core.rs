//! The sync core against real SQLite with a recording host: what no single rule test shows —
//! requests racing each other on an engine that yields (as D1 does), live pulls of every kind,
//! interruption, the admin import's fan-out, and what each push writes.
#![cfg(not(target_arch = "wasm32"))]

mod support;

use std::cell::{Cell, RefCell};
use std::task::Poll;

use futures::executor::block_on;
use livestore_sync::core::{Core, Host, Reply};
use livestore_sync::hooks::NoHooks;
use livestore_sync::protocol::{CallerContext, EventIn, SyncError, Transport};
use livestore_sync::storage::{
    sql, Appended, ContextRow, CreatedAt, EventLog, SinkState, StorageError, StoredItem, Subscriber,
};
use serde_json::{json, Value};
use support::{
    conn, core_for, core_on, events, exit_error, frame, pull_payload, push_payload, request, send, Recorder, SqliteLog,
    TestHost,
};

/// A log that yields to the executor a varying number of times before every call, as a remote
/// engine does: requests that wait on it can be overtaken unless something keeps them in order.
#[derive(Clone)]
struct Slow {
    inner: SqliteLog,
    calls: std::rc::Rc<Cell<u32>>,
}

impl Slow {
    fn new(store_id: &str) -> Self {
        Slow {
            inner: SqliteLog::new(store_id),
            calls: Default::default(),
        }
    }

    /// Yields 0 to 6 times, differently from one call to the next.
    async fn wait(&self) {
        let n = self.calls.get();
        self.calls.set(n + 1);
        let mut left = (n * 5 + 3) % 7;
        futures::future::poll_fn(|cx| {
            if left == 0 {
                Poll::Ready(())
            } else {
                left -= 1;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
        .await;
    }
}

impl EventLog for Slow {
    fn engine_name(&self) -> &'static str {
        "slow"
    }
    async fn create_tables(&self) -> Result<bool, StorageError> {
        self.wait().await;
        self.inner.create_tables().await
    }
    async fn load_context(&self) -> Result<Option<ContextRow>, StorageError> {
        self.wait().await;
        self.inner.load_context().await
    }
    async fn save_context(&self, row: &ContextRow) -> Result<(), StorageError> {
        self.wait().await;
        self.inner.save_context(row).await
    }
    async fn max_seq_num(&self) -> Result<Option<i64>, StorageError> {
        self.wait().await;
        self.inner.max_seq_num().await
    }
    async fn count_after(&self, after: Option<i64>) -> Result<u64, StorageError> {
        self.wait().await;
        self.inner.count_after(after).await
    }
    async fn read_after(&self, after: Option<i64>, limit: usize) -> Result<Vec<StoredItem>, StorageError> {
        self.wait().await;
        self.inner.read_after(after, limit).await
    }
    async fn size_bytes(&self) -> Result<u64, StorageError> {
        self.wait().await;
        self.inner.size_bytes().await
    }
    async fn clear(&self, context: &ContextRow) -> Result<(), StorageError> {
        self.wait().await;
        self.inner.clear(context).await
    }
    async fn append(
        &self,
        batch: &[EventIn<'_>],
        created_at: CreatedAt<'_>,
        context: &ContextRow,
    ) -> Result<Appended, StorageError> {
        self.wait().await;
        self.inner.append(batch, created_at, context).await
    }
    async fn subscribers(&self) -> Result<Vec<Subscriber>, StorageError> {
        self.wait().await;
        self.inner.subscribers().await
    }
    async fn subscribe(&self, subscriber: &Subscriber, keep: usize) -> Result<(), StorageError> {
        self.wait().await;
        self.inner.subscribe(subscriber, keep).await
    }
    async fn unsubscribe(&self, caller: &CallerContext) -> Result<(), StorageError> {
        self.wait().await;
        self.inner.unsubscribe(caller).await
    }
    async fn open_outbox(&self, sinks: &[&str], head: i64) -> Result<(), StorageError> {
        self.wait().await;
        self.inner.open_outbox(sinks, head).await
    }
    async fn outbox(&self) -> Result<Vec<SinkState>, StorageError> {
        self.wait().await;
        self.inner.outbox().await
    }
    async fn save_sink(&self, state: &SinkState) -> Result<bool, StorageError> {
        self.wait().await;
        self.inner.save_sink(state).await
    }
}

/// Yields to the executor `n` times.
async fn yield_times(mut n: usize) {
    futures::future::poll_fn(|cx| {
        if n == 0 {
            Poll::Ready(())
        } else {
            n -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await;
}

/// Runs messages as they would arrive on one connection, in order, one every `gap` turns of the
/// executor, while the earlier ones are still being handled. Each is a task of its own, run in
/// the order it was woken, as the runtime runs events and their continuations: a message that
/// arrives just as a lock is released runs before the one woken to take it. Returns each
/// message's frames.
fn pipelined<L: EventLog + 'static, H: livestore_sync::hooks::SyncHooks + 'static>(
    core: &std::rc::Rc<Core<L, TestHost, H>>,
    transport: Transport,
    socket: Option<u32>,
    messages: &[Value],
    gap: usize,
) -> Vec<Vec<Value>> {
    use futures::task::LocalSpawnExt;
    let mut pool = futures::executor::LocalPool::new();
    let outs: Vec<std::rc::Rc<RefCell<Vec<Value>>>> = messages.iter().map(|_| Default::default()).collect();
    for (i, message) in messages.iter().enumerate() {
        let (core, out, text) = (core.clone(), outs[i].clone(), message.to_string());
        let task = async move {
            yield_times(i * gap).await;
            let store = (transport != Transport::DoRpc).then_some("s");
            let conn = conn(transport, store, socket.as_ref());
            core.handle(&text, &conn, &mut |reply: Reply<'_>| {
                out.borrow_mut().push(serde_json::from_str(&frame(reply)).unwrap())
            })
            .await;
        };
        pool.spawner().spawn_local(task).unwrap();
    }
    pool.run();
    outs.into_iter().map(|out| out.take()).collect()
}

fn is_success(frame: &Value) -> bool {
    frame["_tag"] == "Exit" && frame["exit"]["_tag"] == "Success"
}

/// The D1 report: eight pushes in flight on one WebSocket, each continuing the one before, must
/// all be stored, in the order they arrived — however their arrivals fall between the engine's
/// yields (a mutex lets a push that arrives as it is released overtake the ones waiting).
#[test]
fn pipelined_pushes_apply_in_arrival_order_on_an_engine_that_yields() {
    for gap in 0..=8 {
        let log = Slow::new("s");
        let probe = log.inner.clone();
        let core = std::rc::Rc::new(core_on(log, NoHooks, support::config()).0);
        core.host().open_socket(1);
        let sizes = [5, 21, 78, 3, 60, 1, 40, 12];
        let mut head = 0;
        let messages: Vec<Value> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let batch = events(head + 1, head, n);
                head += n;
                request(&i.to_string(), "SyncWsRpc.Push", push_payload("s", &batch, None))
            })
            .collect();
        let replies = pipelined(&core, Transport::Ws, Some(1), &messages, gap);
        for (i, frames) in replies.iter().enumerate() {
            assert!(is_success(frames.last().unwrap()), "gap {gap}, push {i}: {frames:?}");
        }
        let rows = probe.rows();
        assert_eq!(rows.len() as i64, head);
        assert!(rows.iter().enumerate().all(|(i, row)| row.0 == i as i64 + 1));
        assert_eq!(probe.head(), Some(head));
    }
}

/// A pull sees every push that arrived before it, whatever the engine awaits.
#[test]
fn a_pull_after_pipelined_pushes_sees_them_all() {
    let core = std::rc::Rc::new(core_on(Slow::new("s"), NoHooks, support::config()).0);
    let messages = vec![
        request("1", "SyncHttpRpc.Push", push_payload("s", &events(1, 0, 10), None)),
        request("2", "SyncHttpRpc.Push", push_payload("s", &events(11, 10, 10), None)),
        request("3", "SyncHttpRpc.Pull", pull_payload("s", None, false)),
    ];
    let replies = pipelined(&core, Transport::Http, None, &messages, 1);
    let pulled: usize = replies[2]
        .iter()
        .filter(|f| f["_tag"] == "Chunk")
        .map(|f| f["values"][0]["batch"].as_array().unwrap().len())
        .sum();
    assert_eq!(pulled, 20);
}

/// A live pull that is still waiting for the push lock when its `Interrupt` arrives never
/// registers: it ends with the interrupt's `Exit` and receives nothing after.
#[test]
fn an_interrupt_before_the_live_pull_registers_cancels_it() {
    let core = std::rc::Rc::new(core_on(Slow::new("s"), NoHooks, support::config()).0);
    core.host().open_socket(1);
    let ws = conn(Transport::Ws, Some("s"), Some(&1));
    let messages = vec![
        // Holds the push lock across the engine's yields …
        request("1", "SyncWsRpc.Push", push_payload("s", &events(1, 0, 3), None)),
        // … so this live pull waits, and is interrupted meanwhile.
        request("2", "SyncWsRpc.Pull", pull_payload("s", None, true)),
        json!({"_tag": "Interrupt", "requestId": "2"}),
    ];
    let replies = pipelined(&core, Transport::Ws, Some(1), &messages, 1);
    assert!(is_success(replies[0].last().unwrap()));
    assert_eq!(
        replies[1],
        [
            json!({"_tag":"Exit","requestId":"2","exit":{"_tag":"Failure","cause":{"_tag":"Interrupt","fiberId":{"_tag":"None"}}}})
        ]
    );
    assert!(replies[2].is_empty(), "the Interrupt itself is answered on the pull");
    assert!(core.host().live_sockets().is_empty(), "nothing registered");
    send(
        &core,
        &ws,
        &request("3", "SyncWsRpc.Push", push_payload("s", &events(4, 3, 1), None)),
    );
    assert!(
        core.host().sent.borrow().is_empty(),
        "nothing delivered to the interrupted pull"
    );
}

/// A registered live pull receives pushes from every transport, ends on `Interrupt`, and is
/// recorded with its socket, so a core built after an eviction keeps delivering to it.
#[test]
fn live_pulls_on_sockets_outlive_the_core_and_end_on_interrupt() {
    let log = SqliteLog::new("s");
    let (core, _) = core_on(log.clone(), NoHooks, support::config());
    core.host().open_socket(7);
    let ws = conn(Transport::Ws, Some("s"), Some(&7));
    let (_, frames) = send(
        &core,
        &ws,
        &request("9", "SyncWsRpc.Pull", pull_payload("s", None, true)),
    );
    assert_eq!(frames.len(), 1, "the initial empty page, no Exit: {frames:?}");
    send(
        &core,
        &conn(Transport::Http, Some("s"), None),
        &request("1", "SyncHttpRpc.Push", push_payload("s", &events(1, 0, 2), None)),
    );
    send(
        &core,
        &conn(Transport::DoRpc, None, None),
        &request("2", "SyncDoRpc.Push", push_payload("s", &events(3, 2, 1), None)),
    );
    assert_eq!(core.host().seqs_sent(7, "9"), [1, 2, 3]);

    // Evicted: a new core, on the same storage and the same sockets.
    let sockets = core.host().sockets.borrow().clone();
    let (woken, _) = core_on(log, NoHooks, support::config());
    *woken.host().sockets.borrow_mut() = sockets;
    send(
        &woken,
        &conn(Transport::Http, Some("s"), None),
        &request("3", "SyncHttpRpc.Push", push_payload("s", &events(4, 3, 1), None)),
    );
    assert_eq!(woken.host().seqs_sent(7, "9"), [4]);

    let (_, frames) = send(&woken, &ws, &json!({"_tag": "Interrupt", "requestId": "9"}));
    assert_eq!(frames[0]["exit"]["cause"]["_tag"], "Interrupt");
    send(
        &woken,
        &conn(Transport::Http, Some("s"), None),
        &request("4", "SyncHttpRpc.Push", push_payload("s", &events(5, 4, 1), None)),
    );
    assert_eq!(woken.host().seqs_sent(7, "9"), [4], "nothing after the interrupt");
}

fn caller(id: &str) -> CallerContext {
    CallerContext {
        binding_name: "CLIENT_DO".into(),
        durable_object_id: id.into(),
    }
}

fn do_rpc_live_pull(store: &str, id: &str) -> Value {
    let mut payload = pull_payload(store, None, false);
    payload["rpcContext"] = json!({"callerContext": {"bindingName": "CLIENT_DO", "durableObjectId": id}});
    request("5", "SyncDoRpc.Pull", payload)
}

/// DO RPC live pulls are subscribers in storage: each receives every batch in order, after an
/// eviction too; one whose object is gone for good is dropped.
#[test]
fn do_rpc_subscribers_receive_every_batch_and_unreachable_ones_are_dropped() {
    let log = SqliteLog::new("s");
    let (core, _) = core_on(log.clone(), NoHooks, support::config());
    let rpc = conn(Transport::DoRpc, None, None);
    for id in ["a", "b", "gone"] {
        let (_, frames) = send(&core, &rpc, &do_rpc_live_pull("s", id));
        assert!(is_success(frames.last().unwrap()), "a DO RPC pull ends with its Exit");
    }
    core.host().unreachable.borrow_mut().insert(caller("gone"), true);
    send(
        &core,
        &rpc,
        &request("1", "SyncDoRpc.Push", push_payload("s", &events(1, 0, 2), None)),
    );
    send(
        &core,
        &rpc,
        &request("2", "SyncDoRpc.Push", push_payload("s", &events(3, 2, 1), None)),
    );
    core.host().run_tasks();
    let seqs_for = |host: &TestHost, id: &str| -> Vec<i64> {
        host.updates
            .borrow()
            .iter()
            .filter(|(c, request_id, _)| c.durable_object_id == id && request_id == "5")
            .flat_map(|(_, _, page)| support::seqs_of_page(page))
            .collect()
    };
    assert_eq!(seqs_for(core.host(), "a"), [1, 2, 3]);
    assert_eq!(seqs_for(core.host(), "b"), [1, 2, 3]);
    let stored: Vec<String> = block_on(log.subscribers())
        .unwrap()
        .into_iter()
        .map(|s| s.caller.durable_object_id)
        .collect();
    assert_eq!(stored, ["a", "b"], "the unreachable subscriber is gone from storage");
    let warned = core.host().log_lines();
    assert!(warned
        .iter()
        .any(|l| l["event"] == "do_rpc_update_failed" && l["permanent"] == true));

    let (woken, _) = core_on(log, NoHooks, support::config());
    send(
        &woken,
        &rpc,
        &request("3", "SyncDoRpc.Push", push_payload("s", &events(4, 3, 1), None)),
    );
    woken.host().run_tasks();
    assert_eq!(seqs_for(woken.host(), "a"), [4]);
}

/// An admin import reaches every kind of live pull and the `on_pull_res` hook, as a push does.
#[test]
fn an_import_is_fanned_out_like_a_push() {
    let (core, _) = core_for("s", Recorder::default(), support::config());
    core.host().open_socket(1);
    send(
        &core,
        &conn(Transport::Ws, Some("s"), Some(&1)),
        &request("9", "SyncWsRpc.Pull", pull_payload("s", None, true)),
    );
    send(&core, &conn(Transport::DoRpc, None, None), &do_rpc_live_pull("s", "a"));
    core.hooks().pages.borrow_mut().clear();
    let ndjson: String = events(1, 0, 3)
        .iter()
        .map(|e| {
            let mut line = e.clone();
            line["createdAt"] = json!("2024-01-31T12:00:00.000Z");
            line.to_string() + "\n"
        })
        .collect();
    let imported = block_on(core.import("s", &ndjson)).unwrap();
    assert_eq!((imported.events, imported.head), (3, 3));
    core.host().run_tasks();
    assert_eq!(core.host().seqs_sent(1, "9"), [1, 2, 3]);
    let updates = core.host().updates.borrow();
    assert_eq!(updates.len(), 1);
    assert_eq!(support::seqs_of_page(&updates[0].2), [1, 2, 3]);
    let hooked = core.hooks().pages.borrow();
    assert_eq!(hooked.len(), 1);
    let page: Value = serde_json::from_str(&hooked[0]).unwrap();
    assert_eq!(
        page["batch"][0]["metadata"]["value"]["createdAt"],
        "2024-01-31T12:00:00.000Z"
    );
}

/// A push writes each event once and the head once: never a row per event for the head.
#[test]
fn a_push_writes_its_events_and_the_head_once() {
    let (core, log) = core_for("s", NoHooks, support::config());
    let http = conn(Transport::Http, Some("s"), None);
    send(
        &core,
        &http,
        &request("1", "SyncHttpRpc.Push", push_payload("s", &events(1, 0, 1), None)),
    );
    let before = log.conn.total_changes();
    send(
        &core,
        &http,
        &request("2", "SyncHttpRpc.Push", push_payload("s", &events(2, 1, 100), None)),
    );
    assert_eq!(log.conn.total_changes() - before, 101, "100 events and one head row");
    assert_eq!(log.head(), Some(101));
}

/// Stores written by earlier versions carry a trigger that moved the head once per event; it is
/// dropped when the store opens, and the head still moves with every push.
#[test]
fn the_old_head_trigger_is_dropped_on_open() {
    let log = SqliteLog::new("s");
    block_on(log.create_tables()).unwrap();
    let table = log.table().to_owned();
    log.conn
        .execute_batch(&format!(
            r#"CREATE TRIGGER "livestore_head_{table}" AFTER INSERT ON "{table}" BEGIN UPDATE "context_7" SET currentHead = NEW.seqNum WHERE currentHead < NEW.seqNum; END"#
        ))
        .unwrap();
    let (core, _) = core_on(log.clone(), NoHooks, support::config());
    let http = conn(Transport::Http, Some("s"), None);
    send(
        &core,
        &http,
        &request("1", "SyncHttpRpc.Push", push_payload("s", &events(1, 0, 1), None)),
    );
    let triggers: i64 = log
        .conn
        .query_row("SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(triggers, 0);
    let before = log.conn.total_changes();
    send(
        &core,
        &http,
        &request("2", "SyncHttpRpc.Push", push_payload("s", &events(2, 1, 10), None)),
    );
    assert_eq!(log.conn.total_changes() - before, 11);
    assert_eq!(log.head(), Some(11));
    let _ = sql::FORMAT_VERSION;
}

/// One store check, with one error, whichever transport carries the request.
#[test]
fn a_request_for_another_store_gets_the_same_error_on_every_transport() {
    let (core, _) = core_for("s", NoHooks, support::config());
    core.host().open_socket(1);
    let other = push_payload("elsewhere", &events(1, 0, 1), None);

    // DO RPC has no URL: the object's store is the one it opened first.
    send(
        &core,
        &conn(Transport::DoRpc, None, None),
        &request("0", "SyncDoRpc.Pull", pull_payload("s", None, false)),
    );
    let mut errors = Vec::new();
    for (transport, socket, tag) in [
        (Transport::Ws, Some(&1), "SyncWsRpc.Push"),
        (Transport::Http, None, "SyncHttpRpc.Push"),
        (Transport::DoRpc, None, "SyncDoRpc.Push"),
    ] {
        let store = (transport != Transport::DoRpc).then_some("s");
        let (_, frames) = send(
            &core,
            &conn(transport, store, socket),
            &request("1", tag, other.clone()),
        );
        errors.push(exit_error(frames.last().unwrap()).unwrap());
    }
    let expected = SyncError::unknown(
        "InvalidRequestError",
        r#"the request names store "elsewhere", but this connection is for another store"#,
    );
    assert_eq!(errors, [expected.clone(), expected.clone(), expected]);
}

/// Args nested deeper than SQLite's JSON functions go are refused as the client's fault, before
/// anything is stored; the limit itself is accepted.
#[test]
fn args_nested_too_deep_are_refused_before_storage() {
    let (core, log) = core_for("s", NoHooks, support::config());
    let http = conn(Transport::Http, Some("s"), None);
    let nested = |depth: usize| -> Value {
        let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        serde_json::from_str(&text).unwrap_or(Value::Null)
    };
    let mut deep = events(1, 0, 1);
    // serde_json's own parser stops at 128 levels; build the text by hand.
    let deep_args = format!("{}{}", "[".repeat(999), "]".repeat(999));
    deep[0]["args"] = json!("placeholder");
    let text = request("1", "SyncHttpRpc.Push", push_payload("s", &deep, None))
        .to_string()
        .replace("\"placeholder\"", &deep_args);
    let mut frames = Vec::new();
    block_on(core.handle(&text, &http, &mut |reply| frames.push(frame(reply))));
    let exit: Value = serde_json::from_str(frames.last().unwrap()).unwrap();
    let error = exit_error(&exit).unwrap();
    assert!(
        matches!(&error, SyncError::Unknown { name, message, .. } if name == "ArgsTooDeepError" && message.contains("256")),
        "{error:?}"
    );
    assert!(log.rows().is_empty());
    let mut ok = events(1, 0, 1);
    ok[0]["args"] = nested(100);
    let (_, frames) = send(
        &core,
        &http,
        &request("2", "SyncHttpRpc.Push", push_payload("s", &ok, None)),
    );
    assert!(is_success(frames.last().unwrap()));
    // The lines say why, never what the events held.
    let lines = core.host().log_lines();
    let refused = lines
        .iter()
        .find(|l| l["event"] == "push" && l["outcome"] == "ArgsTooDeepError")
        .unwrap();
    assert_eq!(refused["level"], "warn");
    assert!(!lines.iter().any(|l| l["event"] == "error"), "not the backend's fault");
}

/// Malformed messages are answered and logged; the HTTP codec learns which were not messages.
#[test]
fn malformed_messages_are_answered_and_logged() {
    use livestore_sync::core::Handled;
    let (core, _) = core_for("s", NoHooks, support::config());
    let http = conn(Transport::Http, Some("s"), None);
    for body in ["", "nope", "[1]", r#"{"_tag":"Hello"}"#] {
        let mut frames = Vec::new();
        let handled = block_on(core.handle(body, &http, &mut |reply| frames.push(frame(reply))));
        assert_eq!(handled, Handled::Malformed, "{body}");
        assert_eq!(frames.len(), 1);
        assert!(frames[0].starts_with(r#"{"_tag":"Defect""#));
    }
    let (handled, frames) = send(&core, &http, &request("1", "SyncHttpRpc.Drop", json!({})));
    assert_eq!(handled, Handled::Read);
    assert_eq!(
        exit_error(&frames[0]).unwrap().to_string(),
        r#"UnknownRpcError: unknown RPC tag "SyncHttpRpc.Drop"; this transport serves SyncHttpRpc.Pull, SyncHttpRpc.Push and SyncHttpRpc.Ping"#
    );
    let lines = core.host().log_lines();
    assert_eq!(lines.iter().filter(|l| l["outcome"] == "InvalidMessage").count(), 4);
    assert!(lines
        .iter()
        .any(|l| l["event"] == "request" && l["outcome"] == "UnknownRpcError"));
}

/// A pull after a position (the sync-electric endpoint's): a page at a time, from the right
/// store incarnation, and only positions the store gave out.
#[test]
fn pulls_since_a_position() {
    use livestore_sync::core::pull::PullSince;
    let (core, _) = core_for("s", NoHooks, support::config());
    let http = conn(Transport::Http, Some("s"), None);
    for start in (1..=250).step_by(50) {
        send(
            &core,
            &http,
            &request(
                "1",
                "SyncHttpRpc.Push",
                push_payload("s", &events(start, start - 1, 50), None),
            ),
        );
    }
    let electric = conn(Transport::Electric, Some("s"), None);
    let since = |after: i64, backend_id: Option<&str>| {
        let pull = PullSince {
            store_id: "s",
            payload: None,
            backend_id,
            after,
            wait_ms: None,
        };
        block_on(core.pull_since(pull, &electric))
    };
    let first = since(0, None).unwrap();
    assert_eq!(first.items.len(), 100);
    assert_eq!(first.items.last().unwrap().seq_num, 100);
    let backend = first.backend_id.clone();
    assert_eq!(since(200, Some(&backend)).unwrap().items.len(), 50);
    assert!(since(250, Some(&backend)).unwrap().items.is_empty());
    assert!(matches!(
        since(10, Some("old-incarnation")),
        Err(livestore_sync::core::Error::BackendIdMismatch { .. })
    ));
    assert!(matches!(
        since(251, Some(&backend)),
        Err(livestore_sync::core::Error::UnknownPosition { head: 250, .. })
    ));
    let line = core
        .host()
        .log_lines()
        .into_iter()
        .rev()
        .find(|l| l["transport"] == "electric")
        .unwrap();
    assert_eq!(
        (line["event"].as_str(), line["outcome"].as_str()),
        (Some("pull"), Some("UnknownPositionError"))
    );
}

/// A held pull is answered as soon as any transport appends, when its wait ends, or when the
/// store is reset — never left hanging — and holds nothing up meanwhile.
#[test]
fn held_pulls_are_answered_by_an_append_a_timeout_or_a_reset() {
    use futures::task::LocalSpawnExt;
    use livestore_sync::core::pull::PullSince;
    use std::rc::Rc;
    let core = Rc::new(core_for("s", NoHooks, support::config()).0);
    let http = conn(Transport::Http, Some("s"), None);
    send(
        &core,
        &http,
        &request("1", "SyncHttpRpc.Push", push_payload("s", &events(1, 0, 2), None)),
    );
    let backend = block_on(core.info("s")).unwrap().backend_id;
    let hold = |core: Rc<_>, backend: String, out: Rc<RefCell<Option<_>>>| async move {
        let core: Rc<Core<SqliteLog, TestHost, NoHooks>> = core;
        let pull = PullSince {
            store_id: "s",
            payload: None,
            backend_id: Some(&backend),
            after: 2,
            wait_ms: Some(20_000),
        };
        let result = core.pull_since(pull, &conn(Transport::Electric, Some("s"), None)).await;
        *out.borrow_mut() = Some(result);
    };
    let mut pool = futures::executor::LocalPool::new();

    // Woken by a push over another transport.
    let out = Rc::new(RefCell::new(None));
    pool.spawner()
        .spawn_local(hold(core.clone(), backend.clone(), out.clone()))
        .unwrap();
    pool.run_until_stalled();
    assert!(out.borrow().is_none(), "held while nothing is new");
    assert_eq!(block_on(core.info("s")).unwrap().held_pulls, 1);
    let ws = conn(Transport::Ws, Some("s"), None);
    send(
        &core,
        &ws,
        &request("2", "SyncWsRpc.Push", push_payload("s", &events(3, 2, 1), None)),
    );
    pool.run_until_stalled();
    let since = out.borrow_mut().take().unwrap().unwrap();
    assert_eq!(since.items.iter().map(|i| i.seq_num).collect::<Vec<_>>(), [3]);

    // Answered empty when the wait ends.
    let out = Rc::new(RefCell::new(None));
    let hold_after_3 = {
        let (core, out) = (core.clone(), out.clone());
        let backend = backend.clone();
        async move {
            let pull = PullSince {
                store_id: "s",
                payload: None,
                backend_id: Some(&backend),
                after: 3,
                wait_ms: Some(20_000),
            };
            *out.borrow_mut() = Some(core.pull_since(pull, &conn(Transport::Electric, Some("s"), None)).await);
        }
    };
    pool.spawner().spawn_local(hold_after_3).unwrap();
    pool.run_until_stalled();
    core.host().advance(19_999);
    pool.run_until_stalled();
    assert!(out.borrow().is_none());
    core.host().advance(1);
    pool.run_until_stalled();
    assert!(out.borrow_mut().take().unwrap().unwrap().items.is_empty());
    assert_eq!(
        block_on(core.info("s")).unwrap().held_pulls,
        0,
        "no held pull left counted"
    );

    // A reset answers it, with the new incarnation.
    let out = Rc::new(RefCell::new(None));
    let waiting = {
        let (core, out) = (core.clone(), out.clone());
        async move {
            let pull = PullSince {
                store_id: "s",
                payload: None,
                backend_id: Some(&backend),
                after: 3,
                wait_ms: Some(20_000),
            };
            *out.borrow_mut() = Some(core.pull_since(pull, &conn(Transport::Electric, Some("s"), None)).await);
        }
    };
    pool.spawner().spawn_local(waiting).unwrap();
    pool.run_until_stalled();
    assert!(out.borrow().is_none());
    block_on(core.reset("s")).unwrap();
    pool.run_until_stalled();
    assert!(matches!(
        out.borrow_mut().take().unwrap(),
        Err(livestore_sync::core::Error::BackendIdMismatch { .. })
    ));
    assert_eq!(core.host().timers(), 0, "no timer outlives its pull");
}

/// Two nodes on one shared engine (Postgres with two workerd processes, modelled by two cores
/// over one database whose appends are conditional, as the Postgres statement's are).
#[test]
fn two_nodes_on_a_shared_engine_never_fork_the_log_and_deliver_each_others_events() {
    let db = SqliteLog::new("s").shared();
    let (a, _) = core_on(db.clone(), NoHooks, support::config());
    let (b, _) = core_on(db.clone(), NoHooks, support::config());
    let http = conn(Transport::Http, Some("s"), None);
    let push = |core: &Core<SqliteLog, TestHost, NoHooks>, id: &str, batch: Vec<Value>| {
        let (_, frames) = send(
            core,
            &http,
            &request(id, "SyncHttpRpc.Push", push_payload("s", &batch, None)),
        );
        frames.into_iter().next().unwrap()
    };
    // Both open the store: one backendId, whoever opened first.
    b.host().open_socket(7);
    let ws = conn(Transport::Ws, Some("s"), Some(&7));
    send(&b, &ws, &request("9", "SyncWsRpc.Pull", pull_payload("s", None, true)));
    assert!(is_success(&push(&a, "1", events(1, 0, 2))));
    // B's cached head is 0, but the stored one is 2: a stale push is refused on the stored head…
    let stale = push(&b, "2", events(1, 0, 1));
    assert_eq!(
        exit_error(&stale),
        Some(SyncError::ServerAhead {
            minimum_expected_num: 2,
            provided_num: 0
        })
    );
    // …having delivered A's events to B's live pull on the way, once.
    assert_eq!(b.host().seqs_sent(7, "9"), [1, 2]);
    // A client that pulled from A pushes to B at A's head: accepted, though B's cache was behind.
    assert!(is_success(&push(&b, "3", events(3, 2, 1))));
    // A, behind now, refuses on the stored head too, and a push at it goes in.
    assert!(!is_success(&push(&a, "4", events(3, 2, 1))));
    assert!(is_success(&push(&a, "5", events(4, 3, 1))));
    // The notification path: B catches up on A's event 4 without a request of its own.
    futures::executor::block_on(b.catch_up(Some(4))).unwrap();
    assert_eq!(b.host().seqs_sent(7, "9"), [1, 2, 3, 4]);
    // An announced head B holds costs nothing and delivers nothing twice.
    futures::executor::block_on(b.catch_up(Some(4))).unwrap();
    assert_eq!(b.host().seqs_sent(7, "9"), [1, 2, 3, 4]);
    let seqs: Vec<i64> = db.rows().iter().map(|row| row.0).collect();
    assert_eq!(seqs, [1, 2, 3, 4], "no gap, no number twice");
}

#[test]
fn a_reset_on_one_node_closes_the_other_nodes_sockets() {
    let db = SqliteLog::new("s").shared();
    let (a, _) = core_on(db.clone(), NoHooks, support::config());
    let (b, _) = core_on(db.clone(), NoHooks, support::config());
    // Two nodes' backendIds are random; these hosts count, so A counts from elsewhere.
    a.host().backend_ids.set(100);
    b.host().open_socket(7);
    let ws = conn(Transport::Ws, Some("s"), Some(&7));
    send(&b, &ws, &request("9", "SyncWsRpc.Pull", pull_payload("s", None, true)));
    let http = conn(Transport::Http, Some("s"), None);
    send(
        &a,
        &http,
        &request("1", "SyncHttpRpc.Push", push_payload("s", &events(1, 0, 1), None)),
    );
    let before = futures::executor::block_on(db.load_context())
        .unwrap()
        .unwrap()
        .backend_id;
    let reset = futures::executor::block_on(a.reset("s")).unwrap();
    assert_ne!(reset.backend_id, before);
    futures::executor::block_on(b.catch_up(None)).unwrap();
    assert!(
        b.host().closed.borrow().iter().any(|(_, code)| *code == 4000),
        "B closed its sockets"
    );
    // A push with the old backendId is refused on B, which now holds the new one.
    let (_, frames) = send(
        &b,
        &http,
        &request(
            "2",
            "SyncHttpRpc.Push",
            push_payload("s", &events(2, 1, 1), Some(&before)),
        ),
    );
    assert!(matches!(
        exit_error(&frames[0]),
        Some(SyncError::BackendIdMismatch { .. })
    ));
}
