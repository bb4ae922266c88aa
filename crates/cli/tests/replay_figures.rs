#![allow(clippy::unwrap_used)]
//! Checks the figures of `nudge replay --format rees46` against a second, independent model of the
//! replay rules, computed here straight from the REES46 CSV files in the shared data folder.
//!
//! The model follows the replay specification, not the product's code. A cart session is a
//! checkout whose idle timer every later row re-arms. An order completes the user's checkouts and
//! ends the user's runs. Steps are sent on a virtual clock that stops at the last row, and each
//! order is credited to the run with the latest message. Each file is replayed on its own.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::Value;

/// Idle time after the last activity on an open checkout (`idle = "10m"`).
const IDLE: i64 = 10 * 60;
/// Cumulative offsets of the flow's steps from the run's entry (`0s`, then `20m`).
const STEP_OFFSETS: [i64; 2] = [0, 20 * 60];
/// Attribution window (`attribution_window = "5d"`).
const WINDOW: i64 = 5 * 24 * 60 * 60;

const FLOW: &str = r#"name = "replay-test"
trigger = "cart_abandoned"
idle = "10m"
quiet_hours = "off"
holdout = 0
attribution_window = "5d"

[[steps]]
wait = "0s"
channel = "sms"
text = "Hi [Name], your [Product Name] is still waiting! [Link]"

[[steps]]
wait = "20m"
channel = "sms"
text = "Still thinking it over? [Link]"
"#;

/// One data row of a REES46 event file, reduced to the fields the rules use.
struct Row {
    time: i64,
    kind: String,
    product: String,
    price: String,
    user: String,
    session: String,
}

/// The report figures the model predicts, plus a few plain facts about the file.
#[derive(Debug, Default)]
struct Figures {
    events: u64,
    checkouts: u64,
    abandoned: u64,
    emptied: u64,
    entered: u64,
    messages: u64,
    cancelled_by_order: u64,
    pending: u64,
    orders: u64,
    recovered_orders: u64,
    recovered_revenue: Decimal,
    sessions: usize,
    purchase_total: Decimal,
}

/// Published row, session and purchase figures of one file, used to check the model's reading.
struct FileFacts {
    rows: u64,
    sessions: usize,
    cart_sessions: u64,
    purchase_sessions: u64,
    purchase_total: &'static str,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum CheckoutState {
    Open,
    Abandoned,
    Emptied,
    Completed,
}

struct Checkout {
    user: String,
    state: CheckoutState,
    items: HashMap<String, u64>,
    /// Queue key of the armed idle timer while the checkout is open.
    idle_key: Option<(i64, u64)>,
}

struct Run {
    user: String,
    entry: i64,
    sent: usize,
    last_sent: Option<i64>,
    running: bool,
    credited: bool,
    /// Queue key of the next step's timer while one is armed.
    step_key: Option<(i64, u64)>,
}

enum Timer {
    Idle(usize),
    Step(usize),
}

/// Converts a `YYYY-MM-DD HH:MM:SS UTC` field to seconds since 1970-01-01.
fn parse_time(text: &str) -> i64 {
    let field = |range: std::ops::Range<usize>| -> i64 {
        text.get(range)
            .and_then(|part| part.parse().ok())
            .unwrap_or_else(|| panic!("invalid event_time {text:?}"))
    };
    assert!(
        text.ends_with(" UTC"),
        "invalid event_time {text:?}: not in UTC"
    );
    let (year, month, day) = (field(0..4), field(5..7), field(8..10));
    let (hour, minute, second) = (field(11..13), field(14..16), field(17..19));
    // Days from the civil date (proleptic Gregorian), counting March as the first month.
    let shifted_year = if month <= 2 { year - 1 } else { year };
    let era = shifted_year.div_euclid(400);
    let year_of_era = shifted_year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    days * 86_400 + hour * 3_600 + minute * 60 + second
}

