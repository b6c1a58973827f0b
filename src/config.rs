//! Worker configuration: every setting comes from a Worker var or secret (`[vars]` in
//! `wrangler.toml`, `.dev.vars` locally, `wrangler secret put` in production) and is parsed
//! once into a [`Config`].

use crate::jwt::{KeyError, Verifier};
use crate::log::LogLevel;
use crate::protocol::Transport;

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

/// A secret setting (`ADMIN_TOKEN`, `READ_TOKEN`). A newtype so `{:?}` of a [`Config`] can
/// never print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    // Same reason as for `Auth`: a secret must never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The operator's admin API secret (`ADMIN_TOKEN`).
pub type AdminToken = Secret;

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
    /// PostgreSQL, in sync-electric's table layout; the database holds heads and backendIds
    /// too, so several sync nodes can serve one store.
    Postgres(PostgresSource),
}

/// How the Postgres engine reaches its database.
#[derive(Clone, PartialEq, Eq)]
pub enum PostgresSource {
    /// A connection string (`POSTGRES_URL`, a secret): workerd alone, or any direct connection.
    Url(String),
    /// A Hyperdrive binding, by name (`HYPERDRIVE_BINDING`): on Cloudflare.
    Hyperdrive(String),
}

impl std::fmt::Debug for PostgresSource {
    // A connection string carries the database password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PostgresSource::Url(_) => f.write_str("Url(<redacted>)"),
            PostgresSource::Hyperdrive(binding) => f.debug_tuple("Hyperdrive").field(binding).finish(),
        }
    }
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
    /// `electric`: the `/electric` endpoint for `@livestore/sync-electric` clients.
    pub electric: bool,
}

impl Transports {
    /// Turns a transport on.
    fn enable(&mut self, transport: Transport) {
        match transport {
            Transport::Ws => self.ws = true,
            Transport::Http => self.http = true,
            Transport::DoRpc => self.do_rpc = true,
            Transport::Electric => self.electric = true,
        }
    }

