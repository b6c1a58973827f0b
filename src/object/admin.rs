//! The admin API inside a store's object. Reached only through the Worker, which has already
//! checked the bearer token and sets [`admin::INTERNAL_HEADER`] to the admin token; the object
//! checks that header again, so a client whose sync request is forwarded with headers of its own
//! choosing can never get here.

use worker::{Headers, Request, Response, Result};

use super::SyncObject;
use crate::admin::{self, Action, ImportError};
use crate::hooks::SyncHooks;
use crate::js::{new_backend_id, now_millis};
use crate::protocol::SyncError;
use crate::storage::{ContextRow, EventLog};
use crate::sync;
use crate::util::ct::secrets_equal;
use crate::util::json::str_literal;
use crate::util::time::iso8601_from_millis;

/// Events read per storage call while exporting.
const EXPORT_PAGE: usize = 1_000;
/// Most lines one export response carries unless `limit` asks for fewer; the rest is fetched with
/// `after=<x-next-after>`, so no response holds a whole large store in memory.
const EXPORT_MAX_LINES: usize = 10_000;

/// Close code of the sockets a reset closes: application-defined (4000–4999), since the runtime
/// accepts only 1000 and 3000–4999, and not 1000, which clients take as a normal end.
const RESET_CLOSE_CODE: u16 = 4000;

fn json_response(status: u16, body: String) -> Result<Response> {
    let h = Headers::new();
    h.set("Content-Type", "application/json")?;
    Ok(Response::ok(body)?.with_status(status).with_headers(h))
}

