//! Property-based fuzzing of what clients control: the WebSocket/HTTP frame decoder, the push
//! payload parser and validator, and the push rules against real SQLite. Every input must get an
//! answer (a value or a typed error) without a panic, and no refused push may change the log.
//!
//! `cargo test --test fuzz` runs a short pass (CI); `PROPTEST_CASES=200000 cargo test --release
//! --test fuzz` is the long run quoted in the README.
#![cfg(not(target_arch = "wasm32"))]

mod support;

use futures::executor::block_on;
use livestore_sync::protocol::payload::parse_payload;
use livestore_sync::protocol::{decode_client_message, ClientMessage, PushPayload, SyncError};
use livestore_sync::storage::open_store;
use livestore_sync::sync::{pull, push, Limits};
use proptest::prelude::*;
use serde_json::{json, Value};
use support::SqliteLog;

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
    fn any_frame_decodes_or_is_refused_without_panic(text in frame()) {
        match decode_client_message(&text) {
            Ok(ClientMessage::Request(request)) => {
                prop_assert!(!request.id.is_empty());
                // Whatever the payload, parsing it as either RPC gives a value or a typed error.
                let _ = parse_payload::<PushPayload>("SyncWsRpc.Push", request.payload)
                    .and_then(|p| p.validate());
                let _ = parse_payload::<livestore_sync::protocol::PullPayload>("SyncWsRpc.Pull", request.payload);
            }
            Ok(_) => {}
            Err(error) => prop_assert!(!error.to_string().is_empty()),
        }
    }

    #[test]
    fn pushes_keep_the_log_a_gapless_chain(batches in prop::collection::vec(batch(), 1..8)) {
        let log = SqliteLog::new("fuzz");
        let mut meta = block_on(open_store(&log, || "backend-fuzzfuzzfuzzfu".to_owned())).unwrap();
        let mut accepted = 0;
        for batch in batches {
            let pairs = batch.pairs(meta.head);
            let before = log.rows();
            let head_before = meta.head;
            let text = json!({
                "storeId": "fuzz",
                "batch": pairs.iter().map(|&(s, p)| event(s, p)).collect::<Vec<_>>(),
                "backendId": {"_tag": "None"},
            })
            .to_string();
            let raw = serde_json::from_str(&text).unwrap();
            let result = parse_payload::<PushPayload>("SyncWsRpc.Push", Some(raw))
                .and_then(|payload| block_on(push(&log, &mut meta, &payload, &Limits::default(), 0)).map(|_| payload.batch.len()));
            match result {
                Ok(0) | Err(_) => {
                    prop_assert_eq!(log.rows(), before, "a refused or empty push changed the log");
                    prop_assert_eq!(meta.head, head_before);
                }
                Ok(n) => {
                    prop_assert_eq!(log.rows().len(), before.len() + n);
                    accepted += 1;
                }
            }
            if let Err(error) = &result {
                let typed = matches!(error, SyncError::ServerAhead { .. } | SyncError::Unknown { .. });
                prop_assert!(typed, "unexpected error {:?}", error);
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
        prop_assert_eq!(meta.head, previous);
        let mut pulled = 0;
        block_on(pull(&log, &meta, None, &Limits::default(), |_page| pulled += 1)).unwrap();
        prop_assert!(pulled >= 1);
        prop_assert_eq!(rows.is_empty(), accepted == 0);
    }
}
