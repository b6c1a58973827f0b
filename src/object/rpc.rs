//! The DO RPC transport on the object's side (see [`crate::rpc`]): `rpc(Uint8Array)` answers
//! `SyncDoRpc.Pull`, `.Push` and `.Ping` with the same rules as the other transports, and every
//! accepted push, from any transport, is delivered to the live pulls of client objects by
//! calling their `syncUpdateRpc`.
//!
//! Unlike the reference, which keeps one subscriber per store in memory (lost when the object
//! is evicted: LiveStore issues #1462, #1541, #1601), subscribers are rows of the object's
//! SQLite, one per client object, so they outlive eviction and a store can have many.

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::worker_sys::types::SqlStorage;

use super::logs::{payload_bytes, PullStats};
use super::SyncObject;
use crate::hooks::{RequestContext, SyncHooks};
use crate::js::{error_message, now_millis};
use crate::protocol::payload::parse_payload;
use crate::protocol::{decode_client_message, ClientMessage, PingPayload, PushPayload, RpcRequest, SyncError};
use crate::router::Transport;
use crate::rpc::{self, tags, CallerContext, DoRpcPullPayload, Subscriber, Value};
use crate::util::json::str_literal;

/// Most subscribers one store keeps; past it the longest-standing one is dropped. A client
/// object that stopped pulling is never heard of again (its `syncUpdateRpc` succeeds and
/// discards), so without a cap they would pile up.
pub const MAX_SUBSCRIBERS: usize = 1000;

const SUBSCRIBERS_TABLE: &str = "do_rpc_subscribers";

/// What `rpc` returns: bytes for Push and Ping, the pieces of a stream for a Pull (the JS
/// wrapper turns them into a `ReadableStream`, one enqueued piece each, as the reference).
pub enum RpcReply {
    /// One msgpack message array.
    Bytes(Vec<u8>),
    /// One msgpack message array per stream element, the `Exit` last.
    Stream(Vec<Vec<u8>>),
}

impl RpcReply {
    /// What the `rpc` export of a Durable Object class returns to JavaScript: a `Uint8Array`,
    /// or an array of them for a stream (`src/worker-entry.mjs` makes that a `ReadableStream`).
    pub fn into_js(self) -> JsValue {
        let bytes = |b: &[u8]| JsValue::from(js_sys::Uint8Array::from(b));
        match self {
            RpcReply::Bytes(b) => bytes(&b),
            RpcReply::Stream(pieces) => pieces.iter().map(|p| bytes(p)).collect::<js_sys::Array>().into(),
        }
    }
}

impl<H: SyncHooks> SyncObject<H> {
    /// The object's `rpc(payload)` method: one msgpack-encoded Effect RPC request array.
    pub async fn rpc(&self, payload: &[u8]) -> RpcReply {
        let messages = match rpc::decode_request(payload) {
            Ok(messages) => messages,
            Err(e) => return RpcReply::Bytes(rpc::encode_reply(rpc::defect(&format!("undecodable request: {e}")))),
        };
        let mut replies = Vec::new();
        for text in &messages {
            let request = match decode_client_message(text) {
                Ok(ClientMessage::Request(request)) => request,
                // Acks, interrupts and pings mean nothing outside a socket; the client sends none.
                Ok(_) => continue,
                Err(error) => {
                    replies.push(match error.request_id() {
                        Some(id) => rpc::exit_failure(id, &SyncError::invalid_request(error.to_string())),
                        None => rpc::defect(&error.to_string()),
                    });
                    continue;
                }
            };
            let id = request.id.as_ref();
            if let Some(error) = self.rpc_refusal(payload.len()) {
                replies.push(rpc::exit_failure(id, &error));
                continue;
            }
            match request.tag.as_ref() {
                // A lone pull is answered as a stream, as the reference does.
                tags::PULL if messages.len() == 1 => {
                    let elements = self.rpc_pull(&request).await;
                    return RpcReply::Stream(elements.into_iter().map(rpc::encode_reply).collect());
                }
                tags::PULL => replies.extend(self.rpc_pull(&request).await),
                tags::PUSH => replies.push(match self.rpc_push(&request).await {
                    Ok(()) => rpc::exit_success(id, Value::Object(Vec::new())),
                    Err(error) => rpc::exit_failure(id, &error),
                }),
                tags::PING => replies.push(
                    match parse_payload::<PingPayload>(tags::PING, request.payload)
                        .and_then(|p| self.check_ping_store(&p.store_id))
                    {
                        Ok(()) => rpc::exit_success(id, Value::Undefined),
                        Err(error) => rpc::exit_failure(id, &error),
                    },
                ),
                other => replies.push(rpc::exit_failure(
                    id,
                    &SyncError::unknown(
                        "UnknownRpcError",
                        format!(
                            "unknown RPC tag {other:?}; this method serves {}, {} and {}",
                            tags::PULL,
                            tags::PUSH,
                            tags::PING
                        ),
                    ),
                )),
            }
        }
        // Several replies go in one array, as the reference's `parser.encode(responses)`.
        RpcReply::Bytes(rpc::msgpack::encode(&Value::Array(replies)))
    }

