//! The WASM side of the npm package `livestore-sync-rs` (cargo feature `package`): the classes its
//! JavaScript (`package/cf-worker/index.js`) wraps into `makeDurableObject`, `makeWorker`,
//! `handleSyncRequest` and `matchSyncRequest`.
//!
//! The protocol stays here: the JavaScript only turns the user's options into JSON and the
//! user's hooks into plain functions, and hands requests through. Hook arguments cross as JSON
//! text (parsed on the JavaScript side into what the reference passes), and a hook's failure
//! comes back as a rejected promise whose value is the message.

// `#[wasm_bindgen]` generates the JavaScript-facing items without doc comments.
#![allow(missing_docs)]

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Array, Function, JsString, Promise, Uint8Array};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use worker::{Context, Env, State};

use crate::config::{Config, ConfigError};
use crate::hooks::{ConnectContext, HookError, RequestContext, SyncHooks};
use crate::object::SyncObject;
use crate::options::{vars_from_options, PACKAGE_DEFAULTS};
use crate::protocol::{Cursor, EventIn, SyncError, Transport};
use crate::router::SyncParams;

/// The vars a package object runs with, from its options' JSON.
fn option_vars(options_json: &str) -> Result<Vec<(&'static str, String)>, ConfigError> {
    let options: Value = serde_json::from_str(options_json).map_err(|_| ConfigError {
        name: "livestore-sync-rs options",
        value: options_json.chars().take(200).collect(),
        expected: "JSON (the package's JavaScript sends it)",
    })?;
    vars_from_options(&options)
}

fn config_for(env: &Env, vars: &Result<Vec<(&'static str, String)>, ConfigError>) -> Result<Rc<Config>, ConfigError> {
    let vars = vars.clone()?;
    Config::from_env_with(env, &vars, PACKAGE_DEFAULTS).map(Rc::new)
}

/// The user's hooks, as the package's JavaScript wraps them (each absent when not given).
#[derive(Default)]
pub struct JsHooks {
    validate_payload: Option<Function>,
    on_push: Option<Function>,
    on_pull: Option<Function>,
    on_push_res: Option<Function>,
    on_pull_res: Option<Function>,
}

impl JsHooks {
    fn from_js(hooks: &JsValue) -> JsHooks {
        let get = |name: &str| crate::js::method(hooks, name);
        JsHooks {
            validate_payload: get("validatePayload"),
            on_push: get("onPush"),
            on_pull: get("onPull"),
            on_push_res: get("onPushRes"),
            on_pull_res: get("onPullRes"),
        }
    }
}

/// Calls a wrapped hook with `args` and waits for the promise it returns; a throw or a
/// rejection is the hook's refusal, its value the message.
async fn call(hook: &Function, args: &[JsValue]) -> Result<(), HookError> {
    let args: Array = args.iter().collect();
    let outcome = match hook.apply(&JsValue::NULL, &args) {
        Ok(value) => match value.dyn_into::<Promise>() {
            Ok(promise) => worker::wasm_bindgen_futures::JsFuture::from(promise).await.map(|_| ()),
            Err(_) => Ok(()),
        },
        Err(e) => Err(e),
    };
    outcome.map_err(|e| HookError::new(crate::js::error_message(&e)))
}

fn text(s: &str) -> JsValue {
    JsValue::from_str(s)
}

fn optional_text(s: Option<String>) -> JsValue {
    s.map_or(JsValue::UNDEFINED, |s| JsValue::from_str(&s))
}

/// The request's store, payload and forwarded headers, as the hooks' arguments.
fn context_args(ctx: &RequestContext<'_>) -> [JsValue; 3] {
    let headers = (!ctx.headers.is_empty()).then(|| serde_json::to_string(ctx.headers).unwrap_or_default());
    [
        text(ctx.store_id),
        optional_text(ctx.payload.map(|p| p.get().to_owned())),
        optional_text(headers),
    ]
}

/// An event as the reference's `onPush` sees it in `message.batch`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HookEvent<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    args: Option<&'a RawValue>,
    seq_num: i64,
    parent_seq_num: i64,
    client_id: &'a str,
    session_id: &'a str,
}

