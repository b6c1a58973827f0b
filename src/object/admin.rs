//! The admin API inside a store's object. Only the Worker reaches it: it checks the bearer
//! token, strips [`admin::INTERNAL_HEADER`] from every request that comes from outside, and
//! forwards admin actions on an internal route (`https://livestore-admin/<action>?storeId=…`,
//! with the action's method) carrying that header set to the admin token. The object accepts an
//! admin action only on that route, with that method and that header, and logs every refusal.

use worker::{Headers, Request, Response, Result};

use super::{Sync, SyncObject};
use crate::admin::{self, Action, ImportError};
use crate::core::admin::ImportFailure;
use crate::core::backup::RestoreFailure;
use crate::core::outbox::SinkActionFailure;
use crate::core::Error;
use crate::hooks::SyncHooks;
use crate::outbox;
use crate::util::ct::secrets_equal;
use crate::util::json::str_literal;

/// Most lines one export response carries unless `limit` asks for fewer; the rest is fetched with
/// `after=<x-next-after>`, so no response holds a whole large store in memory.
const EXPORT_MAX_LINES: usize = 10_000;

/// A response of the admin API: never cached, never sniffed.
fn response(status: u16, content_type: &str, body: String, extra: &[(&str, String)]) -> Result<Response> {
    let h = Headers::new();
    h.set("Content-Type", content_type)?;
    for (name, value) in admin::RESPONSE_HEADERS {
        h.set(name, value)?;
    }
    for (name, value) in extra {
        h.set(name, value)?;
    }
    Ok(Response::ok(body)?.with_status(status).with_headers(h))
}

fn json(status: u16, body: String) -> Result<Response> {
    response(status, "application/json", body, &[])
}

fn storage_failure(e: &Error) -> Result<Response> {
    json(
        500,
        format!(
            r#"{{"error":"StorageError","message":{}}}"#,
            str_literal(&e.to_string())
        ),
    )
}

/// The action an internal request asks for, if it is one: the Worker's host, a known action
/// with its method, a storeId, and the admin token in the internal header.
fn internal_action(sync_token: Option<&str>, req: &Request) -> std::result::Result<(Action, String), &'static str> {
    let Some(expected) = sync_token else {
        return Err("AdminDisabled");
    };
    let presented = req
        .headers()
        .get(admin::INTERNAL_HEADER)
        .ok()
        .flatten()
        .unwrap_or_default();
    if !secrets_equal(presented.as_bytes(), expected.as_bytes()) {
        return Err("WrongToken");
    }
    let url = req.url().map_err(|_| "BadUrl")?;
    if url.host_str() != Some(admin::INTERNAL_HOST) {
        return Err("NotInternalRoute");
    }
    let action = Action::from_name(url.path().trim_start_matches('/')).ok_or("UnknownAction")?;
    if req.method().as_ref() != action.method() {
        return Err("WrongMethod");
    }
    let store_id = url
        .query_pairs()
        .find(|(k, _)| k == "storeId")
        .map(|(_, v)| v.into_owned())
        .ok_or("NoStoreId")?;
    Ok((action, store_id))
}

