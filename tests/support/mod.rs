//! Natively testing the sync core: the event log on a real SQLite database through `rusqlite`,
//! running exactly the SQL the Durable Object runs (`storage::sql`), and a host that records
//! what the core sends and lets the test drive time and failures.
// Shared by several test crates, each using a subset of it.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use futures::future::LocalBoxFuture;
use livestore_sync::config::{Auth, Config};
use livestore_sync::core::{Conn, Core, Handled, Host, LiveSocket, Reply, UpdateFailure};
use livestore_sync::hooks::{RequestContext, SyncHooks};
use livestore_sync::log::Line;
use livestore_sync::otel::Span;
use livestore_sync::outbox::{SinkConfig, SinkMessage};
use livestore_sync::protocol::{CallerContext, EventIn, SyncError, Transport};
use livestore_sync::storage::{
    sql, Appended, ContextRow, CreatedAt, EventLog, SinkState, StorageError, StoredItem, Subscriber,
};
use rusqlite::{params, Connection, OptionalExtension};

/// Where an injected append failure strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailAt {
    /// The insert of the events fails (nothing is written).
    Rows,
    /// The events are written, then the head's statement fails.
    Head,
}

/// One eventlog row: seqNum, parentSeqNum, name, args, createdAt, clientId, sessionId.
pub type Row = (i64, i64, String, Option<String>, String, String, String);

/// A store's log in an in-memory SQLite database. Clones share the database and the switches,
/// so a test keeps one to look at what the core's copy wrote.
#[derive(Clone)]
pub struct SqliteLog {
    /// The connection; public so tests can inspect or tamper with rows.
    pub conn: Rc<Connection>,
    store_id: String,
    table: String,
    /// When set, the next `append` fails at that point, to check what a failure leaves.
    pub fail_next_append: Rc<Cell<Option<FailAt>>>,
    /// How many times the log's last `seqNum` was read (an event row, which Cloudflare bills).
    pub last_seq_reads: Rc<Cell<u32>>,
    /// When set, reads use the size-bounded page query (as on D1) with this many bytes.
    pub read_budget: Rc<Cell<Option<usize>>>,
    /// Behaves as a shared engine (Postgres with several nodes): two cores over clones of one
    /// log are two nodes, and an append stores only if the stored head and backendId still
    /// match, as the Postgres engine's statement decides.
    pub shared: bool,
}

fn err(e: rusqlite::Error) -> StorageError {
    StorageError(e.to_string())
}

impl SqliteLog {
    /// A fresh in-memory database for `store_id`.
    pub fn new(store_id: &str) -> Self {
        Self::with_connection(Rc::new(Connection::open_in_memory().unwrap()), store_id)
    }

    /// The log of `store_id` in an existing database.
    pub fn with_connection(conn: Rc<Connection>, store_id: &str) -> Self {
        SqliteLog {
            conn,
            store_id: store_id.to_owned(),
            table: sql::eventlog_table(store_id),
            fail_next_append: Rc::new(Cell::new(None)),
            last_seq_reads: Rc::new(Cell::new(0)),
            read_budget: Rc::new(Cell::new(None)),
            shared: false,
        }
    }

    /// The same database as a log of a shared engine (see [`SqliteLog::shared`]).
    pub fn shared(&self) -> Self {
        SqliteLog {
            shared: true,
            ..self.clone()
        }
    }

    /// The store's id.
    pub fn store_id(&self) -> &str {
        &self.store_id
    }

    /// The eventlog table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Every stored row, as the reference's columns (none before the store is first opened).
    pub fn rows(&self) -> Vec<Row> {
        let Ok(mut stmt) = self.conn.prepare(&format!(
            r#"SELECT seqNum, parentSeqNum, name, args, createdAt, clientId, sessionId FROM "{}" ORDER BY seqNum"#,
            self.table
        )) else {
            return Vec::new();
        };
        stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    /// The stored head (none before the store is first opened).
    pub fn head(&self) -> Option<i64> {
        self.conn
            .query_row(sql::SELECT_CONTEXT, [&self.store_id], |r| r.get(0))
            .optional()
            .ok()
            .flatten()
    }

    fn first_i64(&self, query: &str) -> Result<i64, StorageError> {
        self.conn.query_row(query, [], |r| r.get(0)).map_err(err)
    }
}

fn cursor(after: Option<i64>) -> i64 {
    after.unwrap_or(sql::NO_CURSOR)
}

impl EventLog for SqliteLog {
    fn engine_name(&self) -> &'static str {
        "sqlite"
    }

