//! The WebSocket transport: one Effect RPC JSON message per text frame (`SyncWsRpc`), accepted
//! in hibernation mode. A codec around the core: frames in, the core's replies out as frames.

use serde::{Deserialize, Serialize};
use worker::{Response, Result, WebSocket, WebSocketPair};

use super::{Sync, SyncObject};
use crate::access::Grant;
use crate::core::Conn;
use crate::hooks::SyncHooks;
use crate::js::now_millis;
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
    /// Admitted to pull only.
    #[serde(rename = "readOnly", default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// When the token that admitted it stops being accepted (Unix seconds): the socket closes then.
    #[serde(rename = "expiresAt", default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

impl Attachment {
    fn grant(&self) -> Grant {
        Grant {
            read_only: self.read_only,
            expires_at: self.expires_at,
        }
    }
}

/// The close code of a socket whose token ran out: a policy violation (RFC 6455 §7.4.1).
const EXPIRED_CODE: u16 = 1008;
/// Its close reason.
const EXPIRED_REASON: &str = "TokenExpired: the token that opened this connection has expired";

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
        grant: Grant,
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
            read_only: grant.read_only,
            expires_at: grant.expires_at,
        });
        if let Err(e) = attached {
            self.log_connect(sync, &store_id, Err(("AttachmentTooLarge", 431)));
            // The runtime caps attachments; large forwarded headers (cookies) can exceed it.
            return Response::error(format!("Cannot accept the connection: {e}"), 431);
        }
        state.accept_web_socket(&pair.server);
        if let Some(at) = grant.expires_at {
            if let Some(next) = sync.next_expiry.get() {
                sync.next_expiry.set(Some(Some(next.map_or(at, |n| n.min(at)))));
            }
            sync.core.alarm_by(at.saturating_mul(1000));
        }
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
        let config = sync.core.config();
        let att = match open_store {
            Some(store_id) if !self.forwards_headers(config) && !config.grants_vary() => Some(Attachment {
                store_id,
                ..Attachment::default()
            }),
            _ => attachment(ws),
        };
        let grant = att.as_ref().map(Attachment::grant).unwrap_or_default();
        if grant.expired(now_millis().div_euclid(1000)) {
            // The alarm closes it on time; a frame that comes first is not served either.
            self.close_expired(sync, ws, att.as_ref());
            return;
        }
        let conn = Conn {
            transport: Transport::Ws,
            store_id: att.as_ref().map(|a| a.store_id.as_str()),
            headers: att.as_ref().map_or(&[], |a| a.headers.as_slice()),
            socket: Some(ws),
            read_only: grant.read_only,
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

    /// Closes every socket whose token has run out, and returns when the next one does (Unix
    /// seconds). Runs in the alarm; looks at the sockets only where tokens expire, and only once
    /// one is due (or after a wake, when that is not known).
    pub(super) fn close_expired_sockets(&self, sync: &Sync<H>) -> Option<i64> {
        if !matches!(sync.core.config().auth, crate::config::Auth::Signed { .. }) {
            return None;
        }
        let now = now_millis().div_euclid(1000);
        if let Some(next) = sync.next_expiry.get() {
            if next.is_none_or(|at| at > now) {
                return next;
            }
        }
        let mut next: Option<i64> = None;
        for ws in sync.core.host().state().get_websockets() {
            let Some(att) = attachment(&ws) else { continue };
            match att.expires_at {
                Some(_) if att.grant().expired(now) => self.close_expired(sync, &ws, Some(&att)),
                Some(at) => next = Some(next.map_or(at, |n| n.min(at))),
                None => {}
            }
        }
        sync.next_expiry.set(Some(next));
        next
    }

    /// Closes a socket whose token has run out; its live pulls end now, the count of open
    /// sockets follows with the close handshake.
    fn close_expired(&self, sync: &Sync<H>, ws: &WebSocket, att: Option<&Attachment>) {
        let _ = ws.close(Some(EXPIRED_CODE), Some(EXPIRED_REASON));
        sync.core.socket_closed(ws);
        if let Some(line) = sync.core.config().log_level.line(Level::Info, "disconnect") {
            let line = line.str("transport", "ws").str("reason", "TokenExpired");
            log::emit(match att {
                Some(att) => line.str("storeId", &att.store_id),
                None => line,
            });
        }
    }
}
