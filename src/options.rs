//! The npm package's options (`makeDurableObject({ … })`, `makeWorker({ … })`,
//! `handleSyncRequest({ … })`) as the vars they stand for, so the package and the stock Worker
//! share one configuration ([`crate::config`]) and every option means what its var means.
//!
//! The reference's options keep their names and shapes (`enabledTransports`, `storage`,
//! `http.responseHeaders`, `otel`, `forwardHeaders` as a list, `syncBackendBinding`,
//! `enableCORS`); each of our settings is also an option, named by its var in camelCase
//! (`LOG_LEVEL` → `logLevel`, `MAX_PUSH_EVENTS` → `maxPushEvents`). Secrets are not options:
//! they come from Worker secrets only, so they never sit in source code.

use serde_json::Value;

use crate::config::{ConfigError, SETTINGS};

/// What the package assumes where the stock Worker's defaults differ, so a `worker.ts` written
/// for the reference behaves as it did: its `makeWorker` answers no CORS unless `enableCORS`,
/// and admits every client its `validatePayload` admits (a configured `AUTH_TOKEN` or signed-token
/// key still wins). Options and vars both override these.
pub const PACKAGE_DEFAULTS: &[(&str, &str)] = &[("ALLOW_ANONYMOUS", "true"), ("CORS", "false")];

const WHERE: &str = "livestore-sync-rs options";

fn refuse(value: String, expected: &'static str) -> ConfigError {
    ConfigError {
        name: WHERE,
        value,
        expected,
    }
}

