//! Live pulls of every kind: their registration, interruption and delivery.
//!
//! - **WebSocket.** A live pull is a request id on a socket; every stored batch goes out on it
//!   as stream chunks. The ids are recorded with the socket itself (its attachment, through
//!   [`Host::save_live_pulls`]), the record that outlives the object's eviction; the index here
//!   is a cache of it, rebuilt on first use after a wake.
//! - **DO RPC.** A live pull is a subscriber row in the store's storage; every stored batch is
//!   delivered by calling the client object's `syncUpdateRpc`, through one ordered queue per
//!   subscriber drained beside the push (see [`Core::queue_updates`]).
//!
//! A WebSocket live pull waits for the push lock before it registers (so no batch can be both
//! read and delivered, or fall between the two). Until then it is *pending*, and an `Interrupt`
//! that arrives meanwhile cancels it when it gets there.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::task::{Poll, Waker};

use super::{Core, Error, Host, LiveSocket, Reply, MAX_LIVE_PULLS_PER_SOCKET, MAX_SUBSCRIBERS};
use crate::hooks::SyncHooks;
use crate::log::{Level, LogLevel};
use crate::protocol::CallerContext;
use crate::storage::{EventLog, Subscriber};

/// A live pull still waiting for the push lock.
struct Pending<S> {
    socket: S,
    id: String,
    /// The client sent `Interrupt` for it meanwhile.
    interrupted: bool,
}

/// Pages waiting for each DO RPC subscriber, as `(request id, page)`; the front one is being
/// delivered.
type Queues = Rc<RefCell<HashMap<CallerContext, VecDeque<(String, String)>>>>;

/// Wakes pulls held until the store changes (long-polls): every append, import and reset
/// bumps the version and wakes them all; each then looks for itself.
#[derive(Default)]
pub(super) struct Changes {
    version: Cell<u64>,
    waiting: RefCell<Vec<Waker>>,
    /// Pulls waiting right now, for the admin figures.
    held: Cell<usize>,
}

impl Changes {
    /// The current version; a pull reads it before it reads storage, so a change in between
    /// still wakes it.
    pub(super) fn version(&self) -> u64 {
        self.version.get()
    }

    /// The store changed.
    pub(super) fn notify(&self) {
        self.version.set(self.version.get() + 1);
        for waker in self.waiting.borrow_mut().drain(..) {
            waker.wake();
        }
    }

