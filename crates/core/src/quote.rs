//! Prices and product names in chat messages: the price a business quotes, the product a
//! customer asks about, and the product a business names next to its price.
//!
//! This module only reads text. It never looks at a catalogue, so callers match the returned
//! names against their own products.

use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A price found in a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceQuote {
    /// Amount in major units (shillings, dollars), with any `k` or `m` multiplier applied.
    pub amount: Decimal,
    /// ISO 4217 code such as "KES", "USD" or "EUR".
    pub currency: String,
    /// The substring of the message that was read as the price, currency marker included.
    pub matched: String,
}

/// Finds the first price that a business message quotes. `default_currency` is used for bare
/// shilling forms such as "2500/-" (pass "KES" in Kenya).
///
/// A number counts as a price only next to a currency marker: a code or symbol before it
/// ("KES 2,500", "Ksh. 800", "$25", "€25"), or a code or shilling form after it ("25 USD",
/// "2500/-", "2,500/=", "2.5k bob"). The shilling forms "Sh", "Shs", "/-", "/=", "bob" and
/// "shillings" take `default_currency`, as does that code itself wherever it is written. "R" and
/// "Rs" are skipped because several currencies use them, and so are dollars marked as another
/// country's ("A$30"). A `k` or `m` right after the number, or after one space, multiplies it by
/// 1,000 or 1,000,000 when the number has a currency marker. After a space the letter counts
/// only where the price ends ("sh 2.5 k", "2.5 k bob"), because "KES 500 m pesa" names M-Pesa.
/// Numbers with grouping commas must use groups of three, so "25,00,000" is rejected.
pub fn detect_price(text: &str, default_currency: &str) -> Option<PriceQuote> {
    PriceScanner::new(text, default_currency)
        .next()
        .map(|found| found.quote)
}

/// Finds the product a customer asks about: "How much is the blue kitenge dress?" → "blue
/// kitenge dress". Also reads "price of X", "what's the price for X", "do you have X", "is X
/// available", "X how much?", and Swahili "bei ya X ni ngapi", "X ni bei gani" and "X ni pesa
/// ngapi".
///
/// Leading articles (the/a/an/your), greetings, trailing punctuation and "please" are stripped.
/// Returns `None` when the text asks no such question or names no product ("How much is it?").
/// When several questions match, the one that starts first in the text wins.
pub fn detect_product_question(text: &str) -> Option<String> {
    QUESTION_PATTERNS
        .iter()
        .enumerate()
        .flat_map(|(order, pattern)| {
            pattern.captures_iter(text).filter_map(move |captures| {
                let start = captures.get(0)?.start();
                let item = clean_question_item(captures.name("item")?.as_str())?;
                Some((start, order, item))
            })
        })
        .min_by_key(|(start, order, _)| (*start, *order))
        .map(|(_, _, item)| item)
}

/// Finds a product named in the business's own quote, e.g. "The Blue Kitenge Dress is KES 2,500"
/// → "Blue Kitenge Dress", "Blue kitenge dress - Ksh 2500" → "Blue kitenge dress". Returns `None`
/// for "It's KES 2,500".
///
/// The product is the text between the start of the clause and the price, without a linking
/// word such as "is", "goes for", "@" or Swahili "ni". Returns `None` when no clause in front
/// of a price names something other than a pronoun, a verb like "pay" or a word like "total" or
/// "price".
pub fn detect_quoted_product(text: &str) -> Option<String> {
    // The currency is not returned, so any default finds the same prices.
    PriceScanner::new(text, "KES").find_map(|found| {
        let before = &text[..found.start];
        clean_quoted_item(&before[clause_start(before)..])
    })
}

/// Returns where the last clause of `text` starts. Dots and commas between digits ("2,500")
/// do not end a clause.
fn clause_start(text: &str) -> usize {
    let mut next_is_digit = false;
    for (index, c) in text.char_indices().rev() {
        let ends_clause =
            matches!(c, '!' | '?' | ';' | '\n') || (matches!(c, '.' | ',') && !next_is_digit);
        if ends_clause {
            return index + c.len_utf8();
        }
        next_is_digit = c.is_ascii_digit();
    }
    0
}

/// Currency symbols written in front of an amount, longest first so "US$" wins over "$".
const PREFIX_SYMBOLS: &[(&str, &str)] = &[
    ("US$", "USD"),
    ("$", "USD"),
    ("€", "EUR"),
    ("£", "GBP"),
    ("₦", "NGN"),
    ("₹", "INR"),
    ("₵", "GHS"),
];

