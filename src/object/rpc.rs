//! The DO RPC transport on the object's side (see [`crate::rpc`]): `rpc(Uint8Array)` decodes
//! msgpack into the JSON messages the core reads, and encodes the core's replies as msgpack.
//! Live pulls over DO RPC are subscribers in the store's storage (see `crate::core`), so they
//! outlive eviction and a store can have many; unlike the reference, which keeps one in memory
//! (LiveStore issues #1462, #1541, #1601).

use wasm_bindgen::JsValue;

use super::SyncObject;
use crate::core::{Conn, Done, Reply};
use crate::hooks::SyncHooks;
use crate::protocol::{decode_client_message, ClientMessage, Operation, Transport};
use crate::rpc::{self, Value};

/// What `rpc` returns: bytes for Push and Ping, the pieces of a stream for a Pull (the JS
/// wrapper turns them into a `ReadableStream`, one enqueued piece each, as the reference).
pub enum RpcReply {
    /// One msgpack message array.
    Bytes(Vec<u8>),
    /// One msgpack message array per stream element, the `Exit` last.
    Stream(Vec<Vec<u8>>),
}

impl RpcReply {
    /// What the `rpc` export of a Durable Object class returns to JavaScript: a `Uint8Array`,
    /// or an array of them for a stream (`src/worker-entry.mjs` makes that a `ReadableStream`).
    pub fn into_js(self) -> JsValue {
        let bytes = |b: &[u8]| JsValue::from(js_sys::Uint8Array::from(b));
        match self {
            RpcReply::Bytes(b) => bytes(&b),
            RpcReply::Stream(pieces) => pieces.iter().map(|p| bytes(p)).collect::<js_sys::Array>().into(),
        }
    }
}

/// A reply of the core as a `SyncDoRpc` message, in the field order the reference's schemas
/// encode, so the bytes are the reference's.
fn message(reply: Reply<'_>) -> Value {
    match reply {
        Reply::Page { request_id, page } => rpc::chunk(request_id, rpc::pull_page(page, request_id)),
        Reply::Exit { request_id, result } => match result {
            Ok(Done::Pushed) => rpc::exit_success(request_id, Value::Object(Vec::new())),
            // `Void` results (a stream's end, Ping) are `undefined`.
            Ok(Done::Pulled | Done::Pong) => rpc::exit_success(request_id, Value::Undefined),
            Err(error) => rpc::exit_failure(request_id, &error),
        },
        // Streams over DO RPC end on their own, and there is no envelope ping: neither occurs.
        Reply::Interrupted { request_id } => rpc::exit_success(request_id, Value::Undefined),
        Reply::Defect(message) => rpc::defect(message),
        Reply::Pong => Value::Undefined,
    }
}

/// Whether a message is a pull, which a lone request answers as a stream.
fn is_pull(text: &str) -> bool {
    matches!(
        decode_client_message(text),
        Ok(ClientMessage::Request(request)) if Transport::DoRpc.operation(&request.tag) == Some(Operation::Pull)
    )
}

impl<H: SyncHooks> SyncObject<H> {
    /// The object's `rpc(payload)` method: one msgpack-encoded Effect RPC request array.
    pub async fn rpc(&self, payload: &[u8]) -> RpcReply {
        let sync = match &self.sync {
            Ok(sync) => sync,
            Err(e) => return RpcReply::Bytes(rpc::encode_reply(rpc::defect(&e.to_string()))),
        };
        let conn = Conn {
            transport: Transport::DoRpc,
            store_id: None,
            headers: &[],
            socket: None,
            read_only: false,
        };
        let mut replies = Vec::new();
        let messages = match rpc::decode_request(payload) {
            Ok(messages) => messages,
            Err(e) => {
                let text = format!("undecodable request: {e}");
                let mut out = |reply: Reply<'_>| replies.push(message(reply));
                sync.core
                    .refuse_undecodable(&conn, payload.len(), "InvalidMessage", &text, &mut out);
                return RpcReply::Bytes(rpc::encode_reply(replies.pop().unwrap_or(Value::Undefined)));
            }
        };
        if let [text] = messages.as_slice() {
            if is_pull(text) {
                // A lone pull is answered as a stream, as the reference does.
                let mut elements = Vec::new();
                sync.core
                    .handle(text, &conn, &mut |reply| {
                        elements.push(rpc::encode_reply(message(reply)))
                    })
                    .await;
                return RpcReply::Stream(elements);
            }
        }
        for text in &messages {
            sync.core
                .handle(text, &conn, &mut |reply| replies.push(message(reply)))
                .await;
        }
        // Several replies go in one array, as the reference's `parser.encode(responses)`.
        RpcReply::Bytes(rpc::msgpack::encode(&Value::Array(replies)))
    }
}
