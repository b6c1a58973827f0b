//! Small pure helpers the protocol and storage code share: ids, timestamps, URI decoding,
//! constant-time comparison, hex and JSON string writing.

pub mod ct;
pub mod json;
pub mod nanoid;
pub mod time;
pub mod uri;

/// Lower-case hex of `bytes` (span ids, signatures).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
