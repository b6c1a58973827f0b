//! The stock Worker's Durable Object class: [`SyncObject`] without hooks.
//!
//! The class name matches the reference's documented `SyncBackendDO`, so an existing deployment
//! keeps its Durable Objects, and with them its data, when it switches.

// `#[durable_object]` generates the JavaScript-facing methods without doc comments.
#![allow(missing_docs)]

use worker::{
    durable_object, DurableObject, Env, Request, Response, Result, State, WebSocket, WebSocketIncomingMessage,
};

use std::rc::Rc;

use crate::hooks::NoHooks;
use crate::object::SyncObject;
use wasm_bindgen::JsValue;

/// The sync Durable Object; one instance per storeId.
#[durable_object(websocket)]
pub struct SyncBackendDO {
    /// Shared, so that a WebSocket frame that must wait keeps the object ([`Self::websocket_message_now`]).
    inner: Rc<SyncObject<NoHooks>>,
}

impl DurableObject for SyncBackendDO {
    fn new(state: State, env: Env) -> Self {
        SyncBackendDO {
            inner: Rc::new(SyncObject::new(state, env, NoHooks)),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        self.inner.fetch(req).await
    }

    async fn websocket_message(&self, ws: WebSocket, message: WebSocketIncomingMessage) -> Result<()> {
        self.inner.websocket_message(ws, message).await
    }

    async fn websocket_close(&self, ws: WebSocket, code: usize, reason: String, was_clean: bool) -> Result<()> {
        self.inner.websocket_close(ws, code, reason, was_clean).await
    }

    async fn websocket_error(&self, ws: WebSocket, error: worker::Error) -> Result<()> {
        self.inner.websocket_error(ws, error).await
    }
}

/// Durable Object RPC. The runtime only lets callers reach methods of a class that extends
/// `DurableObject`, which worker-build's generated class does not; `src/worker-entry.mjs` declares one
/// that forwards `rpc` here (and turns a stream reply into a `ReadableStream`).
#[wasm_bindgen::prelude::wasm_bindgen(wasm_bindgen_futures = worker::wasm_bindgen_futures)]
impl SyncBackendDO {
    /// `rpc(payload)`: one msgpack-encoded Effect RPC request array from `makeDoRpcSync`.
    /// Resolves to a `Uint8Array`, or to an array of them for a stream.
    #[wasm_bindgen(js_name = rpc)]
    pub async fn rpc(&self, payload: js_sys::Uint8Array) -> std::result::Result<JsValue, JsValue> {
        let payload = payload.to_vec();
        Ok(std::panic::AssertUnwindSafe(self.inner.rpc(&payload)).await.into_js())
    }

    /// `webSocketMessageNow(ws, message)`: the `webSocketMessage` handler without an async
    /// method's `Promise` and microtask for a frame served at once; `src/worker-entry.mjs` calls
    /// it.
    #[wasm_bindgen(js_name = webSocketMessageNow)]
    pub fn websocket_message_now(&self, ws: worker::worker_sys::web_sys::WebSocket, message: JsValue) -> JsValue {
        SyncObject::websocket_message_now(&self.inner, ws, message)
    }

    /// The object's alarm, which delivers the store's outbox. Declared here rather than through
    /// `#[durable_object]`, which binds either the WebSocket handlers or the alarm, not both.
    #[wasm_bindgen(js_name = alarm)]
    pub async fn alarm(&self) {
        self.inner.alarm().await;
    }
}
