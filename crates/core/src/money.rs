//! Money amounts written for people reading an SMS or WhatsApp message, such
//! as "KES 1,500" or "EUR 24,99".
//!
//! Amounts are rounded in decimal arithmetic to the currency's ISO 4217 minor
//! units. The output always uses the ISO code instead of a symbol, because the
//! euro sign costs 2 GSM-7 septets and symbols such as ₦ or ₹ switch the whole
//! SMS to UCS-2, which halves its capacity.

use iso_currency::Currency;
use num_format::{Locale, ToFormattedString};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// Minor units used for currency codes that ISO 4217 does not list, or lists
/// without minor units (such as XAU).
const FALLBACK_MINOR_UNITS: u32 = 2;

/// Style of the fraction part of a formatted amount.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MoneyStyle {
    /// Drops an all-zero fraction ("KES 4,850") but keeps every minor digit
    /// otherwise ("KES 1,200.50").
    #[default]
    Compact,
    /// Always writes the currency's minor units ("KES 1,500.00", "JPY 1,500").
    Full,
}

/// Formats an amount as the ISO code, a space and the number, for example
/// "KES 1,500.00".
///
/// The amount is rounded half away from zero to the currency's minor units,
/// or to 2 decimals for a code that has none. `currency` is trimmed and
/// upper-cased before the lookup. Grouping and decimal marks follow `locale`
/// (a BCP 47 tag such as "de-DE", or `None` for English), using the CLDR data
/// bundled with `num-format` 0.4. The full tag is tried first, then its
/// language alone, then English. Marks that are not GSM-7 are replaced by
/// ASCII ones: no-break spaces by a space, ’ by ', and the Arabic marks by
/// "," and ".". Negative amounts keep an ASCII minus sign after the code.
pub fn format_money(
    amount: Decimal,
    currency: &str,
    locale: Option<&str>,
    style: MoneyStyle,
) -> String {
    let code = currency.trim().to_ascii_uppercase();
    let minor = minor_units(&code).unwrap_or(FALLBACK_MINOR_UNITS);
    let rounded = amount.round_dp_with_strategy(minor, RoundingStrategy::MidpointAwayFromZero);

    // Splitting the mantissa keeps the arithmetic exact for any magnitude,
    // because `rescale` cannot always reach `minor` near Decimal's limits.
    let scale = rounded.scale();
    let mantissa = rounded.mantissa().unsigned_abs();
    let divisor = 10u128.pow(scale);
    let whole = mantissa / divisor;
    let fraction = mantissa % divisor;

    let marks = Marks::for_locale(locale);
    let mut number = marks.group(whole);
    let show_fraction = match style {
        MoneyStyle::Full => minor > 0,
        MoneyStyle::Compact => fraction != 0,
    };
    if show_fraction {
        // `round_dp` leaves a smaller scale as it is, so pad with zeros up to
        // the currency's minor units.
        number.push_str(marks.decimal);
        if scale > 0 {
            number.push_str(&format!("{fraction:0width$}", width = scale as usize));
        }
        number.extend(std::iter::repeat_n(
            '0',
            minor.saturating_sub(scale) as usize,
        ));
    }

    let sign = if rounded.is_sign_negative() && !rounded.is_zero() {
        "-"
    } else {
        ""
    };
    format!("{code} {sign}{number}")
}

/// Returns the ISO 4217 minor units (exponent) of a currency code, for example
/// 2 for KES, 0 for JPY and 3 for KWD.
///
/// It returns `None` for codes that are not upper-case ISO 4217 codes known to
/// `iso_currency`, and for codes that ISO 4217 lists without minor units
/// (such as XAU, gold).
pub fn minor_units(currency: &str) -> Option<u32> {
    Currency::from_code(currency)?.exponent().map(u32::from)
}

/// Reports whether `code` is an upper-case ISO 4217 code known to
/// `iso_currency`, for example "KES". Lower-case codes are not accepted.
pub fn is_known_currency(code: &str) -> bool {
    Currency::from_code(code).is_some()
}

