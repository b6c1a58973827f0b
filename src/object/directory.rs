//! The store directory's object ([`crate::directory`]): one object of the sync class, named
//! [`crate::directory::OBJECT_NAME`], holding one row per store in its own SQLite. Stores' objects
//! send it their figures; the Worker's admin API lists it.
//!
//! Its routes are reached only at `https://livestore-directory/<route>` without a `transport`
//! search parameter, which every sync request forwarded by the Worker has; and no storeId names
//! this object, since the Worker refuses that name.

use worker::{Method, Request, Response, Result};

use super::{Sync, SyncObject};
use crate::directory::{page_json, Entry, ListQuery};
use crate::hooks::SyncHooks;
use crate::js::now_millis;
use crate::storage::do_sqlite::DirectoryTable;

/// Whether a request is for the directory's routes.
pub(super) fn is_directory_request(url: &worker::Url) -> bool {
    url.host_str() == Some(crate::directory::HOST)
        && matches!(url.path(), "/update" | "/remove" | "/entry" | "/list")
        && !url.query_pairs().any(|(key, _)| key == "transport")
}

fn json(status: u16, body: String) -> Result<Response> {
    let headers = worker::Headers::new();
    headers.set("content-type", "application/json")?;
    Ok(Response::ok(body)?.with_status(status).with_headers(headers))
}

fn no_content() -> Result<Response> {
    Ok(Response::empty()?.with_status(204))
}

fn error(status: u16, kind: &str, message: &str) -> Result<Response> {
    let mut body = String::from("{\"error\":");
    crate::util::json::push_str_literal(&mut body, kind);
    body.push_str(",\"message\":");
    crate::util::json::push_str_literal(&mut body, message);
    body.push('}');
    json(status, body)
}

impl<H: SyncHooks> SyncObject<H> {
    /// A request to the directory.
    pub(super) async fn directory(&self, sync: &Sync<H>, mut req: Request) -> Result<Response> {
        let url = req.url()?;
        let storage = sync.core.host().state().storage();
        let table = match DirectoryTable::open(&storage) {
            Ok(table) => table,
            Err(e) => return error(500, "StorageError", &e.0),
        };
        let store_id = || crate::admin::query_param(url.query(), "storeId").unwrap_or_default();
        let done = match (req.method(), url.path()) {
            (Method::Post, "/update") => {
                let body = req.text().await?;
                let entry: Entry = match serde_json::from_str(&body) {
                    Ok(entry) => entry,
                    Err(e) => return error(400, "InvalidEntry", &e.to_string()),
                };
                table.upsert(&entry, now_millis()).map(|()| no_content())
            }
            (Method::Post, "/remove") => table.remove(&store_id()).map(|()| no_content()),
            (Method::Get, "/entry") => table.get(&store_id()).map(|entry| match entry {
                Some(entry) => json(200, serde_json::to_string(&entry).unwrap_or_default()),
                None => error(404, "NotFound", "no such store in the directory"),
            }),
            (Method::Get, "/list") => match ListQuery::parse(url.query()) {
                Ok(query) => table
                    .list(&query)
                    .map(|(entries, total)| json(200, page_json(&entries, total, &query))),
                Err(message) => return error(400, "InvalidQuery", &message),
            },
            _ => return error(405, "MethodNotAllowed", "not a directory route"),
        };
        done.unwrap_or_else(|e| error(500, "StorageError", &e.0))
    }
}
