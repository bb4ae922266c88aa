//! SMS character encoding and segment maths: whether a text fits the GSM 03.38
//! 7-bit default alphabet or needs UCS-2, how many units and parts it costs,
//! and where a concatenated message splits.
//!
//! One SMS carries 140 octets: 160 GSM-7 septets or 70 UCS-2 units. When a
//! message needs several parts, the 6-octet concatenation header leaves 153
//! septets or 67 units per part. Providers bill per part, so nudge counts
//! parts on the final text, after normalising and after any footer.

use serde::{Deserialize, Serialize};

const GSM7_SINGLE: usize = 160;
const GSM7_PART: usize = 153;
const UCS2_SINGLE: usize = 70;
const UCS2_PART: usize = 67;

/// The character encoding an SMS is sent in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Encoding {
    /// The GSM 03.38 7-bit default alphabet with its extension table.
    #[serde(rename = "GSM-7")]
    Gsm7,
    /// UCS-2, which providers send as UTF-16 so emoji use two units.
    #[serde(rename = "UCS-2")]
    Ucs2,
}

impl Encoding {
    /// Returns the usual name, "GSM-7" or "UCS-2".
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "GSM-7",
            Encoding::Ucs2 => "UCS-2",
        }
    }
}

impl std::fmt::Display for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The encoding and size of an SMS text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SmsInfo {
    /// The encoding the whole text needs.
    pub encoding: Encoding,
    /// Septets for GSM-7 (extension characters count 2) or UTF-16 code units
    /// for UCS-2 (emoji outside the Basic Multilingual Plane count 2).
    pub units: usize,
    /// Parts the text is sent as, equal to `split(text).len()`. An empty text
    /// has 0 parts.
    pub segments: usize,
}

/// Replaces typographic look-alikes that would force UCS-2 with GSM-7
/// characters, and removes zero-width spaces. Everything else, including
/// emoji and the zero-width joiner inside emoji sequences, is left as is.
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{2032}' => out.push('\''),
            '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{2033}' => out.push('"'),
            '\u{2012}' | '\u{2013}' | '\u{2014}' | '\u{2212}' => out.push('-'),
            '\u{2026}' => out.push_str("..."),
            // No-break, narrow no-break, thin and hair spaces.
            '\u{00A0}' | '\u{202F}' | '\u{2009}' | '\u{200A}' => out.push(' '),
            // Zero-width space and zero-width no-break space (byte order mark).
            '\u{200B}' | '\u{FEFF}' => {}
            // Tabs read as spaces; other control characters (NUL and the like, which arrive
            // inside product titles) have no place in a message.
            '\t' => out.push(' '),
            c if c.is_control() && c != '\n' && c != '\r' => {}
            _ => out.push(c),
        }
    }
    out
}

/// Measures `text` as given. Callers normalise first, and add any footer,
/// so the count matches what the provider bills.
pub fn analyse(text: &str) -> SmsInfo {
    let encoding = encoding_of(text);
    let units = text.chars().map(|c| char_units(c, encoding)).sum();
    SmsInfo {
        encoding,
        units,
        segments: part_ranges(text, encoding).len(),
    }
}

/// Splits `text` into the parts it is sent as.
///
/// A text that fits one SMS is one part. Otherwise GSM-7 parts hold up to 153
/// septets and UCS-2 parts up to 67 units. A part never ends between an
/// escape and its extension character, or between the two halves of a
/// surrogate pair, so a part can hold one unit less. The parts concatenate
/// back to `text`, and an empty text gives no parts.
pub fn split(text: &str) -> Vec<String> {
    part_ranges(text, encoding_of(text))
        .into_iter()
        .map(|range| text[range].to_owned())
        .collect()
}

/// Reports whether every character of `text` is in the GSM-7 basic or
/// extension table.
pub fn is_gsm7(text: &str) -> bool {
    text.chars().all(|c| septets(c).is_some())
}