    fn shared(&self) -> bool {
        self.shared
    }

    /// As on DO SQLite (one database, the head written with the events).
    fn head_may_lag(&self) -> bool {
        self.shared
    }

    async fn create_tables(&self) -> Result<bool, StorageError> {
        let existed: i64 = self
            .conn
            .query_row(sql::TABLE_LISTED, [&self.table], |r| r.get(0))
            .map_err(err)?;
        self.conn.execute(&sql::create_eventlog(&self.table), []).map_err(err)?;
        self.conn.execute(sql::CREATE_CONTEXT, []).map_err(err)?;
        self.conn
            .execute(&sql::drop_head_trigger(&self.table), [])
            .map_err(err)?;
        Ok(existed == 0 && !self.shared)
    }

    async fn load_context(&self) -> Result<Option<ContextRow>, StorageError> {
        self.conn
            .query_row(sql::SELECT_CONTEXT, [&self.store_id], |r| {
                Ok(ContextRow {
                    current_head: r.get(0)?,
                    backend_id: r.get(1)?,
                })
            })
            .optional()
            .map_err(err)
    }

    async fn save_context(&self, row: &ContextRow) -> Result<(), StorageError> {
        self.conn
            .execute(
                sql::UPSERT_CONTEXT,
                params![self.store_id, row.current_head, row.backend_id],
            )
            .map_err(err)?;
        Ok(())
    }

    async fn max_seq_num(&self) -> Result<Option<i64>, StorageError> {
        self.last_seq_reads.set(self.last_seq_reads.get() + 1);
        self.conn
            .query_row(&sql::select_max_seq(&self.table), [], |r| r.get(0))
            .map_err(err)
    }

    async fn count_after(&self, after: Option<i64>) -> Result<u64, StorageError> {
        let n: i64 = self
            .conn
            .query_row(&sql::count_after(&self.table), [cursor(after)], |r| r.get(0))
            .map_err(err)?;
        Ok(n as u64)
    }

    async fn read_after(&self, after: Option<i64>, limit: usize) -> Result<Vec<StoredItem>, StorageError> {
        let row = |r: &rusqlite::Row| {
            Ok(StoredItem {
                seq_num: r.get(0)?,
                json: r.get(1)?,
            })
        };
        let rows = match self.read_budget.get() {
            None => {
                let mut stmt = self.conn.prepare(&sql::read_after(&self.table)).map_err(err)?;
                let rows = stmt.query_map(params![cursor(after), limit as i64], row).map_err(err)?;
                rows.collect::<Result<Vec<_>, _>>()
            }
            Some(budget) => {
                let mut stmt = self.conn.prepare(&sql::read_after_within(&self.table)).map_err(err)?;
                let rows = stmt
                    .query_map(params![cursor(after), limit as i64, budget as i64], row)
                    .map_err(err)?;
                rows.collect::<Result<Vec<_>, _>>()
            }
        };
        rows.map_err(err)
    }

    async fn size_bytes(&self) -> Result<u64, StorageError> {
        Ok(self.first_i64(&sql::size_bytes(&self.table))? as u64)
    }

    /// As on DO SQLite: both statements in one transaction.
    async fn clear(&self, context: &ContextRow) -> Result<(), StorageError> {
        let tx = self.conn.unchecked_transaction().map_err(err)?;
        tx.execute(&sql::delete_all(&self.table), []).map_err(err)?;
        tx.execute(
            sql::UPSERT_CONTEXT,
            params![self.store_id, context.current_head, context.backend_id],
        )
        .map_err(err)?;
        tx.commit().map_err(err)
    }

