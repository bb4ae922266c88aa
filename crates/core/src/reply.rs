//! Meaning of a short customer reply to a nudge: an opt-out, an opt-in, a yes, or anything else.
//!
//! Keywords and replies are compared in their [`fold`]ed form, so case, accents and punctuation
//! never decide the outcome. Keyword lists differ by market and are set through [`Keywords`].

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// The meaning of a customer reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyIntent {
    /// Consent revoked, so every pending nudge to the sender must be cancelled.
    OptOut,
    /// A request to receive messages again.
    OptIn,
    /// A yes to the question the last nudge asked.
    Affirmative,
    /// Any other reply, which a person should read.
    Other,
}

/// Keyword lists per intent, in any case and with or without accents or punctuation.
///
/// An entry of several words ("opt out") must match the reply's first words in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Keywords {
    /// Words that revoke consent when they start a reply of at most five words.
    pub opt_out: Vec<String>,
    /// Words that restore consent when they start a reply of at most five words.
    pub opt_in: Vec<String>,
    /// Words that mean yes when they start a reply of at most four words.
    pub affirmative: Vec<String>,
}

impl Default for Keywords {
    /// Returns English opt-out words (REVOKE and OPTOUT included), French ARRET, English opt-in
    /// words, and English and Swahili words for yes.
    ///
    /// Swahili opt-out words such as ACHA or SITISHA are not included because no Kenyan rule
    /// has been checked for them. Add them per market with [`Keywords::with_extra`].
    fn default() -> Self {
        let owned = |words: &[&str]| words.iter().map(|word| word.to_string()).collect();
        Keywords {
            opt_out: owned(&[
                "STOP",
                "STOPALL",
                "UNSUBSCRIBE",
                "CANCEL",
                "END",
                "QUIT",
                "REVOKE",
                "OPTOUT",
                "OPT OUT",
                "ARRET",
            ]),
            opt_in: owned(&["START", "UNSTOP", "SUBSCRIBE"]),
            affirmative: owned(&[
                "yes",
                "y",
                "yeah",
                "yep",
                "yup",
                "sure",
                "ok",
                "okay",
                "please",
                "yes please",
                "ndio",
                "ndiyo",
                "sawa",
                "sawa sawa",
                "poa",
            ]),
        }
    }
}

impl Keywords {
    /// Adds market-specific keywords to each list, keeping the ones already there.
    pub fn with_extra(mut self, opt_out: &[&str], opt_in: &[&str], affirmative: &[&str]) -> Self {
        let owned = |words: &[&str]| {
            words
                .iter()
                .map(|word| word.to_string())
                .collect::<Vec<_>>()
        };
        self.opt_out.extend(owned(opt_out));
        self.opt_in.extend(owned(opt_in));
        self.affirmative.extend(owned(affirmative));
        self
    }
}

/// Maximum number of words in a reply whose first word can opt the sender out or in. A
/// sentence that only mentions "stop" ("Will you stop selling the blue one?") is usually longer
/// or starts with another word.
const MAX_KEYWORD_REPLY_WORDS: usize = 5;

/// Maximum number of words in a reply that counts as a plain yes. Longer replies usually carry
/// a request that a person should read.
const MAX_AFFIRMATIVE_WORDS: usize = 4;

/// Folded words that turn a yes into something a person should read ("yes but not now").
const NEGATIONS: &[&str] = &["no", "not", "dont", "sitaki", "hapana", "later"];

/// Folded words of politeness that may come before an opt-out or opt-in keyword ("please stop").
const COURTESY: &[&str] = &["please", "pls", "plz"];

/// Apostrophes dropped inside words, so "don't" folds to "dont" and not "don t".
const APOSTROPHES: &[char] = &['\'', '\u{2019}', '\u{02BC}'];

/// Classifies a customer reply. An opt-out keyword wins over every other intent.
///
/// Opt-out and opt-in need the keyword as the first word or words of a reply of at most five
/// words, optionally after "please". A yes needs an affirmative keyword first, at most four
/// words, no negation word such as "not" or "hapana", and no opt-out keyword anywhere, so
/// "Yes stop" goes to a person.
pub fn classify(text: &str, keywords: &Keywords) -> ReplyIntent {
    let folded = fold(text);
    let words: Vec<&str> = folded.split_whitespace().collect();

    if words.len() <= MAX_KEYWORD_REPLY_WORDS {
        let command = match words.split_first() {
            Some((first, rest)) if !rest.is_empty() && COURTESY.contains(first) => rest,
            _ => &words[..],
        };
        if starts_with_any(command, &keywords.opt_out) {
            return ReplyIntent::OptOut;
        }
        if starts_with_any(command, &keywords.opt_in) {
            return ReplyIntent::OptIn;
        }
    }

    let is_affirmative = words.len() <= MAX_AFFIRMATIVE_WORDS
        && starts_with_any(&words, &keywords.affirmative)
        && !words.iter().any(|word| NEGATIONS.contains(word))
        && !contains_any(&words, &keywords.opt_out);
    if is_affirmative {
        ReplyIntent::Affirmative
    } else {
        ReplyIntent::Other
    }
}

