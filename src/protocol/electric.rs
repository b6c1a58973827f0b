//! The wire format `@livestore/sync-electric` 0.4.0 speaks: the small part of Electric's HTTP
//! shape protocol its client uses (see `shared/protocol/sync-electric-0.4.0.md`). Pure: the
//! endpoint's codec (`object::electric`) and the Worker use it; the rules are the core's.
//!
//! - A pull is `GET ?args=<JSON>`: the store, the client's sync payload, its shape handle and
//!   offset (when it has data), and whether to wait for new events.
//! - The answer is a JSON array of `insert` rows whose values are all strings (`args` as JSON
//!   text), with the `electric-handle` and `electric-offset` headers.
//! - A push is `POST` of `{storeId, batch}`, answered `{"success":true}` or non-2xx.
//!
//! The handle is the store's backendId. The offset is `"<seqNum>_<flag>"`: the position the
//! client has reached (clients persist it, so the format never changes), and a flag saying
//! whether the answer that gave it carried events. The 0.4.0 client's leader holds back its own
//! pushes until a pull answers with nothing new; a live pull that follows a page of events is
//! therefore answered at once, never held, or every remote batch would delay the client's next
//! push by the whole long-poll.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{EffectOption, EventIn, PushPayload};
use crate::util::json::push_str_literal;

/// The endpoint's path: `/electric`, or `/electric/<token>` to carry a token on every request
/// (the only place the 0.4.0 client can put one on a push or a ping).
pub const PATH: &str = "/electric";

/// Whether a path is the endpoint's.
pub fn is_endpoint(path: &str) -> bool {
    path == PATH || path.strip_prefix(PATH).is_some_and(|rest| rest.starts_with('/'))
}

/// The token in the endpoint's path, percent-decoded: `/electric/<token>` (one segment).
pub fn path_token(path: &str) -> Option<String> {
    let token = path.strip_prefix(PATH)?.strip_prefix('/')?;
    if token.is_empty() || token.contains('/') {
        return None;
    }
    crate::util::uri::decode_uri_component(token).filter(|t| !t.is_empty())
}

/// `_tag` of a pull's `args`.
pub const PULL_TAG: &str = "@livestore/sync-electric.Pull";
/// `_tag` of a push body.
pub const PUSH_TAG: &str = "@livestore/sync-electric.Push";

/// The response header naming the shape: the store's backendId.
pub const HANDLE_HEADER: &str = "electric-handle";
/// The response header with the position reached.
pub const OFFSET_HEADER: &str = "electric-offset";

/// `args` of a pull.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PullArgs<'a> {
    /// Must be [`PULL_TAG`].
    #[serde(rename = "_tag", borrow)]
    pub tag: Cow<'a, str>,
    /// The store.
    #[serde(borrow)]
    pub store_id: Cow<'a, str>,
    /// The app's sync payload (its auth data), passed to the hooks.
    #[serde(borrow, default)]
    pub payload: Option<&'a RawValue>,
    /// The shape the client has: `None` on a client without data.
    pub handle: EffectOption<Shape>,
    /// Wait for new events when there are none.
    pub live: bool,
}

/// The shape a client has reached: the handle and offset of the last answer it got.
#[derive(Debug, Clone, Deserialize)]
pub struct Shape {
    /// The offset, as this server wrote it.
    pub offset: String,
    /// The handle (the store's backendId when the client got it).
    pub handle: String,
}

/// Why a pull's `args` cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid args: {0}")]
pub struct ArgsError(pub String);

/// Reads a pull's `args` (already percent-decoded JSON text).
pub fn parse_pull_args(args: &str) -> Result<PullArgs<'_>, ArgsError> {
    let parsed: PullArgs = serde_json::from_str(args).map_err(|e| ArgsError(e.to_string()))?;
    if parsed.tag != PULL_TAG {
        return Err(ArgsError(format!("_tag must be {PULL_TAG:?}")));
    }
    Ok(parsed)
}

/// A push body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PushBody<'a> {
    #[serde(rename = "_tag", borrow)]
    tag: Cow<'a, str>,
    #[serde(borrow)]
    store_id: Cow<'a, str>,
    #[serde(borrow)]
    batch: Vec<EventIn<'a>>,
}

/// Reads a push body as the push every other transport makes: no backendId (sync-electric has
/// none) and no sync payload (its client sends none with a push).
pub fn parse_push(body: &str) -> Result<PushPayload<'_>, ArgsError> {
    let parsed: PushBody = serde_json::from_str(body).map_err(|e| ArgsError(e.to_string()))?;
    if parsed.tag != PUSH_TAG {
        return Err(ArgsError(format!("_tag must be {PUSH_TAG:?}")));
    }
    Ok(PushPayload {
        store_id: parsed.store_id,
        payload: None,
        batch: parsed.batch,
        backend_id: EffectOption(None),
    })
}