/// `LOG_LEVEL` → `logLevel`: the option name of a var.
pub fn option_name(var: &str) -> String {
    let mut out = String::with_capacity(var.len());
    let mut upper = false;
    for c in var.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// A plain option value as var text: strings as they are, numbers and booleans printed, lists
/// joined with commas, objects as JSON.
fn var_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(_) | Value::Number(_) | Value::Object(_) => Some(value.to_string()),
        Value::Array(items) => Some(
            items
                .iter()
                .map(|item| match item {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
        ),
    }
}

/// The vars an options object sets. `options` is the object as JSON (the
/// package's JavaScript drops its functions and turns sets into lists first). An unknown key, a
/// secret, or a shape the option does not take is an error naming it.
pub fn vars_from_options(options: &Value) -> Result<Vec<(&'static str, String)>, ConfigError> {
    let Some(options) = options.as_object() else {
        return match options {
            Value::Null => Ok(Vec::new()),
            other => Err(refuse(other.to_string(), "an object of options")),
        };
    };
    let mut vars = Vec::new();
    for (key, value) in options {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "enabledTransports" => vars.extend(var_text(value).map(|v| ("ENABLED_TRANSPORTS", v))),
            "syncBackendBinding" => vars.extend(var_text(value).map(|v| ("SYNC_BACKEND_BINDING", v))),
            "enableCORS" => vars.push(("CORS", (value.as_bool() == Some(true)).to_string())),
            "forwardHeaders" => vars.extend(var_text(value).map(|v| ("FORWARD_HEADERS", v))),
            "storage" => match (value.get("_tag").and_then(Value::as_str), value.get("binding")) {
                (Some("d1"), Some(Value::String(binding))) => {
                    vars.push(("STORAGE", "d1".to_owned()));
                    vars.push(("D1_BINDING", binding.clone()));
                }
                (Some("d1"), None) => vars.push(("STORAGE", "d1".to_owned())),
                (Some("do-sqlite"), _) => vars.push(("STORAGE", "do-sqlite".to_owned())),
                _ => {
                    return Err(refuse(
                        value.to_string(),
                        "storage: { _tag: 'do-sqlite' } or { _tag: 'd1', binding: '<D1 binding>' }",
                    ))
                }
            },
            "http" => {
                if let Some(headers) = value.get("responseHeaders").filter(|h| !h.is_null()) {
                    if !headers.is_object() {
                        return Err(refuse(
                            headers.to_string(),
                            "http.responseHeaders: an object of header names to values",
                        ));
                    }
                    vars.push(("HTTP_RESPONSE_HEADERS", headers.to_string()));
                }
            }
            "otel" => {
                if let Some(url) = value.get("baseUrl").and_then(var_text) {
                    vars.push(("OTEL_EXPORTER_OTLP_ENDPOINT", url));
                }
                if let Some(name) = value.get("serviceName").and_then(var_text) {
                    vars.push(("OTEL_SERVICE_NAME", name));
                }
            }
            other => {
                let Some(setting) = SETTINGS.iter().find(|s| option_name(s.name) == other) else {
                    return Err(refuse(
                        other.to_owned(),
                        "an option of @livestore/sync-cf's makeDurableObject/makeWorker, or one of our settings in camelCase (see the README's settings table)",
                    ));
                };
                if setting.secret {
                    return Err(refuse(
                        other.to_owned(),
                        "a secret is never an option: set it with `wrangler secret put` (or .dev.vars locally)",
                    ));
                }
                vars.extend(var_text(value).map(|v| (setting.name, v)));
            }
        }
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reference_options_become_vars() {
        let vars = vars_from_options(&json!({
            "enabledTransports": ["ws", "http"],
            "storage": { "_tag": "d1", "binding": "EVENTS" },
            "http": { "responseHeaders": { "X-Custom": "1" } },
            "otel": { "baseUrl": "https://otel.example", "serviceName": "sync" },
            "forwardHeaders": ["cookie", "authorization"],
            "syncBackendBinding": "STORES",
            "enableCORS": true,
        }))
        .unwrap();
        let mut vars = vars;
        vars.sort();
        let mut expected = vec![
            ("ENABLED_TRANSPORTS", "ws,http".to_owned()),
            ("STORAGE", "d1".to_owned()),
            ("D1_BINDING", "EVENTS".to_owned()),
            ("HTTP_RESPONSE_HEADERS", r#"{"X-Custom":"1"}"#.to_owned()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://otel.example".to_owned()),
            ("OTEL_SERVICE_NAME", "sync".to_owned()),
            ("FORWARD_HEADERS", "cookie,authorization".to_owned()),
            ("SYNC_BACKEND_BINDING", "STORES".to_owned()),
            ("CORS", "true".to_owned()),
        ];
        expected.sort();
        assert_eq!(vars, expected);
    }

    #[test]
    fn our_settings_by_camel_case_name_and_never_secrets() {
        assert_eq!(option_name("MAX_PUSH_EVENTS"), "maxPushEvents");
        assert_eq!(option_name("D1_BINDING"), "d1Binding");
        let vars =
            vars_from_options(&json!({ "logLevel": "debug", "maxPushEvents": 50, "allowAnonymous": false })).unwrap();
        assert_eq!(
            vars,
            vec![
                ("ALLOW_ANONYMOUS", "false".to_owned()),
                ("LOG_LEVEL", "debug".to_owned()),
                ("MAX_PUSH_EVENTS", "50".to_owned()),
            ]
        );
        for secret in ["authToken", "adminToken", "jwtSecret", "postgresUrl"] {
            let e = vars_from_options(&json!({ secret: "x" })).unwrap_err();
            assert_eq!(e.value, secret);
            assert!(e.expected.contains("secret"), "{e}");
        }
        assert!(vars_from_options(&json!({ "onPsuh": 1 })).is_err());
        assert!(vars_from_options(&json!({ "storage": { "_tag": "kv" } })).is_err());
        assert!(vars_from_options(&json!({ "enableCORS": false })).unwrap() == vec![("CORS", "false".to_owned())]);
        assert!(vars_from_options(&Value::Null).unwrap().is_empty());
    }

    #[test]
    fn the_vars_parse() {
        // Every var an option produces is one the configuration reads.
        let vars =
            vars_from_options(&json!({ "enabledTransports": ["ws"], "http": { "responseHeaders": { "A": "b" } } }))
                .unwrap();
        let config = crate::config::Config::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
                .or_else(|| {
                    PACKAGE_DEFAULTS
                        .iter()
                        .find(|(k, _)| *k == name)
                        .map(|(_, v)| v.to_string())
                })
        })
        .unwrap();
        assert!(!config.transports.allows(crate::protocol::Transport::Http));
    }
}
