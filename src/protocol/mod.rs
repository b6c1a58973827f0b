//! The wire format of `@livestore/sync-cf` 0.4.0: Effect RPC's JSON envelope and the sync
//! payloads inside it. Serde only; no I/O, no Worker types.
//!
//! Decoding borrows from the frame wherever it can (event `args` stay as raw JSON text), and
//! encoding writes JSON text directly, because every push and pull goes through here.

pub mod client;
pub mod error;
pub mod option;
pub mod payload;
pub mod seq;
pub mod server;

pub use client::{decode_client_message, ClientMessage, FrameError, RpcRequest};
pub use error::SyncError;
pub use option::EffectOption;
pub use payload::{Cursor, EventIn, PingPayload, PullPayload, PushPayload};
pub use seq::SeqNum;

/// RPC tags of the WebSocket transport (`SyncWsRpc`).
pub mod tags {
    /// Streaming pull over WebSocket; `live` keeps it open.
    pub const WS_PULL: &str = "SyncWsRpc.Pull";
    /// Push over WebSocket.
    pub const WS_PUSH: &str = "SyncWsRpc.Push";
    /// Pull over HTTP: every page from the cursor, in one response.
    pub const HTTP_PULL: &str = "SyncHttpRpc.Pull";
    /// Push over HTTP.
    pub const HTTP_PUSH: &str = "SyncHttpRpc.Push";
    /// Liveness check over HTTP.
    pub const HTTP_PING: &str = "SyncHttpRpc.Ping";
}