fn read_rows(path: &Path) -> Vec<Row> {
    let mut reader = csv::Reader::from_path(path)
        .unwrap_or_else(|error| panic!("failed to open {}: {error}", path.display()));
    let headers = reader.headers().unwrap().clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|header| header == name)
            .unwrap_or_else(|| panic!("{}: column {name} is missing", path.display()))
    };
    let time = column("event_time");
    let kind = column("event_type");
    let product = column("product_id");
    let price = column("price");
    let user = column("user_id");
    let session = column("user_session");
    reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            let get = |index: usize| record.get(index).unwrap_or("").to_owned();
            Row {
                time: parse_time(&get(time)),
                kind: get(kind),
                product: get(product),
                price: get(price),
                user: get(user),
                session: get(session),
            }
        })
        .collect()
}

/// Replays `rows` under the rules and returns the figures the report should show.
fn model(rows: &[Row]) -> Figures {
    let mut figures = Figures {
        events: rows.len() as u64,
        ..Figures::default()
    };
    figures.sessions = rows
        .iter()
        .map(|row| row.session.as_str())
        .collect::<HashSet<_>>()
        .len();

    // First pass: each session's purchase rows form one order, placed at its first purchase row.
    let mut order_totals: HashMap<&str, Decimal> = HashMap::new();
    let mut order_rows: HashSet<usize> = HashSet::new();
    for (index, row) in rows.iter().enumerate() {
        if row.kind != "purchase" {
            continue;
        }
        let price = Decimal::from_str(&row.price)
            .unwrap_or_else(|error| panic!("invalid purchase price {:?}: {error}", row.price));
        figures.purchase_total += price;
        match order_totals.get_mut(row.session.as_str()) {
            Some(total) => *total += price,
            None => {
                order_totals.insert(&row.session, price);
                order_rows.insert(index);
            }
        }
    }
    figures.orders = order_totals.len() as u64;

    let mut checkouts: Vec<Checkout> = Vec::new();
    let mut checkout_of_session: HashMap<&str, usize> = HashMap::new();
    let mut runs: Vec<Run> = Vec::new();
    let mut queue: BTreeMap<(i64, u64), Timer> = BTreeMap::new();
    let mut next_seq: u64 = 0;
    let mut arm = |queue: &mut BTreeMap<(i64, u64), Timer>, due: i64, timer: Timer| {
        let key = (due, next_seq);
        next_seq += 1;
        queue.insert(key, timer);
        key
    };

    for (index, row) in rows.iter().enumerate() {
        // Timers due at or before this row come first, in due order, then in arming order.
        while let Some(entry) = queue.first_entry() {
            if entry.key().0 > row.time {
                break;
            }
            let ((due, _), timer) = entry.remove_entry();
            match timer {
                Timer::Idle(id) => {
                    let checkout = &mut checkouts[id];
                    checkout.idle_key = None;
                    if checkout.items.values().any(|count| *count > 0) {
                        checkout.state = CheckoutState::Abandoned;
                        figures.abandoned += 1;
                        figures.entered += 1;
                        let run = runs.len();
                        let key = arm(&mut queue, due + STEP_OFFSETS[0], Timer::Step(run));
                        runs.push(Run {
                            user: checkout.user.clone(),
                            entry: due,
                            sent: 0,
                            last_sent: None,
                            running: true,
                            credited: false,
                            step_key: Some(key),
                        });
                    } else {
                        checkout.state = CheckoutState::Emptied;
                        figures.emptied += 1;
                    }
                }
                Timer::Step(id) => {
                    let run = &mut runs[id];
                    run.sent += 1;
                    run.last_sent = Some(due);
                    run.step_key = None;
                    figures.messages += 1;
                    if let Some(offset) = STEP_OFFSETS.get(run.sent) {
                        let key = arm(&mut queue, run.entry + offset, Timer::Step(id));
                        runs[id].step_key = Some(key);
                    }
                }
            }
        }

        // The row itself: open a checkout at a session's first cart row, or count activity.
        match checkout_of_session.get(row.session.as_str()) {
            Some(&id) => {
                let checkout = &mut checkouts[id];
                if checkout.state == CheckoutState::Open {
                    if let Some(key) = checkout.idle_key.take() {
                        queue.remove(&key);
                    }
                    checkout.idle_key = Some(arm(&mut queue, row.time + IDLE, Timer::Idle(id)));
                    let count = checkout.items.entry(row.product.clone()).or_insert(0);
                    match row.kind.as_str() {
                        "cart" => *count += 1,
                        "remove_from_cart" => *count = count.saturating_sub(1),
                        _ => {}
                    }
                }
            }
            None if row.kind == "cart" => {
                let id = checkouts.len();
                figures.checkouts += 1;
                checkout_of_session.insert(&row.session, id);
                let idle_key = arm(&mut queue, row.time + IDLE, Timer::Idle(id));
                checkouts.push(Checkout {
                    user: row.user.clone(),
                    state: CheckoutState::Open,
                    items: HashMap::from([(row.product.clone(), 1)]),
                    idle_key: Some(idle_key),
                });
            }
            None => {}
        }

        if !order_rows.contains(&index) {
            continue;
        }
        // An order: complete the user's open checkouts, credit a run, end the user's runs.
        for checkout in checkouts.iter_mut() {
            if checkout.user == row.user && checkout.state == CheckoutState::Open {
                checkout.state = CheckoutState::Completed;
                if let Some(key) = checkout.idle_key.take() {
                    queue.remove(&key);
                }
            }
        }
        let mut best: Option<(usize, i64)> = None;
        for (id, run) in runs.iter().enumerate() {
            let Some(last) = run.last_sent else { continue };
            let eligible = run.user == row.user
                && !run.credited
                && last <= row.time
                && row.time - last <= WINDOW;
            if eligible && best.is_none_or(|(_, best_last)| last > best_last) {
                best = Some((id, last));
            }
        }
        if let Some((id, _)) = best {
            runs[id].credited = true;
            figures.recovered_orders += 1;
            figures.recovered_revenue += order_totals[row.session.as_str()];
        }
        for run in runs.iter_mut() {
            if run.user == row.user && run.running {
                run.running = false;
                figures.cancelled_by_order += (STEP_OFFSETS.len() - run.sent) as u64;
                if let Some(key) = run.step_key.take() {
                    queue.remove(&key);
                }
            }
        }
    }

    // The clock stops at the last row: steps of runs still going are pending.
    figures.pending = runs
        .iter()
        .filter(|run| run.running)
        .map(|run| (STEP_OFFSETS.len() - run.sent) as u64)
        .sum();
    figures
}

