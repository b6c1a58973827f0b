//! Constant-time secret comparison.

use subtle::ConstantTimeEq;

/// Compares a client-supplied secret with the configured one without leaking, through timing,
/// how many leading bytes matched.
///
/// Only the length of the expected secret can be inferred from timing; that is inherent to any
/// comparison that has to look at every byte of both inputs and is not considered secret.
pub fn secrets_equal(provided: &[u8], expected: &[u8]) -> bool {
    // `ct_eq` on slices of different lengths returns false early, which reveals only that the
    // lengths differ; the byte-wise part is constant-time.
    provided.ct_eq(expected).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_and_unequal() {
        assert!(secrets_equal(b"abc", b"abc"));
        assert!(!secrets_equal(b"abd", b"abc"));
        assert!(!secrets_equal(b"ab", b"abc"));
        assert!(!secrets_equal(b"", b"abc"));
        assert!(secrets_equal(b"", b""));
    }
}
