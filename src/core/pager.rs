//! Cutting a stream of batch items into `PullResponse` pages: the page limits of every pull and
//! every fan-out.

use crate::protocol::server::{pull_response, pull_response_overhead, PageInfo};
use crate::util::json::str_literal;

/// Page limits. The defaults are the reference's (`MAX_PULL_EVENTS_PER_MESSAGE`,
/// `MAX_TRANSPORT_PAYLOAD_BYTES`), which keep every frame under Cloudflare's WebSocket cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most events in one page.
    pub max_events_per_page: usize,
    /// Most bytes of one page's `PullResponse` JSON (without the RPC envelope).
    pub max_page_bytes: usize,
    /// Rows read from storage per query while pulling.
    pub read_batch: usize,
    /// Most events one push may carry (`MAX_PUSH_EVENTS`).
    pub max_events_per_push: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_events_per_page: 100,
            max_page_bytes: 900_000,
            read_batch: 256,
            max_events_per_push: 100,
        }
    }
}

enum Mode {
    /// A pull: pages say how many events follow them.
    Counted { total: u64 },
    /// A push broadcast: every page is `NoMore`, as the reference sends them.
    Broadcast,
}

/// Accumulates batch items and hands out finished pages.
pub struct Pager {
    limits: Limits,
    mode: Mode,
    backend_id_literal: String,
    overhead: usize,
    items: String,
    count: usize,
    sent: u64,
    pages: u64,
}

impl Pager {
    /// A pager for a pull of `total` events.
    pub fn counted(backend_id: &str, total: u64, limits: Limits) -> Self {
        Self::new(backend_id, Mode::Counted { total }, limits)
    }

    /// A pager for broadcasting a pushed batch to live pulls.
    pub fn broadcast(backend_id: &str, limits: Limits) -> Self {
        Self::new(backend_id, Mode::Broadcast, limits)
    }

    fn new(backend_id: &str, mode: Mode, limits: Limits) -> Self {
        let backend_id_literal = str_literal(backend_id);
        Pager {
            overhead: pull_response_overhead(&backend_id_literal),
            backend_id_literal,
            limits,
            mode,
            items: String::new(),
            count: 0,
            sent: 0,
            pages: 0,
        }
    }

    /// Adds one item; returns the previous page when this item does not fit on it.
    /// An item too large for any page goes out on a page of its own rather than being dropped.
    pub fn add(&mut self, item: &str) -> Option<String> {
        let full = self.count > 0
            && (self.count >= self.limits.max_events_per_page
                || self.overhead + self.items.len() + 1 + item.len() > self.limits.max_page_bytes);
        let page = if full { Some(self.flush(true)) } else { None };
        if self.count > 0 {
            self.items.push(',');
        }
        self.items.push_str(item);
        self.count += 1;
        page
    }

    /// The last page; for a pull that found nothing, the one empty `NoMore` page.
    pub fn finish(mut self) -> Option<String> {
        if self.count > 0 {
            Some(self.flush(false))
        } else if self.pages == 0 && matches!(self.mode, Mode::Counted { .. }) {
            Some(pull_response("", PageInfo::NoMore, &self.backend_id_literal))
        } else {
            None
        }
    }

    fn flush(&mut self, more_follow: bool) -> String {
        self.sent += self.count as u64;
        let info = match self.mode {
            Mode::Broadcast => PageInfo::NoMore,
            Mode::Counted { total } => {
                let remaining = total.saturating_sub(self.sent);
                // More rows than counted can only appear if events were appended during the
                // pull; the page still must not claim to be the last.
                if remaining > 0 || more_follow {
                    PageInfo::MoreKnown(remaining.max(1))
                } else {
                    PageInfo::NoMore
                }
            }
        };
        let page = pull_response(&self.items, info, &self.backend_id_literal);
        self.items.clear();
        self.count = 0;
        self.pages += 1;
        page
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn item(seq: usize, pad: usize) -> String {
        format!(r#"{{"eventEncoded":{{"seqNum":{seq},"text":"{}"}}}}"#, "x".repeat(pad))
    }

    fn run(total: usize, pad: usize, limits: Limits) -> Vec<Value> {
        let mut pager = Pager::counted("b", total as u64, limits);
        let mut pages: Vec<String> = Vec::new();
        for i in 0..total {
            pages.extend(pager.add(&item(i, pad)));
        }
        pages.extend(pager.finish());
        pages.iter().map(|p| serde_json::from_str(p).unwrap()).collect()
    }

    #[test]
    fn empty_pull_is_one_empty_page() {
        let pages = run(0, 0, Limits::default());
        assert_eq!(pages.len(), 1);
        assert_eq!(pages[0]["batch"].as_array().unwrap().len(), 0);
        assert_eq!(pages[0]["pageInfo"]["_tag"], "NoMore");
        assert_eq!(pages[0]["backendId"], "b");
    }

    #[test]
    fn counts_pages_with_exact_remaining() {
        let pages = run(250, 10, Limits::default());
        let sizes: Vec<usize> = pages.iter().map(|p| p["batch"].as_array().unwrap().len()).collect();
        assert_eq!(sizes, [100, 100, 50]);
        assert_eq!(pages[0]["pageInfo"]["remaining"], 150);
        assert_eq!(pages[1]["pageInfo"]["remaining"], 50);
        assert_eq!(pages[2]["pageInfo"]["_tag"], "NoMore");
    }

    #[test]
    fn splits_by_bytes() {
        let limits = Limits::default();
        let pages = run(60, 120_000, limits);
        let mut seen = 0;
        for (i, p) in pages.iter().enumerate() {
            let len = serde_json::to_string(p).unwrap().len();
            assert!(len <= limits.max_page_bytes, "page {i} has {len} bytes");
            seen += p["batch"].as_array().unwrap().len();
            let last = i == pages.len() - 1;
            assert_eq!(p["pageInfo"]["_tag"], if last { "NoMore" } else { "MoreKnown" });
            if !last {
                assert_eq!(p["pageInfo"]["remaining"], 60 - seen);
            }
        }
        assert_eq!(seen, 60);
        assert!(pages.len() >= 9);
    }

    #[test]
    fn oversize_item_gets_its_own_page() {
        let limits = Limits {
            max_page_bytes: 1_000,
            ..Limits::default()
        };
        let pages = run(3, 2_000, limits);
        assert_eq!(pages.len(), 3);
    }

    #[test]
    fn broadcast_pages_are_all_no_more() {
        let mut pager = Pager::broadcast("b", Limits::default());
        let mut pages = Vec::new();
        for i in 0..150 {
            pages.extend(pager.add(&item(i, 1)));
        }
        pages.extend(pager.finish());
        assert_eq!(pages.len(), 2);
        for p in pages {
            assert!(p.contains(r#""pageInfo":{"_tag":"NoMore"}"#));
        }
        assert!(Pager::broadcast("b", Limits::default()).finish().is_none());
    }
}
