//! Structured logs: one JSON object per line, written with `console.log` (`console.error` for
//! errors) so `wrangler dev`, `wrangler tail` and Workers Logs show them and can filter on their
//! fields.
//!
//! A line is `{"level":…,"event":…, …fields}`. Field names are `&'static str`, so only names
//! written in this crate can appear; values are numbers, booleans, or strings the code chose to
//! log (store ids, transports, error names). Nothing here takes an event, a payload or a header:
//! the call sites log counts and sizes of those, never their contents.
//!
//! Lines carry no timestamp: `wrangler tail` and Workers Logs stamp every console message
//! themselves, and `Date.now()` in a Worker stands still during synchronous work anyway.
//!
//! The formatter is plain Rust (tested natively); only [`emit`] touches the runtime.

use std::fmt::Write as _;

use crate::util::json::push_str_literal;

/// How important a line is; a [`LogLevel`] lets through its own level and the ones above it
/// (`error` < `warn` < `info` < `debug` in verbosity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Something failed that the client cannot fix (storage errors, a missing binding).
    Error,
    /// A request was refused (bad token, invalid payload, limits).
    Warn,
    /// Normal traffic: connects, pushes, pulls, admin actions.
    Info,
    /// Details: disconnects.
    Debug,
}

impl Level {
    /// The level's name as it appears in lines and in `LOG_LEVEL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

/// The most verbose level written (`LOG_LEVEL`); `off` writes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLevel(Option<Level>);

impl Default for LogLevel {
    fn default() -> Self {
        LogLevel::INFO
    }
}

impl LogLevel {
    /// No lines at all.
    pub const OFF: LogLevel = LogLevel(None);
    /// The default: everything but `debug`.
    pub const INFO: LogLevel = LogLevel(Some(Level::Info));

    /// Reads a `LOG_LEVEL` value: `off`, `error`, `warn`, `info` or `debug`, in any case and
    /// with surrounding spaces; `None` for anything else.
    pub fn parse(value: &str) -> Option<LogLevel> {
        let level = match value.trim().to_ascii_lowercase().as_str() {
            "off" | "none" => return Some(LogLevel::OFF),
            "error" => Level::Error,
            "warn" | "warning" => Level::Warn,
            "info" => Level::Info,
            "debug" => Level::Debug,
            _ => return None,
        };
        Some(LogLevel(Some(level)))
    }

    /// Whether lines of `level` are written.
    #[inline]
    pub fn enabled(self, level: Level) -> bool {
        self.0.is_some_and(|max| level <= max)
    }