impl SyncHooks for JsHooks {
    fn observes_pages(&self) -> bool {
        self.on_pull_res.is_some()
    }

    async fn validate_payload(&self, payload: Option<&Value>, ctx: &ConnectContext<'_>) -> Result<(), HookError> {
        let Some(hook) = &self.validate_payload else {
            return Ok(());
        };
        call(
            hook,
            &[optional_text(payload.map(Value::to_string)), text(ctx.store_id)],
        )
        .await
    }

    async fn on_push(&self, batch: &[EventIn<'_>], ctx: &RequestContext<'_>) -> Result<(), HookError> {
        let Some(hook) = &self.on_push else {
            return Ok(());
        };
        let events: Vec<HookEvent<'_>> = batch
            .iter()
            .map(|e| HookEvent {
                name: &e.name,
                args: e.args,
                seq_num: e.seq_num.0,
                parent_seq_num: e.parent_seq_num.0,
                client_id: &e.client_id,
                session_id: &e.session_id,
            })
            .collect();
        let batch = serde_json::to_string(&events).unwrap_or_else(|_| "[]".to_owned());
        let [store, payload, headers] = context_args(ctx);
        call(hook, &[text(&batch), store, payload, headers]).await
    }

    async fn on_pull(&self, cursor: Option<&Cursor>, live: bool, ctx: &RequestContext<'_>) -> Result<(), HookError> {
        let Some(hook) = &self.on_pull else {
            return Ok(());
        };
        let cursor = cursor.map(|c| {
            serde_json::json!({ "backendId": c.backend_id, "eventSequenceNumber": c.event_sequence_number.0 })
                .to_string()
        });
        let [store, payload, headers] = context_args(ctx);
        call(
            hook,
            &[optional_text(cursor), JsValue::from_bool(live), store, payload, headers],
        )
        .await
    }

    async fn on_push_res(&self, outcome: Result<(), &SyncError>, ctx: &RequestContext<'_>) {
        let Some(hook) = &self.on_push_res else {
            return;
        };
        let error = outcome.err().map(SyncError::to_json);
        let [store, ..] = context_args(ctx);
        // An observer: what it throws changes nothing the client sees.
        let _ = call(hook, &[optional_text(error), store]).await;
    }

    fn on_pull_res(&self, page: &str, ctx: &RequestContext<'_>) {
        if let Some(hook) = &self.on_pull_res {
            // Synchronous, while pages are written out: the hook's promise is not awaited.
            let _ = hook.call2(&JsValue::NULL, &text(page), &text(ctx.store_id));
        }
    }
}

/// `makeDurableObject`'s object: one per store, over the Rust sync core.
#[wasm_bindgen]
pub struct SyncStoreObject {
    /// Shared, so that a WebSocket frame that must wait keeps the object.
    inner: std::rc::Rc<SyncObject<JsHooks>>,
}

#[wasm_bindgen(wasm_bindgen_futures = worker::wasm_bindgen_futures)]
impl SyncStoreObject {
    /// `new SyncStoreObject(ctx, env, optionsJson, hooks, forwardHeaders?)`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        state: worker::worker_sys::DurableObjectState,
        env: Env,
        options_json: String,
        hooks: JsValue,
        forward_headers: Option<Function>,
    ) -> SyncStoreObject {
        console_error_panic_hook::set_once();
        let config = config_for(&env, &option_vars(&options_json));
        let mut inner = SyncObject::with_config(State::from(state), env, config, JsHooks::from_js(&hooks));
        if let Some(extract) = forward_headers {
            inner = inner.with_header_extractor(Box::new(move |req: &worker::Request| {
                let pairs = extract.call1(&JsValue::NULL, req.inner()).unwrap_or(JsValue::UNDEFINED);
                Array::from(&pairs)
                    .iter()
                    .filter_map(|pair| {
                        let pair = Array::from(&pair);
                        Some((pair.get(0).as_string()?.to_ascii_lowercase(), pair.get(1).as_string()?))
                    })
                    .collect()
            }));
        }
        SyncStoreObject {
            inner: std::rc::Rc::new(inner),
        }
    }

