//! Comments: finding them in the source, and reading a doc comment's text.
//!
//! The schema language has no string literals, so every `//` and `/*` outside another
//! comment starts a comment; one linear scan finds them all. The parser skips comments as
//! whitespace, and this scan gives them back to the formatter (which prints all of them)
//! and to the compiler (which keeps `/** … */` doc comments on definitions, relations and
//! permissions).

use super::ast::{Comment, Span};

/// Every comment in `text`, in order. An unterminated `/*` runs to the end of the text
/// (the parser reports it as an error).
pub fn scan_comments(text: &str) -> Vec<Comment> {
    let mut comments = Vec::new();
    let mut offset = 0;
    while let Some(found) = text[offset..].find('/') {
        let start = offset + found;
        let rest = &text[start..];
        let len = if rest.starts_with("//") {
            rest.find('\n').unwrap_or(rest.len())
        } else if let Some(body) = rest.strip_prefix("/*") {
            body.find("*/").map_or(rest.len(), |end| end + 4)
        } else {
            offset = start + 1;
            continue;
        };
        let end = start + len;
        comments.push(Comment {
            span: Span { start, end },
            text: text[start..end].trim_end().to_string(),
        });
        offset = end;
    }
    comments
}

/// The text of a doc comment (`/** … */`) without its markers and without the leading `*`
/// of each line; `None` for any other comment.
pub fn doc_text(comment: &str) -> Option<String> {
    let inner = comment.strip_prefix("/**")?.strip_suffix("*/")?;
    if comment.len() < "/***/".len() {
        return None;
    }
    let lines: Vec<&str> = inner
        .lines()
        .map(|line| {
            let line = line.trim();
            line.strip_prefix('*').map_or(line, str::trim_start)
        })
        .collect();
    Some(lines.join("\n").trim().to_string())
}

/// The doc comment that directly precedes offset `start` (only whitespace between), if any.
pub fn doc_before(text: &str, comments: &[Comment], start: usize) -> Option<String> {
    let idx = comments.partition_point(|comment| comment.span.end <= start);
    let comment = comments.get(idx.checked_sub(1)?)?;
    let between = text.get(comment.span.end..start)?;
    if !between.trim().is_empty() {
        return None;
    }
    doc_text(&comment.text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_finds_line_and_block_comments() {
        let text = "a // one\nb/* two */ c /** three */ ns/d /* open";
        let found: Vec<String> = scan_comments(text)
            .into_iter()
            .map(|comment| comment.text)
            .collect();
        assert_eq!(
            found,
            ["// one", "/* two */", "/** three */", "/* open"].to_vec()
        );
    }

    #[test]
    fn doc_text_strips_markers_and_stars() {
        assert_eq!(doc_text("/** A person. */").as_deref(), Some("A person."));
        assert_eq!(
            doc_text("/**\n   * First.\n   * Second.\n   */").as_deref(),
            Some("First.\nSecond.")
        );
        assert_eq!(doc_text("/* plain */"), None);
        assert_eq!(doc_text("/**/"), None);
        assert_eq!(doc_text("// line"), None);
    }

    #[test]
    fn doc_must_directly_precede() {
        let text = "/** doc */\ndefinition a {}\n/** far */ x\ndefinition b {}";
        let comments = scan_comments(text);
        assert_eq!(doc_before(text, &comments, 11).as_deref(), Some("doc"));
        let b_start = text.rfind("definition").unwrap();
        assert_eq!(doc_before(text, &comments, b_start), None);
    }
}
