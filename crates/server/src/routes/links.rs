//! `GET /r/{token}`: the short link in a message. It redirects only to the target stored
//! with the message, so it can never be turned into an open redirect.

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::App;

pub async fn follow(
    State(app): State<App>,
    method: Method,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    if token.len() > 64 || !token.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ApiError::NotFound("link not found".into()));
    }
    let now = app.clock().now();
    // A HEAD request (a link preview, a scanner) is not a click.
    let click = method != Method::HEAD;
    match app.store().follow_link(&token, click, now).await? {
        Some(target) => {
            metrics::counter!("nudge_link_clicks_total").increment(1);
            Ok((StatusCode::FOUND, [(header::LOCATION, target)]).into_response())
        }
        None => Err(ApiError::NotFound("link not found".into())),
    }
}
