//! Worker configuration: every setting comes from a Worker var or secret (`[vars]` in
//! `wrangler.toml`, `.dev.vars` locally, `wrangler secret put` in production) and is parsed
//! once into a [`Config`].

use crate::jwt::{KeyError, Verifier};
use crate::log::LogLevel;

/// How sync requests are authenticated.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// Clients must send this token as `payload.authToken`.
    Token(String),
    /// Clients send a signed token (JWT) naming the store, as `payload.authToken` or in an
    /// `Authorization: Bearer` header; the shared token, when also set, keeps working beside it.
    Signed {
        /// Checks signed tokens.
        jwt: Verifier,
        /// The shared `AUTH_TOKEN`, if one is configured as well.
        shared: Option<String>,
    },
    /// Anyone may open any store (`ALLOW_ANONYMOUS=true` and no token).
    Open,
    /// Neither a token nor open access is configured: sync requests are refused, so a
    /// forgotten secret never leaves the backend running open.
    Unconfigured,
}

impl std::fmt::Debug for Auth {
    // The token must never reach a log line, not even through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Token(_) => f.write_str("Token(<redacted>)"),
            Auth::Signed { jwt, shared } => f
                .debug_struct("Signed")
                .field("jwt", jwt)
                .field("shared", &shared.as_ref().map(|_| "<redacted>"))
                .finish(),
            Auth::Open => f.write_str("Open"),
            Auth::Unconfigured => f.write_str("Unconfigured"),
        }
    }
}

/// The operator's admin API secret (`ADMIN_TOKEN`). A newtype so `{:?}` of a [`Config`] can
/// never print it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(pub String);

impl std::fmt::Debug for AdminToken {
    // Same reason as for `Auth`: a secret must never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// Names of the vars and secrets the worker reads.
pub mod vars {
    /// Secret that turns the admin API (`/_admin/`) on; sent as `Authorization: Bearer`.
    pub const ADMIN_TOKEN: &str = "ADMIN_TOKEN";
    /// Shared secret clients send as `payload.authToken`.
    pub const AUTH_TOKEN: &str = "AUTH_TOKEN";
    /// Secret (at least 32 bytes) that `HS256` tokens are signed with.
    pub const JWT_SECRET: &str = "JWT_SECRET";
    /// JWKS (JSON text) whose public keys `RS256` / `ES256` tokens are signed with.
    pub const JWT_JWKS: &str = "JWT_JWKS";
    /// When set, a token's `aud` must be or contain this.
    pub const JWT_AUDIENCE: &str = "JWT_AUDIENCE";
    /// When set, a token's `iss` must be this.
    pub const JWT_ISSUER: &str = "JWT_ISSUER";
    /// `true` to serve without any token.
    pub const ALLOW_ANONYMOUS: &str = "ALLOW_ANONYMOUS";
    /// `false` to turn off CORS headers and preflight answers.
    pub const CORS: &str = "CORS";
    /// Name of the Durable Object binding sync requests go to.
    pub const SYNC_BACKEND_BINDING: &str = "SYNC_BACKEND_BINDING";
    /// Largest WebSocket message accepted, in bytes.
    pub const MAX_MESSAGE_BYTES: &str = "MAX_MESSAGE_BYTES";
    /// Longest storeId accepted, in bytes.
    pub const MAX_STORE_ID_BYTES: &str = "MAX_STORE_ID_BYTES";
    /// Transports clients may use: `ws`, `http`, `do-rpc` (comma-separated).
    pub const ENABLED_TRANSPORTS: &str = "ENABLED_TRANSPORTS";
    /// Extra headers on every HTTP transport response, as a JSON object.
    pub const HTTP_RESPONSE_HEADERS: &str = "HTTP_RESPONSE_HEADERS";
    /// Request headers passed on to the `on_push` / `on_pull` hooks (comma-separated names).
    pub const FORWARD_HEADERS: &str = "FORWARD_HEADERS";
    /// Base URL of an OTLP/HTTP collector; spans are exported to `<url>/v1/traces` when set.
    pub const OTEL_EXPORTER_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
    /// `service.name` of exported spans.
    pub const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
    /// Where event logs live: `do-sqlite` (default) or `d1`.
    pub const STORAGE: &str = "STORAGE";
    /// Name of the D1 binding used when `STORAGE=d1`.
    pub const D1_BINDING: &str = "D1_BINDING";
    /// Test-only: `true` enables deliberate faults triggered by special event names.
    pub const TEST_FAULTS: &str = "TEST_FAULTS";
    /// Most events one push may carry.
    pub const MAX_PUSH_EVENTS: &str = "MAX_PUSH_EVENTS";
    /// Most WebSockets one store may have open at once.
    pub const MAX_SOCKETS_PER_STORE: &str = "MAX_SOCKETS_PER_STORE";
    /// Most pushes one WebSocket connection may send per second (`0`: no limit).
    pub const MAX_PUSHES_PER_SECOND: &str = "MAX_PUSHES_PER_SECOND";
    /// Most verbose structured log lines written: `off`, `error`, `warn`, `info`, `debug`.
    pub const LOG_LEVEL: &str = "LOG_LEVEL";
}

/// Where stores keep their event logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageConfig {
    /// The Durable Object's own SQLite database (the reference's default, `do-sqlite`).
    DoSqlite,
    /// A D1 database shared by all stores; heads and backendIds stay in each object's SQLite.
    D1 {
        /// The D1 binding's name.
        binding: String,
    },
}

