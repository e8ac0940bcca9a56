//! Bounds what an error message may echo back: user input quoted in backticks is cut to
//! [`MAX_QUOTED`] characters and the whole message to [`MAX_MESSAGE`], each marked with `…`.
//! A 3 MB invalid id then costs the client a few hundred bytes, not 3 MB (issue 10, item 9).

/// The most characters of one backtick-quoted input an error message repeats.
pub const MAX_QUOTED: usize = 200;
/// The most characters of one error message.
pub const MAX_MESSAGE: usize = 2_000;
/// The most schema problems one answer lists (the message still says how many there are).
pub const MAX_PROBLEMS: usize = 50;

/// `message` with every backtick-quoted part longer than [`MAX_QUOTED`] characters cut,
/// and the whole cut to [`MAX_MESSAGE`] characters.
pub fn clip(message: &str) -> String {
    let mut res = String::with_capacity(message.len().min(MAX_MESSAGE + 8));
    for (part_idx, part) in message.split('`').enumerate() {
        if part_idx > 0 {
            res.push('`');
        }
        // Odd parts sit between two backticks: quoted input.
        if part_idx % 2 == 1 {
            res.push_str(&truncate(part, MAX_QUOTED));
        } else {
            res.push_str(part);
        }
        if res.len() > MAX_MESSAGE * 4 {
            break;
        }
    }
    truncate(&res, MAX_MESSAGE)
}

/// The first `max_chars` characters of `text`, followed by `…` when anything was cut.
pub fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A predicate on the clipped text.
    type Expect = Box<dyn Fn(&str) -> bool>;

    #[test]
    fn clip_cases() {
        let long = "x".repeat(3_000_000);
        let cases: Vec<(String, Expect)> = vec![
            (
                "invalid id `abc`".into(),
                Box::new(|it| it == "invalid id `abc`"),
            ),
            (
                format!("invalid id `{long}`: expected more"),
                Box::new(|it| {
                    it.chars().count() < MAX_QUOTED + 40 && it.ends_with("…`: expected more")
                }),
            ),
            (
                "é".repeat(5_000),
                Box::new(|it| it.chars().count() == MAX_MESSAGE + 1 && it.ends_with('…')),
            ),
            (
                format!("unbalanced `{long}"),
                Box::new(|it| it.chars().count() <= MAX_QUOTED + 20),
            ),
        ];
        for (input, ok) in cases {
            let clipped = clip(&input);
            assert!(ok(&clipped), "{}", truncate(&clipped, 300));
        }
    }
}