/// Returns the normalised form used for matching: lower-case, accents folded (ARRÊT → arret),
/// punctuation turned to spaces, whitespace collapsed, trimmed.
///
/// Compatibility forms fold too, so full-width "ＳＴＯＰ" becomes "stop". Apostrophes are
/// dropped instead of turned to spaces, so "don't" becomes "dont".
pub fn fold(text: &str) -> String {
    let mut spaced = String::with_capacity(text.len());
    for c in text.nfkd() {
        if is_combining_mark(c) || APOSTROPHES.contains(&c) {
            continue;
        }
        if c.is_alphanumeric() {
            spaced.extend(c.to_lowercase());
        } else {
            spaced.push(' ');
        }
    }
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn starts_with_any(words: &[&str], keywords: &[String]) -> bool {
    keywords.iter().any(|keyword| {
        let keyword = fold(keyword);
        let keyword_words: Vec<&str> = keyword.split_whitespace().collect();
        !keyword_words.is_empty() && words.starts_with(&keyword_words)
    })
}

fn contains_any(words: &[&str], keywords: &[String]) -> bool {
    (0..words.len()).any(|start| starts_with_any(&words[start..], keywords))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(text: &str) -> ReplyIntent {
        classify(text, &Keywords::default())
    }

    #[test]
    fn opt_out_keywords_opt_out() {
        let cases = [
            "STOP",
            "stop",
            "Stop.",
            "STOP!!",
            "  stop  ",
            "Stop please",
            "stop thank you",
            "Stop. Thank you",
            "UNSUBSCRIBE",
            "Cancel",
            "END",
            "QUIT",
            "STOPALL",
            "REVOKE",
            "OPTOUT",
            "opt out",
            "Opt-out",
            "ARRET",
            "ARRÊT",
            "Arrêt s'il vous plaît",
            "Please stop",
            "ＳＴＯＰ",
        ];
        for text in cases {
            assert_eq!(intent(text), ReplyIntent::OptOut, "intent of {text:?}");
        }
    }

    #[test]
    fn sentences_mentioning_stop_are_other() {
        let cases = [
            "Will you stop selling the blue one?",
            "I can't stop thinking about that jiko",
            "Is the discount still on? stop by later?",
            "stop sending me these messages every single day",
            "Please don't stop",
            "Stopping by tomorrow",
            "",
            "!!!",
        ];
        for text in cases {
            assert_eq!(intent(text), ReplyIntent::Other, "intent of {text:?}");
        }
    }

    #[test]
    fn opt_in_keywords_opt_in() {
        let cases = ["START", "Unstop", "subscribe please", "Please start"];
        for text in cases {
            assert_eq!(intent(text), ReplyIntent::OptIn, "intent of {text:?}");
        }
    }

    #[test]
    fn affirmative_replies_are_detected() {
        let cases = [
            ("YES", ReplyIntent::Affirmative),
            ("Yes please", ReplyIntent::Affirmative),
            ("yes!!", ReplyIntent::Affirmative),
            ("Y", ReplyIntent::Affirmative),
            ("ok 👍", ReplyIntent::Affirmative),
            ("Please do", ReplyIntent::Affirmative),
            ("ndio", ReplyIntent::Affirmative),
            ("Ndiyo tafadhali", ReplyIntent::Affirmative),
            ("sawa", ReplyIntent::Affirmative),
            ("Sawa sawa", ReplyIntent::Affirmative),
            ("poa", ReplyIntent::Affirmative),
            ("Yes but not now", ReplyIntent::Other),
            ("no", ReplyIntent::Other),
            ("hapana", ReplyIntent::Other),
            ("Ok later", ReplyIntent::Other),
            ("Yes I don't want it", ReplyIntent::Other),
            ("Sawa sitaki", ReplyIntent::Other),
            ("Yes stop", ReplyIntent::Other),
            ("What colours do you have?", ReplyIntent::Other),
            (
                "yes I want the blue one but can you deliver tomorrow to Kisumu",
                ReplyIntent::Other,
            ),
            ("yesterday", ReplyIntent::Other),
        ];
        for (text, expected) in cases {
            assert_eq!(intent(text), expected, "intent of {text:?}");
        }
    }

    #[test]
    fn swahili_opt_out_needs_extra_keywords() {
        let kenya = Keywords::default().with_extra(&["ACHA", "SITISHA"], &["ANZA"], &["ndio sawa"]);
        let cases = [
            ("Acha", ReplyIntent::Other, ReplyIntent::OptOut),
            ("sitisha tafadhali", ReplyIntent::Other, ReplyIntent::OptOut),
            ("Anza", ReplyIntent::Other, ReplyIntent::OptIn),
            ("STOP", ReplyIntent::OptOut, ReplyIntent::OptOut),
        ];
        for (text, with_defaults, with_extra) in cases {
            let defaults = Keywords::default();
            assert_eq!(
                classify(text, &defaults),
                with_defaults,
                "default intent of {text:?}"
            );
            assert_eq!(
                classify(text, &kenya),
                with_extra,
                "Kenyan intent of {text:?}"
            );
        }
    }

    #[test]
    fn fold_normalises_text() {
        let cases = [
            ("ARRÊT", "arret"),
            ("  Stop.  Thank   you! ", "stop thank you"),
            ("Opt-out", "opt out"),
            ("don't", "dont"),
            ("Café, crème", "cafe creme"),
            ("ＳＴＯＰ", "stop"),
            ("ok👍", "ok"),
            ("", ""),
        ];
        for (text, expected) in cases {
            assert_eq!(fold(text), expected, "fold of {text:?}");
        }
    }
}
