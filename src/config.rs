//! Worker configuration: every setting comes from a Worker var or secret (`[vars]` in
//! `wrangler.toml`, `.dev.vars` locally, `wrangler secret put` in production) and is parsed
//! once into a [`Config`].

/// How sync requests are authenticated.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// Clients must send this token as `payload.authToken`.
    Token(String),
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
            Auth::Open => f.write_str("Open"),
            Auth::Unconfigured => f.write_str("Unconfigured"),
        }
    }
}

/// Names of the vars and secrets the worker reads.
pub mod vars {
    /// Shared secret clients send as `payload.authToken`.
    pub const AUTH_TOKEN: &str = "AUTH_TOKEN";
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

impl Config {
    /// Builds the configuration from a var lookup (`None` for unset vars).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        let allow_anonymous = match get(vars::ALLOW_ANONYMOUS) {
            Some(v) => parse_bool(vars::ALLOW_ANONYMOUS, &v)?,
            None => false,
        };
        config.auth = match get(vars::AUTH_TOKEN) {
            Some(token) if !token.is_empty() => Auth::Token(token),
            _ if allow_anonymous => Auth::Open,
            _ => Auth::Unconfigured,
        };
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
        Ok(config)
    }

    /// Reads the configuration from the Worker's environment.
    #[cfg(target_arch = "wasm32")]
    pub fn from_env(env: &worker::Env) -> Result<Config, ConfigError> {
        use wasm_bindgen::JsValue;
        let env: &JsValue = env.as_ref();
        Config::from_lookup(|name| {
            let value = js_sys::Reflect::get(env, &JsValue::from_str(name)).ok()?;
            if let Some(s) = value.as_string() {
                Some(s)
            } else if let Some(b) = value.as_bool() {
                // `[vars]` may hold TOML booleans and numbers; wrangler passes them as JSON values.
                Some(b.to_string())
            } else {
                value.as_f64().map(|n| n.to_string())
            }
        })
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

    #[test]
    fn invalid_values_are_errors() {
        assert!(config(&[("CORS", "maybe")]).is_err());
        assert!(config(&[("MAX_MESSAGE_BYTES", "-1")]).is_err());
        assert!(config(&[("MAX_MESSAGE_BYTES", "0")]).is_err());
        assert!(!config(&[("CORS", "false")]).unwrap().cors);
        assert_eq!(config(&[("MAX_STORE_ID_BYTES", "64")]).unwrap().max_store_id_bytes, 64);
    }
}
