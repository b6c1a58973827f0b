//! The storage engine a store uses, chosen by `STORAGE`.

use super::d1::D1Log;
use super::do_sqlite::DoSqliteLog;
use super::{Appended, ContextRow, CreatedAt, EventLog, SinkState, StorageError, StoredItem, Subscriber};
use crate::protocol::CallerContext;
use crate::protocol::EventIn;

/// One store's log on the configured engine.
pub enum Engine {
    /// Durable Object SQLite.
    DoSqlite(DoSqliteLog),
    /// D1, with the context in Durable Object SQLite.
    D1(D1Log),
    /// PostgreSQL (builds with the `postgres` feature).
    #[cfg(feature = "postgres")]
    Postgres(super::postgres::PgLog),
}

macro_rules! delegate {
    ($self:ident, $log:ident => $call:expr) => {
        match $self {
            Engine::DoSqlite($log) => $call.await,
            Engine::D1($log) => $call.await,
            #[cfg(feature = "postgres")]
            Engine::Postgres($log) => $call.await,
        }
    };
}

impl EventLog for Engine {
    fn engine_name(&self) -> &'static str {
        match self {
            Engine::DoSqlite(log) => log.engine_name(),
            Engine::D1(log) => log.engine_name(),
            #[cfg(feature = "postgres")]
            Engine::Postgres(log) => log.engine_name(),
        }
    }

    fn shared(&self) -> bool {
        match self {
            Engine::DoSqlite(log) => log.shared(),
            Engine::D1(log) => log.shared(),
            #[cfg(feature = "postgres")]
            Engine::Postgres(log) => log.shared(),
        }
    }

    fn head_may_lag(&self) -> bool {
        match self {
            Engine::DoSqlite(log) => log.head_may_lag(),
            Engine::D1(log) => log.head_may_lag(),
            #[cfg(feature = "postgres")]
            Engine::Postgres(log) => log.head_may_lag(),
        }
    }

    async fn create_tables(&self) -> Result<bool, StorageError> {
        delegate!(self, log => log.create_tables())
    }

    async fn load_context(&self) -> Result<Option<ContextRow>, StorageError> {
        delegate!(self, log => log.load_context())
    }

    async fn save_context(&self, row: &ContextRow) -> Result<(), StorageError> {
        delegate!(self, log => log.save_context(row))
    }

    async fn max_seq_num(&self) -> Result<Option<i64>, StorageError> {
        delegate!(self, log => log.max_seq_num())
    }

    async fn count_after(&self, after: Option<i64>) -> Result<u64, StorageError> {
        delegate!(self, log => log.count_after(after))
    }

    async fn read_after(&self, after: Option<i64>, limit: usize) -> Result<Vec<StoredItem>, StorageError> {
        delegate!(self, log => log.read_after(after, limit))
    }

    async fn size_bytes(&self) -> Result<u64, StorageError> {
        delegate!(self, log => log.size_bytes())
    }

    async fn clear(&self, context: &ContextRow) -> Result<(), StorageError> {
        delegate!(self, log => log.clear(context))
    }

    async fn append(
        &self,
        batch: &[EventIn<'_>],
        created_at: CreatedAt<'_>,
        context: &ContextRow,
    ) -> Result<Appended, StorageError> {
        delegate!(self, log => log.append(batch, created_at, context))
    }

    async fn subscribers(&self) -> Result<Vec<Subscriber>, StorageError> {
        delegate!(self, log => log.subscribers())
    }

    async fn subscribe(&self, subscriber: &Subscriber, keep: usize) -> Result<(), StorageError> {
        delegate!(self, log => log.subscribe(subscriber, keep))
    }

    async fn unsubscribe(&self, caller: &CallerContext) -> Result<(), StorageError> {
        delegate!(self, log => log.unsubscribe(caller))
    }

    async fn open_outbox(&self, sinks: &[&str], head: i64) -> Result<(), StorageError> {
        delegate!(self, log => log.open_outbox(sinks, head))
    }

    async fn outbox(&self) -> Result<Vec<SinkState>, StorageError> {
        delegate!(self, log => log.outbox())
    }

    async fn save_sink(&self, state: &SinkState) -> Result<bool, StorageError> {
        delegate!(self, log => log.save_sink(state))
    }
}
