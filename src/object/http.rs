//! The HTTP transport (`SyncHttpRpc`): one Effect RPC request per POST body, answered with one
//! JSON array holding every message for it (all pull pages, then the `Exit`), as Effect's HTTP
//! RPC server answers with JSON serialization. "Live" pulls over HTTP are client-side polling.

use worker::{Headers, Request, Response, Result};

use super::logs::{payload_bytes, PullStats};
use super::SyncObject;
use crate::hooks::{RequestContext, SyncHooks};
use crate::protocol::payload::parse_payload;
use crate::protocol::server;
use crate::protocol::{
    decode_client_message, tags, ClientMessage, PingPayload, PullPayload, PushPayload, RpcRequest, SyncError,
};
use crate::router::Transport;

/// `SyncMessage.Pong`, the success value of `SyncHttpRpc.Ping`.
const HTTP_PONG: &str = r#"{"_tag":"SyncMessage.Pong"}"#;

impl<H: SyncHooks> SyncObject<H> {
    pub(super) async fn http(
        &self,
        mut req: Request,
        store_id: &str,
        headers: Vec<(String, String)>,
    ) -> Result<Response> {
        // Read whole even when too large: answering before the body is consumed fails the
        // Worker's request that forwarded it. The Worker refuses bodies that declare an
        // oversize Content-Length before they get here.
        let body = req.text().await?;
        let messages = self.http_messages(&body, store_id, &headers).await;
        let mut body = String::with_capacity(messages.iter().map(|m| m.len() + 1).sum::<usize>() + 2);
        body.push('[');
        body.push_str(&messages.join(","));
        body.push(']');

        let response_headers = Headers::new();
        response_headers.set("content-type", "application/json")?;
        if self.config.cors {
            // Lets a browser app read the reply cross-origin (the reference leaves this to
            // `http.responseHeaders`).
            response_headers.set("access-control-allow-origin", "*")?;
        }
        for (name, value) in &self.config.http_response_headers {
            response_headers.set(name, value)?;
        }
        Ok(Response::ok(body)?.with_headers(response_headers))
    }

    /// The messages answering one request body.
    async fn http_messages(&self, body: &str, store_id: &str, headers: &[(String, String)]) -> Vec<String> {
        let request = match decode_client_message(body) {
            Ok(ClientMessage::Request(request)) => request,
            // Envelope-level messages have no meaning outside a socket.
            Ok(_) => return Vec::new(),
            Err(error) => {
                self.log_unhandled(
                    Transport::Http,
                    || store_id.to_owned(),
                    None,
                    body.len(),
                    "InvalidMessage",
                );
                return vec![match error.request_id() {
                    Some(id) => server::exit_failure(id, &SyncError::invalid_request(error.to_string())),
                    None => server::defect(&error.to_string()),
                }];
            }
        };
        let id = request.id.as_ref();
        if body.len() > self.config.max_message_bytes {
            let error = SyncError::unknown(
                "MessageTooLargeError",
                crate::router::too_large(body.len(), self.config.max_message_bytes),
            );
            let tag = Some(request.tag.as_ref());
            self.log_unhandled(
                Transport::Http,
                || store_id.to_owned(),
                tag,
                body.len(),
                "MessageTooLargeError",
            );
            return vec![server::exit_failure(id, &error)];
        }
        let mut messages = Vec::new();
        let result = match request.tag.as_ref() {
            tags::HTTP_PULL => self
                .http_pull(&request, store_id, headers, &mut messages)
                .await
                .map(|()| None),
            tags::HTTP_PUSH => self.http_push(&request, store_id, headers).await.map(|()| Some("{}")),
            tags::HTTP_PING => parse_payload::<PingPayload>(tags::HTTP_PING, request.payload)
                .and_then(|p| check_store(&p.store_id, store_id))
                .map(|()| Some(HTTP_PONG)),
            other => Err({
                let bytes = payload_bytes(&request) as usize;
                self.log_unhandled(Transport::Http, || store_id.to_owned(), None, bytes, "UnknownRpcError");
                SyncError::unknown(
                    "UnknownRpcError",
                    format!(
                        "unknown RPC tag {other:?}; this endpoint serves {}, {} and {}",
                        tags::HTTP_PULL,
                        tags::HTTP_PUSH,
                        tags::HTTP_PING
                    ),
                )
            }),
        };
        messages.push(match result {
            Ok(value) => server::exit_success(id, value),
            Err(error) => server::exit_failure(id, &error),
        });
        messages
    }

