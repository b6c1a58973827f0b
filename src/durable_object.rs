//! The per-store Durable Object: accepts WebSockets in hibernation mode, answers each frame with
//! the sync rules, and fans every accepted push out to all live pulls of the store.
//!
//! The runtime evicts an idle object while its sockets stay open (hibernation), so nothing that
//! must outlive one event lives only in memory: a socket's store and live pull ids are in its
//! attachment, the head and backendId in SQLite. The in-memory copy of the head is a cache,
//! rebuilt from SQLite on the first event after a wake.

// `#[durable_object]` generates the JavaScript-facing methods without doc comments.
#![allow(missing_docs)]

use std::cell::RefCell;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use worker::{
    durable_object, DurableObject, Env, Request, Response, Result, State, WebSocket, WebSocketIncomingMessage,
    WebSocketPair,
};

use crate::config::Config;
use crate::js::{new_backend_id, now_millis};
use crate::protocol::payload::parse_payload;
use crate::protocol::server::{self, PING, PONG};
use crate::protocol::{decode_client_message, tags, ClientMessage, PullPayload, PushPayload, RpcRequest, SyncError};
use crate::router::{match_sync_request, Transport};
use crate::storage::do_sqlite::DoSqliteLog;
use crate::storage::{open_store, StoreMeta};
use crate::sync::{self, Limits};
use crate::util::json::str_literal;

/// Most live pulls one socket may hold open. The LiveStore client opens one per connection;
/// the cap bounds the attachment, which the runtime keeps small.
const MAX_LIVE_PULLS_PER_SOCKET: usize = 8;

/// What a socket carries across hibernation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Attachment {
    /// The store the socket was opened for.
    #[serde(rename = "storeId")]
    store_id: String,
    /// Request ids of the socket's live pulls, which receive every accepted push.
    #[serde(rename = "livePulls")]
    live_pulls: Vec<String>,
}

/// The sync Durable Object; one instance per storeId.
///
/// The class name matches the reference's documented `SyncBackendDO`, so an existing
/// deployment keeps its Durable Objects, and with them its data, when it switches.
#[durable_object(websocket)]
pub struct SyncBackendDO {
    state: State,
    config: Config,
    limits: Limits,
    /// The open store's id and meta; `None` until the first event after construction.
    store: RefCell<Option<(String, StoreMeta)>>,
    /// Serialises pushes so the head cannot move between the check and the append, whatever the
    /// storage engine awaits on.
    push_lock: futures::lock::Mutex<()>,
}

impl DurableObject for SyncBackendDO {
    fn new(state: State, env: Env) -> Self {
        // Pings are answered by the runtime itself, so idle stores stay asleep.
        if let Ok(pair) = worker::worker_sys::WebSocketRequestResponsePair::new(PING, PONG) {
            state.set_websocket_auto_response(&pair);
        }
        // The Worker refuses requests when the configuration is invalid, so none reach here
        // with a bad one; the defaults are only a fallback.
        let config = Config::from_env(&env).unwrap_or_default();
        SyncBackendDO {
            state,
            config,
            limits: Limits::default(),
            store: RefCell::new(None),
            push_lock: futures::lock::Mutex::new(()),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let url = req.url()?;
        let Some(params) = match_sync_request(url.query()) else {
            return Response::error("Not a sync request", 400);
        };
        match params.transport {
            Transport::Ws => {
                let pair = WebSocketPair::new()?;
                pair.server.serialize_attachment(Attachment {
                    store_id: params.store_id,
                    live_pulls: Vec::new(),
                })?;
                self.state.accept_web_socket(&pair.server);
                Response::from_websocket(pair.client)
            }
            Transport::Http => Response::error("The HTTP transport is not enabled", 400),
        }
    }

    async fn websocket_message(&self, ws: WebSocket, message: WebSocketIncomingMessage) -> Result<()> {
        match message {
            WebSocketIncomingMessage::String(text) => self.on_text(&ws, &text).await,
            WebSocketIncomingMessage::Binary(_) => send(
                &ws,
                &server::defect("Binary frames are not supported: send one JSON RPC message per text frame"),
            ),
        }
        Ok(())
    }

    async fn websocket_close(&self, ws: WebSocket, _code: usize, _reason: String, _was_clean: bool) -> Result<()> {
        // Completes the closing handshake; the socket's live pulls go with its attachment.
        let _ = ws.close(Some(1000), Some("closed"));
        Ok(())
    }

    async fn websocket_error(&self, _ws: WebSocket, _error: worker::Error) -> Result<()> {
        Ok(())
    }
}

/// Sends a frame; a socket that is already closing cannot be helped, and the others must still
/// be served, so a failed send is not an error.
fn send(ws: &WebSocket, frame: &str) {
    let _ = ws.send_with_str(frame);
}

fn attachment(ws: &WebSocket) -> Option<Attachment> {
    ws.deserialize_attachment::<Attachment>().ok().flatten()
}

impl SyncBackendDO {
    async fn on_text(&self, ws: &WebSocket, text: &str) {
        let message = match decode_client_message(text) {
            Ok(message) => message,
            Err(error) => {
                match error.request_id() {
                    Some(id) => send(
                        ws,
                        &server::exit_failure(id, &SyncError::invalid_request(error.to_string())),
                    ),
                    None => send(ws, &server::defect(&error.to_string())),
                }
                return;
            }
        };
        match message {
            ClientMessage::Ack | ClientMessage::Eof => {}
            // Only reached when the ping is not byte-identical to the auto-response's.
            ClientMessage::Ping => send(ws, PONG),
            ClientMessage::Interrupt { request_id } => {
                if let Some(mut att) = attachment(ws) {
                    let before = att.live_pulls.len();
                    att.live_pulls.retain(|id| *id != request_id);
                    if att.live_pulls.len() != before {
                        let _ = ws.serialize_attachment(&att);
                        send(ws, &server::exit_interrupted(&request_id));
                    }
                }
            }
            ClientMessage::Request(request) => {
                if text.len() > self.config.max_message_bytes {
                    let error = SyncError::unknown(
                        "MessageTooLargeError",
                        format!(
                            "the message has {} bytes; this server accepts at most {}",
                            text.len(),
                            self.config.max_message_bytes
                        ),
                    );
                    send(ws, &server::exit_failure(&request.id, &error));
                    return;
                }
                self.on_request(ws, request).await;
            }
        }
    }