/// Runs `nudge replay` on one file with the test flow and returns the parsed report.
fn replay(path: &Path) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows");
    std::fs::create_dir(&flows).unwrap();
    std::fs::write(flows.join("replay-test.toml"), FLOW).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_nudge"))
        .current_dir(dir.path())
        .arg("replay")
        .arg("--format")
        .arg("rees46")
        .arg(path)
        .arg("--flows")
        .arg(&flows)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "nudge replay failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "nudge replay printed no JSON report for {}: {error}",
            path.display()
        )
    })
}

fn report_count(report: &Value, file: &str, key: &str) -> u64 {
    report
        .get(key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{file}: report key {key} is missing or not a count"))
}

fn report_decimal(report: &Value, file: &str, key: &str) -> Decimal {
    let text = match report.get(key) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(number)) => number.to_string(),
        _ => panic!("{file}: report key {key} is missing or not a decimal"),
    };
    Decimal::from_str(&text)
        .unwrap_or_else(|error| panic!("{file}: report key {key} = {text:?}: {error}"))
}

fn check_file(file: &str, facts: FileFacts) {
    let path = nudge_testkit::shared_data(file);
    let rows = read_rows(&path);
    let expected = model(&rows);

    // The model's reading of the CSV must agree with the published figures of the file.
    assert_eq!(expected.events, facts.rows, "{file}: rows in the CSV");
    assert_eq!(expected.sessions, facts.sessions, "{file}: sessions");
    assert_eq!(
        expected.checkouts, facts.cart_sessions,
        "{file}: sessions with a cart row"
    );
    assert_eq!(
        expected.orders, facts.purchase_sessions,
        "{file}: sessions with a purchase row"
    );
    assert_eq!(
        expected.purchase_total,
        Decimal::from_str(facts.purchase_total).unwrap(),
        "{file}: sum of price over purchase rows"
    );
    // Every step of every run is sent, cancelled by an order or still pending.
    assert_eq!(
        expected.messages + expected.cancelled_by_order + expected.pending,
        expected.entered * STEP_OFFSETS.len() as u64,
        "{file}: model step bookkeeping"
    );

    let report = replay(&path);
    let counts = [
        ("events", expected.events),
        ("checkouts", expected.checkouts),
        ("abandoned", expected.abandoned),
        ("emptied", expected.emptied),
        ("entered", expected.entered),
        ("holdout", 0),
        ("messages", expected.messages),
        ("cancelled_by_order", expected.cancelled_by_order),
        ("pending", expected.pending),
        ("orders", expected.orders),
        ("recovered_orders", expected.recovered_orders),
    ];
    for (key, value) in counts {
        assert_eq!(
            report_count(&report, file, key),
            value,
            "{file}: report key {key} differs from the independent model"
        );
    }
    assert_eq!(
        report_decimal(&report, file, "recovered_revenue"),
        expected.recovered_revenue,
        "{file}: report key recovered_revenue differs from the independent model"
    );
}

