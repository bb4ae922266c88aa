//! Splitting a long free-form text into parts WhatsApp accepts.

/// Maximum characters of a WhatsApp text body.
pub const MAX_TEXT_CHARS: usize = 4096;

/// Splits `body` into parts of at most `limit` characters, breaking at whitespace.
///
/// Whitespace at the breaks and at both ends is dropped. A word longer than `limit` is broken
/// inside the word. A blank body gives no parts, and a `limit` of 0 is treated as 1.
/// Characters are Unicode scalar values.
///
/// NOTE: Meta does not say whether its 4096-character limit counts scalar values or UTF-16
/// units. If it counts UTF-16 units, emoji and other text outside the Basic Multilingual Plane
/// count double.
pub fn split_text(body: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(1);
    let mut parts = Vec::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        let Some((window_end, next)) = rest.char_indices().nth(limit) else {
            parts.push(rest.to_owned());
            break;
        };
        // Whitespace right after the window lets the whole window be a part. Otherwise the
        // break is the last whitespace inside it, or inside the word when there is none.
        // `rest` starts with a non-space, so a break inside the window leaves a non-empty part.
        let cut = if next.is_whitespace() {
            window_end
        } else {
            rest[..window_end]
                .rfind(char::is_whitespace)
                .unwrap_or(window_end)
        };
        let (part, tail) = rest.split_at(cut);
        parts.push(part.trim_end().to_owned());
        rest = tail.trim_start();
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lengths(parts: &[String]) -> Vec<usize> {
        parts.iter().map(|part| part.chars().count()).collect()
    }

    #[test]
    fn long_text_splits_in_two_parts() {
        let word = "jiko ";
        let body = word.repeat(1000);
        assert_eq!(body.chars().count(), 5000);

        let parts = split_text(&body, MAX_TEXT_CHARS);

        assert_eq!(parts.len(), 2);
        assert!(parts[0].chars().count() <= MAX_TEXT_CHARS);
        assert!(parts[1].chars().count() <= MAX_TEXT_CHARS);
        assert!(
            parts
                .iter()
                .all(|part| !part.starts_with(' ') && !part.ends_with(' '))
        );
        assert_eq!(parts.join(" "), body.trim());
    }

    #[test]
    fn breaks_fall_on_word_boundaries() {
        let parts = split_text("Hi Amina your Jiko Classic waits", 12);
        assert_eq!(parts, ["Hi Amina", "your Jiko", "Classic", "waits"]);
    }

    #[test]
    fn break_right_after_limit_keeps_full_part() {
        let parts = split_text("abcd efgh", 4);
        assert_eq!(parts, ["abcd", "efgh"]);
    }

    #[test]
    fn overlong_word_is_broken_inside() {
        let parts = split_text("abcdefghij", 4);
        assert_eq!(parts, ["abcd", "efgh", "ij"]);
    }

    #[test]
    fn short_text_stays_whole() {
        assert_eq!(split_text("  Habari!  ", 4096), ["Habari!"]);
    }

    #[test]
    fn blank_text_gives_no_parts() {
        assert!(split_text("   ", 10).is_empty());
    }

    #[test]
    fn limits_count_characters_not_bytes() {
        let body = "ñ".repeat(10);
        let parts = split_text(&body, 4);
        assert_eq!(lengths(&parts), [4, 4, 2]);
    }
}