    /// As on DO SQLite: one chunk of rows is one statement, then the head; more chunks run with
    /// the head in one transaction. `fail_next_append` fails it where it says.
    async fn append(
        &self,
        batch: &[EventIn<'_>],
        created_at: CreatedAt<'_>,
        context: &ContextRow,
    ) -> Result<Appended, StorageError> {
        if self.shared {
            let stored = self.load_context().await?;
            let parent = batch.first().map(|e| e.parent_seq_num.0);
            let current = stored.as_ref().map(|row| (row.current_head, row.backend_id.as_str()));
            if parent.map(|p| (p, context.backend_id.as_str())) != current {
                return Ok(Appended::Stale);
            }
        }
        let chunks = sql::rows_json(batch, created_at, sql::MAX_INSERT_JSON_BYTES);
        let fail = self.fail_next_append.take();
        if fail == Some(FailAt::Rows) {
            return Err(StorageError("injected failure of the insert".into()));
        }
        let tx = (chunks.len() > 1)
            .then(|| self.conn.unchecked_transaction())
            .transpose()
            .map_err(err)?;
        for chunk in chunks {
            self.conn
                .execute(&chunk.insert(&self.table), rusqlite::params_from_iter(&chunk.rows))
                .map_err(err)?;
        }
        if fail == Some(FailAt::Head) {
            return Err(StorageError("injected failure of the head's statement".into()));
        }
        self.conn
            .execute(sql::UPDATE_HEAD, params![context.current_head, self.store_id])
            .map_err(err)?;
        match tx {
            Some(tx) => tx.commit().map(|()| Appended::Stored).map_err(err),
            None => Ok(Appended::Stored),
        }
    }

    async fn subscribers(&self) -> Result<Vec<Subscriber>, StorageError> {
        if self.first_i64(sql::SUBSCRIBERS_EXIST)? == 0 {
            return Ok(Vec::new());
        }
        let mut stmt = self.conn.prepare(sql::SELECT_SUBSCRIBERS).map_err(err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Subscriber {
                    caller: CallerContext {
                        binding_name: r.get(0)?,
                        durable_object_id: r.get(1)?,
                    },
                    request_id: r.get(2)?,
                    subscribed_at: r.get(3)?,
                })
            })
            .map_err(err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(err)
    }

    async fn subscribe(&self, subscriber: &Subscriber, keep: usize) -> Result<(), StorageError> {
        self.conn.execute(sql::CREATE_SUBSCRIBERS, []).map_err(err)?;
        self.conn
            .execute(
                sql::UPSERT_SUBSCRIBER,
                params![
                    subscriber.caller.binding_name,
                    subscriber.caller.durable_object_id,
                    subscriber.request_id,
                    subscriber.subscribed_at
                ],
            )
            .map_err(err)?;
        self.conn.execute(sql::TRIM_SUBSCRIBERS, [keep as i64]).map_err(err)?;
        Ok(())
    }

    async fn unsubscribe(&self, caller: &CallerContext) -> Result<(), StorageError> {
        if self.first_i64(sql::SUBSCRIBERS_EXIST)? == 0 {
            return Ok(());
        }
        self.conn
            .execute(
                sql::DELETE_SUBSCRIBER,
                params![caller.binding_name, caller.durable_object_id],
            )
            .map_err(err)?;
        Ok(())
    }
    async fn open_outbox(&self, sinks: &[&str], head: i64) -> Result<(), StorageError> {
        self.conn.execute(sql::CREATE_OUTBOX, []).map_err(err)?;
        for sink in sinks {
            self.conn
                .execute(sql::ADD_SINK, params![sink, self.store_id, head])
                .map_err(err)?;
        }
        Ok(())
    }

    async fn outbox(&self) -> Result<Vec<SinkState>, StorageError> {
        if self.first_i64(sql::OUTBOX_EXISTS)? == 0 {
            return Ok(Vec::new());
        }
        let mut statement = self.conn.prepare(sql::SELECT_OUTBOX).map_err(err)?;
        let rows = statement
            .query_map([], |r| {
                Ok(SinkState {
                    sink: r.get(0)?,
                    store_id: r.get(1)?,
                    cursor: r.get(2)?,
                    delivered: r.get(3)?,
                    attempts: r.get(4)?,
                    paused: r.get::<_, i64>(5)? != 0,
                    last_error: r.get(6)?,
                    last_attempt_at: r.get(7)?,
                    next_at: r.get(8)?,
                    version: r.get(9)?,
                    pending_to: r.get(10)?,
                })
            })
            .map_err(err)?;
        rows.collect::<Result<_, _>>().map_err(err)
    }

    async fn save_sink(&self, state: &SinkState) -> Result<bool, StorageError> {
        let changed = self
            .conn
            .execute(
                sql::SAVE_SINK,
                params![
                    state.cursor,
                    state.delivered,
                    state.attempts,
                    state.paused as i64,
                    state.last_error,
                    state.last_attempt_at,
                    state.next_at,
                    state.pending_to,
                    state.version + 1,
                    state.sink,
                    state.version
                ],
            )
            .map_err(err)?;
        Ok(changed > 0)
    }
}

