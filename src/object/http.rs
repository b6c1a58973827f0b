//! The HTTP transport (`SyncHttpRpc`): one Effect RPC request per POST body, answered with one
//! JSON array holding every message for it (all pull pages, then the `Exit`), as Effect's HTTP
//! RPC server answers with JSON serialization. "Live" pulls over HTTP are client-side polling.
//! A codec around the core: the body in, the core's replies out as one array.

use worker::{Headers, Request, Response, Result};

use super::{Sync, SyncObject};
use crate::access::Grant;
use crate::core::{Conn, Handled};
use crate::hooks::SyncHooks;
use crate::protocol::{json_message, Transport};

impl<H: SyncHooks> SyncObject<H> {
    /// One HTTP RPC request. A body that is not an RPC message at all gets `400`, with the
    /// typed message an RPC client can read; everything else `200`, errors included, as Effect's
    /// HTTP RPC server answers.
    pub(super) async fn http(
        &self,
        sync: &Sync<H>,
        mut req: Request,
        store_id: &str,
        headers: Vec<(String, String)>,
        grant: Grant,
    ) -> Result<Response> {
        // The Worker has bounded the body to MAX_MESSAGE_BYTES before forwarding it.
        let body = req.text().await?;
        let conn = Conn {
            transport: Transport::Http,
            store_id: Some(store_id),
            headers: &headers,
            socket: None,
            read_only: grant.read_only,
        };
        let mut messages = Vec::new();
        let handled = sync
            .core
            .handle(&body, &conn, &mut |reply| {
                messages.push(json_message(reply, Transport::Http))
            })
            .await;
        let mut body = String::with_capacity(messages.iter().map(|m| m.len() + 1).sum::<usize>() + 2);
        body.push('[');
        body.push_str(&messages.join(","));
        body.push(']');

        let config = sync.core.config();
        let response_headers = Headers::new();
        response_headers.set("content-type", "application/json")?;
        if config.cors {
            // Lets a browser app read the reply cross-origin (the reference leaves this to
            // `http.responseHeaders`).
            response_headers.set("access-control-allow-origin", "*")?;
        }
        for (name, value) in &config.http_response_headers {
            response_headers.set(name, value)?;
        }
        let status = match handled {
            Handled::Read => 200,
            Handled::Malformed => 400,
        };
        Ok(Response::ok(body)?.with_status(status).with_headers(response_headers))
    }
}
