//! The outbox's pure parts: what a sink is, which events it wants, how long it waits after a
//! failure, and the request it is sent (body, signature, headers). The core ([`crate::core`])
//! drives delivery from the store's alarm; the Durable Object sends what is built here.
//!
//! A sink receives every stored event it wants, at least once and in `seqNum` order per store:
//! its cursor (the last `seqNum` handed over) is stored with the store and moves only after the
//! sink accepted a batch, so a lost answer repeats that batch and nothing else. Receivers
//! deduplicate by each event's idempotency key, `storeId:seqNum`.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::admin::export_line;
use crate::storage::StoredItem;

pub use crate::rules::EventFilter;

/// Where a sink's batches go.
#[derive(Clone, PartialEq, Eq)]
pub enum Target {
    /// An HTTP(S) endpoint, one signed `POST` per batch.
    Webhook {
        /// `WEBHOOK_URL`.
        url: String,
        /// `WEBHOOK_SECRET`, the HMAC-SHA256 key.
        secret: String,
    },
    /// A Cloudflare Queue producer binding, one message per batch.
    Queue {
        /// `QUEUE_BINDING`.
        binding: String,
    },
}

impl std::fmt::Debug for Target {
    // The signing secret must never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Webhook { url, .. } => f.debug_struct("Webhook").field("url", url).finish_non_exhaustive(),
            Target::Queue { binding } => f.debug_struct("Queue").field("binding", binding).finish(),
        }
    }
}

/// One configured sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkConfig {
    /// The sink's name in storage, the admin API and log lines: `webhook` or `queue`.
    pub name: &'static str,
    /// Where its batches go.
    pub target: Target,
    /// Which events it receives.
    pub events: EventFilter,
    /// Most events per batch.
    pub batch_size: usize,
    /// Failed attempts in a row after which the sink pauses for the store.
    pub max_attempts: u32,
    /// Wait after the first failure, in ms; doubled after each further one.
    pub retry_base_ms: u64,
    /// Longest wait between attempts, in ms.
    pub retry_max_ms: u64,
    /// An attempt without an answer by then has failed, in ms.
    pub timeout_ms: u64,
}

/// Largest batch body sent to a Queue: Cloudflare refuses messages over 128 KB, and the
/// envelope around the events takes a little.
pub const QUEUE_BODY_BYTES: usize = 120_000;

/// Largest batch body sent to a webhook (a batch holds at least one event, whatever its size).
pub const WEBHOOK_BODY_BYTES: usize = 4 << 20;

impl SinkConfig {
    /// How many bytes of events one batch may carry; a batch is cut short before it passes them.
    pub fn max_body_bytes(&self) -> usize {
        match self.target {
            Target::Webhook { .. } => WEBHOOK_BODY_BYTES,
            Target::Queue { .. } => QUEUE_BODY_BYTES,
        }
    }

    /// The wait before the next attempt after `failures` failed ones in a row (at least one).
    pub fn retry_delay_ms(&self, failures: u32) -> u64 {
        let doublings = failures.saturating_sub(1).min(63);
        self.retry_base_ms
            .saturating_mul(1u64 << doublings)
            .min(self.retry_max_ms)
    }
}

/// A sink's delivery state for one store, as stored with the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkState {
    /// The sink's name ([`SinkConfig::name`]).
    pub sink: String,
    /// The store (kept so that an alarm, which arrives without a request, knows it).
    pub store_id: String,
    /// The last `seqNum` handed over (or skipped as unwanted); 0 before any.
    pub cursor: i64,
    /// Events handed over since the sink was first configured for the store.
    pub delivered: i64,
    /// Failed attempts in a row of the batch after the cursor.
    pub attempts: u32,
    /// Paused after too many failures; nothing is sent until resumed.
    pub paused: bool,
    /// What the last failed attempt got, until an attempt succeeds.
    pub last_error: Option<String>,
    /// When the last attempt started (ms since the epoch).
    pub last_attempt_at: Option<i64>,
    /// Not before this time (ms since the epoch) is the next attempt made.
    pub next_at: i64,
    /// The last `seqNum` of the batch a failed attempt sent: the retry sends the same batch, so
    /// a receiver sees the same events under the same batch key however many attempts it takes.
    pub pending_to: Option<i64>,
    /// Bumped by every write, so a write based on an older read (an admin action during a
    /// delivery) is refused rather than undoing the other.
    pub version: i64,
}

#[derive(Deserialize)]
struct ItemName<'a> {
    #[serde(borrow, rename = "eventEncoded")]
    event: NameOnly<'a>,
}

#[derive(Deserialize)]
struct NameOnly<'a> {
    #[serde(borrow)]
    name: std::borrow::Cow<'a, str>,
}

/// The event name of a stored item (`None` if it has none, which the log never holds).
pub fn item_name(item: &StoredItem) -> Option<String> {
    serde_json::from_str::<ItemName>(&item.json)
        .ok()
        .map(|i| i.event.name.into_owned())
}

/// One event of a batch: the admin export's line for it with its idempotency key first.
pub fn event_json(store_id: &str, item: &StoredItem) -> Option<String> {
    let line = export_line(&item.json)?;
    let fields = line.strip_prefix('{')?;
    let mut out = String::with_capacity(line.len() + store_id.len() + 40);
    out.push_str("{\"idempotencyKey\":");
    crate::util::json::push_str_literal(&mut out, &format!("{store_id}:{}", item.seq_num));
    if fields != "}" {
        out.push(',');
    }
    out.push_str(fields);
    Some(out)
}