/// Currency symbols that some writers put after the amount ("25€").
const SUFFIX_SYMBOLS: &[(&str, &str)] = &[("€", "EUR"), ("£", "GBP"), ("$", "USD")];

/// ISO 4217 codes read in any letter case. Codes that are also common English words ("ALL",
/// "TOP", "CUP") are left out because "all 3" would read as a price, and "BOB" is left out
/// because "bob" is Kenyan slang for shillings.
// NOTE: a market whose code is missing here still works when its code is passed as
// `default_currency`, which is always recognised.
const ISO_CODES: &[&str] = &[
    "kes", "ugx", "tzs", "rwf", "bif", "etb", "ssp", "ngn", "ghs", "xof", "xaf", "zar", "zmw",
    "mwk", "bwp", "egp", "usd", "eur", "gbp", "chf", "inr", "aed", "cny", "jpy", "aud",
];

/// Position of a currency word relative to the amount.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Before,
    After,
}

/// Maps a currency word (any case) to its ISO 4217 code.
fn currency_for_word(word: &str, side: Side, default_currency: &str) -> Option<String> {
    let word = word.to_lowercase();
    let fixed = match word.as_str() {
        "ksh" | "kshs" => Some("KES"),
        "ush" | "ushs" => Some("UGX"),
        "tsh" | "tshs" => Some("TZS"),
        _ => None,
    };
    if let Some(code) = fixed {
        return Some(code.to_string());
    }
    // "bob" is Kenyan slang for shillings and "shillings" only follows a number.
    let shilling = match side {
        Side::Before => matches!(word.as_str(), "sh" | "shs"),
        Side::After => matches!(
            word.as_str(),
            "sh" | "shs" | "bob" | "shilling" | "shillings"
        ),
    };
    if shilling || word.eq_ignore_ascii_case(default_currency) {
        return Some(default_currency.to_string());
    }
    ISO_CODES
        .contains(&word.as_str())
        .then(|| word.to_uppercase())
}

/// A price with the byte offset where its match starts.
struct FoundPrice {
    start: usize,
    quote: PriceQuote,
}

/// Iterator over every price in a text, left to right.
struct PriceScanner<'a> {
    text: &'a str,
    default_currency: String,
    position: usize,
}

impl<'a> PriceScanner<'a> {
    fn new(text: &'a str, default_currency: &str) -> Self {
        PriceScanner {
            text,
            default_currency: default_currency.trim().to_uppercase(),
            position: 0,
        }
    }

    /// Reads the number starting at `start` and everything around it that makes it a price.
    fn read_price(&self, start: usize, number_end: usize) -> Option<(FoundPrice, usize)> {
        let text = self.text;
        let currency = self.default_currency.as_str();
        let number = parse_amount(&text[start..number_end])?;
        let prefix = prefix_marker(text, start, currency);
        if prefix.is_none() && is_inside_code(text, start) {
            return None;
        }

        let multiplier = read_multiplier(text, number_end, prefix.is_some(), currency);
        let (factor, amount_end) = multiplier.unwrap_or((Decimal::ONE, number_end));
        let suffix = suffix_marker(text, amount_end, prefix.is_some(), currency);
        let end = suffix.as_ref().map_or(amount_end, |(end, _)| *end);
        if !ends_cleanly(text, end) {
            return None;
        }

        let (match_start, code) = match (prefix, suffix) {
            (Some((marker_start, code)), _) => (marker_start, code),
            (None, Some((_, code))) => (start, code),
            (None, None) => return None,
        };
        let amount = number.checked_mul(factor)?.normalize();
        let quote = PriceQuote {
            amount,
            currency: code,
            matched: text[match_start..end].to_string(),
        };
        let found = FoundPrice {
            start: match_start,
            quote,
        };
        Some((found, end))
    }
}

impl Iterator for PriceScanner<'_> {
    type Item = FoundPrice;

    fn next(&mut self) -> Option<FoundPrice> {
        let text = self.text;
        while let Some(offset) = text[self.position..].find(|c: char| c.is_ascii_digit()) {
            let start = self.position + offset;
            let number_end = number_end(text, start);
            if let Some((found, end)) = self.read_price(start, number_end) {
                self.position = end;
                return Some(found);
            }
            self.position = number_end;
        }
        self.position = text.len();
        None
    }
}

