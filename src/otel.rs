//! Spans for connect, push and pull, encoded as OTLP/HTTP JSON (`POST <endpoint>/v1/traces`),
//! the counterpart of the reference's `otel: { baseUrl, serviceName }` option.
//!
//! Tracing is off unless `OTEL_EXPORTER_OTLP_ENDPOINT` is set; when off, no span is built. A span
//! joins the client's trace when the RPC request carries Effect's `traceId` / `spanId`.

use crate::util::hex;
use crate::util::json::push_str_literal;

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
}

/// One finished span.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// e.g. `sync.push`.
    pub name: &'static str,
    /// 32 lower-case hex digits.
    pub trace_id: String,
    /// 16 lower-case hex digits.
    pub span_id: String,
    /// The client's span, when the request named one.
    pub parent_span_id: Option<String>,
    /// Start, in milliseconds since the Unix epoch.
    pub start_ms: i64,
    /// End, in milliseconds since the Unix epoch.
    pub end_ms: i64,
    /// Attributes such as `livestore.store_id`.
    pub attributes: Vec<(&'static str, Value)>,
    /// The error message when the operation failed.
    pub error: Option<String>,
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && s.bytes().any(|b| b != b'0')
}

impl Span {
    /// Starts a span. `random` supplies fresh ids; a valid `parent` (trace id, span id from the
    /// client's request) makes the span part of the client's trace.
    pub fn start(name: &'static str, start_ms: i64, random: [u8; 24], parent: Option<(&str, &str)>) -> Span {
        let parent = parent.filter(|(trace, span)| is_hex(trace, 32) && is_hex(span, 16));
        Span {
            name,
            trace_id: match parent {
                Some((trace, _)) => trace.to_owned(),
                None => hex(&random[..16]),
            },
            span_id: hex(&random[16..]),
            parent_span_id: parent.map(|(_, span)| span.to_owned()),
            start_ms,
            end_ms: start_ms,
            attributes: Vec::new(),
            error: None,
        }
    }

    /// Adds a string attribute.
    pub fn attr(&mut self, key: &'static str, value: impl Into<String>) -> &mut Self {
        self.attributes.push((key, Value::Str(value.into())));
        self
    }

    /// Adds an integer attribute.
    pub fn attr_int(&mut self, key: &'static str, value: i64) -> &mut Self {
        self.attributes.push((key, Value::Int(value)));
        self
    }

    /// Ends the span with an outcome: `Ok(())`, or the error's message.
    pub fn end(&mut self, end_ms: i64, outcome: Result<(), String>) -> &mut Self {
        self.end_ms = end_ms.max(self.start_ms);
        let label = match &outcome {
            Ok(()) => "ok".to_owned(),
            Err(_) => "error".to_owned(),
        };
        self.attr("livestore.outcome", label);
        self.error = outcome.err();
        self
    }
}

fn push_attributes(out: &mut String, attributes: &[(&'static str, Value)]) {
    out.push('[');
    for (i, (key, value)) in attributes.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r#"{"key":"#);
        push_str_literal(out, key);
        out.push_str(r#","value":"#);
        match value {
            Value::Str(s) => {
                out.push_str(r#"{"stringValue":"#);
                push_str_literal(out, s);
                out.push('}');
            }
            // OTLP JSON encodes 64-bit integers as strings.
            Value::Int(n) => out.push_str(&format!(r#"{{"intValue":"{n}"}}"#)),
        }
        out.push('}');
    }
    out.push(']');
}

/// The OTLP/HTTP JSON body (`ExportTraceServiceRequest`) for `spans`.
pub fn export_body(service_name: &str, spans: &[Span]) -> String {
    let mut out = String::with_capacity(256 + spans.len() * 256);
    out.push_str(r#"{"resourceSpans":[{"resource":{"attributes":"#);
    push_attributes(&mut out, &[("service.name", Value::Str(service_name.to_owned()))]);
    out.push_str(r#"},"scopeSpans":[{"scope":{"name":"livestore-sync"},"spans":["#);
    for (i, span) in spans.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r#"{"traceId":""#);
        out.push_str(&span.trace_id);
        out.push_str(r#"","spanId":""#);
        out.push_str(&span.span_id);
        out.push('"');
        if let Some(parent) = &span.parent_span_id {
            out.push_str(r#","parentSpanId":""#);
            out.push_str(parent);
            out.push('"');
        }
        out.push_str(r#","name":"#);
        push_str_literal(&mut out, span.name);
        // kind 2 = SERVER; times are nanoseconds, as strings.
        out.push_str(&format!(
            r#","kind":2,"startTimeUnixNano":"{}000000","endTimeUnixNano":"{}000000","attributes":"#,
            span.start_ms, span.end_ms
        ));
        push_attributes(&mut out, &span.attributes);
        match &span.error {
            None => out.push_str(r#","status":{"code":1}}"#),
            Some(message) => {
                out.push_str(r#","status":{"code":2,"message":"#);
                push_str_literal(&mut out, message);
                out.push_str("}}");
            }
        }
    }
    out.push_str("]}]}]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn encodes_an_otlp_export_request() {
        let mut span = Span::start(
            "sync.push",
            1_700_000_000_000,
            [7; 24],
            Some(("5137635b603b08c6952aba0ec9b80efb", "a8a8f648ec72ae90")),
        );
        span.attr("livestore.store_id", "s\"1")
            .attr_int("livestore.batch_size", 3);
        span.end(1_700_000_000_005, Err("ServerAheadError".into()));
        let body: serde_json::Value = serde_json::from_str(&export_body("svc", &[span])).unwrap();
        let rs = &body["resourceSpans"][0];
        assert_eq!(
            rs["resource"]["attributes"][0],
            json!({"key":"service.name","value":{"stringValue":"svc"}})
        );
        let s = &rs["scopeSpans"][0]["spans"][0];
        assert_eq!(s["traceId"], "5137635b603b08c6952aba0ec9b80efb");
        assert_eq!(s["parentSpanId"], "a8a8f648ec72ae90");
        assert_eq!(s["spanId"], "0707070707070707");
        assert_eq!(s["startTimeUnixNano"], "1700000000000000000");
        assert_eq!(s["endTimeUnixNano"], "1700000000005000000");
        assert_eq!(s["status"], json!({"code":2,"message":"ServerAheadError"}));
        assert_eq!(
            s["attributes"][1],
            json!({"key":"livestore.batch_size","value":{"intValue":"3"}})
        );
        assert_eq!(
            s["attributes"][2],
            json!({"key":"livestore.outcome","value":{"stringValue":"error"}})
        );
    }

    #[test]
    fn invalid_parents_start_a_new_trace() {
        for parent in [
            ("xyz", "a8a8f648ec72ae90"),
            ("0".repeat(32).as_str(), "a8a8f648ec72ae90"),
            ("5137635b603b08c6952aba0ec9b80efb", ""),
        ] {
            let span = Span::start("sync.pull", 0, [1; 24], Some(parent));
            assert_eq!(span.trace_id, "01".repeat(16));
            assert_eq!(span.parent_span_id, None);
        }
    }
}
