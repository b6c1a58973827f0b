//! Hooks a Rust user implements to customise the sync backend: the counterparts of the
//! reference's `validatePayload` (in `makeWorker`) and `onPush` / `onPull` (in
//! `makeDurableObject`).
//!
//! `on_push_res` and `on_pull_res` observe results, like the reference's `onPushRes` /
//! `onPullRes`. A hook that returns an error stops the request: `validate_payload` refuses the connection (or
//! HTTP request) with `400`, `on_push` / `on_pull` fail the RPC with a typed `UnknownError` whose
//! cause carries the hook's message, and a push refused by `on_push` stores nothing.

use serde_json::value::RawValue;
use serde_json::Value;

use crate::protocol::{Cursor, EventIn, SyncError, Transport};

/// Why a hook refused a request. The message reaches the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookError {
    /// Sent as the error's `cause.message`.
    pub message: String,
}

impl HookError {
    /// A refusal with this message.
    pub fn new(message: impl Into<String>) -> Self {
        HookError {
            message: message.into(),
        }
    }
}

impl From<HookError> for SyncError {
    fn from(e: HookError) -> Self {
        // `Error` is what the reference's UnknownError carries for a thrown `new Error(…)`.
        SyncError::unknown("Error", e.message)
    }
}

/// Read access to a request's headers, looked up only when a hook asks.
pub trait HeaderSource {
    /// The value of a header (name in any case).
    fn header(&self, name: &str) -> Option<String>;
}

impl HeaderSource for [(String, String)] {
    fn header(&self, name: &str) -> Option<String> {
        find_header(self, name).map(str::to_owned)
    }
}

/// What `validate_payload` knows about a sync request.
pub struct ConnectContext<'a> {
    /// The store the client asks for.
    pub store_id: &'a str,
    /// WebSocket upgrade or HTTP request.
    pub transport: Transport,
    /// Every header of the request (cookies, authorization, …).
    pub headers: &'a dyn HeaderSource,
}

impl ConnectContext<'_> {
    /// The value of a request header (name in any case).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.header(name)
    }
}

impl std::fmt::Debug for ConnectContext<'_> {
    // Header values (cookies, tokens) stay out of debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectContext")
            .field("store_id", &self.store_id)
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

/// What `on_push` and `on_pull` know about the request.
#[derive(Debug)]
pub struct RequestContext<'a> {
    /// The store.
    pub store_id: &'a str,
    /// The transport the request came on.
    pub transport: Transport,
    /// The RPC request's `payload` field (the client's `syncPayload`), as raw JSON.
    pub payload: Option<&'a RawValue>,
    /// The request headers configured in `FORWARD_HEADERS` (for WebSocket, those of the upgrade
    /// request), names in lower case.
    pub headers: &'a [(String, String)],
}

impl RequestContext<'_> {
    /// The client's `syncPayload`, parsed (`None` when absent).
    pub fn payload_json(&self) -> Option<Value> {
        self.payload.and_then(|raw| serde_json::from_str(raw.get()).ok())
    }

    /// The value of a forwarded header (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(self.headers, name)
    }
}

fn find_header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Customisation points of the sync backend. Every method has a default that accepts, so an
/// implementation overrides only what it needs.
///
/// Hooks run on every request, so they should be quick; they may await (e.g. look a session up).
#[allow(async_fn_in_trait)]
pub trait SyncHooks: 'static {
    /// Set to `true` when implementing [`SyncHooks::on_pull_res`]: pages are then also built for
    /// pushes no live pull receives, so the hook sees every one. (Without it, the server skips
    /// that work.)
    const OBSERVES_PAGES: bool = false;

    /// Whether pages are built for pushes no live pull receives, for [`SyncHooks::on_pull_res`]:
    /// [`SyncHooks::OBSERVES_PAGES`] unless an implementation knows better at run time.
    fn observes_pages(&self) -> bool {
        Self::OBSERVES_PAGES
    }

    /// Runs in the Worker for every sync request before it reaches the store: once per WebSocket
    /// connection (before the upgrade) and for every HTTP request. Runs after the built-in
    /// `AUTH_TOKEN` check; to rely on this hook alone, set `ALLOW_ANONYMOUS=true`.
    async fn validate_payload(&self, payload: Option<&Value>, ctx: &ConnectContext<'_>) -> Result<(), HookError> {
        let _ = (payload, ctx);
        Ok(())
    }

    /// Runs in the store's Durable Object before a non-empty push is checked or stored.
    async fn on_push(&self, batch: &[EventIn<'_>], ctx: &RequestContext<'_>) -> Result<(), HookError> {
        let _ = (batch, ctx);
        Ok(())
    }

    /// Runs in the store's Durable Object before a pull reads anything.
    async fn on_pull(&self, cursor: Option<&Cursor>, live: bool, ctx: &RequestContext<'_>) -> Result<(), HookError> {
        let _ = (cursor, live, ctx);
        Ok(())
    }

    /// Observes the outcome of every push that reached the store (after `on_push`), once it is
    /// answered: `Ok` when it was stored, the error the client received otherwise.
    async fn on_push_res(&self, outcome: Result<(), &SyncError>, ctx: &RequestContext<'_>) {
        let _ = (outcome, ctx);
    }

    /// Observes every `PullResponse` page (its JSON) the store sends: the pages of a pull, and the
    /// pages that carry a push to live pulls (once per page, not per receiver; `ctx` is then the
    /// pusher's). Synchronous, because it runs while pages are being written out.
    fn on_pull_res(&self, page: &str, ctx: &RequestContext<'_>) {
        let _ = (page, ctx);
    }
}

/// The hooks of the stock worker: none.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl SyncHooks for NoHooks {}
