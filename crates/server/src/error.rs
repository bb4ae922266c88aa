//! The one error type of the HTTP API, with its stable JSON body
//! `{"error": {"code", "message", "field"}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nudge_core::event::FieldError;
use nudge_core::store::StoreError;
use serde_json::json;

/// An API failure, by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed; `field` names the part at fault.
    #[error("{message}")]
    BadRequest { field: String, message: String },
    /// 401: missing or wrong credentials or signature.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the credentials are valid but do not allow this.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 409: the request conflicts with the current state (for example, a closed WhatsApp
    /// window).
    #[error("{0}")]
    Conflict(String),
    /// 413: the body is over the limit.
    #[error("request body is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    /// 503: the database is unreachable; the caller should retry.
    #[error("service temporarily unavailable; retry later")]
    Unavailable(String),
    /// 500: a fault on our side; details are logged, not returned.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            field: field.into(),
            message: message.into(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "invalid_request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::TooLarge { .. } => "payload_too_large",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl From<FieldError> for ApiError {
    fn from(error: FieldError) -> Self {
        ApiError::BadRequest {
            field: error.field,
            message: error.message,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(detail) => ApiError::Unavailable(detail),
            StoreError::NotFound => ApiError::NotFound("not found".into()),
            StoreError::Conflict(detail) => ApiError::Conflict(detail),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(detail) => tracing::error!(detail = %detail, "request failed"),
            ApiError::Unavailable(detail) => {
                tracing::warn!(detail = %detail, "database unavailable")
            }
            _ => {}
        }
        let field = match &self {
            ApiError::BadRequest { field, .. } => Some(field.as_str()),
            _ => None,
        };
        let body = json!({
            "error": {
                "code": self.code(),
                "message": self.to_string(),
                "field": field,
            }
        });
        let mut response = (self.status(), Json(body)).into_response();
        if let ApiError::Unavailable(_) = self {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("5"),
            );
        }
        response
    }
}
