//! `Pull`: pages of every event after the client's cursor, and live pulls that keep receiving.

use super::live::Registration;
use super::observe::PullStats;
use super::{parse, Conn, Core, Error, Host, Limits, Pager, Reply};
use crate::hooks::{RequestContext, SyncHooks};
use crate::protocol::{CallerContext, Cursor, PullPayload, RpcRequest, Transport};
use crate::storage::{EventLog, StoreMeta, Subscriber};

/// How a pull ended, for the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Every page was sent; the request ends with its `Exit` (a DO RPC live pull too: its later
    /// batches come as calls to the client object).
    Done,
    /// A live pull on a socket: it stays open, with no `Exit`, until the client interrupts it.
    Open,
    /// The client interrupted it before it started.
    Interrupted,
}

/// A pull from a transport that speaks no Effect RPC (the sync-electric endpoint): the events
/// after a position, at most one page of them, held until there are some when asked to wait.
#[derive(Debug, Clone)]
pub struct PullSince<'a> {
    /// The store.
    pub store_id: &'a str,
    /// The client's sync payload, for the hooks.
    pub payload: Option<&'a serde_json::value::RawValue>,
    /// The backendId the client's position belongs to; `None` for a client without data.
    pub backend_id: Option<&'a str>,
    /// The last seqNum the client has (0: none).
    pub after: i64,
    /// How long to hold the pull when there is nothing new, in ms (`None`: answer at once).
    pub wait_ms: Option<u64>,
}

/// What a [`PullSince`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Since {
    /// The store's backendId.
    pub backend_id: String,
    /// Up to one page of events after the position, in order.
    pub items: Vec<crate::storage::StoredItem>,
}

