//! The store directory: every store that has events, with its engine, size and activity, kept
//! by one Durable Object of the sync class beside the per-store ones ([`OBJECT_NAME`]), so that
//! listing stores never wakes or scans them.
//!
//! Each store's object sends its figures there after it is opened and, while it is written, at
//! most every [`UPDATE_INTERVAL_MS`] (from its alarm, so a store evicted right after a write
//! still reports it). The admin API lists the directory paged, sorted and filtered by an id
//! prefix. Pure: the parsing of a listing's query, the entry's JSON; the object and its SQL live
//! in `object::directory` and `storage::sql`.

use serde::{Deserialize, Serialize};

use crate::util::json::push_str_literal;
use crate::util::time::iso8601_from_millis;

/// The name of the directory's object in the sync Durable Object namespace. The Worker refuses it
/// as a storeId ([`crate::router::reserved_store_id`]), so no sync or admin request for a store
/// ever reaches it.
pub const OBJECT_NAME: &str = "__livestore_directory__";

/// The host of the directory's internal routes (`https://livestore-directory/<verb>`).
pub const HOST: &str = "livestore-directory";

/// How often a written store sends its figures at most.
pub const UPDATE_INTERVAL_MS: i64 = 10_000;

/// Most entries one page of a listing holds.
pub const MAX_PAGE: usize = 500;

/// A store as the directory holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// The store.
    pub store_id: String,
    /// Its engine, as `STORAGE` names it.
    pub engine: String,
    /// Events stored.
    pub events: u64,
    /// Bytes stored, as the admin API's `approxSizeBytes` counts them.
    pub bytes: u64,
    /// When the directory first heard of it (ms since the epoch).
    #[serde(default)]
    pub first_at: i64,
    /// Its last activity: the last time it was opened or written (ms since the epoch).
    pub last_at: i64,
    /// When it will be deleted for being idle (ms since the epoch), if `EXPIRE_IDLE_STORES_AFTER` is set.
    #[serde(default)]
    pub expires_at: Option<i64>,
}

impl Entry {
    /// The admin API's JSON of the entry.
    pub fn to_json(&self) -> String {
        let mut out = String::from("{\"storeId\":");
        push_str_literal(&mut out, &self.store_id);
        out.push_str(",\"engine\":");
        push_str_literal(&mut out, &self.engine);
        out.push_str(&format!(
            ",\"events\":{},\"bytes\":{},\"firstActivityAt\":\"{}\",\"lastActivityAt\":\"{}\",\"expiresAt\":",
            self.events,
            self.bytes,
            iso8601_from_millis(self.first_at),
            iso8601_from_millis(self.last_at)
        ));
        match self.expires_at {
            Some(at) => out.push_str(&format!("\"{}\"", iso8601_from_millis(at))),
            None => out.push_str("null"),
        }
        out.push('}');
        out
    }
}

/// What a listing is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// The storeId.
    Id,
    /// Last activity.
    LastActivity,
    /// First activity.
    FirstActivity,
    /// Events stored.
    Events,
    /// Bytes stored.
    Bytes,
}

impl Sort {
    /// The directory table's column (a fixed name: never anything a request sent).
    pub fn column(self) -> &'static str {
        match self {
            Sort::Id => "storeId",
            Sort::LastActivity => "lastAt",
            Sort::FirstActivity => "firstAt",
            Sort::Events => "events",
            Sort::Bytes => "bytes",
        }
    }
}

/// A listing's query: `?prefix=&sort=&order=&limit=&offset=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Only stores whose id starts with it.
    pub prefix: String,
    /// The order.
    pub sort: Sort,
    /// Descending.
    pub descending: bool,
    /// Entries per page.
    pub limit: usize,
    /// Entries skipped.
    pub offset: usize,
}

impl ListQuery {
    /// Reads a listing's query string; the error says which parameter is wrong.
    pub fn parse(query: Option<&str>) -> Result<ListQuery, String> {
        let param = |name: &str| crate::admin::query_param(query, name).filter(|v| !v.is_empty());
        let sort = match param("sort").as_deref() {
            None | Some("lastActivity") => Sort::LastActivity,
            Some("id") => Sort::Id,
            Some("firstActivity") => Sort::FirstActivity,
            Some("events") => Sort::Events,
            Some("bytes") => Sort::Bytes,
            Some(_) => return Err("sort must be id, lastActivity, firstActivity, events or bytes".into()),
        };
        let descending = match param("order").as_deref() {
            None => sort != Sort::Id,
            Some("desc") => true,
            Some("asc") => false,
            Some(_) => return Err("order must be asc or desc".into()),
        };
        let number = |name: &str, default: usize, max: usize| match param(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| format!("{name} must be a whole number up to {max}")),
        };
        let limit = number("limit", 50, MAX_PAGE)?.max(1);
        let offset = number("offset", 0, 1_000_000_000)?;
        Ok(ListQuery {
            prefix: param("prefix").unwrap_or_default(),
            sort,
            descending,
            limit,
            offset,
        })
    }
}

/// One page of a listing as the admin API answers it.
pub fn page_json(entries: &[Entry], total: u64, query: &ListQuery) -> String {
    let mut out = String::from("{\"stores\":[");
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&entry.to_json());
    }
    out.push_str(&format!(
        "],\"total\":{total},\"offset\":{},\"limit\":{}}}",
        query.offset, query.limit
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        let q = ListQuery::parse(None).unwrap();
        assert_eq!(
            (q.sort, q.descending, q.limit, q.offset),
            (Sort::LastActivity, true, 50, 0)
        );
        let q = ListQuery::parse(Some("prefix=team%2Fa&sort=id&limit=10&offset=20")).unwrap();
        assert_eq!(
            (q.prefix.as_str(), q.sort, q.descending, q.limit, q.offset),
            ("team/a", Sort::Id, false, 10, 20)
        );
        let q = ListQuery::parse(Some("sort=bytes&order=asc&limit=0")).unwrap();
        assert_eq!((q.sort, q.descending, q.limit), (Sort::Bytes, false, 1));
        for bad in ["sort=name", "order=up", "limit=501", "offset=-1", "limit=x"] {
            assert!(ListQuery::parse(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn entry_json() {
        let e = Entry {
            store_id: "a\"b".into(),
            engine: "do-sqlite".into(),
            events: 3,
            bytes: 120,
            first_at: 0,
            last_at: 1_795_376_491_539,
            expires_at: None,
        };
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["storeId"], "a\"b");
        assert_eq!(v["lastActivityAt"], "2026-11-22T19:41:31.539Z");
        assert_eq!(v["expiresAt"], serde_json::Value::Null);
        let page: serde_json::Value =
            serde_json::from_str(&page_json(&[e.clone(), e], 7, &ListQuery::parse(None).unwrap())).unwrap();
        assert_eq!(page["stores"].as_array().map(Vec::len), Some(2));
        assert_eq!(page["total"], 7);
    }
}