/// Which transports the backend serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transports {
    /// `transport=ws`.
    pub ws: bool,
    /// `transport=http`.
    pub http: bool,
    /// `do-rpc`: Durable Object RPC from a client running in another Durable Object.
    pub do_rpc: bool,
}

impl Transports {
    /// Whether `transport` is enabled.
    pub fn allows(&self, transport: crate::router::Transport) -> bool {
        match transport {
            crate::router::Transport::Ws => self.ws,
            crate::router::Transport::Http => self.http,
            crate::router::Transport::DoRpc => self.do_rpc,
        }
    }
}

/// Where spans go, when tracing is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtelConfig {
    /// The collector's base URL, without `/v1/traces`.
    pub endpoint: String,
    /// The `service.name` resource attribute.
    pub service_name: String,
}

/// The worker's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Authentication of sync requests.
    pub auth: Auth,
    /// Answer CORS preflights and put CORS headers on error responses, like `enableCORS: true`.
    pub cors: bool,
    /// The Durable Object binding that holds one object per store.
    pub binding: String,
    /// Largest client message (WebSocket frame) accepted.
    pub max_message_bytes: usize,
    /// Longest storeId accepted.
    pub max_store_id_bytes: usize,
    /// Transports clients may use.
    pub transports: Transports,
    /// Headers added to every HTTP transport response.
    pub http_response_headers: Vec<(String, String)>,
    /// Lower-case names of the request headers the hooks receive.
    pub forward_headers: Vec<String>,
    /// Span export; `None` turns tracing off.
    pub otel: Option<OtelConfig>,
    /// The storage engine.
    pub storage: StorageConfig,
    /// Deliberate faults for the crash-recovery tests; never set in production.
    pub test_faults: bool,
    /// Most events one push may carry.
    pub max_push_events: usize,
    /// Most WebSockets one store may have open at once.
    pub max_sockets_per_store: usize,
    /// Most pushes per second on one WebSocket connection; `None` for no limit.
    pub max_pushes_per_second: Option<u32>,
    /// The admin API's token; `None` (the default) leaves the admin API off.
    pub admin_token: Option<AdminToken>,
    /// Which structured log lines are written.
    pub log_level: LogLevel,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            auth: Auth::Unconfigured,
            cors: true,
            binding: "SYNC_BACKEND_DO".to_owned(),
            // The reference client never sends more than 900 KB of payload per message.
            max_message_bytes: 1 << 20,
            max_store_id_bytes: 512,
            transports: Transports {
                ws: true,
                http: true,
                do_rpc: true,
            },
            http_response_headers: Vec::new(),
            forward_headers: Vec::new(),
            otel: None,
            storage: StorageConfig::DoSqlite,
            test_faults: false,
            // The LiveStore client splits pushes into requests of at most 100 events.
            max_push_events: 100,
            // Far below the runtime's own cap on hibernated sockets per object (32,768).
            max_sockets_per_store: 10_000,
            max_pushes_per_second: None,
            admin_token: None,
            log_level: LogLevel::INFO,
        }
    }
}

