//! The WebSocket transport: one Effect RPC JSON message per text frame (`SyncWsRpc`), accepted
//! in hibernation mode. A codec around the core: frames in, the core's replies out as frames.

use serde::{Deserialize, Serialize};
use worker::{Response, Result, WebSocket, WebSocketPair};

use super::{Sync, SyncObject};
use crate::core::Conn;
use crate::hooks::SyncHooks;
use crate::log::{self, Level};
use crate::protocol::{json_message, Reply, Transport};

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

/// The socket's attachment, if it has one.
pub(super) fn attachment(ws: &WebSocket) -> Option<Attachment> {
    ws.deserialize_attachment::<Attachment>().ok().flatten()
}

/// Sends a frame; a socket that is already closing cannot be helped, and the others must still
/// be served, so a failed send is not an error.
pub(super) fn send(ws: &WebSocket, frame: &str) {
    let _ = ws.send_with_str(frame);
}

impl<H: SyncHooks> SyncObject<H> {
    /// Accepts a WebSocket for `store_id` in hibernation mode, within `MAX_SOCKETS_PER_STORE`.
    pub(super) fn accept_socket(
        &self,
        sync: &Sync<H>,
        store_id: String,
        headers: Vec<(String, String)>,
    ) -> Result<Response> {
        let state = sync.core.host().state();
        let open = sync.open_sockets.get().unwrap_or_else(|| state.get_websockets().len());
        sync.open_sockets.set(Some(open));
        let config = sync.core.config();
        if open >= config.max_sockets_per_store {
            self.log_connect(sync, &store_id, Err(("TooManyConnections", 429)));
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
            self.log_connect(sync, &store_id, Err(("AttachmentTooLarge", 431)));
            // The runtime caps attachments; large forwarded headers (cookies) can exceed it.
            return Response::error(format!("Cannot accept the connection: {e}"), 431);
        }
        state.accept_web_socket(&pair.server);
        sync.open_sockets.set(Some(open + 1));
        self.log_connect(sync, &store_id, Ok(open + 1));
        Response::from_websocket(pair.client)
    }

    /// The `connect` line of a WebSocket upgrade: accepted (with the store's open sockets), or
    /// refused with a reason code and status.
    fn log_connect(&self, sync: &Sync<H>, store_id: &str, outcome: std::result::Result<usize, (&'static str, u16)>) {
        let level = if outcome.is_ok() { Level::Info } else { Level::Warn };
        let Some(line) = sync.core.config().log_level.line(level, "connect") else {
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

    /// One frame: text to the core, whose replies go back on the socket as they are ready.
    pub(super) async fn on_frame(&self, sync: &Sync<H>, ws: &WebSocket, text: Option<&str>, bytes: usize) {
        // The store is known once open (one object serves one store); the attachment is read
        // only when it must be: before that, or when headers are forwarded to the hooks.
        let open_store = sync.core.open_store_id();
        let att = match open_store {
            Some(store_id) if !self.forwards_headers(sync.core.config()) => Some(Attachment {
                store_id,
                ..Attachment::default()
            }),
            _ => attachment(ws),
        };
        let conn = Conn {
            transport: Transport::Ws,
            store_id: att.as_ref().map(|a| a.store_id.as_str()),
            headers: att.as_ref().map_or(&[], |a| a.headers.as_slice()),
            socket: Some(ws),
        };
        let mut out = |reply: Reply<'_>| send(ws, &json_message(reply, Transport::Ws));
        match text {
            Some(text) => {
                sync.core.handle(text, &conn, &mut out).await;
            }
            None => sync.core.refuse_undecodable(
                &conn,
                bytes,
                "BinaryFrame",
                "Binary frames are not supported: send one JSON RPC message per text frame",
                &mut out,
            ),
        }
    }
}
