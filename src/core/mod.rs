//! The sync core: every rule of the sync protocol, once, for every transport and every storage
//! engine.
//!
//! A transport decodes its wire format into one Effect RPC message as JSON text (the WebSocket
//! and HTTP transports carry exactly that; DO RPC converts its msgpack), hands it to
//! [`Core::handle`] with the facts of its connection ([`Conn`]), and encodes the [`Reply`]s it
//! gets back. Everything between is here: the size limit, dispatch by RPC name, payload
//! parsing, the store check, the hooks, the push lock (requests applied in arrival order),
//! the push rule, pull paging, live pulls of every kind with their registration and
//! interruption, the fan-out of each stored batch, typed errors, log lines and spans.
//!
//! The core is plain Rust: it reaches storage through [`EventLog`] and the runtime through
//! [`Host`], so it is tested natively against real SQLite with a recording host
//! (`tests/core.rs`), and the Durable Object (`crate::object`) is glue around it.

pub mod admin;
pub mod backup;
pub mod directory;
pub mod error;
pub mod host;
mod live;
mod nodes;
mod observe;
pub mod order;
pub mod outbox;
pub mod pager;
pub mod pull;
pub mod push;

use std::cell::RefCell;
use std::rc::Rc;

pub use error::Error;
pub use host::{Host, LiveSocket, UpdateFailure};
pub use pager::{Limits, Pager};

use crate::config::Config;
use crate::hooks::SyncHooks;
use crate::protocol::{decode_client_message, ClientMessage, FrameError, Operation, RpcRequest, Transport};
pub use crate::protocol::{Done, Reply};
use crate::storage::{open_store, EventLog, StorageError, StoreMeta};
use order::Turns;

/// Most live pulls one socket may hold open. The LiveStore client opens one per connection;
/// the cap bounds the socket's attachment, which the runtime keeps small.
pub const MAX_LIVE_PULLS_PER_SOCKET: usize = 8;

/// Most DO RPC subscribers one store keeps; past it the longest-standing one is dropped. A
/// client object that stopped pulling is never heard of again (its `syncUpdateRpc` succeeds and
/// discards), so without a cap they would pile up.
pub const MAX_SUBSCRIBERS: usize = 1000;

/// Deepest nesting of arrays and objects an event's `args` may have. SQLite's JSON functions
/// stop at 1,000 levels, and no LiveStore schema comes near this; deeper args are refused with
/// `ArgsTooDeepError` before anything is stored.
pub const MAX_ARGS_DEPTH: usize = 256;

/// The facts of the connection a message came on.
#[derive(Debug)]
pub struct Conn<'a, S> {
    /// The transport that carried it.
    pub transport: Transport,
    /// The store the connection was opened for (the URL's `storeId`, kept with a socket); the
    /// request must name the same one. `None` where the transport has no such thing (DO RPC):
    /// the request is then checked against the store this object serves.
    pub store_id: Option<&'a str>,
    /// The request headers named in `FORWARD_HEADERS`, for the hooks.
    pub headers: &'a [(String, String)],
    /// The socket, for a transport whose live pulls stay on it (WebSocket).
    pub socket: Option<&'a S>,
    /// Admitted to pull only ([`crate::access::Grant::read_only`]): every push is refused.
    pub read_only: bool,
}

/// Whether a message could be read at all; an HTTP transport answers `400` when it could not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Read and answered (successfully or with a typed error).
    Read,
    /// Not a message (not JSON, not an object, an unknown envelope tag, no usable id).
    Malformed,
}

/// The store an object serves, once opened.
struct OpenStore<L> {
    store_id: String,
    meta: StoreMeta,
    log: Rc<L>,
}

/// Opens a store's log on the configured engine.
pub type OpenLog<L> = Box<dyn Fn(&str) -> Result<L, StorageError>>;

/// The sync core of one store's object.
pub struct Core<L: EventLog, X: Host, H: SyncHooks> {
    config: Rc<Config>,
    limits: std::cell::Cell<Limits>,
    hooks: H,
    host: Rc<X>,
    open_log: OpenLog<L>,
    /// `None` until the first request after construction, and again after a storage failure,
    /// so the next request re-reads the head from storage.
    store: RefCell<Option<OpenStore<L>>>,
    /// Pushes, live-pull registrations, imports and resets, one at a time in arrival order.
    turns: Turns,
    /// Serialises opening the store: two requests opening at once (the engine awaits) would
    /// otherwise each create a different backendId.
    opening: Turns,
    /// A storage error was seen since the store was last opened: the next opening reads the
    /// log's end, since a failed write may have left the head behind it.
    verify_head: std::cell::Cell<bool>,
    /// Live pulls: the sockets', pending ones, DO RPC subscribers and their delivery queues.
    live: live::Live<X::Socket>,
    /// The alarm that drives the outbox, as far as this object knows it.
    alarm: outbox::AlarmState,
    /// What the store holds, for its quotas: counted at a head and backendId, kept current by
    /// this object's pushes, counted again when the store moved otherwise (another node, an
    /// import, a reset).
    usage: RefCell<Option<(i64, String, crate::rules::Usage)>>,
    /// The store's directory entry, as far as this object knows it.
    directory: directory::DirectoryState,
    /// The store's backup, as far as this object knows it.
    backup: backup::BackupState,
}