/// Returns the end of the number starting at `start`, read as digits joined by single dots or
/// commas.
fn number_end(text: &str, start: usize) -> usize {
    let bytes = text.as_bytes();
    let mut end = start;
    while let Some(&byte) = bytes.get(end) {
        let joins_digits = matches!(byte, b'.' | b',')
            && bytes.get(end + 1).is_some_and(|next| next.is_ascii_digit());
        if byte.is_ascii_digit() || joins_digits {
            end += 1;
        } else {
            break;
        }
    }
    end
}

/// Parses "2500", "2,500", "1,200.50" or "2.5". Returns `None` for more than one dot, a comma
/// after the dot, or grouping commas that do not split the whole part into groups of three.
fn parse_amount(raw: &str) -> Option<Decimal> {
    let (whole, fraction) = match raw.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (raw, None),
    };
    if fraction.is_some_and(|fraction| fraction.contains(['.', ','])) {
        return None;
    }
    let mut groups = whole.split(',');
    let first = groups.next()?;
    if whole.contains(',') && (first.len() > 3 || groups.any(|group| group.len() != 3)) {
        return None;
    }
    let digits = whole.replace(',', "");
    let literal = match fraction {
        Some(fraction) => format!("{digits}.{fraction}"),
        None => digits,
    };
    Decimal::from_str(&literal).ok()
}

/// Finds a currency code or symbol in front of the number at `start`, allowing spaces and a
/// dot in between ("KSh. 2,500"). Returns where the marker starts and its ISO code.
fn prefix_marker(text: &str, start: usize, default_currency: &str) -> Option<(usize, String)> {
    let before = text[..start].trim_end();
    for &(symbol, code) in PREFIX_SYMBOLS {
        if let Some(rest) = before.strip_suffix(symbol) {
            // "A$", "C$" and "NZ$" are other countries' dollars.
            if symbol == "$" && rest.ends_with(char::is_alphabetic) {
                return None;
            }
            return Some((rest.len(), code.to_string()));
        }
    }
    let before = before.strip_suffix('.').unwrap_or(before);
    let word_start = before
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_alphabetic())
        .last()
        .map(|(index, _)| index)?;
    if before[..word_start].ends_with(char::is_alphanumeric) {
        return None;
    }
    let code = currency_for_word(&before[word_start..], Side::Before, default_currency)?;
    Some((word_start, code))
}

/// Tells whether the number at `start` continues a code such as "QK12AB34", "PB-557", "#2500"
/// or "+254", which no suffix turns into a price.
fn is_inside_code(text: &str, start: usize) -> bool {
    let mut before = text[..start].chars().rev();
    match before.next() {
        Some(c) if c.is_alphabetic() || c == '#' || c == '+' => true,
        Some('-') => before.next().is_some_and(char::is_alphanumeric),
        _ => false,
    }
}

/// Reads a `k` or `m` multiplier after the number, directly attached ("2.5k") or after one
/// space ("2.5 k"). It counts only when the number has a currency marker and the letter ends
/// the word, so "3kg" and "M-Pesa" are left alone. Returns the factor and where it ends.
fn read_multiplier(
    text: &str,
    number_end: usize,
    has_prefix: bool,
    default_currency: &str,
) -> Option<(Decimal, usize)> {
    let rest = &text[number_end..];
    let (spaced, letter) = match rest.strip_prefix(' ') {
        Some(after_space) => (true, after_space.chars().next()?),
        None => (false, rest.chars().next()?),
    };
    let factor = match letter {
        'k' | 'K' => Decimal::ONE_THOUSAND,
        'm' | 'M' => Decimal::from(1_000_000),
        _ => return None,
    };
    let end = number_end + usize::from(spaced) + 1;
    let next = text[end..].chars().next();
    if next.is_some_and(|c| c.is_alphanumeric() || c == '-') {
        return None;
    }
    let suffix = suffix_marker(text, end, has_prefix, default_currency);
    if !has_prefix && suffix.is_none() {
        return None;
    }
    // "KES 500 m pesa" must not read as 500 million, so a spaced letter followed by a word
    // counts only when that word is the currency.
    if spaced && suffix.is_none() && next.is_some_and(char::is_whitespace) {
        return None;
    }
    Some((factor, end))
}

