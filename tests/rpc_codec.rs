//! The msgpack records codec against bytes msgpackr itself produced: requests the real
//! `makeDoRpcSync` client sent and responses the reference's own DO RPC handler answered with
//! (captured by tests/rpc/golden/capture.mjs). Each must decode, and encode back to the same
//! bytes; the JSON form must be what the client saw.
#![cfg(not(target_arch = "wasm32"))]

use std::path::PathBuf;

use livestore_sync::rpc::msgpack::{decode, decode_multiple, encode, DecodeError, Value};
use proptest::prelude::*;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/rpc/golden")
}

fn golden_files() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "golden files missing: run node tests/rpc/golden/capture.mjs"
    );
    files
}

#[test]
fn every_golden_file_round_trips_byte_for_byte() {
    for (name, bytes) in golden_files() {
        let value = decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(encode(&value), bytes, "{name} encodes differently");
    }
}

#[test]
fn golden_values_are_what_the_client_sees() {
    let read = |name: &str| decode(&std::fs::read(golden_dir().join(name)).unwrap()).unwrap();

    // A request: an array of one Effect RPC Request message.
    let ping = read("ping.request.bin");
    let Value::Array(messages) = &ping else {
        panic!("{ping:?}")
    };
    assert_eq!(messages[0].get("_tag").and_then(Value::as_str), Some("Request"));
    assert_eq!(messages[0].get("tag").and_then(Value::as_str), Some("SyncDoRpc.Ping"));
    assert_eq!(
        messages[0].get("payload").unwrap().to_json(),
        r#"{"storeId":"store-golden","payload":{"authToken":"tok-golden"}}"#
    );

    // A live pull carries the caller's binding and object id.
    let live = read("pull-live.request.bin");
    let Value::Array(messages) = &live else { panic!() };
    let payload = messages[0].get("payload").unwrap();
    assert_eq!(
        payload.get("rpcContext").unwrap().to_json(),
        format!(
            r#"{{"callerContext":{{"bindingName":"CLIENT_DO","durableObjectId":"{}"}}}}"#,
            "a".repeat(64)
        )
    );

    // `undefined` members: present in msgpack, absent in JSON.
    let pull = read("pull-pages.request.bin");
    let Value::Array(messages) = &pull else { panic!() };
    let payload = messages[0].get("payload").unwrap();
    assert_eq!(payload.get("rpcContext"), Some(&Value::Undefined));
    assert_eq!(
        payload.to_json(),
        r#"{"cursor":{"_tag":"Some","value":{"backendId":"backend-golden-0001","eventSequenceNumber":0}},"storeId":"store-golden"}"#
    );

    // Responses.
    assert_eq!(
        read("ping.response.bin"),
        Value::Array(vec![Value::object(vec![
            ("_tag".into(), Value::str("Exit")),
            ("requestId".into(), Value::str("0")),
            (
                "exit".into(),
                Value::object(vec![
                    ("_tag".into(), Value::str("Success")),
                    ("value".into(), Value::Undefined)
                ])
            ),
        ])])
    );
    assert_eq!(
        read("push-server-ahead.response.bin").to_json(),
        r#"[{"_tag":"Exit","requestId":"7","exit":{"_tag":"Failure","cause":{"_tag":"Fail","error":{"minimumExpectedNum":9,"providedNum":7,"_tag":"ServerAheadError"}}}}]"#
    );
}

#[test]
fn rich_push_args_decode_like_javascript() {
    let push = decode(&std::fs::read(golden_dir().join("push.request.bin")).unwrap()).unwrap();
    let Value::Array(messages) = &push else { panic!() };
    let batch = messages[0].get("payload").unwrap().get("batch").unwrap();
    let Value::Array(events) = batch else { panic!() };
    let args = events[0].get("args").unwrap();
    assert_eq!(
        args.get("n").unwrap().to_json(),
        "[0,1,31,32,63,64,127,128,255,256,65535,65536,4294967295,4294967296,9007199254740991]"
    );
    assert_eq!(
        args.get("neg").unwrap().to_json(),
        "[-1,-32,-33,-128,-129,-32768,-32769,-2147483648,-2147483649]"
    );
    assert_eq!(args.get("f").unwrap().to_json(), "[1.5,-0.25,1e-7,1e+21,123456.789]");
    assert_eq!(args.get("text").unwrap().as_str(), Some("ünïcödé ✓ 🚀"));
    assert_eq!(args.get("s70k").unwrap().as_str().map(str::len), Some(70000));
    assert_eq!(args.get("swapped").unwrap().to_json(), r#"{"q":5,"p":6}"#);
}

#[test]
fn stream_pieces_concatenated_decode_as_several_values() {
    // The runtime may merge a ReadableStream's pieces; the client then sees them back to back.
    let mut all = Vec::new();
    for i in 0..4 {
        all.extend(std::fs::read(golden_dir().join(format!("pull-pages.stream.{i}.bin"))).unwrap());
    }
    let values = decode_multiple(&all).unwrap();
    assert_eq!(values.len(), 4);
    assert!(values[3].to_json().contains(r#""_tag":"Exit""#));
}

#[test]
fn truncated_golden_files_are_errors_not_panics() {
    for (name, bytes) in golden_files() {
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            assert_eq!(
                decode(&bytes[..cut]),
                Err(DecodeError::UnexpectedEnd),
                "{name} cut at {cut}"
            );
        }
    }
}

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Undefined),
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| Value::Number(n as f64)),
        any::<u32>().prop_map(|n| Value::Number(n as f64)),
        any::<f64>()
            .prop_filter("NaN has no equality", |f| !f.is_nan())
            .prop_map(Value::Number),
        any::<i64>().prop_map(|n| Value::BigInt(n as i128)),
        "[a-z0-9é✓]{0,40}".prop_map(Value::Str),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::Bin),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            // Small key alphabet so key lists repeat and records get reused.
            proptest::collection::vec(("[a-d]{1,2}", inner), 0..5).prop_map(Value::object),
        ]
    })
}

