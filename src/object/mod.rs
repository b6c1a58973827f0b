//! The per-store Durable Object's logic, generic over the user's [`SyncHooks`]: accepts
//! WebSockets in hibernation mode ([`ws`]) and HTTP RPC requests ([`http`]), runs the sync rules
//! against the store's event log, and fans every accepted push out to all live pulls.
//!
//! The stock worker wraps `SyncObject<NoHooks>` in its `SyncBackendDO` class; a Worker of your
//! own wraps `SyncObject<YourHooks>` the same way (see `examples/custom-worker`).
//!
//! The runtime evicts an idle object while its sockets stay open (hibernation), so nothing that
//! must outlive one event lives only in memory: a socket's store, live pull ids and forwarded
//! headers are in its attachment, the head and backendId in SQLite. The in-memory copy of the head
//! is a cache, rebuilt from SQLite on the first event after a wake.

mod admin;
mod http;
mod logs;
pub mod rpc;
mod ws;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use worker::{Env, Request, Response, Result, State, WebSocket, WebSocketIncomingMessage};

use crate::config::{Config, StorageConfig};
use crate::hooks::{RequestContext, SyncHooks};
use crate::js::{new_backend_id, now_millis, post_json, random_bytes};
use crate::log::{self, Level};
use crate::otel::{export_body, Span};
use crate::protocol::server::{self, PING, PONG};
use crate::protocol::{Cursor, PushPayload, RpcRequest, SyncError};
use crate::router::{match_sync_request, Transport};
use crate::storage::d1::D1Log;
use crate::storage::do_sqlite::DoSqliteLog;
use crate::storage::engine::Engine;
use crate::storage::{open_store, StorageError, StoreMeta};
use crate::sync::{self, Limits};

/// The store an object serves, once opened.
struct OpenStore {
    store_id: String,
    meta: StoreMeta,
    log: Rc<Engine>,
}

/// A store's sync Durable Object; one instance per storeId.
pub struct SyncObject<H: SyncHooks> {
    state: State,
    env: Env,
    config: Config,
    limits: Limits,
    hooks: H,
    /// `None` until the first event after construction, and again after a storage failure, so
    /// the next request re-reads the head from storage.
    store: RefCell<Option<OpenStore>>,
    /// Serialises pushes so the head cannot move between the check and the append, whatever the
    /// storage engine awaits on.
    push_lock: futures::lock::Mutex<()>,
    /// Serialises opening the store.
    open_lock: futures::lock::Mutex<()>,
    /// Sockets with live pulls, so a broadcast touches only them and reads no attachment.
    /// `None` until first needed after construction; kept in step with the attachments, which
    /// remain the durable record.
    live: RefCell<Option<Vec<ws::LiveSocket>>>,
    /// Per socket, `[window start in seconds, pushes in it]` for `MAX_PUSHES_PER_SECOND`. A weak
    /// map, so closed sockets need no bookkeeping; it is lost on eviction, which only resets
    /// the current window.
    push_windows: js_sys::WeakMap,
    /// Open sockets, for `MAX_SOCKETS_PER_STORE`: read from the runtime once after a wake, then
    /// kept by counting, so a connect does not list every socket of the store.
    open_sockets: std::cell::Cell<Option<usize>>,
    /// Live pulls waiting for the push lock, so an `Interrupt` that arrives before they register
    /// still ends them.
    pending_live: RefCell<Vec<ws::PendingPull>>,
    /// Live pulls of client objects over DO RPC; `None` until first needed after construction.
    /// A cache of the rows in SQLite, which remain the durable record.
    rpc_subscribers: Rc<RefCell<Option<Vec<crate::rpc::Subscriber>>>>,
    /// Pages on their way to DO RPC subscribers (see `rpc::SyncObject::notify_rpc_subscribers`).
    rpc_deliveries: rpc::DeliveryQueues,
}