/// Finds a currency marker after the amount ending at `end`, allowing spaces in between. After
/// a prefix marker only the shilling endings "/-" and "/=" are read, because "KES 2,500/=" is
/// one price. Returns where the marker ends and its ISO code.
fn suffix_marker(
    text: &str,
    end: usize,
    has_prefix: bool,
    default_currency: &str,
) -> Option<(usize, String)> {
    let rest = &text[end..];
    let marker = rest.trim_start_matches(' ');
    let marker_start = end + (rest.len() - marker.len());
    if marker.starts_with("/-") || marker.starts_with("/=") {
        return Some((marker_start + 2, default_currency.to_string()));
    }
    if has_prefix {
        return None;
    }
    for &(symbol, code) in SUFFIX_SYMBOLS {
        if marker.starts_with(symbol) {
            return Some((marker_start + symbol.len(), code.to_string()));
        }
    }
    let word_len = marker
        .find(|c: char| !c.is_alphabetic())
        .unwrap_or(marker.len());
    if word_len == 0 || marker[word_len..].starts_with(char::is_numeric) {
        return None;
    }
    let code = currency_for_word(&marker[..word_len], Side::After, default_currency)?;
    Some((marker_start + word_len, code))
}

/// Tells whether a price may end at `end`: not inside a word ("2500abc"), not a percentage, and
/// not the first part of a date or time ("12/05", "10:30").
fn ends_cleanly(text: &str, end: usize) -> bool {
    let mut after = text[end..].chars();
    match after.next() {
        None => true,
        Some(c) if c.is_alphanumeric() || c == '%' => false,
        Some(':' | '/') => !after.next().is_some_and(|c| c.is_ascii_digit()),
        Some(_) => true,
    }
}

/// Pattern for the asked-about item: a run of text inside one clause.
const ITEM: &str = r"(?P<item>[^\s?.!,;:][^?.!,;:\n]*?)";

/// Question forms, in the order that breaks ties between matches starting at the same place.
static QUESTION_PATTERNS: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    let item_to_clause_end = r"(?P<item>[^\s?.!,;:][^?.!,;:\n]*)";
    let patterns = [
        format!(
            r"(?i)\bhow\s+much\s+(?:do|would|will)\s+(?:you|u)\s+(?:sell|charge\s+for)\s+{item_to_clause_end}"
        ),
        format!(r"(?i)\bhow\s+much\s+(?:is|are|for|does|do|would|will)\s+{item_to_clause_end}"),
        format!(r"(?i)\b(?:price|cost|bei)\s+(?:of|for|ya)\s+{item_to_clause_end}"),
        format!(
            r"(?i)\bdo\s+(?:you|u)(?:\s+guys)?(?:\s+still)?\s+(?:have|sell|stock|carry)\s+{item_to_clause_end}"
        ),
        format!(
            r"(?i)(?:^|[.!?,;:\n])\s*(?:is|are)\s+{ITEM}\s+(?:still\s+)?(?:available|in\s+stock)\b"
        ),
        format!(r"(?i){ITEM}[\s,]+how\s+much\b\s*(?:please|pls|plz|tafadhali)?\s*(?:[?.!,;\n]|$)"),
        format!(
            r"(?i){ITEM}\s+(?:(?:ni\s+)?(?:bei\s+gani|pesa\s+ngapi)|ni\s+(?:ngapi|how\s+much))\b"
        ),
    ];
    patterns
        .iter()
        .map(|pattern| Regex::new(pattern).expect("question pattern is a valid regex"))
        .collect()
});

/// Swahili question endings left on an item by "bei ya X ni ngapi".
static SWAHILI_QUESTION_TAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\s+ni(?:\s+(?:ngapi|bei\s+gani|pesa\s+ngapi|how\s+much))?\s*$")
        .expect("Swahili tail pattern is a valid regex")
});

/// A second question joined to the item ("delivery to Kisumu and when will it arrive").
static JOINED_QUESTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\s+(?:and|but|or|na)\s+(?:when|where|how|what|which|who|do|does|can|could|is|are|will)\b.*$",
    )
    .expect("joined question pattern is a valid regex")
});

/// "bei ya" or "price of" left at the start of an item by the "X ni ngapi" forms.
static PRICE_OF_LEAD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(?:bei|price|cost)\s+(?:ya|of|for)\s+")
        .expect("price lead pattern is a valid regex")
});

/// Words dropped from the front of an asked-about item: articles, greetings and the "there" of
/// "is there a blue one available".
const QUESTION_LEADING: &[&str] = &[
    "the", "a", "an", "your", "there", "hi", "hello", "hey", "habari", "niaje", "mambo", "jambo",
];

