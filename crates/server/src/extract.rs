//! Extractors whose rejections use the API's JSON error body instead of axum's plain text.

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A numeric id from the path, such as the `{id}` of `/v1/conversations/{id}`.
#[derive(Debug, Clone, Copy)]
pub struct PathId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::bad_request("id", "missing id in the path"))?;
        raw.parse::<i64>()
            .map(PathId)
            .map_err(|_| ApiError::bad_request("id", format!("{raw:?} is not a numeric id")))
    }
}

/// Query parameters; a parameter of the wrong type is a 400 naming it.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection| {
                // axum words these as "Failed to deserialize query string: limit: invalid
                // digit found in string"; the parameter is the part before the second colon.
                let detail = rejection.body_text();
                let field = detail
                    .split(": ")
                    .nth(1)
                    .filter(|_| detail.split(": ").count() > 2)
                    .filter(|name| !name.is_empty() && !name.contains(' '))
                    .unwrap_or_default()
                    .to_string();
                ApiError::bad_request(field, format!("invalid query string: {detail}"))
            })
    }
}
