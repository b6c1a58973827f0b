//! The Worker side: routes sync requests to their store's Durable Object and answers everything
//! else, as the reference's `makeWorker` does. The pieces are public so a Worker of your own can
//! mount sync beside other routes: [`match_sync_request`] and [`handle_sync_request`] are the
//! counterparts of the reference's functions of the same names, and [`handle_fetch`] is the
//! whole stock Worker.

use worker::{Context, Env, Headers, Request, Response, Result};

use crate::access::Grant;
use crate::config::Config;
use crate::hooks::{ConnectContext, HeaderSource, SyncHooks};
use crate::js::{now_millis, post_json, random_bytes};
use crate::log::{self, Level};
use crate::otel::{export_body, Span};
use crate::router::{self, NonSync, Refusal, SyncMatch, SyncParams};

/// The stock Worker's entry point: [`handle_fetch`] without hooks.
#[cfg(feature = "entrypoint")]
#[worker::event(fetch)]
pub async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    console_error_panic_hook::set_once();
    handle_fetch(req, &env, &ctx, &crate::hooks::NoHooks).await
}

fn text_response<N: AsRef<str>>(status: u16, body: &str, headers: &[(N, String)]) -> Result<Response> {
    let h = Headers::new();
    for (name, value) in headers {
        h.set(name.as_ref(), value)?;
    }
    h.set("Content-Type", "text/plain")?;
    Ok(Response::ok(body)?.with_status(status).with_headers(h))
}

fn config_error(e: crate::config::ConfigError) -> Result<Response> {
    worker::console_error!("{e}");
    text_response::<&str>(500, &e.to_string(), &[])
}

/// If `req` is a sync request (by its search parameters alone, whatever the path), its
/// parameters; `None` otherwise.
pub fn match_sync_request(req: &Request) -> Result<Option<SyncParams>> {
    Ok(router::match_sync_request(req.url()?.query()))
}

/// Handles any request as the stock Worker does: CORS preflights, sync requests, the info page at
/// `GET /`, and `400 Invalid path` for the rest.
pub async fn handle_fetch<H: SyncHooks>(req: Request, env: &Env, ctx: &Context, hooks: &H) -> Result<Response> {
    handle_fetch_with(req, env, ctx, Config::cached(env), hooks).await
}

/// [`handle_fetch`] on a configuration read elsewhere (the npm package's, from its options and
/// the vars), rather than the isolate's vars alone.
pub async fn handle_fetch_with<H: SyncHooks>(
    req: Request,
    env: &Env,
    ctx: &Context,
    config: std::result::Result<std::rc::Rc<Config>, crate::config::ConfigError>,
    hooks: &H,
) -> Result<Response> {
    let config = match config {
        Ok(config) => config,
        Err(e) => return config_error(e),
    };
    let url = req.url()?;
    // Before sync matching: `/_admin/...` is always the admin API, whatever its query.
    if crate::admin::is_admin_path(url.path()) {
        return admin_request(req, env, &config).await;
    }
    // Before sync matching as well: the endpoint's requests carry no sync parameters.
    if crate::protocol::electric::is_endpoint(url.path()) {
        return electric_request(req, env, &config, hooks).await;
    }
    let cors = router::cors_headers(&config, req.headers().get("Access-Control-Request-Headers")?.as_deref());
    let websocket = req.headers().get("Upgrade")?.is_some();
    let parsed = router::parse_sync_request(url.query(), websocket);
    let meant_as_sync = !matches!(parsed, SyncMatch::NotSync);
    match router::classify(&config, req.method().as_ref(), url.path(), meant_as_sync) {
        Some(NonSync::Preflight) => {
            let h = Headers::new();
            for (name, value) in &cors {
                h.set(name, value)?;
            }
            Ok(Response::empty()?.with_status(204).with_headers(h))
        }
        Some(NonSync::Info) => text_response::<&str>(200, router::INFO_BODY, &[]),
        Some(NonSync::InvalidPath) => text_response(400, "Invalid path", &cors),
        None => match parsed {
            SyncMatch::Sync(params) => sync_request(req, env, ctx, &config, params, hooks, &[]).await,
            SyncMatch::Malformed(message) => {
                if let Some(line) = config.log_level.line(Level::Warn, "connect") {
                    log::emit(
                        line.str("outcome", "refused")
                            .str("reason", "MalformedSyncRequest")
                            .int("status", 400),
                    );
                }
                text_response(400, &message, &cors)
            }
            SyncMatch::NotSync => text_response(400, "Invalid path", &cors),
        },
    }
}