/// The storeId of a push body, read without the batch (the Worker routes by it).
pub fn push_store_id(body: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct StoreOnly<'a> {
        #[serde(rename = "storeId", borrow)]
        store_id: Cow<'a, str>,
    }
    serde_json::from_str::<StoreOnly>(body)
        .ok()
        .map(|s| s.store_id.into_owned())
}

/// A position in a store's log, as an offset carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offset {
    /// The last seqNum the client has (0: none).
    pub seq_num: i64,
    /// The answer that gave this offset carried events.
    pub after_data: bool,
}

impl Offset {
    /// Reads an offset as [`Offset::encode`] writes it; `None` for anything else.
    pub fn parse(text: &str) -> Option<Offset> {
        let (seq, flag) = text.split_once('_')?;
        let digits = |s: &str| !s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(seq) {
            return None;
        }
        let seq_num: i64 = seq.parse().ok()?;
        if seq_num > super::seq::MAX_SAFE_INTEGER {
            return None;
        }
        let after_data = match flag {
            "0" => false,
            "1" => true,
            _ => return None,
        };
        Some(Offset { seq_num, after_data })
    }

    /// `"<seqNum>_<1 after data, else 0>"`.
    pub fn encode(&self) -> String {
        format!("{}_{}", self.seq_num, u8::from(self.after_data))
    }
}

/// `eventlog_6_<storeId with [^a-zA-Z0-9_] → _>`: the table sync-electric's example proxy keeps a
/// store in, named in each row's `relation` as Electric would. The replacement runs over UTF-16
/// code units, as the client's JavaScript regex does, so a character outside the Basic
/// Multilingual Plane becomes two underscores.
pub fn table_name(store_id: &str) -> String {
    let mut name = String::from("eventlog_6_");
    for c in store_id.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            name.push(c);
        } else {
            name.extend(std::iter::repeat_n('_', c.len_utf16()));
        }
    }
    name
}

