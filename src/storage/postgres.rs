//! The event log in PostgreSQL (`STORAGE=postgres`, cargo feature `postgres`), in
//! sync-electric's layout ([`super::pg_sql`]). The database is the authority for every store's
//! head and backendId, so several sync nodes (workerd processes, or Cloudflare and a self-hosted
//! node) serve the same stores: pushes are judged by the database ([`Appended::Stale`]) and
//! each stored batch is announced with `NOTIFY` on the store's channel, which the objects of the
//! other nodes `LISTEN` on to reach their own live pulls.
//!
//! One connection per object, kept across requests: it is opened on first use, reopened when it
//! dropped (eviction, a restarted database), and, while a store is listened to, reopened in the
//! background after a drop, after which the object catches up on what it missed. Requests that
//! interleave share it: every write is one statement, except a reset, which takes a connection
//! of its own for its transaction.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::str::FromStr;

use futures::StreamExt;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, Client, Statement};
use worker::postgres_tls::PassthroughTls;
use worker::{Env, SecureTransport, Socket};

use super::do_sqlite::DoSqliteLog;
use super::pg_sql as sql;
use super::{Appended, ContextRow, CreatedAt, EventLog, SinkState, StorageError, StoredItem, Subscriber};
use crate::config::PostgresSource;
use crate::core::order::Turns;
use crate::protocol::CallerContext;
use crate::protocol::EventIn;

/// How long to wait before reopening a dropped connection that has listeners, doubling up to
/// [`MAX_RECONNECT_MS`].
const FIRST_RECONNECT_MS: u64 = 100;
const MAX_RECONNECT_MS: u64 = 5_000;

/// How long a connection stays open without a query while nobody here waits for the store's
/// next batch. An open socket keeps the runtime from evicting the object, so an idle store's
/// connection is closed and its object may hibernate; the next request opens a new one (~5 ms).
const IDLE_CLOSE_MS: u64 = 10_000;

fn pg_err(e: tokio_postgres::Error) -> StorageError {
    // The driver's text for a server error is its code; the message says what happened.
    match e.as_db_error() {
        Some(db) => StorageError(format!("Postgres: {} ({})", db.message(), db.code().code())),
        None => StorageError(format!("Postgres: {e}")),
    }
}

/// An open connection and the statements prepared on it.
struct Connected {
    client: Client,
    statements: RefCell<HashMap<String, Statement>>,
}

impl Connected {
    async fn statement(&self, query: &str) -> Result<Statement, StorageError> {
        if let Some(statement) = self.statements.borrow().get(query) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(query).await.map_err(pg_err)?;
        self.statements.borrow_mut().insert(query.to_owned(), statement.clone());
        Ok(statement)
    }

    async fn query(
        &self,
        query: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
        match self.statement(query).await {
            Ok(statement) => self.client.query(&statement, params).await,
            // Preparing failed: run it unprepared so the caller gets the server's own error.
            Err(_) => self.client.query(query, params).await,
        }
    }
}

/// Which connection a driver task serves: the object's shared one (reopened after a drop while
/// the object has live pulls) or a transaction's own.
#[derive(Clone, Copy)]
enum Role {
    Shared,
    Dedicated,
}

/// What runs when another node wrote (see [`PgNode::on_change`]).
pub type OnChange = Rc<dyn Fn(Option<i64>)>;

/// The object's connection to the database, shared by its store's log.
pub struct PgNode {
    env: Env,
    source: PostgresSource,
    current: RefCell<Option<Rc<Connected>>>,
    connecting: Turns,
    /// Channels this object listens on (its store's), renewed on every new connection.
    channels: RefCell<Vec<String>>,
    /// Called when another node wrote to a listened store (with the head it announced, `None`
    /// for a reset), and after a reconnect.
    on_change: RefCell<Option<OnChange>>,
    /// A background reconnect is under way.
    reconnecting: Cell<bool>,
    /// A connection was open before: a new one may have missed notifications.
    connected_before: Cell<bool>,
    /// Whether the object has live pulls, which need the connection to hear other nodes.
    listened_to: RefCell<Option<Rc<dyn Fn() -> bool>>>,
    /// When the connection was last used (ms), and whether an idle check is scheduled.
    last_used: Cell<f64>,
    idle_check: Cell<bool>,
    me: Weak<PgNode>,
}

