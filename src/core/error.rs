//! Why a request failed, as a value set where the failure is found, and the one place that
//! turns it into what the client receives ([`Error::to_wire`]) and how it is logged.

use crate::hooks::HookError;
use crate::log::Level;
use crate::protocol::{SyncError, Transport};
use crate::storage::StorageError;

/// A request's failure inside the sync core. Every variant maps onto one of the three errors
/// the clients can decode (see [`SyncError`]); the variant, not its text, decides the mapping,
/// the log level and whether the backend is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The first event's `parentSeqNum` is not the store's head.
    #[error("the head is {head}, the batch starts after {provided}")]
    ServerAhead {
        /// The store's head.
        head: i64,
        /// The parent the client sent.
        provided: i64,
    },
    /// A backendId from an earlier incarnation of the store.
    #[error("expected backendId {expected}, received {received}")]
    BackendIdMismatch {
        /// The store's backendId.
        expected: String,
        /// The one the client sent.
        received: String,
    },
    /// A position past the store's head: the store never gave it out.
    #[error("position {position} is past the store's head {head}")]
    UnknownPosition {
        /// The client's position.
        position: i64,
        /// The store's head.
        head: i64,
        /// The store's backendId.
        backend_id: String,
    },
    /// The payload does not match the RPC's schema, or names something impossible.
    #[error("{0}")]
    InvalidRequest(String),
    /// The batch's sequence numbers do not form a chain.
    #[error("{0}")]
    InvalidPushBatch(String),
    /// More events in one push than `MAX_PUSH_EVENTS`.
    #[error("a push may carry at most {max} events, this one has {events}; send them in several pushes")]
    TooManyEvents {
        /// The limit.
        max: usize,
        /// Events in the push.
        events: usize,
    },
    /// An event's `args` nest deeper than [`crate::core::MAX_ARGS_DEPTH`].
    #[error("event {index}: args nest more than {max} levels deep")]
    ArgsTooDeep {
        /// The event's position in the batch.
        index: usize,
        /// The limit.
        max: usize,
    },
    /// A message over `MAX_MESSAGE_BYTES`; `size` is `None` when reading stopped at the limit.
    #[error("{}", too_large_message(*.size, *.max))]
    MessageTooLarge {
        /// The message's size, when known.
        size: Option<usize>,
        /// The limit.
        max: usize,
    },
    /// An RPC name the transport does not serve.
    #[error("unknown RPC tag {tag:?}; this transport serves {}", served(*.transport))]
    UnknownRpc {
        /// The name the client sent.
        tag: String,
        /// The transport it came on.
        transport: Transport,
    },
    /// A transport `ENABLED_TRANSPORTS` leaves out.
    #[error("{}", transport_disabled(*.0))]
    TransportDisabled(Transport),
    /// Over `MAX_PUSHES_PER_SECOND` on one connection.
    #[error("a connection may push at most {0} times per second (MAX_PUSHES_PER_SECOND); retry in a moment")]
    RateLimited(u32),
    /// More live pulls on one socket than [`crate::core::MAX_LIVE_PULLS_PER_SOCKET`].
    #[error("a connection may hold at most {0} live pulls")]
    TooManyLivePulls(usize),
    /// The storage engine cannot hold an event as sent (see [`crate::storage::Appended::Unstorable`]).
    #[error("this server's storage cannot hold the batch as sent: {0}")]
    Unstorable(String),
    /// The request names another store than the one its connection (or this object) serves.
    #[error("the request names store {requested:?}, but this connection is for another store")]
    StoreMismatch {
        /// The storeId in the request.
        requested: String,
    },
    /// A push from a connection admitted to read only (`READ_TOKEN`, or a token's `access: "read"`).
    #[error("this connection may pull but not push: its token is read-only")]
    ReadOnly,
    /// An event whose name `ALLOWED_EVENTS` does not let through.
    #[error(
        "event {index}: {name:?} is not an event this server accepts (ALLOWED_EVENTS); nothing of the push was stored"
    )]
    EventNotAllowed {
        /// The event's position in the batch.
        index: usize,
        /// Its name.
        name: String,
    },
    /// An event's `args` over `MAX_ARGS_BYTES`.
    #[error("event {index}: args of {size} bytes, more than the {max} MAX_ARGS_BYTES allows; nothing of the push was stored")]
    ArgsTooLarge {
        /// The event's position in the batch.
        index: usize,
        /// The size of its `args` JSON.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A push that would take its store past a quota.
    #[error("the store would hold {would_be}, more than the {max} {setting} allows; nothing of the push was stored")]
    StoreQuota {
        /// The setting: `MAX_STORE_EVENTS` or `MAX_STORE_BYTES`.
        setting: &'static str,
        /// The quota.
        max: u64,
        /// What the store would hold with the push.
        would_be: u64,
    },
    /// A hook refused the request.
    #[error("{}", .0.message)]
    Hook(HookError),
    /// The storage engine failed; the backend's fault.
    #[error("{}", .0.0)]
    Storage(StorageError),
    /// A socket's own state could not be read or written; the backend's fault.
    #[error("{0}")]
    ConnectionState(String),
    /// The configuration is invalid, so the object serves nothing.
    #[error("{0}")]
    Config(String),
}

/// The text of a refusal for a message over the size limit.
pub fn too_large_message(size: Option<usize>, max: usize) -> String {
    match size {
        Some(size) => format!("the message has {size} bytes; this server accepts at most {max}"),
        None => format!("the message has more than {max} bytes; this server accepts at most {max}"),
    }
}

/// The text of a refusal for a transport `ENABLED_TRANSPORTS` leaves out.
pub fn transport_disabled(transport: Transport) -> String {
    format!("Transport {transport} is not enabled on this sync backend (ENABLED_TRANSPORTS)")
}