/// What a gated send waits for: its answer.
pub type SinkGate = futures::channel::oneshot::Receiver<Result<Option<u16>, String>>;

/// A socket of the test host.
pub type Socket = u32;

/// A host that records everything the core sends out.
#[derive(Default)]
pub struct TestHost {
    /// The clock, in ms since the epoch.
    pub now: Cell<i64>,
    /// How many backendIds it has made (the next one's number).
    pub backend_ids: Cell<u32>,
    /// Log lines written, as JSON text.
    pub lines: RefCell<Vec<String>>,
    /// Spans exported.
    pub spans: RefCell<Vec<Span>>,
    /// Open sockets and the live pulls recorded with each (their "attachments").
    pub sockets: RefCell<Vec<(Socket, Vec<String>)>>,
    /// Frames sent to live pulls: (socket, request id, page).
    pub sent: RefCell<Vec<(Socket, String, String)>>,
    /// `syncUpdateRpc` calls: (caller, request id, page).
    pub updates: RefCell<Vec<(CallerContext, String, String)>>,
    /// Callers whose `syncUpdateRpc` fails, and whether for good.
    pub unreachable: RefCell<HashMap<CallerContext, bool>>,
    /// Background tasks, run by [`TestHost::run_tasks`].
    pub tasks: RefCell<Vec<LocalBoxFuture<'static, ()>>>,
    push_windows: RefCell<HashMap<Socket, (i64, u32)>>,
    /// Sockets closed by the core, with the code.
    pub closed: RefCell<Vec<(Socket, u16)>>,
    /// Timers running: id, deadline, waker; [`TestHost::advance`] fires them, and a timer
    /// whose future is dropped goes (as a runtime's cleared timeout).
    timers: Timers,
    next_timer: Cell<u64>,
    /// The timers' clock (ms), separate from `now` so log timings stay put.
    timer_now: Rc<Cell<i64>>,
    /// Every alarm the core set, in order (ms since the epoch).
    pub alarms: RefCell<Vec<i64>>,
    /// Outbox batches sent: (sink, message).
    pub sink_messages: RefCell<Vec<(String, SinkMessage)>>,
    /// The answers the next sends get, in order; once empty, every send gets `200`.
    pub sink_answers: RefCell<std::collections::VecDeque<Result<Option<u16>, String>>>,
    /// When set, the next send to that sink waits for this answer (sent when the test likes).
    pub sink_gate: RefCell<Option<(String, SinkGate)>>,
    /// The store directory, as the core told it.
    pub directory: RefCell<std::collections::BTreeMap<String, livestore_sync::directory::Entry>>,
    /// How often the core told the directory anything (an entry or that there is none).
    pub directory_tells: Cell<u32>,
    /// How often the object was wiped (a store deleted).
    pub wipes: Cell<u32>,
    /// The backup bucket: name -> (body, written at).
    pub bucket: RefCell<std::collections::BTreeMap<String, (String, i64)>>,
}

impl TestHost {
    /// Opens a socket.
    pub fn open_socket(&self, socket: Socket) {
        self.sockets.borrow_mut().push((socket, Vec::new()));
    }

    /// Moves the timers' clock on, firing every timer that is due.
    pub fn advance(&self, ms: i64) {
        self.timer_now.set(self.timer_now.get() + ms);
        let now = self.timer_now.get();
        let due: Vec<_> = self
            .timers
            .borrow_mut()
            .iter_mut()
            .filter(|(_, deadline, _)| *deadline <= now)
            .filter_map(|(_, _, waker)| waker.take())
            .collect();
        for waker in due {
            waker.wake();
        }
    }

    /// Timers running.
    pub fn timers(&self) -> usize {
        self.timers.borrow().len()
    }

    /// Runs every background task to completion (DO RPC deliveries).
    pub fn run_tasks(&self) {
        loop {
            let tasks: Vec<_> = self.tasks.borrow_mut().drain(..).collect();
            if tasks.is_empty() {
                return;
            }
            for task in tasks {
                futures::executor::block_on(task);
            }
        }
    }

    /// The log lines, parsed.
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        self.lines
            .borrow()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The seqNums sent to one socket's live pull, in order.
    pub fn seqs_sent(&self, socket: Socket, request_id: &str) -> Vec<i64> {
        self.sent
            .borrow()
            .iter()
            .filter(|(s, id, _)| *s == socket && id == request_id)
            .flat_map(|(_, _, page)| seqs_of_page(page))
            .collect()
    }
}