#[test]
fn multicategory_october_matches_independent_count() {
    check_file(
        "data/rees46_multicategory_2019-10-01_first4999.csv",
        FileFacts {
            rows: 4999,
            sessions: 1898,
            cart_sessions: 35,
            purchase_sessions: 50,
            purchase_total: "14786.59",
        },
    );
}

// This file has two identical remove_from_cart rows in one second (session 49e8d843-...); each
// counts, so that checkout is emptied rather than abandoned.
#[test]
fn cosmetics_october_matches_independent_count() {
    check_file(
        "data/rees46_cosmetics/data_2022_oct.csv",
        FileFacts {
            rows: 999,
            sessions: 135,
            cart_sessions: 47,
            purchase_sessions: 8,
            purchase_total: "528.00",
        },
    );
}

#[test]
fn cosmetics_november_matches_independent_count() {
    check_file(
        "data/rees46_cosmetics/data_2022_nov.csv",
        FileFacts {
            rows: 999,
            sessions: 252,
            cart_sessions: 57,
            purchase_sessions: 6,
            purchase_total: "178.24",
        },
    );
}

#[test]
fn cosmetics_december_matches_independent_count() {
    check_file(
        "data/rees46_cosmetics/data_2022_dec.csv",
        FileFacts {
            rows: 999,
            sessions: 337,
            cart_sessions: 53,
            purchase_sessions: 4,
            purchase_total: "282.91",
        },
    );
}

#[test]
fn cosmetics_january_matches_independent_count() {
    check_file(
        "data/rees46_cosmetics/data_2023_jan.csv",
        FileFacts {
            rows: 999,
            sessions: 272,
            cart_sessions: 45,
            purchase_sessions: 5,
            purchase_total: "205.47",
        },
    );
}

#[test]
fn cosmetics_february_matches_independent_count() {
    check_file(
        "data/rees46_cosmetics/data_2023_feb.csv",
        FileFacts {
            rows: 999,
            sessions: 267,
            cart_sessions: 48,
            purchase_sessions: 3,
            purchase_total: "151.44",
        },
    );
}
