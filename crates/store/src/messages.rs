//! Listing messages for the API, newest first, with keyset pagination on the message id.

use nudge_core::channel::{ChannelKind, MessageKind};
use nudge_core::store::{MessagePage, MessageQuery, MessageView, StoreError};
use sqlx::any::AnyRow;

use crate::SqlStore;
use crate::rows::{db_error, get, json_error, ts};

/// The largest page the API returns.
pub const MAX_PAGE: usize = 500;

pub(crate) async fn list(
    store: &SqlStore,
    workspace_id: i64,
    query: &MessageQuery,
) -> Result<MessagePage, StoreError> {
    let limit = query.limit.clamp(1, MAX_PAGE);
    let mut sql = String::from(
        "SELECT id, to_address, body, channel, provider, kind, template, status, reason, segments, \
         encoding, run_id, step, flow, provider_message_id, link_token, created_at, sent_at \
         FROM messages WHERE workspace_id = $1",
    );
    let mut texts: Vec<&str> = Vec::new();
    let mut next = 2;
    for (column, value) in [
        ("to_address", query.contact.as_deref()),
        ("status", query.status.as_deref()),
        ("flow", query.flow.as_deref()),
    ] {
        if let Some(value) = value {
            sql.push_str(&format!(" AND {column} = ${next}"));
            texts.push(value);
            next += 1;
        }
    }
    if query.before_id.is_some() {
        sql.push_str(&format!(" AND id < ${next}"));
        next += 1;
    }
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ${next}"));
    let mut statement = sqlx::query(&sql).bind(workspace_id);
    for text in texts {
        statement = statement.bind(text);
    }
    if let Some(before) = query.before_id {
        statement = statement.bind(before);
    }
    // One extra row tells whether another page follows.
    let rows = statement
        .bind(i64::try_from(limit + 1).unwrap_or(i64::MAX))
        .fetch_all(&store.read)
        .await
        .map_err(db_error)?;
    let mut messages = rows
        .iter()
        .map(view_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let next_cursor = if messages.len() > limit {
        messages.truncate(limit);
        messages.last().map(|message| message.id.to_string())
    } else {
        None
    };
    Ok(MessagePage {
        messages,
        next_cursor,
    })
}

fn view_from_row(row: &AnyRow) -> Result<MessageView, StoreError> {
    let channel: String = get(row, "channel")?;
    let kind: String = get(row, "kind")?;
    let template: Option<String> = get(row, "template")?;
    Ok(MessageView {
        id: get(row, "id")?,
        contact: get(row, "to_address")?,
        body: get(row, "body")?,
        channel: ChannelKind::parse(&channel).unwrap_or(ChannelKind::Sms),
        provider: get(row, "provider")?,
        kind: MessageKind::parse(&kind).unwrap_or(MessageKind::Text),
        template: template
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(json_error)?,
        status: get(row, "status")?,
        reason: get(row, "reason")?,
        segments: get(row, "segments")?,
        encoding: get(row, "encoding")?,
        run: get(row, "run_id")?,
        step: get(row, "step")?,
        flow: get(row, "flow")?,
        provider_message_id: get(row, "provider_message_id")?,
        link: get(row, "link_token")?,
        created_at: ts(get(row, "created_at")?),
        sent_at: get::<Option<i64>>(row, "sent_at")?.map(ts),
    })
}
