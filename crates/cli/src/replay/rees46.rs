//! REES46 / Open CDP event logs as replay input.
//!
//! Each `user_session` with a `cart` row is a checkout of contact `user_id`, opened at its
//! first `cart` row; its later rows are activity on it. Its items are, per product, the
//! `cart` rows minus the `remove_from_cart` rows since it opened, never below 0. The
//! `purchase` rows of one session form one order at the time of the first of them, for the
//! sum of their prices. Orders find their user's checkouts through a stand-in e-mail
//! address per `user_id`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use anyhow::Context;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use nudge_core::event::{CheckoutEvent, ContactInput, Event, Item, OrderEvent};
use nudge_core::time::Timestamp;
use rust_decimal::Decimal;

use super::Step;

/// One data row.
#[derive(Debug, Clone)]
pub struct Row {
    pub at: Timestamp,
    pub kind: String,
    pub product_id: String,
    pub price: Decimal,
    pub user_id: String,
    pub session: String,
}

/// Reads rows from every file, merged in time order (file order, then row order, for ties).
pub fn read_rows(files: &[PathBuf]) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for file in files {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(false)
            .from_path(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let headers = reader.headers()?.clone();
        let column = |name: &str| {
            headers
                .iter()
                .position(|header| header == name)
                .with_context(|| format!("{}: no {name} column", file.display()))
        };
        let (time, kind, product, price, user, session) = (
            column("event_time")?,
            column("event_type")?,
            column("product_id")?,
            column("price")?,
            column("user_id")?,
            column("user_session")?,
        );
        for (index, record) in reader.records().enumerate() {
            let line = index + 2;
            let record = record.with_context(|| format!("{}: line {line}", file.display()))?;
            let field =
                |position: usize| record.get(position).unwrap_or_default().trim().to_string();
            rows.push(Row {
                at: parse_time(&field(time))
                    .with_context(|| format!("{}: line {line}: event_time", file.display()))?,
                kind: field(kind),
                product_id: field(product),
                price: field(price).parse().unwrap_or_default(),
                user_id: field(user),
                session: field(session),
            });
        }
    }
    // A stable sort keeps file order and row order among rows of the same second.
    rows.sort_by_key(|row| row.at);
    Ok(rows)
}

/// Reads `2019-10-01 00:00:00 UTC`.
fn parse_time(text: &str) -> anyhow::Result<Timestamp> {
    let civil = text.trim_end_matches(" UTC").trim().parse::<DateTime>()?;
    Ok(civil.to_zoned(TimeZone::UTC)?.timestamp())
}

#[derive(Default)]
struct Cart {
    /// Per product: `cart` rows, `remove_from_cart` rows, last cart price.
    lines: BTreeMap<String, (u32, u32, Decimal)>,
}

impl Cart {
    fn items(&self) -> Vec<Item> {
        self.lines
            .iter()
            .filter(|(_, (added, removed, _))| added > removed)
            .map(|(product, (added, removed, price))| Item {
                product_id: Some(product.clone()),
                title: String::new(),
                variant: None,
                quantity: added - removed,
                price: Some(*price),
                image_url: None,
            })
            .collect()
    }
}

/// Turns rows into replay steps; returns them with the number of rows read.
pub fn read(files: &[PathBuf]) -> anyhow::Result<(Vec<Step>, usize)> {
    let rows = read_rows(files)?;
    let steps = steps(&rows);
    Ok((steps, rows.len()))
}

pub fn steps(rows: &[Row]) -> Vec<Step> {
    let mut order_totals: HashMap<&str, Decimal> = HashMap::new();
    for row in rows.iter().filter(|row| row.kind == "purchase") {
        *order_totals.entry(row.session.as_str()).or_default() += row.price;
    }
    let mut carts: HashMap<&str, Cart> = HashMap::new();
    let mut ordered: HashMap<&str, bool> = HashMap::new();
    let mut steps: Vec<Step> = Vec::new();
    for row in rows {
        let mut events = Vec::new();
        let session = row.session.as_str();
        let opens = row.kind == "cart" && !carts.contains_key(session);
        if opens {
            carts.insert(session, Cart::default());
        }
        if let Some(cart) = carts.get_mut(session) {
            let line = cart
                .lines
                .entry(row.product_id.clone())
                .or_insert((0, 0, Decimal::ZERO));
            match row.kind.as_str() {
                "cart" => {
                    line.0 += 1;
                    line.2 = row.price;
                }
                "remove_from_cart" => line.1 += 1,
                _ => {}
            }
            if line.0 == 0 && line.1 == 0 {
                cart.lines.remove(&row.product_id);
            }
            events.push(Event::CheckoutUpdated(CheckoutEvent {
                id: row.session.clone(),
                occurred_at: row.at,
                cart_token: None,
                contact: contact(row),
                items: cart.items(),
                total: None,
                currency: None,
                recovery_url: Some(format!("https://replay.invalid/cart/{}", row.session)),
                completed_at: None,
                locale: None,
            }));
        }
        if row.kind == "purchase" && !ordered.contains_key(session) {
            ordered.insert(session, true);
            events.push(Event::OrderCreated(OrderEvent {
                id: row.session.clone(),
                occurred_at: row.at,
                checkout_id: None,
                cart_token: None,
                contact: contact(row),
                total: order_totals.get(session).copied(),
                currency: None,
                discount_codes: Vec::new(),
            }));
        }
        steps.push(Step { at: row.at, events });
    }
    steps
}

/// Builds the contact of a row. The log names users only by `user_id`, so each user gets a
/// stand-in e-mail address, through which orders find the same user's checkouts.
fn contact(row: &Row) -> ContactInput {
    ContactInput {
        email: Some(format!("user-{}@replay.invalid", row.user_id)),
        customer_id: Some(row.user_id.clone()),
        ..ContactInput::default()
    }
}
