//! The RPC payloads of the sync RPCs (`SyncMessage.PullRequest`, `SyncMessage.PushRequest`,
//! ping), decoded leniently where the reference is lenient (unknown fields are ignored) and
//! strictly where a wrong value would corrupt the log.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::{EffectOption, SeqNum};

/// Payload of a pull on any transport (`SyncWsRpc.Pull`, `SyncHttpRpc.Pull`,
/// `SyncDoRpc.Pull`): the fields they share, plus the one each adds to ask for a live pull.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PullPayload<'a> {
    /// The store the client believes it is talking to; must match the connection's store.
    #[serde(borrow)]
    pub store_id: Cow<'a, str>,
    /// The client's sync payload (auth data), passed to hooks.
    #[serde(borrow, default)]
    pub payload: Option<&'a RawValue>,
    /// WebSocket: keep the stream open after the initial pages. (HTTP has no such field.)
    #[serde(default)]
    pub live: bool,
    /// DO RPC: present on a live pull, naming where later events go.
    #[serde(default)]
    pub rpc_context: Option<RpcContext>,
    /// Where the client's log ends; `None` pulls everything.
    pub cursor: EffectOption<Cursor>,
}

/// `rpcContext` of a DO RPC live pull.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RpcContext {
    /// The calling object.
    pub caller_context: CallerContext,
}

/// A client Durable Object, as the sync object can reach it: the binding, in the sync Worker's
/// own environment, of the client's Durable Object namespace, and the object's id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
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
    /// Whether the context can name a Durable Object (checked before anything is stored).
    pub fn is_valid(&self) -> bool {
        let ok = |s: &str| !s.is_empty() && s.len() <= MAX_CALLER_FIELD_LEN;
        ok(&self.binding_name) && ok(&self.durable_object_id)
    }
}

/// A pull cursor: the last event the client has, and the backend it came from.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cursor {
    /// The backendId the client's events came from.
    pub backend_id: String,
    /// The last global sequence number the client has.
    pub event_sequence_number: SeqNum,
}

/// Payload of `SyncWsRpc.Push` and `SyncHttpRpc.Push`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PushPayload<'a> {
    /// The store the client believes it is talking to; must match the connection's store.
    #[serde(borrow)]
    pub store_id: Cow<'a, str>,
    /// The client's sync payload (auth data), passed to hooks.
    #[serde(borrow, default)]
    pub payload: Option<&'a RawValue>,
    /// The events to append, in order.
    #[serde(borrow)]
    pub batch: Vec<EventIn<'a>>,
    /// The backendId the client last pulled from; `None` for a client that never pulled.
    pub backend_id: EffectOption<String>,
}

/// Payload of `SyncHttpRpc.Ping`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PingPayload<'a> {
    /// The store the client believes it is talking to.
    #[serde(borrow)]
    pub store_id: Cow<'a, str>,
}

/// One event as a client pushes it (`LiveStoreEvent.Global.Encoded`). `name` and `args` are
/// opaque to the server; `args` keeps the client's JSON text so it is stored without re-encoding.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventIn<'a> {
    /// The event name, e.g. `v1.TodoCreated`.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// The event's arguments as raw JSON; `None` when the key is absent.
    #[serde(borrow, default, deserialize_with = "raw_if_present")]
    pub args: Option<&'a RawValue>,
    /// This event's global sequence number.
    pub seq_num: SeqNum,
    /// The sequence number of the event before it (0 for the first event of a store).
    pub parent_seq_num: SeqNum,
    /// The client that created the event.
    #[serde(borrow)]
    pub client_id: Cow<'a, str>,
    /// The client session that created the event.
    #[serde(borrow)]
    pub session_id: Cow<'a, str>,
}

/// Keeps an explicit `null` as raw text, so only a missing key becomes `None`.
fn raw_if_present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(json: &str) -> serde_json::Result<PushPayload<'_>> {
        serde_json::from_str(json)
    }

    const EV: &str = r#""name":"todoCreated","clientId":"c","sessionId":"s""#;

    #[test]
    fn decodes_the_captured_push() {
        let json = r#"{"storeId":"store-ws","payload":{"authToken":"tok"},"batch":[{"name":"v1.TodoCreated","args":{"id":"t1","text":"hi t1"},"seqNum":1,"parentSeqNum":0,"clientId":"client-a","sessionId":"sess-1"}],"backendId":{"_tag":"Some","value":"b"}}"#;
        let p = push(json).unwrap();
        assert_eq!(p.store_id, "store-ws");
        assert_eq!(p.batch[0].args.unwrap().get(), r#"{"id":"t1","text":"hi t1"}"#);
        assert_eq!(p.backend_id.0.as_deref(), Some("b"));
    }

    #[test]
    fn args_null_and_absent_differ() {
        let json = format!(
            r#"{{"storeId":"s","batch":[{{{EV},"args":null,"seqNum":1,"parentSeqNum":0}},{{{EV},"seqNum":2,"parentSeqNum":1}}],"backendId":{{"_tag":"None"}}}}"#
        );
        let p = push(&json).unwrap();
        assert_eq!(p.batch[0].args.map(|r| r.get()), Some("null"));
        assert!(p.batch[1].args.is_none());
    }

    #[test]
    fn schema_mismatches_are_errors() {
        for bad in [
            r#"{"storeId":"s","batch":[{"name":"n","seqNum":1.5,"parentSeqNum":0,"clientId":"c","sessionId":"s"}],"backendId":{"_tag":"None"}}"#,
            r#"{"storeId":"s","batch":[{"name":"n","seqNum":"1","parentSeqNum":0,"clientId":"c","sessionId":"s"}],"backendId":{"_tag":"None"}}"#,
            r#"{"storeId":"s","batch":[{"name":5,"seqNum":1,"parentSeqNum":0,"clientId":"c","sessionId":"s"}],"backendId":{"_tag":"None"}}"#,
            r#"{"storeId":"s","batch":{},"backendId":{"_tag":"None"}}"#,
            r#"{"storeId":"s","batch":[]}"#,
            r#"{"batch":[],"backendId":{"_tag":"None"}}"#,
            r#"[]"#,
        ] {
            assert!(push(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pull_payloads() {
        let p: PullPayload = serde_json::from_str(
            r#"{"storeId":"s","payload":{"authToken":"t"},"live":true,"cursor":{"_tag":"Some","value":{"backendId":"b","eventSequenceNumber":1}}}"#,
        )
        .unwrap();
        assert!(p.live && p.rpc_context.is_none());
        let c = p.cursor.0.unwrap();
        assert_eq!((c.backend_id.as_str(), c.event_sequence_number.0), ("b", 1));
        // HTTP pulls carry no `live`.
        let p: PullPayload = serde_json::from_str(r#"{"storeId":"s","cursor":{"_tag":"None"}}"#).unwrap();
        assert!(!p.live && p.cursor.0.is_none());
        // DO RPC live pulls name their caller.
        let p: PullPayload = serde_json::from_str(
            r#"{"storeId":"s","cursor":{"_tag":"None"},"rpcContext":{"callerContext":{"bindingName":"CLIENT_DO","durableObjectId":"ab"}}}"#,
        )
        .unwrap();
        assert!(p.rpc_context.unwrap().caller_context.is_valid());
    }

    #[test]
    fn caller_context_limits() {
        let c = |b: &str, id: &str| CallerContext {
            binding_name: b.into(),
            durable_object_id: id.into(),
        };
        assert!(c("CLIENT_DO", "ab").is_valid());
        assert!(!c("", "ab").is_valid());
        assert!(!c("B", &"a".repeat(300)).is_valid());
    }
}