/// Handles a sync request: checks the token and the transport, runs the `validate_payload`
/// hook, applies the 426 rule, and forwards the request to the store's Durable Object
/// (`idFromName(storeId)` on the configured binding).
pub async fn handle_sync_request<H: SyncHooks>(
    req: Request,
    env: &Env,
    ctx: &Context,
    params: SyncParams,
    hooks: &H,
) -> Result<Response> {
    handle_sync_request_with(req, env, ctx, Config::cached(env), params, hooks, &[]).await
}

/// [`handle_sync_request`] on a configuration read elsewhere (the npm package's), with
/// `refusal_headers` on every answer the Worker gives itself (the reference's `headers`
/// argument): a refusal, never the store's own response.
pub async fn handle_sync_request_with<H: SyncHooks>(
    req: Request,
    env: &Env,
    ctx: &Context,
    config: std::result::Result<std::rc::Rc<Config>, crate::config::ConfigError>,
    params: SyncParams,
    hooks: &H,
    refusal_headers: &[(String, String)],
) -> Result<Response> {
    match config {
        Ok(config) => sync_request(req, env, ctx, &config, params, hooks, refusal_headers).await,
        Err(e) => config_error(e),
    }
}

async fn sync_request<H: SyncHooks>(
    req: Request,
    env: &Env,
    ctx: &Context,
    config: &Config,
    params: SyncParams,
    hooks: &H,
    refusal_headers: &[(String, String)],
) -> Result<Response> {
    let span = config.otel.as_ref().map(|_| {
        let traceparent = req.headers().get("traceparent").ok().flatten();
        let parent = traceparent.as_deref().and_then(parse_traceparent);
        Span::start("sync.connect", now_millis(), random_bytes(), parent)
    });
    let response = admit_and_forward(req, env, config, &params, hooks, refusal_headers).await;
    if let (Some(mut span), Some(otel)) = (span, config.otel.as_ref()) {
        let status = response.as_ref().map(|r| r.status_code()).unwrap_or(500);
        span.attr("livestore.store_id", params.store_id.as_str())
            .attr("livestore.transport", params.transport.as_str())
            .attr_int("http.response.status_code", status as i64)
            .end(
                now_millis(),
                if status < 400 {
                    Ok(())
                } else {
                    Err(format!("refused with {status}"))
                },
            );
        ctx.wait_until(post_json(
            format!("{}/v1/traces", otel.endpoint),
            export_body(&otel.service_name, &[span]),
            config.log_level,
        ));
    }
    response
}

/// A request's headers for the hooks, read from the runtime only when asked for.
struct RequestHeaders<'a>(&'a Headers);

impl HeaderSource for RequestHeaders<'_> {
    fn header(&self, name: &str) -> Option<String> {
        self.0.get(name).ok().flatten()
    }
}

/// `traceparent: 00-<trace id>-<span id>-<flags>` (W3C Trace Context), as the HTTP client sends.
fn parse_traceparent(value: &str) -> Option<(&str, &str)> {
    let mut parts = value.split('-');
    let (_version, trace, span) = (parts.next()?, parts.next()?, parts.next()?);
    Some((trace, span))
}

