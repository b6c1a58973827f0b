//! The RPC payloads of the sync RPCs (`SyncMessage.PullRequest`, `SyncMessage.PushRequest`,
//! ping), decoded leniently where the reference is lenient (unknown fields are ignored) and
//! strictly where a wrong value would corrupt the log.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::{EffectOption, SeqNum, SyncError};

/// Payload of `SyncWsRpc.Pull` and `SyncHttpRpc.Pull`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PullPayload<'a> {
    /// The store the client believes it is talking to; must match the connection's store.
    #[serde(borrow)]
    pub store_id: Cow<'a, str>,
    /// The client's sync payload (auth data), passed to hooks.
    #[serde(borrow, default)]
    pub payload: Option<&'a RawValue>,
    /// Keep the stream open after the initial pages (WebSocket only; HTTP has no such field).
    #[serde(default)]
    pub live: bool,
    /// Where the client's log ends; `None` pulls everything.
    pub cursor: EffectOption<Cursor>,
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

impl PushPayload<'_> {
    /// Checks the batch's sequence numbers before anything touches storage: every number is
    /// non-negative, the numbers strictly increase from the first event's parent on, and each
    /// event after the first names the one before it as its parent.
    ///
    /// The reference checks only the first parent against the head; a batch that goes backwards
    /// or repeats a number would otherwise be stored out of order or fail halfway in SQL.
    pub fn validate(&self) -> Result<(), SyncError> {
        let invalid = |msg: String| SyncError::unknown("InvalidPushBatchError", msg);
        let Some(first) = self.batch.first() else {
            return Ok(());
        };
        if first.parent_seq_num.0 < 0 {
            return Err(invalid(format!(
                "parentSeqNum must not be negative, got {}",
                first.parent_seq_num.0
            )));
        }
        let mut previous = first.parent_seq_num.0;
        for (i, event) in self.batch.iter().enumerate() {
            if event.seq_num.0 <= previous {
                return Err(invalid(if i == 0 {
                    format!(
                        "event 0: seqNum {} must be greater than its parentSeqNum {}",
                        event.seq_num.0, previous
                    )
                } else {
                    format!(
                        "event {i}: seqNum {} must be greater than the previous event's seqNum {}",
                        event.seq_num.0, previous
                    )
                }));
            }
            if event.parent_seq_num.0 < 0 {
                return Err(invalid(format!(
                    "event {i}: parentSeqNum must not be negative, got {}",
                    event.parent_seq_num.0
                )));
            }
            // Each event must name the one before it, or the stored log would not be a chain.
            if i > 0 && event.parent_seq_num.0 != previous {
                return Err(invalid(format!(
                    "event {i}: parentSeqNum {} must be the previous event's seqNum {}",
                    event.parent_seq_num.0, previous
                )));
            }
            previous = event.seq_num.0;
        }
        Ok(())
    }
}

