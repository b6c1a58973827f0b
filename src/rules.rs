//! What a deployment lets clients write (`ALLOWED_EVENTS`, `MAX_ARGS_BYTES`, `MAX_STORE_EVENTS`,
//! `MAX_STORE_BYTES`), and the event-name patterns those and the outbox's sinks are written in.
//!
//! The sync protocol can only refuse a push whole, so a rule broken by any event refuses the
//! batch, and nothing of it is stored; what a store already holds is never looked at again.

use crate::core::Error;
use crate::protocol::EventIn;

/// Event-name patterns: `*` matches any run of characters; a pattern starting with `!`
/// excludes. An event is wanted when it matches an including pattern (or there is none) and
/// no excluding one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter {
    include: Vec<String>,
    exclude: Vec<String>,
}

impl Default for EventFilter {
    fn default() -> Self {
        EventFilter {
            include: vec!["*".to_owned()],
            exclude: Vec::new(),
        }
    }
}

impl EventFilter {
    /// Reads a comma-separated list of patterns; `None` when it names nothing to include or
    /// exclude (an empty list, or an empty `!`).
    pub fn parse(list: &str) -> Option<EventFilter> {
        let mut filter = EventFilter {
            include: Vec::new(),
            exclude: Vec::new(),
        };
        for pattern in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match pattern.strip_prefix('!') {
                Some("") => return None,
                Some(excluded) => filter.exclude.push(excluded.trim().to_owned()),
                None => filter.include.push(pattern.to_owned()),
            }
        }
        if filter.include.is_empty() && filter.exclude.is_empty() {
            return None;
        }
        if filter.include.is_empty() {
            filter.include.push("*".to_owned());
        }
        Some(filter)
    }

    /// Whether the sink wants an event of this name.
    pub fn wants(&self, name: &str) -> bool {
        self.include.iter().any(|p| glob(p, name)) && !self.exclude.iter().any(|p| glob(p, name))
    }
}

/// Whether `name` matches `pattern`, where `*` stands for any run of characters.
fn glob(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// The rules pushes must keep; the default has none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventRules {
    /// Event names clients may push (`ALLOWED_EVENTS`); `None` allows every name.
    pub names: Option<EventFilter>,
    /// Largest `args` JSON text of one event, in bytes (`MAX_ARGS_BYTES`).
    pub max_args_bytes: Option<usize>,
    /// Most events one store may hold (`MAX_STORE_EVENTS`).
    pub max_store_events: Option<u64>,
    /// Most bytes one store may hold, counted as [`stored_bytes`] does (`MAX_STORE_BYTES`).
    pub max_store_bytes: Option<u64>,
}

/// What a store holds, as its quotas count it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Events stored.
    pub events: u64,
    /// Bytes stored, as [`stored_bytes`] counts them.
    pub bytes: u64,
}

impl Usage {
    /// This usage with `more` added.
    pub fn plus(self, more: Usage) -> Usage {
        Usage {
            events: self.events.saturating_add(more.events),
            bytes: self.bytes.saturating_add(more.bytes),
        }
    }
}

/// The bytes one stored event counts for: its text columns and 16 for the numbers, the same
/// sum `storage::sql::size_bytes` takes over a stored log (the admin API's `approxSizeBytes`).
pub fn stored_bytes(event: &EventIn<'_>, created_at: &str) -> u64 {
    let args = event.args.map_or(0, |a| a.get().len());
    (event.name.len() + args + created_at.len() + event.client_id.len() + event.session_id.len() + 16) as u64
}

