//! Escaping for every context the report writes user-controlled text into. Payloads are
//! XSS, HTML and template-injection strings by design, and set/case names come from file
//! names: nothing from a results folder reaches HTML, SVG or Markdown unescaped.

/// Escapes text for an HTML (or SVG) text node: `&`, `<`, `>`. Quotes are escaped too so
/// the same output is also safe inside a quoted attribute.
pub fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    push_text(&mut out, s);
    out
}

/// Appends `s` escaped for an HTML text node (see [`text`]).
pub fn push_text(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// Escapes a value for a double- or single-quoted HTML attribute. Identical to [`text`]
/// (all five specials), named separately so call sites say which context they are in.
pub fn attr(s: &str) -> String {
    text(s)
}

/// Makes control characters visible as Unicode control pictures (CR → ␍, NUL → ␀,
/// DEL → ␡) so the browser's newline normalisation and NUL handling cannot silently
/// change what a WAF engineer copies; tab and line feed stay as they are.
pub fn visible(s: &str) -> String {
    s.chars().map(control_picture).collect()
}

fn control_picture(c: char) -> char {
    match c {
        '\t' | '\n' => c,
        '\u{0}'..='\u{1f}' => char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}'),
        '\u{7f}' => '\u{2421}',
        // C1 controls and the Unicode line/paragraph separators render invisibly.
        '\u{80}'..='\u{9f}' | '\u{2028}' | '\u{2029}' => '\u{fffd}',
        c => c,
    }
}

/// A string cut to at most `max` characters, and how many characters were cut.
pub fn truncate(s: &str, max: usize) -> (&str, usize) {
    match s.char_indices().nth(max) {
        Some((byte, _)) => (&s[..byte], s[byte..].chars().count()),
        None => (s, 0),
    }
}

/// A one-line label for a chart: control characters made visible, newlines flattened,
/// cut to `max` characters with an ellipsis. Chart backends escape XML specials, but a
/// control character would make a standalone SVG file invalid XML.
pub fn label(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| match c {
            '\n' | '\t' => ' ',
            c => control_picture(c),
        })
        .collect();
    let (head, cut) = truncate(&flat, max);
    if cut == 0 {
        flat
    } else {
        format!("{}…", truncate(head, max.saturating_sub(1)).0)
    }
}

/// Escapes text for a Markdown table cell or paragraph as GitHub renders it: HTML
/// specials become entities (GitHub renders raw HTML in Markdown), inline Markdown
/// punctuation is backslash-escaped, pipes cannot end a cell and newlines cannot end a row.
pub fn markdown(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in visible(s).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '|' => out.push_str("\\|"),
            '\n' | '\t' => out.push(' '),
            // Emphasis, code, links, images, headings, HTML; ':' stops autolinks and '@'
            // stops @-mentions (a set name must not ping anyone in a PR comment).
            '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '#' | '!' | '~' | '{' | '}' | ':'
            | '@' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_specials_are_escaped() {
        assert_eq!(
            text(r#"<script>alert('x')</script> & "q""#),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(attr(r#"" onload="x"#), "&quot; onload=&quot;x");
    }

    #[test]
    fn control_characters_become_visible() {
        assert_eq!(
            visible("a\r\nb\0c\u{7f}\td"),
            "a\u{240d}\nb\u{2400}c\u{2421}\td"
        );
    }

    #[test]
    fn truncation_counts_characters_not_bytes() {
        assert_eq!(truncate("héllo", 2), ("hé", 3));
        assert_eq!(truncate("abc", 5), ("abc", 0));
        assert_eq!(label("a\nb<c>", 10), "a b<c>");
        assert_eq!(label("abcdefghij", 5), "abcd…");
    }

    #[test]
    fn markdown_cannot_break_out_of_a_cell() {
        let m = markdown("a|b <img src=x onerror=alert(1)> [l](javascript:x)\nnext");
        assert!(!m.contains('<') && !m.contains('\n'));
        assert!(m.contains("\\|") && m.contains("\\[l\\]\\(javascript\\:x\\)"));
    }
}
