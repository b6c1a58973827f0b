//! A Worker of your own with LiveStore sync inside it:
//!
//! - sync is mounted at `/sync` only (`makeWsSync({ url: 'wss://…/sync' })`), beside a route of
//!   the app's own (`GET /health`); anything else is `404`;
//! - an `on_push` hook refuses events named `v1.Forbidden…`, and every push from a client whose
//!   upgrade or HTTP request carried `x-read-only: true` (a header forwarded to the hooks by
//!   `FORWARD_HEADERS` in `wrangler.toml`); the client gets a typed `UnknownError` carrying the
//!   hook's message, and nothing is stored;
//! - an `on_pull` hook refuses clients whose sync payload says `"role": "banned"`;
//! - `on_push_res` and `on_pull_res` log every push outcome and every page sent (see
//!   `wrangler tail`);
//! - a `validate_payload` hook only admits store ids that start with `app-`.
//!
//! The Durable Object class is the library's `SyncObject` with these hooks, wrapped in a class of
//! this crate.

use livestore_sync::protocol::{Cursor, EventIn, SyncError};
use livestore_sync::{
    handle_sync_request, match_sync_request, ConnectContext, HookError, RequestContext, SyncHooks, SyncObject,
};
use worker::{
    durable_object, event, Context, DurableObject, Env, Request, Response, Result, State, WebSocket,
    WebSocketIncomingMessage,
};

/// This app's rules for what may be synced.
pub struct Moderation;

impl SyncHooks for Moderation {
    // `on_pull_res` below logs every page, including those of pushes no live pull receives.
    const OBSERVES_PAGES: bool = true;

    async fn validate_payload(
        &self,
        _payload: Option<&serde_json::Value>,
        ctx: &ConnectContext<'_>,
    ) -> std::result::Result<(), HookError> {
        if ctx.store_id.starts_with("app-") {
            Ok(())
        } else {
            Err(HookError::new("store ids must start with app-"))
        }
    }

    async fn on_push(&self, batch: &[EventIn<'_>], ctx: &RequestContext<'_>) -> std::result::Result<(), HookError> {
        if ctx.header("x-read-only") == Some("true") {
            return Err(HookError::new("this client is read-only"));
        }
        match batch.iter().find(|event| event.name.starts_with("v1.Forbidden")) {
            Some(event) => Err(HookError::new(format!("events named {} are not accepted", event.name))),
            None => Ok(()),
        }
    }

    async fn on_push_res(&self, outcome: std::result::Result<(), &SyncError>, ctx: &RequestContext<'_>) {
        worker::console_log!(
            "{}",
            serde_json::json!({ "event": "app_push_result", "storeId": ctx.store_id, "ok": outcome.is_ok() })
        );
    }

    fn on_pull_res(&self, page: &str, ctx: &RequestContext<'_>) {
        worker::console_log!(
            "{}",
            serde_json::json!({ "event": "app_pull_page", "storeId": ctx.store_id, "bytes": page.len() })
        );
    }

    async fn on_pull(
        &self,
        _cursor: Option<&Cursor>,
        _live: bool,
        ctx: &RequestContext<'_>,
    ) -> std::result::Result<(), HookError> {
        match ctx.payload_json() {
            Some(payload) if payload["role"] == "banned" => Err(HookError::new("banned clients may not pull")),
            _ => Ok(()),
        }
    }
}

/// The sync Durable Object, with this app's hooks.
#[durable_object(websocket)]
pub struct SyncBackendDO {
    // Shared, so that a WebSocket frame that must wait keeps the object (`webSocketMessageNow`).
    inner: std::rc::Rc<SyncObject<Moderation>>,
}

impl DurableObject for SyncBackendDO {
    fn new(state: State, env: Env) -> Self {
        SyncBackendDO {
            inner: std::rc::Rc::new(SyncObject::new(state, env, Moderation)),
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

/// Durable Object RPC for LiveStore clients in other Durable Objects (`makeDoRpcSync`);
/// `src/worker-entry.mjs` (the library's, linked) gives the class the `DurableObject` base the
/// runtime requires for it.
#[wasm_bindgen::prelude::wasm_bindgen(wasm_bindgen_futures = worker::wasm_bindgen_futures, js_sys = worker::js_sys)]
impl SyncBackendDO {
    /// `rpc(payload)`: one msgpack-encoded Effect RPC request array.
    #[wasm_bindgen(js_name = rpc)]
    pub async fn rpc(
        &self,
        payload: worker::js_sys::Uint8Array,
    ) -> std::result::Result<wasm_bindgen::JsValue, wasm_bindgen::JsValue> {
        Ok(self.inner.rpc(&payload.to_vec()).await.into_js())
    }
    /// `webSocketMessageNow(ws, message)`: the WebSocket handler served within the runtime's call
    /// when it can be, which the library's worker-entry.mjs prefers to `webSocketMessage`.
    #[wasm_bindgen(js_name = webSocketMessageNow)]
    pub fn websocket_message_now(
        &self,
        ws: worker::worker_sys::web_sys::WebSocket,
        message: wasm_bindgen::JsValue,
    ) -> wasm_bindgen::JsValue {
        SyncObject::websocket_message_now(&self.inner, ws, message)
    }

    /// The object's alarm, which delivers the store's outbox (`WEBHOOK_URL`, `QUEUE_BINDING`).
    #[wasm_bindgen(js_name = alarm)]
    pub async fn alarm(&self) {
        self.inner.alarm().await;
    }
}

/// The Worker: the app's own routes, and sync at `/sync`.
#[event(fetch)]
pub async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    console_error_panic_hook::set_once();
    let url = req.url()?;
    match url.path() {
        "/health" => Response::from_json(&serde_json::json!({ "ok": true, "service": "custom-worker" })),
        "/sync" => match match_sync_request(&req)? {
            Some(params) => handle_sync_request(req, &env, &ctx, params, &Moderation).await,
            None => Response::error("expected LiveStore sync parameters (storeId, transport)", 400),
        },
        _ => Response::error("Not found", 404),
    }
}
