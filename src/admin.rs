//! The admin API's pure parts: which admin action a path names, the token check, the NDJSON
//! export line, and the validation of an import. The Worker ([`crate::entry`]) and the store's
//! object turn them into responses; everything here is tested natively.
//!
//! Precedence: a request whose path starts with [`PREFIX`] is an admin request, whatever its
//! search parameters, so `/_admin/...?storeId=x&transport=ws` can never be taken for a sync
//! request. No sync client uses that path (the LiveStore client puts its parameters on the URL
//! it is given, normally `/` or `/sync`).

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::AdminToken;
use crate::log::{Level, Line};
use crate::protocol::EventIn;
use crate::router::{bearer_token, reserved_store_id};
use crate::util::ct::secrets_equal;
use crate::util::uri::decode_uri_component;

/// The path prefix of every admin request.
pub const PREFIX: &str = "/_admin/";

/// The header the Worker sets on a request it forwards to a store's object for an admin action.
/// It carries the admin token, which the object checks again: a client's request forwarded as a
/// sync request keeps the client's headers, and the client does not know the token.
pub const INTERNAL_HEADER: &str = "x-livestore-admin";

/// The host of the internal route the Worker sends admin actions to
/// (`https://livestore-admin/<action>?storeId=…`); the object accepts them only there.
pub const INTERNAL_HOST: &str = "livestore-admin";

/// Headers on every admin API response: what it answers is a store's data or figures, which no
/// cache may keep and no browser may reinterpret.
pub const RESPONSE_HEADERS: [(&str, &str); 2] = [("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff")];

/// What an admin request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `GET /_admin/stores/<id>`: the store's figures.
    Info,
    /// `GET /_admin/stores/<id>/events`: events as NDJSON.
    Export,
    /// `POST /_admin/stores/<id>/import`: NDJSON into an empty store.
    Import,
    /// `POST /_admin/stores/<id>/reset`: wipe and give a new backendId.
    Reset,
    /// `GET /_admin/stores/<id>/outbox`: each sink's cursor, backlog and failures.
    Outbox,
    /// `POST /_admin/stores/<id>/outbox/<sink>/resume`: retry a paused or waiting sink now.
    OutboxResume,
    /// `POST /_admin/stores/<id>/outbox/<sink>/skip?to=<seqNum>`: move a sink's cursor.
    OutboxSkip,
    /// `DELETE /_admin/stores/<id>`: delete the store for good.
    Delete,
    /// `POST /_admin/stores/<id>/backup`: write the store's new events to `BACKUP_BUCKET` now.
    Backup,
    /// `POST /_admin/stores/<id>/restore?backendId=`: import the store's backup into it (empty).
    Restore,
}

impl Action {
    /// The name used in the object's internal path and in log lines.
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Info => "info",
            Action::Export => "export",
            Action::Import => "import",
            Action::Reset => "reset",
            Action::Outbox => "outbox",
            Action::OutboxResume => "outbox-resume",
            Action::OutboxSkip => "outbox-skip",
            Action::Delete => "delete",
            Action::Backup => "backup",
            Action::Restore => "restore",
        }
    }

    /// The HTTP method of the action, on the public path and on the internal route alike.
    pub fn method(&self) -> &'static str {
        match self {
            Action::Info | Action::Export | Action::Outbox => "GET",
            Action::Import
            | Action::Reset
            | Action::OutboxResume
            | Action::OutboxSkip
            | Action::Backup
            | Action::Restore => "POST",
            Action::Delete => "DELETE",
        }
    }

    /// The action of an internal path segment (the inverse of [`Action::as_str`]).
    pub fn from_name(name: &str) -> Option<Action> {
        match name {
            "info" => Some(Action::Info),
            "export" => Some(Action::Export),
            "import" => Some(Action::Import),
            "reset" => Some(Action::Reset),
            "outbox" => Some(Action::Outbox),
            "outbox-resume" => Some(Action::OutboxResume),
            "outbox-skip" => Some(Action::OutboxSkip),
            "delete" => Some(Action::Delete),
            "backup" => Some(Action::Backup),
            "restore" => Some(Action::Restore),
            _ => None,
        }
    }
}