impl<L: EventLog + 'static, X: Host + 'static, H: SyncHooks> Core<L, X, H> {
    /// A core for one store's object; `open_log` opens the store's log on first use.
    pub fn new(config: Rc<Config>, hooks: H, host: X, open_log: OpenLog<L>) -> Self {
        let limits = Limits {
            max_events_per_push: config.max_push_events,
            ..Limits::default()
        };
        Core {
            config,
            limits: std::cell::Cell::new(limits),
            hooks,
            host: Rc::new(host),
            open_log,
            store: RefCell::new(None),
            turns: Turns::new(),
            opening: Turns::new(),
            verify_head: std::cell::Cell::new(false),
            live: live::Live::default(),
            usage: RefCell::new(None),
            directory: directory::DirectoryState::default(),
            backup: backup::BackupState::default(),
            alarm: outbox::AlarmState::default(),
        }
    }

    /// The hooks the core runs.
    pub fn hooks(&self) -> &H {
        &self.hooks
    }

    /// The page and push limits in force.
    pub fn limits(&self) -> Limits {
        self.limits.get()
    }

    /// Replaces the page and push limits (tests read storage in smaller pieces with it).
    pub fn set_limits(&self, limits: Limits) {
        self.limits.set(limits);
    }

    /// The host the core runs on.
    pub fn host(&self) -> &X {
        &self.host
    }

    /// The configuration the core runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The store a log line names for a request that could not say: its connection's, else the
    /// one this object serves, else none.
    fn store_for_log(&self, conn: &Conn<'_, X::Socket>) -> String {
        conn.store_id
            .map(str::to_owned)
            .or_else(|| self.open_store_id())
            .unwrap_or_default()
    }

    /// The storeId this object serves, once a request has opened it.
    pub fn open_store_id(&self) -> Option<String> {
        self.store.borrow().as_ref().map(|open| open.store_id.clone())
    }

