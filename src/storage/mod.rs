//! Everything a store keeps: its event log, head and backendId, and the DO RPC subscribers of
//! its live pulls. The sync core talks to storage only through [`EventLog`], so the same core
//! runs on Durable Object SQLite and D1 in the Worker and on `rusqlite` in native tests, with the
//! same SQL ([`sql`]).
//!
//! The layout is the reference's (format version 7, see [`sql`]), so a store written by the
//! TypeScript server is served by this one and the other way round.

pub mod pg_sql;
pub mod sql;

#[cfg(target_arch = "wasm32")]
pub mod d1;
#[cfg(target_arch = "wasm32")]
pub mod do_sqlite;
#[cfg(target_arch = "wasm32")]
pub mod engine;
#[cfg(all(target_arch = "wasm32", feature = "postgres"))]
pub mod postgres;

pub use crate::outbox::SinkState;
use crate::protocol::CallerContext;
use crate::protocol::EventIn;

/// A live-pull subscriber of the DO RPC transport, kept in the store's storage so it survives
/// eviction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    /// Where to call `syncUpdateRpc`.
    pub caller: CallerContext,
    /// The Effect RPC request id of the subscribing pull; the client routes updates by it.
    pub request_id: String,
    /// When it subscribed (ms since the epoch).
    pub subscribed_at: i64,
}

/// What the server keeps about a store besides its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreMeta {
    /// Identifies this incarnation of the store's storage; clients reset when it changes.
    pub backend_id: String,
    /// The `seqNum` of the last event; a push must start right after it. 0 for an empty store.
    pub head: i64,
}

/// A stored event, already encoded as a `PullResponse.batch` item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredItem {
    /// The event's sequence number (to continue reading after it).
    pub seq_num: i64,
    /// `{"eventEncoded":{…},"metadata":{…}}` as JSON text.
    pub json: String,
}

/// The `context_7` row of a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextRow {
    /// Stored head.
    pub current_head: i64,
    /// Stored backendId.
    pub backend_id: String,
}

/// A failure inside the storage engine (SQL error, engine unavailable). The sync core reports
/// it to the client as `UnknownError`; nothing is half-written, since writes are atomic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("storage error: {0}")]
pub struct StorageError(pub String);

/// When the events of an append were created.
#[derive(Debug, Clone, Copy)]
pub enum CreatedAt<'a> {
    /// One time for the whole batch (a push).
    All(&'a str),
    /// Each event's own time, `times[i]` for event `i` (an admin import keeps the exported
    /// times); a shorter slice repeats its last entry.
    Each(&'a [&'a str]),
}

impl CreatedAt<'_> {
    /// The time of event `i`.
    pub fn of(&self, i: usize) -> &str {
        match self {
            CreatedAt::All(time) => time,
            CreatedAt::Each(times) => times.get(i).or(times.last()).copied().unwrap_or(""),
        }
    }
}

/// What became of an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Every event is stored and the head moved to the last.
    Stored,
    /// Nothing was stored: on a shared engine ([`EventLog::shared`]) another node moved the head
    /// past the batch's parent, or reset the store, since this node last read them. The caller
    /// reads the store's state again ([`EventLog::load_context`]) and judges the push on it.
    Stale,
    /// Nothing was stored: the engine cannot hold the batch as sent, whoever sends it (Postgres:
    /// a NUL character, or `args` JSONB refuses, such as a lone surrogate escape). The client's
    /// input, not the backend, is at fault; the reason says what.
    Unstorable(String),
}