/// A var that is set but cannot be understood; the worker refuses to guess.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {name} = {value:?}: {expected}")]
pub struct ConfigError {
    /// The var's name.
    pub name: &'static str,
    /// What was set.
    pub value: String,
    /// What would have been accepted.
    pub expected: &'static str,
}

fn parse_bool(name: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError {
            name,
            value: value.to_owned(),
            expected: "true or false",
        }),
    }
}

fn parse_size(name: &'static str, value: &str) -> Result<usize, ConfigError> {
    match value.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(ConfigError {
            name,
            value: value.to_owned(),
            expected: "a positive integer",
        }),
    }
}

/// An HTTP header name: an RFC 9110 token.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn parse_transports(value: &str) -> Result<Transports, ConfigError> {
    let error = || ConfigError {
        name: vars::ENABLED_TRANSPORTS,
        value: value.to_owned(),
        expected: "a comma-separated list of ws, http and do-rpc",
    };
    let mut transports = Transports {
        ws: false,
        http: false,
        do_rpc: false,
    };
    for item in value.split([',', ' ']).map(str::trim).filter(|s| !s.is_empty()) {
        match item {
            "ws" => transports.ws = true,
            "http" => transports.http = true,
            "do-rpc" => transports.do_rpc = true,
            _ => return Err(error()),
        }
    }
    if !transports.ws && !transports.http && !transports.do_rpc {
        return Err(error());
    }
    Ok(transports)
}

fn parse_response_headers(value: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let error = || ConfigError {
        name: vars::HTTP_RESPONSE_HEADERS,
        value: value.to_owned(),
        expected: "a JSON object of header names to string values",
    };
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(value).map_err(|_| error())?;
    map.into_iter()
        .map(|(name, v)| match v {
            serde_json::Value::String(v) if is_header_name(&name) && !v.contains(['\r', '\n']) => Ok((name, v)),
            _ => Err(error()),
        })
        .collect()
}

fn parse_header_list(value: &str) -> Result<Vec<String>, ConfigError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|name| {
            if is_header_name(name) {
                Ok(name.to_ascii_lowercase())
            } else {
                Err(ConfigError {
                    name: vars::FORWARD_HEADERS,
                    value: value.to_owned(),
                    expected: "a comma-separated list of header names",
                })
            }
        })
        .collect()
}

/// A key var that cannot be used. The value is never quoted back: `JWT_SECRET` is a secret, and
/// a `JWT_JWKS` refused for holding private keys would leak them into the error.
fn key_error(name: &'static str, value: &str, e: KeyError) -> ConfigError {
    ConfigError {
        name,
        value: format!("<{} bytes, not shown>", value.len()),
        expected: e.expected(),
    }
}

/// The signed-token verifier, if `JWT_SECRET` or `JWT_JWKS` is set.
fn parse_jwt(get: &impl Fn(&str) -> Option<String>) -> Result<Option<Verifier>, ConfigError> {
    let secret = get(vars::JWT_SECRET).filter(|v| !v.is_empty());
    let jwks = get(vars::JWT_JWKS).filter(|v| !v.trim().is_empty());
    if secret.is_none() && jwks.is_none() {
        return Ok(None);
    }
    let mut verifier = Verifier::new();
    if let Some(secret) = secret {
        verifier = verifier
            .with_hs256_secret(secret.as_bytes())
            .map_err(|e| key_error(vars::JWT_SECRET, &secret, e))?;
    }
    if let Some(jwks) = jwks {
        verifier = verifier
            .with_jwks(&jwks)
            .map_err(|e| key_error(vars::JWT_JWKS, &jwks, e))?;
    }
    if let Some(audience) = get(vars::JWT_AUDIENCE).filter(|v| !v.is_empty()) {
        verifier = verifier.with_audience(audience);
    }
    if let Some(issuer) = get(vars::JWT_ISSUER).filter(|v| !v.is_empty()) {
        verifier = verifier.with_issuer(issuer);
    }
    Ok(Some(verifier))
}