    /// Whether `transport` is enabled.
    pub fn allows(&self, transport: Transport) -> bool {
        match transport {
            Transport::Ws => self.ws,
            Transport::Http => self.http,
            Transport::DoRpc => self.do_rpc,
            Transport::Electric => self.electric,
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
    /// A shared token that admits clients to pull but not push (`READ_TOKEN`).
    pub read_token: Option<Secret>,
    /// What clients may push: event names, args size, per-store quotas.
    pub rules: crate::rules::EventRules,
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
    /// How long the sync-electric endpoint holds a live pull with nothing new, in ms.
    pub electric_hold_ms: u64,
    /// Where every stored event is delivered once more (the outbox); empty when none is set.
    pub sinks: Vec<crate::outbox::SinkConfig>,
    /// Keep the store directory ([`crate::directory`]) current.
    pub store_directory: bool,
    /// Delete stores idle this long (ms); `None` keeps them.
    pub idle_expiry_ms: Option<i64>,
    /// Backups to R2; `None` when `BACKUP_BUCKET` is not set.
    pub backup: Option<BackupConfig>,
}

/// Where and how often stores are backed up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupConfig {
    /// The R2 bucket binding (`BACKUP_BUCKET`).
    pub bucket: String,
    /// The longest a stored event waits for its backup (`BACKUP_INTERVAL`), in ms.
    pub interval_ms: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            auth: Auth::Unconfigured,
            read_token: None,
            rules: crate::rules::EventRules::default(),
            cors: true,
            binding: "SYNC_BACKEND_DO".to_owned(),
            // The reference client never sends more than 900 KB of payload per message.
            max_message_bytes: 1 << 20,
            max_store_id_bytes: 512,
            transports: Transports {
                ws: true,
                http: true,
                do_rpc: true,
                electric: true,
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
            electric_hold_ms: 20_000,
            sinks: Vec::new(),
            store_directory: true,
            idle_expiry_ms: None,
            backup: None,
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

/// A duration: a whole number and a unit, `s`, `m`, `h` or `d` (at least a second, at most ten
/// years); in milliseconds.
fn parse_duration_ms(name: &'static str, value: &str) -> Result<i64, ConfigError> {
    let v = value.trim();
    let unit_ms = match v.chars().last() {
        Some('s') => 1_000,
        Some('m') => 60_000,
        Some('h') => 3_600_000,
        Some('d') => 86_400_000,
        _ => 0,
    };
    let n = v.get(..v.len().saturating_sub(1)).and_then(|n| n.parse::<i64>().ok());
    match n.map(|n| n.saturating_mul(unit_ms)) {
        Some(ms) if unit_ms > 0 && (1_000..=3_650 * 86_400_000).contains(&ms) => Ok(ms),
        _ => Err(ConfigError {
            name,
            value: value.to_owned(),
            expected: "a duration such as 90d, 12h, 30m or 45s (1 s to 3650 d)",
        }),
    }
}

/// A limit that `0` turns off.
fn parse_limit(name: &'static str, value: &str) -> Result<Option<u64>, ConfigError> {
    match value.trim().parse::<u64>() {
        Ok(0) => Ok(None),
        Ok(n) if n <= 1 << 50 => Ok(Some(n)),
        _ => Err(ConfigError {
            name,
            value: value.to_owned(),
            expected: "a whole number (0 for no limit)",
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

fn parse_transports(name: &'static str, value: &str) -> Result<Transports, ConfigError> {
    let error = || ConfigError {
        name,
        value: value.to_owned(),
        expected: "a comma-separated list of ws, http, do-rpc and electric",
    };
    let mut transports = Transports {
        ws: false,
        http: false,
        do_rpc: false,
        electric: false,
    };
    for item in value.split([',', ' ']).map(str::trim).filter(|s| !s.is_empty()) {
        match Transport::ALL.into_iter().find(|t| t.as_str() == item) {
            Some(transport) => transports.enable(transport),
            None => return Err(error()),
        }
    }
    if !Transport::ALL.into_iter().any(|t| transports.allows(t)) {
        return Err(error());
    }
    Ok(transports)
}

fn parse_response_headers(name: &'static str, value: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let error = || ConfigError {
        name,
        value: value.to_owned(),
        expected: "a JSON object of header names to string values",
    };
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(value).map_err(|_| error())?;
    map.into_iter()
        .map(|(header, v)| match v {
            serde_json::Value::String(v) if is_header_name(&header) && !v.contains(['\r', '\n']) => Ok((header, v)),
            _ => Err(error()),
        })
        .collect()
}

fn parse_header_list(name: &'static str, value: &str) -> Result<Vec<String>, ConfigError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|header| {
            if is_header_name(header) {
                Ok(header.to_ascii_lowercase())
            } else {
                Err(ConfigError {
                    name,
                    value: value.to_owned(),
                    expected: "a comma-separated list of header names",
                })
            }
        })
        .collect()
}

fn parse_seconds(name: &'static str, value: &str) -> Result<i64, ConfigError> {
    match value.trim().parse::<i64>() {
        Ok(n) if n >= 0 => Ok(n),
        _ => Err(ConfigError {
            name,
            value: value.to_owned(),
            expected: "a number of seconds (0 for no cap)",
        }),
    }
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

/// A value with something in it, or `None` for an empty one (which counts as unset).
fn non_empty(value: &str) -> Option<String> {
    (!value.trim().is_empty()).then(|| value.to_owned())
}

/// The configuration while its vars are read: settings that combine (the auth vars, the storage
/// engine and its binding) are kept as given until every var is in.
#[derive(Default)]
pub struct Draft {
    config: Config,
    auth_token: Option<String>,
    allow_anonymous: bool,
    jwt_secret: Option<String>,
    jwt_jwks: Option<String>,
    jwt_audience: Option<String>,
    jwt_issuer: Option<String>,
    jwt_max_lifetime: Option<i64>,
    otel_service_name: Option<String>,
    engine: Engine,
    d1_binding: Option<String>,
    hyperdrive_binding: Option<String>,
    postgres_url: Option<String>,
    webhook: SinkDraft,
    queue: SinkDraft,
    backup_bucket: Option<String>,
    backup_interval_ms: Option<i64>,
}

/// A sink's settings while the vars are read.
#[derive(Default)]
struct SinkDraft {
    /// `WEBHOOK_URL` or `QUEUE_BINDING`: the sink exists when it is set.
    target: Option<String>,
    secret: Option<String>,
    events: Option<crate::rules::EventFilter>,
    batch_size: Option<usize>,
    max_attempts: Option<u32>,
    retry_base_ms: Option<u64>,
    retry_max_ms: Option<u64>,
    timeout_ms: Option<u64>,
}

impl SinkDraft {
    /// The sink, if configured.
    fn finish(
        self,
        name: &'static str,
        target: impl FnOnce(String, Option<String>) -> crate::outbox::Target,
    ) -> Option<crate::outbox::SinkConfig> {
        let retry_base_ms = self.retry_base_ms.unwrap_or(1_000);
        Some(crate::outbox::SinkConfig {
            name,
            target: target(self.target?, self.secret),
            events: self.events.unwrap_or_default(),
            batch_size: self.batch_size.unwrap_or(100),
            max_attempts: self.max_attempts.unwrap_or(10),
            retry_base_ms,
            retry_max_ms: self.retry_max_ms.unwrap_or(300_000).max(retry_base_ms),
            timeout_ms: self.timeout_ms.unwrap_or(10_000),
        })
    }
}

/// A whole number from `min` to `max`.
fn parse_in_range(
    name: &'static str,
    value: &str,
    min: u64,
    max: u64,
    expected: &'static str,
) -> Result<u64, ConfigError> {
    match value.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(ConfigError {
            name,
            value: value.to_owned(),
            expected,
        }),
    }
}

/// An event-name pattern list (`ALLOWED_EVENTS`, `WEBHOOK_EVENTS`, `QUEUE_EVENTS`).
fn parse_events(name: &'static str, value: &str) -> Result<crate::rules::EventFilter, ConfigError> {
    crate::rules::EventFilter::parse(value).ok_or_else(|| ConfigError {
        name,
        value: value.to_owned(),
        expected: "comma-separated event-name patterns (`*` for any characters, `!` before one to exclude)",
    })
}

const ATTEMPTS: &str = "a whole number from 1 to 1000";
const BATCH: &str = "a whole number from 1 to 1000";
const MILLIS: &str = "a whole number of milliseconds from 1 to 86400000";
const DAY_MS: u64 = 86_400_000;

/// The engine `STORAGE` names, before its binding is known.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Engine {
    #[default]
    DoSqlite,
    D1,
    Postgres,
}

impl Draft {
    /// The finished configuration.
    fn finish(self) -> Result<Config, ConfigError> {
        let mut config = self.config;
        let jwt = match (&self.jwt_secret, &self.jwt_jwks) {
            (None, None) => None,
            (secret, jwks) => {
                let mut verifier = Verifier::new();
                if let Some(secret) = secret {
                    verifier = verifier
                        .with_hs256_secret(secret.as_bytes())
                        .map_err(|e| key_error("JWT_SECRET", secret, e))?;
                }
                if let Some(jwks) = jwks {
                    verifier = verifier.with_jwks(jwks).map_err(|e| key_error("JWT_JWKS", jwks, e))?;
                }
                if let Some(audience) = self.jwt_audience {
                    verifier = verifier.with_audience(audience);
                }
                if let Some(issuer) = self.jwt_issuer {
                    verifier = verifier.with_issuer(issuer);
                }
                let lifetime = self.jwt_max_lifetime.unwrap_or(DEFAULT_JWT_MAX_LIFETIME);
                Some(verifier.with_max_lifetime((lifetime > 0).then_some(lifetime)))
            }
        };
        // Configured credentials of any kind win over open access.
        config.auth = match (jwt, self.auth_token) {
            (Some(jwt), shared) => Auth::Signed { jwt, shared },
            (None, Some(token)) => Auth::Token(token),
            (None, None) if self.allow_anonymous => Auth::Open,
            (None, None) => Auth::Unconfigured,
        };
        if let (Some(otel), Some(name)) = (config.otel.as_mut(), self.otel_service_name) {
            otel.service_name = name;
        }
        config.storage = match self.engine {
            Engine::DoSqlite => StorageConfig::DoSqlite,
            Engine::D1 => StorageConfig::D1 {
                binding: self.d1_binding.unwrap_or_else(|| "DB".to_owned()),
            },
            Engine::Postgres => StorageConfig::Postgres(match self.postgres_url {
                Some(url) => PostgresSource::Url(url),
                None => PostgresSource::Hyperdrive(self.hyperdrive_binding.unwrap_or_else(|| "HYPERDRIVE".to_owned())),
            }),
        };
        if self.webhook.target.is_some() && self.webhook.secret.is_none() {
            return Err(ConfigError {
                name: "WEBHOOK_SECRET",
                value: String::new(),
                expected: "a signing secret whenever WEBHOOK_URL is set (receivers must be able to tell our requests from anyone's)",
            });
        }
        let webhook = self
            .webhook
            .finish("webhook", |url, secret| crate::outbox::Target::Webhook {
                url,
                secret: secret.unwrap_or_default(),
            });
        let queue = self
            .queue
            .finish("queue", |binding, _| crate::outbox::Target::Queue { binding });
        config.sinks = webhook.into_iter().chain(queue).collect();
        config.backup = match (self.backup_bucket, self.backup_interval_ms) {
            (Some(bucket), interval) => Some(BackupConfig {
                bucket,
                interval_ms: interval.unwrap_or(3_600_000),
            }),
            (None, Some(_)) => {
                return Err(ConfigError {
                    name: "BACKUP_INTERVAL",
                    value: String::new(),
                    expected: "BACKUP_BUCKET set too: the interval is of backups to that bucket",
                })
            }
            (None, None) => None,
        };
        if config.idle_expiry_ms.is_some() && !config.store_directory {
            return Err(ConfigError {
                name: "EXPIRE_IDLE_STORES_AFTER",
                value: String::new(),
                expected: "STORE_DIRECTORY left on: a store's last use is kept in the directory",
            });
        }
        Ok(config)
    }
}

/// How long a signed token may still be valid when it is presented, unless `JWT_MAX_LIFETIME`
/// says otherwise: 7 days.
pub const DEFAULT_JWT_MAX_LIFETIME: i64 = 7 * 24 * 3600;

/// `service.name` of spans unless `OTEL_SERVICE_NAME` says otherwise.
const DEFAULT_SERVICE_NAME: &str = "livestore-sync";

/// One setting: a Worker var or secret, with what the docs say of it and how it is read. The
/// configuration table in README.md is this list (a test checks it), and so is the set of
/// bindings `selfhost/workerd.capnp` passes in (another test).
pub struct Setting {
    /// The var's name.
    pub name: &'static str,
    /// Whether it is a secret (`wrangler secret put`), never a plain var.
    pub secret: bool,
    /// The default, as the docs show it.
    pub default: &'static str,
    /// What it does, as the docs say it (Markdown).
    pub description: &'static str,
    /// Whether it applies when self-hosted on workerd alone (D1 does not exist there).
    pub self_hosted: bool,
    /// Reads a set value into the draft; an unusable value is an error naming the setting.
    parse: fn(&mut Draft, &'static str, &str) -> Result<(), ConfigError>,
}

impl Setting {
    /// The setting's row of the configuration table in README.md.
    pub fn table_row(&self) -> String {
        let secret = if self.secret { " (secret)" } else { "" };
        format!("| `{}`{secret} | {} | {} |", self.name, self.default, self.description)
    }
}

/// Every setting, in the order the docs list them.
pub const SETTINGS: &[Setting] = &[
    Setting {
        name: "AUTH_TOKEN",
        secret: true,
        default: "none",
        description: "The token clients must send as `syncPayload.authToken`. A wrong or missing token is refused with `400` before the upgrade, with the reference's error text.",
        self_hosted: true,
        parse: |d, _, v| {
            d.auth_token = (!v.is_empty()).then(|| v.to_owned());
            Ok(())
        },
    },
    Setting {
        name: "READ_TOKEN",
        secret: true,
        default: "none",
        description: "A token for clients that may pull but not push (viewers, dashboards), sent as `syncPayload.authToken` like `AUTH_TOKEN`. Their pushes are refused with a typed `ReadOnlyError` and store nothing. Works beside `AUTH_TOKEN` and signed tokens (whose `access: \"read\"` claim does the same), or alone. See [docs/governance.md](docs/governance.md).",
        self_hosted: true,
        parse: |d, _, v| {
            d.config.read_token = (!v.is_empty()).then(|| Secret(v.to_owned()));
            Ok(())
        },
    },
    Setting {
        name: "ALLOW_ANONYMOUS",
        secret: false,
        default: "`false`",
        description: "With no `AUTH_TOKEN`, `JWT_SECRET` or `JWT_JWKS`, sync requests are refused (`500`, with a message saying how to set a token). Set this to `true` to let anyone open any store instead. A configured token or key always wins.",
        self_hosted: true,
        parse: |d, name, v| {
            d.allow_anonymous = parse_bool(name, v)?;
            Ok(())
        },
    },
    Setting {
        name: "JWT_SECRET",
        secret: true,
        default: "none",
        description: "Accept `HS256` [scoped tokens](#scoped-tokens) signed with this secret (its UTF-8 bytes as given, at least 32).",
        self_hosted: true,
        parse: |d, _, v| {
            d.jwt_secret = (!v.is_empty()).then(|| v.to_owned());
            Ok(())
        },
    },
    Setting {
        name: "JWT_JWKS",
        secret: false,
        default: "none",
        description: "Accept `RS256` and `ES256` (P-256) [scoped tokens](#scoped-tokens) signed by a key of this JWK Set, given as its JSON text (`{\"keys\":[…]}`; a TOML table works too). Public keys only: a key with private members is refused.",
        self_hosted: true,
        parse: |d, _, v| {
            d.jwt_jwks = non_empty(v);
            Ok(())
        },
    },
    Setting {
        name: "JWT_AUDIENCE",
        secret: false,
        default: "none",
        description: "With signed tokens: their `aud` must be, or contain, this. When unset, a token that has an `aud` is refused.",
        self_hosted: true,
        parse: |d, _, v| {
            d.jwt_audience = (!v.is_empty()).then(|| v.to_owned());
            Ok(())
        },
    },
    Setting {
        name: "JWT_ISSUER",
        secret: false,
        default: "none",
        description: "With signed tokens: their `iss` must be this. When unset, `iss` is not checked.",
        self_hosted: true,
        parse: |d, _, v| {
            d.jwt_issuer = (!v.is_empty()).then(|| v.to_owned());
            Ok(())
        },
    },
    Setting {
        name: "JWT_MAX_LIFETIME",
        secret: false,
        default: "`604800` (7 days)",
        description: "With signed tokens: the longest a token may still be valid when it is presented, in seconds; a token whose `exp` lies further ahead is refused (`token lifetime too long`), so a leaked token cannot open a store for years. `0` lifts the cap.",
        self_hosted: true,
        parse: |d, name, v| {
            d.jwt_max_lifetime = Some(parse_seconds(name, v)?);
            Ok(())
        },
    },
    Setting {
        name: "CORS",
        secret: false,
        default: "`true`",
        description: "Answer CORS preflights with `204` and put the reference's CORS headers on error responses (as `makeWorker({ enableCORS: true })`).",
        self_hosted: true,
        parse: |d, name, v| {
            d.config.cors = parse_bool(name, v)?;
            Ok(())
        },
    },
    Setting {
        name: "SYNC_BACKEND_BINDING",
        secret: false,
        default: "`SYNC_BACKEND_DO`",
        description: "Name of the Durable Object binding that holds one object per store.",
        self_hosted: true,
        parse: |d, _, v| {
            if !v.is_empty() {
                d.config.binding = v.to_owned();
            }
            Ok(())
        },
    },
    Setting {
        name: "MAX_MESSAGE_BYTES",
        secret: false,
        default: "`1048576`",
        description: "Largest message accepted: a WebSocket frame or DO RPC call over it gets a typed `MessageTooLargeError`, an HTTP body `413` (read no further than the limit, whether its length is declared or it comes chunked). The LiveStore client never sends more than ~900 KB.",
        self_hosted: true,
        parse: |d, name, v| {
            d.config.max_message_bytes = parse_size(name, v)?;
            Ok(())
        },
    },
    Setting {
        name: "MAX_STORE_ID_BYTES",
        secret: false,
        default: "`512`",
        description: "Longest `storeId` accepted (`400` otherwise, as for a `storeId` that is not valid UTF-8).",
        self_hosted: true,
        parse: |d, name, v| {
            d.config.max_store_id_bytes = parse_size(name, v)?;
            Ok(())
        },
    },
    Setting {
        name: "MAX_PUSH_EVENTS",
        secret: false,
        default: "`100`",
        description: "Most events one push may carry; a bigger batch is refused whole with a typed `TooManyEventsError` (nothing of it is stored). The LiveStore client splits its pushes into requests of at most 100 events.",
        self_hosted: true,
        parse: |d, name, v| {
            d.config.max_push_events = parse_size(name, v)?;
            Ok(())
        },
    },
    Setting {
        name: "MAX_SOCKETS_PER_STORE",
        secret: false,
        default: "`10000`",
        description: "Most WebSocket connections one store may have open; one more is refused with `429` and a `TooManyConnectionsError` text before the upgrade (the client retries). The runtime's own cap is 32,768 per object.",
        self_hosted: true,
        parse: |d, name, v| {
            d.config.max_sockets_per_store = parse_size(name, v)?;
            Ok(())
        },
    },
    Setting {
        name: "MAX_PUSHES_PER_SECOND",
        secret: false,
        default: "`0` (no limit)",
        description: "Most pushes one WebSocket connection may send per second (one-second windows); a push over it is refused with a typed `RateLimitError` and nothing of it stored, so the client retries it. HTTP requests have no connection to count on; use Cloudflare's rate limiting rules for them.",
        self_hosted: true,
        parse: |d, name, v| {
            d.config.max_pushes_per_second = match v.trim().parse::<u32>() {
                Ok(0) => None,
                Ok(n) => Some(n),
                Err(_) => {
                    return Err(ConfigError {
                        name,
                        value: v.to_owned(),
                        expected: "a non-negative integer (0 for no limit)",
                    })
                }
            };
            Ok(())
        },
    },
    Setting {
        name: "ENABLED_TRANSPORTS",
        secret: false,
        default: "`ws,http,do-rpc,electric`",
        description: "Transports clients may use: `ws`, `http`, `do-rpc` ([Durable Object RPC](#from-another-durable-object-do-rpc)) and `electric` (the [`/electric` endpoint](#moving-from-sync-electric) for `@livestore/sync-electric` clients). A disabled one is refused (`400` with a message naming it; over DO RPC a typed `TransportDisabledError`), as `enabledTransports`.",
        self_hosted: true,
        parse: |d, name, v| {
            d.config.transports = parse_transports(name, v)?;
            Ok(())
        },
    },
    Setting {
        name: "ELECTRIC_HOLD_SECONDS",
        secret: false,
        default: "`20`",
        description: "How long the [`/electric` endpoint](#moving-from-sync-electric) holds a live pull that has nothing new before it answers it empty (1 to 90 s; Cloudflare ends a response that has sent nothing for 100 s). Any push to the store answers it at once.",
        self_hosted: true,
        parse: |d, name, v| {
            d.config.electric_hold_ms = match v.trim().parse::<u64>() {
                Ok(n @ 1..=90) => n * 1000,
                _ => {
                    return Err(ConfigError {
                        name,
                        value: v.to_owned(),
                        expected: "a number of seconds from 1 to 90",
                    })
                }
            };
            Ok(())
        },
    },
    Setting {
        name: "HTTP_RESPONSE_HEADERS",
        secret: false,
        default: "none",
        description: "Extra headers on every HTTP transport reply, as a JSON object, e.g. `{\"X-Custom-Header\":\"test-value\"}` (a TOML table in `[vars]` works too). As `http.responseHeaders`.",
        self_hosted: true,
        parse: |d, name, v| {
            d.config.http_response_headers = parse_response_headers(name, v)?;
            Ok(())
        },
    },
    Setting {
        name: "ADMIN_TOKEN",
        secret: true,
        default: "none",
        description: "Turns on the [admin API](docs/operations.md#the-admin-api) under `/_admin/`, for requests with `Authorization: Bearer <ADMIN_TOKEN>`, and the [web inspector](docs/operations.md#the-web-inspector) at `/_admin/`. Unset: every `/_admin/` path is `404`.",
        self_hosted: true,
        parse: |d, _, v| {
            // An empty secret would let an empty bearer token in; it counts as unset.
            d.config.admin_token = (!v.is_empty()).then(|| Secret(v.to_owned()));
            Ok(())
        },
    },
    Setting {
        name: "FORWARD_HEADERS",
        secret: false,
        default: "none",
        description: "Comma-separated request headers passed to the `on_push` / `on_pull` hooks, e.g. `cookie,authorization` (as `forwardHeaders`). For WebSocket they are the upgrade request's, kept with the socket.",
        self_hosted: true,
        parse: |d, name, v| {
            d.config.forward_headers = parse_header_list(name, v)?;
            Ok(())
        },
    },
    Setting {
        name: "OTEL_EXPORTER_OTLP_ENDPOINT",
        secret: false,
        default: "none",
        description: "Base URL of an OTLP/HTTP collector. When set, spans for connect, push and pull go to `<url>/v1/traces` (as `otel.baseUrl`); when unset, no span is built.",
        self_hosted: true,
        parse: |d, name, v| {
            if v.is_empty() {
                return Ok(());
            }
            if !(v.starts_with("http://") || v.starts_with("https://")) {
                return Err(ConfigError {
                    name,
                    value: v.to_owned(),
                    expected: "an http:// or https:// URL",
                });
            }
            d.config.otel = Some(OtelConfig {
                endpoint: v.trim_end_matches('/').to_owned(),
                service_name: DEFAULT_SERVICE_NAME.to_owned(),
            });
            Ok(())
        },
    },
    Setting {
        name: "OTEL_SERVICE_NAME",
        secret: false,
        default: "`livestore-sync`",
        description: "`service.name` of those spans (as `otel.serviceName`).",
        self_hosted: true,
        parse: |d, _, v| {
            d.otel_service_name = (!v.is_empty()).then(|| v.to_owned());
            Ok(())
        },
    },
    Setting {
        name: "LOG_LEVEL",
        secret: false,
        default: "`info`",
        description: "Which [structured log lines](docs/operations.md#logs) are written: `off`, `error`, `warn`, `info` or `debug` (any case). An unknown value means `info`, with one `warn` line (`\"event\":\"config\"`) saying so: a typo in a logging setting does not stop sync, unlike the settings above.",
        self_hosted: true,
        parse: |d, _, v| {
            // Unlike the other settings, a typo here falls back to the default instead of
            // stopping the worker: logging must not take sync down. `cached` warns about it once.
            d.config.log_level = LogLevel::parse(v).unwrap_or_default();
            Ok(())
        },
    },
    Setting {
        name: "STORAGE",
        secret: false,
        default: "`do-sqlite`",
        description: "Where event logs live: `do-sqlite` (each store's Durable Object SQLite), `d1` (as `storage: { _tag: 'd1' }`) or `postgres` (sync-electric's tables; builds with the `postgres` feature). See [Storage engines](#storage-engines).",
        self_hosted: true,
        parse: |d, name, v| {
            d.engine = match v.trim() {
                "" | "do-sqlite" => Engine::DoSqlite,
                "d1" => Engine::D1,
                "postgres" => Engine::Postgres,
                other => {
                    return Err(ConfigError {
                        name,
                        value: other.to_owned(),
                        expected: "do-sqlite, d1 or postgres",
                    })
                }
            };
            Ok(())
        },
    },
    Setting {
        name: "D1_BINDING",
        secret: false,
        default: "`DB`",
        description: "The D1 binding used when `STORAGE=d1`.",
        self_hosted: false,
        parse: |d, _, v| {
            d.d1_binding = (!v.is_empty()).then(|| v.to_owned());
            Ok(())
        },
    },
    Setting {
        name: "POSTGRES_URL",
        secret: true,
        default: "none",
        description: "With `STORAGE=postgres`: the database's connection string (`postgres://user:password@host:port/db`), used instead of a Hyperdrive binding; how self-hosted nodes connect. A secret: never logged.",
        self_hosted: true,
        parse: |d, _, v| {
            d.postgres_url = (!v.trim().is_empty()).then(|| v.trim().to_owned());
            Ok(())
        },
    },
    Setting {
        name: "HYPERDRIVE_BINDING",
        secret: false,
        default: "`HYPERDRIVE`",
        description: "With `STORAGE=postgres` and no `POSTGRES_URL`: the Hyperdrive binding that reaches the database.",
        self_hosted: false,
        parse: |d, _, v| {
            d.hyperdrive_binding = (!v.is_empty()).then(|| v.to_owned());
            Ok(())
        },
    },
    Setting {
        name: "ALLOWED_EVENTS",
        secret: false,
        default: "`*`",
        description: "Which event names clients may push: comma-separated patterns, `*` for any characters, `!` before a pattern to deny it (`v1.*,!v1.TodoPurged`). A push with any other event is refused whole with a typed `EventNotAllowedError` naming it. See [docs/governance.md](docs/governance.md).",
        self_hosted: true,
        parse: |d, name, v| {
            d.config.rules.names = Some(parse_events(name, v)?);
            Ok(())
        },
    },
    Setting {
        name: "MAX_ARGS_BYTES",
        secret: false,
        default: "`0` (no limit)",
        description: "Largest `args` of one event, in bytes of its JSON; a push with a bigger one is refused whole with a typed `ArgsTooLargeError`.",
        self_hosted: true,
        parse: |d, name, v| {
            d.config.rules.max_args_bytes = parse_limit(name, v)?.map(|n| n as usize);
            Ok(())
        },
    },
    Setting {
        name: "MAX_STORE_EVENTS",
        secret: false,
        default: "`0` (no limit)",
        description: "Most events one store may hold; a push that would take it past them is refused whole with a typed `StoreQuotaError`, and the store keeps serving pulls.",
        self_hosted: true,
        parse: |d, name, v| {
            d.config.rules.max_store_events = parse_limit(name, v)?;
            Ok(())
        },
    },
    Setting {
        name: "MAX_STORE_BYTES",
        secret: false,
        default: "`0` (no limit)",
        description: "Most bytes one store may hold, counted as the admin API's `approxSizeBytes` counts them (each event's name, args, createdAt, clientId and sessionId, plus 16); over it, as `MAX_STORE_EVENTS`.",
        self_hosted: true,
        parse: |d, name, v| {
            d.config.rules.max_store_bytes = parse_limit(name, v)?;
            Ok(())
        },
    },
    Setting {
        name: "STORE_DIRECTORY",
        secret: false,
        default: "`true`",
        description: "Keep the [store directory](docs/governance.md#the-store-directory): every store with events, its engine, size and activity, listed by the admin API and the inspector. Each store used sends its figures at most every 10 s, one request to the directory's object. `false` turns it off (and with it `EXPIRE_IDLE_STORES_AFTER`).",
        self_hosted: true,
        parse: |d, name, v| {
            d.config.store_directory = parse_bool(name, v)?;
            Ok(())
        },
    },
    Setting {
        name: "EXPIRE_IDLE_STORES_AFTER",
        secret: false,
        default: "none",
        description: "Delete stores nobody has used for this long (`90d`, `12h`, `30m`, `45s`): no request, no stored event, no open socket. Each store's alarm does it; the directory shows when (`expiresAt`), and a `warn` line (`\"event\":\"expired\"`) records it. Deleting cannot be undone.",
        self_hosted: true,
        parse: |d, name, v| {
            d.config.idle_expiry_ms = Some(parse_duration_ms(name, v)?);
            Ok(())
        },
    },
    Setting {
        name: "BACKUP_BUCKET",
        secret: false,
        default: "none",
        description: "An R2 bucket binding: every store's new events are written to it as NDJSON (the export's lines), incrementally by seqNum, at most `BACKUP_INTERVAL` after they were stored; restore with `POST /_admin/stores/<id>/restore` ([docs/governance.md](docs/governance.md#backups-to-r2)). Not on workerd alone, which has no R2.",
        self_hosted: false,
        parse: |d, _, v| {
            d.backup_bucket = non_empty(v).map(|b| b.trim().to_owned());
            Ok(())
        },
    },
    Setting {
        name: "BACKUP_INTERVAL",
        secret: false,
        default: "`1h`",
        description: "The longest a stored event waits for its backup (`30m`, `6h`, `1d`): a store written to is backed up once per interval by its own alarm.",
        self_hosted: false,
        parse: |d, name, v| {
            d.backup_interval_ms = Some(parse_duration_ms(name, v)?);
            Ok(())
        },
    },
    Setting {
        name: "WEBHOOK_URL",
        secret: false,
        default: "none",
        description: "An `http://` or `https://` URL: every stored event is delivered to it once more, in batches, signed, at least once and in order per store, with retries — see [Delivering events to your backend](docs/outbox.md).",
        self_hosted: true,
        parse: |d, name, v| {
                        if v.trim().is_empty() {
                return Ok(());
            }
            if !(v.starts_with("http://") || v.starts_with("https://")) {
                return Err(ConfigError {
                    name,
                    value: v.to_owned(),
                    expected: "an http:// or https:// URL",
                });
            }
            d.webhook.target = Some(v.trim().to_owned());
            Ok(())
        },
    },
    Setting {
        name: "WEBHOOK_SECRET",
        secret: true,
        default: "none",
        description: "The key of the `x-livestore-signature` HMAC-SHA256 on every webhook request; required with `WEBHOOK_URL`. Never logged.",
        self_hosted: true,
        parse: |d, _, v| {
                        d.webhook.secret = (!v.is_empty()).then(|| v.to_owned());
            Ok(())
        },
    },
    Setting {
        name: "WEBHOOK_EVENTS",
        secret: false,
        default: "`*`",
        description: "Which events the webhook sink receives: comma-separated event-name patterns, `*` for any characters, `!` before a pattern to exclude (`v1.Member*,!v1.MemberLeft`). The cursor still moves past the others.",
        self_hosted: true,
        parse: |d, name, v| {
                        d.webhook.events = Some(parse_events(name, v)?);
            Ok(())
        },
    },
    Setting {
        name: "WEBHOOK_BATCH_SIZE",
        secret: false,
        default: "`100`",
        description: "Most events per request (1–1000).",
        self_hosted: true,
        parse: |d, name, v| {
                        d.webhook.batch_size = Some(parse_in_range(name, v, 1, 1000, BATCH)? as usize);
            Ok(())
        },
    },
    Setting {
        name: "WEBHOOK_MAX_ATTEMPTS",
        secret: false,
        default: "`10`",
        description: "Failed attempts in a row after which the webhook sink pauses for that store (shown in the admin API, resumed there); nothing is dropped.",
        self_hosted: true,
        parse: |d, name, v| {
                        d.webhook.max_attempts = Some(parse_in_range(name, v, 1, 1000, ATTEMPTS)? as u32);
            Ok(())
        },
    },
    Setting {
        name: "WEBHOOK_RETRY_BASE_MS",
        secret: false,
        default: "`1000`",
        description: "The wait after a failed attempt; it doubles after each further failure in a row.",
        self_hosted: true,
        parse: |d, name, v| {
                        d.webhook.retry_base_ms = Some(parse_in_range(name, v, 1, DAY_MS, MILLIS)?);
            Ok(())
        },
    },
    Setting {
        name: "WEBHOOK_RETRY_MAX_MS",
        secret: false,
        default: "`300000`",
        description: "The longest wait between two attempts.",
        self_hosted: true,
        parse: |d, name, v| {
                        d.webhook.retry_max_ms = Some(parse_in_range(name, v, 1, DAY_MS, MILLIS)?);
            Ok(())
        },
    },
    Setting {
        name: "WEBHOOK_TIMEOUT_MS",
        secret: false,
        default: "`10000`",
        description: "A webhook request not answered by then has failed (and is retried).",
        self_hosted: true,
        parse: |d, name, v| {
                        d.webhook.timeout_ms = Some(parse_in_range(name, v, 1, DAY_MS, MILLIS)?);
            Ok(())
        },
    },
    Setting {
        name: "QUEUE_BINDING",
        secret: false,
        default: "none",
        description: "A Cloudflare Queue producer binding: every stored event is sent to it once more, one message per batch, with the webhook's guarantees ([docs](docs/outbox.md)). Not on workerd alone, which has no Queues.",
        self_hosted: false,
        parse: |d, _, v| {
                        d.queue.target = (!v.trim().is_empty()).then(|| v.trim().to_owned());
            Ok(())
        },
    },
    Setting {
        name: "QUEUE_EVENTS",
        secret: false,
        default: "`*`",
        description: "Which events the queue sink receives: comma-separated event-name patterns, `*` for any characters, `!` before a pattern to exclude (`v1.Member*,!v1.MemberLeft`). The cursor still moves past the others.",
        self_hosted: false,
        parse: |d, name, v| {
                        d.queue.events = Some(parse_events(name, v)?);
            Ok(())
        },
    },
    Setting {
        name: "QUEUE_BATCH_SIZE",
        secret: false,
        default: "`100`",
        description: "Most events per message (1–1000).",
        self_hosted: false,
        parse: |d, name, v| {
                        d.queue.batch_size = Some(parse_in_range(name, v, 1, 1000, BATCH)? as usize);
            Ok(())
        },
    },
    Setting {
        name: "QUEUE_MAX_ATTEMPTS",
        secret: false,
        default: "`10`",
        description: "Failed attempts in a row after which the queue sink pauses for that store (shown in the admin API, resumed there); nothing is dropped.",
        self_hosted: false,
        parse: |d, name, v| {
                        d.queue.max_attempts = Some(parse_in_range(name, v, 1, 1000, ATTEMPTS)? as u32);
            Ok(())
        },
    },
    Setting {
        name: "QUEUE_RETRY_BASE_MS",
        secret: false,
        default: "`1000`",
        description: "The wait after a failed attempt; it doubles after each further failure in a row.",
        self_hosted: false,
        parse: |d, name, v| {
                        d.queue.retry_base_ms = Some(parse_in_range(name, v, 1, DAY_MS, MILLIS)?);
            Ok(())
        },
    },
    Setting {
        name: "QUEUE_RETRY_MAX_MS",
        secret: false,
        default: "`300000`",
        description: "The longest wait between two attempts.",
        self_hosted: false,
        parse: |d, name, v| {
                        d.queue.retry_max_ms = Some(parse_in_range(name, v, 1, DAY_MS, MILLIS)?);
            Ok(())
        },
    },
    Setting {
        name: "TEST_FAULTS",
        secret: false,
        default: "`false`",
        description: "Test-only, and only in builds with the `test-faults` cargo feature, which release builds lack: lets special event names crash the object at chosen points (the D1 recovery test).",
        self_hosted: false,
        parse: |d, name, v| {
            d.config.test_faults = parse_bool(name, v)?;
            Ok(())
        },
    },
];

impl Config {
    /// Whether sync connections may be admitted with less than lasting read-and-write rights
    /// (a `READ_TOKEN`, or signed tokens, which expire), so that a socket's grant matters.
    pub fn grants_vary(&self) -> bool {
        self.read_token.is_some() || matches!(self.auth, Auth::Signed { .. })
    }

    /// Builds the configuration from a var lookup (`None` for unset vars), reading every
    /// setting of [`SETTINGS`].
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut draft = Draft::default();
        for setting in SETTINGS {
            if let Some(value) = get(setting.name) {
                (setting.parse)(&mut draft, setting.name, &value)?;
            }
        }
        draft.finish()
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

    /// Reads the configuration the npm package runs with: `overrides` (from its options) before
    /// the environment's vars, and `defaults` where neither sets a var.
    #[cfg(target_arch = "wasm32")]
    pub fn from_env_with(
        env: &worker::Env,
        overrides: &[(&'static str, String)],
        defaults: &[(&str, &str)],
    ) -> Result<Config, ConfigError> {
        let pick =
            |list: &[(&str, String)], name: &str| list.iter().rev().find(|(k, _)| *k == name).map(|(_, v)| v.clone());
        Config::from_lookup(|name| {
            pick(overrides, name)
                .or_else(|| env_var(env, name))
                .or_else(|| defaults.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned()))
        })
    }
}

/// One line, once per isolate, when `LOG_LEVEL` is set to something it cannot mean.
#[cfg(target_arch = "wasm32")]
fn warn_unrecognised_log_level(env: &worker::Env, level: LogLevel) {
    let Some(value) = env_var(env, "LOG_LEVEL") else {
        return;
    };
    if LogLevel::parse(&value).is_some() {
        return;
    }
    if let Some(line) = level.line(crate::log::Level::Warn, "config") {
        crate::log::emit(
            line.str("var", "LOG_LEVEL")
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
        assert_eq!(c.admin_token, Some(Secret("admin-s3cr3t".into())));
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
                do_rpc: true,
                electric: true
            }
        );
        assert_eq!(c.otel, None);
        assert_eq!(
            config(&[("ENABLED_TRANSPORTS", "ws")]).unwrap().transports,
            Transports {
                ws: true,
                http: false,
                do_rpc: false,
                electric: false
            }
        );
        assert_eq!(
            config(&[("ENABLED_TRANSPORTS", " http , ws ")]).unwrap().transports,
            Transports {
                ws: true,
                http: true,
                do_rpc: false,
                electric: false
            }
        );
        assert_eq!(
            config(&[("ENABLED_TRANSPORTS", "do-rpc,electric")]).unwrap().transports,
            Transports {
                ws: false,
                http: false,
                do_rpc: true,
                electric: true
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
        assert_eq!(
            config(&[("STORAGE", "postgres")]).unwrap().storage,
            StorageConfig::Postgres(PostgresSource::Hyperdrive("HYPERDRIVE".into()))
        );
        let url = "postgres://app:s3cret@127.0.0.1:5432/app";
        let with_url = config(&[("STORAGE", "postgres"), ("POSTGRES_URL", url)])
            .unwrap()
            .storage;
        assert_eq!(with_url, StorageConfig::Postgres(PostgresSource::Url(url.into())));
        assert!(
            !format!("{with_url:?}").contains("s3cret"),
            "the password never reaches a log line"
        );
        assert!(config(&[("STORAGE", "mysql")]).is_err());
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

    #[test]
    fn read_token_and_event_rules() {
        let c = config(&[
            ("READ_TOKEN", "viewer-s3cret"),
            ("ALLOWED_EVENTS", "v1.*,!v1.Purged"),
            ("MAX_ARGS_BYTES", "2048"),
            ("MAX_STORE_EVENTS", "100000"),
            ("MAX_STORE_BYTES", "0"),
        ])
        .unwrap();
        assert_eq!(c.read_token, Some(Secret("viewer-s3cret".into())));
        assert!(!format!("{c:?}").contains("viewer-s3cret"));
        assert!(c
            .rules
            .names
            .as_ref()
            .is_some_and(|n| n.wants("v1.A") && !n.wants("v1.Purged")));
        assert_eq!(c.rules.max_args_bytes, Some(2048));
        assert_eq!(c.rules.max_store_events, Some(100_000));
        assert_eq!(c.rules.max_store_bytes, None);
        assert_eq!(config(&[("READ_TOKEN", "")]).unwrap().read_token, None);
        let c = config(&[("BACKUP_BUCKET", "BACKUPS"), ("BACKUP_INTERVAL", "30m")]).unwrap();
        assert_eq!(
            c.backup,
            Some(BackupConfig {
                bucket: "BACKUPS".into(),
                interval_ms: 1_800_000
            })
        );
        assert_eq!(
            config(&[("BACKUP_BUCKET", "B")]).unwrap().backup.unwrap().interval_ms,
            3_600_000
        );
        assert_eq!(
            config(&[("BACKUP_INTERVAL", "1h")]).unwrap_err().name,
            "BACKUP_INTERVAL"
        );
        let c = config(&[("EXPIRE_IDLE_STORES_AFTER", "90d")]).unwrap();
        assert_eq!(c.idle_expiry_ms, Some(90 * 86_400_000));
        assert!(c.store_directory);
        assert_eq!(
            config(&[("EXPIRE_IDLE_STORES_AFTER", " 45s ")]).unwrap().idle_expiry_ms,
            Some(45_000)
        );
        assert_eq!(
            config(&[("EXPIRE_IDLE_STORES_AFTER", "30m")]).unwrap().idle_expiry_ms,
            Some(1_800_000)
        );
        let off = config(&[("STORE_DIRECTORY", "false"), ("EXPIRE_IDLE_STORES_AFTER", "1h")]);
        assert_eq!(off.unwrap_err().name, "EXPIRE_IDLE_STORES_AFTER");
        for (name, value) in [
            ("EXPIRE_IDLE_STORES_AFTER", "90"),
            ("EXPIRE_IDLE_STORES_AFTER", "0s"),
            ("EXPIRE_IDLE_STORES_AFTER", "1.5d"),
            ("EXPIRE_IDLE_STORES_AFTER", "9999d"),
            ("EXPIRE_IDLE_STORES_AFTER", "d"),
            ("STORE_DIRECTORY", "maybe"),
            ("ALLOWED_EVENTS", " , "),
            ("MAX_ARGS_BYTES", "-1"),
            ("MAX_STORE_EVENTS", "lots"),
            ("MAX_STORE_BYTES", "1.5"),
        ] {
            assert_eq!(config(&[(name, value)]).unwrap_err().name, name);
        }
    }

    #[test]
    fn outbox_sinks() {
        use crate::outbox::Target;
        assert!(config(&[]).unwrap().sinks.is_empty());
        let hook = [
            ("WEBHOOK_URL", "https://app.example/hooks/livestore"),
            ("WEBHOOK_SECRET", "whsec-123"),
        ];
        let c = config(&hook).unwrap();
        let [sink] = c.sinks.as_slice() else {
            panic!("{:?}", c.sinks)
        };
        assert_eq!(sink.name, "webhook");
        assert_eq!(
            (
                sink.batch_size,
                sink.max_attempts,
                sink.retry_base_ms,
                sink.retry_max_ms,
                sink.timeout_ms
            ),
            (100, 10, 1_000, 300_000, 10_000)
        );
        assert!(sink.events.wants("anything"));
        assert!(
            !format!("{c:?}").contains("whsec-123"),
            "the signing secret is never printed"
        );
        // A webhook nobody can verify is refused, as is anything but an http(s) URL.
        assert_eq!(config(&hook[..1]).unwrap_err().name, "WEBHOOK_SECRET");
        assert_eq!(
            config(&[("WEBHOOK_URL", "ftp://x"), ("WEBHOOK_SECRET", "s")])
                .unwrap_err()
                .name,
            "WEBHOOK_URL"
        );
        let both = config(&[
            hook[0],
            hook[1],
            ("WEBHOOK_EVENTS", "v1.Member*,!v1.MemberLeft"),
            ("WEBHOOK_BATCH_SIZE", "7"),
            ("WEBHOOK_RETRY_BASE_MS", "500"),
            ("WEBHOOK_RETRY_MAX_MS", "100"),
            ("QUEUE_BINDING", "OUTBOX"),
            ("QUEUE_MAX_ATTEMPTS", "3"),
        ])
        .unwrap();
        let names: Vec<&str> = both.sinks.iter().map(|s| s.name).collect();
        assert_eq!(names, ["webhook", "queue"]);
        let webhook = &both.sinks[0];
        assert!(webhook.events.wants("v1.MemberInvited") && !webhook.events.wants("v1.MemberLeft"));
        assert_eq!(webhook.batch_size, 7);
        // A cap below the first wait would make no sense: the first wait is the cap then.
        assert_eq!((webhook.retry_base_ms, webhook.retry_max_ms), (500, 500));
        assert_eq!(
            both.sinks[1].target,
            Target::Queue {
                binding: "OUTBOX".into()
            }
        );
        assert_eq!(both.sinks[1].max_attempts, 3);
        for (name, value) in [
            ("WEBHOOK_BATCH_SIZE", "0"),
            ("WEBHOOK_BATCH_SIZE", "1001"),
            ("QUEUE_MAX_ATTEMPTS", "none"),
            ("WEBHOOK_TIMEOUT_MS", "-1"),
            ("QUEUE_EVENTS", " , "),
            ("WEBHOOK_EVENTS", "!"),
        ] {
            assert_eq!(config(&[(name, value)]).unwrap_err().name, name, "{name}={value}");
        }
    }
}
