//! The per-store Durable Object: glue between the Workers runtime and the sync core
//! ([`crate::core`]), generic over the user's [`SyncHooks`].
//!
//! Each transport is a codec around the core: [`ws`] (WebSockets in hibernation mode), [`http`]
//! (one RPC request per POST) and [`rpc`] (Durable Object RPC, msgpack). [`host`] gives the core
//! the runtime's services; [`admin`] serves the admin API's internal requests.
//!
//! The stock worker wraps `SyncObject<NoHooks>` in its `SyncBackendDO` class; a Worker of your
//! own wraps `SyncObject<YourHooks>` the same way (see `examples/custom-worker`).
//!
//! The runtime evicts an idle object while its sockets stay open (hibernation), so nothing that
//! must outlive one event lives only in memory: a socket's store, live pull ids and forwarded
//! headers are in its attachment, everything else in storage. What the core holds in memory is
//! a cache, rebuilt on the first event after a wake.

mod admin;
mod directory;
mod electric;
mod host;
mod http;
pub mod rpc;
mod ws;

use std::cell::Cell;
use std::rc::Rc;

use wasm_bindgen::JsValue;
use worker::{Env, Request, Response, Result, State, WebSocket, WebSocketIncomingMessage};

use crate::access::Grant;
use crate::config::{Config, ConfigError, StorageConfig};
use crate::core::Core;
use crate::hooks::SyncHooks;
use crate::log::{self, Level, LogLevel};
use crate::protocol::server::{PING, PONG};
use crate::protocol::Transport;
use crate::router::{parse_sync_request, SyncMatch};
use crate::storage::d1::D1Log;
use crate::storage::do_sqlite::DoSqliteLog;
use crate::storage::engine::Engine;
use crate::storage::StorageError;
pub use host::DoHost;

/// What a configured object runs.
struct Sync<H: SyncHooks> {
    /// Shared with the tasks that deliver other nodes' writes (Postgres).
    core: Rc<Core<Engine, DoHost, H>>,
    engine: EngineParts,
    /// Open sockets, for `MAX_SOCKETS_PER_STORE`: read from the runtime once after a wake, then
    /// kept by counting, so a connect does not list every socket of the store.
    open_sockets: Cell<Option<usize>>,
    /// When the next socket's token runs out (Unix seconds): `None` until the sockets are first
    /// looked at after a wake, then `Some(None)` while no socket expires.
    next_expiry: Cell<Option<Option<i64>>>,
}

/// A store's sync Durable Object; one instance per storeId.
pub struct SyncObject<H: SyncHooks> {
    /// The configuration error instead, when the vars cannot be read: the object then refuses
    /// every request, as the Worker does, rather than serving with defaults.
    sync: std::result::Result<Sync<H>, ConfigError>,
    /// Picks the headers the hooks see from a request, instead of `FORWARD_HEADERS`.
    forward: Option<HeaderExtractor>,
}

/// Picks the headers passed to the hooks from a request (names in lower case): the npm package's
/// `forwardHeaders: (request) => ({ … })`.
pub type HeaderExtractor = Box<dyn Fn(&Request) -> Vec<(String, String)>>;

impl<H: SyncHooks> SyncObject<H> {
    /// Builds the object; call from your Durable Object's constructor.
    pub fn new(state: State, env: Env, hooks: H) -> Self {
        let config = Config::cached(&env);
        Self::with_config(state, env, config, hooks)
    }

    /// Builds the object on a configuration read elsewhere (the npm package's, from its options
    /// and the vars), rather than the isolate's vars alone.
    pub fn with_config(state: State, env: Env, config: std::result::Result<Rc<Config>, ConfigError>, hooks: H) -> Self {
        // Pings are answered by the runtime itself, so idle stores stay asleep.
        if let Ok(pair) = worker::worker_sys::WebSocketRequestResponsePair::new(PING, PONG) {
            state.set_websocket_auto_response(&pair);
        }
        let sync = config.map(|config| {
            let engine = EngineParts::new(&env, &config);
            let open_log = open_log(&state, &env, &config, &engine);
            let host = DoHost::new(state, env, &config);
            let core = Rc::new(Core::new(config, hooks, host, open_log));
            engine.connect_to(&core);
            Sync {
                core,
                engine,
                open_sockets: Cell::new(None),
                next_expiry: Cell::new(None),
            }
        });
        if let Err(e) = &sync {
            // Whatever LOG_LEVEL says: it could not be read either.
            worker::console_error!("{e}");
        }
        SyncObject { sync, forward: None }
    }

