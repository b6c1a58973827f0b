//! The sync-electric endpoint on the object's side (see [`crate::protocol::electric`]): a pull
//! is the core's [`PullSince`], held until the store changes when the client asks to wait and
//! its last answer carried nothing; a push is the core's push, the same rules as every other.
//! A codec: the rows, offsets, statuses and headers of Electric's shape protocol around the core.

use worker::{Headers, Method, Request, Response, Result};

use super::{Sync, SyncObject};
use crate::access::Grant;
use crate::core::pull::PullSince;
use crate::core::{Conn, Error};
use crate::hooks::SyncHooks;
use crate::protocol::electric::{
    insert_row, parse_pull_args, parse_push, table_name, Offset, HANDLE_HEADER, MUST_REFETCH, OFFSET_HEADER, UP_TO_DATE,
};
use crate::protocol::Transport;
use crate::util::json::push_str_literal;

impl<H: SyncHooks> SyncObject<H> {
    /// A sync-electric request the Worker admitted: `GET ?args=…` (pull) or `POST` (push).
    pub(super) async fn electric(
        &self,
        sync: &Sync<H>,
        mut req: Request,
        headers: Vec<(String, String)>,
        grant: Grant,
    ) -> Result<Response> {
        match req.method() {
            Method::Get => self.electric_pull(sync, &req, &headers).await,
            Method::Post => {
                let body = req.text().await?;
                self.electric_push(sync, &body, &headers, grant.read_only).await
            }
            _ => {
                let _ = req.text().await;
                respond(sync, 405, r#"{"error":"MethodNotAllowed"}"#.to_owned(), &[])
            }
        }
    }

    async fn electric_pull(&self, sync: &Sync<H>, req: &Request, headers: &[(String, String)]) -> Result<Response> {
        let url = req.url()?;
        let args = url
            .query_pairs()
            .find(|(k, _)| k == "args")
            .map(|(_, v)| v.into_owned());
        let parsed = match args.as_deref().map(parse_pull_args) {
            Some(Ok(parsed)) => parsed,
            // A client that sends this has no data yet (its args never change shape), so a 400
            // cannot send one back to the start.
            Some(Err(e)) => return error_body(sync, 400, "InvalidArgs", &e.to_string()),
            None => return error_body(sync, 400, "InvalidArgs", "the args search parameter is missing"),
        };
        let shape = parsed.handle.as_ref();
        let offset = match shape {
            None => Offset {
                seq_num: 0,
                after_data: false,
            },
            Some(shape) => match Offset::parse(&shape.offset) {
                Some(offset) => offset,
                // Not an offset this server wrote: the shape cannot be continued. Never a 400 for
                // a client that has data: it would start over from nothing and fail there.
                None => return must_refetch(sync, None),
            },
        };
        let conn = Conn {
            transport: Transport::Electric,
            store_id: Some(&parsed.store_id),
            headers,
            socket: None,
            read_only: false,
        };
        // A client without data is never held; nor is one whose last answer carried events, so
        // its own pushes are not held back behind a long-poll (see `protocol::electric`).
        let wait = parsed.live && shape.is_some() && !offset.after_data;
        let pull = PullSince {
            store_id: &parsed.store_id,
            payload: parsed.payload,
            backend_id: shape.map(|s| s.handle.as_str()),
            after: offset.seq_num,
            wait_ms: wait.then_some(sync.core.config().electric_hold_ms),
        };
        let since = match sync.core.pull_since(pull, &conn).await {
            Ok(since) => since,
            Err(Error::BackendIdMismatch { expected, .. }) => return must_refetch(sync, Some(&expected)),
            Err(Error::UnknownPosition { backend_id, .. }) => return must_refetch(sync, Some(&backend_id)),
            Err(e) => return error_body(sync, e.http_status(), e.name(), &e.to_string()),
        };
        let table = table_name(&parsed.store_id);
        let mut body = String::from("[");
        let mut last = offset.seq_num;
        for item in &since.items {
            if let Some(row) = insert_row(&item.json, &table) {
                if body.len() > 1 {
                    body.push(',');
                }
                body.push_str(&row);
                last = item.seq_num;
            }
        }
        if since.items.is_empty() {
            body.push_str(UP_TO_DATE);
        }
        body.push(']');
        let next = Offset {
            seq_num: last,
            after_data: !since.items.is_empty(),
        };
        respond(
            sync,
            200,
            body,
            &[(HANDLE_HEADER, since.backend_id), (OFFSET_HEADER, next.encode())],
        )
    }

    async fn electric_push(
        &self,
        sync: &Sync<H>,
        body: &str,
        headers: &[(String, String)],
        read_only: bool,
    ) -> Result<Response> {
        let payload = parse_push(body).map_err(|e| Error::InvalidRequest(e.to_string()));
        let store_id = payload.as_ref().map(|p| p.store_id.to_string()).ok();
        let conn = Conn {
            transport: Transport::Electric,
            store_id: store_id.as_deref(),
            headers,
            socket: None,
            read_only,
        };
        match sync.core.push_decoded(payload, &conn, body.len()).await {
            Ok(_) => respond(sync, 200, r#"{"success":true}"#.to_owned(), &[]),
            Err(e) => {
                let mut out = String::from(r#"{"success":false,"error":"#);
                push_str_literal(&mut out, e.name());
                out.push_str(r#","message":"#);
                push_str_literal(&mut out, &e.to_string());
                if let Error::ServerAhead { head, provided } = &e {
                    out.push_str(&format!(
                        r#","minimumExpectedSeqNum":{head},"providedSeqNum":{provided}"#
                    ));
                }
                out.push('}');
                respond(sync, e.http_status(), out, &[])
            }
        }
    }
}

/// Electric's answer to a shape that is gone (the store was reset): `409` with the current
/// handle. The 0.4.0 client cannot recover from it (it stops syncing); nothing else would be
/// honest.
fn must_refetch(sync: &Sync<impl SyncHooks>, backend_id: Option<&str>) -> Result<Response> {
    let handle: Vec<(&str, String)> = backend_id.map(|b| (HANDLE_HEADER, b.to_owned())).into_iter().collect();
    respond(sync, 409, MUST_REFETCH.to_owned(), &handle)
}

fn error_body(sync: &Sync<impl SyncHooks>, status: u16, name: &str, message: &str) -> Result<Response> {
    let mut out = String::from(r#"{"error":"#);
    push_str_literal(&mut out, name);
    out.push_str(r#","message":"#);
    push_str_literal(&mut out, message);
    out.push('}');
    respond(sync, status, out, &[])
}

/// A JSON answer that no cache keeps (a fresh client's URL is the same every time), readable
/// cross-origin with its two headers when CORS is on.
fn respond(sync: &Sync<impl SyncHooks>, status: u16, body: String, extra: &[(&str, String)]) -> Result<Response> {
    let h = Headers::new();
    h.set("content-type", "application/json")?;
    h.set("cache-control", "no-store")?;
    if sync.core.config().cors {
        h.set("access-control-allow-origin", "*")?;
        h.set("access-control-expose-headers", "electric-handle, electric-offset")?;
    }
    for (name, value) in extra {
        h.set(name, value)?;
    }
    Ok(Response::ok(body)?.with_status(status).with_headers(h))
}