/// Parses an RPC payload, turning any schema mismatch into the typed error the client receives.
pub fn parse_payload<'a, T: Deserialize<'a>>(rpc_tag: &str, payload: Option<&'a RawValue>) -> Result<T, SyncError> {
    let raw = payload.ok_or_else(|| SyncError::invalid_request(format!("{rpc_tag}: missing payload")))?;
    serde_json::from_str(raw.get()).map_err(|e| SyncError::invalid_request(format!("{rpc_tag}: invalid payload: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(json: &str) -> Result<PushPayload<'_>, SyncError> {
        let raw: &RawValue = serde_json::from_str(json).unwrap();
        parse_payload("SyncWsRpc.Push", Some(raw))
    }

    const EV: &str = r#""name":"todoCreated","clientId":"c","sessionId":"s""#;

    fn batch(pairs: &[(&str, &str)]) -> String {
        let events: Vec<String> = pairs
            .iter()
            .map(|(seq, parent)| format!(r#"{{{EV},"args":{{"a":1}},"seqNum":{seq},"parentSeqNum":{parent}}}"#))
            .collect();
        format!(
            r#"{{"storeId":"s","batch":[{}],"backendId":{{"_tag":"None"}}}}"#,
            events.join(",")
        )
    }

    #[test]
    fn decodes_the_captured_push() {
        let json = r#"{"storeId":"store-ws","payload":{"authToken":"tok"},"batch":[{"name":"v1.TodoCreated","args":{"id":"t1","text":"hi t1"},"seqNum":1,"parentSeqNum":0,"clientId":"client-a","sessionId":"sess-1"}],"backendId":{"_tag":"Some","value":"b"}}"#;
        let p = push(json).unwrap();
        assert_eq!(p.store_id, "store-ws");
        assert_eq!(p.batch[0].args.unwrap().get(), r#"{"id":"t1","text":"hi t1"}"#);
        assert_eq!(p.backend_id.0.as_deref(), Some("b"));
        p.validate().unwrap();
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
    fn validation_rules() {
        push(&batch(&[("1", "0"), ("2", "1"), ("3", "2")]))
            .unwrap()
            .validate()
            .unwrap();
        // The reference accepts a first event far ahead of its parent (upstream test #14).
        push(&batch(&[("100", "0"), ("101", "100")]))
            .unwrap()
            .validate()
            .unwrap();
        for bad in [
            batch(&[("1", "-1")]),
            batch(&[("0", "0")]),
            batch(&[("-2", "-3")]),
            batch(&[("1", "0"), ("1", "1")]),
            batch(&[("1", "0"), ("3", "2"), ("2", "1")]),
            batch(&[("1", "0"), ("2", "-1")]),
        ] {
            let err = push(&bad).unwrap().validate().unwrap_err();
            assert!(
                matches!(&err, SyncError::Unknown { name, .. } if name == "InvalidPushBatchError"),
                "{bad}: {err:?}"
            );
        }
    }

    #[test]
    fn schema_mismatches_are_typed_errors() {
        for bad in [
            r#"{"storeId":"s","batch":[{"name":"n","seqNum":1.5,"parentSeqNum":0,"clientId":"c","sessionId":"s"}],"backendId":{"_tag":"None"}}"#,
            r#"{"storeId":"s","batch":[{"name":"n","seqNum":"1","parentSeqNum":0,"clientId":"c","sessionId":"s"}],"backendId":{"_tag":"None"}}"#,
            r#"{"storeId":"s","batch":[{"name":5,"seqNum":1,"parentSeqNum":0,"clientId":"c","sessionId":"s"}],"backendId":{"_tag":"None"}}"#,
            r#"{"storeId":"s","batch":{},"backendId":{"_tag":"None"}}"#,
            r#"{"storeId":"s","batch":[]}"#,
            r#"{"batch":[],"backendId":{"_tag":"None"}}"#,
            r#"[]"#,
        ] {
            let err = push(bad).unwrap_err();
            assert!(
                matches!(&err, SyncError::Unknown { name, .. } if name == "InvalidRequestError"),
                "{bad}"
            );
        }
        assert!(parse_payload::<PushPayload>("SyncWsRpc.Push", None).is_err());
    }

    #[test]
    fn pull_payloads() {
        let raw: &RawValue = serde_json::from_str(
            r#"{"storeId":"s","payload":{"authToken":"t"},"live":true,"cursor":{"_tag":"Some","value":{"backendId":"b","eventSequenceNumber":1}}}"#,
        )
        .unwrap();
        let p: PullPayload = parse_payload("SyncWsRpc.Pull", Some(raw)).unwrap();
        assert!(p.live);
        let c = p.cursor.0.unwrap();
        assert_eq!((c.backend_id.as_str(), c.event_sequence_number.0), ("b", 1));
        // HTTP pulls carry no `live`.
        let raw: &RawValue = serde_json::from_str(r#"{"storeId":"s","cursor":{"_tag":"None"}}"#).unwrap();
        let p: PullPayload = parse_payload("SyncHttpRpc.Pull", Some(raw)).unwrap();
        assert!(!p.live && p.cursor.0.is_none());
    }
}