/// The seqNums a `PullResponse` page carries.
pub fn seqs_of_page(page: &str) -> Vec<i64> {
    let page: serde_json::Value = serde_json::from_str(page).unwrap();
    page["batch"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["eventEncoded"]["seqNum"].as_i64().unwrap())
        .collect()
}

impl Host for TestHost {
    type Socket = Socket;

    fn set_alarm(&self, at_millis: i64) {
        self.alarms.borrow_mut().push(at_millis);
    }

    fn tell_directory(
        &self,
        store_id: &str,
        entry: Option<&livestore_sync::directory::Entry>,
    ) -> LocalBoxFuture<'static, Result<(), String>> {
        self.directory_tells.set(self.directory_tells.get() + 1);
        let mut directory = self.directory.borrow_mut();
        match entry {
            Some(entry) => {
                let first_at = directory.get(store_id).map_or(entry.first_at, |e| e.first_at);
                directory.insert(
                    store_id.to_owned(),
                    livestore_sync::directory::Entry {
                        first_at,
                        ..entry.clone()
                    },
                );
            }
            None => {
                directory.remove(store_id);
            }
        }
        Box::pin(async { Ok(()) })
    }

    fn directory_entry(
        &self,
        store_id: &str,
    ) -> LocalBoxFuture<'static, Result<Option<livestore_sync::directory::Entry>, String>> {
        let entry = self.directory.borrow().get(store_id).cloned();
        Box::pin(async move { Ok(entry) })
    }

    fn backup_list(&self, prefix: &str) -> LocalBoxFuture<'static, Result<Vec<(String, i64)>, String>> {
        let names = self
            .bucket
            .borrow()
            .iter()
            .filter(|(key, _)| key.starts_with(prefix))
            .map(|(key, (_, at))| (key.clone(), *at))
            .collect();
        Box::pin(async move { Ok(names) })
    }

    fn backup_put(&self, key: &str, body: String) -> LocalBoxFuture<'static, Result<(), String>> {
        self.bucket.borrow_mut().insert(key.to_owned(), (body, self.now.get()));
        Box::pin(async { Ok(()) })
    }

    fn backup_get(&self, key: &str) -> LocalBoxFuture<'static, Result<Option<String>, String>> {
        let body = self.bucket.borrow().get(key).map(|(body, _)| body.clone());
        Box::pin(async move { Ok(body) })
    }

    fn wipe_object(&self) -> LocalBoxFuture<'static, Result<(), String>> {
        self.wipes.set(self.wipes.get() + 1);
        Box::pin(async { Ok(()) })
    }

    fn send_to_sink(
        &self,
        sink: &SinkConfig,
        message: SinkMessage,
    ) -> LocalBoxFuture<'static, Result<Option<u16>, String>> {
        self.sink_messages.borrow_mut().push((sink.name.to_owned(), message));
        let gated = self
            .sink_gate
            .borrow()
            .as_ref()
            .is_some_and(|(name, _)| name == sink.name);
        if let Some((_, gate)) = gated.then(|| self.sink_gate.borrow_mut().take()).flatten() {
            return Box::pin(async move { gate.await.unwrap_or_else(|_| Err("gate dropped".into())) });
        }
        let answer = self.sink_answers.borrow_mut().pop_front().unwrap_or(Ok(Some(200)));
        Box::pin(async move { answer })
    }

    fn now_millis(&self) -> i64 {
        self.now.get()
    }

    fn new_backend_id(&self) -> String {
        let n = self.backend_ids.get();
        self.backend_ids.set(n + 1);
        format!("backend-{n:013}")
    }

    fn random_span_ids(&self) -> [u8; 24] {
        [7; 24]
    }

    fn log(&self, line: Line) {
        self.lines.borrow_mut().push(line.finish());
    }

    fn export_span(&self, span: Span) {
        self.spans.borrow_mut().push(span);
    }

    fn live_sockets(&self) -> Vec<LiveSocket<Socket>> {
        self.sockets
            .borrow()
            .iter()
            .filter(|(_, pulls)| !pulls.is_empty())
            .map(|(socket, pulls)| LiveSocket {
                socket: *socket,
                pulls: pulls.clone(),
            })
            .collect()
    }

    fn save_live_pulls(&self, socket: &Socket, pulls: &[String]) -> Result<(), String> {
        let mut sockets = self.sockets.borrow_mut();
        let entry = sockets
            .iter_mut()
            .find(|(s, _)| s == socket)
            .ok_or("the connection has no store attached")?;
        entry.1 = pulls.to_vec();
        Ok(())
    }

    fn count_push(&self, socket: &Socket, second: i64) -> u32 {
        let mut windows = self.push_windows.borrow_mut();
        let window = windows.entry(*socket).or_insert((second, 0));
        if window.0 != second {
            *window = (second, 0);
        }
        window.1 += 1;
        window.1
    }

    fn send_pages(&self, sockets: &[LiveSocket<Socket>], _generation: u64, pages: &[String]) {
        for entry in sockets {
            for id in &entry.pulls {
                for page in pages {
                    self.sent.borrow_mut().push((entry.socket, id.clone(), page.clone()));
                }
            }
        }
    }

    fn close_sockets(&self, code: u16, _reason: &str) -> usize {
        let sockets: Vec<_> = self.sockets.borrow_mut().drain(..).collect();
        for (socket, _) in &sockets {
            self.closed.borrow_mut().push((*socket, code));
        }
        sockets.len()
    }

    fn socket_count(&self) -> usize {
        self.sockets.borrow().len()
    }

    fn sync_update(
        &self,
        caller: &CallerContext,
        request_id: &str,
        page: &str,
    ) -> LocalBoxFuture<'static, Result<(), UpdateFailure>> {
        let result = match self.unreachable.borrow().get(caller) {
            Some(permanent) => Err(UpdateFailure {
                permanent: *permanent,
                message: "unreachable".into(),
            }),
            None => {
                self.updates
                    .borrow_mut()
                    .push((caller.clone(), request_id.to_owned(), page.to_owned()));
                Ok(())
            }
        };
        Box::pin(async move { result })
    }

    fn spawn(&self, task: LocalBoxFuture<'static, ()>) {
        self.tasks.borrow_mut().push(task);
    }

    fn sleep(&self, ms: u64) -> LocalBoxFuture<'static, ()> {
        let id = self.next_timer.get();
        self.next_timer.set(id + 1);
        let deadline = self.timer_now.get() + ms as i64;
        self.timers.borrow_mut().push((id, deadline, None));
        Box::pin(Sleep {
            id,
            deadline,
            now: self.timer_now.clone(),
            timers: self.timers.clone(),
        })
    }
}

