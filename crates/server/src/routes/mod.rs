//! The HTTP routes and the layers around them.

mod conversations;
mod events;
mod health;
mod links;
mod messages;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::routing::{get, post};
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::state::App;
use crate::webhooks;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(app: App) -> Router {
    let api = Router::new()
        .route("/v1/events", post(events::post))
        .route("/v1/messages", get(messages::list))
        .route("/v1/openapi.json", get(health::openapi))
        .route("/webhooks/shopify", post(webhooks::shopify::receive))
        .route(
            "/webhooks/woocommerce",
            post(webhooks::woocommerce::receive),
        )
        .route(
            "/webhooks/whatsapp",
            get(webhooks::whatsapp::verify).post(webhooks::whatsapp::receive),
        )
        .route("/v1/conversations", get(conversations::list))
        .route("/v1/conversations/{id}", get(conversations::get))
        .route("/v1/conversations/{id}/messages", post(conversations::send))
        .route("/v1/conversations/{id}/resume", post(conversations::resume))
        .route("/v1/holds", get(conversations::holds))
        .route("/v1/holds/{id}/resolve", post(conversations::resolve_hold))
        // Bodies are read by hand under `body_limit`, so the extractor limit is off.
        .layer(DefaultBodyLimit::disable());
    Router::new()
        .merge(api)
        .route("/r/{token}", get(links::follow))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .fallback(|| async { ApiError::NotFound("no such route; see /v1/openapi.json".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed("method not allowed on this route; see /v1/openapi.json".into())
        })
        .with_state(app)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                    let route = request
                        .extensions()
                        .get::<axum::extract::MatchedPath>()
                        .map(|path| path.as_str().to_string())
                        .unwrap_or_default();
                    let id = request
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    tracing::info_span!("request", method = %request.method(), route, request_id = id)
                }))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID)),
        )
}
