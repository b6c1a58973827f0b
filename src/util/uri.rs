//! `decodeURIComponent`, for the sync request's `payload` search parameter, and
//! `encodeURIComponent`, for names built from a storeId (backup objects).

/// Decodes percent-escapes the way JavaScript's `decodeURIComponent` does: every `%XX` must be
/// valid hex and the decoded bytes must be UTF-8, otherwise the whole input is rejected
/// (JavaScript throws `URIError`). `+` is left as is.
pub fn decode_uri_component(input: &str) -> Option<String> {
    if !input.contains('%') {
        return Some(input.to_owned());
    }
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = hex_value(*bytes.get(i + 1)?)?;
            let lo = hex_value(*bytes.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes the way JavaScript's `encodeURIComponent` does: every byte but ASCII letters,
/// digits and `-_.!~*'()` becomes `%XX`, so the result holds no `/`.
pub fn encode_uri_component(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for b in input.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_round_trips() {
        for s in ["team/42", "a b+c", "ünï", "plain-id_1.x", "%"] {
            assert_eq!(decode_uri_component(&encode_uri_component(s)).as_deref(), Some(s));
        }
        assert_eq!(encode_uri_component("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn decodes_like_javascript() {
        assert_eq!(decode_uri_component("%7B%22a%22%3A1%7D").as_deref(), Some("{\"a\":1}"));
        assert_eq!(decode_uri_component("a+b").as_deref(), Some("a+b"));
        assert_eq!(decode_uri_component("%C3%A9").as_deref(), Some("é"));
        assert_eq!(decode_uri_component("plain").as_deref(), Some("plain"));
        assert_eq!(decode_uri_component("%"), None);
        assert_eq!(decode_uri_component("%4"), None);
        assert_eq!(decode_uri_component("%zz"), None);
        assert_eq!(decode_uri_component("%C3"), None, "truncated UTF-8");
        assert_eq!(decode_uri_component("%FF"), None, "invalid UTF-8");
    }
}
