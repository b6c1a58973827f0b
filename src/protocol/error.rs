//! The typed failures a push or pull can end with, and their wire encoding.

use std::borrow::Cow;

use crate::util::json::push_str_literal;

/// A failure the client can decode: exactly the error tags `SyncWsRpc`/`SyncHttpRpc` declare
/// (`ServerAheadError`, `BackendIdMismatchError`, `UnknownError`). Sending anything else would
/// surface as a defect on the client (LiveStore issue #981), so every server-side problem is
/// mapped onto one of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// The first event's `parentSeqNum` is not the store's head.
    #[error("ServerAheadError: the head is {minimum_expected_num}, the batch starts after {provided_num}")]
    ServerAhead {
        /// The store's current head.
        minimum_expected_num: i64,
        /// The `parentSeqNum` the client sent.
        provided_num: i64,
    },
    /// The client's `backendId` belongs to an earlier incarnation of this store.
    #[error("BackendIdMismatchError: expected {expected}, received {received}")]
    BackendIdMismatch {
        /// The store's backendId.
        expected: String,
        /// The backendId the client sent.
        received: String,
    },
    /// Anything else: invalid requests, storage failures, refused hooks.
    #[error("{name}: {message}")]
    Unknown {
        /// A short error class name, sent as `cause.name` (e.g. `InvalidPushBatch`).
        name: Cow<'static, str>,
        /// What went wrong, for a human.
        message: String,
        /// Optional context, sent as `note`.
        note: Option<String>,
    },
}

impl SyncError {
    /// An `UnknownError` with the given cause name and message.
    pub fn unknown(name: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        SyncError::Unknown {
            name: name.into(),
            message: message.into(),
            note: None,
        }
    }

    /// The request's payload did not match the RPC's schema.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::unknown("InvalidRequestError", message)
    }

    /// The error as the JSON value of `cause.error` in an `Exit` failure.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(96);
        match self {
            SyncError::ServerAhead {
                minimum_expected_num,
                provided_num,
            } => {
                out.push_str(r#"{"_tag":"ServerAheadError","minimumExpectedNum":"#);
                out.push_str(&minimum_expected_num.to_string());
                out.push_str(r#","providedNum":"#);
                out.push_str(&provided_num.to_string());
                out.push('}');
            }
            SyncError::BackendIdMismatch { expected, received } => {
                out.push_str(r#"{"_tag":"BackendIdMismatchError","expected":"#);
                push_str_literal(&mut out, expected);
                out.push_str(r#","received":"#);
                push_str_literal(&mut out, received);
                out.push('}');
            }
            SyncError::Unknown { name, message, note } => {
                out.push_str(r#"{"_tag":"UnknownError","cause":{"name":"#);
                push_str_literal(&mut out, name);
                out.push_str(r#","message":"#);
                push_str_literal(&mut out, message);
                out.push('}');
                if let Some(note) = note {
                    out.push_str(r#","note":"#);
                    push_str_literal(&mut out, note);
                }
                out.push('}');
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn value(e: &SyncError) -> serde_json::Value {
        serde_json::from_str(&e.to_json()).unwrap()
    }

    #[test]
    fn encodings_match_the_reference_shapes() {
        assert_eq!(
            value(&SyncError::ServerAhead {
                minimum_expected_num: 2,
                provided_num: 8
            }),
            json!({"_tag":"ServerAheadError","minimumExpectedNum":2,"providedNum":8})
        );
        assert_eq!(
            value(&SyncError::BackendIdMismatch {
                expected: "a".into(),
                received: "b\"".into()
            }),
            json!({"_tag":"BackendIdMismatchError","expected":"a","received":"b\""})
        );
        assert_eq!(
            value(&SyncError::unknown("Error", "onPush rejected")),
            json!({"_tag":"UnknownError","cause":{"name":"Error","message":"onPush rejected"}})
        );
        let with_note = SyncError::Unknown {
            name: "X".into(),
            message: "m".into(),
            note: Some("n".into()),
        };
        assert_eq!(value(&with_note)["note"], json!("n"));
    }
}