impl PgNode {
    /// The connection an object uses, opened on first use.
    pub fn new(env: Env, source: PostgresSource) -> Rc<Self> {
        Rc::new_cyclic(|me| PgNode {
            env,
            source,
            current: RefCell::new(None),
            connecting: Turns::new(),
            channels: RefCell::new(Vec::new()),
            on_change: RefCell::new(None),
            reconnecting: Cell::new(false),
            connected_before: Cell::new(false),
            listened_to: RefCell::new(None),
            last_used: Cell::new(0.0),
            idle_check: Cell::new(false),
            me: me.clone(),
        })
    }

    /// Sets what runs when another node writes to a listened store: it gets the head the
    /// writer announced (`None`: read the store again whatever it holds). The object's own
    /// pushes are announced to it too, and skipped by the head.
    pub fn on_change(&self, callback: OnChange) {
        *self.on_change.borrow_mut() = Some(callback);
    }

    /// Sets how to tell whether the object has live pulls (see [`IDLE_CLOSE_MS`]).
    pub fn listened_to(&self, has_live_pulls: Rc<dyn Fn() -> bool>) {
        *self.listened_to.borrow_mut() = Some(has_live_pulls);
    }

    fn has_listeners(&self) -> bool {
        let check = self.listened_to.borrow().clone();
        check.is_some_and(|check| check())
    }

    /// Notes a use of the connection (or the end of a live pull) and makes sure an idle check
    /// follows: an idle connection without listeners is closed.
    pub fn touch(&self) {
        self.last_used.set(crate::js::now_millis() as f64);
        if self.idle_check.replace(true) {
            return;
        }
        let node = self.me.clone();
        worker::wasm_bindgen_futures::spawn_local(async move {
            let mut wait = IDLE_CLOSE_MS;
            loop {
                worker::Delay::from(std::time::Duration::from_millis(wait)).await;
                let Some(node) = node.upgrade() else { return };
                let idle = crate::js::now_millis() as f64 - node.last_used.get();
                if idle < IDLE_CLOSE_MS as f64 {
                    wait = IDLE_CLOSE_MS - idle as u64;
                    continue;
                }
                node.idle_check.set(false);
                // Live pulls keep it open; when the last one ends, its socket's close touches
                // the connection again and a new check follows.
                if !node.has_listeners() {
                    node.current.borrow_mut().take();
                }
                return;
            }
        });
    }

    fn changed(&self, head: Option<i64>) {
        let callback = self.on_change.borrow().clone();
        if let Some(callback) = callback {
            callback(head);
        }
    }

    /// The open connection, opening one if there is none or it dropped.
    async fn connection(&self) -> Result<Rc<Connected>, StorageError> {
        self.touch();
        if let Some(open) = self.open_connection() {
            return Ok(open);
        }
        let _turn = self.connecting.ticket().await;
        if let Some(open) = self.open_connection() {
            return Ok(open);
        }
        self.current.borrow_mut().take();
        let connected = Rc::new(self.connect(Role::Shared).await?);
        let channels = self.channels.borrow().clone();
        for channel in channels {
            connected
                .client
                .batch_execute(&sql::listen(&channel))
                .await
                .map_err(pg_err)?;
        }
        *self.current.borrow_mut() = Some(connected.clone());
        if self.connected_before.replace(true) {
            // Notifications sent while it was down are lost: read the store again.
            self.changed(None);
        }
        Ok(connected)
    }

    fn open_connection(&self) -> Option<Rc<Connected>> {
        self.current
            .borrow()
            .as_ref()
            .filter(|open| !open.client.is_closed())
            .cloned()
    }