/// An event too large for its sink's message on its own, without its `args`: `argsOmitted` and
/// the event's size say so, and the receiver reads the whole event from the admin API's export
/// (`?after=<seqNum − 1>&until=<seqNum>`). Nothing is dropped silently.
pub fn without_args(event_json: &str) -> Option<String> {
    let mut event: serde_json::Map<String, serde_json::Value> = serde_json::from_str(event_json).ok()?;
    event.remove("args");
    event.insert("argsOmitted".into(), serde_json::Value::Bool(true));
    event.insert("bytes".into(), serde_json::Value::from(event_json.len()));
    serde_json::to_string(&event).ok()
}

/// The body of one batch: `{"storeId","sink","backendId","events":[…]}`.
pub fn batch_body(store_id: &str, sink: &str, backend_id: &str, events: &[String]) -> String {
    let mut out = String::with_capacity(events.iter().map(String::len).sum::<usize>() + 128);
    out.push_str("{\"storeId\":");
    crate::util::json::push_str_literal(&mut out, store_id);
    out.push_str(",\"sink\":");
    crate::util::json::push_str_literal(&mut out, sink);
    out.push_str(",\"backendId\":");
    crate::util::json::push_str_literal(&mut out, backend_id);
    out.push_str(",\"events\":[");
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(event);
    }
    out.push_str("]}");
    out
}

/// `x-livestore-signature`: `t=<ms>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`. The time is
/// signed with the body so a receiver can refuse an old request replayed.
pub fn signature(secret: &str, t_millis: i64, body: &str) -> String {
    // HMAC accepts keys of any length.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(t_millis.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let digest = mac.finalize().into_bytes();
    format!("t={t_millis},v1={}", crate::util::hex(&digest))
}

/// What is sent for one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkMessage {
    /// The JSON body ([`batch_body`]).
    pub body: String,
    /// Request headers (a webhook's; a queue has none).
    pub headers: Vec<(&'static str, String)>,
}

/// The message of a batch for `sink`: a webhook's body with its signature and headers, or a
/// queue's body.
pub fn message(
    sink: &SinkConfig,
    store_id: &str,
    (first, last): (i64, i64),
    attempt: u32,
    now_millis: i64,
    body: String,
) -> SinkMessage {
    let headers = match &sink.target {
        Target::Webhook { secret, .. } => vec![
            ("content-type", "application/json".to_owned()),
            ("x-livestore-signature", signature(secret, now_millis, &body)),
            ("idempotency-key", format!("{store_id}:{first}-{last}")),
            ("x-livestore-attempt", attempt.to_string()),
            ("user-agent", "livestore-sync-rs".to_owned()),
        ],
        Target::Queue { .. } => Vec::new(),
    };
    SinkMessage { body, headers }
}

/// Why an admin action on a sink was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkActionError {
    /// No sink of that name is configured (`404`).
    UnknownSink(String),
    /// `skip`'s target is not a `seqNum` of the store (`400`).
    InvalidSkip(String),
}

impl SinkActionError {
    /// The HTTP status and `{"error","message"}` body of the refusal.
    pub fn status_and_body(&self) -> (u16, String) {
        let (status, kind, message) = match self {
            SinkActionError::UnknownSink(m) => (404, "UnknownSink", m),
            SinkActionError::InvalidSkip(m) => (400, "InvalidSkip", m),
        };
        let mut body = String::from("{\"error\":");
        crate::util::json::push_str_literal(&mut body, kind);
        body.push_str(",\"message\":");
        crate::util::json::push_str_literal(&mut body, message);
        body.push('}');
        (status, body)
    }
}

/// Reads a `skip` request's `to` (`None` when absent: skip to the head).
pub fn skip_target(query: Option<&str>) -> Result<Option<i64>, SinkActionError> {
    crate::admin::query_param(query, "to")
        .map(|to| {
            to.trim()
                .parse::<i64>()
                .map_err(|_| SinkActionError::InvalidSkip("to must be an integer seqNum".into()))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let sink = SinkConfig {
            name: "webhook",
            target: Target::Queue { binding: "Q".into() },
            events: EventFilter::default(),
            batch_size: 10,
            max_attempts: 5,
            retry_base_ms: 100,
            retry_max_ms: 1_000,
            timeout_ms: 1_000,
        };
        let waits: Vec<u64> = (1..=6).map(|n| sink.retry_delay_ms(n)).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(sink.retry_delay_ms(u32::MAX), 1_000);
    }

    #[test]
    fn signature_matches_a_known_vector() {
        // HMAC-SHA256("key", "1.{}"), computed independently (Python's hmac).
        assert_eq!(
            signature("key", 1, "{}"),
            "t=1,v1=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
    }

    #[test]
    fn events_carry_their_idempotency_key_first() {
        let item = StoredItem {
            seq_num: 5,
            json: r#"{"eventEncoded":{"name":"v1.A","args":{"x":1},"seqNum":5,"parentSeqNum":4,"clientId":"c","sessionId":"s"},"metadata":{"_tag":"Some","value":{"createdAt":"2026-12-01T06:00:00.000Z"}}}"#.into(),
        };
        assert_eq!(item_name(&item).as_deref(), Some("v1.A"));
        let event = event_json("s\"1", &item).unwrap();
        assert!(
            event.starts_with(r#"{"idempotencyKey":"s\"1:5","name":"v1.A""#),
            "{event}"
        );
        assert!(event.ends_with(r#""createdAt":"2026-12-01T06:00:00.000Z"}"#), "{event}");
        let body = batch_body("s\"1", "webhook", "b", &[event]);
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["events"][0]["seqNum"], 5);
        assert_eq!(parsed["storeId"], "s\"1");
    }
}