async fn admit_and_forward<H: SyncHooks>(
    req: Request,
    env: &Env,
    config: &Config,
    params: &SyncParams,
    hooks: &H,
    refusal_headers: &[(String, String)],
) -> Result<Response> {
    let mut cors: Vec<(String, String)> =
        router::cors_headers(config, req.headers().get("Access-Control-Request-Headers")?.as_deref())
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect();
    cors.extend(refusal_headers.iter().cloned());
    let refuse = |r: Refusal| text_response(r.status, &r.body, &cors);
    let authorization = req.headers().get("Authorization")?;
    let now_secs = now_millis().div_euclid(1000);
    let grant = match router::admit(config, params, authorization.as_deref(), now_secs) {
        Ok(grant) => grant,
        Err(refusal) => {
            log_refused(config, params, refusal.status, refusal.reason);
            if refusal.status >= 500 && config.log_level.enabled(Level::Error) {
                // The operator's instructions for configuring auth.
                worker::console_error!("{}", refusal.body);
            }
            return refuse(refusal);
        }
    };
    let headers = RequestHeaders(req.headers());
    let connect = ConnectContext {
        store_id: &params.store_id,
        transport: params.transport,
        headers: &headers,
    };
    if let Err(e) = hooks.validate_payload(params.payload.as_ref(), &connect).await {
        let refusal = Refusal {
            status: 400,
            body: format!(
                r#"UnknownError: {{ "cause": Error: {}, "note": undefined, "payload": undefined }}"#,
                e.message
            ),
            reason: "PayloadRejected",
        };
        log_refused(config, params, refusal.status, refusal.reason);
        return refuse(refusal);
    }
    let Ok(namespace) = env.durable_object(&config.binding) else {
        log_refused(config, params, 424, "BindingMissing");
        return text_response(
            424,
            &format!(
                "Failed dependency: Required Durable Object binding '{}' not available",
                config.binding
            ),
            &cors,
        );
    };
    if let Some(refusal) = router::upgrade_required(params, req.headers().get("Upgrade")?.as_deref()) {
        log_refused(config, params, refusal.status, refusal.reason);
        return refuse(refusal);
    }
    let content_length = req.headers().get("Content-Length")?;
    let forwarded = match router::declared_body_too_large(params, content_length.as_deref(), config.max_message_bytes) {
        Some(refusal) => Err(refusal),
        None => forwardable(req, params, config.max_message_bytes, grant).await?,
    };
    let req = match forwarded {
        Ok(req) => req,
        Err(refusal) => {
            log_refused(config, params, refusal.status, refusal.reason);
            let h = Headers::new();
            for (name, value) in &cors {
                h.set(name, value)?;
            }
            h.set("Content-Type", "application/json")?;
            return Ok(Response::ok(refusal.body)?.with_status(refusal.status).with_headers(h));
        }
    };
    let stub = namespace.id_from_name(&params.store_id)?.get_stub()?;
    stub.fetch_with_request(req).await
}

/// The request as it may go to the store's object: without the admin API's internal header,
/// which only the Worker sets, with what its admission granted ([`crate::access::HEADER`], only
/// the Worker's own), and, for an HTTP body of undeclared length (chunked), read here and
/// refused once it passes `max` bytes — never held whole in memory first.
async fn forwardable(
    mut req: Request,
    params: &SyncParams,
    max: usize,
    grant: Grant,
) -> Result<std::result::Result<Request, Refusal>> {
    let internal_header =
        req.headers().has(crate::admin::INTERNAL_HEADER)? || req.headers().has(crate::access::HEADER)?;
    let unsized_body = params.transport == crate::protocol::Transport::Http
        && req.inner().body().is_some()
        && req.headers().get("Content-Length")?.is_none();
    if !internal_header && !unsized_body && !grant.restricts() {
        return Ok(Ok(req));
    }
    let headers = forwarded_headers(&req, grant)?;
    let mut init = worker::RequestInit::new();
    init.with_method(req.method()).with_headers(headers);
    if unsized_body {
        let Some(body) = read_bounded(&mut req, max).await? else {
            return Ok(Err(router::body_too_large(None, max)));
        };
        init.with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
    } else if let Some(body) = req.inner().body() {
        init.with_body(Some(body.into()));
    }
    Ok(Ok(Request::new_with_init(req.url()?.as_str(), &init)?))
}

