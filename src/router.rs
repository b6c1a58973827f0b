//! Deciding what to do with an incoming request, as the reference's `makeWorker` does
//! (`matchSyncRequest`, CORS, `validatePayload`, the 426 rule). Pure: the Worker entry point
//! turns a [`Decision`] into a response.

use serde_json::Value;

use crate::access::Grant;
use crate::config::{Auth, Config};
use crate::core::error::{too_large_message, transport_disabled};
use crate::jwt;
use crate::protocol::Transport;
use crate::util::ct::secrets_equal;
use crate::util::uri::decode_uri_component;

/// Refuses an HTTP transport request whose declared body is over the limit, before it is read
/// or forwarded. The body is the JSON array of one `Defect` the HTTP client expects.
pub fn declared_body_too_large(params: &SyncParams, content_length: Option<&str>, max: usize) -> Option<Refusal> {
    let declared = content_length?.trim().parse::<usize>().ok()?;
    (params.transport == Transport::Http && declared > max).then(|| body_too_large(Some(declared), max))
}

/// The refusal of an HTTP transport body over `MAX_MESSAGE_BYTES` (`size` is `None` when reading
/// stopped at the limit).
pub fn body_too_large(size: Option<usize>, max: usize) -> Refusal {
    Refusal {
        status: 413,
        body: format!("[{}]", crate::protocol::server::defect(&too_large_message(size, max))),
        reason: "MessageTooLarge",
    }
}

/// The search parameters of a sync request.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncParams {
    /// Which store; one Durable Object per storeId.
    pub store_id: String,
    /// Which transport.
    pub transport: Transport,
    /// The client's `syncPayload`, decoded (it arrives percent-encoded twice).
    pub payload: Option<Value>,
}

/// What a request's search parameters say about it.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncMatch {
    /// A sync request.
    Sync(SyncParams),
    /// No sync parameter at all: not meant as a sync request.
    NotSync,
    /// Meant as a sync request (it has some of their parameters, or asks for a WebSocket), but
    /// malformed; the text says what is wrong.
    Malformed(String),
}

/// Reads a request's search parameters. `storeId` and `transport` (`ws` or `http`) are required;
/// `payload` (the client's `syncPayload`, percent-encoded twice) is optional but must decode;
/// URLSearchParams' rule holds for repeats (the first wins). `websocket` says the request asks
/// for a WebSocket upgrade, which makes it meant as sync even without parameters.
pub fn parse_sync_request(query: Option<&str>, websocket: bool) -> SyncMatch {
    let mut store_id = None;
    let mut transport = None;
    let mut payload = None;
    let mut store_id_utf8 = true;
    for (key, value) in worker::url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "storeId" if store_id.is_none() => {
                // The decoder replaces invalid UTF-8 with U+FFFD, so `%FF-x` and `%FE-x` would
                // name one store; such ids are refused instead.
                store_id_utf8 = percent_decodes_to_utf8(query.unwrap_or(""), "storeId");
                store_id = Some(value.into_owned());
            }
            "transport" if transport.is_none() => transport = Some(value.into_owned()),
            "payload" if payload.is_none() => payload = Some(value.into_owned()),
            _ => {}
        }
    }
    if store_id.is_none() && transport.is_none() && payload.is_none() {
        return if websocket {
            SyncMatch::Malformed("a WebSocket sync request needs the storeId and transport=ws search parameters".into())
        } else {
            SyncMatch::NotSync
        };
    }
    let malformed = |message: &str| SyncMatch::Malformed(message.to_owned());
    let Some(store_id) = store_id else {
        return malformed("the storeId search parameter is missing");
    };
    if !store_id_utf8 {
        return malformed("Invalid storeId: it is not valid UTF-8");
    }
    let transport = match transport.as_deref() {
        None => return malformed("the transport search parameter is missing (ws or http)"),
        Some(name) => match Transport::from_url_param(name) {
            Some(transport) => transport,
            None => return malformed("unknown transport: this backend serves transport=ws and transport=http"),
        },
    };
    let payload = match payload {
        None => None,
        Some(encoded) => {
            let Some(json) = decode_uri_component(&encoded) else {
                return malformed("the payload search parameter is not percent-encoded UTF-8");
            };
            match serde_json::from_str::<Value>(&json) {
                Ok(value) => Some(value),
                Err(_) => return malformed("the payload search parameter is not JSON"),
            }
        }
    };
    SyncMatch::Sync(SyncParams {
        store_id,
        transport,
        payload,
    })
}