proptest! {
    #[test]
    fn encode_then_decode_is_identity(value in arb_value()) {
        let bytes = encode(&value);
        let back = decode(&bytes).unwrap();
        // -0.0 is written as 0 (as msgpackr does); compare through the encoding.
        prop_assert_eq!(encode(&back), bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(&bytes);
        let _ = decode_multiple(&bytes);
    }

    #[test]
    fn many_shapes_recycle_record_ids(n in 60usize..140) {
        let value = Value::Array((0..n).map(|i| Value::object(vec![(format!("k{i}"), Value::Number(i as f64))])).collect());
        prop_assert_eq!(decode(&encode(&value)).unwrap(), value);
    }
}

/// Our reply builders produce the reference's bytes for the same values.
#[test]
fn replies_match_the_reference_bytes() {
    use livestore_sync::protocol::server::{pull_response, push_batch_item, PageInfo};
    use livestore_sync::protocol::{EventIn, SeqNum, SyncError};
    use livestore_sync::rpc::{chunk, encode_reply, exit_failure, exit_success, pull_page};

    let golden = |name: &str| std::fs::read(golden_dir().join(name)).unwrap();
    assert_eq!(
        encode_reply(exit_success("0", Value::Undefined)),
        golden("ping.response.bin")
    );
    assert_eq!(
        encode_reply(exit_success("5", Value::Object(vec![]))),
        golden("push.response.bin")
    );
    assert_eq!(
        encode_reply(exit_failure(
            "7",
            &SyncError::ServerAhead {
                minimum_expected_num: 9,
                provided_num: 7
            }
        )),
        golden("push-server-ahead.response.bin")
    );
    assert_eq!(
        encode_reply(exit_failure(
            "8",
            &SyncError::BackendIdMismatch {
                expected: "backend-golden-0001".into(),
                received: "backend-other".into()
            }
        )),
        golden("push-mismatch.response.bin")
    );
    // The end of a stream.
    assert_eq!(
        encode_reply(exit_success("2", Value::Undefined)),
        golden("pull-pages.stream.3.bin")
    );

    // A page of the multi-chunk stream, built the way the object builds it.
    let args = [r#"{"id":"a"}"#, r#"{"id":"b"}"#].map(|a| serde_json::value::RawValue::from_string(a.into()).unwrap());
    let mut items = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            items.push(',');
        }
        let event = EventIn {
            name: "todoCreated".into(),
            args: Some(a),
            seq_num: SeqNum(i as i64 + 1),
            parent_seq_num: SeqNum(i as i64),
            client_id: "client-A".into(),
            session_id: "session-1".into(),
        };
        push_batch_item(&mut items, &event, r#""2026-11-23T03:00:00.000Z""#);
    }
    let page = pull_response(&items, PageInfo::MoreKnown(3), r#""backend-golden-0001""#);
    assert_eq!(
        encode_reply(chunk("2", pull_page(&page, "2"))),
        golden("pull-pages.stream.0.bin")
    );
}

#[test]
fn a_map_with_200k_keys_decodes() {
    // 200,000 distinct keys in one plain map (about 1.5 MB): key handling that scanned the keys
    // for each new one would take minutes here; indexed, it takes well under a second.
    let n = 200_000u32;
    let mut bytes = vec![0xdf];
    bytes.extend_from_slice(&n.to_be_bytes());
    for i in 0..n {
        let key = format!("k{i}");
        bytes.push(0xa0 | key.len() as u8);
        bytes.extend_from_slice(key.as_bytes());
        bytes.push(0x01);
    }
    let started = std::time::Instant::now();
    let Value::Object(entries) = decode(&bytes).unwrap() else {
        panic!()
    };
    assert_eq!(entries.len(), n as usize);
    eprintln!("decoded {n} keys in {:?}", started.elapsed());
}
