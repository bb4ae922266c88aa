//! The nudge server: the HTTP API, store webhooks, short links and the background workers
//! that fire timers and send messages.
//!
//! Everything here works through the `Store` and `Channel` traits of `nudge-core`; the
//! binary decides which store and which providers to plug in.

pub mod auth;
mod body;
mod error;
mod extract;
mod ingest;
mod metrics;
mod routes;
mod state;
pub mod webhooks;
pub mod workers;

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use error::ApiError;
pub use state::{App, AppConfig, Channels, WorkerConfig};

/// Serves the app on a bound listener until `shutdown` is cancelled.
pub async fn serve(
    app: App,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let router = routes::router(app);
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
}

/// The router alone, for tests that drive it without a socket.
pub fn router(app: App) -> axum::Router {
    routes::router(app)
}
