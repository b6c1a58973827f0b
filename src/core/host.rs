//! What the sync core needs from the runtime around it. The Durable Object implements it over
//! the Workers runtime (`object::host`); native tests implement it with a clock they control and
//! recorders for what goes out.

use futures::future::LocalBoxFuture;

use crate::directory::Entry;
use crate::log::Line;
use crate::otel::Span;
use crate::outbox::{SinkConfig, SinkMessage};
use crate::protocol::CallerContext;

/// A socket with live pulls: the request ids whose streams receive every new batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSocket<S> {
    /// The socket.
    pub socket: S,
    /// Its live pulls' request ids.
    pub pulls: Vec<String>,
}

/// Why calling a client object's `syncUpdateRpc` failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateFailure {
    /// The object can never be reached (its binding is gone, its id is malformed): the
    /// subscriber is dropped. Otherwise it stays, and the next batch is tried again.
    pub permanent: bool,
    /// What the runtime said.
    pub message: String,
}

/// The runtime services and the live-pull delivery the core uses.
pub trait Host {
    /// A connection that can hold live pulls (a WebSocket in the Durable Object).
    type Socket: Clone + PartialEq;

    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> i64;
    /// A fresh backendId for a new store or a reset one.
    fn new_backend_id(&self) -> String;
    /// 24 random bytes: a span's trace and span ids.
    fn random_span_ids(&self) -> [u8; 24];
    /// Writes one structured log line.
    fn log(&self, line: Line);
    /// Sends a finished span to the collector, without holding up the request.
    fn export_span(&self, span: Span);

    /// Every socket with live pulls, as recorded with the sockets themselves (the record that
    /// outlives eviction); read once after a wake, then kept in step by the core.
    fn live_sockets(&self) -> Vec<LiveSocket<Self::Socket>>;
    /// Records a socket's live pulls with the socket.
    fn save_live_pulls(&self, socket: &Self::Socket, pulls: &[String]) -> Result<(), String>;
    /// Counts a push in the socket's current one-second window (`second`); returns the pushes in
    /// that window, this one included.
    fn count_push(&self, socket: &Self::Socket, second: i64) -> u32;
    /// Sends pull-response pages to every live pull of the given sockets, in order.
    /// `generation` changes whenever the sockets or their pulls do, so a host may keep what it
    /// derives from them (the DO keeps its sockets grouped by request id, in JavaScript) until
    /// it changes.
    fn send_pages(&self, sockets: &[LiveSocket<Self::Socket>], generation: u64, pages: &[String]);
    /// Closes every socket of the store (after a reset); returns how many there were.
    fn close_sockets(&self, code: u16, reason: &str) -> usize;
    /// Open sockets of the store, for the admin figures.
    fn socket_count(&self) -> usize;

    /// Calls a client Durable Object's `syncUpdateRpc` with one page of a DO RPC live pull.
    fn sync_update(
        &self,
        caller: &CallerContext,
        request_id: &str,
        page: &str,
    ) -> LocalBoxFuture<'static, Result<(), UpdateFailure>>;
    /// Runs a task beside the current request, keeping the store awake until it ends.
    fn spawn(&self, task: LocalBoxFuture<'static, ()>);
    /// Resolves after `ms` milliseconds (a held pull's timeout).
    fn sleep(&self, ms: u64) -> LocalBoxFuture<'static, ()>;

    /// Has the runtime run the store's alarm ([`crate::core::Core::run_outbox`]) at `at_millis`
    /// (ms since the epoch), replacing the alarm set before; it survives eviction and restarts.
    fn set_alarm(&self, at_millis: i64);
    /// Sends one outbox batch to a sink. Resolves to the sink's answer — a webhook's HTTP status,
    /// `None` from a queue that took the message — or to why there was none (unreachable,
    /// timed out, refused by the runtime).
    fn send_to_sink(
        &self,
        sink: &SinkConfig,
        message: SinkMessage,
    ) -> LocalBoxFuture<'static, Result<Option<u16>, String>>;

    /// Records a store's figures in the store directory ([`crate::directory`]), or with `None`
    /// removes the store from it.
    fn tell_directory(&self, store_id: &str, entry: Option<&Entry>) -> LocalBoxFuture<'static, Result<(), String>>;
    /// The store directory's entry of a store, if it has one.
    fn directory_entry(&self, store_id: &str) -> LocalBoxFuture<'static, Result<Option<Entry>, String>>;
    /// Deletes everything the object stores (and its alarm): the last step of deleting a store.
    fn wipe_object(&self) -> LocalBoxFuture<'static, Result<(), String>>;

    /// The names of the backup bucket's objects under `prefix`, with when each was written (ms).
    fn backup_list(&self, prefix: &str) -> LocalBoxFuture<'static, Result<Vec<(String, i64)>, String>>;
    /// Writes one backup object.
    fn backup_put(&self, key: &str, body: String) -> LocalBoxFuture<'static, Result<(), String>>;
    /// Reads one backup object (`None` if it does not exist).
    fn backup_get(&self, key: &str) -> LocalBoxFuture<'static, Result<Option<String>, String>>;
}
