//! Small pure helpers the protocol and storage code share: ids, timestamps, URI decoding,
//! constant-time comparison and JSON string writing.

pub mod ct;
pub mod json;
pub mod nanoid;
pub mod time;
pub mod uri;