/// Recognises a sync request by its query string alone, whatever the path, like the reference's
/// `matchSyncRequest`: a sync request, or `None` for anything else (malformed ones included).
pub fn match_sync_request(query: Option<&str>) -> Option<SyncParams> {
    match parse_sync_request(query, false) {
        SyncMatch::Sync(params) => Some(params),
        SyncMatch::NotSync | SyncMatch::Malformed(_) => None,
    }
}

/// Whether the first `name` parameter of a query percent-decodes to valid UTF-8.
fn percent_decodes_to_utf8(query: &str, name: &str) -> bool {
    query
        .split('&')
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .find(|(key, _)| percent_decode_bytes(key) == name.as_bytes())
        .is_none_or(|(_, value)| std::str::from_utf8(&percent_decode_bytes(value)).is_ok())
}

/// The bytes a form-encoded value stands for (`+` is a space, `%XX` a byte, a `%` not followed
/// by two hex digits itself).
fn percent_decode_bytes(raw: &str) -> Vec<u8> {
    let bytes = raw.as_bytes();
    let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Why a sync request was refused before reaching its store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// Plain-text body, for the client.
    pub body: String,
    /// A short code for the `connect` log line (the body may be long, and quote the client).
    pub reason: &'static str,
}

/// Body of the refusal for a wrong or missing token: the text the reference's `validatePayload`
/// 400 carries (`UnknownError.toString()`), so clients and logs see the same thing.
pub const INVALID_TOKEN_BODY: &str =
    r#"UnknownError: { "cause": Error: Invalid auth token, "note": undefined, "payload": undefined }"#;

/// Body of the refusal when the operator configured no way to authenticate.
pub const UNCONFIGURED_BODY: &str = "This sync backend has no auth token configured, so it refuses sync requests. \
Set the AUTH_TOKEN secret (`npx wrangler secret put AUTH_TOKEN`, or AUTH_TOKEN=... in .dev.vars for local development), \
or JWT_SECRET / JWT_JWKS for signed tokens scoped to stores, \
or set the var ALLOW_ANONYMOUS=\"true\" to let anyone open any store.";

/// Body of the refusal for a signed token that does not verify: the reference's
/// `validatePayload` 400 text with a short reason (never any part of the token) after
/// "Invalid auth token".
pub fn invalid_jwt_body(reason: jwt::Rejection) -> String {
    format!(
        r#"UnknownError: {{ "cause": Error: Invalid auth token: {reason}, "note": undefined, "payload": undefined }}"#
    )
}

/// The token of an `Authorization: Bearer <token>` header (scheme in any case, RFC 9110 §11.1).
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Whether a storeId names the store directory's object ([`crate::directory::OBJECT_NAME`]):
/// never a store, so no sync or admin request for it reaches that object.
pub fn reserved_store_id(store_id: &str) -> bool {
    store_id == crate::directory::OBJECT_NAME
}

