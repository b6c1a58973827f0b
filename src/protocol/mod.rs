//! The wire format of `@livestore/sync-cf` 0.4.0: Effect RPC's JSON envelope and the sync
//! payloads inside it. Serde only; no I/O, no Worker types.
//!
//! Decoding borrows from the frame wherever it can (event `args` stay as raw JSON text), and
//! encoding writes JSON text directly, because every push and pull goes through here.

pub mod client;
pub mod electric;
pub mod error;
pub mod option;
pub mod payload;
pub mod reply;
pub mod seq;
pub mod server;
pub mod transport;

pub use client::{decode_client_message, ClientMessage, FrameError, RpcRequest};
pub use error::SyncError;
pub use option::EffectOption;
pub use payload::{CallerContext, Cursor, EventIn, PingPayload, PullPayload, PushPayload, RpcContext};
pub use reply::{json_message, Done, Reply};
pub use seq::SeqNum;
pub use transport::{Operation, Transport};
