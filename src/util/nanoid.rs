//! `backendId` generation, in the format of `@livestore/utils/nanoid`.

/// nanoid's URL-safe alphabet, in nanoid's order; 64 symbols, so one random byte masked to six
/// bits picks one without bias.
const ALPHABET: &[u8; 64] = b"useandom-26T198340PX75pxJACKVERYMINDBUSHWOLF_GQZbfghjklqvwyzrict";

/// Length of a nanoid, and of every `backendId` the reference creates.
pub const NANOID_LEN: usize = 21;

/// Builds a 21-character nanoid from 21 random bytes.
pub fn nanoid_from_bytes(random: &[u8; NANOID_LEN]) -> String {
    random.iter().map(|b| ALPHABET[(b & 63) as usize] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape() {
        let id = nanoid_from_bytes(&[0u8; NANOID_LEN]);
        assert_eq!(id, "u".repeat(NANOID_LEN));
        let bytes: [u8; NANOID_LEN] = core::array::from_fn(|i| (i * 13) as u8);
        let id = nanoid_from_bytes(&bytes);
        assert_eq!(id.len(), NANOID_LEN);
        assert!(id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-'));
    }
}