    /// Lets `extract` pick the headers the hooks see, instead of `FORWARD_HEADERS`.
    pub fn with_header_extractor(mut self, extract: HeaderExtractor) -> Self {
        self.forward = Some(extract);
        self
    }

    /// The headers of `req` the hooks see.
    fn forwarded_headers(&self, config: &Config, req: &Request) -> Vec<(String, String)> {
        match &self.forward {
            Some(extract) => extract(req),
            None => config
                .forward_headers
                .iter()
                .filter_map(|name| Some((name.clone(), req.headers().get(name).ok()??)))
                .collect(),
        }
    }

    /// Whether the hooks see any request headers (which then live in each socket's attachment).
    fn forwards_headers(&self, config: &Config) -> bool {
        self.forward.is_some() || !config.forward_headers.is_empty()
    }

    /// The object's `fetch`: an admin request from the Worker, a WebSocket upgrade, or one HTTP
    /// RPC request.
    pub async fn fetch(&self, mut req: Request) -> Result<Response> {
        let sync = match &self.sync {
            Ok(sync) => sync,
            Err(e) => {
                // Consumed first: answering before a forwarded body is read fails the Worker's request.
                let _ = req.text().await;
                return Response::error(e.to_string(), 500);
            }
        };
        let url = req.url()?;
        if directory::is_directory_request(&url) {
            return self.directory(sync, req).await;
        }
        if req.headers().has(crate::admin::INTERNAL_HEADER)? {
            return self.admin(sync, req).await;
        }
        if crate::protocol::electric::is_endpoint(url.path()) {
            if !sync.core.config().transports.allows(Transport::Electric) {
                let _ = req.text().await;
                return Response::error(crate::core::error::transport_disabled(Transport::Electric), 400);
            }
            let headers = self.forwarded_headers(sync.core.config(), &req);
            let grant = Grant::from_header(req.headers().get(crate::access::HEADER)?.as_deref());
            return self.electric(sync, req, headers, grant).await;
        }
        let websocket = req.headers().get("Upgrade")?.is_some();
        let params = match parse_sync_request(url.query(), websocket) {
            SyncMatch::Sync(params) if sync.core.config().transports.allows(params.transport) => params,
            other => {
                let message = match other {
                    SyncMatch::Sync(params) => crate::core::error::transport_disabled(params.transport),
                    SyncMatch::Malformed(message) => message,
                    SyncMatch::NotSync => "Not a sync request".to_owned(),
                };
                let _ = req.text().await;
                return Response::error(message, 400);
            }
        };
        let headers = self.forwarded_headers(sync.core.config(), &req);
        let grant = Grant::from_header(req.headers().get(crate::access::HEADER)?.as_deref());
        match params.transport {
            Transport::Ws => self.accept_socket(sync, params.store_id, headers, grant),
            Transport::Http => self.http(sync, req, &params.store_id, headers, grant).await,
            // Not URL transports of this shape: DO RPC arrives through the `rpc` method, the
            // sync-electric endpoint by its path.
            Transport::DoRpc | Transport::Electric => Response::error("Not a sync request", 400),
        }
    }