    async fn on_request(&self, ws: &WebSocket, request: RpcRequest<'_>) {
        let id = request.id.as_ref();
        let result = match request.tag.as_ref() {
            tags::WS_PULL => self.ws_pull(ws, &request).await,
            tags::WS_PUSH => self.ws_push(ws, &request).await,
            other => Err(SyncError::unknown(
                "UnknownRpcError",
                format!(
                    "unknown RPC tag {other:?}; this endpoint serves {} and {}",
                    tags::WS_PULL,
                    tags::WS_PUSH
                ),
            )),
        };
        match result {
            Ok(Some(value)) => send(ws, &server::exit_success(id, value)),
            Ok(None) => {}
            Err(error) => send(ws, &server::exit_failure(id, &error)),
        }
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

    /// The socket's store, checked against the store the request names.
    fn socket_store(ws: &WebSocket, requested: &str) -> std::result::Result<Attachment, SyncError> {
        let att = attachment(ws)
            .ok_or_else(|| SyncError::unknown("ConnectionStateError", "the connection has no store attached"))?;
        if att.store_id != requested {
            return Err(SyncError::invalid_request(format!(
                "the request names store {requested:?}, but this connection is for another store"
            )));
        }
        Ok(att)
    }

    /// `SyncWsRpc.Pull`: pages of everything after the cursor; a live pull then stays open and
    /// receives every later push. Returns the `Exit` value, or `None` while the stream stays open.
    async fn ws_pull(
        &self,
        ws: &WebSocket,
        request: &RpcRequest<'_>,
    ) -> std::result::Result<Option<Option<&'static str>>, SyncError> {
        let payload: PullPayload = parse_payload(tags::WS_PULL, request.payload)?;
        let mut att = Self::socket_store(ws, &payload.store_id)?;
        let meta = self.meta(&att.store_id).await?;
        let id = request.id.as_ref();
        if payload.live {
            if att.live_pulls.iter().any(|live| live == id) {
                return Err(SyncError::invalid_request(format!(
                    "request id {id} is already a live pull"
                )));
            }
            if att.live_pulls.len() >= MAX_LIVE_PULLS_PER_SOCKET {
                return Err(SyncError::unknown(
                    "TooManyLivePullsError",
                    format!("a connection may hold at most {MAX_LIVE_PULLS_PER_SOCKET} live pulls"),
                ));
            }
            // Registered before the initial pages, and within the same turn as reading them, so
            // no push can fall between the pages and the broadcast.
            att.live_pulls.push(id.to_owned());
            ws.serialize_attachment(&att)
                .map_err(|e| SyncError::unknown("ConnectionStateError", e.to_string()))?;
        }
        let result = sync::pull(
            &self.log(&att.store_id),
            &meta,
            payload.cursor.as_ref(),
            &self.limits,
            |page| send(ws, &server::chunk(id, &page)),
        )
        .await;
        match result {
            Ok(()) if payload.live => Ok(None),
            Ok(()) => Ok(Some(None)),
            Err(error) => {
                if payload.live {
                    att.live_pulls.retain(|live| live != id);
                    let _ = ws.serialize_attachment(&att);
                }
                Err(error)
            }
        }
    }

    /// `SyncWsRpc.Push`: appends the batch if it continues the log, sends it to every live pull
    /// of the store (the pusher's included), then acknowledges.
    async fn ws_push(
        &self,
        ws: &WebSocket,
        request: &RpcRequest<'_>,
    ) -> std::result::Result<Option<Option<&'static str>>, SyncError> {
        let payload: PushPayload = parse_payload(tags::WS_PUSH, request.payload)?;
        let att = Self::socket_store(ws, &payload.store_id)?;
        let _guard = self.push_lock.lock().await;
        let mut meta = self.meta(&att.store_id).await?;
        let pages = sync::push(
            &self.log(&att.store_id),
            &mut meta,
            &payload,
            now_millis(),
            &self.limits,
        )
        .await?;
        if let Some((_, cached)) = self.store.borrow_mut().as_mut() {
            *cached = meta;
        }
        // The echo goes out before the acknowledgement, so a client always has its events by the
        // time it learns the push succeeded.
        self.broadcast(&pages);
        Ok(Some(Some("{}")))
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
            let Some(att) = attachment(&socket) else { continue };
            for id in &att.live_pulls {
                let frames = frames
                    .entry(id.clone())
                    .or_insert_with(|| pages.iter().map(|page| server::chunk(id, page)).collect());
                for frame in frames.iter() {
                    send(&socket, frame);
                }
            }
        }
    }
}