/// Words dropped from the end of an asked-about item: politeness and the verb or stock phrase
/// around it ("does the jiko cost", "is the hoodie still available").
const QUESTION_TRAILING: &[&str] = &[
    "please",
    "pls",
    "plz",
    "tafadhali",
    "cost",
    "costs",
    "be",
    "go",
    "for",
    "now",
    "today",
    "still",
    "available",
    "in",
    "stock",
];

/// Items that name no product, so the question gives nothing to look up.
const PRONOUNS: &[&str] = &[
    "it", "this", "that", "these", "those", "them", "they", "one", "hii", "hizi", "hiyo",
];

fn clean_question_item(raw: &str) -> Option<String> {
    let single_question = JOINED_QUESTION.replace(raw.trim(), "");
    let without_tail = SWAHILI_QUESTION_TAIL.replace(&single_question, "");
    let without_lead = PRICE_OF_LEAD.replace(&without_tail, "");
    let item = trim_words(&without_lead, QUESTION_LEADING, QUESTION_TRAILING);
    names_product(&item).then_some(item)
}

/// Words dropped from the front of a quoted item.
const QUOTED_LEADING: &[&str] = &["the", "a", "an", "our", "this", "that", "these", "those"];

/// Linking words between a quoted item and its price ("goes for", "is now only", "@", "ni").
const QUOTED_TRAILING: &[&str] = &[
    "is", "are", "was", "were", "costs", "cost", "goes", "go", "going", "sells", "sell", "selling",
    "retails", "retail", "at", "for", "ni", "now", "only", "just", "sasa", "tu",
];

/// First words that show the clause is an instruction or a sum, not a product name.
const NOT_PRODUCT_START: &[&str] = &[
    "it", "its", "they", "we", "i", "you", "pay", "send", "get", "buy", "order", "kindly",
    "please", "total", "price", "cost", "amount", "balance", "deposit", "delivery", "shipping",
    "was", "from",
];

fn clean_quoted_item(clause: &str) -> Option<String> {
    let trimmed = clause.trim_matches(|c: char| !c.is_alphanumeric());
    // "It's KES 2,500" links with a contracted "is".
    let without_is = trimmed
        .strip_suffix("'s")
        .or_else(|| trimmed.strip_suffix("’s"))
        .unwrap_or(trimmed);
    let without_linking = trim_words(without_is, &[], QUOTED_TRAILING);
    let without_lead = PRICE_OF_LEAD.replace(&without_linking, "");
    let item = trim_words(&without_lead, QUOTED_LEADING, &[]);
    let first_word = item.split_whitespace().next()?.to_lowercase();
    if NOT_PRODUCT_START.contains(&first_word.as_str()) || !names_product(&item) {
        return None;
    }
    Some(item)
}

/// Drops listed words (any case) and bare punctuation from both ends, then joins the remaining
/// words with single spaces and trims punctuation from the ends of the result.
fn trim_words(text: &str, leading: &[&str], trailing: &[&str]) -> String {
    let is_dropped = |word: &str, list: &[&str]| {
        let bare = word
            .trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase();
        bare.is_empty() || list.contains(&bare.as_str())
    };
    let all_words: Vec<&str> = text.split_whitespace().collect();
    let first_kept = all_words
        .iter()
        .position(|word| !is_dropped(word, leading))
        .unwrap_or(all_words.len());
    let kept = &all_words[first_kept..];
    let kept_len = kept
        .iter()
        .rposition(|word| !is_dropped(word, trailing))
        .map_or(0, |index| index + 1);
    kept[..kept_len]
        .join(" ")
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_string()
}