/// The test host's timers: id, deadline, and the waker of the future waiting on it.
type Timers = Rc<RefCell<Vec<(u64, i64, Option<std::task::Waker>)>>>;

/// A timer of the test host.
struct Sleep {
    id: u64,
    deadline: i64,
    now: Rc<Cell<i64>>,
    timers: Timers,
}

impl std::future::Future for Sleep {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.now.get() >= self.deadline {
            return std::task::Poll::Ready(());
        }
        if let Some(timer) = self.timers.borrow_mut().iter_mut().find(|(id, _, _)| *id == self.id) {
            timer.2 = Some(cx.waker().clone());
        }
        std::task::Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.timers.borrow_mut().retain(|(id, _, _)| *id != self.id);
    }
}

/// Hooks that record the pages they observe and can refuse pushes.
#[derive(Default)]
pub struct Recorder {
    /// Every page `on_pull_res` saw.
    pub pages: RefCell<Vec<String>>,
    /// When set, `on_push` refuses with this message.
    pub refuse_pushes: RefCell<Option<String>>,
}

impl SyncHooks for Recorder {
    const OBSERVES_PAGES: bool = true;

    async fn on_push(
        &self,
        _batch: &[EventIn<'_>],
        _ctx: &RequestContext<'_>,
    ) -> Result<(), livestore_sync::HookError> {
        match self.refuse_pushes.borrow().as_ref() {
            Some(message) => Err(livestore_sync::HookError::new(message.clone())),
            None => Ok(()),
        }
    }

    fn on_pull_res(&self, page: &str, _ctx: &RequestContext<'_>) {
        self.pages.borrow_mut().push(page.to_owned());
    }
}

/// The configuration the tests run with: open access, every default.
pub fn config() -> Config {
    Config {
        auth: Auth::Open,
        // Off, so the tests that count alarms see the outbox's alone; tests/governance.rs turns it on.
        store_directory: false,
        ..Config::default()
    }
}

/// A core for `store_id` on a fresh database, with the given hooks; also returns a handle on
/// the store's log.
pub fn core_for<H: SyncHooks>(store_id: &str, hooks: H, config: Config) -> (Core<SqliteLog, TestHost, H>, SqliteLog) {
    core_on(SqliteLog::new(store_id), hooks, config)
}

/// A core on an existing log (its database and store).
pub fn core_on<L: EventLog + Clone + 'static, H: SyncHooks>(
    log: L,
    hooks: H,
    config: Config,
) -> (Core<L, TestHost, H>, L) {
    let host = TestHost::default();
    host.now.set(1_795_376_491_539); // 2026-11-22T19:41:31.539Z
    let engine_log = log.clone();
    let core = Core::new(Rc::new(config), hooks, host, Box::new(move |_| Ok(engine_log.clone())));
    (core, log)
}

