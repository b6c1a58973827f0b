//! `Push`: the push rule, the append, and the fan-out of the stored batch.
//!
//! Rules, in the reference's order: an empty batch is acknowledged without effect; a client
//! `backendId` from another incarnation of the store is refused; the first event's parent must
//! be the head. On top of those, checked before anything reaches the hooks or the store: at most
//! `MAX_PUSH_EVENTS` events, sequence numbers that form a chain, and `args` no deeper than
//! [`MAX_ARGS_DEPTH`].

use super::observe::payload_bytes;
use super::{parse, Conn, Core, Done, Error, Host, Limits, Pager, MAX_ARGS_DEPTH};
use crate::hooks::{RequestContext, SyncHooks};
use crate::protocol::server::push_batch_item;
use crate::protocol::{EventIn, PushPayload, RpcRequest};
use crate::rules::{batch_usage, Usage};
use crate::storage::{Appended, ContextRow, CreatedAt, EventLog, StoreMeta};
use crate::util::json::{nests_deeper_than, str_literal};
use crate::util::time::iso8601_from_millis;

/// Checks a batch on its own, before anything touches the hooks or storage: its size, its
/// chain of sequence numbers (every number non-negative, strictly increasing from the first
/// event's parent on, each event naming the one before it as its parent) and the depth of its
/// events' `args`.
///
/// The reference checks only the first parent against the head; a batch that goes backwards or
/// repeats a number would otherwise be stored out of order or fail halfway in SQL, and args
/// nested past SQLite's JSON limit would fail in storage as the backend's fault.
pub fn check_batch(batch: &[EventIn<'_>], limits: &Limits) -> Result<(), Error> {
    if batch.len() > limits.max_events_per_push {
        return Err(Error::TooManyEvents {
            max: limits.max_events_per_push,
            events: batch.len(),
        });
    }
    let invalid = Error::InvalidPushBatch;
    let Some(first) = batch.first() else {
        return Ok(());
    };
    if first.parent_seq_num.0 < 0 {
        return Err(invalid(format!(
            "parentSeqNum must not be negative, got {}",
            first.parent_seq_num.0
        )));
    }
    let mut previous = first.parent_seq_num.0;
    for (i, event) in batch.iter().enumerate() {
        if event.seq_num.0 <= previous {
            return Err(invalid(if i == 0 {
                format!(
                    "event 0: seqNum {} must be greater than its parentSeqNum {}",
                    event.seq_num.0, previous
                )
            } else {
                format!(
                    "event {i}: seqNum {} must be greater than the previous event's seqNum {}",
                    event.seq_num.0, previous
                )
            }));
        }
        if event.parent_seq_num.0 < 0 {
            return Err(invalid(format!(
                "event {i}: parentSeqNum must not be negative, got {}",
                event.parent_seq_num.0
            )));
        }
        if i > 0 && event.parent_seq_num.0 != previous {
            return Err(invalid(format!(
                "event {i}: parentSeqNum {} must be the previous event's seqNum {}",
                event.parent_seq_num.0, previous
            )));
        }
        check_args(event, i)?;
        previous = event.seq_num.0;
    }
    Ok(())
}

/// Checks an event's `args` (at `index` in its batch) against [`MAX_ARGS_DEPTH`].
pub fn check_args(event: &EventIn<'_>, index: usize) -> Result<(), Error> {
    match event.args {
        Some(args) if nests_deeper_than(args.get(), MAX_ARGS_DEPTH) => Err(Error::ArgsTooDeep {
            index,
            max: MAX_ARGS_DEPTH,
        }),
        _ => Ok(()),
    }
}

/// How often a push on a shared engine is judged again after another node moved the store
/// under it. A stale append means the head moved, so the second judgement refuses it; more only
/// matters if the store is reset in between.
const MAX_STALE_ATTEMPTS: usize = 3;

/// The push rule against the store's state: the client's backendId, then the head.
pub fn check_head(meta: &StoreMeta, payload: &PushPayload<'_>) -> Result<(), Error> {
    if let Some(received) = payload.backend_id.as_ref() {
        if *received != meta.backend_id {
            return Err(Error::BackendIdMismatch {
                expected: meta.backend_id.clone(),
                received: received.clone(),
            });
        }
    }
    match payload.batch.first() {
        Some(first) if first.parent_seq_num.0 != meta.head => Err(Error::ServerAhead {
            head: meta.head,
            provided: first.parent_seq_num.0,
        }),
        _ => Ok(()),
    }
}

/// The `PullResponse` pages that carry a stored batch to every live pull (the pusher's own
/// included: the LiveStore client confirms its pushes from that echo). All `NoMore`, as the
/// reference sends them.
pub fn pages_for(batch: &[EventIn<'_>], created_at: CreatedAt<'_>, backend_id: &str, limits: &Limits) -> Vec<String> {
    let mut pager = Pager::broadcast(backend_id, *limits);
    let mut pages = Vec::new();
    let mut item = String::new();
    let mut literal = String::new();
    for (i, event) in batch.iter().enumerate() {
        // One push has one time: its literal is written once.
        if i == 0 || matches!(created_at, CreatedAt::Each(_)) {
            literal = str_literal(created_at.of(i));
        }
        item.clear();
        push_batch_item(&mut item, event, &literal);
        pages.extend(pager.add(&item));
    }
    pages.extend(pager.finish());
    pages
}

impl<L: EventLog + 'static, X: Host + 'static, H: SyncHooks> Core<L, X, H> {
    /// A push over Effect RPC (WebSocket, HTTP, DO RPC).
    pub(super) async fn push(&self, request: &RpcRequest<'_>, conn: &Conn<'_, X::Socket>) -> Result<Done, Error> {
        // Taken before the first await: pushes apply in the order they arrived.
        let ticket = self.turns.ticket();
        let bytes = payload_bytes(request);
        let trace = request.trace_id.as_deref().zip(request.span_id.as_deref());
        self.push_parsed(ticket, parse(request), conn, bytes, trace).await
    }

    /// A push a transport decoded itself (the sync-electric endpoint, which speaks no Effect
    /// RPC): the same rules, hooks, lock, log line and span as any other. `bytes` is the size of
    /// what the client sent.
    pub async fn push_decoded(
        &self,
        payload: Result<PushPayload<'_>, Error>,
        conn: &Conn<'_, X::Socket>,
        bytes: usize,
    ) -> Result<Done, Error> {
        let ticket = self.turns.ticket();
        self.directory_due();
        self.push_parsed(ticket, payload, conn, bytes as i64, None).await
    }

    /// A push from any transport: checks, the `on_push` hook, the head rule, the append, then
    /// the fan-out of the batch to every live pull of the store (the pusher's included). Returns
    /// once the echo is out, so the acknowledgement always follows it.
    async fn push_parsed(
        &self,
        ticket: super::order::Ticket<'_>,
        payload: Result<PushPayload<'_>, Error>,
        conn: &Conn<'_, X::Socket>,
        bytes: i64,
        trace: Option<(&str, &str)>,
    ) -> Result<Done, Error> {
        let started = self.clock();
        let checked = self.count_push(conn).and(payload).and_then(|payload| {
            self.check_store(&payload.store_id, conn)?;
            if conn.read_only {
                return Err(Error::ReadOnly);
            }
            check_batch(&payload.batch, &self.limits())?;
            self.config.rules.check_events(&payload.batch)?;
            Ok(payload)
        });
        let payload = match checked {
            Ok(payload) => payload,
            Err(error) => {
                let result = Err(error);
                self.log_push(conn.transport, &self.store_for_log(conn), None, bytes, started, &result);
                return result.map(|()| Done::Pushed);
            }
        };
        let span = self.span("sync.push", trace);
        let ctx = RequestContext {
            store_id: &payload.store_id,
            transport: conn.transport,
            payload: payload.payload,
            headers: conn.headers,
        };
        let result = if payload.batch.is_empty() {
            // As the reference: acknowledged without running the hook.
            Ok(())
        } else {
            match self.hooks.on_push(&payload.batch, &ctx).await {
                Err(refused) => Err(Error::Hook(refused)),
                Ok(()) => {
                    let _turn = ticket.await;
                    let result = self.append_and_fan_out(&payload, &ctx).await;
                    let wire = result.as_ref().map(|_| ()).map_err(Error::to_wire);
                    self.hooks.on_push_res(wire.as_ref().map(|_| ()), &ctx).await;
                    result
                }
            }
        };
        let events = Some(payload.batch.len());
        self.log_push(conn.transport, &payload.store_id, events, bytes, started, &result);
        let batch = payload.batch.len() as u64;
        self.end_span(span, &payload.store_id, conn.transport, batch, result.as_ref().err());
        result.map(|()| Done::Pushed)
    }

    async fn append_and_fan_out(&self, payload: &PushPayload<'_>, ctx: &RequestContext<'_>) -> Result<(), Error> {
        let (mut meta, log) = self.open(ctx.store_id).await?;
        let Some(last) = payload.batch.last() else {
            return check_head(&meta, payload);
        };
        // On a shared engine this node's head may be behind another node's: a refusal is only
        // given on the stored state, and a push is only stored on it (the engine decides).
        if log.shared() && check_head(&meta, payload).is_err() {
            meta = self.catch_up_open(ctx.store_id, &log, meta).await?;
        } else if payload
            .batch
            .first()
            .is_some_and(|first| first.parent_seq_num.0 > meta.head)
        {
            // A client that builds on a later event than our head is the one sign of a head left
            // behind the log by another writer (the store opens without reading the log's end).
            meta = self.head_from_log(&log, meta).await?;
        }
        let created_at = iso8601_from_millis(self.host.now_millis());
        let adding = batch_usage(&payload.batch, &created_at);
        for _ in 0..MAX_STALE_ATTEMPTS {
            check_head(&meta, payload)?;
            self.check_quota(&log, &meta, adding).await?;
            let context = ContextRow {
                current_head: last.seq_num.0,
                backend_id: meta.backend_id.clone(),
            };
            let appended = log
                .append(&payload.batch, CreatedAt::All(&created_at), &context)
                .await
                .map_err(Error::from);
            self.forget_store_on_storage_error(&appended);
            match appended? {
                Appended::Stored => {}
                Appended::Stale => {
                    // Another node got there first: judge the push again on what it stored.
                    meta = self.catch_up_open(ctx.store_id, &log, meta).await?;
                    continue;
                }
                Appended::Unstorable(reason) => return Err(Error::Unstorable(reason)),
            }
            let previous = meta.head;
            meta.head = last.seq_num.0;
            self.set_meta(&meta);
            self.count_usage(previous, &meta, adding);
            if previous == 0 {
                self.directory_listing_due();
            }
            self.fan_out(&log, &payload.batch, CreatedAt::All(&created_at), &meta.backend_id, ctx)
                .await;
            return Ok(());
        }
        Err(Error::storage(
            "the store kept changing on other nodes during this push; nothing was stored",
        ))
    }

    /// Refuses a batch that would take the store past a quota (`MAX_STORE_EVENTS`,
    /// `MAX_STORE_BYTES`), when one is set.
    async fn check_quota(&self, log: &L, meta: &StoreMeta, adding: Usage) -> Result<(), Error> {
        let rules = &self.config.rules;
        if !rules.has_quota() {
            return Ok(());
        }
        let usage = self.current_usage(log, meta).await?;
        rules.check_quota(usage, adding)
    }

    /// What the store holds: as this object counted it, or counted now when the store moved
    /// since (the count is kept with the head and backendId it was taken at).
    pub(super) async fn current_usage(&self, log: &L, meta: &StoreMeta) -> Result<Usage, Error> {
        let known = match &*self.usage.borrow() {
            Some((head, backend_id, usage)) if *head == meta.head && *backend_id == meta.backend_id => Some(*usage),
            _ => None,
        };
        if let Some(usage) = known {
            return Ok(usage);
        }
        let counted = async {
            Ok::<_, Error>(Usage {
                events: log.count_after(None).await?,
                bytes: log.size_bytes().await?,
            })
        }
        .await;
        self.forget_store_on_storage_error(&counted);
        let usage = counted?;
        *self.usage.borrow_mut() = Some((meta.head, meta.backend_id.clone(), usage));
        Ok(usage)
    }

    /// A store opened without events holds nothing: its count starts at zero here and its
    /// pushes keep it current, so neither a quota nor a directory report ever counts its log.
    /// Not on a shared engine: other nodes write there too, and Postgres counts `args` as its
    /// JSONB renders them, which a batch's own text does not tell.
    pub(super) fn usage_opened(&self, log: &L, meta: &StoreMeta) {
        if meta.head == 0 && !log.shared() {
            *self.usage.borrow_mut() = Some((0, meta.backend_id.clone(), Usage::default()));
        }
    }

    /// Adds a stored batch to the store's count, if it was current before the batch.
    fn count_usage(&self, previous_head: i64, meta: &StoreMeta, adding: Usage) {
        let mut usage = self.usage.borrow_mut();
        if let Some((head, backend_id, held)) = usage.as_mut() {
            if *head == previous_head && *backend_id == meta.backend_id {
                *head = meta.head;
                *held = held.plus(adding);
            }
        }
    }

    /// Moves the head up to the log's last event if it is behind it (a store written by
    /// another server whose head write was lost), and records it.
    async fn head_from_log(&self, log: &L, mut meta: StoreMeta) -> Result<StoreMeta, Error> {
        let result = async {
            if let Some(last) = log.max_seq_num().await? {
                if last > meta.head {
                    let row = ContextRow {
                        current_head: last,
                        backend_id: meta.backend_id.clone(),
                    };
                    log.save_context(&row).await?;
                    meta.head = last;
                    self.set_meta(&meta);
                }
            }
            Ok(meta)
        }
        .await;
        self.forget_store_on_storage_error(&result);
        result
    }

    /// Sends a stored batch to every live pull of every kind and to the `on_pull_res` hook. The
    /// pages are built once per batch, and only when someone receives them.
    pub(super) async fn fan_out(
        &self,
        log: &std::rc::Rc<L>,
        batch: &[EventIn<'_>],
        created_at: CreatedAt<'_>,
        backend_id: &str,
        ctx: &RequestContext<'_>,
    ) {
        let limits = self.limits();
        self.deliver(log, ctx, || pages_for(batch, created_at, backend_id, &limits))
            .await;
    }

    /// Sends the pages `pages` builds to every live pull and the `on_pull_res` hook, building
    /// them only when someone receives them.
    pub(super) async fn deliver(
        &self,
        log: &std::rc::Rc<L>,
        ctx: &RequestContext<'_>,
        pages: impl FnOnce() -> Vec<String>,
    ) {
        self.live.changes.notify();
        self.outbox_due();
        self.directory_due();
        self.backup_due();
        let subscribers = self.subscribers(log).await;
        let sockets = self.with_live_sockets(|sockets, _| !sockets.is_empty());
        if !sockets && subscribers.is_empty() && !self.hooks.observes_pages() {
            return;
        }
        let pages = pages();
        for page in &pages {
            self.hooks.on_pull_res(page, ctx);
        }
        if sockets {
            self.with_live_sockets(|sockets, generation| self.host.send_pages(sockets, generation, &pages));
        }
        if !subscribers.is_empty() {
            self.queue_updates(log, &subscribers, &pages);
        }
    }

    /// Counts a push against the socket's `MAX_PUSHES_PER_SECOND`, in one-second windows. A push
    /// over the limit is refused whole with a typed error, never dropped silently.
    fn count_push(&self, conn: &Conn<'_, X::Socket>) -> Result<(), Error> {
        let (Some(max), Some(socket)) = (self.config.max_pushes_per_second, conn.socket) else {
            return Ok(());
        };
        let second = self.host.now_millis().div_euclid(1000);
        match self.host.count_push(socket, second) {
            n if n > max => Err(Error::RateLimited(max)),
            _ => Ok(()),
        }
    }
}