    /// Why no request of this call may run, if one applies to all of them.
    fn rpc_refusal(&self, payload_len: usize) -> Option<SyncError> {
        if !self.config.transports.allows(Transport::DoRpc) {
            return Some(SyncError::unknown(
                "TransportDisabledError",
                crate::router::transport_disabled(Transport::DoRpc),
            ));
        }
        (payload_len > self.config.max_message_bytes).then(|| {
            SyncError::unknown(
                "MessageTooLargeError",
                crate::router::too_large(payload_len, self.config.max_message_bytes),
            )
        })
    }

    /// A ping for another store than the one this object opened is refused, as pulls and pushes are.
    fn check_ping_store(&self, store_id: &str) -> Result<(), SyncError> {
        match self.store.borrow().as_ref() {
            Some(open) if open.store_id != store_id => Err(SyncError::unknown(
                "StoreMismatchError",
                "this Durable Object serves another store",
            )),
            _ => Ok(()),
        }
    }

    /// `SyncDoRpc.Pull`: every page from the cursor as stream elements, then the `Exit`; with
    /// `rpcContext`, the caller is recorded as a subscriber before the pages are read (under the
    /// push lock, so no push falls between the pages and the subscription).
    async fn rpc_pull(&self, request: &RpcRequest<'_>) -> Vec<Value> {
        let id = request.id.as_ref();
        let mut elements = Vec::new();
        let started = self.log_clock();
        let mut stats = PullStats::new(false, None);
        let mut store_id = String::new();
        let result = self
            .rpc_pull_pages(request, &mut elements, &mut stats, &mut store_id)
            .await;
        stats.pages = elements.len() as u64;
        self.log_pull(Transport::DoRpc, &store_id, &stats, started, &result);
        elements.push(match result {
            Ok(()) => rpc::exit_success(id, Value::Undefined),
            Err(error) => rpc::exit_failure(id, &error),
        });
        elements
    }

    /// The pages of [`Self::rpc_pull`], filling in what its log line reports.
    async fn rpc_pull_pages(
        &self,
        request: &RpcRequest<'_>,
        elements: &mut Vec<Value>,
        stats: &mut PullStats,
        store_id: &mut String,
    ) -> Result<(), SyncError> {
        let payload: DoRpcPullPayload = parse_payload(tags::PULL, request.payload)?;
        store_id.push_str(&payload.store_id);
        *stats = PullStats::new(payload.rpc_context.is_some(), payload.cursor.as_ref());
        let caller = payload.rpc_context.as_ref().map(|c| c.caller_context.clone());
        if let Some(caller) = &caller {
            caller.validate()?;
        }
        let span = self.span("sync.pull", request);
        let ctx = RequestContext {
            store_id: &payload.store_id,
            transport: Transport::DoRpc,
            payload: payload.payload,
            headers: &[],
        };
        let id = request.id.as_ref();
        let result = self
            .pull(
                payload.cursor.as_ref(),
                caller.is_some(),
                &ctx,
                || match &caller {
                    Some(caller) => self.subscribe(Subscriber {
                        caller: caller.clone(),
                        request_id: id.to_owned(),
                        subscribed_at: now_millis(),
                    }),
                    None => Ok(()),
                },
                |page| elements.push(rpc::chunk(id, rpc::pull_page(&page, id))),
            )
            .await;
        stats.events = *result.as_ref().unwrap_or(&0);
        self.export(
            span,
            &payload.store_id,
            Transport::DoRpc,
            *result.as_ref().unwrap_or(&0),
            result.as_ref().err(),
        );
        result.map(|_| ())
    }

