//! Reading raw request bodies under an explicit limit, before any parsing, so signatures are
//! checked over the exact bytes that were sent.

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use http_body_util::BodyExt;
use http_body_util::Limited;

use crate::error::ApiError;

/// Reads the whole body, or fails with 413 when it is over `limit` bytes. `delivery` names
/// the delivery in the log line of a rejection (such as a webhook id).
pub async fn read_limited(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    delivery: &str,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        tracing::warn!(
            delivery,
            declared,
            limit,
            "request body over the limit rejected"
        );
        return Err(ApiError::TooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            tracing::warn!(delivery, limit, "request body over the limit rejected");
            Err(ApiError::TooLarge { limit })
        }
        Err(error) => Err(ApiError::bad_request(
            "",
            format!("could not read the request body: {error}"),
        )),
    }
}
