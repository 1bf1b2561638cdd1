//! Byte-level escaping shared by encoders and placeholders. Kept apart so the exact
//! rules (which bytes stay, upper-case hex) live in one place and are tested once.

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn push_percent(out: &mut String, byte: u8) {
    out.push('%');
    out.push(HEX_UPPER[usize::from(byte >> 4)] as char);
    out.push(HEX_UPPER[usize::from(byte & 0x0f)] as char);
}

fn escape_bytes(text: &str, keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    for &byte in text.as_bytes() {
        if keep(byte) {
            out.push(byte as char);
        } else {
            push_percent(&mut out, byte);
        }
    }
    out
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~')
}

/// Go's `url.PathEscape`: what gotestwaf's URL encoder is documented to do.
pub(crate) fn path_escape(text: &str) -> String {
    escape_bytes(text, |b| {
        is_unreserved(b) || matches!(b, b'$' | b'&' | b'+' | b':' | b'=' | b'@')
    })
}

/// Go's `url.QueryEscape` (form encoding): space becomes `+`, only unreserved bytes stay.
pub(crate) fn form_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &byte in text.as_bytes() {
        if is_unreserved(byte) {
            out.push(byte as char);
        } else if byte == b' ' {
            out.push('+');
        } else {
            push_percent(&mut out, byte);
        }
    }
    out
}

/// Makes a request-target sendable while keeping the attack as verbatim as HTTP allows:
/// only bytes that cannot appear in a request-target (controls, space, DEL, non-ASCII and
/// `" < > \ ^ ` { | } #`) are percent-encoded. `%` is kept, so already-encoded payloads
/// are not encoded twice.
pub(crate) fn escape_request_target(target: &str) -> String {
    escape_bytes(target, |b| {
        b > 0x20
            && b < 0x7f
            && !matches!(
                b,
                b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}' | b'#'
            )
    })
}

/// Lower-case hex, as Go's `hex.EncodeToString` (used for the random names R).
pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        out.push(HEX[usize::from(byte >> 4)] as char);
        out.push(HEX[usize::from(byte & 0x0f)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_escape_keeps_go_path_segment_set() {
        assert_eq!(path_escape("aZ09-_.~$&+:=@"), "aZ09-_.~$&+:=@");
        assert_eq!(
            path_escape("a b/c?d;e,f#g%h"),
            "a%20b%2Fc%3Fd%3Be%2Cf%23g%25h"
        );
        assert_eq!(path_escape("é"), "%C3%A9");
        assert_eq!(path_escape("\r\n\0"), "%0D%0A%00");
    }

    #[test]
    fn form_escape_is_query_escape() {
        assert_eq!(form_escape("a b+c&d=e/f"), "a+b%2Bc%26d%3De%2Ff");
        assert_eq!(form_escape("{x}~"), "%7Bx%7D~");
    }

    #[test]
    fn request_target_escaping_is_minimal() {
        // Kept: % ' ; / ? & = and the rest of visible ASCII not listed.
        assert_eq!(
            escape_request_target("/a%0d%0a';/?&=!$()*+,:@[]"),
            "/a%0d%0a';/?&=!$()*+,:@[]"
        );
        // Escaped: controls, space, DEL, non-ASCII, and " < > \ ^ ` { | } #
        assert_eq!(
            escape_request_target("\t \x7f\"<>\\^`{|}#ü"),
            "%09%20%7F%22%3C%3E%5C%5E%60%7B%7C%7D%23%C3%BC"
        );
    }

    #[test]
    fn hex_is_lower_case() {
        assert_eq!(hex_lower(&[0x00, 0xab, 0x7f, 0xff, 0x10]), "00ab7fff10");
    }
}