/// A reply, as the JSON message the WebSocket transport sends.
pub fn frame(reply: Reply<'_>) -> String {
    livestore_sync::protocol::json_message(reply, Transport::Ws)
}

/// A connection of `transport` for `store_id`.
pub fn conn<'a>(transport: Transport, store_id: Option<&'a str>, socket: Option<&'a Socket>) -> Conn<'a, Socket> {
    Conn {
        transport,
        store_id,
        headers: &[],
        socket,
        read_only: false,
    }
}

/// Handles one message and returns the frames sent back, parsed.
pub fn send<L: EventLog + 'static, H: SyncHooks>(
    core: &Core<L, TestHost, H>,
    conn: &Conn<'_, Socket>,
    message: &serde_json::Value,
) -> (Handled, Vec<serde_json::Value>) {
    let mut frames = Vec::new();
    let handled = futures::executor::block_on(core.handle(&message.to_string(), conn, &mut |reply| {
        frames.push(serde_json::from_str(&frame(reply)).unwrap())
    }));
    (handled, frames)
}

/// An Effect RPC request.
pub fn request(id: &str, tag: &str, payload: serde_json::Value) -> serde_json::Value {
    serde_json::json!({ "_tag": "Request", "id": id, "tag": tag, "payload": payload, "headers": [] })
}

/// `count` chained events from `start`, the first with parent `parent`.
pub fn events(start: i64, parent: i64, count: i64) -> Vec<serde_json::Value> {
    (0..count)
        .map(|i| {
            serde_json::json!({
                "name": "v1.TodoCreated",
                "args": {"id": format!("t{}", start + i), "text": "hello"},
                "seqNum": start + i,
                "parentSeqNum": if i == 0 { parent } else { start + i - 1 },
                "clientId": "client-a",
                "sessionId": "session-a",
            })
        })
        .collect()
}

/// A push payload.
pub fn push_payload(store_id: &str, batch: &[serde_json::Value], backend_id: Option<&str>) -> serde_json::Value {
    let backend = match backend_id {
        Some(b) => serde_json::json!({"_tag": "Some", "value": b}),
        None => serde_json::json!({"_tag": "None"}),
    };
    serde_json::json!({"storeId": store_id, "batch": batch, "backendId": backend})
}

/// A pull payload.
pub fn pull_payload(store_id: &str, cursor: Option<(&str, i64)>, live: bool) -> serde_json::Value {
    let cursor = match cursor {
        Some((backend_id, seq)) => {
            serde_json::json!({"_tag": "Some", "value": {"backendId": backend_id, "eventSequenceNumber": seq}})
        }
        None => serde_json::json!({"_tag": "None"}),
    };
    serde_json::json!({"storeId": store_id, "cursor": cursor, "live": live})
}

/// The typed error of an `Exit` frame, as the client decodes it.
pub fn exit_error(frame: &serde_json::Value) -> Option<SyncError> {
    let error = &frame["exit"]["cause"]["error"];
    match error["_tag"].as_str()? {
        "ServerAheadError" => Some(SyncError::ServerAhead {
            minimum_expected_num: error["minimumExpectedNum"].as_i64()?,
            provided_num: error["providedNum"].as_i64()?,
        }),
        "BackendIdMismatchError" => Some(SyncError::BackendIdMismatch {
            expected: error["expected"].as_str()?.to_owned(),
            received: error["received"].as_str()?.to_owned(),
        }),
        _ => Some(SyncError::unknown(
            error["cause"]["name"].as_str()?.to_owned(),
            error["cause"]["message"].as_str()?.to_owned(),
        )),
    }
}
