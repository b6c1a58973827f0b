//! The Durable Object RPC transport (`SyncDoRpc`), which `makeDoRpcSync` from
//! `@livestore/sync-cf/client` uses when the LiveStore client itself runs in a Durable Object:
//! the client calls the sync object's `rpc(Uint8Array)` method through a Durable Object binding,
//! with Effect RPC messages encoded in msgpackr's records form ([`msgpack`]), and the sync object
//! calls the client object's `syncUpdateRpc` with each new batch of a live pull.
//!
//! This module is the transport's pure part: the envelope in both directions. The object's side
//! is `object::rpc`; the payloads are the other transports' (`crate::protocol`).
//!
//! Requests are converted to the JSON text the other transports carry, so the same decoder and
//! sync rules serve all three; replies are built as [`Value`]s in the field order the
//! reference's schemas encode them in, so the bytes are the reference's.

pub mod msgpack;

pub use msgpack::{DecodeError, Value};

use crate::protocol::SyncError;

/// Decodes the argument of `rpc(payload)`: msgpack of an array of client messages (the client
/// wraps its one message in an array; a doubly wrapped array is accepted too, as the reference
/// does). Each message comes back as JSON text for [`crate::protocol::decode_client_message`].
pub fn decode_request(bytes: &[u8]) -> Result<Vec<String>, DecodeError> {
    let messages = match msgpack::decode(bytes)? {
        Value::Array(items) => match <[Value; 1]>::try_from(items) {
            Ok([Value::Array(inner)]) => inner,
            Ok([single]) => vec![single],
            Err(items) => items,
        },
        other => vec![other],
    };
    Ok(messages.iter().map(Value::to_json).collect())
}

/// The bytes of one reply message, wrapped in an array as the reference's `parser.encode([m])`.
pub fn encode_reply(message: Value) -> Vec<u8> {
    msgpack::encode(&Value::Array(vec![message]))
}

fn entry(key: &str, value: Value) -> (String, Value) {
    (key.to_owned(), value)
}

/// `{_tag: "Exit", requestId, exit: {_tag: "Success", value}}`. `value` is `undefined` for
/// `Void` results (Ping, and the end of a stream), as the reference encodes them.
pub fn exit_success(request_id: &str, value: Value) -> Value {
    Value::Object(vec![
        entry("_tag", Value::str("Exit")),
        entry("requestId", Value::str(request_id)),
        entry(
            "exit",
            Value::Object(vec![entry("_tag", Value::str("Success")), entry("value", value)]),
        ),
    ])
}

/// `{_tag: "Exit", requestId, exit: {_tag: "Failure", cause: {_tag: "Fail", error}}}`.
pub fn exit_failure(request_id: &str, error: &SyncError) -> Value {
    Value::Object(vec![
        entry("_tag", Value::str("Exit")),
        entry("requestId", Value::str(request_id)),
        entry(
            "exit",
            Value::Object(vec![
                entry("_tag", Value::str("Failure")),
                entry(
                    "cause",
                    Value::Object(vec![
                        entry("_tag", Value::str("Fail")),
                        entry("error", error_value(error)),
                    ]),
                ),
            ]),
        ),
    ])
}

/// A typed error as the reference's schemas encode it: the fields, then `_tag` last.
pub fn error_value(error: &SyncError) -> Value {
    match Value::from_json(&error.to_json()) {
        Ok(Value::Object(mut entries)) => {
            if let Some(i) = entries.iter().position(|(k, _)| k == "_tag") {
                let tag = entries.remove(i);
                entries.push(tag);
            }
            Value::Object(entries)
        }
        // to_json always writes an object; keep a readable error if that ever changes.
        _ => Value::Object(vec![entry("_tag", Value::str("UnknownError"))]),
    }
}

/// `{_tag: "Chunk", requestId, values: [value]}`: one stream element.
pub fn chunk(request_id: &str, value: Value) -> Value {
    Value::Object(vec![
        entry("_tag", Value::str("Chunk")),
        entry("requestId", Value::str(request_id)),
        entry("values", Value::Array(vec![value])),
    ])
}

/// A `SyncDoRpc.Pull` stream element: the pull response page (JSON text, as the sync rules
/// produce it) with `rpcRequestId` first, as the reference's success schema orders it.
pub fn pull_page(page_json: &str, rpc_request_id: &str) -> Value {
    match Value::from_json(page_json) {
        Ok(Value::Object(mut entries)) => {
            entries.insert(0, entry("rpcRequestId", Value::str(rpc_request_id)));
            Value::Object(entries)
        }
        // Pages come from our own encoder; an unparsable one is a bug, not client input.
        _ => Value::Object(vec![entry("rpcRequestId", Value::str(rpc_request_id))]),
    }
}

/// A protocol-level `Defect`, for a request that names no id to answer on.
pub fn defect(message: &str) -> Value {
    Value::Object(vec![
        entry("_tag", Value::str("Defect")),
        entry("defect", Value::str(message)),
    ])
}

/// The argument of the client's `syncUpdateRpc`: `{_tag: "Chunk", requestId, values: [page]}`,
/// as JSON text, with the page as the reference sends it (without `rpcRequestId`).
pub fn sync_update_json(request_id: &str, page_json: &str) -> String {
    crate::protocol::server::chunk(request_id, page_json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_unwrap_single_and_double_arrays() {
        let msg = Value::object(vec![entry("_tag", Value::str("Request")), entry("id", Value::str("1"))]);
        let single = msgpack::encode(&Value::Array(vec![msg.clone()]));
        let double = msgpack::encode(&Value::Array(vec![Value::Array(vec![msg.clone()])]));
        let expected = vec![r#"{"_tag":"Request","id":"1"}"#.to_owned()];
        assert_eq!(decode_request(&single).unwrap(), expected);
        assert_eq!(decode_request(&double).unwrap(), expected);
        assert_eq!(decode_request(&msgpack::encode(&msg)).unwrap(), expected);
    }

    #[test]
    fn errors_put_the_tag_last() {
        let v = error_value(&SyncError::ServerAhead {
            minimum_expected_num: 9,
            provided_num: 7,
        });
        assert_eq!(
            v.to_json(),
            r#"{"minimumExpectedNum":9,"providedNum":7,"_tag":"ServerAheadError"}"#
        );
    }
}