    /// Handles one client message (an Effect RPC envelope as JSON text, however the transport
    /// carried it), sending replies to `out` as they are ready: a pull's pages go out while
    /// later ones are still being read.
    ///
    /// Arrival order: the request takes its place in the push lock before its first await, so
    /// call this for each message in the order the messages arrived.
    pub async fn handle(&self, text: &str, conn: &Conn<'_, X::Socket>, out: &mut dyn FnMut(Reply<'_>)) -> Handled {
        let message = match decode_client_message(text) {
            Ok(message) => message,
            Err(error) => {
                self.log_unhandled(conn, None, text.len(), "InvalidMessage");
                reply_to_frame_error(&error, out);
                return Handled::Malformed;
            }
        };
        match message {
            ClientMessage::Ack | ClientMessage::Eof => {}
            // Only reached when the runtime's auto-response did not answer it.
            ClientMessage::Ping => out(Reply::Pong),
            ClientMessage::Interrupt { request_id } => {
                if let Some(socket) = conn.socket {
                    self.interrupt(socket, &request_id, out);
                }
            }
            ClientMessage::Request(request) => {
                self.directory_due();
                self.request(text.len(), &request, conn, out).await
            }
        }
        Handled::Read
    }

    /// A message the transport could not even turn into text (a binary WebSocket frame, an
    /// undecodable DO RPC call): logged, and answered with a defect.
    pub fn refuse_undecodable(
        &self,
        conn: &Conn<'_, X::Socket>,
        bytes: usize,
        outcome: &'static str,
        message: &str,
        out: &mut dyn FnMut(Reply<'_>),
    ) {
        self.log_unhandled(conn, None, bytes, outcome);
        out(Reply::Defect(message));
    }

    async fn request(
        &self,
        size: usize,
        request: &RpcRequest<'_>,
        conn: &Conn<'_, X::Socket>,
        out: &mut dyn FnMut(Reply<'_>),
    ) {
        let id = request.id.as_ref();
        let operation = conn.transport.operation(&request.tag);
        let refusal = if !self.config.transports.allows(conn.transport) {
            Some(Error::TransportDisabled(conn.transport))
        } else if size > self.config.max_message_bytes {
            Some(Error::MessageTooLarge {
                size: Some(size),
                max: self.config.max_message_bytes,
            })
        } else if operation.is_none() {
            Some(Error::UnknownRpc {
                tag: request.tag.to_string(),
                transport: conn.transport,
            })
        } else {
            None
        };
        if let Some(error) = refusal {
            let bytes = match error {
                Error::MessageTooLarge { .. } => size,
                _ => observe::payload_bytes(request) as usize,
            };
            self.log_unhandled(conn, operation, bytes, error.name());
            out(Reply::Exit {
                request_id: id,
                result: Err(error.to_wire()),
            });
            return;
        }
        let result = match operation {
            Some(Operation::Push) => self.push(request, conn).await,
            Some(Operation::Pull) => match self.pull(request, conn, out).await {
                // A live pull on a socket stays open: no `Exit` until it is interrupted.
                Ok(pull::Ended::Open) => return,
                Ok(pull::Ended::Interrupted) => {
                    out(Reply::Interrupted { request_id: id });
                    return;
                }
                Ok(pull::Ended::Done) => Ok(Done::Pulled),
                Err(e) => Err(e),
            },
            Some(Operation::Ping) => self.ping(request, conn).map(|()| Done::Pong),
            None => return,
        };
        out(Reply::Exit {
            request_id: id,
            result: result.map_err(|e| e.to_wire()),
        });
    }

    /// `Ping` (HTTP, DO RPC): checks the store and answers.
    fn ping(&self, request: &RpcRequest<'_>, conn: &Conn<'_, X::Socket>) -> Result<(), Error> {
        let payload: crate::protocol::PingPayload = parse(request)?;
        self.check_store(&payload.store_id, conn)
    }

    /// The one store check: a request must name the store its connection was opened for, and
    /// the store this object serves.
    fn check_store(&self, requested: &str, conn: &Conn<'_, X::Socket>) -> Result<(), Error> {
        let serving = match conn.store_id {
            Some(store_id) => Some(store_id == requested),
            None => self.store.borrow().as_ref().map(|open| open.store_id == requested),
        };
        match serving {
            Some(false) => Err(Error::StoreMismatch {
                requested: requested.to_owned(),
            }),
            _ => Ok(()),
        }
    }

    /// Opens the store on first use after construction (tables, head, backendId); returns its
    /// meta and log.
    async fn open(&self, store_id: &str) -> Result<(StoreMeta, Rc<L>), Error> {
        if let Some(opened) = self.cached(store_id)? {
            return Ok(opened);
        }
        let _turn = self.opening.ticket().await;
        if let Some(opened) = self.cached(store_id)? {
            return Ok(opened);
        }
        let log = Rc::new((self.open_log)(store_id)?);
        let host = self.host.clone();
        let verify = self.verify_head.replace(false);
        let meta = open_store(log.as_ref(), || host.new_backend_id(), verify)
            .await
            .inspect_err(|_| self.verify_head.set(verify))?;
        self.open_outbox(log.as_ref(), meta.head).await?;
        self.usage_opened(log.as_ref(), &meta);
        self.log_store_opened(store_id, &meta);
        *self.store.borrow_mut() = Some(OpenStore {
            store_id: store_id.to_owned(),
            meta: meta.clone(),
            log: log.clone(),
        });
        Ok((meta, log))
    }

    fn cached(&self, store_id: &str) -> Result<Option<(StoreMeta, Rc<L>)>, Error> {
        match self.store.borrow().as_ref() {
            None => Ok(None),
            Some(open) if open.store_id == store_id => Ok(Some((open.meta.clone(), open.log.clone()))),
            // One object serves one storeId (the Worker routes by `idFromName(storeId)`).
            Some(_) => Err(Error::StoreMismatch {
                requested: store_id.to_owned(),
            }),
        }
    }

    /// Records the head after a write.
    fn set_meta(&self, meta: &StoreMeta) {
        if let Some(open) = self.store.borrow_mut().as_mut() {
            open.meta = meta.clone();
        }
    }

    /// After a storage failure the cached head may be wrong (a write may have landed); the next
    /// request reopens the store and re-reads it.
    fn forget_store_on_storage_error<T>(&self, result: &Result<T, Error>) {
        if let Err(e) = result {
            self.forget_store_after(e);
        }
    }

    /// [`Core::forget_store_on_storage_error`] for an error already taken out of its result.
    fn forget_store_after(&self, error: &Error) {
        if let Error::Storage(_) = error {
            *self.store.borrow_mut() = None;
            self.verify_head.set(true);
        }
    }
}

/// Parses a request's payload, turning a schema mismatch into the typed error the client gets.
fn parse<'a, T: serde::Deserialize<'a>>(request: &RpcRequest<'a>) -> Result<T, Error> {
    let raw = request
        .payload
        .ok_or_else(|| Error::InvalidRequest(format!("{}: missing payload", request.tag)))?;
    serde_json::from_str(raw.get()).map_err(|e| Error::InvalidRequest(format!("{}: invalid payload: {e}", request.tag)))
}

/// The answer to a message that could not be decoded: on its request when it named one, else a
/// defect.
fn reply_to_frame_error(error: &FrameError, out: &mut dyn FnMut(Reply<'_>)) {
    let message = error.to_string();
    match error.request_id() {
        Some(id) => out(Reply::Exit {
            request_id: id,
            result: Err(Error::InvalidRequest(message).to_wire()),
        }),
        None => out(Reply::Defect(&message)),
    }
}