/// What a batch adds to its store.
pub fn batch_usage(batch: &[EventIn<'_>], created_at: &str) -> Usage {
    Usage {
        events: batch.len() as u64,
        bytes: batch.iter().map(|e| stored_bytes(e, created_at)).sum(),
    }
}

impl EventRules {
    /// Whether pushes must know what their store holds.
    pub fn has_quota(&self) -> bool {
        self.max_store_events.is_some() || self.max_store_bytes.is_some()
    }

    /// Checks each event of a batch on its own: its name, then the size of its `args`.
    pub fn check_events(&self, batch: &[EventIn<'_>]) -> Result<(), Error> {
        if self.names.is_none() && self.max_args_bytes.is_none() {
            return Ok(());
        }
        for (index, event) in batch.iter().enumerate() {
            if self.names.as_ref().is_some_and(|names| !names.wants(&event.name)) {
                return Err(Error::EventNotAllowed {
                    index,
                    name: event.name.to_string(),
                });
            }
            let size = event.args.map_or(0, |a| a.get().len());
            if let Some(max) = self.max_args_bytes.filter(|max| size > *max) {
                return Err(Error::ArgsTooLarge { index, size, max });
            }
        }
        Ok(())
    }

    /// Checks that a store holding `usage` may take `adding` more.
    pub fn check_quota(&self, usage: Usage, adding: Usage) -> Result<(), Error> {
        let after = usage.plus(adding);
        if let Some(max) = self.max_store_events.filter(|max| after.events > *max) {
            return Err(Error::StoreQuota {
                setting: "MAX_STORE_EVENTS",
                max,
                would_be: after.events,
            });
        }
        if let Some(max) = self.max_store_bytes.filter(|max| after.bytes > *max) {
            return Err(Error::StoreQuota {
                setting: "MAX_STORE_BYTES",
                max,
                would_be: after.bytes,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, args: &str) -> EventIn<'static> {
        let json =
            format!(r#"{{"name":"{name}","args":{args},"seqNum":1,"parentSeqNum":0,"clientId":"c","sessionId":"s"}}"#);
        serde_json::from_str(Box::leak(json.into_boxed_str())).unwrap()
    }

    #[test]
    fn patterns() {
        let all = EventFilter::default();
        assert!(all.wants("v1.TodoCreated"));
        let f = EventFilter::parse("v1.Member*, *Created ,!v1.MemberLeft").unwrap();
        assert!(f.wants("v1.MemberInvited"));
        assert!(f.wants("v2.TodoCreated"));
        assert!(!f.wants("v1.MemberLeft"));
        assert!(!f.wants("v1.TodoDeleted"));
        let but = EventFilter::parse("!debug*").unwrap();
        assert!(but.wants("v1.X") && !but.wants("debugThing"));
        assert!(EventFilter::parse(" , ").is_none());
        assert!(EventFilter::parse("!").is_none());
        assert!(glob("a*b*c", "aXbYc") && !glob("a*b*c", "aXbY") && glob("*", "") && !glob("ab", "abc"));
        assert!(glob("a*a", "aa") && !glob("a*a", "a"));
    }

    #[test]
    fn names_and_args() {
        let rules = EventRules {
            names: EventFilter::parse("v1.Todo*,!v1.TodoPurged"),
            max_args_bytes: Some(10),
            ..EventRules::default()
        };
        assert_eq!(rules.check_events(&[event("v1.TodoCreated", r#"{"a":1}"#)]), Ok(()));
        let batch = [event("v1.TodoCreated", "{}"), event("v1.TodoPurged", "{}")];
        assert_eq!(
            rules.check_events(&batch),
            Err(Error::EventNotAllowed {
                index: 1,
                name: "v1.TodoPurged".into()
            })
        );
        let big = [event("v1.TodoCreated", r#"{"text":"0123456789"}"#)];
        assert_eq!(
            rules.check_events(&big),
            Err(Error::ArgsTooLarge {
                index: 0,
                size: 21,
                max: 10
            })
        );
        assert_eq!(EventRules::default().check_events(&big), Ok(()));
    }

    #[test]
    fn quotas() {
        let rules = EventRules {
            max_store_events: Some(3),
            max_store_bytes: Some(1_000),
            ..EventRules::default()
        };
        assert!(rules.has_quota() && !EventRules::default().has_quota());
        let held = Usage { events: 2, bytes: 900 };
        assert_eq!(rules.check_quota(held, Usage { events: 1, bytes: 100 }), Ok(()));
        assert!(matches!(
            rules.check_quota(held, Usage { events: 2, bytes: 10 }),
            Err(Error::StoreQuota {
                setting: "MAX_STORE_EVENTS",
                max: 3,
                would_be: 4
            })
        ));
        assert!(matches!(
            rules.check_quota(held, Usage { events: 1, bytes: 101 }),
            Err(Error::StoreQuota {
                setting: "MAX_STORE_BYTES",
                ..
            })
        ));
        let e = event("v1.A", r#"{"x":1}"#);
        // name 4 + args 7 + createdAt 24 + clientId 1 + sessionId 1 + 16.
        assert_eq!(stored_bytes(&e, "2026-12-01T10:00:00.000Z"), 53);
    }
}