    /// `SyncDoRpc.Push`: the rules of every transport; the batch reaches every live pull.
    async fn rpc_push(&self, request: &RpcRequest<'_>) -> Result<(), SyncError> {
        let started = self.log_clock();
        let bytes = payload_bytes(request);
        let payload: PushPayload = match parse_payload(tags::PUSH, request.payload) {
            Ok(payload) => payload,
            Err(error) => {
                let result = Err(error);
                self.log_push(Transport::DoRpc, "", None, bytes, started, &result);
                return result;
            }
        };
        let span = self.span("sync.push", request);
        let ctx = RequestContext {
            store_id: &payload.store_id,
            transport: Transport::DoRpc,
            payload: payload.payload,
            headers: &[],
        };
        let result = self.push(&payload, &ctx).await;
        self.log_push(
            Transport::DoRpc,
            &payload.store_id,
            Some(payload.batch.len()),
            bytes,
            started,
            &result,
        );
        self.export(
            span,
            &payload.store_id,
            Transport::DoRpc,
            payload.batch.len() as u64,
            result.as_ref().err(),
        );
        result
    }

    fn sql(&self) -> Result<SqlStorage, SyncError> {
        let storage: JsValue = AsRef::<JsValue>::as_ref(self.state.storage().as_raw()).clone();
        let sql = Reflect::get(&storage, &JsValue::from_str("sql")).map_err(storage_error)?;
        if sql.is_undefined() {
            return Err(SyncError::unknown(
                "StorageError",
                "Durable Object SQLite is not available (new_sqlite_classes)",
            ));
        }
        Ok(sql.unchecked_into())
    }

    /// Runs a query on the subscribers table; `create` makes the table first (only subscribing
    /// does, so stores that never see DO RPC get no table).
    fn subscribers_sql(&self, create: bool, query: &str, values: &[JsValue]) -> Result<js_sys::Array, SyncError> {
        let sql = self.sql()?;
        if create {
            sql.exec(
            &format!(
                "CREATE TABLE IF NOT EXISTS {SUBSCRIBERS_TABLE} (binding_name TEXT NOT NULL, durable_object_id TEXT NOT NULL, request_id TEXT NOT NULL, subscribed_at INTEGER NOT NULL, PRIMARY KEY (binding_name, durable_object_id))"
            ),
            js_sys::Array::new(),
            )
            .map_err(storage_error)?;
        }
        let cursor = sql.exec(query, values.iter().collect()).map_err(storage_error)?;
        Ok(js_sys::Array::from(&cursor.raw()))
    }

