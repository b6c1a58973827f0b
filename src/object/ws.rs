//! The WebSocket transport: one Effect RPC JSON message per text frame (`SyncWsRpc`).

use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::{web_sys, Response, Result, WebSocket, WebSocketPair};

use super::logs::{payload_bytes, PullStats};
use super::SyncObject;
use crate::hooks::{RequestContext, SyncHooks};
use crate::log::{self, Level};
use crate::protocol::payload::parse_payload;
use crate::protocol::server::{self, PONG};
use crate::protocol::{decode_client_message, tags, ClientMessage, PullPayload, PushPayload, RpcRequest, SyncError};
use crate::router::Transport;

/// Most live pulls one socket may hold open. The LiveStore client opens one per connection;
/// the cap bounds the attachment, which the runtime keeps small.
const MAX_LIVE_PULLS_PER_SOCKET: usize = 8;

/// What a socket carries across hibernation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Attachment {
    /// The store the socket was opened for.
    #[serde(rename = "storeId")]
    pub store_id: String,
    /// Request ids of the socket's live pulls, which receive every accepted push.
    #[serde(rename = "livePulls")]
    pub live_pulls: Vec<String>,
    /// The upgrade request's headers named in `FORWARD_HEADERS`, for the hooks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
}

/// Sends a frame; a socket that is already closing cannot be helped, and the others must still
/// be served, so a failed send is not an error.
pub(super) fn send(ws: &WebSocket, frame: &str) {
    let _ = ws.send_with_str(frame);
}

#[wasm_bindgen]
extern "C" {
    /// A WebSocket seen only for `send(JsValue)`.
    type SendOnly;
    /// `WebSocket.send` with a JavaScript string already made, so a frame going to many sockets
    /// is converted from Rust once, not once per socket.
    #[wasm_bindgen(method, catch, js_name = send)]
    fn send(this: &SendOnly, data: &JsValue) -> std::result::Result<(), JsValue>;
}

/// Sends a frame already converted to a JavaScript string (failures as in [`send`]).
pub(super) fn send_converted(ws: &WebSocket, frame: &JsValue) {
    let socket: &JsValue = AsRef::<web_sys::WebSocket>::as_ref(ws);
    let _ = socket.unchecked_ref::<SendOnly>().send(frame);
}

/// A live pull that has not registered yet (it waits for the push lock).
pub(super) struct PendingPull {
    pub ws: WebSocket,
    pub id: String,
    /// The client sent `Interrupt` for it meanwhile.
    pub interrupted: bool,
}

/// A socket with live pulls, as the in-memory index of them holds it.
pub(super) struct LiveSocket {
    pub ws: WebSocket,
    pub pulls: Vec<String>,
}

/// The live pulls of every socket, read from their attachments (after a wake, the index is
/// rebuilt from them on first use).
pub(super) fn live_sockets_from_attachments(sockets: Vec<WebSocket>) -> Vec<LiveSocket> {
    sockets
        .into_iter()
        .filter_map(|ws| {
            let pulls = attachment(&ws)?.live_pulls;
            (!pulls.is_empty()).then_some(LiveSocket { ws, pulls })
        })
        .collect()
}

pub(super) fn attachment(ws: &WebSocket) -> Option<Attachment> {
    ws.deserialize_attachment::<Attachment>().ok().flatten()
}

impl<H: SyncHooks> SyncObject<H> {
    /// Accepts a WebSocket for `store_id` in hibernation mode.
    pub(super) fn accept_socket(&self, store_id: String, headers: Vec<(String, String)>) -> Result<Response> {
        let open = self
            .open_sockets
            .get()
            .unwrap_or_else(|| self.state.get_websockets().len());
        self.open_sockets.set(Some(open));
        if open >= self.config.max_sockets_per_store {
            self.log_connect(&store_id, Err(("TooManyConnections", 429)));
            return Response::error(
                format!(
                    "TooManyConnectionsError: this store already has {open} open connections, \
                     the most MAX_SOCKETS_PER_STORE allows; retry later"
                ),
                429,
            );
        }
        let pair = WebSocketPair::new()?;
        let attached = pair.server.serialize_attachment(Attachment {
            store_id: store_id.clone(),
            live_pulls: Vec::new(),
            headers,
        });
        if let Err(e) = attached {
            self.log_connect(&store_id, Err(("AttachmentTooLarge", 431)));
            // The runtime caps attachments; large forwarded headers (cookies) can exceed it.
            return Response::error(format!("Cannot accept the connection: {e}"), 431);
        }
        self.state.accept_web_socket(&pair.server);
        self.open_sockets.set(Some(open + 1));
        self.log_connect(&store_id, Ok(open + 1));
        Response::from_websocket(pair.client)
    }