fn names_product(item: &str) -> bool {
    let lower = item.to_lowercase();
    let all_pronouns = lower
        .split_whitespace()
        .all(|word| PRONOUNS.contains(&word));
    !lower.is_empty() && !all_pronouns
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(text: &str) -> Option<(Decimal, String)> {
        detect_price(text, "KES").map(|quote| (quote.amount, quote.currency))
    }

    fn amount(literal: &str) -> Decimal {
        Decimal::from_str(literal).expect("test amount is a valid decimal")
    }

    #[test]
    fn detect_price_reads_quotes_in_chat_lines() {
        let cases: &[(&str, &str, &str)] = &[
            ("Hi! The blue kitenge dress is KES 2,500", "2500", "KES"),
            ("Ksh 2500 only", "2500", "KES"),
            ("Bei ni KSh. 2,500/= tu", "2500", "KES"),
            ("Kshs 1,200.50 per metre", "1200.50", "KES"),
            ("Sandals 2500/-", "2500", "KES"),
            ("Yes we have it, 2,500/= each", "2500", "KES"),
            ("Leo tu sh 2.5k", "2500", "KES"),
            ("Sh. 800 for delivery to Kisumu", "800", "KES"),
            ("Give me 2.5k bob and it's yours", "2500", "KES"),
            ("KES2500 via M-Pesa till 522533", "2500", "KES"),
            ("kes 2500 is the last price", "2500", "KES"),
            ("Size 42 available @ 2500/-", "2500", "KES"),
            ("It's $25 plus shipping", "25", "USD"),
            ("USD 25 for the international version", "25", "USD"),
            ("That one is 25 USD", "25", "USD"),
            ("€25 in our Berlin shop", "25", "EUR"),
            ("EUR 25", "25", "EUR"),
            ("Only £10 today", "10", "GBP"),
            ("GBP 10 each", "10", "GBP"),
            ("UGX 50,000 to Kampala", "50000", "UGX"),
            ("TZS 20,000 kwa kimoja", "20000", "TZS"),
            ("NGN 5000 for two", "5000", "NGN"),
            ("₦5000 per pack", "5000", "NGN"),
            ("Order 2500 is ready, balance KES 1,500", "1500", "KES"),
            (
                "Call 0712345678 to order, KES 3,200 delivered",
                "3200",
                "KES",
            ),
            ("20% off, now KES 2,000", "2000", "KES"),
            ("The fridge is KES 1.2m", "1200000", "KES"),
            ("KES 2,500 M-Pesa till 123456", "2500", "KES"),
            ("Sh 2.5 k", "2500", "KES"),
            ("Pay KES 500 m pesa", "500", "KES"),
            ("Ksh2,500/= final", "2500", "KES"),
            ("US$ 40 to ship it", "40", "USD"),
            ("Jiko 3.5K/-", "3500", "KES"),
            ("Pay 1500 shillings on delivery", "1500", "KES"),
            ("Bag 25€", "25", "EUR"),
        ];
        for &(text, expected_amount, expected_currency) in cases {
            let expected = Some((amount(expected_amount), expected_currency.to_string()));
            assert_eq!(price(text), expected, "price in {text:?}");
        }
    }

    #[test]
    fn detect_price_ignores_non_prices() {
        let cases = [
            "Your order 2500 has been received",
            "order #2500 is on the way",
            "Order No. 2500 has shipped",
            "call 0700 000 001 for help",
            "WhatsApp us on +254 700 000 001",
            "My number is 0712345678",
            "Delivery on 12/05/2025",
            "Expected 2025-05-12",
            "Delivered on 5th May",
            "We open at 10:30",
            "Pick up at 10.30am",
            "We close by 5pm",
            "Do you have size 42?",
            "I want 2 pieces",
            "Unga 3kg pack",
            "1.7L kettle",
            "Juice 500ml",
            "20% off everything this week",
            "PB-557 power bank back in stock",
            "iPhone 15 in stock",
            "ref 123456",
            "MPESA code QK12AB34 confirmed",
            "Serving Nairobi since 2019",
            "R 250 at the till",
            "KES 2,50 for this",
            "KES 25,00,000",
            "We have 2.5k followers",
            "A$30 shipping",
            "Cakes 200 pieces",
            "Mambo! Karibu sana",
        ];
        for text in cases {
            assert_eq!(price(text), None, "price in {text:?}");
        }
    }

    #[test]
    fn detect_price_keeps_matched_substring() {
        let cases = [
            ("Bei ni KSh. 2,500/= tu", "KSh. 2,500/="),
            ("Size 42 available @ 2500/-", "2500/-"),
            ("Give me 2.5k bob", "2.5k bob"),
            ("US$ 40 to ship it", "US$ 40"),
            ("It's $25.", "$25"),
        ];
        for (text, expected) in cases {
            let matched = detect_price(text, "KES").map(|quote| quote.matched);
            assert_eq!(matched.as_deref(), Some(expected), "match in {text:?}");
        }
    }

    #[test]
    fn shilling_forms_take_default_currency() {
        let cases = [
            ("2500/-", "UGX"),
            ("Sh 800", "TZS"),
            ("500 bob", "UGX"),
            ("ZMW 250", "ZMW"),
            ("Ksh 2500", "KES"),
        ];
        for (text, expected) in cases {
            let currency = detect_price(text, expected).map(|quote| quote.currency);
            assert_eq!(currency.as_deref(), Some(expected), "currency of {text:?}");
        }
    }

    #[test]
    fn detect_price_returns_first_price() {
        let quote = detect_price("Was KES 3,000, now KES 2,500", "KES");
        let amount = quote.map(|quote| quote.amount);
        assert_eq!(amount, Some(Decimal::from(3000)));
    }

    #[test]
    fn detect_product_question_reads_item() {
        let cases = [
            (
                "How much is the blue kitenge dress?",
                Some("blue kitenge dress"),
            ),
            (
                "Hi, how much are your leather sandals please?",
                Some("leather sandals"),
            ),
            (
                "What's the price of the Ramtons microwave?",
                Some("Ramtons microwave"),
            ),
            (
                "whats the price for a 13kg gas cylinder",
                Some("13kg gas cylinder"),
            ),
            ("Price of size 42 Jordans?", Some("size 42 Jordans")),
            ("Do you have the red handbag in stock?", Some("red handbag")),
            ("Do you have maasai shukas", Some("maasai shukas")),
            ("Is the black hoodie still available?", Some("black hoodie")),
            (
                "Hi. Are the Oraimo earbuds available?",
                Some("Oraimo earbuds"),
            ),
            ("Is there a blue one available?", Some("blue one")),
            (
                "How much is delivery to Kisumu and when will it arrive?",
                Some("delivery to Kisumu"),
            ),
            ("Niaje, do u have airpods pro?", Some("airpods pro")),
            ("Blue kitenge dress how much?", Some("Blue kitenge dress")),
            ("Hello, Samsung A15 how much", Some("Samsung A15")),
            ("Bei ya kitenge ni ngapi?", Some("kitenge")),
            ("Viatu hizi ni bei gani?", Some("Viatu hizi")),
            ("Jiko kubwa ni pesa ngapi", Some("Jiko kubwa")),
            ("How much does the jiko cost?", Some("jiko")),
            (
                "how much do you sell the Oraimo earbuds for?",
                Some("Oraimo earbuds"),
            ),
            ("How much is it?", None),
            ("How much?", None),
            ("Is it available?", None),
            ("Thanks, received", None),
            ("When will you deliver?", None),
            ("I paid KES 2500 yesterday", None),
            ("This is available in red and black", None),
        ];
        for (text, expected) in cases {
            let item = detect_product_question(text);
            assert_eq!(item.as_deref(), expected, "item asked in {text:?}");
        }
    }

    #[test]
    fn detect_quoted_product_reads_item() {
        let cases = [
            (
                "The Blue Kitenge Dress is KES 2,500",
                Some("Blue Kitenge Dress"),
            ),
            ("Blue kitenge dress - Ksh 2500", Some("Blue kitenge dress")),
            (
                "Yes we have them. Size 42 sandals are 1,800/-",
                Some("Size 42 sandals"),
            ),
            ("Sandals @ 1500/-", Some("Sandals")),
            (
                "The blue kitenge dress goes for Ksh 2,500",
                Some("blue kitenge dress"),
            ),
            ("Bei ya kitenge ni 2500/-", Some("kitenge")),
            ("Kitenge: KES 2500", Some("Kitenge")),
            (
                "Blue dress was KES 3,000, now KES 2,500",
                Some("Blue dress"),
            ),
            ("It's KES 2,500", None),
            ("Yes, it is KES 2,500", None),
            ("Total: KES 4,000", None),
            ("Pay KES 2,500 via M-Pesa", None),
            ("Price is KES 2500", None),
            ("Was KES 3,000, now KES 2,500", None),
            ("Shoes KES 2,000 and the bag KES 1,500", Some("Shoes")),
            ("Shoes KES 2,000, bag KES 1,500", Some("Shoes")),
            ("Pay KES 2,000, bag is KES 1,500", Some("bag")),
            ("Total KES 2,000.50 then bag KES 1,500", None),
            ("Thanks for your order", None),
        ];
        for (text, expected) in cases {
            let item = detect_quoted_product(text);
            assert_eq!(item.as_deref(), expected, "item quoted in {text:?}");
        }
    }
}