/// Checks a sync request's parameters and credentials. Runs before the request reaches the
/// Durable Object, for every WebSocket upgrade and every HTTP request.
///
/// `authorization` is the request's `Authorization` header, and `now` the time in seconds since
/// the Unix epoch; both matter only with signed tokens configured.
pub fn admit(config: &Config, params: &SyncParams, authorization: Option<&str>, now: i64) -> Result<Grant, Refusal> {
    if !config.transports.allows(params.transport) {
        return Err(Refusal {
            status: 400,
            body: transport_disabled(params.transport),
            reason: "TransportDisabled",
        });
    }
    if reserved_store_id(&params.store_id) {
        return Err(Refusal {
            status: 400,
            body: "Invalid storeId: it is reserved for the store directory".to_owned(),
            reason: "InvalidStoreId",
        });
    }
    if params.store_id.is_empty() || params.store_id.len() > config.max_store_id_bytes {
        return Err(Refusal {
            status: 400,
            body: format!(
                "Invalid storeId: it must be 1 to {} bytes long",
                config.max_store_id_bytes
            ),
            reason: "InvalidStoreId",
        });
    }
    let read_only = Grant {
        read_only: true,
        expires_at: None,
    };
    let read_token = |refusal: Refusal| match (payload_token(params), &config.read_token) {
        (Some(token), Some(expected)) if secrets_equal(token.as_bytes(), expected.0.as_bytes()) => Ok(read_only),
        _ => Err(refusal),
    };
    match &config.auth {
        Auth::Open => Ok(Grant::FULL),
        // A READ_TOKEN alone lets clients read; any other credential is then simply wrong.
        Auth::Unconfigured if config.read_token.is_some() => read_token(invalid_token(INVALID_TOKEN_BODY.to_owned())),
        Auth::Unconfigured => Err(Refusal {
            status: 500,
            body: UNCONFIGURED_BODY.to_owned(),
            reason: "AuthNotConfigured",
        }),
        Auth::Token(expected) => match payload_token(params) {
            Some(token) if secrets_equal(token.as_bytes(), expected.as_bytes()) => Ok(Grant::FULL),
            _ => read_token(invalid_token(INVALID_TOKEN_BODY.to_owned())),
        },
        Auth::Signed { jwt, shared } => {
            admit_signed(jwt, shared.as_deref(), params, authorization, now).or_else(read_token)
        }
    }
}

fn invalid_token(body: String) -> Refusal {
    Refusal {
        status: 400,
        body,
        reason: "InvalidAuthToken",
    }
}

fn payload_token(params: &SyncParams) -> Option<&str> {
    params
        .payload
        .as_ref()
        .and_then(|p| p.get("authToken"))
        .and_then(Value::as_str)
}

/// Any one credential that verifies admits: the shared token in the payload, or a signed token
/// in the `Authorization` header or the payload. A header that is not a JWT (say, an app's own
/// session token meant for a hook) is not a credential here and is left alone.
fn admit_signed(
    jwt: &jwt::Verifier,
    shared: Option<&str>,
    params: &SyncParams,
    authorization: Option<&str>,
    now: i64,
) -> Result<Grant, Refusal> {
    let in_payload = payload_token(params);
    if let (Some(token), Some(expected)) = (in_payload, shared) {
        if secrets_equal(token.as_bytes(), expected.as_bytes()) {
            return Ok(Grant::FULL);
        }
    }
    let in_header = authorization.and_then(bearer_token);
    // The same token in both places is checked once.
    let in_payload = in_payload.filter(|t| Some(*t) != in_header);
    let mut first_rejection = None;
    for token in [in_header, in_payload].into_iter().flatten() {
        if !jwt::is_jwt(token) {
            continue;
        }
        match jwt.verify(token, &params.store_id, now) {
            Ok(grant) => return Ok(grant),
            Err(rejection) => {
                first_rejection.get_or_insert(rejection);
            }
        }
    }
    // Without any signed token, the same reply as for a wrong shared token.
    Err(invalid_token(
        first_rejection.map_or_else(|| INVALID_TOKEN_BODY.to_owned(), invalid_jwt_body),
    ))
}

