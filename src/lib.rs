//! A LiveStore sync backend for Cloudflare Workers, in Rust.
//!
//! It speaks the protocol of `@livestore/sync-cf` 0.4.0 — the unmodified `makeWsSync` client
//! syncs through it — and keeps the event log in the reference's storage layout, so a deployment
//! can switch between the two and keep its data.
//!
//! How a request flows, and where each part lives:
//!
//! - [`entry`] (Worker `fetch`): recognises sync requests by their search parameters
//!   ([`router`]), answers CORS and info requests, authenticates, and forwards each store's
//!   traffic to its own Durable Object.
//! - [`durable_object`]: the per-store object. Accepts WebSockets in hibernation mode, decodes
//!   Effect RPC frames ([`protocol`]), runs the sync rules ([`sync`]) against the store's event
//!   log ([`storage`]), and fans every accepted push out to all live pulls.
//! - [`config`]: the vars and secrets that configure all of the above; [`jwt`] checks the signed
//!   tokens they may configure.
//! - [`admin`] and [`inspector`]: the admin API under `/_admin/` and the web page that uses it.
//! - [`log`]: the structured JSON log lines (connects, pushes, pulls, refusals, errors) and the
//!   `LOG_LEVEL` that filters them.
//!
//! Everything except `entry`, `durable_object` and `storage::do_sqlite` is plain Rust and is
//! tested natively (`cargo test`); those three are the thin layer over the Workers runtime.

#![warn(missing_docs)]

pub mod access;
pub mod admin;
pub mod backup;
pub mod config;
pub mod core;
pub mod directory;
pub mod hooks;
pub mod inspector;
pub mod jwt;
pub mod log;
pub mod options;
pub mod otel;
pub mod outbox;
pub mod protocol;
pub mod router;
pub mod rpc;
pub mod rules;
pub mod storage;
pub mod util;

#[cfg(all(target_arch = "wasm32", feature = "entrypoint"))]
pub mod durable_object;
#[cfg(target_arch = "wasm32")]
pub mod entry;
#[cfg(target_arch = "wasm32")]
pub mod js;
#[cfg(target_arch = "wasm32")]
pub mod object;
#[cfg(all(target_arch = "wasm32", feature = "package"))]
pub mod package;

#[cfg(all(target_arch = "wasm32", feature = "entrypoint"))]
pub use durable_object::SyncBackendDO;
#[cfg(target_arch = "wasm32")]
pub use entry::{handle_fetch, handle_fetch_with, handle_sync_request, handle_sync_request_with, match_sync_request};
pub use hooks::{ConnectContext, HookError, NoHooks, RequestContext, SyncHooks};
#[cfg(target_arch = "wasm32")]
pub use object::SyncObject;
