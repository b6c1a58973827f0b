//! Encoding what the server sends: Effect RPC `FromServerEncoded` messages and the
//! `SyncMessage.PullResponse` values inside them, written as JSON text directly.

use super::{EventIn, SyncError};
use crate::util::json::push_str_literal;

/// The reply to `{"_tag":"Ping"}`, byte for byte what the reference's auto-response sends.
pub const PONG: &str = r#"{"_tag":"Pong"}"#;
/// The ping frame the client sends; the runtime answers it with [`PONG`] while we sleep.
pub const PING: &str = r#"{"_tag":"Ping"}"#;

/// `pageInfo` of a pull response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageInfo {
    /// This page ends what the server knows of.
    NoMore,
    /// This many events follow this page.
    MoreKnown(u64),
}

impl PageInfo {
    /// Appends the JSON encoding.
    pub fn push_json(self, out: &mut String) {
        match self {
            PageInfo::NoMore => out.push_str(r#"{"_tag":"NoMore"}"#),
            PageInfo::MoreKnown(n) => {
                out.push_str(r#"{"_tag":"MoreKnown","remaining":"#);
                out.push_str(&n.to_string());
                out.push('}');
            }
        }
    }

    /// The longest encoding any page info can have, for page-size budgeting.
    pub const MAX_JSON_LEN: usize = r#"{"_tag":"MoreKnown","remaining":9007199254740991}"#.len();
}

/// Appends one `PullResponse.batch` item for an event being pushed now:
/// `{"eventEncoded":{…},"metadata":{"_tag":"Some","value":{"_tag":"SyncMessage.SyncMetadata","createdAt":…}}}`.
///
/// The storage engines produce the same shape for stored events (see `storage::sql`).
pub fn push_batch_item(out: &mut String, event: &EventIn<'_>, created_at_literal: &str) {
    out.push_str(r#"{"eventEncoded":{"name":"#);
    push_str_literal(out, &event.name);
    out.push_str(r#","args":"#);
    out.push_str(event.args.map_or("null", |a| a.get()));
    out.push_str(r#","seqNum":"#);
    out.push_str(&event.seq_num.0.to_string());
    out.push_str(r#","parentSeqNum":"#);
    out.push_str(&event.parent_seq_num.0.to_string());
    out.push_str(r#","clientId":"#);
    push_str_literal(out, &event.client_id);
    out.push_str(r#","sessionId":"#);
    push_str_literal(out, &event.session_id);
    out.push_str(r#"},"metadata":{"_tag":"Some","value":{"_tag":"SyncMessage.SyncMetadata","createdAt":"#);
    out.push_str(created_at_literal);
    out.push_str("}}}");
}

/// Builds a `PullResponse`: `{"batch":[items],"pageInfo":…,"backendId":…}`.
/// `items` is the comma-joined batch items; `backend_id_literal` is already a JSON string.
pub fn pull_response(items: &str, page_info: PageInfo, backend_id_literal: &str) -> String {
    let mut out = String::with_capacity(items.len() + 96);
    out.push_str(r#"{"batch":["#);
    out.push_str(items);
    out.push_str(r#"],"pageInfo":"#);
    page_info.push_json(&mut out);
    out.push_str(r#","backendId":"#);
    out.push_str(backend_id_literal);
    out.push('}');
    out
}

/// Bytes a `PullResponse` adds around its items, at most (with the longest page info).
pub fn pull_response_overhead(backend_id_literal: &str) -> usize {
    r#"{"batch":[],"pageInfo":,"backendId":}"#.len() + PageInfo::MAX_JSON_LEN + backend_id_literal.len()
}

/// `{"_tag":"Chunk","requestId":…,"values":[value]}` — one stream element.
pub fn chunk(request_id: &str, value: &str) -> String {
    let mut out = String::with_capacity(value.len() + request_id.len() + 48);
    out.push_str(r#"{"_tag":"Chunk","requestId":"#);
    push_str_literal(&mut out, request_id);
    out.push_str(r#","values":["#);
    out.push_str(value);
    out.push_str("]}");
    out
}

/// `Exit` with a successful result; `value` is JSON, or `None` for a stream's `Void` result
/// (which the reference encodes without a `value` key).
pub fn exit_success(request_id: &str, value: Option<&str>) -> String {
    let mut out = String::with_capacity(64);
    out.push_str(r#"{"_tag":"Exit","requestId":"#);
    push_str_literal(&mut out, request_id);
    out.push_str(r#","exit":{"_tag":"Success""#);
    if let Some(value) = value {
        out.push_str(r#","value":"#);
        out.push_str(value);
    }
    out.push_str("}}");
    out
}

/// `Exit` with a typed failure (`cause: {"_tag":"Fail","error":…}`).
pub fn exit_failure(request_id: &str, error: &SyncError) -> String {
    let mut out = String::with_capacity(160);
    out.push_str(r#"{"_tag":"Exit","requestId":"#);
    push_str_literal(&mut out, request_id);
    out.push_str(r#","exit":{"_tag":"Failure","cause":{"_tag":"Fail","error":"#);
    out.push_str(&error.to_json());
    out.push_str("}}}");
    out
}

/// `Exit` for a stream the client interrupted.
pub fn exit_interrupted(request_id: &str) -> String {
    let mut out = String::with_capacity(96);
    out.push_str(r#"{"_tag":"Exit","requestId":"#);
    push_str_literal(&mut out, request_id);
    out.push_str(r#","exit":{"_tag":"Failure","cause":{"_tag":"Interrupt","fiberId":{"_tag":"None"}}}}"#);
    out
}

/// A protocol-level `Defect`, for frames that name no request to answer on.
pub fn defect(message: &str) -> String {
    let mut out = String::with_capacity(message.len() + 32);
    out.push_str(r#"{"_tag":"Defect","defect":"#);
    push_str_literal(&mut out, message);
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::SeqNum;
    use serde_json::{json, Value};

    fn v(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn envelopes_match_captured_frames() {
        assert_eq!(
            v(&exit_success("2", Some("{}"))),
            v(r#"{"_tag":"Exit","requestId":"2","exit":{"_tag":"Success","value":{}}}"#)
        );
        assert_eq!(
            exit_success("0", None),
            r#"{"_tag":"Exit","requestId":"0","exit":{"_tag":"Success"}}"#
        );
        assert_eq!(
            v(&exit_failure(
                "3",
                &SyncError::ServerAhead {
                    minimum_expected_num: 2,
                    provided_num: 8
                }
            )),
            v(
                r#"{"_tag":"Exit","requestId":"3","exit":{"_tag":"Failure","cause":{"_tag":"Fail","error":{"minimumExpectedNum":2,"providedNum":8,"_tag":"ServerAheadError"}}}}"#
            )
        );
        assert_eq!(
            v(&exit_interrupted("1")),
            json!({"_tag":"Exit","requestId":"1","exit":{"_tag":"Failure","cause":{"_tag":"Interrupt","fiberId":{"_tag":"None"}}}})
        );
        assert_eq!(
            v(&defect("bad \"frame\"")),
            json!({"_tag":"Defect","defect":"bad \"frame\""})
        );
        assert_eq!(
            chunk(
                "0",
                r#"{"batch":[],"pageInfo":{"_tag":"NoMore"},"backendId":"SmwOu1ExrykEHRNsgCWG_"}"#
            ),
            r#"{"_tag":"Chunk","requestId":"0","values":[{"batch":[],"pageInfo":{"_tag":"NoMore"},"backendId":"SmwOu1ExrykEHRNsgCWG_"}]}"#
        );
    }

    #[test]
    fn batch_item_matches_the_reference_encoding() {
        let event = EventIn {
            name: "todoCreated".into(),
            args: Some(serde_json::from_str(r#"{"id":"todo-1","n":1}"#).unwrap()),
            seq_num: SeqNum(1),
            parent_seq_num: SeqNum(0),
            client_id: "A".into(),
            session_id: "session-a".into(),
        };
        let mut out = String::new();
        push_batch_item(&mut out, &event, r#""2026-11-22T19:31:31.539Z""#);
        assert_eq!(
            out,
            r#"{"eventEncoded":{"name":"todoCreated","args":{"id":"todo-1","n":1},"seqNum":1,"parentSeqNum":0,"clientId":"A","sessionId":"session-a"},"metadata":{"_tag":"Some","value":{"_tag":"SyncMessage.SyncMetadata","createdAt":"2026-11-22T19:31:31.539Z"}}}"#
        );
        let page = pull_response(&out, PageInfo::MoreKnown(3), r#""b""#);
        assert_eq!(v(&page)["pageInfo"], json!({"_tag":"MoreKnown","remaining":3}));
        assert!(page.len() <= out.len() + pull_response_overhead(r#""b""#));
    }
}