/// How the Worker answers a path under [`PREFIX`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// An action on one store (storeId percent-decoded).
    Store {
        /// The store.
        store_id: String,
        /// The action.
        action: Action,
        /// The outbox sink the action names (`outbox/<sink>/…`).
        sink: Option<String>,
    },
    /// `GET /_admin/ping`: answers `{"ok":true}` once the token is checked, so a client (the
    /// inspector's sign-in) can test a token without naming a store.
    Ping,
    /// `GET /_admin/stores?prefix=&sort=&order=&limit=&offset=`: a page of the store directory.
    Directory,
    /// A known path with the wrong method: 405.
    MethodNotAllowed,
    /// Anything else under the prefix: 404.
    NotFound,
}

/// Whether a path belongs to the admin API (then it is never a sync request).
pub fn is_admin_path(path: &str) -> bool {
    path.starts_with(PREFIX) || path == "/_admin"
}

/// Routes an admin path. The storeId is one path segment, percent-decoded (so `/` in a storeId
/// is sent as `%2F`).
pub fn route(method: &str, path: &str) -> Route {
    if path == "/_admin/ping" {
        return if method == "GET" {
            Route::Ping
        } else {
            Route::MethodNotAllowed
        };
    }
    if path == "/_admin/stores" || path == "/_admin/stores/" {
        return if method == "GET" {
            Route::Directory
        } else {
            Route::MethodNotAllowed
        };
    }
    let Some(rest) = path.strip_prefix(PREFIX).and_then(|r| r.strip_prefix("stores/")) else {
        return Route::NotFound;
    };
    let (raw_id, tail) = match rest.split_once('/') {
        Some((id, tail)) => (id, Some(tail)),
        None => (rest, None),
    };
    let Some(store_id) = decode_uri_component(raw_id).filter(|id| !id.is_empty() && !reserved_store_id(id)) else {
        return Route::NotFound;
    };
    let mut sink = None;
    let action = match tail {
        None | Some("") if method == "DELETE" => Action::Delete,
        None | Some("") => Action::Info,
        Some("events") => Action::Export,
        Some("import") => Action::Import,
        Some("reset") => Action::Reset,
        Some("outbox") => Action::Outbox,
        Some("backup") => Action::Backup,
        Some("restore") => Action::Restore,
        Some(other) => {
            let Some((name, verb)) = other.strip_prefix("outbox/").and_then(|rest| rest.split_once('/')) else {
                return Route::NotFound;
            };
            sink = Some(name.to_owned()).filter(|n| !n.is_empty());
            match verb {
                _ if sink.is_none() => return Route::NotFound,
                "resume" => Action::OutboxResume,
                "skip" => Action::OutboxSkip,
                _ => return Route::NotFound,
            }
        }
    };
    if method != action.method() {
        return Route::MethodNotAllowed;
    }
    Route::Store { store_id, action, sink }
}

/// Checks an `Authorization` header against the admin token, in constant time. Only the
/// admin token opens the admin API: a sync token or a JWT is just a wrong token here.
pub fn authorized(expected: &AdminToken, authorization: Option<&str>) -> bool {
    match authorization.and_then(bearer_token) {
        Some(token) => secrets_equal(token.as_bytes(), expected.0.as_bytes()),
        None => false,
    }
}

/// The first value of the query parameter `name`, percent-decoded.
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    worker::url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The `after` and `until` bounds of an export (`after` exclusive, `until` inclusive), from a
/// query string. Unparsable values are an error, not silently ignored.
pub fn export_range(query: Option<&str>) -> Result<(Option<i64>, Option<i64>), String> {
    let mut after = None;
    let mut until = None;
    for (key, value) in worker::url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let target = match key.as_ref() {
            "after" => &mut after,
            "until" => &mut until,
            _ => continue,
        };
        let n = value
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("{key} must be an integer"))?;
        *target = Some(n);
    }
    Ok((after, until))
}

#[derive(Deserialize)]
struct StoredItemParts<'a> {
    #[serde(borrow, rename = "eventEncoded")]
    event_encoded: &'a RawValue,
    #[serde(borrow)]
    metadata: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Metadata<'a> {
    #[serde(borrow)]
    value: Option<MetadataValue<'a>>,
}

#[derive(Deserialize)]
struct MetadataValue<'a> {
    #[serde(borrow, rename = "createdAt")]
    created_at: Option<&'a RawValue>,
}

/// One export line from a stored pull item (`{"eventEncoded":{…},"metadata":…}`): the
/// `eventEncoded` object exactly as a pull carries it, plus its `createdAt`. `None` if the item
/// is not of that shape (it always is: the storage query builds it).
pub fn export_line(item_json: &str) -> Option<String> {
    let parts: StoredItemParts = serde_json::from_str(item_json).ok()?;
    let encoded = parts.event_encoded.get();
    let created_at = parts
        .metadata
        .and_then(|m| serde_json::from_str::<Metadata>(m.get()).ok())
        .and_then(|m| m.value)
        .and_then(|v| v.created_at);
    let body = encoded.strip_suffix('}')?;
    Some(match created_at {
        Some(created_at) => format!("{body},\"createdAt\":{}}}", created_at.get()),
        None => encoded.to_owned(),
    })
}