    /// The object's `webSocketMessage` handler as the runtime calls it (a socket, and a string or
    /// an `ArrayBuffer`), run at once ([`crate::js::run_now`]): `undefined` when the frame was
    /// served within the call, else a `Promise`. The object must be shared (`Rc`) for a frame
    /// that waits to keep it.
    pub fn websocket_message_now(
        this: &Rc<Self>,
        ws: worker::worker_sys::web_sys::WebSocket,
        message: JsValue,
    ) -> JsValue {
        let message = match message.as_string() {
            Some(text) => WebSocketIncomingMessage::String(text),
            None => WebSocketIncomingMessage::Binary(js_sys::Uint8Array::new(&message).to_vec()),
        };
        let this = Rc::clone(this);
        crate::js::run_now(async move {
            this.websocket_message(ws.into(), message)
                .await
                .map(|()| JsValue::UNDEFINED)
                .map_err(JsValue::from)
        })
    }

    /// The object's `webSocketMessage` handler.
    pub async fn websocket_message(&self, ws: WebSocket, message: WebSocketIncomingMessage) -> Result<()> {
        let Ok(sync) = &self.sync else {
            let _ = ws.close(Some(1011), Some("the sync backend's configuration is invalid"));
            return Ok(());
        };
        match message {
            WebSocketIncomingMessage::String(text) => self.on_frame(sync, &ws, Some(&text), text.len()).await,
            WebSocketIncomingMessage::Binary(bytes) => self.on_frame(sync, &ws, None, bytes.len()).await,
        }
        Ok(())
    }

    /// The object's `webSocketClose` handler: completes the closing handshake; the socket's live
    /// pulls go with it.
    pub async fn websocket_close(&self, ws: WebSocket, code: usize, _reason: String, was_clean: bool) -> Result<()> {
        if let Ok(sync) = &self.sync {
            if let Some(line) = sync.core.config().log_level.line(Level::Debug, "disconnect") {
                log::emit(
                    with_store(line, &ws)
                        .str("transport", "ws")
                        .int("code", code as i64)
                        .bool("clean", was_clean),
                );
            }
            self.socket_gone(sync, &ws);
        }
        let _ = ws.close(Some(1000), Some("closed"));
        Ok(())
    }

    /// The object's `webSocketError` handler: the socket's live pulls end with it.
    pub async fn websocket_error(&self, ws: WebSocket, error: worker::Error) -> Result<()> {
        if let Ok(sync) = &self.sync {
            if let Some(line) = sync.core.config().log_level.line(Level::Debug, "disconnect") {
                log::emit(
                    with_store(line, &ws)
                        .str("transport", "ws")
                        .str("error", &error.to_string()),
                );
            }
            self.socket_gone(sync, &ws);
        }
        Ok(())
    }

    /// The object's alarm: closes the sockets whose tokens have run out, delivers the store's
    /// outbox, keeps its directory entry current and expires it when idle; then sets itself
    /// again for whichever comes first. An alarm comes with no
    /// request, so the store is the one this object has open, or else the one its outbox was
    /// recorded for.
    pub async fn alarm(&self) {
        let Ok(sync) = &self.sync else { return };
        sync.core.alarm_fired();
        let next_expiry = self.close_expired_sockets(sync);
        let store_id = sync
            .core
            .open_store_id()
            .or_else(|| DoSqliteLog::stored_store_id(&sync.core.host().state().storage()));
        match store_id {
            Some(store_id) => {
                let (core, level) = (&sync.core, sync.core.config().log_level);
                alarm_duty(level, &store_id, "outbox_failed", core.run_outbox(&store_id).await);
                // Before the directory's turn, which may delete an expired store: its last
                // events are backed up first.
                alarm_duty(level, &store_id, "backup_failed", core.run_backup(&store_id).await);
                alarm_duty(
                    level,
                    &store_id,
                    "directory_failed",
                    core.run_directory(&store_id).await,
                );
            }
            None => sync.core.alarm_before_open(),
        }
        if let Some(at) = next_expiry {
            sync.core.alarm_by(at.saturating_mul(1000));
        }
    }

    /// A socket closed or failed. A socket that both errors and closes is counted out twice,
    /// which can only let a connection or two more in; the count is exact again after the next
    /// wake.
    fn socket_gone(&self, sync: &Sync<H>, ws: &WebSocket) {
        if let Some(open) = sync.open_sockets.get() {
            sync.open_sockets.set(Some(open.saturating_sub(1)));
        }
        sync.core.socket_closed(ws);
        sync.engine.live_pulls_changed();
    }
}