    /// Records a live-pull subscriber; the same client object pulling again replaces its row.
    fn subscribe(&self, subscriber: Subscriber) -> Result<(), SyncError> {
        self.subscribers_sql(
            true,
            &format!(
                "INSERT OR REPLACE INTO {SUBSCRIBERS_TABLE} (binding_name, durable_object_id, request_id, subscribed_at) VALUES (?, ?, ?, ?)"
            ),
            &[
                JsValue::from_str(&subscriber.caller.binding_name),
                JsValue::from_str(&subscriber.caller.durable_object_id),
                JsValue::from_str(&subscriber.request_id),
                JsValue::from_f64(subscriber.subscribed_at as f64),
            ],
        )?;
        self.subscribers_sql(
            false,
            &format!(
                "DELETE FROM {SUBSCRIBERS_TABLE} WHERE rowid NOT IN (SELECT rowid FROM {SUBSCRIBERS_TABLE} ORDER BY subscribed_at DESC LIMIT {MAX_SUBSCRIBERS})"
            ),
            &[],
        )?;
        if let Some(line) = self.config.log_level.line(crate::log::Level::Info, "do_rpc_subscribed") {
            crate::log::emit(
                line.str("binding", &subscriber.caller.binding_name)
                    .str("durableObjectId", &subscriber.caller.durable_object_id)
                    .str("requestId", &subscriber.request_id),
            );
        }
        let mut cache = self.rpc_subscribers.borrow_mut();
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

    /// The subscribers, read from SQLite on first use after a wake.
    pub(super) fn rpc_subscribers(&self) -> Vec<Subscriber> {
        if let Some(list) = self.rpc_subscribers.borrow().as_ref() {
            return list.clone();
        }
        if !self.config.transports.do_rpc {
            return Vec::new();
        }
        let rows = match self.subscribers_sql(
            false,
            &format!("SELECT binding_name, durable_object_id, request_id, subscribed_at FROM {SUBSCRIBERS_TABLE}"),
            &[],
        ) {
            Ok(rows) => rows,
            Err(SyncError::Unknown { message, .. }) if message.contains("no such table") => js_sys::Array::new(),
            Err(e) => {
                worker::console_error!("reading DO RPC subscribers failed: {e}");
                return Vec::new();
            }
        };
        let list: Vec<Subscriber> = rows
            .iter()
            .filter_map(|row| {
                let col = |i| Reflect::get_u32(&row, i).ok();
                Some(Subscriber {
                    caller: CallerContext {
                        binding_name: col(0)?.as_string()?,
                        durable_object_id: col(1)?.as_string()?,
                    },
                    request_id: col(2)?.as_string()?,
                    subscribed_at: col(3)?.as_f64()? as i64,
                })
            })
            .collect();
        *self.rpc_subscribers.borrow_mut() = Some(list.clone());
        list
    }

    /// Queues pages for every subscriber and returns at once. Each subscriber has its own queue,
    /// drained by one task at a time in order, so one push's pages never overtake another's;
    /// the push does not wait for them, because a client object may answer an update by calling
    /// back in (a new instance restarting its live pull), which would wait for this push.
    /// `waitUntil` keeps the object alive until the queues are empty. A subscriber that cannot
    /// be reached for good (its binding is gone, its id malformed) is dropped; other failures
    /// are logged and it stays.
    pub(super) fn notify_rpc_subscribers(&self, subscribers: &[Subscriber], pages: &[String]) {
        for subscriber in subscribers {
            let start = {
                let mut queues = self.rpc_deliveries.borrow_mut();
                let queue = queues.entry(subscriber.caller.clone()).or_default();
                let idle = queue.is_empty();
                queue.extend(pages.iter().map(|page| (subscriber.request_id.clone(), page.clone())));
                idle
            };
            if start {
                let drain = Drain {
                    caller: subscriber.caller.clone(),
                    queues: self.rpc_deliveries.clone(),
                    subscribers: self.rpc_subscribers.clone(),
                    env: self.env.clone(),
                    sql: self.sql().ok(),
                };
                self.state.wait_until(drain.run());
            }
        }
    }
}

/// The pages waiting for each subscriber; the front one is being delivered.
pub(super) type DeliveryQueues = std::rc::Rc<
    std::cell::RefCell<std::collections::HashMap<CallerContext, std::collections::VecDeque<(String, String)>>>,
>;

/// Delivers one subscriber's queue, front to back, until it is empty.
struct Drain {
    caller: CallerContext,
    queues: DeliveryQueues,
    subscribers: std::rc::Rc<std::cell::RefCell<Option<Vec<Subscriber>>>>,
    env: worker::Env,
    sql: Option<SqlStorage>,
}

impl Drain {
    async fn run(self) {
        loop {
            // Stays in the queue while it is delivered, so a push meanwhile sees a busy queue.
            let front = self.queues.borrow().get(&self.caller).and_then(|q| q.front().cloned());
            let Some((request_id, page)) = front else {
                self.queues.borrow_mut().remove(&self.caller);
                return;
            };
            let result = call_sync_update(&self.env, &self.caller, &request_id, &page).await;
            if let Err(failure) = result {
                worker::console_warn!(
                    r#"{{"level":"warn","event":"do_rpc_update_failed","binding":{},"durableObjectId":{},"permanent":{},"error":{}}}"#,
                    str_literal(&self.caller.binding_name),
                    str_literal(&self.caller.durable_object_id),
                    failure.permanent,
                    str_literal(&failure.message)
                );
                if failure.permanent {
                    self.unsubscribe();
                    self.queues.borrow_mut().remove(&self.caller);
                    return;
                }
            }
            if let Some(queue) = self.queues.borrow_mut().get_mut(&self.caller) {
                queue.pop_front();
            }
        }
    }