    /// `SyncHttpRpc.Pull`: every page from the cursor to the end.
    async fn http_pull(
        &self,
        request: &RpcRequest<'_>,
        store_id: &str,
        headers: &[(String, String)],
        messages: &mut Vec<String>,
    ) -> std::result::Result<(), SyncError> {
        let started = self.log_clock();
        let checked = parse_payload(tags::HTTP_PULL, request.payload)
            .and_then(|payload: PullPayload| check_store(&payload.store_id, store_id).map(|()| payload));
        let payload = match checked {
            Ok(payload) => payload,
            Err(error) => {
                let result = Err(error);
                self.log_pull(
                    Transport::Http,
                    store_id,
                    &PullStats::new(false, None),
                    started,
                    &result,
                );
                return result;
            }
        };
        let span = self.span("sync.pull", request);
        let ctx = RequestContext {
            store_id,
            transport: Transport::Http,
            payload: payload.payload,
            headers,
        };
        let id = request.id.as_ref();
        let before = messages.len();
        let result = self
            .pull(
                payload.cursor.as_ref(),
                false,
                &ctx,
                || Ok(()),
                |page| messages.push(server::chunk(id, &page)),
            )
            .await;
        let stats = PullStats {
            events: *result.as_ref().unwrap_or(&0),
            pages: (messages.len() - before) as u64,
            ..PullStats::new(false, payload.cursor.as_ref())
        };
        self.log_pull(Transport::Http, store_id, &stats, started, &result);
        self.export(
            span,
            store_id,
            Transport::Http,
            *result.as_ref().unwrap_or(&0),
            result.as_ref().err(),
        );
        result.map(|_| ())
    }

    /// `SyncHttpRpc.Push`: the same rules as over WebSocket; the batch reaches every WebSocket
    /// live pull of the store.
    async fn http_push(
        &self,
        request: &RpcRequest<'_>,
        store_id: &str,
        headers: &[(String, String)],
    ) -> std::result::Result<(), SyncError> {
        let started = self.log_clock();
        let checked = parse_payload(tags::HTTP_PUSH, request.payload)
            .and_then(|payload: PushPayload| check_store(&payload.store_id, store_id).map(|()| payload));
        let payload = match checked {
            Ok(payload) => payload,
            Err(error) => {
                let result = Err(error);
                self.log_push(
                    Transport::Http,
                    store_id,
                    None,
                    payload_bytes(request),
                    started,
                    &result,
                );
                return result;
            }
        };
        let span = self.span("sync.push", request);
        let ctx = RequestContext {
            store_id,
            transport: Transport::Http,
            payload: payload.payload,
            headers,
        };
        let result = self.push(&payload, &ctx).await;
        self.log_push(
            Transport::Http,
            store_id,
            Some(payload.batch.len()),
            payload_bytes(request),
            started,
            &result,
        );
        self.export(
            span,
            store_id,
            Transport::Http,
            payload.batch.len() as u64,
            result.as_ref().err(),
        );
        result
    }
}

fn check_store(requested: &str, url_store: &str) -> std::result::Result<(), SyncError> {
    if requested == url_store {
        Ok(())
    } else {
        Err(SyncError::invalid_request(format!(
            "the request names store {requested:?}, but was sent for another store"
        )))
    }
}
