//! Customer-care conversations as replay input: one CSV row per message with
//! `conversation_id`, `role` (`customer`, `agent` or `other_user`), `datetime_utc` and
//! `text`.
//!
//! Rows without a time and `other_user` rows are skipped. The rest are taken in time order
//! (file order for ties): customer rows are inbound messages, agent rows outbound messages
//! written by an agent, and the contact is the conversation id.

use std::path::PathBuf;

use anyhow::Context;
use nudge_core::channel::ChannelKind;
use nudge_core::event::{Author, ChatMessageEvent, ContactInput, Event};
use nudge_core::time::Timestamp;

use super::Step;

/// Reads the files; returns the steps and the number of rows replayed.
pub fn read(files: &[PathBuf]) -> anyhow::Result<(Vec<Step>, usize)> {
    let mut rows: Vec<(Timestamp, Event)> = Vec::new();
    for file in files {
        let mut reader = csv::Reader::from_path(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let headers = reader.headers()?.clone();
        let column = |name: &str| {
            headers
                .iter()
                .position(|header| header == name)
                .with_context(|| format!("{}: no {name} column", file.display()))
        };
        let (conversation, role, time, text, message) = (
            column("conversation_id")?,
            column("role")?,
            column("datetime_utc")?,
            column("text")?,
            column("message_id")?,
        );
        for (index, record) in reader.records().enumerate() {
            let record =
                record.with_context(|| format!("{}: record {}", file.display(), index + 1))?;
            let field = |position: usize| record.get(position).unwrap_or_default().trim();
            let inbound = match field(role) {
                "customer" => true,
                "agent" => false,
                _ => continue,
            };
            if field(time).is_empty() {
                continue;
            }
            let at: Timestamp = field(time).parse().with_context(|| {
                format!("{}: record {}: datetime_utc", file.display(), index + 1)
            })?;
            let chat = ChatMessageEvent {
                id: Some(format!("{}:{}", field(conversation), field(message))),
                occurred_at: at,
                contact: ContactInput {
                    customer_id: Some(field(conversation).to_string()),
                    ..ContactInput::default()
                },
                channel: ChannelKind::Whatsapp,
                text: field(text).to_string(),
                kind: None,
                author: (!inbound).then_some(Author::Agent),
                product: None,
                price: None,
                currency: None,
            };
            let event = if inbound {
                Event::MessageInbound(chat)
            } else {
                Event::MessageOutbound(chat)
            };
            rows.push((at, event));
        }
    }
    // A stable sort keeps file order among messages of the same second.
    rows.sort_by_key(|(at, _)| *at);
    let count = rows.len();
    let steps = rows
        .into_iter()
        .map(|(at, event)| Step {
            at,
            events: vec![event],
        })
        .collect();
    Ok((steps, count))
}
