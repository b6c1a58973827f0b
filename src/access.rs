//! What an admitted sync connection may do: read only, or read and write, and until when.
//!
//! The Worker decides it when it admits a request (a `READ_TOKEN`, or a signed token's `access`
//! and `exp` claims) and tells the store's object in [`HEADER`]. The header can only take rights
//! away: a request without it may read and write and never expires, which is what the object
//! gives a caller that reached it without the Worker's admission (the app's own Worker over DO
//! RPC or its own routing). So a client that sends the header itself gains nothing, and the
//! Worker drops it anyway.

/// The request header that carries a [`Grant`] from the Worker to the store's object.
pub const HEADER: &str = "x-livestore-grant";

/// What an admitted connection may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Grant {
    /// Pulls only: every push is refused with a `ReadOnlyError`.
    pub read_only: bool,
    /// When the credential stops being accepted (Unix seconds, leeway included): a WebSocket
    /// admitted by it is closed then. `None` for credentials that do not expire.
    pub expires_at: Option<i64>,
}

impl Grant {
    /// Reading and writing, for good: a shared `AUTH_TOKEN`, open access, or no admission at all.
    pub const FULL: Grant = Grant {
        read_only: false,
        expires_at: None,
    };

    /// Whether the grant takes anything away, so that the object must be told.
    pub fn restricts(&self) -> bool {
        self.read_only || self.expires_at.is_some()
    }

    /// The header's value: `read` or `write`, then `; exp=<seconds>` when it expires.
    pub fn to_header(&self) -> String {
        let access = if self.read_only { "read" } else { "write" };
        match self.expires_at {
            Some(at) => format!("{access}; exp={at}"),
            None => access.to_owned(),
        }
    }

    /// Reads the header. Anything unreadable restricts as much as it can: read only (an
    /// unreadable expiry is dropped, since no time can be read from it).
    pub fn from_header(value: Option<&str>) -> Grant {
        let Some(value) = value else { return Grant::FULL };
        let mut parts = value.split(';').map(str::trim);
        let read_only = parts.next() != Some("write");
        let expires_at = parts.find_map(|p| p.strip_prefix("exp=")).and_then(|s| s.parse().ok());
        Grant { read_only, expires_at }
    }

    /// Whether the credential has run out at `now` (Unix seconds).
    pub fn expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        for grant in [
            Grant::FULL,
            Grant {
                read_only: true,
                expires_at: None,
            },
            Grant {
                read_only: false,
                expires_at: Some(1_700_000_030),
            },
            Grant {
                read_only: true,
                expires_at: Some(5),
            },
        ] {
            assert_eq!(Grant::from_header(Some(&grant.to_header())), grant);
        }
        assert_eq!(Grant::from_header(None), Grant::FULL);
        assert!(!Grant::FULL.restricts());
    }

    #[test]
    fn unreadable_header_restricts() {
        let g = Grant::from_header(Some("WRITE"));
        assert!(g.read_only);
        assert_eq!(Grant::from_header(Some("write; exp=soon")), Grant::FULL);
        assert!(Grant::from_header(Some("")).read_only);
    }

    #[test]
    fn expiry() {
        let g = Grant {
            read_only: false,
            expires_at: Some(100),
        };
        assert!(!g.expired(99));
        assert!(g.expired(100));
        assert!(!Grant::FULL.expired(i64::MAX));
    }
}
