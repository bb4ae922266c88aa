//! Message text: the field values for a checkout, with their fallbacks, and SMS text fitted to
//! a segment budget by shortening the product name rather than cutting the link.

use rust_decimal::Decimal;

use crate::flow::Fallbacks;
use crate::money::format_money;
use crate::sms::{self, Encoding};
use crate::template::{Fields, Template, TemplateError, capitalise, present};

use super::Settings;
use super::state::CheckoutState;

/// The fewest characters a shortened product name keeps before its `...`.
const MIN_SHORTENED_NAME: usize = 8;

/// Field values for a checkout. `link` is the short link and its token, when there is one.
pub fn fields_for_checkout(
    checkout: &CheckoutState,
    fallbacks: &Fallbacks,
    settings: &Settings,
    link: Option<(&str, &str)>,
) -> Fields {
    let first_name = present(checkout.first_name.as_deref()).map(capitalise);
    let last_name = present(checkout.last_name.as_deref()).map(capitalise);
    let name = first_name.clone().unwrap_or_else(|| fallbacks.name.clone());
    let full_name = match (&first_name, &last_name) {
        (Some(first), Some(last)) => format!("{first} {last}"),
        (Some(first), None) => first.clone(),
        _ => fallbacks.name.clone(),
    };
    let titled: Vec<_> = checkout
        .items
        .iter()
        .filter(|item| !item.title.trim().is_empty())
        .collect();
    let product_name = match titled.as_slice() {
        [] => fallbacks.product_name.clone(),
        [only] => only.title.trim().to_string(),
        [first, rest @ ..] => format!("{} and {} more", first.title.trim(), rest.len()),
    };
    let items = if titled.is_empty() {
        fallbacks.items.clone()
    } else {
        titled
            .iter()
            .map(|item| match item.quantity {
                1 => item.title.trim().to_string(),
                quantity => format!("{quantity} x {}", item.title.trim()),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let locale = checkout.locale.as_deref().or(settings.locale.as_deref());
    let cart_total = match (cart_total(checkout), checkout.currency.as_deref()) {
        (Some(total), Some(currency)) => {
            format_money(total, currency, locale, settings.money_style)
        }
        _ => fallbacks.cart_total.clone(),
    };
    let shop = present(settings.shop_name.as_deref())
        .map(str::to_string)
        .unwrap_or_else(|| fallbacks.shop.clone());
    let (link, link_token) = link
        .map(|(url, token)| (url.to_string(), token.to_string()))
        .unwrap_or_default();
    Fields {
        name: name.clone(),
        first_name: name,
        full_name,
        product_name,
        items,
        item_count: checkout.unit_count().to_string(),
        cart_total,
        price: fallbacks.price.clone(),
        link,
        link_token,
        shop: shop.clone(),
        store_name: shop,
    }
}

/// The checkout's total, or the sum of its lines when every line has a price.
fn cart_total(checkout: &CheckoutState) -> Option<Decimal> {
    if let Some(total) = checkout.total {
        return Some(total);
    }
    if checkout.items.is_empty() {
        return None;
    }
    checkout.items.iter().try_fold(Decimal::ZERO, |sum, item| {
        item.price
            .map(|price| sum + price * Decimal::from(item.quantity))
    })
}

/// SMS text as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsText {
    pub text: String,
    pub encoding: Encoding,
    pub segments: usize,
    /// The product name was shortened to fit.
    pub shortened: bool,
    /// Even the shortest product name did not fit; the text goes out longer than asked.
    pub over_limit: bool,
}

/// Renders SMS text, swaps look-alike characters for GSM-7 ones, and keeps it within
/// `max_segments` by shortening the product name and item list (never the link).
pub fn fit_sms(
    template: &Template,
    fields: &Fields,
    max_segments: Option<usize>,
) -> Result<SmsText, TemplateError> {
    let render = |fields: &Fields| -> Result<(String, sms::SmsInfo), TemplateError> {
        let text = sms::normalise(&template.render(fields)?);
        let info = sms::analyse(&text);
        Ok((text, info))
    };
    let (text, info) = render(fields)?;
    let Some(max) = max_segments.filter(|max| info.segments > *max) else {
        return Ok(SmsText {
            text,
            encoding: info.encoding,
            segments: info.segments,
            shortened: false,
            over_limit: false,
        });
    };
    let shrinkable = template.uses("product_name") || template.uses("items");
    let longest = fields
        .product_name
        .chars()
        .count()
        .max(fields.items.chars().count());
    if !shrinkable || longest <= MIN_SHORTENED_NAME {
        return Ok(SmsText {
            text,
            encoding: info.encoding,
            segments: info.segments,
            shortened: false,
            over_limit: true,
        });
    }
    // The segment count only grows with the kept length, so search for the longest prefix
    // that still fits.
    let shortened_fields = |keep: usize| Fields {
        product_name: shorten(&fields.product_name, keep),
        items: shorten(&fields.items, keep),
        ..fields.clone()
    };
    let (mut low, mut high) = (MIN_SHORTENED_NAME, longest - 1);
    let mut best = None;
    while low <= high {
        let keep = (low + high) / 2;
        let candidate = render(&shortened_fields(keep))?;
        if candidate.1.segments <= max {
            best = Some(candidate);
            low = keep + 1;
        } else {
            high = keep - 1;
        }
    }
    Ok(match best {
        Some((text, info)) => SmsText {
            text,
            encoding: info.encoding,
            segments: info.segments,
            shortened: true,
            over_limit: false,
        },
        None => SmsText {
            text,
            encoding: info.encoding,
            segments: info.segments,
            shortened: false,
            over_limit: true,
        },
    })
}

/// Keeps the first `keep` characters and marks the cut with three ASCII dots, which stay
/// GSM-7 where an ellipsis character would not.
fn shorten(text: &str, keep: usize) -> String {
    if text.chars().count() <= keep {
        return text.to_string();
    }
    let mut out: String = text.chars().take(keep).collect();
    out.push_str("...");
    out
}
