#![allow(clippy::unwrap_used)]
//! Checks the figures of `nudge replay --format chats` on the Twitter customer-care file against
//! a second, independent model of the chat-idle rules, computed here straight from the CSV.
//!
//! The model follows the replay specification only. Agent rows arm a per-conversation idle timer
//! and customer rows cancel it. A firing timer enters the flow at most once per conversation, and
//! steps go out on a virtual clock that stops at the last row. Each message is free-form text
//! inside the customer's 24-hour window (less a 10-minute margin) and a template outside it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::process::Command;
use std::str::FromStr;

use serde_json::Value;

const DATA: &str = "data/twitter_customer_care_cdp_scrubbed.csv";

/// Idle time after an agent reply (`idle = "24h"`).
const IDLE: i64 = 24 * 60 * 60;
/// Cumulative offsets of the flow's steps from the run's entry (one step, `wait = "0s"`).
const STEP_OFFSETS: [i64; 1] = [0];
/// Length of the customer-service window opened by an inbound message.
const WINDOW: i64 = 24 * 60 * 60;
/// Safety margin taken off the end of that window.
const MARGIN: i64 = 10 * 60;

const FLOW: &str = r#"name = "chat-followup"
trigger = "conversation_idle"
idle = "24h"
require_quote = false
quiet_hours = "off"

[[steps]]
wait = "0s"
channel = "whatsapp"
text = "Hi [Name], just checking in about the [Product Name] we discussed. Any more questions?"
template = { name = "chat_followup", language = "en", params = ["[First Name]", "[Product Name]"] }
"#;

/// Which side of the conversation wrote a replayed row.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Inbound,
    Outbound,
}

/// One replayed row: its time in Unix seconds, its side and its conversation.
struct Row {
    time: i64,
    side: Side,
    conversation: String,
}

/// Plain facts about the whole file, before any row is skipped.
#[derive(Debug, Default)]
struct FileFacts {
    rows: u64,
    customer: u64,
    agent: u64,
    other_user: u64,
    conversations: usize,
    agent_without_time: u64,
    without_time: u64,
}

/// The report figures the model predicts.
#[derive(Debug, Default, PartialEq, Eq)]
struct Figures {
    events: u64,
    conversations: u64,
    entered: u64,
    messages: u64,
    messages_text: u64,
    messages_template: u64,
    pending: u64,
}

/// Reads the CSV, counts its plain facts and returns the rows the replay keeps, in time order
/// (file order for equal times).
fn load() -> (FileFacts, Vec<Row>) {
    let path = nudge_testkit::shared_data(DATA);
    let mut reader = csv::Reader::from_path(&path)
        .unwrap_or_else(|error| panic!("failed to open {}: {error}", path.display()));
    let headers = reader.headers().unwrap().clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|header| header == name)
            .unwrap_or_else(|| panic!("column {name} missing from the CSV header"))
    };
    let (id_col, role_col, time_col) = (
        column("conversation_id"),
        column("role"),
        column("datetime_utc"),
    );

    let mut facts = FileFacts::default();
    let mut all_conversations = HashSet::new();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.unwrap();
        facts.rows += 1;
        let conversation = record.get(id_col).unwrap().to_string();
        let role = record.get(role_col).unwrap();
        let time = record.get(time_col).unwrap().trim();
        all_conversations.insert(conversation.clone());
        match role {
            "customer" => facts.customer += 1,
            "agent" => facts.agent += 1,
            "other_user" => facts.other_user += 1,
            other => panic!("invalid role {other:?}, expected customer, agent or other_user"),
        }
        if time.is_empty() {
            facts.without_time += 1;
            if role == "agent" {
                facts.agent_without_time += 1;
            }
            continue;
        }
        let side = match role {
            "customer" => Side::Inbound,
            "agent" => Side::Outbound,
            _ => continue,
        };
        let time = jiff::Timestamp::from_str(time)
            .unwrap_or_else(|error| panic!("invalid datetime_utc {time:?}: {error}"))
            .as_second();
        rows.push(Row {
            time,
            side,
            conversation,
        });
    }
    facts.conversations = all_conversations.len();
    // A stable sort keeps file order among rows with the same time.
    rows.sort_by_key(|row| row.time);
    (facts, rows)
}

/// Something due on the virtual clock for one conversation.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    /// The idle timer fires.
    Idle,
    /// The run's step with this index is sent.
    Step(usize),
}

/// The state of one conversation.
#[derive(Default)]
struct Conversation {
    /// When the idle timer is due, if armed.
    idle_due: Option<i64>,
    /// Whether the flow has been entered (at most once).
    entered: bool,
    /// The next step of an active run and when it is due.
    next_step: Option<(usize, i64)>,
    /// Time of the last inbound row processed so far.
    last_inbound: Option<i64>,
}

