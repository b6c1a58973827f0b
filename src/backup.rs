//! Backups of stores to R2 (`BACKUP_BUCKET`): each store's object writes its new events, as the
//! admin export's NDJSON lines, to objects named by the store, its backendId and the seqNum range
//! they hold; a restore reads them back in order and imports them into an empty store.
//!
//! Pure: the object names and how a listing of them is read. The store's side is
//! `core::backup`, the R2 calls `object::host`.

use crate::util::uri::encode_uri_component;

/// Zero-padded width of the seqNums in an object name, so names sort as their ranges do.
const SEQ_WIDTH: usize = 16;

/// The name prefix of every backup object of a store (`<storeId, percent-encoded>/`).
pub fn store_prefix(store_id: &str) -> String {
    format!("{}/", encode_uri_component(store_id))
}

/// The name of the object holding a store's events after `after` up to `to` (inclusive), for
/// one backendId.
pub fn object_key(store_id: &str, backend_id: &str, after: i64, to: i64) -> String {
    format!(
        "{}{}/{after:0w$}-{to:0w$}.ndjson",
        store_prefix(store_id),
        encode_uri_component(backend_id),
        w = SEQ_WIDTH
    )
}

/// A backup object, as its name describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The object's name.
    pub key: String,
    /// The backendId of the store's incarnation it belongs to (percent-encoded, as named).
    pub backend_id: String,
    /// The last seqNum before its events.
    pub after: i64,
    /// Its last event's seqNum.
    pub to: i64,
    /// When it was written (ms since the epoch).
    pub uploaded: i64,
}

/// Reads an object's name under a store's prefix; `None` for a name this server did not write.
pub fn parse_key(store_id: &str, key: &str, uploaded: i64) -> Option<Chunk> {
    let rest = key.strip_prefix(&store_prefix(store_id))?;
    let (backend_id, file) = rest.split_once('/')?;
    let (after, to) = file.strip_suffix(".ndjson")?.split_once('-')?;
    Some(Chunk {
        key: key.to_owned(),
        backend_id: backend_id.to_owned(),
        after: after.parse().ok()?,
        to: to.parse().ok()?,
        uploaded,
    })
}

/// The chunks of one incarnation of a store to restore, in order: of `backend_id` when given
/// (percent-encoded as in the names), else of the incarnation written to last. An error says
/// why there is nothing whole to restore.
pub fn restore_plan(mut chunks: Vec<Chunk>, backend_id: Option<&str>) -> Result<Vec<Chunk>, String> {
    let wanted = match backend_id {
        Some(id) => encode_uri_component(id),
        None => match chunks.iter().max_by_key(|c| (c.uploaded, c.to)) {
            Some(latest) => latest.backend_id.clone(),
            None => return Err("no backup of this store in BACKUP_BUCKET".into()),
        },
    };
    chunks.retain(|c| c.backend_id == wanted);
    if chunks.is_empty() {
        return Err(format!("no backup of this store for backendId {wanted}"));
    }
    chunks.sort_by_key(|c| (c.after, std::cmp::Reverse(c.to)));
    // A run stopped between two objects may have left one that a later run wrote again wider:
    // keep a chain from 0, each chunk starting where the one before ended.
    let mut plan: Vec<Chunk> = Vec::new();
    let mut end = 0;
    for chunk in chunks {
        if chunk.after == end && chunk.to > end {
            end = chunk.to;
            plan.push(chunk);
        }
    }
    if plan.is_empty() {
        return Err("the backup does not start at the store's first event".into());
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_as_their_ranges() {
        let a = object_key("team/42", "b-1", 0, 9);
        let b = object_key("team/42", "b-1", 9, 120);
        assert_eq!(a, "team%2F42/b-1/0000000000000000-0000000000000009.ndjson");
        assert!(a < b);
        let chunk = parse_key("team/42", &b, 5).unwrap();
        assert_eq!((chunk.backend_id.as_str(), chunk.after, chunk.to), ("b-1", 9, 120));
        assert_eq!(parse_key("team/4", &b, 5), None, "another store's prefix");
        assert_eq!(parse_key("team/42", "team%2F42/b-1/notes.txt", 5), None);
    }

    #[test]
    fn a_restore_takes_one_whole_chain() {
        let chunk = |backend: &str, after, to, uploaded| {
            parse_key("s", &object_key("s", backend, after, to), uploaded).unwrap()
        };
        let chunks = vec![
            chunk("old", 0, 50, 1),
            chunk("new", 10, 20, 4),
            chunk("new", 0, 10, 3),
            chunk("new", 0, 5, 2),
        ];
        let plan = restore_plan(chunks.clone(), None).unwrap();
        assert_eq!(
            plan.iter().map(|c| (c.after, c.to)).collect::<Vec<_>>(),
            vec![(0, 10), (10, 20)]
        );
        let old = restore_plan(chunks.clone(), Some("old")).unwrap();
        assert_eq!(old.len(), 1);
        assert!(restore_plan(chunks, Some("other")).is_err());
        assert!(restore_plan(vec![], None).is_err());
        assert!(restore_plan(vec![chunk("x", 5, 9, 1)], None).is_err());
    }
}
