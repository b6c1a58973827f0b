//! The sync core's [`Host`] in a Durable Object: the Workers runtime's clock and randomness,
//! console logs, span export under `waitUntil`, socket attachments, and the calls that deliver
//! live pulls' batches.

use js_sys::{Promise, Reflect};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{web_sys, Env, State, WebSocket};

use super::ws::attachment;
use crate::config::OtelConfig;
use crate::core::{Host, LiveSocket, UpdateFailure};
use crate::js::{error_message, method, new_backend_id, now_millis, post_json, random_bytes};
use crate::log::{self, Line, LogLevel};
use crate::otel::{export_body, Span};
use crate::outbox::{SinkConfig, SinkMessage, Target};
use crate::protocol::server;
use crate::protocol::CallerContext;

/// The runtime around one store's object.
pub struct DoHost {
    state: State,
    env: Env,
    otel: Option<OtelConfig>,
    log_level: LogLevel,
    /// The Durable Object binding the store directory's object is reached through.
    binding: String,
    /// The R2 binding backups go to, if any.
    backup_binding: Option<String>,
    /// Per socket, `[window start in seconds, pushes in it]` for `MAX_PUSHES_PER_SECOND`. A weak
    /// map, so closed sockets need no bookkeeping; it is lost on eviction, which only resets
    /// the current window.
    push_windows: js_sys::WeakMap,
    /// The live sockets grouped by request id, as JavaScript arrays, for the socket index's
    /// generation they were built from.
    send_groups: std::cell::RefCell<Option<SendGroups>>,
}

/// Live sockets by the request id their pull has: a frame names its request, so each group gets
/// its own frames, sent to all of the group's sockets in one call into JavaScript.
struct SendGroups {
    generation: u64,
    groups: Vec<(String, js_sys::Array)>,
}

impl SendGroups {
    /// Groups the sockets by request id, in the order the ids first appear.
    fn build(sockets: &[LiveSocket<WebSocket>], generation: u64) -> Self {
        let mut groups: Vec<(String, js_sys::Array)> = Vec::new();
        let mut by_id: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for entry in sockets {
            let socket: &JsValue = AsRef::<web_sys::WebSocket>::as_ref(&entry.socket);
            for id in &entry.pulls {
                let at = *by_id.entry(id.as_str()).or_insert_with(|| {
                    groups.push((id.clone(), js_sys::Array::new()));
                    groups.len() - 1
                });
                groups[at].1.push(socket);
            }
        }
        SendGroups { generation, groups }
    }
}

impl DoHost {
    /// The host of the object with this state and environment.
    pub fn new(state: State, env: Env, config: &crate::config::Config) -> Self {
        DoHost {
            state,
            env,
            otel: config.otel.clone(),
            log_level: config.log_level,
            binding: config.binding.clone(),
            backup_binding: config.backup.as_ref().map(|b| b.bucket.clone()),
            push_windows: js_sys::WeakMap::new(),
            send_groups: std::cell::RefCell::new(None),
        }
    }

    /// The object's state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The Worker's environment.
    pub fn env(&self) -> &Env {
        &self.env
    }

    /// The `BACKUP_BUCKET` binding.
    fn backup_bucket(&self) -> Result<worker::Bucket, String> {
        let name = self.backup_binding.as_deref().ok_or("BACKUP_BUCKET is not set")?;
        self.env
            .bucket(name)
            .map_err(|_| format!("{name} (BACKUP_BUCKET) is not an R2 bucket binding of this Worker"))
    }
}

// A frame goes to every socket of a group in one call: a call from WASM into JavaScript per
// socket cost more than the sends themselves in fan-out profiles. A socket that is already closing
// cannot be helped, and the others must still be served, so a failed send is skipped.
#[wasm_bindgen(
    inline_js = "export function sendToAll(sockets, frame) { for (const socket of sockets) { try { socket.send(frame) } catch {} } }"
)]
extern "C" {
    #[wasm_bindgen(js_name = sendToAll)]
    fn send_to_all(sockets: &js_sys::Array, frame: &JsValue);
}

impl Host for DoHost {
    type Socket = WebSocket;

    fn now_millis(&self) -> i64 {
        now_millis()
    }

    fn new_backend_id(&self) -> String {
        new_backend_id()
    }

    fn random_span_ids(&self) -> [u8; 24] {
        random_bytes()
    }

    fn log(&self, line: Line) {
        log::emit(line);
    }

