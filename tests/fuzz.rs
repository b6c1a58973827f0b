//! Property-based fuzzing of what clients control, through the sync core as every transport
//! reaches it: frames of any shape, and pushes of any sequence numbers against real SQLite.
//! Every input must get an answer (a value or a typed error) without a panic, and no refused
//! push may change the log.
//!
//! `cargo test --test fuzz` runs a short pass (CI); `PROPTEST_CASES=200000 cargo test --release
//! --test fuzz` is the long run quoted in the README.
#![cfg(not(target_arch = "wasm32"))]

mod support;

use livestore_sync::core::Handled;
use livestore_sync::hooks::NoHooks;
use livestore_sync::protocol::{SyncError, Transport};
use proptest::prelude::*;
use serde_json::{json, Value};
use support::{conn, exit_error, pull_payload, request, send};

/// Frames a client could send: well-formed envelopes with arbitrary fields, valid ones with a
/// byte flipped or cut short, and plain noise.
fn frame() -> impl Strategy<Value = String> {
    let json_leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "\\PC{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("Request"),
            Just("Ack"),
            Just("Interrupt"),
            Just("Ping"),
            Just("Eof")
        ]
        .prop_map(Value::from),
    ];
    let json = json_leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("_tag".to_owned()),
                    Just("id".to_owned()),
                    Just("tag".to_owned()),
                    Just("payload".to_owned()),
                    Just("requestId".to_owned()),
                    "[a-z]{1,6}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    let valid = r#"{"_tag":"Request","id":"3","tag":"SyncWsRpc.Push","payload":{"storeId":"s","batch":[{"name":"n","args":{},"seqNum":1,"parentSeqNum":0,"clientId":"c","sessionId":"s"}],"backendId":{"_tag":"None"}}}"#;
    prop_oneof![
        json.prop_map(|v| v.to_string()),
        (0..valid.len(), any::<u8>()).prop_map(move |(i, b)| {
            let mut bytes = valid.as_bytes().to_vec();
            bytes[i] = b;
            String::from_utf8_lossy(&bytes).into_owned()
        }),
        (0..valid.len()).prop_map(move |n| valid[..n].to_owned()),
        "\\PC{0,64}",
    ]
}

/// A push batch as a client could send it.
#[derive(Debug, Clone)]
enum Batch {
    /// Sequence numbers anywhere, including negative, repeated, decreasing and beyond what
    /// JavaScript numbers hold exactly.
    Pairs(Vec<(i64, i64)>),
    /// A well-formed chain continuing the store's head (as a client in sync sends), so the
    /// accepting path is exercised as much as the refusing one.
    FromHead { step: i64, len: usize },
}

fn batch() -> impl Strategy<Value = Batch> {
    let num = prop_oneof![0i64..12, -3i64..0, Just(i64::MAX), Just(1i64 << 53)];
    prop_oneof![
        prop::collection::vec((num.clone(), num), 0..8).prop_map(Batch::Pairs),
        (1i64..3, 1usize..6).prop_map(|(step, len)| Batch::FromHead { step, len }),
    ]
}

impl Batch {
    fn pairs(&self, head: i64) -> Vec<(i64, i64)> {
        match self {
            Batch::Pairs(pairs) => pairs.clone(),
            Batch::FromHead { step, len } => (0..*len as i64)
                .map(|i| (head + step * (i + 1), head + step * i))
                .collect(),
        }
    }
}

fn event(seq: i64, parent: i64) -> Value {
    json!({"name": "n", "args": {"s": seq}, "seqNum": seq, "parentSeqNum": parent, "clientId": "c", "sessionId": "s"})
}

proptest! {
    #[test]
    fn any_frame_is_answered_without_panic(text in frame()) {
        let (core, log) = support::core_for("s", NoHooks, support::config());
        core.host().open_socket(1);
        let mut replies = 0;
        let handled = futures::executor::block_on(core.handle(
            &text,
            &conn(Transport::Ws, Some("s"), Some(&1)),
            &mut |_reply| replies += 1,
        ));
        if handled == Handled::Malformed {
            prop_assert_eq!(replies, 1, "a malformed frame gets exactly one answer");
        }
        // Nothing but a well-formed push of event 1 can have stored anything.
        prop_assert!(log.rows().len() <= 1);
    }

    #[test]
    fn pushes_keep_the_log_a_gapless_chain(batches in prop::collection::vec(batch(), 1..8)) {
        let (core, log) = support::core_for("fuzz", NoHooks, support::config());
        let ws = conn(Transport::Ws, Some("fuzz"), None);
        let mut accepted = 0;
        let mut head = 0;
        for batch in batches {
            let pairs = batch.pairs(head);
            let before = log.rows();
            let message = request("1", "SyncWsRpc.Push", json!({
                "storeId": "fuzz",
                "batch": pairs.iter().map(|&(s, p)| event(s, p)).collect::<Vec<_>>(),
                "backendId": {"_tag": "None"},
            }));
            let (_, frames) = send(&core, &ws, &message);
            let exit = frames.last().unwrap();
            match exit_error(exit) {
                Some(error) => {
                    prop_assert_eq!(log.rows(), before, "a refused push changed the log");
                    let typed = matches!(error, SyncError::ServerAhead { .. } | SyncError::Unknown { .. });
                    prop_assert!(typed, "unexpected error {:?}", error);
                }
                None if pairs.is_empty() => prop_assert_eq!(log.rows(), before),
                None => {
                    prop_assert_eq!(log.rows().len(), before.len() + pairs.len());
                    head = pairs.last().unwrap().0;
                    accepted += 1;
                }
            }
        }
        // Whatever was accepted forms one chain from 0, and the head is its last number.
        let rows = log.rows();
        let mut previous = 0;
        for row in &rows {
            prop_assert!(row.0 > previous);
            prop_assert_eq!(row.1, previous, "each event's parent is the event before it");
            previous = row.0;
        }
        prop_assert_eq!(log.head().unwrap_or(0), previous);
        let (_, pulled) = send(&core, &ws, &request("2", "SyncWsRpc.Pull", pull_payload("fuzz", None, false)));
        prop_assert!(pulled.len() >= 2, "at least one page, then the Exit");
        prop_assert_eq!(rows.is_empty(), accepted == 0);
    }
}