/// A stored event (`{"eventEncoded":{…},"metadata":…}`, as pulls carry it) as an Electric
/// `insert` row: every value a string, `args` as JSON text. `None` for an item not of that shape
/// (the storage query always builds it so).
pub fn insert_row(item_json: &str, table: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Item<'a> {
        #[serde(rename = "eventEncoded", borrow)]
        event: EventIn<'a>,
    }
    let item: Item = serde_json::from_str(item_json).ok()?;
    let event = item.event;
    let mut out = String::with_capacity(item_json.len() + 96);
    out.push_str(r#"{"key":"#);
    push_str_literal(&mut out, &format!("\"public\".\"{table}\"/\"{}\"", event.seq_num.0));
    out.push_str(r#","value":{"seqNum":""#);
    out.push_str(&event.seq_num.0.to_string());
    out.push_str(r#"","parentSeqNum":""#);
    out.push_str(&event.parent_seq_num.0.to_string());
    out.push_str(r#"","name":"#);
    push_str_literal(&mut out, &event.name);
    out.push_str(r#","args":"#);
    push_str_literal(&mut out, event.args.map_or("null", |a| a.get()));
    out.push_str(r#","clientId":"#);
    push_str_literal(&mut out, &event.client_id);
    out.push_str(r#","sessionId":"#);
    push_str_literal(&mut out, &event.session_id);
    out.push_str(r#"},"headers":{"operation":"insert","relation":["public","#);
    push_str_literal(&mut out, table);
    out.push_str("]}}");
    Some(out)
}

/// The control item that says the client is caught up.
pub const UP_TO_DATE: &str = r#"{"headers":{"control":"up-to-date"}}"#;

/// The body of a `409` telling a client its shape is gone (the store was reset).
pub const MUST_REFETCH: &str = r#"[{"headers":{"control":"must-refetch"}}]"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_and_its_token() {
        assert!(is_endpoint("/electric") && is_endpoint("/electric/tok") && is_endpoint("/electric/"));
        assert!(!is_endpoint("/electrical") && !is_endpoint("/") && !is_endpoint("/x/electric"));
        assert_eq!(path_token("/electric/abc.def-ghi"), Some("abc.def-ghi".to_owned()));
        assert_eq!(path_token("/electric/a%2Fb"), Some("a/b".to_owned()));
        for none in ["/electric", "/electric/", "/electric/a/b", "/electric/%zz"] {
            assert_eq!(path_token(none), None, "{none}");
        }
    }

    #[test]
    fn reads_the_captured_args() {
        let fresh = parse_pull_args(
            r#"{"_tag":"@livestore/sync-electric.Pull","storeId":"store-1","payload":{"authToken":"tok"},"handle":{"_tag":"None"},"live":false}"#,
        )
        .unwrap();
        assert_eq!(fresh.store_id, "store-1");
        assert!(fresh.handle.0.is_none() && !fresh.live);
        assert_eq!(fresh.payload.unwrap().get(), r#"{"authToken":"tok"}"#);
        let live = parse_pull_args(
            r#"{"_tag":"@livestore/sync-electric.Pull","storeId":"store-1","handle":{"_tag":"Some","value":{"offset":"2_1","handle":"1795376690818-9ffd9ea1"}},"live":true}"#,
        )
        .unwrap();
        let shape = live.handle.0.unwrap();
        assert_eq!((shape.offset.as_str(), live.live), ("2_1", true));
        for bad in [
            "not json",
            "[]",
            r#"{"_tag":"Other","storeId":"s","handle":{"_tag":"None"},"live":false}"#,
            r#"{"_tag":"@livestore/sync-electric.Pull","handle":{"_tag":"None"},"live":false}"#,
            r#"{"_tag":"@livestore/sync-electric.Pull","storeId":"s","live":false}"#,
        ] {
            assert!(parse_pull_args(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn offsets_round_trip_and_refuse_anything_else() {
        for (text, seq, after_data) in [
            ("0_0", 0, false),
            ("2_1", 2, true),
            ("9007199254740991_0", 9_007_199_254_740_991, false),
        ] {
            let offset = Offset::parse(text).unwrap();
            assert_eq!((offset.seq_num, offset.after_data), (seq, after_data));
            assert_eq!(offset.encode(), text);
        }
        for bad in [
            "-1",
            "",
            "_0",
            "1_",
            "1_2",
            "-3_0",
            "x_0",
            "1.5_0",
            "9007199254740992_0",
            "99999999999999999999_0",
            "1_0_0",
        ] {
            assert_eq!(Offset::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn rows_are_strings_with_a_relation() {
        let item = r#"{"eventEncoded":{"name":"v1.TodoCreated","args":{"id":"a1","text":"from \"a\""},"seqNum":1,"parentSeqNum":0,"clientId":"client-a","sessionId":"client-a-s"},"metadata":{"_tag":"Some","value":{"_tag":"SyncMessage.SyncMetadata","createdAt":"2026-01-01T00:00:00.000Z"}}}"#;
        let table = table_name("full-1");
        assert_eq!(table, "eventlog_6_full_1");
        assert_eq!(table_name("a_b-c😀"), "eventlog_6_a_b_c__");
        let row: serde_json::Value = serde_json::from_str(&insert_row(item, &table).unwrap()).unwrap();
        assert_eq!(
            row["value"],
            serde_json::json!({"seqNum":"1","parentSeqNum":"0","name":"v1.TodoCreated","args":r#"{"id":"a1","text":"from \"a\""}"#,"clientId":"client-a","sessionId":"client-a-s"})
        );
        assert_eq!(
            row["headers"],
            serde_json::json!({"operation":"insert","relation":["public","eventlog_6_full_1"]})
        );
        // An event without args is sent as the JSON text `null`, which the client parses back.
        let bare =
            r#"{"eventEncoded":{"name":"n","args":null,"seqNum":2,"parentSeqNum":1,"clientId":"c","sessionId":"s"}}"#;
        let row: serde_json::Value = serde_json::from_str(&insert_row(bare, &table).unwrap()).unwrap();
        assert_eq!(row["value"]["args"], "null");
    }

    #[test]
    fn pushes_read_as_every_other_push() {
        let body = r#"{"_tag":"@livestore/sync-electric.Push","storeId":"store-1","batch":[{"name":"todoCreated","args":{"id":"t1"},"seqNum":1,"parentSeqNum":0,"clientId":"client-a","sessionId":"s"}]}"#;
        let push = parse_push(body).unwrap();
        assert_eq!((push.store_id.as_ref(), push.batch.len()), ("store-1", 1));
        assert!(push.backend_id.0.is_none() && push.payload.is_none());
        assert_eq!(push_store_id(body).as_deref(), Some("store-1"));
        assert!(parse_push(r#"{"_tag":"x","storeId":"s","batch":[]}"#).is_err());
        assert!(parse_push(r#"{"_tag":"@livestore/sync-electric.Push","storeId":"s"}"#).is_err());
        assert_eq!(push_store_id("[1]"), None);
    }
}