/// Checks a sync-electric request's credential: the token in the endpoint's path
/// (`/electric/<token>`), else an `Authorization: Bearer` token, else — pulls only — the app's
/// `syncPayload.authToken`. Shared tokens and scoped JWTs work in each place. A refusal of the
/// credential is `401`, which the 0.4.0 client reports as "Unauthorized".
pub fn admit_electric(
    config: &Config,
    store_id: &str,
    path_token: Option<&str>,
    authorization: Option<&str>,
    payload: Option<&Value>,
    now: i64,
) -> Result<Grant, Refusal> {
    let in_payload = || payload.and_then(|p| p.get("authToken")).and_then(Value::as_str);
    let credential = path_token
        .or_else(|| authorization.and_then(bearer_token))
        .or_else(in_payload);
    let params = SyncParams {
        store_id: store_id.to_owned(),
        transport: Transport::Electric,
        payload: credential.map(|token| serde_json::json!({ "authToken": token })),
    };
    admit(config, &params, None, now).map_err(|refusal| match refusal.reason {
        "InvalidAuthToken" => Refusal { status: 401, ..refusal },
        _ => refusal,
    })
}

/// The reference's 426 rule: a WebSocket sync request must carry `Upgrade: websocket`, exactly.
pub fn upgrade_required(params: &SyncParams, upgrade_header: Option<&str>) -> Option<Refusal> {
    (params.transport == Transport::Ws && upgrade_header != Some("websocket")).then(|| Refusal {
        status: 426,
        body: "Durable Object expected Upgrade: websocket".to_owned(),
        reason: "UpgradeRequired",
    })
}

/// The CORS headers of the reference's `makeWorker({ enableCORS: true })`; none when CORS is off.
/// The requested headers are allowed as asked, except the admin API's internal header, which
/// never comes from outside.
pub fn cors_headers(config: &Config, access_control_request_headers: Option<&str>) -> Vec<(&'static str, String)> {
    if !config.cors {
        return Vec::new();
    }
    let internal = |name: &str| name.trim().eq_ignore_ascii_case(crate::admin::INTERNAL_HEADER);
    let allowed = match access_control_request_headers {
        None => "*".to_owned(),
        Some(requested) if requested.split(',').any(internal) => requested
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty() && !internal(name))
            .collect::<Vec<_>>()
            .join(", "),
        Some(requested) => requested.to_owned(),
    };
    vec![
        ("Access-Control-Allow-Origin", "*".to_owned()),
        ("Access-Control-Allow-Methods", "GET, POST, OPTIONS".to_owned()),
        ("Access-Control-Allow-Headers", allowed),
    ]
}

/// What the Worker does with a request that is not a sync request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonSync {
    /// CORS preflight: 204 with the CORS headers.
    Preflight,
    /// `GET /`: 200 with the info text.
    Info,
    /// Anything else: 400 `Invalid path`.
    InvalidPath,
}

/// Text of the info page at `GET /`, the reference's.
pub const INFO_BODY: &str = "Info: Sync backend endpoint for @livestore/sync-cf.";