    fn export_span(&self, span: Span) {
        if let Some(otel) = &self.otel {
            let url = format!("{}/v1/traces", otel.endpoint);
            self.state
                .wait_until(post_json(url, export_body(&otel.service_name, &[span]), self.log_level));
        }
    }

    fn live_sockets(&self) -> Vec<LiveSocket<WebSocket>> {
        self.state
            .get_websockets()
            .into_iter()
            .filter_map(|socket| {
                let pulls = attachment(&socket)?.live_pulls;
                (!pulls.is_empty()).then_some(LiveSocket { socket, pulls })
            })
            .collect()
    }

    fn save_live_pulls(&self, socket: &WebSocket, pulls: &[String]) -> Result<(), String> {
        let mut att = attachment(socket).ok_or("the connection has no store attached")?;
        att.live_pulls = pulls.to_vec();
        socket.serialize_attachment(&att).map_err(|e| e.to_string())
    }

    fn count_push(&self, socket: &WebSocket, second: i64) -> u32 {
        let key: &js_sys::Object = AsRef::<web_sys::WebSocket>::as_ref(socket).unchecked_ref();
        let second = second as f64;
        let entry = self.push_windows.get(key);
        let window = entry
            .dyn_ref::<js_sys::Array>()
            .filter(|w| w.get(0).as_f64() == Some(second));
        let count = window.as_ref().and_then(|w| w.get(1).as_f64()).unwrap_or(0.0) + 1.0;
        match window {
            Some(w) => w.set(1, JsValue::from_f64(count)),
            None => {
                self.push_windows.set(
                    key,
                    &js_sys::Array::of2(&JsValue::from_f64(second), &JsValue::from_f64(count)),
                );
            }
        }
        count as u32
    }

    fn send_pages(&self, sockets: &[LiveSocket<WebSocket>], generation: u64, pages: &[String]) {
        // Clients number requests independently, so many live pulls share an id; each frame is
        // built, and converted to a JavaScript string, once per distinct id, and the groups are
        // rebuilt only when the sockets or their pulls change.
        let mut cache = self.send_groups.borrow_mut();
        if cache.as_ref().is_none_or(|groups| groups.generation != generation) {
            *cache = Some(SendGroups::build(sockets, generation));
        }
        let Some(groups) = cache.as_ref() else { return };
        // Page by page, so each socket receives its pages in order.
        for (id, group) in &groups.groups {
            for page in pages {
                send_to_all(group, &JsValue::from_str(&server::chunk(id, page)));
            }
        }
    }

    fn close_sockets(&self, code: u16, reason: &str) -> usize {
        let sockets = self.state.get_websockets();
        for socket in &sockets {
            let _ = socket.close(Some(code), Some(reason));
        }
        sockets.len()
    }

    fn socket_count(&self) -> usize {
        self.state.get_websockets().len()
    }