/// One store's persistent state, as a storage engine provides it.
///
/// Methods are `async` because some engines (D1) are remote; Durable Object SQLite completes
/// them without yielding.
#[allow(async_fn_in_trait)]
pub trait EventLog {
    /// The engine's name, as `STORAGE` spells it.
    fn engine_name(&self) -> &'static str;
    /// Whether other processes write this log too (Postgres with several sync nodes): then the
    /// head and backendId this object holds may be stale, the storage decides each append
    /// ([`Appended::Stale`]), and [`EventLog::load_context`] reads the authoritative state.
    fn shared(&self) -> bool {
        false
    }
    /// Whether the stored head may be behind the log when the store opens, for reasons no request
    /// of this object saw fail: then [`open_store`] reads the log's last `seqNum` every time. An
    /// engine that writes the head with the events in one database answers `false`: its head is
    /// read from the log only when there is cause (see [`open_store`]).
    fn head_may_lag(&self) -> bool {
        true
    }
    /// Creates the store's tables when they do not exist, and tells whether the event log's
    /// table was created by this call (so it holds no event). An engine that cannot tell without
    /// reading a row answers `false`.
    async fn create_tables(&self) -> Result<bool, StorageError>;
    /// Reads the store's context row, if any.
    async fn load_context(&self) -> Result<Option<ContextRow>, StorageError>;
    /// Writes the store's context row.
    async fn save_context(&self, row: &ContextRow) -> Result<(), StorageError>;
    /// The highest stored `seqNum`, if any event is stored.
    async fn max_seq_num(&self) -> Result<Option<i64>, StorageError>;
    /// How many events have a `seqNum` greater than `after` (all events for `None`).
    async fn count_after(&self, after: Option<i64>) -> Result<u64, StorageError>;
    /// Up to `limit` events after `after`, in ascending `seqNum` order. An engine may return fewer
    /// (but at least one, if any exist) to bound the size of its response.
    async fn read_after(&self, after: Option<i64>, limit: usize) -> Result<Vec<StoredItem>, StorageError>;
    /// Approximate bytes of the stored events ([`sql::size_bytes`]).
    async fn size_bytes(&self) -> Result<u64, StorageError>;
    /// Deletes every event and then writes `context` (the admin API's reset: head 0 and a new
    /// backendId). Events go first, so a failure in between leaves the old backendId on an
    /// emptied log — clients still fail loudly (ServerAhead) and a retried reset completes it.
    async fn clear(&self, context: &ContextRow) -> Result<(), StorageError>;
    /// Appends `batch` and writes `context` (the head moved to the batch's last `seqNum`),
    /// atomically where the engine allows: every event and the new head are stored, or nothing
    /// is. (D1 keeps the head in the object's SQLite, a second database: there the events go
    /// first, and opening the store repairs a head left behind.) This is the only way the head
    /// moves: once per append, whatever the batch's size. A shared engine stores the batch only
    /// if the head is still the batch's first parent and the backendId still `context`'s, and
    /// answers [`Appended::Stale`] otherwise; the others always store.
    async fn append(
        &self,
        batch: &[EventIn<'_>],
        created_at: CreatedAt<'_>,
        context: &ContextRow,
    ) -> Result<Appended, StorageError>;
    /// The clients subscribed to this store's new events over DO RPC.
    async fn subscribers(&self) -> Result<Vec<Subscriber>, StorageError>;
    /// Records a subscriber (replacing the same client object's earlier one), then keeps only
    /// the `keep` most recent.
    async fn subscribe(&self, subscriber: &Subscriber, keep: usize) -> Result<(), StorageError>;
    /// Forgets a subscriber.
    async fn unsubscribe(&self, caller: &CallerContext) -> Result<(), StorageError>;
    /// Creates the outbox when needed and records each of `sinks` not recorded yet, its cursor
    /// at `head` (events stored before a sink was configured are not delivered to it).
    async fn open_outbox(&self, sinks: &[&str], head: i64) -> Result<(), StorageError>;
    /// Every recorded sink's state (none when the outbox was never created).
    async fn outbox(&self) -> Result<Vec<SinkState>, StorageError>;
    /// Writes a sink's state, with `state.version` the version it was read at, unless another
    /// write came in between: then nothing is written and the answer is `false`.
    async fn save_sink(&self, state: &SinkState) -> Result<bool, StorageError>;
}

/// Opens a store: creates its tables, then loads its context, or creates it with a new
/// backendId on first use.
///
/// The log is the source of truth for the head. The reference never checks the stored head
/// against the log; if they disagree (a context row lost or older than the events), appending
/// at the stale head would fail on every push, so the head is moved up to the last stored event.
/// The log's end is read when the store has no context row (unless its log was created just
/// now), when `verify_head` asks (the
/// core's first opening after a storage error, which may have left the head behind), and on
/// engines whose head [may lag](EventLog::head_may_lag); otherwise the opening reads no event
/// row (Cloudflare bills rows read), and a head left behind by another writer is found by the
/// first push that claims a later one (`Core`'s push).
pub async fn open_store<L: EventLog>(
    log: &L,
    new_backend_id: impl FnOnce() -> String,
    verify_head: bool,
) -> Result<StoreMeta, StorageError> {
    let log_is_new = log.create_tables().await?;
    let context = log.load_context().await?;
    let max_seq = if (context.is_none() && !log_is_new) || verify_head || log.head_may_lag() {
        log.max_seq_num().await?
    } else {
        None
    };
    let (row, dirty) = match context {
        Some(row) => match max_seq {
            Some(max) if max > row.current_head => (
                ContextRow {
                    current_head: max,
                    backend_id: row.backend_id,
                },
                true,
            ),
            _ => (row, false),
        },
        None => (
            ContextRow {
                current_head: max_seq.unwrap_or(0).max(0),
                backend_id: new_backend_id(),
            },
            true,
        ),
    };
    if dirty {
        log.save_context(&row).await?;
        if log.shared() {
            // Another node may have given the store its backendId first; the stored one wins.
            if let Some(stored) = log.load_context().await? {
                return Ok(StoreMeta {
                    backend_id: stored.backend_id,
                    head: stored.current_head,
                });
            }
        }
    }
    Ok(StoreMeta {
        backend_id: row.backend_id,
        head: row.current_head,
    })
}