    /// Checks an options object (its JSON) as the constructors (this one and [`SyncWorker`]'s)
    /// will read it, so a mistake throws when the Worker's module loads rather than on the first
    /// request.
    #[wasm_bindgen(js_name = checkOptions)]
    pub fn check_options(options_json: &str) -> Result<(), JsValue> {
        option_vars(options_json)
            .map(|_| ())
            .map_err(|e| js_sys::Error::new(&e.to_string()).into())
    }

    #[wasm_bindgen(js_name = fetch)]
    pub async fn fetch(&self, req: worker::worker_sys::web_sys::Request) -> Result<JsValue, JsValue> {
        self.inner
            .fetch(req.into())
            .await
            .map(worker::worker_sys::web_sys::Response::from)
            .map(JsValue::from)
            .map_err(JsValue::from)
    }

    #[wasm_bindgen(js_name = webSocketMessage)]
    pub fn websocket_message(&self, ws: worker::worker_sys::web_sys::WebSocket, message: JsValue) -> JsValue {
        SyncObject::websocket_message_now(&self.inner, ws, message)
    }

    #[wasm_bindgen(js_name = webSocketClose)]
    pub async fn websocket_close(
        &self,
        ws: worker::worker_sys::web_sys::WebSocket,
        code: usize,
        reason: String,
        was_clean: bool,
    ) -> Result<JsValue, JsValue> {
        self.inner
            .websocket_close(ws.into(), code, reason, was_clean)
            .await
            .map(|_| JsValue::NULL)
            .map_err(JsValue::from)
    }

    #[wasm_bindgen(js_name = webSocketError)]
    pub async fn websocket_error(
        &self,
        ws: worker::worker_sys::web_sys::WebSocket,
        error: JsValue,
    ) -> Result<JsValue, JsValue> {
        self.inner
            .websocket_error(ws.into(), error.into())
            .await
            .map(|_| JsValue::NULL)
            .map_err(JsValue::from)
    }

    /// `rpc(payload)`: one msgpack-encoded Effect RPC request array from `makeDoRpcSync`.
    /// Resolves to a `Uint8Array`, or to an array of them for a stream.
    #[wasm_bindgen(js_name = rpc)]
    pub async fn rpc(&self, payload: Uint8Array) -> Result<JsValue, JsValue> {
        let payload = payload.to_vec();
        Ok(std::panic::AssertUnwindSafe(self.inner.rpc(&payload)).await.into_js())
    }
    /// The object's alarm, which delivers the store's outbox.
    #[wasm_bindgen(js_name = alarm)]
    pub async fn alarm(&self) {
        self.inner.alarm().await;
    }
}

/// `makeWorker`'s and `handleSyncRequest`'s Worker side: admission, the hooks that run there,
/// and forwarding to the store's object.
#[wasm_bindgen]
pub struct SyncWorker {
    vars: Result<Vec<(&'static str, String)>, ConfigError>,
    /// Read on the first request: the vars are only known then, and do not change in an isolate.
    config: RefCell<Option<Result<Rc<Config>, ConfigError>>>,
}

impl SyncWorker {
    fn config(&self, env: &Env) -> Result<Rc<Config>, ConfigError> {
        self.config
            .borrow_mut()
            .get_or_insert_with(|| config_for(env, &self.vars))
            .clone()
    }
}

#[wasm_bindgen]
impl SyncWorker {
    /// `new SyncWorker(optionsJson)`; throws on options it cannot read.
    #[wasm_bindgen(constructor)]
    pub fn new(options_json: String) -> Result<SyncWorker, JsValue> {
        console_error_panic_hook::set_once();
        let vars = option_vars(&options_json);
        if let Err(e) = &vars {
            return Err(js_sys::Error::new(&e.to_string()).into());
        }
        Ok(SyncWorker {
            vars,
            config: RefCell::new(None),
        })
    }