    /// A new line of `level` for `event`, or `None` when the level is off, so nothing is
    /// formatted for lines nobody will see.
    #[inline]
    pub fn line(self, level: Level, event: &'static str) -> Option<Line> {
        self.enabled(level).then(|| Line::new(level, event))
    }
}

/// One log line being built; [`Line::finish`] gives its text, [`emit`] writes it. Building a
/// line allocates its string once (plus growth for long store ids).
#[derive(Debug)]
pub struct Line {
    level: Level,
    out: String,
}

impl Line {
    /// Starts `{"level":…,"event":…`.
    pub fn new(level: Level, event: &'static str) -> Line {
        let mut out = String::with_capacity(192);
        out.push_str(r#"{"level":""#);
        out.push_str(level.as_str());
        out.push_str(r#"","event":"#);
        push_str_literal(&mut out, event);
        Line { level, out }
    }

    fn key(&mut self, key: &'static str) {
        self.out.push(',');
        push_str_literal(&mut self.out, key);
        self.out.push(':');
    }

    /// Adds a string field.
    pub fn str(mut self, key: &'static str, value: &str) -> Line {
        self.key(key);
        push_str_literal(&mut self.out, value);
        self
    }

    /// Adds an integer field.
    pub fn int(mut self, key: &'static str, value: i64) -> Line {
        self.key(key);
        let _ = write!(self.out, "{value}");
        self
    }

    /// Adds an integer field, or `null` for `None`.
    pub fn opt_int(mut self, key: &'static str, value: Option<i64>) -> Line {
        match value {
            Some(value) => self.int(key, value),
            None => {
                self.key(key);
                self.out.push_str("null");
                self
            }
        }
    }

    /// Adds a boolean field.
    pub fn bool(mut self, key: &'static str, value: bool) -> Line {
        self.key(key);
        self.out.push_str(if value { "true" } else { "false" });
        self
    }

    /// Adds `"ms":…`, the milliseconds since `started` (see [`Clock`]); nothing when the
    /// clock was not read.
    pub fn ms(self, started: Option<i64>, now: impl FnOnce() -> i64) -> Line {
        match started {
            Some(started) => self.int("ms", (now() - started).max(0)),
            None => self,
        }
    }

    /// The line's level.
    pub fn level(&self) -> Level {
        self.level
    }

    /// The finished JSON text.
    pub fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

/// Writes a line to the console: `console.error` for errors, so Workers Logs and `wrangler
/// tail` flag them; `console.log` for the rest, which `wrangler dev` prints undecorated (it
/// wraps `console.warn` text in a coloured banner). The line's own `level` is the one to filter on.
#[cfg(target_arch = "wasm32")]
pub fn emit(line: Line) {
    let level = line.level;
    let text = line.finish();
    match level {
        Level::Error => worker::console_error!("{text}"),
        Level::Warn | Level::Info | Level::Debug => worker::console_log!("{text}"),
    }
}

/// Reads the clock only when a line of `level` will be written, so a disabled level costs no
/// call into JavaScript; pass the result to [`Line::ms`].
#[cfg(target_arch = "wasm32")]
pub fn start_clock(log_level: LogLevel, level: Level) -> Option<i64> {
    log_level.enabled(level).then(crate::js::now_millis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn parse(line: Line) -> Value {
        let text = line.finish();
        assert!(!text.contains('\n'), "{text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    #[test]
    fn levels() {
        assert_eq!(LogLevel::default(), LogLevel::INFO);
        let info = LogLevel::INFO;
        assert!(info.enabled(Level::Error) && info.enabled(Level::Warn) && info.enabled(Level::Info));
        assert!(!info.enabled(Level::Debug));
        let warn = LogLevel::parse("WARN").unwrap();
        assert!(warn.enabled(Level::Error) && warn.enabled(Level::Warn) && !warn.enabled(Level::Info));
        assert!(LogLevel::parse(" debug ").unwrap().enabled(Level::Debug));
        assert!(LogLevel::parse("error").unwrap().line(Level::Warn, "x").is_none());
        for off in ["off", "none", "OFF"] {
            let off = LogLevel::parse(off).unwrap();
            assert!(!off.enabled(Level::Error));
            assert!(off.line(Level::Error, "error").is_none());
        }
        assert_eq!(LogLevel::parse("warning"), LogLevel::parse("warn"));
        for bad in ["", "verbose", "3", "infoo"] {
            assert_eq!(LogLevel::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn fields_and_escaping() {
        let line = Line::new(Level::Info, "push")
            .str("storeId", "a\"b\\c\nd\u{1}é")
            .str("transport", "ws")
            .int("events", 3)
            .int("bytes", -1)
            .opt_int("cursor", None)
            .bool("live", true)
            .ms(Some(10), || 12)
            .str("outcome", "ok");
        assert_eq!(
            parse(line),
            serde_json::json!({
                "level": "info", "event": "push", "storeId": "a\"b\\c\nd\u{1}é", "transport": "ws",
                "events": 3, "bytes": -1, "cursor": null, "live": true, "ms": 2, "outcome": "ok"
            })
        );
        // Keys come first in the order they were added, level and event leading.
        let text = Line::new(Level::Warn, "connect").str("a", "1").finish();
        assert_eq!(text, r#"{"level":"warn","event":"connect","a":"1"}"#);
        // No clock read: no `ms`, and the clock is not called.
        let v = parse(Line::new(Level::Debug, "x").ms(None, || panic!("read")));
        assert!(v.get("ms").is_none());
        // A clock that went backwards never gives a negative duration.
        assert_eq!(parse(Line::new(Level::Info, "x").ms(Some(5), || 4))["ms"], 0);
    }
}
