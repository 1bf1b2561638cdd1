//! Payload encoders, named and behaving as gotestwaf's (see docs/corpus-format.md).

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;

use crate::corpus::escape::path_escape;

/// How a payload is transformed before a placeholder puts it into a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Encoder {
    Plain,
    Url,
    Base64,
    Base64Flat,
    JsUnicode,
    XmlEntity,
}

impl Encoder {
    /// Every encoder, in the order used by error messages.
    pub const ALL: [Encoder; 6] = [
        Encoder::Plain,
        Encoder::Url,
        Encoder::Base64,
        Encoder::Base64Flat,
        Encoder::JsUnicode,
        Encoder::XmlEntity,
    ];

    /// The names a case file may use (gotestwaf's, case-sensitive).
    pub const NAMES: [&'static str; 6] = [
        "Plain",
        "URL",
        "Base64",
        "Base64Flat",
        "JSUnicode",
        "XMLEntity",
    ];

    /// The gotestwaf name, used in case files and in results.
    pub fn name(&self) -> &'static str {
        match self {
            Encoder::Plain => "Plain",
            Encoder::Url => "URL",
            Encoder::Base64 => "Base64",
            Encoder::Base64Flat => "Base64Flat",
            Encoder::JsUnicode => "JSUnicode",
            Encoder::XmlEntity => "XMLEntity",
        }
    }

    /// Applies the encoding to a payload.
    pub fn encode(&self, payload: &str) -> String {
        match self {
            Encoder::Plain => payload.to_owned(),
            Encoder::Url => path_escape(payload),
            Encoder::Base64 => STANDARD.encode(payload.as_bytes()),
            Encoder::Base64Flat => STANDARD_NO_PAD.encode(payload.as_bytes()),
            Encoder::JsUnicode => js_unicode(payload),
            Encoder::XmlEntity => format!("<string>{}</string>", xml_escape_text(payload)),
        }
    }
}

impl fmt::Display for Encoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An encoder name that gotestwaf does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownEncoder {
    pub name: String,
}

impl fmt::Display for UnknownEncoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown encoder {:?} (valid: {})",
            self.name,
            Encoder::NAMES.join(", ")
        )
    }
}

impl std::error::Error for UnknownEncoder {}

impl FromStr for Encoder {
    type Err = UnknownEncoder;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Encoder::ALL
            .into_iter()
            .find(|e| e.name() == name)
            .ok_or_else(|| UnknownEncoder {
                name: name.to_owned(),
            })
    }
}

/// Every UTF-16 code unit as `\uXXXX` with lower-case hex (astral characters become a
/// surrogate pair), like gotestwaf's JSUnicode.
fn js_unicode(payload: &str) -> String {
    let mut out = String::with_capacity(payload.len() * 6);
    for unit in payload.encode_utf16() {
        out.push_str(&format!("\\u{unit:04x}"));
    }
    out
}

/// Go's `xml.EscapeText`, which gotestwaf's XMLEntity encoder uses: the five markup
/// characters as entities, tab/LF/CR as character references, and characters outside the
/// XML character range replaced by U+FFFD (they cannot appear in XML at all).
pub(crate) fn xml_escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c if is_xml_char(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
    out
}

fn is_xml_char(c: char) -> bool {
    matches!(u32::from(c), 0x09 | 0x0A | 0x0D | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected strings below are written by hand from the format doc, not produced by the code.

    #[test]
    fn plain_is_identity() {
        assert_eq!(Encoder::Plain.encode("a b\r\n<é>"), "a b\r\n<é>");
    }

    #[test]
    fn url_is_path_escape() {
        assert_eq!(
            Encoder::Url.encode("1' or '1'='1"),
            "1%27%20or%20%271%27=%271"
        );
        assert_eq!(Encoder::Url.encode("a/b?c#d;e,f"), "a%2Fb%3Fc%23d%3Be%2Cf");
        assert_eq!(Encoder::Url.encode("$&+:=@-_.~"), "$&+:=@-_.~");
        assert_eq!(Encoder::Url.encode("%0d"), "%250d");
        // non-ASCII: UTF-8 bytes, upper-case hex (U+24BC CIRCLED LATIN CAPITAL G = E2 92 BC)
        assert_eq!(Encoder::Url.encode("Ⓖé"), "%E2%92%BC%C3%A9");
        assert_eq!(Encoder::Url.encode("\r\n"), "%0D%0A");
    }

    #[test]
    fn base64_pads_and_flat_does_not() {
        assert_eq!(Encoder::Base64.encode("a"), "YQ==");
        assert_eq!(Encoder::Base64.encode("ab"), "YWI=");
        assert_eq!(Encoder::Base64.encode("abc"), "YWJj");
        assert_eq!(Encoder::Base64Flat.encode("a"), "YQ");
        assert_eq!(Encoder::Base64Flat.encode("ab"), "YWI");
        assert_eq!(Encoder::Base64Flat.encode("abc"), "YWJj");
        // standard alphabet (+ and /), not URL-safe: U+FBFF is EF AF BF -> 59 58 62 63
        assert_eq!(Encoder::Base64.encode("\u{fbff}"), "76+/");
        assert_eq!(Encoder::Base64.encode("é"), "w6k=");
        assert_eq!(Encoder::Base64Flat.encode("é"), "w6k");
    }

    #[test]
    fn js_unicode_writes_utf16_units_lower_hex() {
        assert_eq!(Encoder::JsUnicode.encode("a'<"), "\\u0061\\u0027\\u003c");
        assert_eq!(Encoder::JsUnicode.encode("é"), "\\u00e9");
        // U+1F600 is the surrogate pair D83D DE00
        assert_eq!(Encoder::JsUnicode.encode("😀"), "\\ud83d\\ude00");
        assert_eq!(Encoder::JsUnicode.encode(""), "");
    }

    #[test]
    fn xml_entity_escapes_and_wraps() {
        assert_eq!(
            Encoder::XmlEntity.encode("<a href=\"x\">'&'</a>"),
            "<string>&lt;a href=&#34;x&#34;&gt;&#39;&amp;&#39;&lt;/a&gt;</string>"
        );
        assert_eq!(
            Encoder::XmlEntity.encode("a\tb\nc\rd"),
            "<string>a&#x9;b&#xA;c&#xD;d</string>"
        );
        // non-ASCII stays; a NUL is not an XML character and becomes U+FFFD
        assert_eq!(
            Encoder::XmlEntity.encode("é\0"),
            "<string>é\u{FFFD}</string>"
        );
        assert_eq!(Encoder::XmlEntity.encode(""), "<string></string>");
    }

    #[test]
    fn names_round_trip_and_unknown_lists_valid() {
        for (encoder, name) in Encoder::ALL.iter().zip(Encoder::NAMES) {
            assert_eq!(encoder.name(), name);
            assert_eq!(name.parse::<Encoder>().as_ref(), Ok(encoder));
        }
        let err = "url".parse::<Encoder>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown encoder \"url\" (valid: Plain, URL, Base64, Base64Flat, JSUnicode, XMLEntity)"
        );
    }
}