    fn sync_update(
        &self,
        caller: &CallerContext,
        request_id: &str,
        page: &str,
    ) -> futures::future::LocalBoxFuture<'static, Result<(), UpdateFailure>> {
        let env = self.env.clone();
        let caller = caller.clone();
        let argument = crate::rpc::sync_update_json(request_id, page);
        Box::pin(async move { call_sync_update(&env, &caller, &argument).await })
    }

    fn spawn(&self, task: futures::future::LocalBoxFuture<'static, ()>) {
        self.state.wait_until(task);
    }

    fn sleep(&self, ms: u64) -> futures::future::LocalBoxFuture<'static, ()> {
        Box::pin(worker::Delay::from(std::time::Duration::from_millis(ms)))
    }

    fn set_alarm(&self, at_millis: i64) {
        // Called now, not when a future is first polled: the alarm is then written with the
        // batch that made it due, under the same output gate.
        let storage = self.state.storage();
        let storage: &JsValue = storage.as_raw().as_ref();
        let called = method(storage, "setAlarm")
            .ok_or_else(|| JsValue::from_str("storage.setAlarm is not a function"))
            .and_then(|set| set.call1(storage, &JsValue::from_f64(at_millis as f64)));
        let log_level = self.log_level;
        let failed = move |e: &JsValue| {
            if let Some(line) = log_level.line(crate::log::Level::Error, "alarm_failed") {
                log::emit(line.str("error", &error_message(e)));
            }
        };
        match called {
            Ok(promise) => worker::wasm_bindgen_futures::spawn_local(async move {
                if let Err(e) = JsFuture::from(Promise::resolve(&promise)).await {
                    failed(&e);
                }
            }),
            Err(e) => failed(&e),
        }
    }

    fn tell_directory(
        &self,
        store_id: &str,
        entry: Option<&crate::directory::Entry>,
    ) -> futures::future::LocalBoxFuture<'static, Result<(), String>> {
        let env = self.env.clone();
        let binding = self.binding.clone();
        let (path, body) = match entry {
            Some(entry) => ("/update".to_owned(), serde_json::to_string(entry).ok()),
            None => (format!("/remove{}", store_query(store_id)), None),
        };
        Box::pin(async move {
            match call_directory(&env, &binding, worker::Method::Post, &path, body).await? {
                (status, _) if (200..300).contains(&status) => Ok(()),
                (status, text) => Err(format!("HTTP {status}: {text}")),
            }
        })
    }

    fn directory_entry(
        &self,
        store_id: &str,
    ) -> futures::future::LocalBoxFuture<'static, Result<Option<crate::directory::Entry>, String>> {
        let env = self.env.clone();
        let binding = self.binding.clone();
        let path = format!("/entry{}", store_query(store_id));
        Box::pin(async move {
            match call_directory(&env, &binding, worker::Method::Get, &path, None).await? {
                (200, text) => serde_json::from_str(&text).map(Some).map_err(|e| e.to_string()),
                (404, _) => Ok(None),
                (status, text) => Err(format!("HTTP {status}: {text}")),
            }
        })
    }

    fn wipe_object(&self) -> futures::future::LocalBoxFuture<'static, Result<(), String>> {
        let storage = self.state.storage();
        Box::pin(async move {
            storage.delete_alarm().await.map_err(|e| e.to_string())?;
            storage.delete_all().await.map_err(|e| e.to_string())
        })
    }

    fn backup_list(
        &self,
        prefix: &str,
    ) -> futures::future::LocalBoxFuture<'static, Result<Vec<(String, i64)>, String>> {
        let bucket = self.backup_bucket();
        let prefix = prefix.to_owned();
        Box::pin(async move {
            let bucket = bucket?;
            let mut names = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut list = bucket.list().prefix(prefix.clone());
                if let Some(c) = cursor.take() {
                    list = list.cursor(c);
                }
                let page = list.execute().await.map_err(|e| e.to_string())?;
                for object in page.objects() {
                    names.push((object.key(), object.uploaded().as_millis() as i64));
                }
                match page.cursor().filter(|_| page.truncated()) {
                    Some(next) => cursor = Some(next),
                    None => return Ok(names),
                }
            }
        })
    }

    fn backup_put(&self, key: &str, body: String) -> futures::future::LocalBoxFuture<'static, Result<(), String>> {
        let bucket = self.backup_bucket();
        let key = key.to_owned();
        Box::pin(async move {
            bucket?
                .put(key, body)
                .execute()
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }

    fn backup_get(&self, key: &str) -> futures::future::LocalBoxFuture<'static, Result<Option<String>, String>> {
        let bucket = self.backup_bucket();
        let key = key.to_owned();
        Box::pin(async move {
            let Some(object) = bucket?.get(key).execute().await.map_err(|e| e.to_string())? else {
                return Ok(None);
            };
            match object.body() {
                Some(body) => body.text().await.map(Some).map_err(|e| e.to_string()),
                None => Ok(Some(String::new())),
            }
        })
    }

    fn send_to_sink(
        &self,
        sink: &SinkConfig,
        message: SinkMessage,
    ) -> futures::future::LocalBoxFuture<'static, Result<Option<u16>, String>> {
        match &sink.target {
            Target::Webhook { url, .. } => {
                let url = url.clone();
                let timeout_ms = sink.timeout_ms;
                Box::pin(async move { post_webhook(&url, message, timeout_ms).await.map(Some) })
            }
            Target::Queue { binding } => {
                let env = self.env.clone();
                let binding = binding.clone();
                Box::pin(async move { send_to_queue(&env, &binding, &message.body).await.map(|()| None) })
            }
        }
    }
}

/// One request to the store directory's object (`https://livestore-directory/<path>`): its
/// status and body.
async fn call_directory(
    env: &Env,
    binding: &str,
    method: worker::Method,
    path: &str,
    body: Option<String>,
) -> Result<(u16, String), String> {
    let namespace = env.durable_object(binding).map_err(|e| e.to_string())?;
    let stub = namespace
        .id_from_name(crate::directory::OBJECT_NAME)
        .and_then(|id| id.get_stub())
        .map_err(|e| e.to_string())?;
    let mut init = worker::RequestInit::new();
    init.with_method(method);
    if let Some(body) = body {
        init.with_body(Some(JsValue::from_str(&body)));
    }
    let url = format!("https://{}{path}", crate::directory::HOST);
    let request = worker::Request::new_with_init(&url, &init).map_err(|e| e.to_string())?;
    let mut response = stub.fetch_with_request(request).await.map_err(|e| e.to_string())?;
    let text = response.text().await.map_err(|e| e.to_string())?;
    Ok((response.status_code(), text))
}