/// Where a live pull's later batches go.
enum Live<'a, S> {
    Socket(&'a S),
    Subscriber(&'a CallerContext),
}

/// Streams every event after `cursor` (up to `until`, when given) to `emit` as `PullResponse`
/// pages: at most `limits.max_events_per_page` events and `limits.max_page_bytes` bytes each,
/// `MoreKnown` with the exact number of events still to come on every page but the last,
/// `NoMore` on the last, and exactly one empty `NoMore` page when there is nothing to send.
/// Returns the number of events sent.
pub async fn read_pages<L: EventLog>(
    log: &L,
    meta: &StoreMeta,
    cursor: Option<&Cursor>,
    until: Option<i64>,
    limits: &Limits,
    mut emit: impl FnMut(String),
) -> Result<u64, Error> {
    if let Some(cursor) = cursor {
        if cursor.backend_id != meta.backend_id {
            return Err(Error::BackendIdMismatch {
                expected: meta.backend_id.clone(),
                received: cursor.backend_id.clone(),
            });
        }
    }
    let mut after = cursor.map(|c| c.event_sequence_number.0);
    let mut total = log.count_after(after).await?;
    if let Some(until) = until {
        total = total.saturating_sub(log.count_after(Some(until)).await?);
    }
    let mut pager = Pager::counted(&meta.backend_id, total, *limits);
    let mut sent = 0;
    if total > 0 {
        loop {
            let mut rows = log.read_after(after, limits.read_batch).await?;
            let read = rows.len();
            let past_until = until.is_some_and(|until| rows.last().is_some_and(|row| row.seq_num >= until));
            rows.retain(|row| until.is_none_or(|until| row.seq_num <= until));
            let Some(last) = rows.last() else { break };
            after = Some(last.seq_num);
            sent += rows.len() as u64;
            for row in &rows {
                if let Some(page) = pager.add(&row.json) {
                    emit(page);
                }
            }
            // A short read ends the log, unless the engine cut it short to bound its response
            // size: then events counted at the start are still to come.
            if past_until || (read < limits.read_batch && sent >= total) {
                break;
            }
        }
    }
    if let Some(page) = pager.finish() {
        emit(page);
    }
    Ok(sent)
}

impl<L: EventLog + 'static, X: Host + 'static, H: SyncHooks> Core<L, X, H> {
    /// A [`PullSince`]: the `on_pull` hook, then the page after the position, once every request
    /// that arrived before it is applied. A position from another incarnation of the store is a
    /// `BackendIdMismatch`; one past the head, which the store never gave out, an
    /// `UnknownPosition`. Held, when asked, until the store changes (any transport's push, an
    /// import, a reset) or the wait ends; a held pull blocks nothing.
    pub async fn pull_since(&self, pull: PullSince<'_>, conn: &Conn<'_, X::Socket>) -> Result<Since, Error> {
        self.directory_due();
        let started = self.clock();
        let ticket = self.turns.ticket();
        let cursor = pull.backend_id.map(|backend_id| Cursor {
            backend_id: backend_id.to_owned(),
            event_sequence_number: crate::protocol::SeqNum(pull.after),
        });
        let mut stats = PullStats {
            live: pull.wait_ms.is_some(),
            cursor: Some(pull.after),
            ..PullStats::default()
        };
        let span = self.span("sync.pull", None);
        let ctx = RequestContext {
            store_id: pull.store_id,
            transport: conn.transport,
            payload: pull.payload,
            headers: conn.headers,
        };
        let result = async {
            self.check_store(pull.store_id, conn)?;
            self.hooks.on_pull(cursor.as_ref(), stats.live, &ctx).await?;
            // Waits for what arrived before it, then lets what comes after go on.
            drop(ticket.await);
            let mut waited = false;
            loop {
                let version = self.live.changes.version();
                let (meta, log) = self.open(pull.store_id).await?;
                if let Some(backend_id) = pull.backend_id {
                    if backend_id != meta.backend_id {
                        return Err(Error::BackendIdMismatch {
                            expected: meta.backend_id,
                            received: backend_id.to_owned(),
                        });
                    }
                }
                if pull.after > meta.head {
                    return Err(Error::UnknownPosition {
                        position: pull.after,
                        head: meta.head,
                        backend_id: meta.backend_id,
                    });
                }
                let items = self.page_after(&log, pull.after).await?;
                match pull.wait_ms {
                    Some(ms) if items.is_empty() && !waited => {
                        let changed = Box::pin(self.live.changes.changed(version));
                        futures::future::select(changed, self.host.sleep(ms)).await;
                        waited = true;
                    }
                    _ => {
                        return Ok(Since {
                            backend_id: meta.backend_id,
                            items,
                        })
                    }
                }
            }
        }
        .await;
        self.forget_store_on_storage_error(&result);
        if let Ok(since) = &result {
            stats.events = since.items.len() as u64;
            stats.pages = 1;
        }
        self.log_pull(conn.transport, pull.store_id, &stats, started, &result);
        self.end_span(span, pull.store_id, conn.transport, stats.events, result.as_ref().err());
        result
    }

    /// The events after `after` that fit one page (the page limits of every pull).
    async fn page_after(&self, log: &L, after: i64) -> Result<Vec<crate::storage::StoredItem>, Error> {
        let limits = self.limits();
        let mut items = log.read_after(Some(after), limits.max_events_per_page).await?;
        let mut bytes = 0;
        let fits = items
            .iter()
            .position(|item| {
                bytes += item.json.len() + 1;
                bytes > limits.max_page_bytes
            })
            // An event too large for any page still goes out, alone.
            .map_or(items.len(), |i| i.max(1));
        items.truncate(fits);
        Ok(items)
    }

    /// A pull from any transport: the `on_pull` hook, then every page after the cursor. A live
    /// pull registers first, under the push lock, so no batch is both read and delivered to it
    /// or falls between the pages and the delivery, whatever the engine awaits on.
    pub(super) async fn pull(
        &self,
        request: &RpcRequest<'_>,
        conn: &Conn<'_, X::Socket>,
        out: &mut dyn FnMut(Reply<'_>),
    ) -> Result<Ended, Error> {
        let started = self.clock();
        // Taken before the first await: a pull sees every push that arrived before it.
        let ticket = self.turns.ticket();
        let parsed = parse::<PullPayload>(request).and_then(|payload| {
            self.check_store(&payload.store_id, conn)?;
            if let Some(context) = &payload.rpc_context {
                if !context.caller_context.is_valid() {
                    return Err(Error::InvalidRequest(format!(
                        "rpcContext.callerContext needs a bindingName and a durableObjectId of 1 to {} characters",
                        crate::protocol::payload::MAX_CALLER_FIELD_LEN
                    )));
                }
            }
            Ok(payload)
        });
        let payload = match parsed {
            Ok(payload) => payload,
            Err(error) => {
                let store_id = conn.store_id.map(str::to_owned).or_else(|| self.open_store_id());
                let result = Err(error);
                self.log_pull(
                    conn.transport,
                    store_id.as_deref().unwrap_or(""),
                    &PullStats::default(),
                    started,
                    &result,
                );
                return result;
            }
        };
        let id = request.id.as_ref();
        let live = match (conn.transport, conn.socket, &payload.rpc_context) {
            (Transport::Ws, Some(socket), _) if payload.live => Some(Live::Socket(socket)),
            (Transport::DoRpc, _, Some(context)) => Some(Live::Subscriber(&context.caller_context)),
            _ => None,
        };
        let mut stats = PullStats {
            live: live.is_some(),
            cursor: payload.cursor.as_ref().map(|c| c.event_sequence_number.0),
            ..PullStats::default()
        };
        let span = self.span("sync.pull", request.trace_id.as_deref().zip(request.span_id.as_deref()));
        let ctx = RequestContext {
            store_id: &payload.store_id,
            transport: conn.transport,
            payload: payload.payload,
            headers: conn.headers,
        };
        if let Some(Live::Socket(socket)) = live {
            // Until it registers, an `Interrupt` can cancel it.
            self.add_pending(socket, id);
        }
        let result = self
            .pull_pages(ticket, &payload, live.as_ref(), id, &ctx, &mut stats, out)
            .await;
        if let Some(Live::Socket(socket)) = live {
            // Still pending if it failed before registering (the `on_pull` hook).
            self.take_pending(socket, id);
        }
        self.log_pull(conn.transport, &payload.store_id, &stats, started, &result);
        self.end_span(
            span,
            &payload.store_id,
            conn.transport,
            stats.events,
            result.as_ref().err(),
        );
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn pull_pages(
        &self,
        ticket: super::order::Ticket<'_>,
        payload: &PullPayload<'_>,
        live: Option<&Live<'_, X::Socket>>,
        id: &str,
        ctx: &RequestContext<'_>,
        stats: &mut PullStats,
        out: &mut dyn FnMut(Reply<'_>),
    ) -> Result<Ended, Error> {
        let cursor = payload.cursor.as_ref();
        self.hooks.on_pull(cursor, live.is_some(), ctx).await?;
        let turn = ticket.await;
        let (mut meta, log) = self.open(ctx.store_id).await?;
        // On a shared engine other nodes' batches reach live pulls by catching up from this
        // node's head: a new live pull first brings the head up to the store's (delivering the
        // gap to the pulls already there), then reads exactly up to it, and gets the rest from
        // the catch-ups that follow — each event once.
        let shared_live = live.is_some() && log.shared();
        if shared_live {
            meta = self.catch_up_open(ctx.store_id, &log, meta).await?;
        }
        let socket = match live {
            Some(Live::Socket(socket)) => match self.register_socket_pull(socket, id)? {
                Registration::Registered => Some(*socket),
                Registration::Interrupted => return Ok(Ended::Interrupted),
            },
            Some(Live::Subscriber(caller)) => {
                let subscriber = Subscriber {
                    caller: (*caller).clone(),
                    request_id: id.to_owned(),
                    subscribed_at: self.host.now_millis(),
                };
                self.subscribe(&log, subscriber).await?;
                None
            }
            None => None,
        };
        // A pull that is not live reads without holding up the pushes that came after it.
        let turn = live.is_some().then_some(turn);
        let mut pages = 0;
        let until = shared_live.then_some(meta.head);
        let result = read_pages(log.as_ref(), &meta, cursor, until, &self.limits(), |page| {
            // A live pull interrupted while its first pages are still being read (engines that
            // yield) has had its `Exit`; nothing may follow it.
            if socket.is_none_or(|socket| self.is_live_pull(socket, id)) {
                pages += 1;
                self.hooks.on_pull_res(&page, ctx);
                out(Reply::Page {
                    request_id: id,
                    page: &page,
                });
            }
        })
        .await;
        drop(turn);
        stats.pages = pages;
        self.forget_store_on_storage_error(&result);
        match result {
            Ok(events) => {
                stats.events = events;
                Ok(if socket.is_some() { Ended::Open } else { Ended::Done })
            }
            Err(error) => {
                if let Some(socket) = socket {
                    self.unregister_socket_pull(socket, id);
                }
                Err(error)
            }
        }
    }
}