/// Why an import was refused; sent as `{"error":"<kind>","message":"…","line":n}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    /// `InvalidJson`, `InvalidCreatedAt`, `InvalidChain`, `EmptyImport` or `StoreNotEmpty`.
    pub kind: &'static str,
    /// What is wrong.
    pub message: String,
    /// 1-based line number of the offending line, when one is to blame.
    pub line: Option<usize>,
}

impl ImportError {
    /// The JSON body of the refusal.
    pub fn to_json(&self) -> String {
        let mut out = String::from("{\"error\":");
        crate::util::json::push_str_literal(&mut out, self.kind);
        out.push_str(",\"message\":");
        crate::util::json::push_str_literal(&mut out, &self.message);
        if let Some(line) = self.line {
            out.push_str(&format!(",\"line\":{line}"));
        }
        out.push('}');
        out
    }
}

/// A validated import: the events, and each one's `createdAt` when its line carried one.
#[derive(Debug)]
pub struct Import<'a> {
    /// The events, in order, chained from the store's head.
    pub events: Vec<EventIn<'a>>,
    /// `created_at[i]` is event `i`'s exported time; `None` where the line had none.
    pub created_at: Vec<Option<String>>,
}

#[derive(Deserialize)]
struct LineTime {
    #[serde(rename = "createdAt", default)]
    created_at: Option<serde_json::Value>,
}

/// Whether `s` is a timestamp as the reference and this backend write them
/// (`Date.prototype.toISOString`: `YYYY-MM-DDTHH:MM:SS.sssZ`).
pub fn is_iso_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// Parses and validates a whole NDJSON import against the log's rules, before anything is
/// written: every non-blank line is one event, the first event's parent is `head` (0 for the
/// empty store an import requires), each later event's parent is the event before it, and
/// seqNums strictly increase. A line's `createdAt`, when present, must be a timestamp as an
/// export writes it ([`is_iso_timestamp`]) and is kept; other extra keys are ignored. Blank
/// lines are skipped, so a trailing newline is fine.
pub fn parse_import(body: &str, head: i64) -> Result<Import<'_>, ImportError> {
    let mut events: Vec<EventIn<'_>> = Vec::new();
    let mut created_at = Vec::new();
    let mut previous = head;
    for (i, line) in body.lines().enumerate() {
        let number = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let invalid_json = |e: serde_json::Error| ImportError {
            kind: "InvalidJson",
            message: format!("not an event: {e}"),
            line: Some(number),
        };
        let event: EventIn<'_> = serde_json::from_str(line).map_err(invalid_json)?;
        let time = match serde_json::from_str::<LineTime>(line).map_err(invalid_json)?.created_at {
            None => None,
            Some(serde_json::Value::String(t)) if is_iso_timestamp(&t) => Some(t),
            Some(other) => {
                return Err(ImportError {
                    kind: "InvalidCreatedAt",
                    message: format!("createdAt must be a timestamp like 2024-01-31T12:00:00.000Z, not {other}"),
                    line: Some(number),
                })
            }
        };
        let chain = |message: String| ImportError {
            kind: "InvalidChain",
            message,
            line: Some(number),
        };
        if event.parent_seq_num.0 != previous {
            return Err(chain(format!(
                "parentSeqNum {} must be {} ({})",
                event.parent_seq_num.0,
                previous,
                if events.is_empty() {
                    "the store's head"
                } else {
                    "the previous event's seqNum"
                }
            )));
        }
        if event.seq_num.0 <= previous {
            return Err(chain(format!(
                "seqNum {} must be greater than its parentSeqNum {}",
                event.seq_num.0, previous
            )));
        }
        previous = event.seq_num.0;
        events.push(event);
        created_at.push(time);
    }
    if events.is_empty() {
        return Err(ImportError {
            kind: "EmptyImport",
            message: "the body holds no events".to_owned(),
            line: None,
        });
    }
    Ok(Import { events, created_at })
}

