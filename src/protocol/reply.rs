//! What the sync core answers, before a transport encodes it, and its JSON encoding, which the
//! WebSocket and HTTP transports share.

use super::server::{self, PONG};
use super::{SyncError, Transport};

/// What the core sends back for a message, for the transport to encode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<'a> {
    /// One `PullResponse` page (JSON) of a pull's stream.
    Page {
        /// The pull's request id.
        request_id: &'a str,
        /// The page.
        page: &'a str,
    },
    /// The end of a request.
    Exit {
        /// The request id.
        request_id: &'a str,
        /// What it did, or the error the client receives.
        result: Result<Done, SyncError>,
    },
    /// The end of a stream the client interrupted.
    Interrupted {
        /// The stream's request id.
        request_id: &'a str,
    },
    /// A message that names no request to answer on.
    Defect(&'a str),
    /// The answer to an envelope `Ping`.
    Pong,
}

/// What a successful request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// A push was stored (or was empty).
    Pushed,
    /// A pull sent its pages (a live one keeps receiving: it has no `Exit` on WebSocket).
    Pulled,
    /// A ping was answered.
    Pong,
}

/// `SyncMessage.Pong`, the success value of `SyncHttpRpc.Ping`.
const HTTP_PONG: &str = r#"{"_tag":"SyncMessage.Pong"}"#;

/// A reply as the Effect RPC JSON message the WebSocket and HTTP transports carry.
pub fn json_message(reply: Reply<'_>, transport: Transport) -> String {
    match reply {
        Reply::Page { request_id, page } => server::chunk(request_id, page),
        Reply::Exit { request_id, result } => match result {
            Ok(Done::Pushed) => server::exit_success(request_id, Some("{}")),
            Ok(Done::Pong) if transport == Transport::Http => server::exit_success(request_id, Some(HTTP_PONG)),
            // A stream's `Void` result.
            Ok(Done::Pulled | Done::Pong) => server::exit_success(request_id, None),
            Err(error) => server::exit_failure(request_id, &error),
        },
        Reply::Interrupted { request_id } => server::exit_interrupted(request_id),
        Reply::Defect(message) => server::defect(message),
        Reply::Pong => PONG.to_owned(),
    }
}