fn served(transport: Transport) -> String {
    let names: Vec<&str> = transport.rpcs().iter().map(|(name, _)| *name).collect();
    match names.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

impl Error {
    /// A storage failure described by `message` (the backend's fault: 500, logged as an error).
    pub fn storage(message: impl Into<String>) -> Self {
        Error::Storage(StorageError(message.into()))
    }
}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Self {
        Error::Storage(e)
    }
}

impl From<HookError> for Error {
    fn from(e: HookError) -> Self {
        Error::Hook(e)
    }
}

impl Error {
    /// The name clients see: the error's `_tag`, or `cause.name` inside an `UnknownError`.
    pub fn name(&self) -> &'static str {
        match self {
            Error::ServerAhead { .. } => "ServerAheadError",
            Error::BackendIdMismatch { .. } => "BackendIdMismatchError",
            Error::InvalidRequest(_) | Error::StoreMismatch { .. } => "InvalidRequestError",
            Error::UnknownPosition { .. } => "UnknownPositionError",
            Error::InvalidPushBatch(_) => "InvalidPushBatchError",
            Error::TooManyEvents { .. } => "TooManyEventsError",
            Error::ArgsTooDeep { .. } => "ArgsTooDeepError",
            Error::MessageTooLarge { .. } => "MessageTooLargeError",
            Error::UnknownRpc { .. } => "UnknownRpcError",
            Error::TransportDisabled(_) => "TransportDisabledError",
            Error::RateLimited(_) => "RateLimitError",
            Error::TooManyLivePulls(_) => "TooManyLivePullsError",
            Error::Unstorable(_) => "UnstorableEventError",
            Error::ReadOnly => "ReadOnlyError",
            Error::EventNotAllowed { .. } => "EventNotAllowedError",
            Error::ArgsTooLarge { .. } => "ArgsTooLargeError",
            Error::StoreQuota { .. } => "StoreQuotaError",
            // What the reference's UnknownError carries for a thrown `new Error(…)`.
            Error::Hook(_) => "Error",
            Error::Storage(_) => "StorageError",
            Error::ConnectionState(_) => "ConnectionStateError",
            Error::Config(_) => "ConfigError",
        }
    }

    /// The error as the client receives it.
    pub fn to_wire(&self) -> SyncError {
        match self {
            Error::ServerAhead { head, provided } => SyncError::ServerAhead {
                minimum_expected_num: *head,
                provided_num: *provided,
            },
            Error::BackendIdMismatch { expected, received } => SyncError::BackendIdMismatch {
                expected: expected.clone(),
                received: received.clone(),
            },
            other => SyncError::unknown(other.name(), other.to_string()),
        }
    }

    /// Whether the backend, not the client, is at fault: such failures are logged at `error`
    /// level with their message (which comes from the runtime or the database, never from the
    /// client's events).
    pub fn is_backends_fault(&self) -> bool {
        matches!(self, Error::Storage(_) | Error::ConnectionState(_) | Error::Config(_))
    }

    /// The HTTP status of a transport that answers with statuses (the sync-electric endpoint):
    /// the client's request can never succeed as sent (400), refused by a rule of the log (409),
    /// by a hook, the connection's read-only grant or an event rule (403), by a size limit (413),
    /// a rate limit (429), or the backend failed (500).
    pub fn http_status(&self) -> u16 {
        match self {
            Error::ServerAhead { .. } | Error::BackendIdMismatch { .. } | Error::UnknownPosition { .. } => 409,
            Error::Hook(_) | Error::ReadOnly | Error::EventNotAllowed { .. } | Error::StoreQuota { .. } => 403,
            Error::MessageTooLarge { .. } | Error::TooManyEvents { .. } | Error::ArgsTooLarge { .. } => 413,
            Error::RateLimited(_) => 429,
            Error::Storage(_) | Error::ConnectionState(_) | Error::Config(_) => 500,
            Error::InvalidRequest(_)
            | Error::InvalidPushBatch(_)
            | Error::ArgsTooDeep { .. }
            | Error::UnknownRpc { .. }
            | Error::TransportDisabled(_)
            | Error::TooManyLivePulls(_)
            | Error::Unstorable(_)
            | Error::StoreMismatch { .. } => 400,
        }
    }

    /// The level of the push or pull line that reports it: refusals the sync protocol expects
    /// (a client behind, a reset store) are normal traffic; other failures are warnings.
    pub fn level(&self) -> Level {
        match self {
            Error::ServerAhead { .. } | Error::BackendIdMismatch { .. } | Error::UnknownPosition { .. } => Level::Info,
            _ => Level::Warn,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_mapping() {
        assert_eq!(
            Error::ServerAhead { head: 2, provided: 8 }.to_wire(),
            SyncError::ServerAhead {
                minimum_expected_num: 2,
                provided_num: 8
            }
        );
        let hook = Error::Hook(HookError::new("no")).to_wire();
        assert_eq!(hook, SyncError::unknown("Error", "no"));
        let rpc = Error::UnknownRpc {
            tag: "X".into(),
            transport: Transport::Http,
        };
        assert_eq!(
            rpc.to_string(),
            r#"unknown RPC tag "X"; this transport serves SyncHttpRpc.Pull, SyncHttpRpc.Push and SyncHttpRpc.Ping"#
        );
        assert!(Error::Storage(StorageError("disk".into())).is_backends_fault());
        assert!(!Error::InvalidRequest("x".into()).is_backends_fault());
        assert_eq!(
            Error::StoreMismatch { requested: "a".into() }.name(),
            "InvalidRequestError"
        );
        assert_eq!(
            Error::MessageTooLarge { size: None, max: 10 }.to_string(),
            "the message has more than 10 bytes; this server accepts at most 10"
        );
    }
}