    /// The whole Worker, as `makeWorker`'s `fetch`: `hooks` holds `validatePayload` for this
    /// request. Returns at once with the response's promise, so no request holds this object.
    #[wasm_bindgen(js_name = fetch)]
    pub fn fetch(
        &self,
        req: worker::worker_sys::web_sys::Request,
        env: Env,
        ctx: worker::worker_sys::Context,
        hooks: JsValue,
    ) -> Promise {
        let config = self.config(&env);
        worker::wasm_bindgen_futures::future_to_promise(async move {
            crate::entry::handle_fetch_with(req.into(), &env, &Context::new(ctx), config, &JsHooks::from_js(&hooks))
                .await
                .map(worker::worker_sys::web_sys::Response::from)
                .map(JsValue::from)
                .map_err(JsValue::from)
        })
    }

    /// `handleSyncRequest`: `search_params` as `matchSyncRequest` gave them (JSON),
    /// `headers_json` the extra headers of the Worker's own answers.
    #[wasm_bindgen(js_name = handleSyncRequest)]
    pub fn handle_sync_request(
        &self,
        req: worker::worker_sys::web_sys::Request,
        env: Env,
        ctx: worker::worker_sys::Context,
        search_params: String,
        headers_json: Option<String>,
        hooks: JsValue,
    ) -> Result<Promise, JsValue> {
        let Some(params) = sync_params(&search_params) else {
            return Err(js_sys::Error::new(
                "handleSyncRequest: searchParams must be what matchSyncRequest returned ({ storeId, transport, payload })",
            )
            .into());
        };
        let headers: Vec<(String, String)> = headers_json
            .and_then(|h| serde_json::from_str::<serde_json::Map<String, Value>>(&h).ok())
            .map(|h| {
                h.into_iter()
                    .filter_map(|(name, value)| Some((name, value.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let config = self.config(&env);
        Ok(worker::wasm_bindgen_futures::future_to_promise(async move {
            crate::entry::handle_sync_request_with(
                req.into(),
                &env,
                &Context::new(ctx),
                config,
                params,
                &JsHooks::from_js(&hooks),
                &headers,
            )
            .await
            .map(worker::worker_sys::web_sys::Response::from)
            .map(JsValue::from)
            .map_err(JsValue::from)
        }))
    }

    /// `matchSyncRequest`: the sync parameters of a request URL's query as JSON
    /// (`{ storeId, transport, payload }`), or `undefined` when it is no sync request.
    #[wasm_bindgen(js_name = matchSyncRequest)]
    pub fn match_sync_request(url: &str) -> Option<JsString> {
        let query = url.split_once('?').map(|(_, q)| q.split('#').next().unwrap_or(q));
        let params = crate::router::match_sync_request(query)?;
        let mut out = serde_json::json!({ "storeId": params.store_id, "transport": params.transport.as_str() });
        if let Some(payload) = params.payload {
            out["payload"] = payload;
        }
        Some(JsString::from(out.to_string()))
    }
}

fn sync_params(json: &str) -> Option<SyncParams> {
    let value: Value = serde_json::from_str(json).ok()?;
    let transport = match value.get("transport")?.as_str()? {
        "ws" => Transport::Ws,
        "http" => Transport::Http,
        _ => return None,
    };
    Some(SyncParams {
        store_id: value.get("storeId")?.as_str()?.to_owned(),
        transport,
        payload: value.get("payload").filter(|p| !p.is_null()).cloned(),
    })
}