impl<H: SyncHooks> SyncObject<H> {
    /// Builds the object; call from your Durable Object's constructor.
    pub fn new(state: State, env: Env, hooks: H) -> Self {
        // Pings are answered by the runtime itself, so idle stores stay asleep.
        if let Ok(pair) = worker::worker_sys::WebSocketRequestResponsePair::new(PING, PONG) {
            state.set_websocket_auto_response(&pair);
        }
        // The Worker refuses requests when the configuration is invalid, so none reach here
        // with a bad one; the defaults are only a fallback.
        let config = Config::from_env(&env).unwrap_or_default();
        let limits = Limits {
            max_events_per_push: config.max_push_events,
            ..Limits::default()
        };
        SyncObject {
            state,
            env,
            config,
            limits,
            hooks,
            store: RefCell::new(None),
            push_lock: futures::lock::Mutex::new(()),
            open_lock: futures::lock::Mutex::new(()),
            live: RefCell::new(None),
            push_windows: js_sys::WeakMap::new(),
            open_sockets: std::cell::Cell::new(None),
            pending_live: RefCell::new(Vec::new()),
            rpc_subscribers: Rc::new(RefCell::new(None)),
            rpc_deliveries: Default::default(),
        }
    }

    /// The object's `fetch`: a WebSocket upgrade or one HTTP RPC request.
    pub async fn fetch(&self, mut req: Request) -> Result<Response> {
        // Checked first: the Worker sends admin requests with a path and query of its own.
        if self.is_admin_request(&req) {
            return self.admin(req).await;
        }
        let url = req.url()?;
        let params = match match_sync_request(url.query()) {
            Some(params) if self.config.transports.allows(params.transport) => params,
            other => {
                let message = other.map_or_else(
                    || "Not a sync request".to_owned(),
                    |p| crate::router::transport_disabled(p.transport),
                );
                // Consumed first: answering before a forwarded body is read fails the Worker's request.
                let _ = req.text().await;
                return Response::error(message, 400);
            }
        };
        let headers = self.forwarded_headers(&req);
        match params.transport {
            Transport::Ws => self.accept_socket(params.store_id, headers),
            Transport::Http => self.http(req, &params.store_id, headers).await,
            // Not a URL transport: it arrives through the `rpc` method.
            Transport::DoRpc => Response::error("Not a sync request", 400),
        }
    }

    /// The object's `webSocketMessage` handler.
    pub async fn websocket_message(&self, ws: WebSocket, message: WebSocketIncomingMessage) -> Result<()> {
        match message {
            WebSocketIncomingMessage::String(text) => self.on_text(&ws, &text).await,
            WebSocketIncomingMessage::Binary(bytes) => {
                let store_id = || ws::attachment(&ws).map(|a| a.store_id).unwrap_or_default();
                self.log_unhandled(Transport::Ws, store_id, None, bytes.len(), "BinaryFrame");
                ws::send(
                    &ws,
                    &server::defect("Binary frames are not supported: send one JSON RPC message per text frame"),
                )
            }
        }
        Ok(())
    }

    /// The object's `webSocketClose` handler: completes the closing handshake; the socket's live
    /// pulls go with its attachment.
    pub async fn websocket_close(&self, ws: WebSocket, code: usize, _reason: String, was_clean: bool) -> Result<()> {
        if let Some(line) = self.config.log_level.line(Level::Debug, "disconnect") {
            log::emit(
                logs::with_store(line, ws::attachment(&ws).map(|a| a.store_id))
                    .str("transport", "ws")
                    .int("code", code as i64)
                    .bool("clean", was_clean),
            );
        }
        self.socket_gone();
        self.set_live_pulls(&ws, Vec::new());
        let _ = ws.close(Some(1000), Some("closed"));
        Ok(())
    }

    /// The object's `webSocketError` handler: the socket's live pulls end with it.
    pub async fn websocket_error(&self, ws: WebSocket, error: worker::Error) -> Result<()> {
        if let Some(line) = self.config.log_level.line(Level::Debug, "disconnect") {
            log::emit(
                logs::with_store(line, ws::attachment(&ws).map(|a| a.store_id))
                    .str("transport", "ws")
                    .str("error", &error.to_string()),
            );
        }
        self.socket_gone();
        self.set_live_pulls(&ws, Vec::new());
        Ok(())
    }

    /// Counts a socket out of `open_sockets`. A socket that both errors and closes is counted out
    /// twice, which can only let a connection or two more in; the count is exact again after
    /// the next wake.
    fn socket_gone(&self) {
        if let Some(open) = self.open_sockets.get() {
            self.open_sockets.set(Some(open.saturating_sub(1)));
        }
    }