    async fn connect(&self, role: Role) -> Result<Connected, StorageError> {
        let (config, host, port) = self.settings()?;
        let socket = Socket::builder()
            .secure_transport(SecureTransport::StartTls)
            .connect(host, port)
            .map_err(|e| StorageError(format!("Postgres: cannot open a socket: {e}")))?;
        let (client, mut connection) = config.connect_raw(socket, PassthroughTls).await.map_err(pg_err)?;
        let node = self.me.clone();
        worker::wasm_bindgen_futures::spawn_local(async move {
            {
                let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                while let Some(message) = messages.next().await {
                    match message {
                        Ok(AsyncMessage::Notification(notification)) => {
                            if let Some(node) = node.upgrade() {
                                node.changed(notification.payload().parse().ok());
                            }
                        }
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
                // Dropped here, with the connection: only then does its client report itself
                // closed, so that the reconnect below opens a new one.
            }
            // A reset's own connection ends when the reset does; only the shared one is reopened.
            if let (Role::Shared, Some(node)) = (role, node.upgrade()) {
                node.reconnect_in_background();
            }
        });
        Ok(Connected {
            client,
            statements: RefCell::new(HashMap::new()),
        })
    }

    /// The connection settings, and where to open the socket.
    fn settings(&self) -> Result<(tokio_postgres::Config, String, u16), StorageError> {
        match &self.source {
            PostgresSource::Url(url) => {
                // The parser's error could quote the string, password included.
                let config = tokio_postgres::Config::from_str(url)
                    .map_err(|_| StorageError("POSTGRES_URL is not a valid Postgres connection string".into()))?;
                let host = config
                    .get_hosts()
                    .iter()
                    .find_map(|host| match host {
                        tokio_postgres::config::Host::Tcp(name) => Some(name.clone()),
                        #[allow(unreachable_patterns)]
                        _ => None,
                    })
                    .ok_or_else(|| StorageError("POSTGRES_URL names no TCP host".into()))?;
                let port = config.get_ports().first().copied().unwrap_or(5432);
                Ok((config, host, port))
            }
            PostgresSource::Hyperdrive(binding) => {
                let hyperdrive = self.env.hyperdrive(binding).map_err(|_| {
                    StorageError(format!(
                        "the Hyperdrive binding '{binding}' (HYPERDRIVE_BINDING) is not configured"
                    ))
                })?;
                let mut config = tokio_postgres::Config::new();
                config
                    .user(hyperdrive.user())
                    .password(hyperdrive.password())
                    .dbname(hyperdrive.database());
                Ok((config, hyperdrive.host(), hyperdrive.port()))
            }
        }
    }

    /// After a drop, while the object has live pulls: reopen with growing pauses until it works.
    fn reconnect_in_background(&self) {
        if !self.has_listeners() || self.reconnecting.replace(true) {
            return;
        }
        let node = self.me.clone();
        worker::wasm_bindgen_futures::spawn_local(async move {
            let mut pause = FIRST_RECONNECT_MS;
            loop {
                worker::Delay::from(std::time::Duration::from_millis(pause)).await;
                let Some(node) = node.upgrade() else { return };
                if !node.has_listeners() || node.connection().await.is_ok() {
                    node.reconnecting.set(false);
                    return;
                }
                pause = (pause * 2).min(MAX_RECONNECT_MS);
            }
        });
    }

    /// Listens on a store's channel, on this connection and every later one.
    async fn listen(&self, channel: &str) -> Result<(), StorageError> {
        if self.channels.borrow().iter().any(|c| c == channel) {
            return Ok(());
        }
        let connected = self.connection().await?;
        connected
            .client
            .batch_execute(&sql::listen(channel))
            .await
            .map_err(pg_err)?;
        self.channels.borrow_mut().push(channel.to_owned());
        Ok(())
    }

    async fn query(
        &self,
        query: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StorageError> {
        let connected = self.connection().await?;
        connected.query(query, params).await.map_err(pg_err)
    }

    /// A connection of its own, for a transaction (nothing else may run inside it).
    async fn dedicated(&self) -> Result<Connected, StorageError> {
        self.connect(Role::Dedicated).await
    }
}

/// One store's log in Postgres; DO RPC subscribers stay in the object's own SQLite (they are
/// this node's callers).
pub struct PgLog {
    node: Rc<PgNode>,
    local: DoSqliteLog,
    store_id: String,
    /// The storeId as the registry keeps it ([`sql::registry_key`]).
    key: String,
    table: RefCell<String>,
}

impl PgLog {
    /// The log of `store_id` over the object's connection.
    pub fn new(node: Rc<PgNode>, local: DoSqliteLog, store_id: &str) -> Self {
        PgLog {
            node,
            local,
            store_id: store_id.to_owned(),
            key: sql::registry_key(store_id),
            table: RefCell::new(sql::electric_table(store_id)),
        }
    }

    fn table(&self) -> String {
        self.table.borrow().clone()
    }

    async fn registered(&self) -> Result<Option<String>, StorageError> {
        let rows = self.node.query(sql::SELECT_REGISTERED, &[&self.key]).await?;
        Ok(rows.first().map(|row| row.get::<_, String>(0)))
    }

    /// Finds the store's table, registering one on first use: sync-electric's name unless
    /// another store holds it (the registry's unique table column decides between nodes).
    async fn resolve_table(&self) -> Result<String, StorageError> {
        if let Some(table) = self.registered().await? {
            return Ok(table);
        }
        let now = crate::util::time::iso8601_from_millis(crate::js::now_millis());
        for attempt in 0..8 {
            let candidate = match attempt {
                0 => sql::electric_table(&self.store_id),
                n => sql::collision_free_table(&self.store_id, n - 1),
            };
            self.node
                .query(sql::REGISTER_TABLE, &[&self.key, &candidate, &now])
                .await?;
            if let Some(table) = self.registered().await? {
                return Ok(table);
            }
        }
        Err(StorageError(format!(
            "could not register a Postgres table for store {:?}",
            self.store_id
        )))
    }

    /// Runs DDL that several objects or nodes may run at once. `CREATE … IF NOT EXISTS` racing
    /// itself is refused while the winner commits: on the catalog's unique index (23505) when it
    /// waited for the winner, or as a duplicate table, type or column when the winner committed
    /// between its check and its insert. Either way the object exists once the error is seen, so
    /// the statement is run again (its `IF NOT EXISTS` then holds).
    async fn ddl(&self, statement: &str) -> Result<(), StorageError> {
        let connected = self.node.connection().await?;
        let mut tries = 0;
        loop {
            tries += 1;
            match connected.client.batch_execute(statement).await {
                Err(e) if tries < 3 && e.code().is_some_and(lost_ddl_race) => continue,
                other => return other.map_err(pg_err),
            }
        }
    }
}

/// The SQLSTATEs of `CREATE … IF NOT EXISTS` (and of the `createdAt` column's `ALTER`) losing a
/// race with the same statement on another connection.
fn lost_ddl_race(code: &SqlState) -> bool {
    [
        SqlState::UNIQUE_VIOLATION,
        SqlState::DUPLICATE_TABLE,
        SqlState::DUPLICATE_OBJECT,
        SqlState::DUPLICATE_COLUMN,
    ]
    .contains(code)
}

impl EventLog for PgLog {
    fn engine_name(&self) -> &'static str {
        "postgres"
    }

    fn shared(&self) -> bool {
        true
    }

    async fn create_tables(&self) -> Result<bool, StorageError> {
        self.ddl(sql::CREATE_REGISTRY).await?;
        let table = self.resolve_table().await?;
        self.ddl(&sql::create_eventlog(&table)).await?;
        self.ddl(&sql::add_created_at(&table)).await?;
        self.node.listen(&table).await?;
        *self.table.borrow_mut() = table;
        // The context row is in Postgres: the object's alarm finds its store here.
        self.local.remember_store()?;
        // Its head is read from the log on every opening anyway (`head_may_lag`).
        Ok(false)
    }

    async fn load_context(&self) -> Result<Option<ContextRow>, StorageError> {
        let rows = self
            .node
            .query(&sql::select_context(&self.table()), &[&self.key])
            .await?;
        Ok(rows.first().and_then(|row| {
            let backend_id: Option<String> = row.get(0);
            Some(ContextRow {
                backend_id: backend_id?,
                current_head: row.get(1),
            })
        }))
    }

    /// Gives the store its backendId unless another node already did (then `open_store` reads
    /// that one); the head is the log's and is not written.
    async fn save_context(&self, row: &ContextRow) -> Result<(), StorageError> {
        self.node
            .query(sql::SET_BACKEND_ID, &[&self.key, &row.backend_id])
            .await
            .map(|_| ())
    }

    async fn max_seq_num(&self) -> Result<Option<i64>, StorageError> {
        let rows = self.node.query(&sql::select_max_seq(&self.table()), &[]).await?;
        Ok(rows.first().and_then(|row| row.get(0)))
    }

    async fn count_after(&self, after: Option<i64>) -> Result<u64, StorageError> {
        let cursor = after.unwrap_or(super::sql::NO_CURSOR);
        let rows = self.node.query(&sql::count_after(&self.table()), &[&cursor]).await?;
        Ok(rows.first().map_or(0, |row| row.get::<_, i64>(0)) as u64)
    }

    async fn read_after(&self, after: Option<i64>, limit: usize) -> Result<Vec<StoredItem>, StorageError> {
        let cursor = after.unwrap_or(super::sql::NO_CURSOR);
        let rows = self
            .node
            .query(&sql::read_after(&self.table(), limit), &[&cursor])
            .await?;
        Ok(rows
            .iter()
            .map(|row| StoredItem {
                seq_num: row.get(0),
                json: row.get(1),
            })
            .collect())
    }

    async fn size_bytes(&self) -> Result<u64, StorageError> {
        let rows = self.node.query(&sql::size_bytes(&self.table()), &[]).await?;
        Ok(rows.first().map_or(0, |row| row.get::<_, i64>(0)) as u64)
    }

    /// One transaction on a connection of its own: the store's row locked first, so pushes under
    /// way finish before the delete and pushes after it see the new backendId; the other nodes
    /// hear of it at commit.
    async fn clear(&self, context: &ContextRow) -> Result<(), StorageError> {
        let mut connected = self.node.dedicated().await?;
        let table = self.table();
        let transaction = connected.client.transaction().await.map_err(pg_err)?;
        transaction.query(sql::LOCK_STORE, &[&self.key]).await.map_err(pg_err)?;
        transaction
            .execute(&sql::delete_all(&table), &[])
            .await
            .map_err(pg_err)?;
        transaction
            .execute(sql::RESET_BACKEND_ID, &[&self.key, &context.backend_id])
            .await
            .map_err(pg_err)?;
        transaction
            .execute(sql::NOTIFY, &[&table, &"reset"])
            .await
            .map_err(pg_err)?;
        transaction.commit().await.map_err(pg_err)
    }

    async fn append(
        &self,
        batch: &[EventIn<'_>],
        created_at: CreatedAt<'_>,
        context: &ContextRow,
    ) -> Result<Appended, StorageError> {
        let Some(first) = batch.first() else {
            return Ok(Appended::Stored);
        };
        let int4 = |n: i64| {
            i32::try_from(n).map_err(|_| {
                StorageError(format!(
                    "seqNum {n} is past the INTEGER column of sync-electric's layout"
                ))
            })
        };
        let seq_nums = batch.iter().map(|e| int4(e.seq_num.0)).collect::<Result<Vec<_>, _>>()?;
        let parents = batch
            .iter()
            .map(|e| int4(e.parent_seq_num.0))
            .collect::<Result<Vec<_>, _>>()?;
        let names: Vec<&str> = batch.iter().map(|e| e.name.as_ref()).collect();
        let args: Vec<&str> = batch.iter().map(|e| e.args.map_or("null", |a| a.get())).collect();
        let client_ids: Vec<&str> = batch.iter().map(|e| e.client_id.as_ref()).collect();
        let session_ids: Vec<&str> = batch.iter().map(|e| e.session_id.as_ref()).collect();
        let times: Vec<&str> = (0..batch.len()).map(|i| created_at.of(i)).collect();
        let table = self.table();
        let expected = first.parent_seq_num.0;
        let head = context.current_head.to_string();
        let connected = self.node.connection().await?;
        let result = connected
            .query(
                &sql::append(&table),
                &[
                    &self.key,
                    &context.backend_id,
                    &expected,
                    &seq_nums,
                    &parents,
                    &names,
                    &args,
                    &client_ids,
                    &session_ids,
                    &times,
                    &table,
                    &head,
                ],
            )
            .await;
        match result {
            Ok(rows) if rows.first().map_or(0, |row| row.get::<_, i64>(0)) == batch.len() as i64 => {
                Ok(Appended::Stored)
            }
            Ok(_) => Ok(Appended::Stale),
            // Another node stored the same numbers first.
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Ok(Appended::Stale),
            // Class 22, data exception: a value the columns refuse (a NUL in TEXT, JSON that
            // JSONB cannot hold). Only the batch's values can cause it in this statement.
            Err(e) if e.code().is_some_and(|code| code.code().starts_with("22")) => {
                let message = e
                    .as_db_error()
                    .map_or_else(|| e.to_string(), |db| db.message().to_owned());
                Ok(Appended::Unstorable(format!("Postgres refused a value: {message}")))
            }
            Err(e) => Err(pg_err(e)),
        }
    }

    async fn subscribers(&self) -> Result<Vec<Subscriber>, StorageError> {
        self.local.subscriber_rows()
    }

    async fn subscribe(&self, subscriber: &Subscriber, keep: usize) -> Result<(), StorageError> {
        self.local.subscribe_row(subscriber, keep)
    }

    async fn unsubscribe(&self, caller: &CallerContext) -> Result<(), StorageError> {
        self.local.unsubscribe_row(caller)
    }
    async fn open_outbox(&self, sinks: &[&str], head: i64) -> Result<(), StorageError> {
        self.local.open_outbox_rows(sinks, head)
    }

    async fn outbox(&self) -> Result<Vec<SinkState>, StorageError> {
        self.local.outbox_rows()
    }

    async fn save_sink(&self, state: &SinkState) -> Result<bool, StorageError> {
        self.local.save_sink_row(state)
    }
}
