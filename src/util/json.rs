//! Writing JSON text by hand on hot paths, where building a `serde_json::Value` first would
//! allocate once per field.

/// Appends `s` to `out` as a JSON string literal, escaped the way `JSON.stringify` escapes it
/// (`"` and `\`, the short escapes for `\b \f \n \r \t`, `\u00XX` for other control characters,
/// everything else verbatim).
pub fn push_str_literal(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0x08 => Some("\\b"),
            0x0c => Some("\\f"),
            0x00..=0x1f => None,
            _ => continue,
        };
        out.push_str(&s[start..i]);
        match escape {
            Some(e) => out.push_str(e),
            None => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 0xf) as usize] as char);
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Returns `s` as a JSON string literal.
pub fn str_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_str_literal(&mut out, s);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_match_serde_json() {
        for s in [
            "",
            "plain",
            "quote\"back\\slash",
            "nl\ncr\rtab\tbs\u{8}ff\u{c}",
            "ctl\u{1}\u{1f}",
            "unicode é ✓ 😀 \u{2028}",
            "</script>",
        ] {
            let ours = str_literal(s);
            assert_eq!(ours, serde_json::to_string(s).unwrap(), "for {s:?}");
            let back: String = serde_json::from_str(&ours).unwrap();
            assert_eq!(back, s);
        }
    }
}