    /// Records a socket's live pulls in the index (an empty list removes the socket).
    fn set_live_pulls(&self, ws: &WebSocket, pulls: Vec<String>) {
        let mut live = self.live.borrow_mut();
        let Some(index) = live.as_mut() else {
            // Not built yet: it will be read from the attachments, which are already updated.
            return;
        };
        match (index.iter().position(|entry| entry.ws == *ws), pulls.is_empty()) {
            (Some(i), true) => {
                index.swap_remove(i);
            }
            (Some(i), false) => index[i].pulls = pulls,
            (None, false) => index.push(ws::LiveSocket { ws: ws.clone(), pulls }),
            (None, true) => {}
        }
    }

    /// The request headers named in `FORWARD_HEADERS`, for the hooks.
    fn forwarded_headers(&self, req: &Request) -> Vec<(String, String)> {
        self.config
            .forward_headers
            .iter()
            .filter_map(|name| Some((name.clone(), req.headers().get(name).ok()??)))
            .collect()
    }

    /// Opens the store on first use after construction (tables, head, backendId); returns its
    /// meta and log.
    async fn open(&self, store_id: &str) -> std::result::Result<(StoreMeta, Rc<Engine>), SyncError> {
        if let Some(opened) = self.cached(store_id)? {
            return Ok(opened);
        }
        // Opening awaits the engine (D1); two requests opening at once would otherwise both find
        // no context row and each create a different backendId.
        let _guard = self.open_lock.lock().await;
        if let Some(opened) = self.cached(store_id)? {
            return Ok(opened);
        }
        let log = Rc::new(self.engine(store_id)?);
        let meta = open_store(log.as_ref(), new_backend_id).await?;
        // One line per (re)start of a store's object: shows evictions and wake-ups in `wrangler tail`.
        if let Some(line) = self.config.log_level.line(Level::Info, "store_opened") {
            log::emit(
                line.str("storeId", store_id)
                    .int("head", meta.head)
                    .str("backendId", &meta.backend_id),
            );
        }
        *self.store.borrow_mut() = Some(OpenStore {
            store_id: store_id.to_owned(),
            meta: meta.clone(),
            log: log.clone(),
        });
        Ok((meta, log))
    }

    fn cached(&self, store_id: &str) -> std::result::Result<Option<(StoreMeta, Rc<Engine>)>, SyncError> {
        match self.store.borrow().as_ref() {
            None => Ok(None),
            Some(open) if open.store_id == store_id => Ok(Some((open.meta.clone(), open.log.clone()))),
            // One object serves one storeId (the Worker routes by `idFromName(storeId)`).
            Some(_) => Err(SyncError::unknown(
                "StoreMismatchError",
                "this connection belongs to another store",
            )),
        }
    }

    fn engine(&self, store_id: &str) -> std::result::Result<Engine, StorageError> {
        let local = DoSqliteLog::new(&self.state.storage(), store_id);
        Ok(match &self.config.storage {
            StorageConfig::DoSqlite => Engine::DoSqlite(local),
            StorageConfig::D1 { binding } => {
                let db = self
                    .env
                    .d1(binding)
                    .map_err(|_| StorageError(format!("the D1 binding '{binding}' (D1_BINDING) is not configured")))?;
                Engine::D1(D1Log::new(db, local, store_id, self.config.test_faults))
            }
        })
    }

    /// A pull: the `on_pull` hook, then every page after the cursor to `emit`; returns how many
    /// events were sent. `register` runs just before the pages are read (a live pull registers
    /// itself there). For a live pull, pushes wait meanwhile, so none can be both read and
    /// broadcast, or slip between the pages and the broadcast, whatever the engine awaits on.
    async fn pull(
        &self,
        cursor: Option<&Cursor>,
        live: bool,
        ctx: &RequestContext<'_>,
        register: impl FnOnce() -> std::result::Result<(), SyncError>,
        mut emit: impl FnMut(String),
    ) -> std::result::Result<u64, SyncError> {
        self.hooks.on_pull(cursor, live, ctx).await?;
        let _guard = match live {
            true => Some(self.push_lock.lock().await),
            false => None,
        };
        let (meta, log) = self.open(ctx.store_id).await?;
        register()?;
        let result = sync::pull(log.as_ref(), &meta, cursor, &self.limits, |page| {
            self.hooks.on_pull_res(&page, ctx);
            emit(page)
        })
        .await;
        self.forget_store_on_storage_error(&result);
        result
    }

