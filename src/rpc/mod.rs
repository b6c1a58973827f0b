//! The Durable Object RPC transport (`SyncDoRpc`), which `makeDoRpcSync` from
//! `@livestore/sync-cf/client` uses when the LiveStore client itself runs in a Durable Object:
//! the client calls the sync object's `rpc(Uint8Array)` method through a Durable Object binding,
//! with Effect RPC messages encoded in msgpackr's records form ([`msgpack`]), and the sync object
//! calls the client object's `syncUpdateRpc` with each new batch of a live pull.
//!
//! This module is the transport's pure part: the envelope in both directions, the payloads, and
//! the record of a live-pull subscriber. The object's side is `object::rpc`.
//!
//! Requests are converted to the JSON text the other transports carry, so the same decoder and
//! sync rules serve all three; replies are built as [`Value`]s in the field order the
//! reference's schemas encode them in, so the bytes are the reference's.

pub mod msgpack;

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub use msgpack::{DecodeError, Value};

use crate::protocol::{Cursor, EffectOption, SyncError};

/// RPC tags of the DO RPC transport (`SyncDoRpc`).
pub mod tags {
    /// Streaming pull; with `rpcContext` the caller also subscribes to new events.
    pub const PULL: &str = "SyncDoRpc.Pull";
    /// Push.
    pub const PUSH: &str = "SyncDoRpc.Push";
    /// Liveness check.
    pub const PING: &str = "SyncDoRpc.Ping";
}

/// Payload of `SyncDoRpc.Pull`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DoRpcPullPayload<'a> {
    /// The store the client believes it is talking to.
    #[serde(borrow)]
    pub store_id: Cow<'a, str>,
    /// The client's sync payload, passed to hooks.
    #[serde(borrow, default)]
    pub payload: Option<&'a RawValue>,
    /// Where the client's log ends; `None` pulls everything.
    pub cursor: EffectOption<Cursor>,
    /// Present on a live pull: where to deliver later events.
    #[serde(default)]
    pub rpc_context: Option<RpcContext>,
}

/// `rpcContext` of a live pull.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RpcContext {
    /// The calling object.
    pub caller_context: CallerContext,
}

/// A client Durable Object, as the sync object can reach it: the binding, in the sync Worker's
/// own environment, of the client's Durable Object namespace, and the object's id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallerContext {
    /// Name of a Durable Object binding in the sync Worker's environment.
    pub binding_name: String,
    /// `ctx.id.toString()` of the client object (64 hex digits).
    pub durable_object_id: String,
}

/// Longest binding name and object id a subscription may carry (ids are 64 hex digits).
pub const MAX_CALLER_FIELD_LEN: usize = 256;

impl CallerContext {
    /// Refuses contexts that cannot name a Durable Object, before anything is stored.
    pub fn validate(&self) -> Result<(), SyncError> {
        let ok = |s: &str| !s.is_empty() && s.len() <= MAX_CALLER_FIELD_LEN;
        if ok(&self.binding_name) && ok(&self.durable_object_id) {
            Ok(())
        } else {
            Err(SyncError::invalid_request(format!(
                "rpcContext.callerContext needs a bindingName and a durableObjectId of 1 to {MAX_CALLER_FIELD_LEN} characters"
            )))
        }
    }
}

/// A live-pull subscriber of the DO RPC transport, as stored in the sync object's SQLite so it
/// survives eviction.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscriber {
    /// Where to call `syncUpdateRpc`.
    pub caller: CallerContext,
    /// The Effect RPC request id of the subscribing pull; the client routes updates by it.
    pub request_id: String,
    /// When it subscribed (ms since the epoch).
    pub subscribed_at: i64,
}

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

    #[test]
    fn caller_context_limits() {
        let c = |b: &str, id: &str| CallerContext {
            binding_name: b.into(),
            durable_object_id: id.into(),
        };
        assert!(c("CLIENT_DO", "ab").validate().is_ok());
        assert!(c("", "ab").validate().is_err());
        assert!(c("B", &"a".repeat(300)).validate().is_err());
    }
}