impl Config {
    /// Builds the configuration from a var lookup (`None` for unset vars).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        let allow_anonymous = match get(vars::ALLOW_ANONYMOUS) {
            Some(v) => parse_bool(vars::ALLOW_ANONYMOUS, &v)?,
            None => false,
        };
        let shared = get(vars::AUTH_TOKEN).filter(|t| !t.is_empty());
        // Configured credentials of any kind win over open access.
        config.auth = match (parse_jwt(&get)?, shared) {
            (Some(jwt), shared) => Auth::Signed { jwt, shared },
            (None, Some(token)) => Auth::Token(token),
            (None, None) if allow_anonymous => Auth::Open,
            (None, None) => Auth::Unconfigured,
        };
        // An empty secret would let an empty bearer token in; it counts as unset.
        config.admin_token = get(vars::ADMIN_TOKEN).filter(|t| !t.is_empty()).map(AdminToken);
        if let Some(v) = get(vars::CORS) {
            config.cors = parse_bool(vars::CORS, &v)?;
        }
        if let Some(v) = get(vars::SYNC_BACKEND_BINDING) {
            if !v.is_empty() {
                config.binding = v;
            }
        }
        if let Some(v) = get(vars::MAX_MESSAGE_BYTES) {
            config.max_message_bytes = parse_size(vars::MAX_MESSAGE_BYTES, &v)?;
        }
        if let Some(v) = get(vars::MAX_STORE_ID_BYTES) {
            config.max_store_id_bytes = parse_size(vars::MAX_STORE_ID_BYTES, &v)?;
        }
        if let Some(v) = get(vars::ENABLED_TRANSPORTS) {
            config.transports = parse_transports(&v)?;
        }
        if let Some(v) = get(vars::HTTP_RESPONSE_HEADERS) {
            config.http_response_headers = parse_response_headers(&v)?;
        }
        if let Some(v) = get(vars::FORWARD_HEADERS) {
            config.forward_headers = parse_header_list(&v)?;
        }
        if let Some(endpoint) = get(vars::OTEL_EXPORTER_OTLP_ENDPOINT).filter(|v| !v.is_empty()) {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(ConfigError {
                    name: vars::OTEL_EXPORTER_OTLP_ENDPOINT,
                    value: endpoint,
                    expected: "an http:// or https:// URL",
                });
            }
            config.otel = Some(OtelConfig {
                endpoint: endpoint.trim_end_matches('/').to_owned(),
                service_name: get(vars::OTEL_SERVICE_NAME)
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| "livestore-sync".to_owned()),
            });
        }
        let d1_binding = get(vars::D1_BINDING)
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "DB".to_owned());
        config.storage = match get(vars::STORAGE).as_deref().map(str::trim) {
            None | Some("") | Some("do-sqlite") => StorageConfig::DoSqlite,
            Some("d1") => StorageConfig::D1 { binding: d1_binding },
            Some(other) => {
                return Err(ConfigError {
                    name: vars::STORAGE,
                    value: other.to_owned(),
                    expected: "do-sqlite or d1",
                })
            }
        };
        if let Some(v) = get(vars::TEST_FAULTS) {
            config.test_faults = parse_bool(vars::TEST_FAULTS, &v)?;
        }
        if let Some(v) = get(vars::MAX_PUSH_EVENTS) {
            config.max_push_events = parse_size(vars::MAX_PUSH_EVENTS, &v)?;
        }
        if let Some(v) = get(vars::MAX_SOCKETS_PER_STORE) {
            config.max_sockets_per_store = parse_size(vars::MAX_SOCKETS_PER_STORE, &v)?;
        }
        if let Some(v) = get(vars::MAX_PUSHES_PER_SECOND) {
            config.max_pushes_per_second = match v.trim().parse::<u32>() {
                Ok(0) => None,
                Ok(n) => Some(n),
                Err(_) => {
                    return Err(ConfigError {
                        name: vars::MAX_PUSHES_PER_SECOND,
                        value: v,
                        expected: "a non-negative integer (0 for no limit)",
                    })
                }
            };
        }
        // Unlike the other settings, a typo here falls back to the default instead of stopping
        // the worker: logging must not take sync down. `cached` warns about it once.
        if let Some(v) = get(vars::LOG_LEVEL) {
            config.log_level = LogLevel::parse(&v).unwrap_or_default();
        }
        Ok(config)
    }

    /// The configuration of this isolate's environment, read on first use. An isolate's vars and
    /// secrets do not change while it runs (a new deployment or secret starts new isolates), so
    /// requests need not read them again.
    #[cfg(target_arch = "wasm32")]
    pub fn cached(env: &worker::Env) -> Result<std::rc::Rc<Config>, ConfigError> {
        thread_local! {
            static CONFIG: std::cell::RefCell<Option<Result<std::rc::Rc<Config>, ConfigError>>> =
                const { std::cell::RefCell::new(None) };
        }
        CONFIG.with(|cell| {
            cell.borrow_mut()
                .get_or_insert_with(|| {
                    let config = Config::from_env(env).map(std::rc::Rc::new);
                    if let Ok(config) = &config {
                        warn_unrecognised_log_level(env, config.log_level);
                    }
                    config
                })
                .clone()
        })
    }

    /// Reads the configuration from the Worker's environment.
    #[cfg(target_arch = "wasm32")]
    pub fn from_env(env: &worker::Env) -> Result<Config, ConfigError> {
        Config::from_lookup(|name| env_var(env, name))
    }
}

