//! Decoding what a client sends: one Effect RPC message (`FromClientEncoded`) per frame or body.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

/// Longest request id accepted. Effect RPC ids are decimal strings of a bigint counter; the cap
/// keeps a socket's attachment (which stores live pull ids) small.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// One decoded client message. The RPC payload stays raw until the handler for its tag parses it.
#[derive(Debug)]
pub enum ClientMessage<'a> {
    /// An RPC call.
    Request(RpcRequest<'a>),
    /// Flow-control acknowledgement of a stream chunk; the server streams without waiting for it.
    Ack,
    /// The client stops a stream (a live pull).
    Interrupt {
        /// The stream's request id.
        request_id: Cow<'a, str>,
    },
    /// Liveness probe, normally answered by the runtime's auto-response without waking the object.
    Ping,
    /// End of input; the socket client never sends it.
    Eof,
}

/// An RPC `Request` envelope.
#[derive(Debug)]
pub struct RpcRequest<'a> {
    /// The client's id for this request, echoed in every reply to it.
    pub id: Cow<'a, str>,
    /// The RPC name, e.g. `SyncWsRpc.Push`.
    pub tag: Cow<'a, str>,
    /// The RPC payload, parsed later according to `tag`.
    pub payload: Option<&'a RawValue>,
    /// The client's trace (Effect's `traceId`), for tracing.
    pub trace_id: Option<Cow<'a, str>>,
    /// The client's span (Effect's `spanId`), for tracing.
    pub span_id: Option<Cow<'a, str>>,
}

/// Why a frame could not be decoded into a [`ClientMessage`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Not JSON, or not a JSON object.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// `_tag` missing or not one of the envelope tags.
    #[error("unknown message _tag: {0}")]
    UnknownMessageTag(String),
    /// A `Request` without a usable `id`.
    #[error("invalid request id: {0}")]
    InvalidRequestId(String),
    /// A `Request` whose `tag` is missing or not a string; the id is known, so the error can
    /// be answered on that request.
    #[error("invalid request tag in request {id}")]
    InvalidRpcTag {
        /// The request id.
        id: String,
    },
}

impl FrameError {
    /// The request id the error can be reported on, when the frame named one.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            FrameError::InvalidRpcTag { id } => Some(id),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct RawMessage<'a> {
    #[serde(rename = "_tag", borrow, default)]
    kind: Option<&'a RawValue>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tag: Option<&'a RawValue>,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
    #[serde(rename = "requestId", borrow, default)]
    request_id: Option<&'a RawValue>,
    #[serde(rename = "traceId", borrow, default)]
    trace_id: Option<&'a RawValue>,
    #[serde(rename = "spanId", borrow, default)]
    span_id: Option<&'a RawValue>,
}

fn as_str(raw: Option<&RawValue>) -> Option<Cow<'_, str>> {
    serde_json::from_str::<Cow<'_, str>>(raw?.get()).ok()
}

