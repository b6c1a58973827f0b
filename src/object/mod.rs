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

mod http;
mod ws;

use std::cell::RefCell;
use std::collections::HashMap;

use worker::{Env, Request, Response, Result, State, WebSocket, WebSocketIncomingMessage};

use crate::config::Config;
use crate::hooks::{RequestContext, SyncHooks};
use crate::js::{new_backend_id, now_millis, post_json, random_bytes};
use crate::otel::{export_body, Span};
use crate::protocol::server::{self, PING, PONG};
use crate::protocol::{Cursor, PushPayload, RpcRequest, SyncError};
use crate::router::{match_sync_request, Transport};
use crate::storage::do_sqlite::DoSqliteLog;
use crate::storage::{open_store, StoreMeta};
use crate::sync::{self, Limits};
use crate::util::json::str_literal;

/// A store's sync Durable Object; one instance per storeId.
pub struct SyncObject<H: SyncHooks> {
    state: State,
    config: Config,
    limits: Limits,
    hooks: H,
    /// The open store's id and meta; `None` until the first event after construction.
    store: RefCell<Option<(String, StoreMeta)>>,
    /// Serialises pushes so the head cannot move between the check and the append, whatever the
    /// storage engine awaits on.
    push_lock: futures::lock::Mutex<()>,
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
        SyncObject {
            state,
            config,
            limits: Limits::default(),
            hooks,
            store: RefCell::new(None),
            push_lock: futures::lock::Mutex::new(()),
        }
    }

    /// The object's `fetch`: a WebSocket upgrade or one HTTP RPC request.
    pub async fn fetch(&self, mut req: Request) -> Result<Response> {
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
        }
    }

    /// The object's `webSocketMessage` handler.
    pub async fn websocket_message(&self, ws: WebSocket, message: WebSocketIncomingMessage) -> Result<()> {
        match message {
            WebSocketIncomingMessage::String(text) => self.on_text(&ws, &text).await,
            WebSocketIncomingMessage::Binary(_) => ws::send(
                &ws,
                &server::defect("Binary frames are not supported: send one JSON RPC message per text frame"),
            ),
        }
        Ok(())
    }

    /// The object's `webSocketClose` handler: completes the closing handshake; the socket's live
    /// pulls go with its attachment.
    pub async fn websocket_close(&self, ws: WebSocket, _code: usize, _reason: String, _was_clean: bool) -> Result<()> {
        let _ = ws.close(Some(1000), Some("closed"));
        Ok(())
    }

    /// The object's `webSocketError` handler: nothing to clean up.
    pub async fn websocket_error(&self, _ws: WebSocket, _error: worker::Error) -> Result<()> {
        Ok(())
    }

    /// The request headers named in `FORWARD_HEADERS`, for the hooks.
    fn forwarded_headers(&self, req: &Request) -> Vec<(String, String)> {
        self.config
            .forward_headers
            .iter()
            .filter_map(|name| Some((name.clone(), req.headers().get(name).ok()??)))
            .collect()
    }

    /// Opens the store on first use after construction (tables, head, backendId).
    async fn meta(&self, store_id: &str) -> std::result::Result<StoreMeta, SyncError> {
        if let Some((open_id, meta)) = self.store.borrow().as_ref() {
            if open_id == store_id {
                return Ok(meta.clone());
            }
            // One object serves one storeId (the Worker routes by `idFromName(storeId)`).
            return Err(SyncError::unknown(
                "StoreMismatchError",
                "this connection belongs to another store",
            ));
        }
        let meta = open_store(&self.log(store_id), new_backend_id).await?;
        // One line per (re)start of a store's object: shows evictions and wake-ups in `wrangler tail`.
        worker::console_log!(
            r#"{{"level":"info","event":"store_opened","storeId":{},"head":{},"backendId":{}}}"#,
            str_literal(store_id),
            meta.head,
            str_literal(&meta.backend_id)
        );
        *self.store.borrow_mut() = Some((store_id.to_owned(), meta.clone()));
        Ok(meta)
    }

    fn log(&self, store_id: &str) -> DoSqliteLog {
        DoSqliteLog::new(&self.state.storage(), store_id)
    }

    /// Runs the `on_pull` hook and opens the store; the transport then reads the pages.
    async fn prepare_pull(
        &self,
        cursor: Option<&Cursor>,
        live: bool,
        ctx: &RequestContext<'_>,
    ) -> std::result::Result<StoreMeta, SyncError> {
        self.hooks.on_pull(cursor, live, ctx).await?;
        self.meta(ctx.store_id).await
    }

    /// Streams the pages of a pull to `emit`; returns how many events were sent.
    async fn read_pages(
        &self,
        meta: &StoreMeta,
        cursor: Option<&Cursor>,
        ctx: &RequestContext<'_>,
        mut emit: impl FnMut(String),
    ) -> std::result::Result<u64, SyncError> {
        sync::pull(&self.log(ctx.store_id), meta, cursor, &self.limits, |page| {
            self.hooks.on_pull_res(&page, ctx);
            emit(page)
        })
        .await
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
        let mut meta = self.meta(ctx.store_id).await?;
        let pages = sync::push(&self.log(ctx.store_id), &mut meta, payload, now_millis(), &self.limits).await?;
        if let Some((_, cached)) = self.store.borrow_mut().as_mut() {
            *cached = meta;
        }
        for page in &pages {
            self.hooks.on_pull_res(page, ctx);
        }
        self.broadcast(&pages);
        Ok(())
    }

    /// Sends pages to every live pull of every socket of this store.
    fn broadcast(&self, pages: &[String]) {
        if pages.is_empty() {
            return;
        }
        // Clients number requests independently, so many live pulls share an id; each frame is
        // built once per distinct id.
        let mut frames: HashMap<String, Vec<String>> = HashMap::new();
        for socket in self.state.get_websockets() {
            let Some(att) = ws::attachment(&socket) else { continue };
            for id in &att.live_pulls {
                let frames = frames
                    .entry(id.clone())
                    .or_insert_with(|| pages.iter().map(|page| server::chunk(id, page)).collect());
                for frame in frames.iter() {
                    ws::send(&socket, frame);
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