    /// Resolves once the version is no longer `since`.
    pub(super) async fn changed(&self, since: u64) {
        /// Counts the pull out however its wait ends (a timeout drops this future).
        struct Held<'a>(&'a Cell<usize>);
        impl Drop for Held<'_> {
            fn drop(&mut self) {
                self.0.set(self.0.get() - 1);
            }
        }
        self.held.set(self.held.get() + 1);
        let _held = Held(&self.held);
        futures::future::poll_fn(|cx| {
            if self.version.get() != since {
                Poll::Ready(())
            } else {
                self.waiting.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
    }

    /// Pulls waiting right now.
    pub(super) fn held(&self) -> usize {
        self.held.get()
    }
}

/// The live-pull state of one store's object.
pub(super) struct Live<S> {
    /// Sockets with live pulls; `None` until first needed after construction.
    sockets: RefCell<Option<Vec<LiveSocket<S>>>>,
    /// Moves on with every change to `sockets` (see [`Host::send_pages`]).
    generation: Cell<u64>,
    pending: RefCell<Vec<Pending<S>>>,
    /// DO RPC subscribers; `None` until first needed after construction. A cache of the rows in
    /// storage, which remain the durable record.
    subscribers: Rc<RefCell<Option<Vec<Subscriber>>>>,
    deliveries: Queues,
    /// Pulls held until the store changes.
    pub(super) changes: Changes,
}

impl<S> Default for Live<S> {
    fn default() -> Self {
        Live {
            sockets: RefCell::new(None),
            generation: Cell::new(0),
            pending: RefCell::new(Vec::new()),
            subscribers: Rc::new(RefCell::new(None)),
            deliveries: Queues::default(),
            changes: Changes::default(),
        }
    }
}

/// How registering a socket's live pull went.
pub(super) enum Registration {
    /// It receives every later batch.
    Registered,
    /// The client interrupted it while it waited.
    Interrupted,
}

impl<L: EventLog + 'static, X: Host + 'static, H: SyncHooks> Core<L, X, H> {
    /// The socket index, read from the host on first use after construction.
    fn socket_index(&self) -> std::cell::RefMut<'_, Vec<LiveSocket<X::Socket>>> {
        std::cell::RefMut::map(self.live.sockets.borrow_mut(), |index| {
            index.get_or_insert_with(|| self.host.live_sockets())
        })
    }

    /// Calls `f` with every socket that holds live pulls, and the index's generation.
    pub(super) fn with_live_sockets<R>(&self, f: impl FnOnce(&[LiveSocket<X::Socket>], u64) -> R) -> R {
        f(&self.socket_index(), self.live.generation.get())
    }

    /// The socket index changed.
    fn next_generation(&self) {
        self.live.generation.set(self.live.generation.get() + 1);
    }

    /// Marks a socket's live pull as waiting for the push lock.
    pub(super) fn add_pending(&self, socket: &X::Socket, id: &str) {
        self.live.pending.borrow_mut().push(Pending {
            socket: socket.clone(),
            id: id.to_owned(),
            interrupted: false,
        });
    }

    /// Removes a pending live pull; returns whether it was interrupted while it waited.
    pub(super) fn take_pending(&self, socket: &X::Socket, id: &str) -> bool {
        let mut pending = self.live.pending.borrow_mut();
        match pending.iter().position(|p| p.socket == *socket && p.id == id) {
            Some(i) => pending.swap_remove(i).interrupted,
            None => false,
        }
    }

    /// Registers a socket's live pull, unless it was interrupted while it waited.
    pub(super) fn register_socket_pull(&self, socket: &X::Socket, id: &str) -> Result<Registration, Error> {
        if self.take_pending(socket, id) {
            return Ok(Registration::Interrupted);
        }
        let mut index = self.socket_index();
        let position = index.iter().position(|entry| entry.socket == *socket);
        let mut pulls = position.map(|i| index[i].pulls.clone()).unwrap_or_default();
        if pulls.iter().any(|pull| pull == id) {
            return Err(Error::InvalidRequest(format!("request id {id} is already a live pull")));
        }
        if pulls.len() >= MAX_LIVE_PULLS_PER_SOCKET {
            return Err(Error::TooManyLivePulls(MAX_LIVE_PULLS_PER_SOCKET));
        }
        pulls.push(id.to_owned());
        self.host
            .save_live_pulls(socket, &pulls)
            .map_err(Error::ConnectionState)?;
        match position {
            Some(i) => index[i].pulls = pulls,
            None => index.push(LiveSocket {
                socket: socket.clone(),
                pulls,
            }),
        }
        self.next_generation();
        Ok(Registration::Registered)
    }

    /// Ends a socket's live pull; returns whether it was registered.
    pub(super) fn unregister_socket_pull(&self, socket: &X::Socket, id: &str) -> bool {
        let mut index = self.socket_index();
        let Some(i) = index.iter().position(|entry| entry.socket == *socket) else {
            return false;
        };
        let before = index[i].pulls.len();
        index[i].pulls.retain(|pull| pull != id);
        if index[i].pulls.len() == before {
            return false;
        }
        // The socket may be closing; its record goes with it either way.
        let _ = self.host.save_live_pulls(socket, &index[i].pulls);
        if index[i].pulls.is_empty() {
            index.swap_remove(i);
        }
        self.next_generation();
        true
    }

    /// Whether `id` is a registered live pull of the socket.
    pub(super) fn is_live_pull(&self, socket: &X::Socket, id: &str) -> bool {
        self.socket_index()
            .iter()
            .any(|entry| entry.socket == *socket && entry.pulls.iter().any(|pull| pull == id))
    }

    /// The client's `Interrupt` of a stream: a registered live pull ends at once (with its
    /// `Exit`); one still waiting for the push lock is cancelled when it gets there.
    pub(super) fn interrupt(&self, socket: &X::Socket, id: &str, out: &mut dyn FnMut(Reply<'_>)) {
        if self.unregister_socket_pull(socket, id) {
            out(Reply::Interrupted { request_id: id });
            return;
        }
        if let Some(pending) = self
            .live
            .pending
            .borrow_mut()
            .iter_mut()
            .find(|p| p.socket == *socket && p.id == id && !p.interrupted)
        {
            pending.interrupted = true;
        }
    }

    /// A socket closed or failed: its live pulls end with it (its record goes with the socket).
    pub fn socket_closed(&self, socket: &X::Socket) {
        if let Some(index) = self.live.sockets.borrow_mut().as_mut() {
            let before = index.len();
            index.retain(|entry| entry.socket != *socket);
            if index.len() != before {
                self.next_generation();
            }
        }
    }

    /// Every socket was closed (a reset).
    pub(super) fn forget_sockets(&self) {
        *self.live.sockets.borrow_mut() = Some(Vec::new());
        self.next_generation();
    }

    /// Whether anyone waits for the store's next batch here: a socket's live pull, a held
    /// sync-electric pull, a DO RPC subscriber this object has read. On a shared engine the
    /// object then keeps listening for other nodes' writes.
    pub fn has_live_pulls(&self) -> bool {
        self.live_pull_count() > 0
            || self.live.changes.held() > 0
            || self
                .live
                .subscribers
                .borrow()
                .as_ref()
                .is_some_and(|list| !list.is_empty())
    }

    /// How many live pulls the store's sockets hold.
    pub(super) fn live_pull_count(&self) -> usize {
        self.socket_index().iter().map(|entry| entry.pulls.len()).sum()
    }

    /// The DO RPC subscribers, read from storage on first use after a wake.
    pub(super) async fn subscribers(&self, log: &L) -> Vec<Subscriber> {
        if let Some(list) = self.live.subscribers.borrow().as_ref() {
            return list.clone();
        }
        if !self.config.transports.do_rpc {
            return Vec::new();
        }
        match log.subscribers().await {
            Ok(list) => {
                *self.live.subscribers.borrow_mut() = Some(list.clone());
                list
            }
            Err(e) => {
                // Delivery to them waits for the next batch; the push itself stands.
                if let Some(line) = self.config.log_level.line(Level::Error, "error") {
                    self.host.log(line.str("op", "read_subscribers").str("message", &e.0));
                }
                Vec::new()
            }
        }
    }

    /// Records a DO RPC live pull's subscriber; the same client object pulling again replaces
    /// its earlier one.
    pub(super) async fn subscribe(&self, log: &L, subscriber: Subscriber) -> Result<(), Error> {
        log.subscribe(&subscriber, MAX_SUBSCRIBERS).await?;
        if let Some(line) = self.config.log_level.line(Level::Info, "do_rpc_subscribed") {
            self.host.log(
                line.str("binding", &subscriber.caller.binding_name)
                    .str("durableObjectId", &subscriber.caller.durable_object_id)
                    .str("requestId", &subscriber.request_id),
            );
        }
        let mut cache = self.live.subscribers.borrow_mut();
        if let Some(list) = cache.as_mut() {
            list.retain(|s| s.caller != subscriber.caller);
            list.push(subscriber);
            if list.len() > MAX_SUBSCRIBERS {
                list.sort_by_key(|s| std::cmp::Reverse(s.subscribed_at));
                list.truncate(MAX_SUBSCRIBERS);
            }
        }
        Ok(())
    }

    /// Queues pages for every subscriber and returns at once. Each subscriber has its own queue,
    /// drained by one task at a time in order, so one batch's pages never overtake another's.
    /// The push does not wait for them: a client object may answer an update by calling back in
    /// (a new instance restarting its live pull), which would wait for this push. A subscriber
    /// that cannot be reached for good is dropped; other failures are logged and it stays.
    pub(super) fn queue_updates(&self, log: &Rc<L>, subscribers: &[Subscriber], pages: &[String]) {
        for subscriber in subscribers {
            let idle = {
                let mut queues = self.live.deliveries.borrow_mut();
                let queue = queues.entry(subscriber.caller.clone()).or_default();
                let idle = queue.is_empty();
                queue.extend(pages.iter().map(|page| (subscriber.request_id.clone(), page.clone())));
                idle
            };
            if idle {
                let drain = Drain {
                    caller: subscriber.caller.clone(),
                    queues: self.live.deliveries.clone(),
                    subscribers: self.live.subscribers.clone(),
                    host: self.host.clone(),
                    log: log.clone(),
                    log_level: self.config.log_level,
                };
                self.host.spawn(Box::pin(drain.run()));
            }
        }
    }

    /// How many DO RPC subscribers the store has.
    pub(super) async fn subscriber_count(&self, log: &L) -> usize {
        self.subscribers(log).await.len()
    }
}

/// Delivers one subscriber's queue, front to back, until it is empty.
struct Drain<L, X> {
    caller: CallerContext,
    queues: Queues,
    subscribers: Rc<RefCell<Option<Vec<Subscriber>>>>,
    host: Rc<X>,
    log: Rc<L>,
    log_level: LogLevel,
}

impl<L: EventLog, X: Host> Drain<L, X> {
    async fn run(self) {
        loop {
            // Stays in the queue while it is delivered, so a push meanwhile sees a busy queue.
            let front = self.queues.borrow().get(&self.caller).and_then(|q| q.front().cloned());
            let Some((request_id, page)) = front else {
                self.queues.borrow_mut().remove(&self.caller);
                return;
            };
            if let Err(failure) = self.host.sync_update(&self.caller, &request_id, &page).await {
                if let Some(line) = self.log_level.line(Level::Warn, "do_rpc_update_failed") {
                    self.host.log(
                        line.str("binding", &self.caller.binding_name)
                            .str("durableObjectId", &self.caller.durable_object_id)
                            .bool("permanent", failure.permanent)
                            .str("error", &failure.message),
                    );
                }
                if failure.permanent {
                    let _ = self.log.unsubscribe(&self.caller).await;
                    if let Some(list) = self.subscribers.borrow_mut().as_mut() {
                        list.retain(|s| s.caller != self.caller);
                    }
                    self.queues.borrow_mut().remove(&self.caller);
                    return;
                }
            }
            if let Some(queue) = self.queues.borrow_mut().get_mut(&self.caller) {
                queue.pop_front();
            }
        }
    }
}
