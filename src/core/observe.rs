//! The core's log lines and spans (see [`crate::log`] and [`crate::otel`]). Each line takes
//! counts and sizes, never events, payloads or headers.

use super::{Conn, Core, Error, Host};
use crate::hooks::SyncHooks;
use crate::log::Level;
use crate::otel::Span;
use crate::protocol::{Operation, RpcRequest, Transport};
use crate::storage::{EventLog, StoreMeta};

/// What a pull did, for its log line.
#[derive(Debug, Clone, Default)]
pub(super) struct PullStats {
    /// Whether it stays open for later pushes.
    pub live: bool,
    /// The client's cursor, `None` for a pull from the start (or an unreadable request).
    pub cursor: Option<i64>,
    /// Events sent in the initial pages.
    pub events: u64,
    /// Pages sent.
    pub pages: u64,
}

/// The size of an RPC request's payload as the client sent it, in bytes.
pub(super) fn payload_bytes(request: &RpcRequest<'_>) -> i64 {
    request.payload.map_or(0, |p| p.get().len() as i64)
}

impl<L: EventLog + 'static, X: Host + 'static, H: SyncHooks> Core<L, X, H> {
    /// The start time of a push or pull, read only when its line may be written.
    pub(super) fn clock(&self) -> Option<i64> {
        self.config
            .log_level
            .enabled(Level::Warn)
            .then(|| self.host.now_millis())
    }

    /// The `push` line (`info` when accepted or refused as the protocol expects, else `warn`),
    /// plus an `error` line for a failure that is the backend's fault. `events` is `None` when
    /// the payload could not be read.
    pub(super) fn log_push(
        &self,
        transport: Transport,
        store_id: &str,
        events: Option<usize>,
        bytes: i64,
        started: Option<i64>,
        result: &Result<(), Error>,
    ) {
        self.log_backends_fault("push", transport, store_id, result);
        let level = result.as_ref().err().map_or(Level::Info, Error::level);
        let Some(line) = self.config.log_level.line(level, "push") else {
            return;
        };
        self.host.log(
            line.str("storeId", store_id)
                .str("transport", transport.as_str())
                .opt_int("events", events.map(|n| n as i64))
                .int("bytes", bytes)
                .ms(started, || self.host.now_millis())
                .str("outcome", outcome(result)),
        );
    }

    /// The `pull` line, as [`Self::log_push`].
    pub(super) fn log_pull<T>(
        &self,
        transport: Transport,
        store_id: &str,
        stats: &PullStats,
        started: Option<i64>,
        result: &Result<T, Error>,
    ) {
        self.log_backends_fault("pull", transport, store_id, result);
        let level = result.as_ref().err().map_or(Level::Info, Error::level);
        let Some(line) = self.config.log_level.line(level, "pull") else {
            return;
        };
        self.host.log(
            line.str("storeId", store_id)
                .str("transport", transport.as_str())
                .bool("live", stats.live)
                .opt_int("cursor", stats.cursor)
                .int("events", stats.events as i64)
                .int("pages", stats.pages as i64)
                .ms(started, || self.host.now_millis())
                .str("outcome", outcome(result)),
        );
    }

    /// A `warn` line for a message refused before it could be handled: a `push` or `pull` line
    /// when its RPC name says which, else a `request` line (malformed, binary, unknown RPC).
    pub(super) fn log_unhandled(
        &self,
        conn: &Conn<'_, X::Socket>,
        operation: Option<Operation>,
        bytes: usize,
        outcome: &str,
    ) {
        let event = match operation {
            Some(Operation::Push) => "push",
            Some(Operation::Pull) => "pull",
            _ => "request",
        };
        let Some(line) = self.config.log_level.line(Level::Warn, event) else {
            return;
        };
        self.host.log(
            line.str("storeId", &self.store_for_log(conn))
                .str("transport", conn.transport.as_str())
                .int("bytes", bytes as i64)
                .str("outcome", outcome),
        );
    }

    /// An `error` line, with its message, for a failure that is the backend's fault: those
    /// messages come from the runtime and the database, never from the client's events.
    fn log_backends_fault<T>(&self, op: &'static str, transport: Transport, store_id: &str, result: &Result<T, Error>) {
        let Err(error) = result else { return };
        if !error.is_backends_fault() {
            return;
        }
        if let Some(line) = self.config.log_level.line(Level::Error, "error") {
            self.host.log(
                line.str("storeId", store_id)
                    .str("transport", transport.as_str())
                    .str("op", op)
                    .str("error", error.name())
                    .str("message", &error.to_string()),
            );
        }
    }

    /// One line per (re)start of a store's object: shows evictions and wake-ups.
    pub(super) fn log_store_opened(&self, store_id: &str, meta: &StoreMeta) {
        if let Some(line) = self.config.log_level.line(Level::Info, "store_opened") {
            self.host.log(
                line.str("storeId", store_id)
                    .int("head", meta.head)
                    .str("backendId", &meta.backend_id),
            );
        }
    }

    /// Starts a span when tracing is on, in the client's trace when the request names one
    /// (Effect's trace and span ids).
    pub(super) fn span(&self, name: &'static str, parent: Option<(&str, &str)>) -> Option<Span> {
        self.config.otel.as_ref()?;
        Some(Span::start(
            name,
            self.host.now_millis(),
            self.host.random_span_ids(),
            parent,
        ))
    }

    /// Ends a span and hands it to the host for export.
    pub(super) fn end_span(
        &self,
        span: Option<Span>,
        store_id: &str,
        transport: Transport,
        events: u64,
        error: Option<&Error>,
    ) {
        let Some(mut span) = span else { return };
        span.attr("livestore.store_id", store_id)
            .attr("livestore.transport", transport.as_str())
            .attr_int("livestore.batch_size", events as i64)
            .end(
                self.host.now_millis(),
                error.map_or(Ok(()), |e| Err(e.to_wire().to_string())),
            );
        self.host.export_span(span);
    }
}

/// `ok`, or the error's name (`ServerAheadError`, `InvalidRequestError`, …). Never its message:
/// parse errors quote the client's payload.
fn outcome<T>(result: &Result<T, Error>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => e.name(),
    }
}