    /// After a storage failure the cached head may be wrong (a write may have landed); the next
    /// request reopens the store and re-reads it.
    fn forget_store_on_storage_error<T>(&self, result: &std::result::Result<T, SyncError>) {
        if matches!(result, Err(SyncError::Unknown { name, .. }) if name == "StorageError") {
            *self.store.borrow_mut() = None;
        }
    }

    /// A push from any transport: the `on_push` hook, the sync rules, then the broadcast of the
    /// accepted batch to every live pull of the store (the pusher's included). Returns once the
    /// echo is out, so the acknowledgement always follows it.
    async fn push(&self, payload: &PushPayload<'_>, ctx: &RequestContext<'_>) -> std::result::Result<(), SyncError> {
        if payload.batch.is_empty() {
            // As the reference: acknowledged without running the hook.
            return Ok(());
        }
        self.hooks.on_push(&payload.batch, ctx).await?;
        let result = self.append_and_broadcast(payload, ctx).await;
        self.hooks.on_push_res(result.as_ref().copied(), ctx).await;
        result
    }

    async fn append_and_broadcast(
        &self,
        payload: &PushPayload<'_>,
        ctx: &RequestContext<'_>,
    ) -> std::result::Result<(), SyncError> {
        let _guard = self.push_lock.lock().await;
        let (mut meta, log) = self.open(ctx.store_id).await?;
        let pushed = sync::push(log.as_ref(), &mut meta, payload, &self.limits, now_millis()).await;
        self.forget_store_on_storage_error(&pushed);
        let created_at = pushed?;
        if let Some(open) = self.store.borrow_mut().as_mut() {
            open.meta = meta.clone();
        }
        let receivers = self.has_live_pulls();
        let subscribers = self.rpc_subscribers();
        if receivers || !subscribers.is_empty() || H::OBSERVES_PAGES {
            let pages = sync::broadcast_pages(&payload.batch, &created_at, &meta.backend_id, &self.limits);
            for page in &pages {
                self.hooks.on_pull_res(page, ctx);
            }
            if receivers {
                self.broadcast(&pages);
            }
            if !subscribers.is_empty() {
                self.notify_rpc_subscribers(&subscribers, &pages);
            }
        }
        Ok(())
    }

    /// Whether any socket of this store holds a live pull.
    fn has_live_pulls(&self) -> bool {
        let mut live = self.live.borrow_mut();
        !live
            .get_or_insert_with(|| ws::live_sockets_from_attachments(self.state.get_websockets()))
            .is_empty()
    }

    /// Sends pages to every live pull of every socket of this store.
    fn broadcast(&self, pages: &[String]) {
        if pages.is_empty() {
            return;
        }
        let live = self.live.borrow();
        let Some(index) = live.as_ref() else { return };
        // Clients number requests independently, so many live pulls share an id; each frame is
        // built, and converted to a JavaScript string, once per distinct id.
        let mut frames: HashMap<&str, Vec<wasm_bindgen::JsValue>> = HashMap::new();
        for socket in index.iter() {
            for id in &socket.pulls {
                let frames = frames.entry(id.as_str()).or_insert_with(|| {
                    pages
                        .iter()
                        .map(|page| wasm_bindgen::JsValue::from_str(&server::chunk(id, page)))
                        .collect()
                });
                for frame in frames.iter() {
                    ws::send_converted(&socket.ws, frame);
                }
            }
        }
    }

    /// Starts a span for an RPC request when tracing is on.
    fn span(&self, name: &'static str, request: &RpcRequest<'_>) -> Option<Span> {
        self.config.otel.as_ref()?;
        let parent = request.trace_id.as_deref().zip(request.span_id.as_deref());
        Some(Span::start(name, now_millis(), random_bytes(), parent))
    }

    /// Ends a span and exports it in the background.
    fn export(&self, span: Option<Span>, store_id: &str, transport: Transport, events: u64, error: Option<&SyncError>) {
        let (Some(mut span), Some(otel)) = (span, self.config.otel.as_ref()) else {
            return;
        };
        span.attr("livestore.store_id", store_id)
            .attr("livestore.transport", transport.as_str())
            .attr_int("livestore.batch_size", events as i64)
            .end(now_millis(), error.map_or(Ok(()), |e| Err(e.to_string())));
        let url = format!("{}/v1/traces", otel.endpoint);
        let body = export_body(&otel.service_name, &[span]);
        self.state.wait_until(post_json(url, body));
    }
}