/// The grouping separator and decimal mark of a locale, already made GSM-7.
struct Marks {
    locale: Locale,
    separator: &'static str,
    decimal: &'static str,
}

impl Marks {
    fn for_locale(tag: Option<&str>) -> Marks {
        let locale = tag.map_or(Locale::en, find_locale);
        let (separator, decimal) =
            match (gsm7_mark(locale.separator()), gsm7_mark(locale.decimal())) {
                (Some(separator), Some(decimal)) if separator != decimal => (separator, decimal),
                // Every locale in num-format 0.4.4 is covered above, so this arm
                // only guards against newer data with marks GSM-7 cannot carry.
                _ => (",", "."),
            };
        Marks {
            locale,
            separator,
            decimal,
        }
    }

    /// Writes a whole number with the locale's grouping (including Indian
    /// 2-digit groups) and the GSM-7 separator.
    fn group(&self, whole: u128) -> String {
        let grouped = whole.to_formatted_string(&self.locale);
        let separator = self.locale.separator();
        if separator.is_empty() {
            grouped
        } else {
            grouped.replace(separator, self.separator)
        }
    }
}

/// Looks a BCP 47 tag up in `num-format`, first as given (with '_' read as
/// '-'), then by its language, falling back to English.
fn find_locale(tag: &str) -> Locale {
    let tag = tag.trim().replace('_', "-");
    let language = tag
        .split('-')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    Locale::from_name(tag.as_str())
        .or_else(|_| Locale::from_name(language.as_str()))
        .unwrap_or(Locale::en)
}