/// Runs the rules over the rows and returns the predicted figures.
fn model(rows: &[Row]) -> Figures {
    let mut figures = Figures {
        events: rows.len() as u64,
        conversations: rows
            .iter()
            .map(|row| row.conversation.as_str())
            .collect::<HashSet<_>>()
            .len() as u64,
        ..Figures::default()
    };
    let mut states: HashMap<&str, Conversation> = HashMap::new();
    // Everything scheduled, ordered by due time. Entries that no longer match the
    // conversation's state are stale and are dropped when reached.
    let mut queue: BTreeSet<(i64, Due, &str)> = BTreeSet::new();

    for row in rows {
        // Process everything due at or before this row's time, earliest first. A step due at the
        // moment of entry is queued with that same time and so runs in this loop too.
        while let Some(&(due, what, id)) = queue.first() {
            if due > row.time {
                break;
            }
            queue.pop_first();
            let state = states.get_mut(id).unwrap();
            match what {
                Due::Idle => {
                    if state.idle_due != Some(due) {
                        continue;
                    }
                    state.idle_due = None;
                    if state.entered {
                        continue;
                    }
                    state.entered = true;
                    figures.entered += 1;
                    let send_at = due + STEP_OFFSETS[0];
                    state.next_step = Some((0, send_at));
                    queue.insert((send_at, Due::Step(0), id));
                }
                Due::Step(index) => {
                    if state.next_step != Some((index, due)) {
                        continue;
                    }
                    figures.messages += 1;
                    let in_window = state
                        .last_inbound
                        .is_some_and(|last| due < last + WINDOW - MARGIN);
                    if in_window {
                        figures.messages_text += 1;
                    } else {
                        figures.messages_template += 1;
                    }
                    state.next_step = STEP_OFFSETS.get(index + 1).map(|offset| {
                        let at = due - STEP_OFFSETS[index] + offset;
                        queue.insert((at, Due::Step(index + 1), id));
                        (index + 1, at)
                    });
                }
            }
        }

        let state = states.entry(row.conversation.as_str()).or_default();
        // Any row in the conversation ends a run whose steps are not all sent yet.
        state.next_step = None;
        match row.side {
            Side::Inbound => {
                state.last_inbound = Some(row.time);
                state.idle_due = None;
            }
            Side::Outbound => {
                let due = row.time + IDLE;
                state.idle_due = Some(due);
                queue.insert((due, Due::Idle, row.conversation.as_str()));
            }
        }
    }

    // The clock stops at the last row, so whatever is still queued never happens. Runs that
    // still have a step to send are pending.
    figures.pending = states
        .values()
        .filter(|state| state.next_step.is_some())
        .count() as u64;
    figures
}

/// Runs the binary on the file with the test flow and returns its JSON report.
fn replay() -> Value {
    let flows = tempfile::tempdir().unwrap();
    std::fs::write(flows.path().join("chat-followup.toml"), FLOW).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_nudge"))
        .arg("replay")
        .arg("--format")
        .arg("chats")
        .arg(nudge_testkit::shared_data(DATA))
        .arg("--flows")
        .arg(flows.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "nudge replay failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn figure(report: &Value, key: &str) -> u64 {
    report[key]
        .as_u64()
        .unwrap_or_else(|| panic!("report key {key} missing or not a count: {report}"))
}

#[test]
fn csv_counts_match_known_totals() {
    let (facts, rows) = load();
    assert_eq!(facts.rows, 2350, "{facts:?}");
    assert_eq!(facts.customer, 1177, "{facts:?}");
    assert_eq!(facts.agent, 1139, "{facts:?}");
    assert_eq!(facts.other_user, 34, "{facts:?}");
    assert_eq!(facts.conversations, 1025, "{facts:?}");
    // Only the 38 appended closing replies lack a time, and they are all agent rows.
    assert_eq!(facts.agent_without_time, 38, "{facts:?}");
    assert_eq!(facts.without_time, 38, "{facts:?}");

    let first = rows.first().unwrap().time;
    let last = rows.last().unwrap().time;
    assert_eq!(
        jiff::Timestamp::from_second(first).unwrap().to_string(),
        "2018-05-02T16:14:43Z"
    );
    assert_eq!(
        jiff::Timestamp::from_second(last).unwrap().to_string(),
        "2020-04-03T02:41:58Z"
    );
}

#[test]
fn replay_figures_match_model() {
    let (_, rows) = load();
    let expected = model(&rows);
    // Skipping the 34 other_user rows and the 38 rows without time leaves 2,278.
    assert_eq!(expected.events, 2350 - 34 - 38);
    assert!(expected.entered > 0, "{expected:?}");
    assert_eq!(
        expected.messages_template, expected.messages,
        "{expected:?}"
    );

    let report = replay();
    let actual = Figures {
        events: figure(&report, "events"),
        conversations: figure(&report, "conversations"),
        entered: figure(&report, "entered"),
        messages: figure(&report, "messages"),
        messages_text: figure(&report, "messages_text"),
        messages_template: figure(&report, "messages_template"),
        pending: figure(&report, "pending"),
    };
    assert_eq!(actual, expected, "report: {report}");
    assert_eq!(figure(&report, "idle_entered"), expected.entered);
    assert_eq!(figure(&report, "pending"), 0);
    assert_eq!(
        figure(&report, "messages_template"),
        figure(&report, "messages")
    );

    let flow = &report["flows"]["chat-followup"];
    assert_eq!(figure(flow, "entered"), expected.entered, "{flow}");
    assert_eq!(figure(flow, "messages"), expected.messages, "{flow}");
    assert_eq!(
        figure(flow, "messages_text"),
        expected.messages_text,
        "{flow}"
    );
    assert_eq!(
        figure(flow, "messages_template"),
        expected.messages_template,
        "{flow}"
    );
}
