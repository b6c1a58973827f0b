//! Deciding what to do with an incoming request, as the reference's `makeWorker` does
//! (`matchSyncRequest`, CORS, `validatePayload`, the 426 rule). Pure: the Worker entry point
//! turns a [`Decision`] into a response.

use serde_json::Value;

use crate::config::{Auth, Config};
use crate::jwt;
use crate::util::ct::secrets_equal;
use crate::util::uri::decode_uri_component;

/// A sync transport selectable in the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `transport=ws`: a WebSocket carrying Effect RPC JSON frames.
    Ws,
    /// `transport=http`: one Effect RPC request per POST.
    Http,
    /// Durable Object RPC (`SyncDoRpc`): a client in another Durable Object calls the sync
    /// object's `rpc` method through a binding. Never named in a URL.
    DoRpc,
}

impl Transport {
    /// The name used in URLs and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Ws => "ws",
            Transport::Http => "http",
            Transport::DoRpc => "do-rpc",
        }
    }
}

/// The message refusing a transport that `ENABLED_TRANSPORTS` leaves out.
pub fn transport_disabled(transport: Transport) -> String {
    format!(
        "Transport {} is not enabled on this sync backend (ENABLED_TRANSPORTS)",
        transport.as_str()
    )
}

/// The message for a request or frame over `MAX_MESSAGE_BYTES`.
pub fn too_large(size: usize, max: usize) -> String {
    format!("the message has {size} bytes; this server accepts at most {max}")
}

/// Refuses an HTTP transport request whose declared body is over the limit, before it is read
/// or forwarded. The body is the JSON array of one `Defect` the HTTP client expects.
pub fn declared_body_too_large(params: &SyncParams, content_length: Option<&str>, max: usize) -> Option<Refusal> {
    let declared = content_length?.trim().parse::<usize>().ok()?;
    (params.transport == Transport::Http && declared > max).then(|| Refusal {
        status: 413,
        body: format!("[{}]", crate::protocol::server::defect(&too_large(declared, max))),
    })
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

/// Recognises a sync request by its query string alone, whatever the path, like the reference's
/// `matchSyncRequest`: `storeId` and `transport` (`ws` or `http`) are required, `payload` is
/// optional but must decode. Anything else is not a sync request.
pub fn match_sync_request(query: Option<&str>) -> Option<SyncParams> {
    let query = query?;
    let mut store_id = None;
    let mut transport = None;
    let mut payload = None;
    // URLSearchParams.get returns the first occurrence; so does this.
    for (key, value) in form_urlencoded_pairs(query) {
        match key.as_str() {
            "storeId" if store_id.is_none() => store_id = Some(value),
            "transport" if transport.is_none() => transport = Some(value),
            "payload" if payload.is_none() => payload = Some(value),
            _ => {}
        }
    }
    let transport = match transport?.as_str() {
        "ws" => Transport::Ws,
        "http" => Transport::Http,
        _ => return None,
    };
    let payload = match payload {
        None => None,
        Some(encoded) => {
            let json = decode_uri_component(&encoded)?;
            Some(serde_json::from_str::<Value>(&json).ok()?)
        }
    };
    Some(SyncParams {
        store_id: store_id?,
        transport,
        payload,
    })
}

fn form_urlencoded_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    worker::url::form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned()))
}

/// Why a sync request was refused before reaching its store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// Plain-text body.
    pub body: String,
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

/// Checks a sync request's parameters and credentials. Runs before the request reaches the
/// Durable Object, for every WebSocket upgrade and every HTTP request.
///
/// `authorization` is the request's `Authorization` header, and `now` the time in seconds since
/// the Unix epoch; both matter only with signed tokens configured.
pub fn admit(config: &Config, params: &SyncParams, authorization: Option<&str>, now: i64) -> Result<(), Refusal> {
    if !config.transports.allows(params.transport) {
        return Err(Refusal {
            status: 400,
            body: transport_disabled(params.transport),
        });
    }
    if params.store_id.is_empty() || params.store_id.len() > config.max_store_id_bytes {
        return Err(Refusal {
            status: 400,
            body: format!(
                "Invalid storeId: it must be 1 to {} bytes long",
                config.max_store_id_bytes
            ),
        });
    }
    match &config.auth {
        Auth::Open => Ok(()),
        Auth::Unconfigured => Err(Refusal {
            status: 500,
            body: UNCONFIGURED_BODY.to_owned(),
        }),
        Auth::Token(expected) => match payload_token(params) {
            Some(token) if secrets_equal(token.as_bytes(), expected.as_bytes()) => Ok(()),
            _ => Err(Refusal {
                status: 400,
                body: INVALID_TOKEN_BODY.to_owned(),
            }),
        },
        Auth::Signed { jwt, shared } => admit_signed(jwt, shared.as_deref(), params, authorization, now),
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
) -> Result<(), Refusal> {
    let in_payload = payload_token(params);
    if let (Some(token), Some(expected)) = (in_payload, shared) {
        if secrets_equal(token.as_bytes(), expected.as_bytes()) {
            return Ok(());
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
            Ok(()) => return Ok(()),
            Err(rejection) => {
                first_rejection.get_or_insert(rejection);
            }
        }
    }
    Err(Refusal {
        status: 400,
        // Without any signed token, the same reply as for a wrong shared token.
        body: first_rejection.map_or_else(|| INVALID_TOKEN_BODY.to_owned(), invalid_jwt_body),
    })
}

/// The reference's 426 rule: a WebSocket sync request must carry `Upgrade: websocket`, exactly.
pub fn upgrade_required(params: &SyncParams, upgrade_header: Option<&str>) -> Option<Refusal> {
    (params.transport == Transport::Ws && upgrade_header != Some("websocket")).then(|| Refusal {
        status: 426,
        body: "Durable Object expected Upgrade: websocket".to_owned(),
    })
}

/// The CORS headers of the reference's `makeWorker({ enableCORS: true })`; none when CORS is off.
pub fn cors_headers(config: &Config, access_control_request_headers: Option<&str>) -> Vec<(&'static str, String)> {
    if !config.cors {
        return Vec::new();
    }
    vec![
        ("Access-Control-Allow-Origin", "*".to_owned()),
        ("Access-Control-Allow-Methods", "GET, POST, OPTIONS".to_owned()),
        (
            "Access-Control-Allow-Headers",
            access_control_request_headers.unwrap_or("*").to_owned(),
        ),
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
