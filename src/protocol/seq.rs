//! Event sequence numbers as `Schema.Int` accepts them.

use serde::{Deserialize, Deserializer};

/// The largest integer a JavaScript number holds exactly (`Number.MAX_SAFE_INTEGER`).
pub const MAX_SAFE_INTEGER: i64 = 9_007_199_254_740_991;

/// A sequence number from the wire: any JSON number with an integral value that JavaScript can
/// represent exactly (so `3`, `3.0` and `3e0` are all `3`, as they are for the reference).
/// Range rules that depend on context (non-negative, ordering) are checked by the push validator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SeqNum(pub i64);

impl<'de> Deserialize<'de> for SeqNum {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = SeqNum;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an integer sequence number")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<SeqNum, E> {
                if (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&v) {
                    Ok(SeqNum(v))
                } else {
                    Err(E::custom(format!("sequence number {v} is not a safe integer")))
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<SeqNum, E> {
                match i64::try_from(v) {
                    Ok(v) => self.visit_i64(v),
                    Err(_) => Err(E::custom(format!("sequence number {v} is not a safe integer"))),
                }
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<SeqNum, E> {
                if v.fract() == 0.0 && v.abs() <= MAX_SAFE_INTEGER as f64 {
                    Ok(SeqNum(v as i64))
                } else {
                    Err(E::custom(format!("sequence number {v} is not a safe integer")))
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<i64, String> {
        serde_json::from_str::<SeqNum>(s)
            .map(|n| n.0)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn accepts_integral_numbers_only() {
        assert_eq!(parse("0"), Ok(0));
        assert_eq!(parse("42"), Ok(42));
        assert_eq!(parse("-3"), Ok(-3));
        assert_eq!(parse("3.0"), Ok(3));
        assert_eq!(parse("1e3"), Ok(1000));
        assert_eq!(parse("9007199254740991"), Ok(MAX_SAFE_INTEGER));
        assert!(parse("9007199254740992").is_err());
        assert!(parse("18446744073709551615").is_err());
        assert!(parse("1e300").is_err());
        assert!(parse("1.5").is_err());
        assert!(parse("\"1\"").is_err());
        assert!(parse("null").is_err());
        assert!(parse("true").is_err());
    }
}