/// Logs a duty of the alarm that failed (at error, as `event`); the alarm goes on with the next.
fn alarm_duty<T>(
    log_level: LogLevel,
    store_id: &str,
    event: &'static str,
    result: std::result::Result<T, crate::core::Error>,
) {
    if let Err(e) = result {
        if let Some(line) = log_level.line(Level::Error, event) {
            log::emit(line.str("storeId", store_id).str("error", &e.to_string()));
        }
    }
}

/// What an engine keeps per object rather than per store: Postgres's connection.
struct EngineParts {
    #[cfg(feature = "postgres")]
    postgres: Option<Rc<crate::storage::postgres::PgNode>>,
}

impl EngineParts {
    fn new(env: &Env, config: &Config) -> Self {
        let _ = (env, config);
        EngineParts {
            #[cfg(feature = "postgres")]
            postgres: match &config.storage {
                StorageConfig::Postgres(source) => {
                    Some(crate::storage::postgres::PgNode::new(env.clone(), source.clone()))
                }
                _ => None,
            },
        }
    }

    /// A socket with live pulls went away: Postgres's connection may close once idle.
    fn live_pulls_changed(&self) {
        #[cfg(feature = "postgres")]
        if let Some(node) = &self.postgres {
            node.touch();
        }
    }

    /// Lets the engine tell the core that another node wrote: the core then delivers it to
    /// this node's live pulls.
    fn connect_to<H: SyncHooks>(&self, core: &Rc<Core<Engine, DoHost, H>>) {
        let _ = core;
        #[cfg(feature = "postgres")]
        if let Some(node) = &self.postgres {
            let weak = Rc::downgrade(core);
            node.listened_to(Rc::new(move || {
                weak.upgrade().is_some_and(|core| core.has_live_pulls())
            }));
            let core = Rc::downgrade(core);
            node.on_change(Rc::new(move |head| {
                if let Some(core) = core.upgrade() {
                    worker::wasm_bindgen_futures::spawn_local(async move {
                        // A failure is the store's storage error; the next request reopens it.
                        let _ = core.catch_up(head).await;
                    });
                }
            }));
        }
    }
}

/// The store's log on the configured engine, opened by the core on first use.
fn open_log(state: &State, env: &Env, config: &Config, parts: &EngineParts) -> crate::core::OpenLog<Engine> {
    let storage = state.storage();
    let env = env.clone();
    let kind = config.storage.clone();
    let test_faults = config.test_faults;
    #[cfg(feature = "postgres")]
    let postgres = parts.postgres.clone();
    let _ = parts;
    Box::new(move |store_id: &str| {
        let local = DoSqliteLog::new(&storage, store_id);
        Ok(match &kind {
            StorageConfig::DoSqlite => Engine::DoSqlite(local),
            StorageConfig::D1 { binding } => {
                let db = env
                    .d1(binding)
                    .map_err(|_| StorageError(format!("the D1 binding '{binding}' (D1_BINDING) is not configured")))?;
                Engine::D1(D1Log::new(db, local, store_id, test_faults))
            }
            #[cfg(feature = "postgres")]
            StorageConfig::Postgres(_) => match &postgres {
                Some(node) => Engine::Postgres(crate::storage::postgres::PgLog::new(node.clone(), local, store_id)),
                None => return Err(StorageError("the Postgres connection was not set up".into())),
            },
            #[cfg(not(feature = "postgres"))]
            StorageConfig::Postgres(_) => return Err(StorageError(
                "STORAGE=postgres needs a build with the `postgres` cargo feature (./scripts/build-worker --postgres)"
                    .into(),
            )),
        })
    })
}

/// Adds the socket's store, from its attachment, to a line.
fn with_store(line: log::Line, ws: &WebSocket) -> log::Line {
    match ws::attachment(ws) {
        Some(att) => line.str("storeId", &att.store_id),
        None => line,
    }
}