/// `?storeId=<id>`, encoded.
fn store_query(store_id: &str) -> String {
    let mut query = worker::url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("storeId", store_id);
    format!("?{}", query.finish())
}

/// POSTs a webhook batch; its status, or why there is none. The answer's body is read (and
/// dropped) within the same timeout, so the connection is free for the next batch.
async fn post_webhook(url: &str, message: SinkMessage, timeout_ms: u64) -> Result<u16, String> {
    use futures::future::{select, Either};
    let headers = worker::Headers::new();
    for (name, value) in &message.headers {
        headers.set(name, value).map_err(|e| e.to_string())?;
    }
    let mut init = worker::RequestInit::new();
    init.with_method(worker::Method::Post)
        .with_headers(headers)
        .with_body(Some(JsValue::from_str(&message.body)));
    let request = worker::Request::new_with_init(url, &init).map_err(|e| e.to_string())?;
    let controller = worker::AbortController::default();
    let signal = controller.signal();
    let exchange = async move {
        let mut response = worker::Fetch::Request(request)
            .send_with_signal(&signal)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status_code();
        let _ = response.bytes().await;
        Ok(status)
    };
    let timeout = worker::Delay::from(std::time::Duration::from_millis(timeout_ms));
    match select(Box::pin(exchange), timeout).await {
        Either::Left((answer, _)) => answer,
        Either::Right(((), _)) => {
            controller.abort();
            Err(format!("no answer within {timeout_ms} ms"))
        }
    }
}

/// `env[binding].send(JSON.parse(body))`: one Queue message, the batch as an object.
async fn send_to_queue(env: &Env, binding: &str, body: &str) -> Result<(), String> {
    let env: &JsValue = env.as_ref();
    let queue = Reflect::get(env, &JsValue::from_str(binding)).unwrap_or(JsValue::UNDEFINED);
    let send = method(&queue, "send")
        .ok_or_else(|| format!("{binding} (QUEUE_BINDING) is not a Queue producer binding of this Worker"))?;
    let message = js_sys::JSON::parse(body).map_err(|e| error_message(&e))?;
    let promise = send.call1(&queue, &message).map_err(|e| error_message(&e))?;
    JsFuture::from(Promise::resolve(&promise))
        .await
        .map(|_| ())
        .map_err(|e| error_message(&e))
}

/// `env[bindingName].get(env[bindingName].idFromString(durableObjectId)).syncUpdateRpc(chunk)`.
async fn call_sync_update(env: &Env, caller: &CallerContext, argument: &str) -> Result<(), UpdateFailure> {
    let permanent = |message: String| UpdateFailure {
        permanent: true,
        message,
    };
    let transient = |e: JsValue| UpdateFailure {
        permanent: false,
        message: error_message(&e),
    };
    let env: &JsValue = env.as_ref();
    let namespace = Reflect::get(env, &JsValue::from_str(&caller.binding_name)).unwrap_or(JsValue::UNDEFINED);
    let (Some(id_from_string), Some(get)) = (method(&namespace, "idFromString"), method(&namespace, "get")) else {
        return Err(permanent(format!(
            "{} is not a Durable Object binding of this Worker",
            caller.binding_name
        )));
    };
    let id = id_from_string
        .call1(&namespace, &JsValue::from_str(&caller.durable_object_id))
        .map_err(|e| permanent(error_message(&e)))?;
    let stub = get.call1(&namespace, &id).map_err(|e| permanent(error_message(&e)))?;
    let argument = js_sys::JSON::parse(argument).map_err(transient)?;
    let call = method(&stub, "syncUpdateRpc").ok_or_else(|| UpdateFailure {
        permanent: false,
        message: "the stub has no syncUpdateRpc".into(),
    })?;
    // Reflect.apply, not `call1`: that looks up `.call` on the stub's method, which an RPC stub
    // answers with yet another remote method.
    let promise = Reflect::apply(&call, &stub, &js_sys::Array::of1(&argument)).map_err(transient)?;
    JsFuture::from(Promise::resolve(&promise)).await.map_err(transient)?;
    Ok(())
}