/// Returns the GSM-7 cost of a character: 1 septet in the basic table, 2 in
/// the extension table (the escape 0x1B and the code), or `None` if GSM-7
/// cannot carry it.
///
/// Lower-case `ç` is `None`: the standard puts capital `Ç` at 0x09, but some
/// phones and gateways show 0x09 as `ç`, so the letter is sent as UCS-2.
pub fn septets(c: char) -> Option<usize> {
    if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// The GSM 03.38 basic table in code order, 0x00 to 0x7F, without the escape
/// code 0x1B.
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                          ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// The GSM 03.38 extension table: form feed ^ { } \ [ ~ ] | €.
const GSM7_EXTENSION: &str = "\u{000C}^{}\\[~]|€";

fn encoding_of(text: &str) -> Encoding {
    if is_gsm7(text) {
        Encoding::Gsm7
    } else {
        Encoding::Ucs2
    }
}

/// Cost of one character in the text's encoding. GSM-7 texts only contain
/// characters with a septet count, so the fallback of 1 is never used.
fn char_units(c: char, encoding: Encoding) -> usize {
    match encoding {
        Encoding::Gsm7 => septets(c).unwrap_or(1),
        Encoding::Ucs2 => c.len_utf16(),
    }
}

/// Byte ranges of the parts of `text`. Packing whole `char`s keeps escape
/// pairs and surrogate pairs together, because each is one `char`.
fn part_ranges(text: &str, encoding: Encoding) -> Vec<std::ops::Range<usize>> {
    if text.is_empty() {
        return Vec::new();
    }
    let (single, per_part) = match encoding {
        Encoding::Gsm7 => (GSM7_SINGLE, GSM7_PART),
        Encoding::Ucs2 => (UCS2_SINGLE, UCS2_PART),
    };
    let total: usize = text.chars().map(|c| char_units(c, encoding)).sum();
    let limit = if total <= single { single } else { per_part };

    let mut ranges = Vec::new();
    let mut start = 0;
    let mut used = 0;
    for (index, c) in text.char_indices() {
        let cost = char_units(c, encoding);
        if used + cost > limit {
            ranges.push(start..index);
            start = index;
            used = 0;
        }
        used += cost;
    }
    ranges.push(start..text.len());
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(encoding: Encoding, units: usize, segments: usize) -> SmsInfo {
        SmsInfo {
            encoding,
            units,
            segments,
        }
    }

    fn units_of(parts: &[String]) -> Vec<usize> {
        parts.iter().map(|part| analyse(part).units).collect()
    }

    #[test]
    fn typographic_apostrophe_forces_ucs2_until_normalised() {
        // A translated template with U+2019 and U+2013 cost 3 parts instead of 1.
        let rendered = "Hi Amina, your Jiko Classic stove is still in your cart. It\u{2019}s \
                        selling fast \u{2013} finish here: https://shop.example/r/Ab3xQ9 Reply \
                        STOP to opt out";
        assert_eq!(analyse(rendered), info(Encoding::Ucs2, 141, 3));

        let normalised = normalise(rendered);
        assert!(normalised.contains("It's selling fast - finish"));
        assert_eq!(analyse(&normalised), info(Encoding::Gsm7, 141, 1));
    }

    #[test]
    fn provider_footer_adds_a_segment() {
        // The opt-out footer Safaricom requires counts toward the length.
        let rendered = "Hi Amina, your Jiko Classic stove is still in your cart at Duka Bora. \
                        Complete your order today and get free delivery: \
                        https://shop.example/r/Ab3xQ9";
        let footer = " STOP*456*9*5#";
        assert_eq!(analyse(rendered), info(Encoding::Gsm7, 148, 1));

        let sent = format!("{rendered}{footer}");
        assert_eq!(analyse(&sent), info(Encoding::Gsm7, 162, 2));
        assert_eq!(units_of(&split(&sent)), [153, 9]);
    }

    #[test]
    fn emoji_count_as_two_ucs2_units() {
        // 30 ASCII characters and 25 x U+1F6D2, which counting code points
        // gets wrong as 55 units in 1 part.
        let text =
            "Hi Juma, your cart misses you 🛒🛒🛒🛒🛒🛒🛒🛒🛒🛒🛒🛒🛒🛒🛒🛒🛒🛒🛒🛒🛒🛒🛒🛒🛒";
        assert_eq!(text.chars().count(), 55);
        assert_eq!(analyse(text), info(Encoding::Ucs2, 80, 2));

        let parts = split(text);
        assert_eq!(units_of(&parts), [66, 14]);
        assert_eq!(parts.concat(), text);

        let seventy = "🛒".repeat(70);
        assert_eq!(analyse(&seventy), info(Encoding::Ucs2, 140, 3));
    }

    #[test]
    fn emoji_on_part_boundary_moves_whole() {
        // 66 x 'a', one U+1F44B on the part boundary, then 10 x 'b'.
        let text = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa👋bbbbbbbbbb";
        assert_eq!(analyse(text), info(Encoding::Ucs2, 78, 2));

        let parts = split(text);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], "a".repeat(66));
        assert_eq!(parts[1], format!("👋{}", "b".repeat(10)));
        assert_eq!(units_of(&parts), [66, 12]);
        assert_eq!(parts.concat(), text);
    }

    #[test]
    fn escape_pair_moves_whole_to_next_part() {
        let text = format!("{}€{}", "a".repeat(152), "a".repeat(10));
        assert_eq!(analyse(&text), info(Encoding::Gsm7, 164, 2));

        let parts = split(&text);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], "a".repeat(152));
        assert_eq!(parts[1], format!("€{}", "a".repeat(10)));
    }

    #[test]
    fn segment_limits_at_boundaries() {
        let accent = "é"; // Basic table, so GSM-7 at 1 septet.
        let cases = [
            (String::new(), info(Encoding::Gsm7, 0, 0)),
            ("a".repeat(160), info(Encoding::Gsm7, 160, 1)),
            ("a".repeat(161), info(Encoding::Gsm7, 161, 2)),
            (accent.repeat(306), info(Encoding::Gsm7, 306, 2)),
            ("a".repeat(307), info(Encoding::Gsm7, 307, 3)),
            ("{".repeat(80), info(Encoding::Gsm7, 160, 1)),
            ("{".repeat(81), info(Encoding::Gsm7, 162, 2)),
            ("á".repeat(70), info(Encoding::Ucs2, 70, 1)),
            ("á".repeat(71), info(Encoding::Ucs2, 71, 2)),
            ("á".repeat(134), info(Encoding::Ucs2, 134, 2)),
            ("á".repeat(135), info(Encoding::Ucs2, 135, 3)),
        ];
        for (text, expected) in cases {
            assert_eq!(analyse(&text), expected, "{} chars", text.chars().count());
        }
    }

    #[test]
    fn parts_rebuild_text_within_limits() {
        let texts = [
            String::new(),
            "short".to_owned(),
            "Karibu! ".repeat(40),
            "[]{}~|^€\\".repeat(30),
            format!("{}🛒", "x".repeat(200)),
            "Asante sana 👋🏾 ".repeat(12),
        ];
        for text in &texts {
            let parts = split(text);
            let info = analyse(text);
            let limit = match info.encoding {
                Encoding::Gsm7 => GSM7_PART,
                Encoding::Ucs2 => UCS2_PART,
            };
            assert_eq!(parts.concat(), *text);
            assert_eq!(parts.len(), info.segments, "{text:?}");
            if parts.len() > 1 {
                for part in &parts {
                    let units = part
                        .chars()
                        .map(|c| char_units(c, info.encoding))
                        .sum::<usize>();
                    assert!(units <= limit, "{part:?} has {units} units");
                }
            }
        }
    }

    #[test]
    fn septet_costs_per_character() {
        let cases = [
            ('a', Some(1)),
            ('Z', Some(1)),
            ('7', Some(1)),
            ('@', Some(1)),
            ('£', Some(1)),
            ('Ç', Some(1)),
            ('é', Some(1)),
            ('Δ', Some(1)),
            ('¿', Some(1)),
            ('\n', Some(1)),
            ('\r', Some(1)),
            ('€', Some(2)),
            ('^', Some(2)),
            ('{', Some(2)),
            ('\\', Some(2)),
            ('|', Some(2)),
            ('\u{000C}', Some(2)),
            ('ç', None),
            ('`', None),
            ('á', None),
            ('í', None),
            ('ó', None),
            ('\u{2019}', None),
            ('\u{00A0}', None),
            ('₦', None),
            ('₹', None),
            ('\u{1B}', None),
            ('🛒', None),
        ];
        for (c, expected) in cases {
            assert_eq!(septets(c), expected, "{c:?}");
        }
    }

    #[test]
    fn gsm7_tables_have_standard_sizes() {
        assert_eq!(GSM7_BASIC.chars().count(), 127);
        assert_eq!(GSM7_EXTENSION.chars().count(), 10);
    }

    #[test]
    fn gsm7_detection_covers_whole_text() {
        let cases = [
            ("", true),
            ("Lipa na M-Pesa: KES 1,500", true),
            ("Price: 24,99 € {offer}", true),
            ("Garçon", false),
            ("It\u{2019}s here", false),
            ("Karibu 👋", false),
        ];
        for (text, expected) in cases {
            assert_eq!(is_gsm7(text), expected, "{text:?}");
        }
    }

    #[test]
    fn normalise_replaces_look_alikes() {
        let cases = [
            ("\u{2018}hi\u{2019} \u{201A}x", "'hi' 'x"),
            ("5\u{2032} 6\u{2033}", "5' 6\""),
            ("\u{201C}deal\u{201D} \u{201E}x", "\"deal\" \"x"),
            ("a\u{2012}b\u{2013}c\u{2014}d\u{2212}e", "a-b-c-d-e"),
            ("wait\u{2026}", "wait..."),
            ("KES\u{00A0}1\u{202F}500\u{2009}x\u{200A}y", "KES 1 500 x y"),
            ("zero\u{200B}width\u{FEFF}", "zerowidth"),
            ("Ke\u{0000}ttle\u{0007}\tnow\nok", "Kettle now\nok"),
            ("Ç é € ç 🛒", "Ç é € ç 🛒"),
            ("👨\u{200D}👩\u{200D}👧", "👨\u{200D}👩\u{200D}👧"),
        ];
        for (text, expected) in cases {
            assert_eq!(normalise(text), expected, "{text:?}");
        }
    }

    #[test]
    fn encoding_names() {
        assert_eq!(Encoding::Gsm7.as_str(), "GSM-7");
        assert_eq!(Encoding::Ucs2.as_str(), "UCS-2");
        assert_eq!(Encoding::Ucs2.to_string(), "UCS-2");
        let json = serde_json::to_string(&Encoding::Gsm7).expect("serialise");
        assert_eq!(json, "\"GSM-7\"");
    }
}