    fn unsubscribe(&self) {
        if let Some(sql) = &self.sql {
            let values: js_sys::Array = [
                JsValue::from_str(&self.caller.binding_name),
                JsValue::from_str(&self.caller.durable_object_id),
            ]
            .iter()
            .collect();
            let _ = sql.exec(
                &format!("DELETE FROM {SUBSCRIBERS_TABLE} WHERE binding_name = ? AND durable_object_id = ?"),
                values,
            );
        }
        if let Some(list) = self.subscribers.borrow_mut().as_mut() {
            list.retain(|s| s.caller != self.caller);
        }
    }
}

struct CallFailure {
    permanent: bool,
    message: String,
}

fn storage_error(e: JsValue) -> SyncError {
    SyncError::unknown("StorageError", error_message(&e))
}

/// `env[bindingName].get(env[bindingName].idFromString(durableObjectId)).syncUpdateRpc(chunk)`.
async fn call_sync_update(
    env: &worker::Env,
    caller: &CallerContext,
    request_id: &str,
    page: &str,
) -> Result<(), CallFailure> {
    let permanent = |message: String| CallFailure {
        permanent: true,
        message,
    };
    let env: &JsValue = env.as_ref();
    let namespace = Reflect::get(env, &JsValue::from_str(&caller.binding_name)).unwrap_or(JsValue::UNDEFINED);
    let method = |target: &JsValue, name: &str| {
        Reflect::get(target, &JsValue::from_str(name))
            .ok()
            .and_then(|f| f.dyn_into::<Function>().ok())
    };
    let (Some(id_from_string), Some(get)) = (method(&namespace, "idFromString"), method(&namespace, "get")) else {
        return Err(permanent(format!(
            "{} is not a Durable Object binding of this Worker",
            caller.binding_name
        )));
    };
    let id = id_from_string
        .call1(&namespace, &JsValue::from_str(&caller.durable_object_id))
        .map_err(|e| permanent(error_message(&e)))?;
    let stub = get.call1(&namespace, &id).map_err(|e| permanent(error_message(&e)))?;
    let transient = |e: JsValue| CallFailure {
        permanent: false,
        message: error_message(&e),
    };
    let arg = js_sys::JSON::parse(&rpc::sync_update_json(request_id, page)).map_err(transient)?;
    let call = method(&stub, "syncUpdateRpc").ok_or_else(|| CallFailure {
        permanent: false,
        message: "the stub has no syncUpdateRpc".into(),
    })?;
    // Reflect.apply, not `call1`: that looks up `.call` on the stub's method, which an RPC stub
    // answers with yet another remote method.
    let promise = Reflect::apply(&call, &stub, &js_sys::Array::of1(&arg)).map_err(transient)?;
    JsFuture::from(Promise::resolve(&promise)).await.map_err(transient)?;
    Ok(())
}
