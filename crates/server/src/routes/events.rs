//! `POST /v1/events`: one event or an array of events, applied and committed before the
//! answer.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use nudge_core::event::parse_events;
use nudge_core::store::{Incoming, Ingested};
use serde::Serialize;

use crate::auth::Caller;
use crate::body::read_limited;
use crate::error::ApiError;
use crate::state::App;

#[derive(Serialize)]
pub struct EventsResponse {
    /// Events stored and applied by this request.
    pub applied: usize,
    /// Events already received before; they changed nothing.
    pub duplicates: usize,
    pub results: Vec<EventResult>,
}

#[derive(Serialize)]
pub struct EventResult {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    pub result: Ingested,
}

pub async fn post(
    State(app): State<App>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<EventsResponse>, ApiError> {
    let bytes = read_limited(body, &headers, app.config().body_limit, "api").await?;
    let events = parse_events(&bytes)?;
    let incoming: Vec<Incoming> = events
        .into_iter()
        .map(|event| Incoming {
            workspace_id: caller.workspace_id,
            source: "api".into(),
            delivery_id: None,
            event,
        })
        .collect();
    let outcomes = app.0.writer.submit(incoming.clone()).await?;
    let results: Vec<EventResult> = incoming
        .iter()
        .zip(outcomes)
        .map(|(incoming, result)| EventResult {
            kind: incoming.event.type_name(),
            id: incoming.event.id(),
            result,
        })
        .collect();
    let applied = results
        .iter()
        .filter(|result| result.result == Ingested::Applied)
        .count();
    Ok(Json(EventsResponse {
        applied,
        duplicates: results.len() - applied,
        results,
    }))
}