/// One line, once per isolate, when `LOG_LEVEL` is set to something it cannot mean.
#[cfg(target_arch = "wasm32")]
fn warn_unrecognised_log_level(env: &worker::Env, level: LogLevel) {
    let Some(value) = env_var(env, vars::LOG_LEVEL) else {
        return;
    };
    if LogLevel::parse(&value).is_some() {
        return;
    }
    if let Some(line) = level.line(crate::log::Level::Warn, "config") {
        crate::log::emit(
            line.str("var", vars::LOG_LEVEL)
                .str("value", &value)
                .str("message", "not one of off, error, warn, info, debug; using info"),
        );
    }
}

/// A var's value as text (`None` when unset).
#[cfg(target_arch = "wasm32")]
fn env_var(env: &worker::Env, name: &str) -> Option<String> {
    use wasm_bindgen::JsValue;
    let env: &JsValue = env.as_ref();
    let value = js_sys::Reflect::get(env, &JsValue::from_str(name)).ok()?;
    if let Some(s) = value.as_string() {
        Some(s)
    } else if let Some(b) = value.as_bool() {
        // `[vars]` may hold TOML booleans, numbers and tables; wrangler passes them as JSON
        // values.
        Some(b.to_string())
    } else if let Some(n) = value.as_f64() {
        Some(n.to_string())
    } else if value.is_object() {
        js_sys::JSON::stringify(&value).ok().and_then(|s| s.as_string())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_refuse_to_run_open() {
        let c = config(&[]).unwrap();
        assert_eq!(c.auth, Auth::Unconfigured);
        assert!(c.cors);
        assert_eq!(c.binding, "SYNC_BACKEND_DO");
        assert_eq!(config(&[("AUTH_TOKEN", "")]).unwrap().auth, Auth::Unconfigured);
    }

    #[test]
    fn admin_token_is_off_by_default_and_never_printed() {
        assert_eq!(config(&[]).unwrap().admin_token, None);
        assert_eq!(config(&[("ADMIN_TOKEN", "")]).unwrap().admin_token, None);
        let c = config(&[("ADMIN_TOKEN", "admin-s3cr3t"), ("AUTH_TOKEN", "sync-s3cr3t")]).unwrap();
        assert_eq!(c.admin_token, Some(AdminToken("admin-s3cr3t".into())));
        let printed = format!("{c:?}");
        assert!(!printed.contains("admin-s3cr3t") && !printed.contains("sync-s3cr3t"));
    }

    #[test]
    fn token_and_open_access() {
        assert_eq!(config(&[("AUTH_TOKEN", "s3")]).unwrap().auth, Auth::Token("s3".into()));
        assert_eq!(config(&[("ALLOW_ANONYMOUS", "true")]).unwrap().auth, Auth::Open);
        // A configured token always wins over open access.
        assert_eq!(
            config(&[("ALLOW_ANONYMOUS", "true"), ("AUTH_TOKEN", "s3")])
                .unwrap()
                .auth,
            Auth::Token("s3".into())
        );
        assert!(!format!("{:?}", config(&[("AUTH_TOKEN", "s3cret")]).unwrap()).contains("s3cret"));
    }

    const JWKS: &str = include_str!("../tests/fixtures/jwt/jwks.json");
    const SECRET: &str = "config-test-secret-0123456789abcdef";

    #[test]
    fn signed_tokens() {
        let signed = |pairs: &[(&str, &str)]| match config(pairs).unwrap().auth {
            Auth::Signed { jwt, shared } => (jwt, shared),
            other => panic!("{other:?}"),
        };
        let (jwt, shared) = signed(&[("JWT_SECRET", SECRET)]);
        assert!(jwt.is_configured());
        assert_eq!(shared, None);
        let (jwt, _) = signed(&[("JWT_JWKS", JWKS)]);
        assert!(jwt.is_configured());
        let (_, shared) = signed(&[("JWT_JWKS", JWKS), ("AUTH_TOKEN", "s3")]);
        assert_eq!(shared.as_deref(), Some("s3"));
        // Signed tokens configured: anonymous access stays off, as with a shared token.
        signed(&[("JWT_SECRET", SECRET), ("ALLOW_ANONYMOUS", "true")]);
        // Empty vars are unset; audience and issuer alone configure nothing.
        assert_eq!(
            config(&[("JWT_SECRET", ""), ("JWT_JWKS", " "), ("JWT_AUDIENCE", "a")])
                .unwrap()
                .auth,
            Auth::Unconfigured
        );
        let (with_aud, _) = signed(&[("JWT_SECRET", SECRET), ("JWT_AUDIENCE", "a"), ("JWT_ISSUER", "i")]);
        assert_ne!(with_aud, signed(&[("JWT_SECRET", SECRET)]).0);

        let debug = format!(
            "{:?}",
            config(&[("JWT_SECRET", SECRET), ("AUTH_TOKEN", "shared-s3cret")]).unwrap()
        );
        assert!(!debug.contains(SECRET) && !debug.contains("shared-s3cret"), "{debug}");
    }

    #[test]
    fn unusable_keys_are_errors_that_quote_nothing() {
        let short = "too-short-secret";
        let e = config(&[("JWT_SECRET", short)]).unwrap_err();
        assert_eq!(e.name, "JWT_SECRET");
        assert!(!e.to_string().contains(short), "{e}");
        let private = include_str!("../tests/fixtures/jwt/ec-private.jwk.json");
        let jwks = format!(r#"{{"keys":[{private}]}}"#);
        let e = config(&[("JWT_JWKS", &jwks)]).unwrap_err();
        assert_eq!(e.name, "JWT_JWKS");
        let d: serde_json::Value = serde_json::from_str(private).unwrap();
        assert!(!e.to_string().contains(d["d"].as_str().unwrap()), "{e}");
        assert!(config(&[("JWT_JWKS", "{not json")]).is_err());
        assert!(config(&[("JWT_SECRET", SECRET), ("JWT_JWKS", r#"{"keys":[]}"#)]).is_err());
    }

    #[test]
    fn transports_headers_and_tracing() {
        let c = config(&[]).unwrap();
        assert_eq!(
            c.transports,
            Transports {
                ws: true,
                http: true,
                do_rpc: true
            }
        );
        assert_eq!(c.otel, None);
        assert_eq!(
            config(&[("ENABLED_TRANSPORTS", "ws")]).unwrap().transports,
            Transports {
                ws: true,
                http: false,
                do_rpc: false
            }
        );
        assert_eq!(
            config(&[("ENABLED_TRANSPORTS", " http , ws ")]).unwrap().transports,
            Transports {
                ws: true,
                http: true,
                do_rpc: false
            }
        );
        assert_eq!(
            config(&[("ENABLED_TRANSPORTS", "do-rpc")]).unwrap().transports,
            Transports {
                ws: false,
                http: false,
                do_rpc: true
            }
        );
        assert!(config(&[("ENABLED_TRANSPORTS", "ws,smoke-signals")]).is_err());
        assert!(config(&[("ENABLED_TRANSPORTS", "")]).is_err());

        let c = config(&[(
            "HTTP_RESPONSE_HEADERS",
            r#"{"X-Custom-Header":"test-value","x-livestore-version":"1.0.0"}"#,
        )])
        .unwrap();
        assert_eq!(
            c.http_response_headers,
            [
                ("X-Custom-Header".to_owned(), "test-value".to_owned()),
                ("x-livestore-version".to_owned(), "1.0.0".to_owned())
            ]
        );
        assert!(config(&[("HTTP_RESPONSE_HEADERS", r#"{"bad name":"x"}"#)]).is_err());
        assert!(config(&[("HTTP_RESPONSE_HEADERS", r#"{"x":"a\r\nb"}"#)]).is_err());
        assert!(config(&[("HTTP_RESPONSE_HEADERS", r#"{"x":1}"#)]).is_err());
        assert!(config(&[("HTTP_RESPONSE_HEADERS", "[]")]).is_err());

        assert_eq!(
            config(&[("FORWARD_HEADERS", "Cookie, X-User")])
                .unwrap()
                .forward_headers,
            ["cookie", "x-user"]
        );
        assert!(config(&[("FORWARD_HEADERS", "a b")]).is_err());

        let c = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/")]).unwrap();
        assert_eq!(
            c.otel,
            Some(OtelConfig {
                endpoint: "http://127.0.0.1:4318".into(),
                service_name: "livestore-sync".into()
            })
        );
        assert!(config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318")]).is_err());
    }

    #[test]
    fn storage_engines() {
        assert_eq!(config(&[]).unwrap().storage, StorageConfig::DoSqlite);
        assert_eq!(
            config(&[("STORAGE", "do-sqlite")]).unwrap().storage,
            StorageConfig::DoSqlite
        );
        assert_eq!(
            config(&[("STORAGE", "d1")]).unwrap().storage,
            StorageConfig::D1 { binding: "DB".into() }
        );
        assert_eq!(
            config(&[("STORAGE", "d1"), ("D1_BINDING", "EVENTS")]).unwrap().storage,
            StorageConfig::D1 {
                binding: "EVENTS".into()
            }
        );
        assert!(config(&[("STORAGE", "postgres")]).is_err());
        assert!(!config(&[]).unwrap().test_faults);
    }

    #[test]
    fn invalid_values_are_errors() {
        assert!(config(&[("CORS", "maybe")]).is_err());
        assert!(config(&[("MAX_MESSAGE_BYTES", "-1")]).is_err());
        assert!(config(&[("MAX_MESSAGE_BYTES", "0")]).is_err());
        assert!(!config(&[("CORS", "false")]).unwrap().cors);
        assert_eq!(config(&[("MAX_STORE_ID_BYTES", "64")]).unwrap().max_store_id_bytes, 64);
    }

    #[test]
    fn log_level() {
        use crate::log::Level;
        assert_eq!(config(&[]).unwrap().log_level, LogLevel::INFO);
        assert_eq!(config(&[("LOG_LEVEL", "off")]).unwrap().log_level, LogLevel::OFF);
        let warn = config(&[("LOG_LEVEL", "Warn")]).unwrap().log_level;
        assert!(warn.enabled(Level::Warn) && !warn.enabled(Level::Info));
        assert!(config(&[("LOG_LEVEL", "debug")])
            .unwrap()
            .log_level
            .enabled(Level::Debug));
        // A typo is no reason to stop syncing: the default, not an error.
        assert_eq!(config(&[("LOG_LEVEL", "verbose")]).unwrap().log_level, LogLevel::INFO);
    }

    #[test]
    fn limits() {
        let defaults = config(&[]).unwrap();
        assert_eq!(defaults.max_push_events, 100);
        assert_eq!(defaults.max_sockets_per_store, 10_000);
        assert_eq!(defaults.max_pushes_per_second, None);
        let set = config(&[
            ("MAX_PUSH_EVENTS", "500"),
            ("MAX_SOCKETS_PER_STORE", "3"),
            ("MAX_PUSHES_PER_SECOND", "20"),
        ])
        .unwrap();
        assert_eq!(
            (
                set.max_push_events,
                set.max_sockets_per_store,
                set.max_pushes_per_second
            ),
            (500, 3, Some(20))
        );
        assert_eq!(
            config(&[("MAX_PUSHES_PER_SECOND", "0")]).unwrap().max_pushes_per_second,
            None
        );
        for (name, value) in [
            ("MAX_PUSH_EVENTS", "0"),
            ("MAX_SOCKETS_PER_STORE", "many"),
            ("MAX_PUSHES_PER_SECOND", "-5"),
            ("MAX_PUSHES_PER_SECOND", "1.5"),
        ] {
            let error = config(&[(name, value)]).unwrap_err();
            assert_eq!(error.name, name);
        }
    }
}
