//! Reading loosely typed provider JSON: ids that are numbers or strings, amounts as strings,
//! blank strings that mean nothing.

use rust_decimal::Decimal;
use serde_json::Value;

/// The first non-blank string or number among `paths`, each a `/`-separated path.
pub fn text(value: &Value, paths: &[&str]) -> Option<String> {
    paths
        .iter()
        .find_map(|path| match value.pointer(&pointer(path))? {
            Value::String(text) if !text.trim().is_empty() => Some(text.trim().to_string()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        })
}

pub fn decimal(value: &Value, paths: &[&str]) -> Option<Decimal> {
    text(value, paths).and_then(|text| nudge_core::event::parse_decimal(&text))
}

pub fn boolean(value: &Value, path: &str) -> Option<bool> {
    value.pointer(&pointer(path)).and_then(Value::as_bool)
}

pub fn array<'a>(value: &'a Value, path: &str) -> &'a [Value] {
    value
        .pointer(&pointer(path))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// A positive customer id; WooCommerce writes 0 for guests.
pub fn customer_id(value: &Value, paths: &[&str]) -> Option<String> {
    text(value, paths).filter(|id| id != "0")
}

fn pointer(path: &str) -> String {
    format!("/{path}")
}
