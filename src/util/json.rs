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

/// Whether JSON text nests arrays and objects more than `max` levels deep. Scans bytes, never
/// recursing, so hostile input costs linear time and no stack; brackets inside strings do not
/// count. Meant for text already known to be valid JSON.
pub fn nests_deeper_than(text: &str, max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text.as_bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
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

    #[test]
    fn nesting_depth() {
        assert!(!nests_deeper_than("1", 0));
        assert!(nests_deeper_than("[]", 0));
        assert!(!nests_deeper_than(r#"{"a":[1,{"b":2}]}"#, 3));
        assert!(nests_deeper_than(r#"{"a":[1,{"b":[2]}]}"#, 3));
        // Brackets in strings, escaped quotes included, do not count.
        assert!(!nests_deeper_than(r#"["[[[[\"[[[", "{{{"]"#, 1));
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(nests_deeper_than(&deep, 999));
        assert!(!nests_deeper_than(&deep, 100_000));
    }
}