fn valid_id(id: Option<Cow<'_, str>>) -> Result<Cow<'_, str>, FrameError> {
    match id {
        Some(id) if !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN => Ok(id),
        Some(id) => Err(FrameError::InvalidRequestId(format!(
            "must be 1 to {MAX_REQUEST_ID_LEN} characters, got {}",
            id.len()
        ))),
        None => Err(FrameError::InvalidRequestId("missing or not a string".into())),
    }
}

/// `{"_tag":"Ack",…}` is by far the most frequent frame (one per chunk a live pull receives) and
/// needs no action, so it is recognised without parsing.
const ACK_PREFIX: &str = r#"{"_tag":"Ack","#;

/// Decodes one client message from JSON text.
pub fn decode_client_message(text: &str) -> Result<ClientMessage<'_>, FrameError> {
    if text.starts_with(ACK_PREFIX) {
        return Ok(ClientMessage::Ack);
    }
    // serde would also read a struct from a JSON array, field by field; the envelope is an object.
    if !text.trim_start().starts_with('{') {
        return Err(FrameError::Malformed("expected a JSON object".into()));
    }
    let raw: RawMessage<'_> = serde_json::from_str(text).map_err(|e| FrameError::Malformed(e.to_string()))?;
    let kind = as_str(raw.kind).unwrap_or(Cow::Borrowed(""));
    match kind.as_ref() {
        "Request" => {
            let id = valid_id(as_str(raw.id))?;
            let Some(tag) = as_str(raw.tag) else {
                return Err(FrameError::InvalidRpcTag { id: id.into_owned() });
            };
            Ok(ClientMessage::Request(RpcRequest {
                id,
                tag,
                payload: raw.payload,
                trace_id: as_str(raw.trace_id),
                span_id: as_str(raw.span_id),
            }))
        }
        // Only an Ack spelled differently from the client's gets here; it must still name a request.
        "Ack" => valid_id(as_str(raw.request_id)).map(|_| ClientMessage::Ack),
        "Interrupt" => Ok(ClientMessage::Interrupt {
            request_id: valid_id(as_str(raw.request_id))?,
        }),
        "Ping" => Ok(ClientMessage::Ping),
        "Eof" => Ok(ClientMessage::Eof),
        other => Err(FrameError::UnknownMessageTag(truncate(other, 64))),
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_captured_frames() {
        let pull = r#"{"_tag":"Request","id":"0","tag":"SyncWsRpc.Pull","traceId":"5137","payload":{"storeId":"s","payload":{"authToken":"tok"},"live":false,"cursor":{"_tag":"None"}},"spanId":"a8","sampled":true,"headers":[]}"#;
        match decode_client_message(pull).unwrap() {
            ClientMessage::Request(r) => {
                assert_eq!(r.id, "0");
                assert_eq!(r.tag, "SyncWsRpc.Pull");
                assert!(r.payload.unwrap().get().starts_with(r#"{"storeId""#));
                assert_eq!(r.trace_id.as_deref(), Some("5137"));
                assert_eq!(r.span_id.as_deref(), Some("a8"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode_client_message(r#"{"_tag":"Ack","requestId":"0"}"#),
            Ok(ClientMessage::Ack)
        ));
        assert!(matches!(
            decode_client_message(r#"{ "requestId":"0", "_tag":"Ack" }"#),
            Ok(ClientMessage::Ack)
        ));
        match decode_client_message(r#"{"_tag":"Interrupt","requestId":"7"}"#).unwrap() {
            ClientMessage::Interrupt { request_id } => assert_eq!(request_id, "7"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode_client_message(r#"{"_tag":"Ping"}"#),
            Ok(ClientMessage::Ping)
        ));
        assert!(matches!(
            decode_client_message(r#"{"_tag":"Eof"}"#),
            Ok(ClientMessage::Eof)
        ));
    }

    #[test]
    fn rejects_bad_frames_with_a_reason() {
        assert!(matches!(
            decode_client_message("not json"),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(decode_client_message("[1,2]"), Err(FrameError::Malformed(_))));
        assert!(matches!(
            decode_client_message(r#"{"_tag":"Ack"}"#),
            Err(FrameError::InvalidRequestId(_))
        ));
        assert!(matches!(
            decode_client_message(r#"{"_tag":"Request""#),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            decode_client_message(r#"{"_tag":"Hello"}"#),
            Err(FrameError::UnknownMessageTag(t)) if t == "Hello"
        ));
        assert!(matches!(
            decode_client_message(r#"{}"#),
            Err(FrameError::UnknownMessageTag(_))
        ));
        assert!(matches!(
            decode_client_message(r#"{"_tag":"Request","id":5,"tag":"SyncWsRpc.Pull"}"#),
            Err(FrameError::InvalidRequestId(_))
        ));
        let long_id = format!(r#"{{"_tag":"Request","id":"{}","tag":"x"}}"#, "9".repeat(65));
        assert!(matches!(
            decode_client_message(&long_id),
            Err(FrameError::InvalidRequestId(_))
        ));
        let err = decode_client_message(r#"{"_tag":"Request","id":"3","tag":7}"#).unwrap_err();
        assert_eq!(err.request_id(), Some("3"));
        assert!(matches!(
            decode_client_message(r#"{"_tag":"Interrupt"}"#),
            Err(FrameError::InvalidRequestId(_))
        ));
    }

    #[test]
    fn deep_nesting_does_not_exhaust_the_stack() {
        // The envelope skips over the payload without recursing; the payload parser then
        // refuses it as a typed error.
        let deep = format!(
            r#"{{"_tag":"Request","id":"1","tag":"t","payload":{}{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let ClientMessage::Request(r) = decode_client_message(&deep).unwrap() else {
            panic!("expected a request")
        };
        assert!(serde_json::from_str::<crate::protocol::PushPayload>(r.payload.unwrap().get()).is_err());
        let deep_tag = format!(r#"{{"_tag":{}{}}}"#, "[".repeat(100_000), "]".repeat(100_000));
        assert!(decode_client_message(&deep_tag).is_err());
    }
}
