//! The few things taken straight from the JavaScript runtime: time, randomness, error text,
//! a method looked up on an object, and a future run at once.

use std::future::Future;
use std::task::{Context, Poll, Waker};

use wasm_bindgen::{JsCast, JsValue};

use crate::util::nanoid::{nanoid_from_bytes, NANOID_LEN};

/// Milliseconds since the Unix epoch, from `Date.now()`.
pub fn now_millis() -> i64 {
    js_sys::Date::now() as i64
}

/// A new backendId: a nanoid from `crypto.getRandomValues`.
///
/// `Math.random` is the fallback should WebCrypto be missing; a backendId must be unique, not
/// secret.
pub fn new_backend_id() -> String {
    let mut bytes = [0u8; NANOID_LEN];
    if fill_random(&mut bytes).is_err() {
        for b in bytes.iter_mut() {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
    nanoid_from_bytes(&bytes)
}

fn fill_random(bytes: &mut [u8]) -> Result<(), JsValue> {
    let crypto = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("crypto"))?;
    let get_random_values: js_sys::Function =
        js_sys::Reflect::get(&crypto, &JsValue::from_str("getRandomValues"))?.dyn_into()?;
    let array = js_sys::Uint8Array::new_with_length(bytes.len() as u32);
    get_random_values.call1(&crypto, &array)?;
    array.copy_to(bytes);
    Ok(())
}

/// A readable message for a thrown JavaScript value.
pub fn error_message(value: &JsValue) -> String {
    if let Some(error) = value.dyn_ref::<js_sys::Error>() {
        String::from(error.message())
    } else if let Some(s) = value.as_string() {
        s
    } else {
        format!("{value:?}")
    }
}

/// `N` random bytes from `crypto.getRandomValues` (zeros should WebCrypto be missing).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    let _ = fill_random(&mut bytes);
    bytes
}

/// POSTs a JSON body and ignores the answer; failures are logged (a `warn` line, as `log_level`
/// allows), never raised, since what is sent this way (spans) must not affect the request that
/// produced it.
pub async fn post_json(url: String, body: String, log_level: crate::log::LogLevel) {
    let headers = worker::Headers::new();
    let _ = headers.set("content-type", "application/json");
    let mut init = worker::RequestInit::new();
    init.with_method(worker::Method::Post)
        .with_headers(headers)
        .with_body(Some(JsValue::from_str(&body)));
    let result = match worker::Request::new_with_init(&url, &init) {
        Ok(request) => worker::Fetch::Request(request).send().await.map(|_| ()),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        if let Some(line) = log_level.line(crate::log::Level::Warn, "span_export_failed") {
            crate::log::emit(line.str("url", &url).str("error", &e.to_string()));
        }
    }
}

/// `target[name]` when it is a function (a runtime API or a user's hook), else `None`.
pub fn method(target: &JsValue, name: &str) -> Option<js_sys::Function> {
    js_sys::Reflect::get(target, &JsValue::from_str(name))
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
}

/// Runs `future` as far as it goes without waiting, inside this call: what finishes here (a
/// WebSocket frame served from DO SQLite, whose storage answers synchronously) returns its value
/// with no `Promise` and no microtask made for it, which `#[wasm_bindgen] async fn` makes for
/// every call. A future that must wait becomes a `Promise`, whose task polls it again with a
/// waker that works (futures take the waker of their latest poll); a failure finished here is a
/// rejected `Promise`, as from an async method.
pub fn run_now<F>(future: F) -> JsValue
where
    F: Future<Output = Result<JsValue, JsValue>> + 'static,
{
    let mut future = Box::pin(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(Ok(value)) => value,
        Poll::Ready(Err(error)) => js_sys::Promise::reject(&error).into(),
        Poll::Pending => worker::wasm_bindgen_futures::future_to_promise(future).into(),
    }
}