/// One admin log line: `{"level":"info","event":"admin","action":…,"storeId":…,"outcome":…}`
/// plus numeric `counts`; `warn` when the action was refused. Never a token, never an event's
/// payload.
pub fn log_line(action: &str, store_id: &str, outcome: &str, counts: &[(&'static str, i64)]) -> Line {
    let level = if outcome == "ok" { Level::Info } else { Level::Warn };
    let mut line = Line::new(level, "admin")
        .str("action", action)
        .str("storeId", store_id)
        .str("outcome", outcome);
    for (name, n) in counts {
        line = line.int(name, *n);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let store = |id: &str, action| Route::Store {
            store_id: id.into(),
            action,
            sink: None,
        };
        let sink = |action| Route::Store {
            store_id: "s1".into(),
            action,
            sink: Some("webhook".into()),
        };
        assert_eq!(route("GET", "/_admin/stores/s1/outbox"), store("s1", Action::Outbox));
        assert_eq!(
            route("POST", "/_admin/stores/s1/outbox/webhook/resume"),
            sink(Action::OutboxResume)
        );
        assert_eq!(
            route("POST", "/_admin/stores/s1/outbox/webhook/skip"),
            sink(Action::OutboxSkip)
        );
        assert_eq!(
            route("GET", "/_admin/stores/s1/outbox/webhook/skip"),
            Route::MethodNotAllowed
        );
        assert_eq!(route("POST", "/_admin/stores/s1/outbox//skip"), Route::NotFound);
        assert_eq!(route("POST", "/_admin/stores/s1/outbox/webhook/drop"), Route::NotFound);
        assert_eq!(route("GET", "/_admin/stores/s1"), store("s1", Action::Info));
        assert_eq!(route("GET", "/_admin/stores/a%2Fb%20c/"), store("a/b c", Action::Info));
        assert_eq!(route("GET", "/_admin/stores/s1/events"), store("s1", Action::Export));
        assert_eq!(route("POST", "/_admin/stores/s1/import"), store("s1", Action::Import));
        assert_eq!(route("POST", "/_admin/stores/s1/reset"), store("s1", Action::Reset));
        assert_eq!(route("GET", "/_admin/stores/s1/reset"), Route::MethodNotAllowed);
        assert_eq!(route("GET", "/_admin/stores/"), Route::Directory);
        assert_eq!(route("GET", "/_admin/stores"), Route::Directory);
        assert_eq!(route("POST", "/_admin/stores"), Route::MethodNotAllowed);
        assert_eq!(route("DELETE", "/_admin/stores/s1"), store("s1", Action::Delete));
        assert_eq!(route("POST", "/_admin/stores/s1/backup"), store("s1", Action::Backup));
        assert_eq!(route("POST", "/_admin/stores/s1/restore"), store("s1", Action::Restore));
        assert_eq!(route("GET", "/_admin/stores/s1/restore"), Route::MethodNotAllowed);
        assert_eq!(route("DELETE", "/_admin/stores/s1/events"), Route::MethodNotAllowed);
        // The directory's object is never a store.
        assert_eq!(route("GET", "/_admin/stores/__livestore_directory__"), Route::NotFound);
        assert_eq!(
            route("DELETE", "/_admin/stores/__livestore_directory__"),
            Route::NotFound
        );
        assert_eq!(route("GET", "/_admin/stores/%FF"), Route::NotFound);
        assert_eq!(route("GET", "/_admin/other"), Route::NotFound);
        assert_eq!(route("GET", "/_admin/ping"), Route::Ping);
        assert_eq!(route("POST", "/_admin/ping"), Route::MethodNotAllowed);
        assert_eq!(route("GET", "/_admin/stores/s1/x/y"), Route::NotFound);
        assert!(is_admin_path("/_admin/stores/x") && is_admin_path("/_admin"));
        assert!(!is_admin_path("/") && !is_admin_path("/_administrator"));
        for a in [
            Action::Info,
            Action::Export,
            Action::Import,
            Action::Reset,
            Action::Outbox,
            Action::OutboxResume,
            Action::OutboxSkip,
            Action::Delete,
            Action::Backup,
            Action::Restore,
        ] {
            assert_eq!(Action::from_name(a.as_str()), Some(a));
        }
    }

    #[test]
    fn token_check() {
        let t = crate::config::Secret("secret".into());
        assert!(authorized(&t, Some("Bearer secret")));
        assert!(authorized(&t, Some("bearer  secret ")));
        assert!(!authorized(&t, Some("Bearer secre")));
        assert!(!authorized(&t, Some("secret")));
        assert!(!authorized(&t, None));
        assert!(!authorized(&t, Some("Bearer ")));
    }

    #[test]
    fn ranges() {
        assert_eq!(export_range(None), Ok((None, None)));
        assert_eq!(export_range(Some("after=3&until=10")), Ok((Some(3), Some(10))));
        assert!(export_range(Some("after=x")).is_err());
    }

    #[test]
    fn export_lines() {
        let item = r#"{"eventEncoded":{"name":"a","args":{"x":"}"},"seqNum":1,"parentSeqNum":0,"clientId":"c","sessionId":"s"},"metadata":{"_tag":"Some","value":{"_tag":"SyncMessage.SyncMetadata","createdAt":"2024-01-01T00:00:00.000Z"}}}"#;
        assert_eq!(
            export_line(item).as_deref(),
            Some(
                r#"{"name":"a","args":{"x":"}"},"seqNum":1,"parentSeqNum":0,"clientId":"c","sessionId":"s","createdAt":"2024-01-01T00:00:00.000Z"}"#
            )
        );
        // The line imports again.
        let line = export_line(item).unwrap_or_default();
        let import = parse_import(&line, 0).expect("valid");
        assert_eq!(import.events[0].args.map(|a| a.get()), Some(r#"{"x":"}"}"#));
        assert_eq!(import.created_at, vec![Some("2024-01-01T00:00:00.000Z".to_owned())]);
        assert_eq!(export_line("nope"), None);
    }

    fn ev(seq: i64, parent: i64) -> String {
        format!(r#"{{"name":"e","args":null,"seqNum":{seq},"parentSeqNum":{parent},"clientId":"c","sessionId":"s"}}"#)
    }

    #[test]
    fn imports() {
        let ok = format!("{}\n{}\n\n{}\n", ev(1, 0), ev(2, 1), ev(5, 2));
        assert_eq!(parse_import(&ok, 0).map(|i| i.events.len()), Ok(3));
        let e = parse_import(&format!("{}\n{}", ev(1, 0), ev(3, 2)), 0).unwrap_err();
        assert_eq!((e.kind, e.line), ("InvalidChain", Some(2)));
        let e = parse_import(&ev(2, 1), 0).unwrap_err();
        assert_eq!((e.kind, e.line), ("InvalidChain", Some(1)));
        let e = parse_import(&format!("{}\n{}", ev(1, 0), ev(1, 1)), 0).unwrap_err();
        assert_eq!(e.kind, "InvalidChain");
        let e = parse_import(&format!("{}\n{{oops", ev(1, 0)), 0).unwrap_err();
        assert_eq!((e.kind, e.line), ("InvalidJson", Some(2)));
        assert_eq!(parse_import("\n\n", 0).unwrap_err().kind, "EmptyImport");
        assert!(e.to_json().starts_with(r#"{"error":"InvalidJson","message":"#));
        assert!(e.to_json().ends_with(r#","line":2}"#));
    }

    #[test]
    fn import_times() {
        let timed = |t: &str| {
            format!(r#"{{"name":"e","seqNum":1,"parentSeqNum":0,"clientId":"c","sessionId":"s","createdAt":{t}}}"#)
        };
        let body = format!("{}\n{}", timed(r#""2025-12-31T23:59:59.999Z""#), ev(2, 1));
        let import = parse_import(&body, 0).expect("valid");
        assert_eq!(
            import.created_at,
            vec![Some("2025-12-31T23:59:59.999Z".to_owned()), None]
        );
        for bad in [
            r#""yesterday""#,
            "12",
            r#""2025-12-31 23:59:59.999Z""#,
            r#""2025-12-31T23:59:59Z""#,
        ] {
            let e = parse_import(&timed(bad), 0).unwrap_err();
            assert_eq!((e.kind, e.line), ("InvalidCreatedAt", Some(1)), "{bad}");
        }
        // null is as good as absent: the import's time.
        assert_eq!(parse_import(&timed("null"), 0).map(|i| i.created_at), Ok(vec![None]));
        assert!(is_iso_timestamp("2024-01-01T00:00:00.000Z"));
        assert!(!is_iso_timestamp("2024-01-01T00:00:00.000Zx"));
        assert!(!is_iso_timestamp("2024-01-01T00:00:00.0000"));
    }

    #[test]
    fn log_lines() {
        assert_eq!(log_line("import", "s", "refused", &[]).level(), Level::Warn);
        assert_eq!(
            log_line("reset", "a\"b", "ok", &[("events", 3)]).finish(),
            r#"{"level":"info","event":"admin","action":"reset","storeId":"a\"b","outcome":"ok","events":3}"#
        );
    }
}
