//! The Worker's `fetch` entry point: routes sync requests to their store's Durable Object and
//! answers everything else, exactly as the reference's `makeWorker` does.

use worker::{event, Context, Env, Headers, Request, Response, Result};

use crate::config::Config;
use crate::router::{self, NonSync, Refusal};

/// Worker entry point.
#[event(fetch)]
pub async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    console_error_panic_hook::set_once();
    handle(req, &env).await
}

fn text_response(status: u16, body: &str, headers: &[(&'static str, String)]) -> Result<Response> {
    let h = Headers::new();
    for (name, value) in headers {
        h.set(name, value)?;
    }
    h.set("Content-Type", "text/plain")?;
    Ok(Response::ok(body)?.with_status(status).with_headers(h))
}

/// Handles one request to the Worker.
pub async fn handle(req: Request, env: &Env) -> Result<Response> {
    let config = match Config::from_env(env) {
        Ok(config) => config,
        Err(e) => {
            worker::console_error!("{e}");
            return text_response(500, &e.to_string(), &[]);
        }
    };
    let url = req.url()?;
    let cors = router::cors_headers(&config, req.headers().get("Access-Control-Request-Headers")?.as_deref());
    let params = router::match_sync_request(url.query());
    match router::classify(&config, req.method().as_ref(), url.path(), params.is_some()) {
        Some(NonSync::Preflight) => {
            let h = Headers::new();
            for (name, value) in &cors {
                h.set(name, value)?;
            }
            return Ok(Response::empty()?.with_status(204).with_headers(h));
        }
        Some(NonSync::Info) => return text_response(200, router::INFO_BODY, &[]),
        Some(NonSync::InvalidPath) => return text_response(400, "Invalid path", &cors),
        None => {}
    }
    let Some(params) = params else {
        return text_response(400, "Invalid path", &cors);
    };
    let refuse = |r: Refusal| text_response(r.status, &r.body, &cors);
    if let Err(refusal) = router::admit(&config, &params) {
        if refusal.status >= 500 {
            worker::console_error!("{}", refusal.body);
        }
        return refuse(refusal);
    }
    let Ok(namespace) = env.durable_object(&config.binding) else {
        return text_response(
            424,
            &format!(
                "Failed dependency: Required Durable Object binding '{}' not available",
                config.binding
            ),
            &cors,
        );
    };
    if let Some(refusal) = router::upgrade_required(&params, req.headers().get("Upgrade")?.as_deref()) {
        return refuse(refusal);
    }
    let stub = namespace.id_from_name(&params.store_id)?.get_stub()?;
    stub.fetch_with_request(req).await
}