/// Maps a grouping or decimal mark to one that GSM-7 can carry, or `None` if
/// there is no obvious stand-in.
fn gsm7_mark(mark: &'static str) -> Option<&'static str> {
    match mark {
        "" | "," | "." | " " | "'" => Some(mark),
        "\u{a0}" | "\u{202f}" | "\u{2009}" => Some(" "),
        "’" => Some("'"),
        "٬" => Some(","),
        "٫" => Some("."),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn money(amount: &str, currency: &str, locale: Option<&str>, style: MoneyStyle) -> String {
        let amount = Decimal::from_str(amount).expect("test amounts are decimal strings");
        format_money(amount, currency, locale, style)
    }

    #[test]
    fn cart_totals_use_cart_currency_and_locale() {
        // Each cart in its own currency and ISO minor units, never the store's.
        let cases = [
            ("de-DE", "EUR", "24.99", "EUR 24,99"),
            ("en-KE", "USD", "74849.83", "USD 74,849.83"),
            ("en-KE", "KES", "1500.00", "KES 1,500.00"),
            ("en-KE", "JPY", "1500", "JPY 1,500"),
        ];
        for (locale, currency, amount, expected) in cases {
            let written = money(amount, currency, Some(locale), MoneyStyle::Full);
            assert_eq!(written, expected, "{locale} {currency} {amount}");
        }
        let never = ["EUR 2.499,00", "KES 74,849.83", "JPY 15.00"];
        for (locale, currency, amount, _) in cases {
            for style in [MoneyStyle::Full, MoneyStyle::Compact] {
                let written = money(amount, currency, Some(locale), style);
                assert!(!never.contains(&written.as_str()), "{written}");
            }
        }
    }

    #[test]
    fn compact_style_drops_only_zero_fractions() {
        let cases = [
            ("KES", "4850.00", "KES 4,850"),
            ("KES", "4850", "KES 4,850"),
            ("USD", "74849.83", "USD 74,849.83"),
            ("KES", "1200.50", "KES 1,200.50"),
            ("KES", "1200.5", "KES 1,200.50"),
            ("KWD", "12.5", "KWD 12.500"),
            ("JPY", "1500.4", "JPY 1,500"),
        ];
        for (currency, amount, expected) in cases {
            let written = money(amount, currency, Some("en-KE"), MoneyStyle::Compact);
            assert_eq!(written, expected, "{currency} {amount}");
        }
        assert_eq!(MoneyStyle::default(), MoneyStyle::Compact);
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        let cases = [
            ("KES", "0.005", "KES 0.01"),
            ("KES", "0.004999", "KES 0.00"),
            ("KES", "-0.005", "KES -0.01"),
            ("KES", "-0.004", "KES 0.00"),
            ("JPY", "2.5", "JPY 3"),
            ("JPY", "-2.5", "JPY -3"),
            ("KWD", "1.0005", "KWD 1.001"),
            ("KES", "1.015", "KES 1.02"),
            ("KES", "999999.995", "KES 1,000,000.00"),
        ];
        for (currency, amount, expected) in cases {
            let written = money(amount, currency, None, MoneyStyle::Full);
            assert_eq!(written, expected, "{currency} {amount}");
        }
    }

    #[test]
    fn locales_choose_gsm7_marks() {
        let cases = [
            (None, "KES 1,234,567.89"),
            (Some("en-KE"), "KES 1,234,567.89"),
            (Some("sw-KE"), "KES 1,234,567.89"),
            (Some("sw"), "KES 1,234,567.89"),
            (Some("de-DE"), "KES 1.234.567,89"),
            // CLDR groups Austrian German with a no-break space, unlike de-DE.
            (Some("de_AT"), "KES 1 234 567,89"),
            (Some("fr-FR"), "KES 1 234 567,89"),
            (Some("de-CH"), "KES 1'234'567.89"),
            (Some("en-IN"), "KES 12,34,567.89"),
            (Some("ar-EG"), "KES 1,234,567.89"),
            (Some("xx-YY"), "KES 1,234,567.89"),
            (Some(""), "KES 1,234,567.89"),
        ];
        for (locale, expected) in cases {
            let written = money("1234567.89", "KES", locale, MoneyStyle::Full);
            assert_eq!(written, expected, "{locale:?}");
            assert!(written.is_ascii(), "{written:?}");
        }
    }

    #[test]
    fn negative_amounts_keep_the_minus_sign() {
        let cases = [
            ("en-KE", "-1500", "KES -1,500.00"),
            ("de-DE", "-24.99", "KES -24,99"),
            ("sv-SE", "-1500", "KES -1 500,00"),
        ];
        for (locale, amount, expected) in cases {
            let written = money(amount, "KES", Some(locale), MoneyStyle::Full);
            assert_eq!(written, expected, "{locale} {amount}");
        }
    }

    #[test]
    fn unknown_currencies_use_two_decimals() {
        let cases = [
            ("ABC", "1500", "ABC 1,500.00"),
            ("XAU", "1.5", "XAU 1.50"),
            ("kes", "1500", "KES 1,500.00"),
            (" jpy ", "1500", "JPY 1,500"),
        ];
        for (currency, amount, expected) in cases {
            let written = money(amount, currency, None, MoneyStyle::Full);
            assert_eq!(written, expected, "{currency:?} {amount}");
        }
    }

    #[test]
    fn extreme_amounts_stay_exact() {
        let written = format_money(Decimal::MAX, "KES", None, MoneyStyle::Full);
        assert_eq!(written, "KES 79,228,162,514,264,337,593,543,950,335.00");
        let written = money("0.0000000001", "KES", None, MoneyStyle::Compact);
        assert_eq!(written, "KES 0");
    }

    #[test]
    fn minor_units_follow_iso_4217() {
        let cases = [
            ("KES", Some(2)),
            ("USD", Some(2)),
            ("EUR", Some(2)),
            ("JPY", Some(0)),
            ("UGX", Some(0)),
            ("KWD", Some(3)),
            ("BHD", Some(3)),
            ("CLF", Some(4)),
            ("XAU", None),
            ("ABC", None),
            ("kes", None),
            ("", None),
        ];
        for (code, expected) in cases {
            assert_eq!(minor_units(code), expected, "{code:?}");
        }
    }

    #[test]
    fn known_currencies_are_upper_case_iso_codes() {
        let cases = [
            ("KES", true),
            ("TZS", true),
            ("XAU", true),
            ("kes", false),
            ("KSH", false),
            ("", false),
        ];
        for (code, expected) in cases {
            assert_eq!(is_known_currency(code), expected, "{code:?}");
        }
    }
}