/// Classifies a request that is not (yet) known to be a sync request. Preflights are answered
/// before sync matching, as the reference does.
pub fn classify(config: &Config, method: &str, path: &str, is_sync: bool) -> Option<NonSync> {
    if method == "OPTIONS" && config.cors {
        return Some(NonSync::Preflight);
    }
    if is_sync {
        return None;
    }
    Some(if method == "GET" && path == "/" {
        NonSync::Info
    } else {
        NonSync::InvalidPath
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> Config {
        Config {
            auth: Auth::Open,
            ..Config::default()
        }
    }

    fn token(t: &str) -> Config {
        Config {
            auth: Auth::Token(t.into()),
            ..Config::default()
        }
    }

    #[test]
    fn matches_the_captured_url() {
        let p = match_sync_request(Some(
            "storeId=store-ws&payload=%257B%2522authToken%2522%253A%2522tok%2522%257D&transport=ws",
        ))
        .unwrap();
        assert_eq!(p.store_id, "store-ws");
        assert_eq!(p.transport, Transport::Ws);
        assert_eq!(p.payload, Some(serde_json::json!({"authToken": "tok"})));
    }

    #[test]
    fn malformed_sync_requests_say_what_is_wrong() {
        let malformed = |query: &str, websocket: bool| match parse_sync_request(Some(query), websocket) {
            SyncMatch::Malformed(message) => message,
            other => panic!("{query}: {other:?}"),
        };
        assert!(malformed("transport=ws", false).contains("storeId"));
        assert!(malformed("storeId=a", false).contains("transport"));
        assert!(malformed("storeId=a&transport=smoke", false).contains("unknown transport"));
        assert!(malformed("storeId=a&transport=do-rpc", false).contains("unknown transport"));
        assert!(malformed("storeId=a&transport=ws&payload=%25zz", false).contains("percent-encoded"));
        assert!(malformed("storeId=a&transport=ws&payload=notjson", false).contains("not JSON"));
        assert!(malformed("", true).contains("WebSocket"));
        assert!(malformed("other=1", true).contains("WebSocket"));
        // Invalid UTF-8 is refused, so `%FF-x`, `%FE-x` and `%EF%BF%BD-x` never meet in one store.
        for bad in ["%FF-x", "%FE-x", "a%C3", "%ED%A0%80"] {
            assert!(
                malformed(&format!("storeId={bad}&transport=ws"), false).contains("UTF-8"),
                "{bad}"
            );
        }
        let replacement = parse_sync_request(Some("storeId=%EF%BF%BD-x&transport=ws"), false);
        assert!(matches!(replacement, SyncMatch::Sync(p) if p.store_id == "\u{FFFD}-x"));
        // No sync parameter at all is not a sync request; nor is it for the reference's matcher.
        assert_eq!(parse_sync_request(Some("x=1"), false), SyncMatch::NotSync);
        assert_eq!(parse_sync_request(None, false), SyncMatch::NotSync);
        assert!(match_sync_request(Some("storeId=%FF&transport=ws")).is_none());
    }

    #[test]
    fn what_is_not_a_sync_request() {
        assert!(match_sync_request(None).is_none());
        assert!(match_sync_request(Some("")).is_none());
        assert!(match_sync_request(Some("storeId=a")).is_none());
        assert!(match_sync_request(Some("transport=ws")).is_none());
        assert!(match_sync_request(Some("storeId=a&transport=do-rpc")).is_none());
        assert!(match_sync_request(Some("storeId=a&transport=ws&payload=%25zz")).is_none());
        assert!(match_sync_request(Some("storeId=a&transport=ws&payload=notjson")).is_none());
        // Extra parameters are ignored; the first of repeated ones wins.
        let p = match_sync_request(Some("x=1&storeId=a&storeId=b&transport=http")).unwrap();
        assert_eq!((p.store_id.as_str(), p.transport), ("a", Transport::Http));
        assert_eq!(p.payload, None);
    }

    #[test]
    fn auth() {
        let params = |payload: Option<Value>| SyncParams {
            store_id: "s".into(),
            transport: Transport::Ws,
            payload,
        };
        let good = params(Some(serde_json::json!({"authToken": "tok"})));
        assert!(admit(&token("tok"), &good, None, 0).is_ok());
        for bad in [
            params(None),
            params(Some(serde_json::json!({"authToken": "tok2"}))),
            params(Some(serde_json::json!({"authToken": 1}))),
            params(Some(serde_json::json!("tok"))),
        ] {
            let refusal = admit(&token("tok"), &bad, None, 0).unwrap_err();
            assert_eq!((refusal.status, refusal.body.as_str()), (400, INVALID_TOKEN_BODY));
        }
        assert!(admit(&open(), &params(None), None, 0).is_ok());
        let refusal = admit(&Config::default(), &good, None, 0).unwrap_err();
        assert_eq!(refusal.status, 500);
        assert!(refusal.body.contains("AUTH_TOKEN"));
        assert!(refusal.body.contains("ALLOW_ANONYMOUS"));
    }

    const SECRET: &str = "router-test-secret-0123456789abcdef";
    const NOW: i64 = 1_800_000_000;

    /// An HS256 token for `stores`, expiring at `exp`.
    fn jwt(stores: &[&str], exp: i64) -> String {
        use base64ct::{Base64UrlUnpadded, Encoding};
        use hmac::Mac;
        let b64 = |b: &[u8]| Base64UrlUnpadded::encode_string(b);
        let claims = serde_json::json!({ "stores": stores, "exp": exp });
        let input = format!("{}.{}", b64(br#"{"alg":"HS256"}"#), b64(claims.to_string().as_bytes()));
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(input.as_bytes());
        format!("{input}.{}", b64(&mac.finalize().into_bytes()))
    }

    fn signed(shared: Option<&str>) -> Config {
        Config {
            auth: Auth::Signed {
                jwt: jwt::Verifier::new().with_hs256_secret(SECRET.as_bytes()).unwrap(),
                shared: shared.map(str::to_owned),
            },
            ..Config::default()
        }
    }

    fn ws(store: &str, auth_token: Option<&str>) -> SyncParams {
        SyncParams {
            store_id: store.into(),
            transport: Transport::Ws,
            payload: auth_token.map(|t| serde_json::json!({ "authToken": t })),
        }
    }

    #[test]
    fn signed_tokens_open_their_stores_only() {
        let cfg = signed(None);
        let token = jwt(&["store-a"], NOW + 60);
        assert!(admit(&cfg, &ws("store-a", Some(&token)), None, NOW).is_ok());
        let bearer = format!("Bearer {token}");
        assert!(admit(&cfg, &ws("store-a", None), Some(&bearer), NOW).is_ok());
        assert!(admit(&cfg, &ws("store-a", None), Some(&format!("bearer  {token} ")), NOW).is_ok());

        let refusal = admit(&cfg, &ws("store-b", Some(&token)), None, NOW).unwrap_err();
        assert_eq!(refusal.status, 400);
        assert_eq!(
            refusal.body,
            r#"UnknownError: { "cause": Error: Invalid auth token: token not valid for this store, "note": undefined, "payload": undefined }"#
        );
        assert!(!refusal.body.contains(&token));
        let refusal = admit(&cfg, &ws("store-b", None), Some(&bearer), NOW).unwrap_err();
        assert!(refusal.body.contains("not valid for this store"));
        let refusal = admit(&cfg, &ws("store-a", Some(&token)), None, NOW + 3600).unwrap_err();
        assert!(refusal.body.contains("token expired"), "{}", refusal.body);
    }

    #[test]
    fn signed_tokens_without_a_token_or_with_another_kind() {
        let cfg = signed(None);
        // Nothing presented, or something that is not a JWT: the shared token's refusal, never
        // the unconfigured 500 and never open.
        for params in [
            ws("s", None),
            ws("s", Some("insecure-token-change-me")),
            SyncParams {
                payload: Some(serde_json::json!({"authToken": 5})),
                ..ws("s", None)
            },
        ] {
            let refusal = admit(&cfg, &params, None, NOW).unwrap_err();
            assert_eq!((refusal.status, refusal.body.as_str()), (400, INVALID_TOKEN_BODY));
        }
        // A header that is not a bearer JWT (an app's own session, say) is left to the hooks.
        let token = jwt(&["s"], NOW + 60);
        for header in ["Bearer opaque-session", "Basic dXNlcjpwYXNz", "Bearer", &token] {
            assert!(
                admit(&cfg, &ws("s", Some(&token)), Some(header), NOW).is_ok(),
                "{header}"
            );
            let refusal = admit(&cfg, &ws("s", None), Some(header), NOW).unwrap_err();
            assert_eq!(refusal.body, INVALID_TOKEN_BODY, "{header}");
        }
        // Any one valid credential admits; with none valid, a JWT's reason is given.
        let other = jwt(&["other"], NOW + 60);
        assert!(admit(&cfg, &ws("s", Some(&other)), Some(&format!("Bearer {token}")), NOW).is_ok());
        assert!(admit(&cfg, &ws("s", Some(&token)), Some(&format!("Bearer {other}")), NOW).is_ok());
        let refusal = admit(&cfg, &ws("s", Some(&other)), Some("Bearer x.y.z"), NOW).unwrap_err();
        assert!(refusal.body.contains("not valid for this store"), "{}", refusal.body);
    }

    #[test]
    fn shared_token_beside_signed_tokens() {
        let cfg = signed(Some("tok"));
        assert!(admit(&cfg, &ws("any-store", Some("tok")), None, NOW).is_ok());
        assert!(admit(&cfg, &ws("s", Some(&jwt(&["s"], NOW + 60))), None, NOW).is_ok());
        for bad in [None, Some("tok2"), Some("to"), Some("")] {
            let refusal = admit(&cfg, &ws("s", bad), None, NOW).unwrap_err();
            assert_eq!((refusal.status, refusal.body.as_str()), (400, INVALID_TOKEN_BODY));
        }
        // The shared token goes in the payload only, as before.
        let refusal = admit(&cfg, &ws("s", None), Some("Bearer tok"), NOW).unwrap_err();
        assert_eq!(refusal.body, INVALID_TOKEN_BODY);
    }

    #[test]
    fn a_read_token_admits_to_read_only() {
        let read = |mut cfg: Config| {
            cfg.read_token = Some(crate::config::Secret("viewer".into()));
            cfg
        };
        let read_only = Grant {
            read_only: true,
            expires_at: None,
        };
        for cfg in [
            read(token("tok")),
            read(signed(Some("tok"))),
            read(signed(None)),
            read(Config::default()),
        ] {
            assert_eq!(
                admit(&cfg, &ws("s", Some("viewer")), None, NOW),
                Ok(read_only),
                "{:?}",
                cfg.auth
            );
            let refusal = admit(&cfg, &ws("s", Some("viewe")), None, NOW).unwrap_err();
            assert_eq!((refusal.status, refusal.body.as_str()), (400, INVALID_TOKEN_BODY));
            assert!(cfg.grants_vary());
        }
        assert_eq!(
            admit(&read(token("tok")), &ws("s", Some("tok")), None, NOW),
            Ok(Grant::FULL)
        );
        assert!(!token("tok").grants_vary());
        // A signed token's grant carries its expiry, leeway included.
        let grant = admit(&signed(None), &ws("s", Some(&jwt(&["s"], NOW + 60))), None, NOW).unwrap();
        assert_eq!(grant.expires_at, Some(NOW + 60 + jwt::LEEWAY_SECS));
        assert!(!grant.read_only);
        // The electric endpoint's credentials too.
        let cfg = read(token("tok"));
        assert_eq!(admit_electric(&cfg, "s", Some("viewer"), None, None, 0), Ok(read_only));
    }

    #[test]
    fn electric_credentials_from_the_path_a_header_or_the_payload() {
        let cfg = token("tok");
        let payload = serde_json::json!({ "authToken": "tok" });
        assert!(admit_electric(&cfg, "s", Some("tok"), None, None, 0).is_ok());
        assert!(admit_electric(&cfg, "s", None, Some("Bearer tok"), None, 0).is_ok());
        assert!(admit_electric(&cfg, "s", None, None, Some(&payload), 0).is_ok());
        // The path wins: a wrong token there is refused, whatever the payload says.
        let refusal = admit_electric(&cfg, "s", Some("nope"), None, Some(&payload), 0).unwrap_err();
        assert_eq!((refusal.status, refusal.reason), (401, "InvalidAuthToken"));
        assert_eq!(admit_electric(&cfg, "s", None, None, None, 0).unwrap_err().status, 401);
        // Scoped tokens name their stores here too.
        let signed = signed(None);
        let jwt = jwt(&["store-a"], NOW + 60);
        assert!(admit_electric(&signed, "store-a", Some(&jwt), None, None, NOW).is_ok());
        let refusal = admit_electric(&signed, "store-b", Some(&jwt), None, None, NOW).unwrap_err();
        assert!(refusal.status == 401 && refusal.body.contains("not valid for this store"));
        // Other refusals keep their status.
        let off = Config {
            transports: crate::config::Transports {
                electric: false,
                ..Config::default().transports
            },
            ..token("tok")
        };
        assert_eq!(
            admit_electric(&off, "s", Some("tok"), None, None, 0)
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER   abc  "), Some("abc"));
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearerabc"), None);
        assert_eq!(bearer_token(""), None);
    }

    #[test]
    fn disabled_transports_are_refused() {
        let cfg = Config {
            transports: crate::config::Transports {
                ws: true,
                http: false,
                do_rpc: false,
                electric: false,
            },
            ..open()
        };
        let http = match_sync_request(Some("storeId=a&transport=http")).unwrap();
        let refusal = admit(&cfg, &http, None, 0).unwrap_err();
        assert_eq!(refusal.status, 400);
        assert!(refusal.body.contains("http is not enabled"));
        assert!(admit(
            &cfg,
            &match_sync_request(Some("storeId=a&transport=ws")).unwrap(),
            None,
            0
        )
        .is_ok());
    }

    #[test]
    fn oversize_http_bodies_are_refused_from_their_length() {
        let http = match_sync_request(Some("storeId=a&transport=http")).unwrap();
        let refusal = declared_body_too_large(&http, Some("2000"), 1000).unwrap();
        assert_eq!(refusal.status, 413);
        let body: Value = serde_json::from_str(&refusal.body).unwrap();
        assert_eq!(body[0]["_tag"], "Defect");
        assert!(declared_body_too_large(&http, Some("1000"), 1000).is_none());
        assert!(declared_body_too_large(&http, None, 1000).is_none());
        assert!(declared_body_too_large(&http, Some("x"), 1000).is_none());
        let ws = match_sync_request(Some("storeId=a&transport=ws")).unwrap();
        assert!(declared_body_too_large(&ws, Some("2000"), 1000).is_none());
    }

    #[test]
    fn store_id_bounds() {
        let cfg = Config {
            max_store_id_bytes: 8,
            ..open()
        };
        let with_id = |id: &str| SyncParams {
            store_id: id.into(),
            transport: Transport::Http,
            payload: None,
        };
        assert!(admit(&cfg, &with_id("12345678"), None, 0).is_ok());
        assert_eq!(admit(&cfg, &with_id("123456789"), None, 0).unwrap_err().status, 400);
        assert_eq!(admit(&cfg, &with_id(""), None, 0).unwrap_err().status, 400);
    }

    #[test]
    fn upgrade_rule_and_cors() {
        let ws = match_sync_request(Some("storeId=a&transport=ws")).unwrap();
        assert_eq!(upgrade_required(&ws, None).unwrap().status, 426);
        assert_eq!(upgrade_required(&ws, Some("WebSocket")).unwrap().status, 426);
        assert!(upgrade_required(&ws, Some("websocket")).is_none());
        let http = match_sync_request(Some("storeId=a&transport=http")).unwrap();
        assert!(upgrade_required(&http, None).is_none());

        assert_eq!(cors_headers(&open(), Some("x-a"))[2].1, "x-a");
        // The admin API's internal header is never allowed from outside.
        assert_eq!(
            cors_headers(&open(), Some("content-type, X-LiveStore-Admin,x-b"))[2].1,
            "content-type, x-b"
        );
        assert_eq!(cors_headers(&open(), None)[2].1, "*");
        let no_cors = Config { cors: false, ..open() };
        assert!(cors_headers(&no_cors, None).is_empty());

        assert_eq!(classify(&open(), "OPTIONS", "/x", true), Some(NonSync::Preflight));
        assert_eq!(classify(&no_cors, "OPTIONS", "/", false), Some(NonSync::InvalidPath));
        assert_eq!(classify(&open(), "GET", "/", false), Some(NonSync::Info));
        assert_eq!(classify(&open(), "POST", "/", false), Some(NonSync::InvalidPath));
        assert_eq!(classify(&open(), "GET", "/foo", false), Some(NonSync::InvalidPath));
        assert_eq!(classify(&open(), "GET", "/foo", true), None);
    }
}
