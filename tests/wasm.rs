//! The glue that touches JavaScript values, run as WASM under Node with `wasm-bindgen-test`:
//! timestamps against JavaScript's own `Date`, backendIds from WebCrypto, error texts from
//! thrown values, and configuration read from a Worker `env` object.
#![cfg(target_arch = "wasm32")]

use livestore_sync::config::{Auth, Config};
use livestore_sync::js::{error_message, new_backend_id};
use livestore_sync::util::time::iso8601_from_millis;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::wasm_bindgen_test;

#[wasm_bindgen_test]
fn timestamps_match_javascript_to_iso_string() {
    let mut ms: i64 = -86_400_000 * 366;
    // A spread of instants across leap years, month ends and millisecond values.
    while ms < 4_102_444_800_000 {
        let js = js_sys::Date::new(&JsValue::from_f64(ms as f64)).to_iso_string();
        assert_eq!(iso8601_from_millis(ms), String::from(js), "at {ms} ms");
        ms += 7_777_777_777 + 123;
    }
    let now = livestore_sync::js::now_millis();
    let js_now = js_sys::Date::now() as i64;
    assert!((js_now - now).abs() < 1000);
}

#[wasm_bindgen_test]
fn backend_ids_are_random_21_character_nanoids() {
    let ids: Vec<String> = (0..200).map(|_| new_backend_id()).collect();
    for id in &ids {
        assert_eq!(id.len(), 21);
        assert!(
            id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-'),
            "{id}"
        );
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len());
}

#[wasm_bindgen_test]
fn error_messages_from_thrown_values() {
    assert_eq!(
        error_message(&js_sys::Error::new("SQLITE_CONSTRAINT").into()),
        "SQLITE_CONSTRAINT"
    );
    assert_eq!(error_message(&JsValue::from_str("plain")), "plain");
    assert!(!error_message(&JsValue::from_f64(3.0)).is_empty());
}

fn env(pairs: &[(&str, JsValue)]) -> worker::Env {
    let obj = js_sys::Object::new();
    for (k, v) in pairs {
        js_sys::Reflect::set(&obj, &JsValue::from_str(k), v).unwrap();
    }
    obj.unchecked_into()
}

#[wasm_bindgen_test]
fn config_from_a_worker_env() {
    let config = Config::from_env(&env(&[
        ("AUTH_TOKEN", JsValue::from_str("s3cret")),
        // TOML booleans and numbers in [vars] arrive as JSON values, not strings.
        ("CORS", JsValue::from_bool(false)),
        ("MAX_MESSAGE_BYTES", JsValue::from_f64(2048.0)),
    ]))
    .unwrap();
    assert_eq!(config.auth, Auth::Token("s3cret".into()));
    assert!(!config.cors);
    assert_eq!(config.max_message_bytes, 2048);
    assert_eq!(Config::from_env(&env(&[])).unwrap().auth, Auth::Unconfigured);
    assert!(Config::from_env(&env(&[("CORS", JsValue::from_str("perhaps"))])).is_err());
}

#[wasm_bindgen_test]
fn signed_token_keys_from_a_worker_env() {
    // A JWKS written as a TOML table in [vars] arrives as an object, not as JSON text.
    let jwks = js_sys::JSON::parse(include_str!("fixtures/jwt/jwks.json")).unwrap();
    let config = Config::from_env(&env(&[("JWT_JWKS", jwks), ("AUTH_TOKEN", JsValue::from_str("s3cret"))])).unwrap();
    match config.auth {
        Auth::Signed { jwt, shared } => {
            assert!(jwt.is_configured());
            assert_eq!(shared.as_deref(), Some("s3cret"));
        }
        other => panic!("{other:?}"),
    }
}

/// A future that finishes within the call gives its value, no Promise; one that waits on a
/// Promise (a microtask away) gives a Promise of its value, driven on after the first poll's
/// no-op waker; a failure is a rejected Promise either way.
#[wasm_bindgen_test]
async fn run_now_answers_at_once_or_with_a_promise() {
    use livestore_sync::js::run_now;
    use worker::wasm_bindgen_futures::JsFuture;

    let now = run_now(async { Ok(JsValue::from_str("served")) });
    assert_eq!(now.as_string().as_deref(), Some("served"), "a value, not a Promise");

    let waits = run_now(async {
        let later = js_sys::Promise::resolve(&JsValue::from_f64(7.0));
        let value = JsFuture::from(later).await?;
        Ok(JsValue::from_f64(value.as_f64().unwrap_or(0.0) + 1.0))
    });
    let promise = waits
        .dyn_into::<js_sys::Promise>()
        .expect("a Promise for a future that waits");
    assert_eq!(JsFuture::from(promise).await.unwrap().as_f64(), Some(8.0));

    let failed = run_now(async { Err(JsValue::from_str("refused")) });
    let promise = failed.dyn_into::<js_sys::Promise>().expect("a rejected Promise");
    assert_eq!(
        JsFuture::from(promise).await.unwrap_err().as_string().as_deref(),
        Some("refused")
    );
}