impl<H: SyncHooks> SyncObject<H> {
    /// A request carrying the internal admin header.
    pub(super) async fn admin(&self, sync: &Sync<H>, mut req: Request) -> Result<Response> {
        let config = sync.core.config();
        let token = config.admin_token.as_ref().map(|t| t.0.as_str());
        let (action, store_id) = match internal_action(token, &req) {
            Ok(found) => found,
            Err(reason) => {
                let _ = req.text().await;
                if let Some(line) = config.log_level.line(crate::log::Level::Warn, "admin") {
                    crate::log::emit(line.str("outcome", "refused").str("reason", reason));
                }
                return json(403, r#"{"error":"Forbidden"}"#.to_owned());
            }
        };
        let url = req.url()?;
        let (response, counts) = match action {
            Action::Info => self.admin_info(sync, &store_id).await?,
            Action::Export => self.admin_export(sync, &store_id, url.query()).await?,
            Action::Import => {
                let body = req.text().await?;
                self.admin_import(sync, &store_id, &body).await?
            }
            Action::Reset => self.admin_reset(sync, &store_id).await?,
            Action::Delete => self.admin_delete(sync, &store_id).await?,
            Action::Backup | Action::Restore if sync.core.config().backup.is_none() => (
                json(
                    404,
                    r#"{"error":"BackupsOff","message":"backups are off: set BACKUP_BUCKET to an R2 bucket binding"}"#
                        .to_owned(),
                )?,
                vec![],
            ),
            Action::Backup => match sync.core.back_up(&store_id).await {
                Ok(done) => (
                    json(
                        200,
                        format!(
                            r#"{{"backendId":{},"backedUpTo":{},"objects":{},"events":{}}}"#,
                            str_literal(&done.backend_id),
                            done.to,
                            done.objects,
                            done.events
                        ),
                    )?,
                    vec![("events", done.events as i64)],
                ),
                Err(e) => (storage_failure(&e)?, vec![]),
            },
            Action::Restore => {
                let backend_id = admin::query_param(url.query(), "backendId");
                match sync.core.restore(&store_id, backend_id.as_deref()).await {
                    Ok(done) => (
                        json(200, format!(r#"{{"restored":{},"head":{}}}"#, done.events, done.head))?,
                        vec![("events", done.events as i64)],
                    ),
                    Err(RestoreFailure::Refused { status, error }) => (json(status, error.to_json())?, vec![]),
                    Err(RestoreFailure::Storage(e)) => (storage_failure(&e)?, vec![]),
                }
            }
            Action::Outbox => match sync.core.outbox_status(&store_id).await {
                Ok(status) => (json(200, status.to_json(&store_id))?, vec![]),
                Err(e) => (storage_failure(&e)?, vec![]),
            },
            Action::OutboxResume | Action::OutboxSkip => {
                self.admin_sink_action(sync, &store_id, action == Action::OutboxSkip, url.query())
                    .await?
            }
        };
        let outcome = if response.status_code() < 400 { "ok" } else { "refused" };
        let line = admin::log_line(action.as_str(), &store_id, outcome, &counts);
        if config.log_level.enabled(line.level()) {
            crate::log::emit(line);
        }
        Ok(response)
    }

    async fn admin_info(&self, sync: &Sync<H>, store_id: &str) -> Result<(Response, Vec<(&'static str, i64)>)> {
        let info = match sync.core.info(store_id).await {
            Ok(info) => info,
            Err(e) => return Ok((storage_failure(&e)?, vec![])),
        };
        let body = format!(
            r#"{{"storeId":{},"head":{},"eventCount":{},"backendId":{},"storage":"{}","approxSizeBytes":{},"openSockets":{},"livePulls":{},"rpcSubscribers":{},"heldPulls":{}}}"#,
            str_literal(store_id),
            info.head,
            info.event_count,
            str_literal(&info.backend_id),
            info.storage,
            info.approx_size_bytes,
            info.open_sockets,
            info.live_pulls,
            info.rpc_subscribers,
            info.held_pulls,
        );
        Ok((json(200, body)?, vec![("events", info.event_count as i64)]))
    }

    async fn admin_export(
        &self,
        sync: &Sync<H>,
        store_id: &str,
        query: Option<&str>,
    ) -> Result<(Response, Vec<(&'static str, i64)>)> {
        let (after, until) = match admin::export_range(query) {
            Ok(range) => range,
            Err(message) => {
                let e = ImportError {
                    kind: "InvalidRange",
                    message,
                    line: None,
                };
                return Ok((json(400, e.to_json())?, vec![]));
            }
        };
        let limit = url_limit(query).unwrap_or(EXPORT_MAX_LINES).clamp(1, EXPORT_MAX_LINES);
        let page = match sync.core.export(store_id, after, until, limit).await {
            Ok(page) => page,
            Err(e) => return Ok((storage_failure(&e)?, vec![])),
        };
        let next: Vec<(&str, String)> = page
            .next_after
            .map(|next| ("x-next-after", next.to_string()))
            .into_iter()
            .collect();
        let lines = page.lines as i64;
        Ok((
            response(200, "application/x-ndjson", page.body, &next)?,
            vec![("events", lines)],
        ))
    }

    async fn admin_import(
        &self,
        sync: &Sync<H>,
        store_id: &str,
        body: &str,
    ) -> Result<(Response, Vec<(&'static str, i64)>)> {
        match sync.core.import(store_id, body).await {
            Ok(imported) => {
                let body = format!(r#"{{"imported":{},"head":{}}}"#, imported.events, imported.head);
                Ok((json(200, body)?, vec![("events", imported.events as i64)]))
            }
            Err(ImportFailure::Refused { status, error }) => Ok((json(status, error.to_json())?, vec![])),
            Err(ImportFailure::Storage(e)) => Ok((storage_failure(&e)?, vec![])),
        }
    }

    /// Resumes a sink, or moves its cursor (`skip`, to `?to=` or the head).
    async fn admin_sink_action(
        &self,
        sync: &Sync<H>,
        store_id: &str,
        skip: bool,
        query: Option<&str>,
    ) -> Result<(Response, Vec<(&'static str, i64)>)> {
        let sink = admin::query_param(query, "sink").unwrap_or_default();
        let done = if skip {
            match outbox::skip_target(query) {
                Ok(to) => sync.core.outbox_skip(store_id, &sink, to).await,
                Err(refusal) => Err(SinkActionFailure::Refused(refusal)),
            }
        } else {
            sync.core.outbox_resume(store_id, &sink).await
        };
        match done {
            Ok(status) => Ok((json(200, status.to_json())?, vec![("cursor", status.state.cursor)])),
            Err(SinkActionFailure::Refused(refusal)) => {
                let (status, body) = refusal.status_and_body();
                Ok((json(status, body)?, vec![]))
            }
            Err(SinkActionFailure::Storage(e)) => Ok((storage_failure(&e)?, vec![])),
        }
    }

    async fn admin_reset(&self, sync: &Sync<H>, store_id: &str) -> Result<(Response, Vec<(&'static str, i64)>)> {
        let done = match sync.core.reset(store_id).await {
            Ok(done) => done,
            Err(e) => return Ok((storage_failure(&e)?, vec![])),
        };
        // Closing from this side may not be reported back as a close event; the count of open
        // sockets is read from the runtime again on the next connect.
        sync.open_sockets.set(None);
        let body = format!(
            r#"{{"reset":true,"previousBackendId":{},"backendId":{},"removedEvents":{},"closedSockets":{}}}"#,
            str_literal(&done.previous_backend_id),
            str_literal(&done.backend_id),
            done.removed_events,
            done.closed_sockets
        );
        Ok((
            json(200, body)?,
            vec![
                ("events", done.removed_events as i64),
                ("sockets", done.closed_sockets as i64),
            ],
        ))
    }
}

impl<H: SyncHooks> SyncObject<H> {
    async fn admin_delete(&self, sync: &Sync<H>, store_id: &str) -> Result<(Response, Vec<(&'static str, i64)>)> {
        let done = match sync.core.delete_store(store_id).await {
            Ok(done) => done,
            Err(e) => return Ok((storage_failure(&e)?, vec![])),
        };
        sync.open_sockets.set(None);
        let body = format!(
            r#"{{"deleted":true,"removedEvents":{},"closedSockets":{}}}"#,
            done.removed_events, done.closed_sockets
        );
        Ok((
            json(200, body)?,
            vec![
                ("events", done.removed_events as i64),
                ("sockets", done.closed_sockets as i64),
            ],
        ))
    }
}

fn url_limit(query: Option<&str>) -> Option<usize> {
    admin::query_param(query, "limit").and_then(|v| v.trim().parse().ok())
}