fn storage_failure(e: &SyncError) -> Result<Response> {
    let mut body = String::from(r#"{"error":"StorageError","message":"#);
    crate::util::json::push_str_literal(&mut body, &e.to_string());
    body.push('}');
    json_response(500, body)
}

impl<H: SyncHooks> SyncObject<H> {
    /// Whether `req` is an admin request forwarded by the Worker with the right token.
    pub(super) fn is_admin_request(&self, req: &Request) -> bool {
        let Some(expected) = self.config.admin_token.as_ref() else {
            return false;
        };
        match req.headers().get(admin::INTERNAL_HEADER).ok().flatten() {
            Some(value) => secrets_equal(value.as_bytes(), expected.0.as_bytes()),
            None => false,
        }
    }

    /// Runs an admin action; the path is `/<action>` and `storeId` is a search parameter.
    pub(super) async fn admin(&self, mut req: Request) -> Result<Response> {
        let url = req.url()?;
        let action = Action::from_name(url.path().trim_start_matches('/'));
        let store_id = url
            .query_pairs()
            .find(|(k, _)| k == "storeId")
            .map(|(_, v)| v.into_owned());
        let (Some(action), Some(store_id)) = (action, store_id) else {
            let _ = req.text().await;
            return json_response(404, r#"{"error":"NotFound"}"#.to_owned());
        };
        let response = match action {
            Action::Info => self.admin_info(&store_id).await,
            Action::Export => self.admin_export(&store_id, url.query()).await,
            Action::Import => {
                let body = req.text().await?;
                self.admin_import(&store_id, &body).await
            }
            Action::Reset => self.admin_reset(&store_id).await,
        };
        let (response, counts) = response?;
        let outcome = if response.status_code() < 400 { "ok" } else { "refused" };
        let line = admin::log_line(action.as_str(), &store_id, outcome, &counts);
        if self.config.log_level.enabled(line.level()) {
            crate::log::emit(line);
        }
        Ok(response)
    }

    async fn admin_info(&self, store_id: &str) -> Result<(Response, Vec<(&'static str, i64)>)> {
        let figures = async {
            let (meta, log) = self.open(store_id).await?;
            let events = log.count_after(None).await?;
            let bytes = log.size_bytes().await?;
            Ok::<_, SyncError>((meta, log.name(), events, bytes))
        }
        .await;
        let (meta, engine, events, bytes) = match figures {
            Ok(f) => f,
            Err(e) => {
                self.forget_store_on_storage_error::<()>(&Err(e.clone()));
                return Ok((storage_failure(&e)?, vec![]));
            }
        };
        let sockets = self.state.get_websockets().len();
        self.has_live_pulls();
        let live_pulls: usize = self
            .live
            .borrow()
            .as_ref()
            .map_or(0, |index| index.iter().map(|s| s.pulls.len()).sum());
        // Client Durable Objects whose DO RPC live pull gets this store's new events.
        let rpc_subscribers = self.rpc_subscribers().len();
        let body = format!(
            r#"{{"storeId":{},"head":{},"eventCount":{events},"backendId":{},"storage":"{engine}","approxSizeBytes":{bytes},"openSockets":{sockets},"livePulls":{live_pulls},"rpcSubscribers":{rpc_subscribers}}}"#,
            str_literal(store_id),
            meta.head,
            str_literal(&meta.backend_id)
        );
        Ok((json_response(200, body)?, vec![("events", events as i64)]))
    }

    async fn admin_export(&self, store_id: &str, query: Option<&str>) -> Result<(Response, Vec<(&'static str, i64)>)> {
        let (after, until) = match admin::export_range(query) {
            Ok(range) => range,
            Err(message) => {
                let e = ImportError {
                    kind: "InvalidRange",
                    message,
                    line: None,
                };
                return Ok((json_response(400, e.to_json())?, vec![]));
            }
        };
        let limit = url_limit(query).unwrap_or(EXPORT_MAX_LINES).clamp(1, EXPORT_MAX_LINES);
        let (_, log) = match self.open(store_id).await {
            Ok(opened) => opened,
            Err(e) => return Ok((storage_failure(&e)?, vec![])),
        };
        let mut body = String::new();
        let mut lines = 0usize;
        let mut cursor = after;
        let mut next_after = None;
        'pages: loop {
            let page = match log.read_after(cursor, EXPORT_PAGE.min(limit - lines + 1)).await {
                Ok(page) => page,
                Err(e) => return Ok((storage_failure(&SyncError::from(e))?, vec![])),
            };
            if page.is_empty() {
                break;
            }
            for item in &page {
                if until.is_some_and(|until| item.seq_num > until) {
                    break 'pages;
                }
                if lines == limit {
                    // More remain: the caller continues after the last line sent.
                    next_after = cursor;
                    break 'pages;
                }
                // Moved past every row, even one that could not be turned into a line, so a
                // page of such rows cannot make the loop read it again forever.
                cursor = Some(item.seq_num);
                let Some(line) = admin::export_line(&item.json) else {
                    continue;
                };
                body.push_str(&line);
                body.push('\n');
                lines += 1;
            }
        }
        let h = Headers::new();
        h.set("Content-Type", "application/x-ndjson")?;
        if let Some(next) = next_after {
            h.set("x-next-after", &next.to_string())?;
        }
        Ok((Response::ok(body)?.with_headers(h), vec![("events", lines as i64)]))
    }

    async fn admin_import(&self, store_id: &str, body: &str) -> Result<(Response, Vec<(&'static str, i64)>)> {
        // Pushes wait meanwhile, so nothing lands between the emptiness check and the write.
        let _guard = self.push_lock.lock().await;
        let (mut meta, log) = match self.open(store_id).await {
            Ok(opened) => opened,
            Err(e) => return Ok((storage_failure(&e)?, vec![])),
        };
        let stored = match log.count_after(None).await {
            Ok(n) => n,
            Err(e) => return Ok((storage_failure(&SyncError::from(e))?, vec![])),
        };
        if meta.head != 0 || stored != 0 {
            let e = ImportError {
                kind: "StoreNotEmpty",
                message: format!(
                    "the store holds {stored} events (head {}); import only into an empty store (reset it first)",
                    meta.head
                ),
                line: None,
            };
            return Ok((json_response(409, e.to_json())?, vec![("stored", stored as i64)]));
        }
        let import = match admin::parse_import(body, meta.head) {
            Ok(import) => import,
            Err(e) => return Ok((json_response(400, e.to_json())?, vec![])),
        };
        let events = &import.events;
        let Some(last) = events.last().map(|e| e.seq_num.0) else {
            return Ok((json_response(400, r#"{"error":"EmptyImport"}"#.to_owned())?, vec![]));
        };
        // Exported times are kept, so a store moved between engines or deployments pulls as it
        // did; a line without one gets the import's time.
        let now = iso8601_from_millis(now_millis());
        let times: Vec<&str> = import.created_at.iter().map(|t| t.as_deref().unwrap_or(&now)).collect();
        let context = ContextRow {
            current_head: last,
            backend_id: meta.backend_id.clone(),
        };
        if let Err(e) = log.append_timed(events, &times, &context).await {
            let e = SyncError::from(e);
            self.forget_store_on_storage_error::<()>(&Err(e.clone()));
            return Ok((storage_failure(&e)?, vec![]));
        }
        meta.head = last;
        if self.has_live_pulls() {
            let pages = sync::broadcast_pages_timed(events, &times, &meta.backend_id, &self.limits);
            self.broadcast(&pages);
        }
        if let Some(open) = self.store.borrow_mut().as_mut() {
            open.meta = meta.clone();
        }
        let body = format!(r#"{{"imported":{},"head":{last}}}"#, events.len());
        Ok((json_response(200, body)?, vec![("events", events.len() as i64)]))
    }

    async fn admin_reset(&self, store_id: &str) -> Result<(Response, Vec<(&'static str, i64)>)> {
        let _guard = self.push_lock.lock().await;
        let (meta, log) = match self.open(store_id).await {
            Ok(opened) => opened,
            Err(e) => return Ok((storage_failure(&e)?, vec![])),
        };
        let removed = log.count_after(None).await.unwrap_or(0);
        let backend_id = new_backend_id();
        let context = ContextRow {
            current_head: 0,
            backend_id: backend_id.clone(),
        };
        let cleared = log.clear(&context).await;
        // Reopened on the next request either way, so the cache never holds the old backendId.
        *self.store.borrow_mut() = None;
        if let Err(e) = cleared {
            return Ok((storage_failure(&SyncError::from(e))?, vec![]));
        }
        // Every socket is closed: a live pull would otherwise wait on a log that no longer
        // exists. The client reconnects, and its next pull or push carries the old backendId,
        // which is refused with BackendIdMismatchError, so it resets as LiveStore intends.
        let sockets = self.state.get_websockets();
        for ws in &sockets {
            let _ = ws.close(Some(RESET_CLOSE_CODE), Some("store reset"));
        }
        *self.live.borrow_mut() = Some(Vec::new());
        // Closing from this side may not be reported back as a close event; the count of open
        // sockets is read from the runtime again on the next connect.
        self.open_sockets.set(None);
        let body = format!(
            r#"{{"reset":true,"previousBackendId":{},"backendId":{},"removedEvents":{removed},"closedSockets":{}}}"#,
            str_literal(&meta.backend_id),
            str_literal(&backend_id),
            sockets.len()
        );
        Ok((
            json_response(200, body)?,
            vec![("events", removed as i64), ("sockets", sockets.len() as i64)],
        ))
    }
}

fn url_limit(query: Option<&str>) -> Option<usize> {
    worker::url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "limit")
        .and_then(|(_, v)| v.trim().parse().ok())
}