    /// The `connect` line of a WebSocket upgrade: accepted (with the store's open sockets), or
    /// refused with a reason code and status.
    fn log_connect(&self, store_id: &str, outcome: std::result::Result<usize, (&'static str, u16)>) {
        let level = if outcome.is_ok() { Level::Info } else { Level::Warn };
        let Some(line) = self.config.log_level.line(level, "connect") else {
            return;
        };
        let line = line.str("storeId", store_id).str("transport", "ws");
        log::emit(match outcome {
            Ok(sockets) => line.str("outcome", "accepted").int("sockets", sockets as i64),
            Err((reason, status)) => line
                .str("outcome", "refused")
                .str("reason", reason)
                .int("status", i64::from(status)),
        });
    }

    pub(super) async fn on_text(&self, ws: &WebSocket, text: &str) {
        let message = match decode_client_message(text) {
            Ok(message) => message,
            Err(error) => {
                let store_id = || attachment(ws).map(|a| a.store_id).unwrap_or_default();
                self.log_unhandled(Transport::Ws, store_id, None, text.len(), "InvalidMessage");
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
                        self.set_live_pulls(ws, att.live_pulls);
                        send(ws, &server::exit_interrupted(&request_id));
                        return;
                    }
                }
                // Not registered yet: a live pull still waiting for the push lock is cancelled
                // when it gets it (it would otherwise register after its Interrupt and live on).
                if let Some(pending) = self
                    .pending_live
                    .borrow_mut()
                    .iter_mut()
                    .find(|p| p.ws == *ws && p.id == request_id && !p.interrupted)
                {
                    pending.interrupted = true;
                }
            }
            ClientMessage::Request(request) => {
                if text.len() > self.config.max_message_bytes {
                    let error = SyncError::unknown(
                        "MessageTooLargeError",
                        crate::router::too_large(text.len(), self.config.max_message_bytes),
                    );
                    let store_id = || attachment(ws).map(|a| a.store_id).unwrap_or_default();
                    self.log_unhandled(
                        Transport::Ws,
                        store_id,
                        Some(&request.tag),
                        text.len(),
                        "MessageTooLargeError",
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
            tags::WS_PUSH => self.ws_push(ws, &request).await.map(|()| Some(Some("{}"))),
            other => Err({
                let store_id = || attachment(ws).map(|a| a.store_id).unwrap_or_default();
                let bytes = payload_bytes(&request) as usize;
                self.log_unhandled(Transport::Ws, store_id, None, bytes, "UnknownRpcError");
                SyncError::unknown(
                    "UnknownRpcError",
                    format!(
                        "unknown RPC tag {other:?}; this endpoint serves {} and {}",
                        tags::WS_PULL,
                        tags::WS_PUSH
                    ),
                )
            }),
        };
        match result {
            Ok(Some(value)) => send(ws, &server::exit_success(id, value)),
            Ok(None) => {}
            Err(error) => send(ws, &server::exit_failure(id, &error)),
        }
    }

    /// The socket's store (checked against the store the request names) and its forwarded
    /// headers. Reads the socket's attachment only when it must: the store is known once open
    /// (one object serves one store), and headers only matter when some are forwarded.
    fn socket_store(&self, ws: &WebSocket, requested: &str) -> std::result::Result<Attachment, SyncError> {
        let open_store = self.store.borrow().as_ref().map(|open| open.store_id.clone());
        let att = match open_store {
            Some(store_id) if self.config.forward_headers.is_empty() => Attachment {
                store_id,
                ..Attachment::default()
            },
            _ => attachment(ws)
                .ok_or_else(|| SyncError::unknown("ConnectionStateError", "the connection has no store attached"))?,
        };
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
        let started = self.log_clock();
        let checked = parse_payload(tags::WS_PULL, request.payload).and_then(|payload: PullPayload| {
            // A live pull updates the attachment, so it needs all of it.
            let att = match payload.live {
                true => attachment(ws)
                    .filter(|att| att.store_id == payload.store_id)
                    .ok_or_else(|| SyncError::invalid_request("this connection is for another store"))?,
                false => self.socket_store(ws, &payload.store_id)?,
            };
            Ok((payload, att))
        });
        let (payload, att) = match checked {
            Ok(checked) => checked,
            Err(error) => {
                let result = Err(error);
                let store_id = attachment(ws).map(|a| a.store_id).unwrap_or_default();
                self.log_pull(Transport::Ws, &store_id, &PullStats::new(false, None), started, &result);
                return result;
            }
        };
        let span = self.span("sync.pull", request);
        let ctx = RequestContext {
            store_id: &att.store_id,
            transport: Transport::Ws,
            payload: payload.payload,
            headers: &att.headers,
        };
        let pages = std::cell::Cell::new(0);
        let result = self.stream_pull(ws, &request.id, &payload, &att, &ctx, &pages).await;
        let stats = PullStats {
            events: *result.as_ref().unwrap_or(&0),
            pages: pages.get(),
            ..PullStats::new(payload.live, payload.cursor.as_ref())
        };
        self.log_pull(Transport::Ws, &att.store_id, &stats, started, &result);
        self.export(
            span,
            &att.store_id,
            Transport::Ws,
            *result.as_ref().unwrap_or(&0),
            result.as_ref().err(),
        );
        result.map(|_| if payload.live { None } else { Some(None) })
    }

    /// Whether `id` is a registered live pull of the socket.
    fn is_live_pull(&self, ws: &WebSocket, id: &str) -> bool {
        if let Some(index) = self.live.borrow().as_ref() {
            return index
                .iter()
                .any(|socket| socket.ws == *ws && socket.pulls.iter().any(|pull| pull == id));
        }
        // The index is built on first use; until then the attachments are the record.
        attachment(ws).is_some_and(|att| att.live_pulls.iter().any(|pull| pull == id))
    }

    /// Removes a pending live pull; returns whether it was interrupted while it waited.
    fn take_pending(&self, ws: &WebSocket, id: &str) -> bool {
        let mut pending = self.pending_live.borrow_mut();
        match pending.iter().position(|p| p.ws == *ws && p.id == id) {
            Some(i) => pending.swap_remove(i).interrupted,
            None => false,
        }
    }

    /// Sends a pull's pages on the socket, registering a live pull first; returns the number of
    /// events sent.
    async fn stream_pull(
        &self,
        ws: &WebSocket,
        id: &str,
        payload: &PullPayload<'_>,
        att: &Attachment,
        ctx: &RequestContext<'_>,
        pages: &std::cell::Cell<u64>,
    ) -> std::result::Result<u64, SyncError> {
        // The socket's live pulls are read again here, not taken from `att`: `att` was read before
        // this pull waited for the push lock, and another live pull of the same socket may have
        // registered meanwhile (with D1, whose reads and writes yield); writing back `att` plus
        // this id would drop that one, and it would never receive another push.
        let registered_here = std::cell::Cell::new(false);
        // Until it registers, a live pull is pending, so an `Interrupt` meanwhile can cancel it.
        let interrupted = std::cell::Cell::new(false);
        if payload.live {
            self.pending_live.borrow_mut().push(PendingPull {
                ws: ws.clone(),
                id: id.to_owned(),
                interrupted: false,
            });
        }
        let register = || {
            if !payload.live {
                return Ok(());
            }
            if self.take_pending(ws, id) {
                interrupted.set(true);
                return Err(SyncError::unknown("Interrupted", "interrupted before it started"));
            }
            let mut registered = attachment(ws).unwrap_or_else(|| att.clone());
            if registered.live_pulls.iter().any(|live| live == id) {
                return Err(SyncError::invalid_request(format!(
                    "request id {id} is already a live pull"
                )));
            }
            if registered.live_pulls.len() >= MAX_LIVE_PULLS_PER_SOCKET {
                return Err(SyncError::unknown(
                    "TooManyLivePullsError",
                    format!("a connection may hold at most {MAX_LIVE_PULLS_PER_SOCKET} live pulls"),
                ));
            }
            registered.live_pulls.push(id.to_owned());
            ws.serialize_attachment(&registered)
                .map_err(|e| SyncError::unknown("ConnectionStateError", e.to_string()))?;
            self.set_live_pulls(ws, registered.live_pulls);
            registered_here.set(true);
            Ok(())
        };
        let result = self
            .pull(payload.cursor.as_ref(), payload.live, ctx, register, |page| {
                // A live pull interrupted while its first pages are still being read (D1 reads
                // yield) has had its Exit; nothing may follow it.
                if !payload.live || self.is_live_pull(ws, id) {
                    pages.set(pages.get() + 1);
                    send(ws, &server::chunk(id, &page))
                }
            })
            .await;
        if payload.live {
            // Still pending if it failed before registering (the `on_pull` hook).
            self.take_pending(ws, id);
        }
        if interrupted.get() {
            send(ws, &server::exit_interrupted(id));
            return Ok(0);
        }
        if result.is_err() && registered_here.get() {
            // Unregistered again, leaving the socket's other live pulls as they are now.
            if let Some(mut current) = attachment(ws) {
                current.live_pulls.retain(|live| live != id);
                let _ = ws.serialize_attachment(&current);
                self.set_live_pulls(ws, current.live_pulls);
            }
        }
        result
    }

    /// Counts a push against the socket's `MAX_PUSHES_PER_SECOND`, in one-second windows. A push
    /// over the limit is refused whole with a typed error, never dropped silently.
    fn count_push(&self, ws: &WebSocket) -> std::result::Result<(), SyncError> {
        let Some(max) = self.config.max_pushes_per_second else {
            return Ok(());
        };
        let key: &js_sys::Object = AsRef::<web_sys::WebSocket>::as_ref(ws).unchecked_ref();
        let second = (crate::js::now_millis() / 1000) as f64;
        let entry = self.push_windows.get(key);
        let window = entry
            .dyn_ref::<js_sys::Array>()
            .filter(|w| w.get(0).as_f64() == Some(second));
        let count = window.as_ref().and_then(|w| w.get(1).as_f64()).unwrap_or(0.0);
        if count >= f64::from(max) {
            return Err(SyncError::unknown(
                "RateLimitError",
                format!(
                    "a connection may push at most {max} times per second (MAX_PUSHES_PER_SECOND); retry in a moment"
                ),
            ));
        }
        match window {
            Some(w) => w.set(1, JsValue::from_f64(count + 1.0)),
            None => {
                self.push_windows.set(
                    key,
                    &js_sys::Array::of2(&JsValue::from_f64(second), &JsValue::from_f64(1.0)),
                );
            }
        }
        Ok(())
    }

    /// `SyncWsRpc.Push`: appends the batch if it continues the log and sends it to every live
    /// pull of the store (the pusher's included); the caller then acknowledges.
    async fn ws_push(&self, ws: &WebSocket, request: &RpcRequest<'_>) -> std::result::Result<(), SyncError> {
        let started = self.log_clock();
        let checked = self.count_push(ws).and_then(|()| {
            let payload: PushPayload = parse_payload(tags::WS_PUSH, request.payload)?;
            let att = self.socket_store(ws, &payload.store_id)?;
            Ok((payload, att))
        });
        let (payload, att) = match checked {
            Ok(checked) => checked,
            Err(error) => {
                let result = Err(error);
                let store_id = attachment(ws).map(|a| a.store_id).unwrap_or_default();
                self.log_push(Transport::Ws, &store_id, None, payload_bytes(request), started, &result);
                return result;
            }
        };
        let span = self.span("sync.push", request);
        let ctx = RequestContext {
            store_id: &att.store_id,
            transport: Transport::Ws,
            payload: payload.payload,
            headers: &att.headers,
        };
        let result = self.push(&payload, &ctx).await;
        self.log_push(
            Transport::Ws,
            &att.store_id,
            Some(payload.batch.len()),
            payload_bytes(request),
            started,
            &result,
        );
        self.export(
            span,
            &att.store_id,
            Transport::Ws,
            payload.batch.len() as u64,
            result.as_ref().err(),
        );
        result
    }
}
