//! The object's `push`, `pull` and `error` log lines (see [`crate::log`]), shared by the
//! transports. Each takes counts and sizes, never the events or the client's payload.

use super::SyncObject;
use crate::hooks::SyncHooks;
use crate::js::now_millis;
use crate::log::{self, Level, Line};
use crate::protocol::{Cursor, RpcRequest, SyncError};
use crate::router::Transport;

/// What a pull did, for its log line.
pub(super) struct PullStats {
    /// Whether it stays open for later pushes.
    pub live: bool,
    /// The client's cursor, `None` for a pull from the start (or an unreadable request).
    pub cursor: Option<i64>,
    /// Events sent in the initial pages.
    pub events: u64,
    /// Pages (chunk messages) sent.
    pub pages: u64,
}

impl PullStats {
    /// Stats before anything is known of the request.
    pub fn new(live: bool, cursor: Option<&Cursor>) -> PullStats {
        PullStats {
            live,
            cursor: cursor.map(|c| c.event_sequence_number.0),
            events: 0,
            pages: 0,
        }
    }
}

/// The size of an RPC request's payload as the client sent it, in bytes.
pub(super) fn payload_bytes(request: &RpcRequest<'_>) -> i64 {
    request.payload.map_or(0, |p| p.get().len() as i64)
}

impl<H: SyncHooks> SyncObject<H> {
    /// The start time of a push or pull, read only when its line may be written.
    pub(super) fn log_clock(&self) -> Option<i64> {
        self.config.log_level.enabled(Level::Warn).then(now_millis)
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
        result: &Result<(), SyncError>,
    ) {
        self.log_unexpected("push", transport, store_id, result);
        let Some(line) = self.config.log_level.line(log::level_of(result), "push") else {
            return;
        };
        log::emit(
            line.str("storeId", store_id)
                .str("transport", transport.as_str())
                .opt_int("events", events.map(|n| n as i64))
                .int("bytes", bytes)
                .ms(started, now_millis)
                .outcome(result),
        );
    }

    /// The `pull` line, as [`Self::log_push`].
    pub(super) fn log_pull<T>(
        &self,
        transport: Transport,
        store_id: &str,
        stats: &PullStats,
        started: Option<i64>,
        result: &Result<T, SyncError>,
    ) {
        self.log_unexpected("pull", transport, store_id, result);
        let Some(line) = self.config.log_level.line(log::level_of(result), "pull") else {
            return;
        };
        log::emit(
            line.str("storeId", store_id)
                .str("transport", transport.as_str())
                .bool("live", stats.live)
                .opt_int("cursor", stats.cursor)
                .int("events", stats.events as i64)
                .int("pages", stats.pages as i64)
                .ms(started, now_millis)
                .outcome(result),
        );
    }

    /// A `warn` line for a message refused before it could be handled: a `push` or `pull` line
    /// when its RPC tag says which (too large), else a `request` line (malformed, binary, unknown
    /// RPC). `store_id` is only called when the line is written.
    pub(super) fn log_unhandled(
        &self,
        transport: Transport,
        store_id: impl FnOnce() -> String,
        rpc_tag: Option<&str>,
        bytes: usize,
        outcome: &'static str,
    ) {
        let event = match rpc_tag {
            Some(tag) if tag.ends_with(".Push") => "push",
            Some(tag) if tag.ends_with(".Pull") => "pull",
            _ => "request",
        };
        if let Some(line) = self.config.log_level.line(Level::Warn, event) {
            log::emit(
                line.str("storeId", &store_id())
                    .str("transport", transport.as_str())
                    .int("bytes", bytes as i64)
                    .str("outcome", outcome),
            );
        }
    }

    /// An `error` line for a storage or connection-state failure, with its message: those come
    /// from the runtime and the database, never from the client's events.
    fn log_unexpected<T>(&self, op: &'static str, transport: Transport, store_id: &str, result: &Result<T, SyncError>) {
        let Err(error @ SyncError::Unknown { message, .. }) = result else {
            return;
        };
        if !log::is_unexpected(error) {
            return;
        }
        if let Some(line) = self.config.log_level.line(Level::Error, "error") {
            log::emit(
                line.str("storeId", store_id)
                    .str("transport", transport.as_str())
                    .str("op", op)
                    .str("error", log::error_name(error))
                    .str("message", message),
            );
        }
    }
}

/// Adds the socket's store, from its attachment, to a line (only read when the line is written).
pub(super) fn with_store(line: Line, store_id: Option<String>) -> Line {
    match store_id {
        Some(store_id) => line.str("storeId", &store_id),
        None => line,
    }
}