/// A request's headers as they may go to the store's object: without the Worker's internal
/// headers as the client sent them, with the admission's grant when it restricts.
fn forwarded_headers(req: &Request, grant: Grant) -> Result<Headers> {
    let headers = Headers::new();
    for (name, value) in req.headers().entries() {
        let internal = name.eq_ignore_ascii_case(crate::admin::INTERNAL_HEADER)
            || name.eq_ignore_ascii_case(crate::access::HEADER);
        if !internal {
            headers.append(&name, &value)?;
        }
    }
    if grant.restricts() {
        headers.set(crate::access::HEADER, &grant.to_header())?;
    }
    Ok(headers)
}

/// Bytes of an over-limit body read and thrown away before answering, so that a client that sent
/// a little too much still gets its answer on a healthy connection (answering with the body
/// unread resets it, and `wrangler dev`'s proxy then fails the next request on it). Past this,
/// the rest is left unread: the connection may break, which is the sender's loss.
const DRAIN_AFTER_LIMIT: usize = 4 << 20;

/// A request's body, or `None` once it passes `max` bytes. Nothing past `max` is kept.
async fn read_bounded(req: &mut Request, max: usize) -> Result<Option<Vec<u8>>> {
    use futures::StreamExt;
    let mut stream = req.stream()?;
    let mut body = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        seen += chunk.len();
        if seen > max {
            body = Vec::new();
            if seen > max + DRAIN_AFTER_LIMIT {
                break;
            }
            continue;
        }
        body.extend_from_slice(&chunk);
    }
    Ok((seen <= max).then_some(body))
}

