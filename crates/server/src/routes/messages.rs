//! `GET /v1/messages`: messages newest first, filtered by contact, status or flow, one page
//! at a time.

use axum::Json;
use axum::extract::State;
use nudge_core::phone::Phone;
use nudge_core::store::{MessagePage, MessageQuery};
use serde::Deserialize;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::state::App;

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;
const STATUSES: &[&str] = &[
    "queued",
    "sending",
    "sent",
    "delivered",
    "read",
    "failed",
    "unknown",
    "cancelled",
    "skipped",
];

#[derive(Debug, Deserialize)]
pub struct Params {
    contact: Option<String>,
    status: Option<String>,
    flow: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

pub async fn list(
    State(app): State<App>,
    caller: Caller,
    ApiQuery(params): ApiQuery<Params>,
) -> Result<Json<MessagePage>, ApiError> {
    let limit = match params.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|limit| (1..=MAX_LIMIT).contains(limit))
            .ok_or_else(|| {
                ApiError::bad_request("limit", format!("must be a number from 1 to {MAX_LIMIT}"))
            })?,
    };
    let before_id = params
        .cursor
        .as_deref()
        .map(|text| {
            text.parse::<i64>().map_err(|_| {
                ApiError::bad_request("cursor", "must be a next_cursor value from a previous page")
            })
        })
        .transpose()?;
    if let Some(status) = params.status.as_deref() {
        if !STATUSES.contains(&status) {
            return Err(ApiError::bad_request(
                "status",
                format!(
                    "unknown status {status:?}; expected one of {}",
                    STATUSES.join(", ")
                ),
            ));
        }
    }
    // A phone number in any usual spelling finds the E.164 address messages are stored under.
    let contact = params.contact.map(|contact| {
        Phone::parse(&contact, &app.engine().settings.default_region)
            .map(|phone| phone.as_str().to_string())
            .unwrap_or(contact)
    });
    let query = MessageQuery {
        contact,
        status: params.status,
        flow: params.flow,
        limit,
        before_id,
    };
    let mut page = app
        .store()
        .list_messages(caller.workspace_id, &query)
        .await?;
    for message in &mut page.messages {
        message.link = message
            .link
            .take()
            .map(|token| app.engine().short_link(&token));
    }
    Ok(Json(page))
}
