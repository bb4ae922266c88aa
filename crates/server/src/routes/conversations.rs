//! Conversations and hold requests for agents: where each chat stopped, sending as an agent,
//! resuming automation after a takeover, and the holds customers asked for.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use nudge_core::store::{ConversationDetail, ConversationSummary, HoldView};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiQuery, PathId};
use crate::state::App;

/// Longest text an agent may send in one message (WhatsApp's limit for text bodies).
const MAX_TEXT_CHARS: usize = 4096;

#[derive(Debug, Deserialize)]
pub struct ListParams {
    limit: Option<usize>,
}

pub async fn list(
    State(app): State<App>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let limit = params.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(
            "limit",
            "must be a number from 1 to 500",
        ));
    }
    let conversations: Vec<ConversationSummary> = app
        .store()
        .list_conversations(caller.workspace_id, limit)
        .await?;
    Ok(Json(json!({ "conversations": conversations })))
}

pub async fn get(
    State(app): State<App>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<Json<ConversationDetail>, ApiError> {
    app.store()
        .conversation(caller.workspace_id, id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("conversation {id} not found")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentMessage {
    text: String,
}

pub async fn send(
    State(app): State<App>,
    caller: Caller,
    PathId(id): PathId,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let message: AgentMessage = serde_json::from_slice(&body).map_err(|error| {
        ApiError::bad_request(
            "text",
            format!("body must be {{\"text\": \"...\"}}: {error}"),
        )
    })?;
    let text = message.text.trim();
    if text.is_empty() {
        return Err(ApiError::bad_request("text", "must not be empty"));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(ApiError::bad_request(
            "text",
            format!("longer than {MAX_TEXT_CHARS} characters"),
        ));
    }
    let now = app.clock().now();
    let message_id = app
        .store()
        .send_agent_message(app.engine(), caller.workspace_id, id, text, now)
        .await?;
    app.wake();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "message_id": message_id, "status": "queued" })),
    ))
}

pub async fn resume(
    State(app): State<App>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<Json<Value>, ApiError> {
    let now = app.clock().now();
    if !app
        .store()
        .resume_conversation(caller.workspace_id, id, now)
        .await?
    {
        return Err(ApiError::NotFound(format!("conversation {id} not found")));
    }
    tracing::info!(conversation = id, "automation resumed by an agent");
    Ok(Json(json!({ "id": id, "paused": false })))
}

#[derive(Debug, Deserialize)]
pub struct HoldParams {
    status: Option<String>,
}

pub async fn holds(
    State(app): State<App>,
    caller: Caller,
    ApiQuery(params): ApiQuery<HoldParams>,
) -> Result<Json<Value>, ApiError> {
    if let Some(status) = params.status.as_deref() {
        if !matches!(status, "open" | "resolved") {
            return Err(ApiError::bad_request("status", "must be open or resolved"));
        }
    }
    let holds: Vec<HoldView> = app
        .store()
        .holds(caller.workspace_id, params.status.as_deref())
        .await?;
    Ok(Json(json!({ "holds": holds })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resolution {
    #[serde(default)]
    resolution: String,
}

pub async fn resolve_hold(
    State(app): State<App>,
    caller: Caller,
    PathId(id): PathId,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let resolution: Resolution = if body.is_empty() {
        Resolution {
            resolution: String::new(),
        }
    } else {
        serde_json::from_slice(&body).map_err(|error| {
            ApiError::bad_request("resolution", format!("invalid body: {error}"))
        })?
    };
    let now = app.clock().now();
    if !app
        .store()
        .resolve_hold(caller.workspace_id, id, resolution.resolution.trim(), now)
        .await?
    {
        return Err(ApiError::NotFound(format!("no open hold {id}")));
    }
    Ok(Json(json!({ "id": id, "status": "resolved" })))
}