/// A request to the sync-electric endpoint (`/electric[/<token>]`): its CORS preflight, its ping
/// (`HEAD`, answered here), and pulls (`GET ?args=…`) and pushes (`POST`), which are admitted
/// with the store's token and forwarded to the store's object. A push's body is read here, no
/// further than `MAX_MESSAGE_BYTES`, since its storeId routes it.
async fn electric_request<H: SyncHooks>(mut req: Request, env: &Env, config: &Config, hooks: &H) -> Result<Response> {
    use crate::protocol::electric::{parse_pull_args, path_token, push_store_id};
    use crate::protocol::Transport;
    let url = req.url()?;
    let method = req.method();
    let requested = req.headers().get("Access-Control-Request-Headers")?;
    let mut cors = router::cors_headers(config, requested.as_deref());
    if let Some(methods) = cors
        .iter_mut()
        .find(|(name, _)| *name == "Access-Control-Allow-Methods")
    {
        methods.1 = "GET, POST, HEAD, OPTIONS".to_owned();
    }
    if config.cors {
        cors.push((
            "Access-Control-Expose-Headers",
            "electric-handle, electric-offset".to_owned(),
        ));
    }
    let json = |status: u16, body: String| -> Result<Response> {
        let h = Headers::new();
        for (name, value) in &cors {
            h.set(name, value)?;
        }
        h.set("Content-Type", "application/json")?;
        h.set("Cache-Control", "no-store")?;
        Ok(Response::ok(body)?.with_status(status).with_headers(h))
    };
    if method == worker::Method::Options && config.cors {
        let h = Headers::new();
        for (name, value) in &cors {
            h.set(name, value)?;
        }
        return Ok(Response::empty()?.with_status(204).with_headers(h));
    }
    if !config.transports.allows(Transport::Electric) {
        return text_response(400, &crate::core::error::transport_disabled(Transport::Electric), &cors);
    }
    let refusal_body = |kind: &str, message: &str| {
        let mut body = String::from(r#"{"success":false,"error":"#);
        crate::util::json::push_str_literal(&mut body, kind);
        body.push_str(r#","message":"#);
        crate::util::json::push_str_literal(&mut body, message);
        body.push('}');
        body
    };
    // The client's ping: any 2xx. It names no store, so there is nothing to check.
    if method == worker::Method::Head {
        return json(200, String::new());
    }
    let (store_id, payload, body) = match method {
        worker::Method::Get => {
            let args = url
                .query_pairs()
                .find(|(k, _)| k == "args")
                .map(|(_, v)| v.into_owned());
            let parsed = args
                .as_deref()
                .map(|a| parse_pull_args(a).map(|p| (p.store_id.into_owned(), p.payload.map(|r| r.get().to_owned()))));
            match parsed {
                Some(Ok((store_id, payload))) => {
                    let payload = payload.and_then(|p| serde_json::from_str::<serde_json::Value>(&p).ok());
                    (store_id, payload, None)
                }
                Some(Err(e)) => return json(400, refusal_body("InvalidArgs", &e.to_string())),
                None => return json(400, refusal_body("InvalidArgs", "the args search parameter is missing")),
            }
        }
        worker::Method::Post => {
            let declared = req
                .headers()
                .get("Content-Length")?
                .and_then(|l| l.trim().parse::<usize>().ok());
            let max = config.max_message_bytes;
            let too_large = |size| {
                json(
                    413,
                    refusal_body(
                        "MessageTooLargeError",
                        &crate::core::error::too_large_message(size, max),
                    ),
                )
            };
            if declared.is_some_and(|n| n > max) {
                return too_large(declared);
            }
            let Some(bytes) = read_bounded(&mut req, max).await? else {
                return too_large(None);
            };
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let Some(store_id) = push_store_id(&text) else {
                return json(
                    400,
                    refusal_body("InvalidRequestError", "the body is not a sync-electric push"),
                );
            };
            (store_id, None, Some(text))
        }
        _ => {
            return json(
                405,
                refusal_body("MethodNotAllowed", "the endpoint answers GET, POST, HEAD and OPTIONS"),
            )
        }
    };
    let params = SyncParams {
        store_id,
        transport: Transport::Electric,
        payload,
    };
    let authorization = req.headers().get("Authorization")?;
    let token = path_token(url.path());
    let now_secs = now_millis().div_euclid(1000);
    let admitted = router::admit_electric(
        config,
        &params.store_id,
        token.as_deref(),
        authorization.as_deref(),
        params.payload.as_ref(),
        now_secs,
    );
    let grant = match admitted {
        Ok(grant) => grant,
        Err(refusal) => {
            log_refused(config, &params, refusal.status, refusal.reason);
            return json(refusal.status, refusal_body(refusal.reason, &refusal.body));
        }
    };
    let headers = RequestHeaders(req.headers());
    let connect = ConnectContext {
        store_id: &params.store_id,
        transport: Transport::Electric,
        headers: &headers,
    };
    if let Err(e) = hooks.validate_payload(params.payload.as_ref(), &connect).await {
        log_refused(config, &params, 403, "PayloadRejected");
        return json(403, refusal_body("PayloadRejected", &e.message));
    }
    let Ok(namespace) = env.durable_object(&config.binding) else {
        log_refused(config, &params, 424, "BindingMissing");
        return json(424, refusal_body("BindingMissing", &config.binding));
    };
    let forwarded = match body {
        None => forwardable(req, &params, config.max_message_bytes, grant)
            .await?
            .map_err(|r| r.body),
        Some(body) => {
            let headers = forwarded_headers(&req, grant)?;
            let mut init = worker::RequestInit::new();
            init.with_method(worker::Method::Post)
                .with_headers(headers)
                .with_body(Some(wasm_bindgen::JsValue::from_str(&body)));
            Ok(Request::new_with_init(url.as_str(), &init)?)
        }
    };
    let req = match forwarded {
        Ok(req) => req,
        Err(message) => return json(400, refusal_body("InvalidRequestError", &message)),
    };
    let stub = namespace.id_from_name(&params.store_id)?.get_stub()?;
    stub.fetch_with_request(req).await
}

/// A `connect` line for a sync request refused before reaching its store: `warn`, or `error` when
/// the deployment is at fault (5xx, a missing binding).
fn log_refused(config: &Config, params: &SyncParams, status: u16, reason: &'static str) {
    let level = if status >= 500 || status == 424 {
        Level::Error
    } else {
        Level::Warn
    };
    let Some(line) = config.log_level.line(level, "connect") else {
        return;
    };
    // A storeId refused for its length is not repeated; the client may have sent megabytes.
    let line = match reason {
        "InvalidStoreId" => line.int("storeIdBytes", params.store_id.len() as i64),
        _ => line.str("storeId", &params.store_id),
    };
    log::emit(
        line.str("transport", params.transport.as_str())
            .str("outcome", "refused")
            .str("reason", reason)
            .int("status", i64::from(status)),
    );
}

fn admin_json(status: u16, body: &str) -> Result<Response> {
    let h = Headers::new();
    h.set("Content-Type", "application/json")?;
    for (name, value) in crate::admin::RESPONSE_HEADERS {
        h.set(name, value)?;
    }
    Ok(Response::ok(body)?.with_status(status).with_headers(h))
}

/// A file of the web inspector, or the redirect to it, with its security headers.
fn inspector_response(page: crate::inspector::Page, head: bool) -> Result<Response> {
    use crate::inspector::{Page, HEADERS};
    let h = Headers::new();
    for (name, value) in HEADERS {
        h.set(name, value)?;
    }
    let response = match page {
        Page::Asset(asset) => {
            h.set("Content-Type", asset.content_type)?;
            if head {
                Response::empty()?
            } else {
                Response::ok(asset.body)?
            }
        }
        Page::Redirect(location) => {
            h.set("Location", location)?;
            Response::empty()?.with_status(308)
        }
    };
    Ok(response.with_headers(h))
}

/// An admin API request (`/_admin/...`): 404 when `ADMIN_TOKEN` is not set, as if the API did
/// not exist; the inspector's files (which hold no data) without a token; 401 for a wrong or
/// missing bearer token; otherwise forwarded to the store's object as
/// `https://livestore-admin/<action>?storeId=…` with [`crate::admin::INTERNAL_HEADER`] set.
async fn admin_request(mut req: Request, env: &Env, config: &Config) -> Result<Response> {
    use crate::admin::{self, Route};
    let Some(token) = config.admin_token.as_ref() else {
        return text_response(
            404,
            "Not found",
            &crate::admin::RESPONSE_HEADERS.map(|(n, v)| (n, v.to_owned())),
        );
    };
    let method = req.method();
    if let Some(page) = crate::inspector::page(method.as_ref(), req.path().as_str()) {
        return inspector_response(page, method == worker::Method::Head);
    }
    let authorization = req.headers().get("Authorization")?;
    if !admin::authorized(token, authorization.as_deref()) {
        // Nothing about the presented token is logged.
        if let Some(line) = config.log_level.line(Level::Warn, "admin") {
            crate::log::emit(line.str("outcome", "unauthorized"));
        }
        return admin_json(401, r#"{"error":"Unauthorized"}"#);
    }
    let url = req.url()?;
    let (store_id, action, sink) = match admin::route(req.method().as_ref(), url.path()) {
        Route::Store { store_id, action, sink } => (store_id, action, sink),
        Route::Ping => return admin_json(200, r#"{"ok":true}"#),
        Route::Directory => return directory_listing(env, config, &url).await,
        Route::MethodNotAllowed => return admin_json(405, r#"{"error":"MethodNotAllowed"}"#),
        Route::NotFound => return admin_json(404, r#"{"error":"NotFound"}"#),
    };
    if store_id.len() > config.max_store_id_bytes {
        return admin_json(400, r#"{"error":"InvalidStoreId"}"#);
    }
    let Ok(namespace) = env.durable_object(&config.binding) else {
        return admin_json(424, r#"{"error":"DurableObjectBindingMissing"}"#);
    };
    let mut query = worker::url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("storeId", &store_id);
    if let Some(sink) = &sink {
        query.append_pair("sink", sink);
    }
    for (key, value) in url.query_pairs() {
        if matches!(key.as_ref(), "after" | "until" | "limit" | "to" | "backendId") {
            query.append_pair(&key, &value);
        }
    }
    let target = format!(
        "https://{}/{}?{}",
        crate::admin::INTERNAL_HOST,
        action.as_str(),
        query.finish()
    );
    let headers = Headers::new();
    headers.set(admin::INTERNAL_HEADER, &token.0)?;
    let mut init = worker::RequestInit::new();
    init.with_method(req.method()).with_headers(headers);
    if action == admin::Action::Import {
        let body = req.text().await?;
        init.with_body(Some(wasm_bindgen::JsValue::from_str(&body)));
    }
    let forwarded = Request::new_with_init(&target, &init)?;
    let stub = namespace.id_from_name(&store_id)?.get_stub()?;
    let first = stub.fetch_with_request(forwarded).await?;
    let paged_by_caller = url.query_pairs().any(|(key, _)| key == "limit");
    if action != admin::Action::Export || paged_by_caller || first.status_code() != 200 {
        return Ok(first);
    }
    export_stream(first, stub, store_id, url, token.0.clone())
}

/// `GET /_admin/stores`: a page of the store directory, from its object.
async fn directory_listing(env: &Env, config: &Config, url: &worker::Url) -> Result<Response> {
    if !config.store_directory {
        return admin_json(
            404,
            r#"{"error":"DirectoryOff","message":"the store directory is off (STORE_DIRECTORY=false)"}"#,
        );
    }
    let Ok(namespace) = env.durable_object(&config.binding) else {
        return admin_json(424, r#"{"error":"DurableObjectBindingMissing"}"#);
    };
    // Only the listing's own parameters: anything else (a `transport`) could make the object take
    // the request for something it is not.
    let mut query = worker::url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in url.query_pairs() {
        if matches!(key.as_ref(), "prefix" | "sort" | "order" | "limit" | "offset") {
            query.append_pair(&key, &value);
        }
    }
    let target = format!("https://{}/list?{}", crate::directory::HOST, query.finish());
    let stub = namespace.id_from_name(crate::directory::OBJECT_NAME)?.get_stub()?;
    let mut answer = stub
        .fetch_with_request(Request::new(&target, worker::Method::Get)?)
        .await?;
    let status = answer.status_code();
    admin_json(status, &answer.text().await?)
}

/// A whole export as one streamed response: the object answers at most a page of lines per
/// request (so neither side holds a large store in memory), and this Worker asks for the next
/// page only when the previous one has been handed to the response body. A storage failure after
/// the first page aborts the body, so a cut-off export never looks complete.
fn export_stream(
    first: Response,
    stub: worker::Stub,
    store_id: String,
    url: worker::Url,
    token: String,
) -> Result<Response> {
    use futures::stream::{self, TryStreamExt};
    let until: Option<String> = url
        .query_pairs()
        .find(|(key, _)| key == "until")
        .map(|(_, v)| v.into_owned());
    let shared = std::rc::Rc::new((stub, store_id, until, token));
    let state = (Some(first), None::<String>, false);
    let pages = stream::try_unfold(state, move |(first, after, done)| {
        let shared = shared.clone();
        async move {
            let (stub, store_id, until, token) = &*shared;
            if done {
                return Ok(None);
            }
            let mut response = match first {
                Some(response) => response,
                None => {
                    let mut query = worker::url::form_urlencoded::Serializer::new(String::new());
                    query.append_pair("storeId", store_id);
                    if let Some(after) = &after {
                        query.append_pair("after", after);
                    }
                    if let Some(until) = until {
                        query.append_pair("until", until);
                    }
                    let headers = Headers::new();
                    headers.set(crate::admin::INTERNAL_HEADER, token)?;
                    let mut init = worker::RequestInit::new();
                    init.with_method(worker::Method::Get).with_headers(headers);
                    let target = format!("https://{}/export?{}", crate::admin::INTERNAL_HOST, query.finish());
                    let response = stub.fetch_with_request(Request::new_with_init(&target, &init)?).await?;
                    if response.status_code() != 200 {
                        return Err(worker::Error::RustError(format!(
                            "export page after {} failed with status {}",
                            after.as_deref().unwrap_or("0"),
                            response.status_code()
                        )));
                    }
                    response
                }
            };
            let next = response.headers().get("x-next-after")?;
            let bytes = response.bytes().await?;
            let done = next.is_none();
            Ok(Some((bytes, (None, next, done))))
        }
    });
    let headers = Headers::new();
    headers.set("Content-Type", "application/x-ndjson")?;
    for (name, value) in crate::admin::RESPONSE_HEADERS {
        headers.set(name, value)?;
    }
    Ok(Response::from_stream(pages.into_stream())?.with_headers(headers))
}
