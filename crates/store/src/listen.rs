//! PostgreSQL `LISTEN` for wake-ups between instances. A notification only shortens a wait;
//! polling stays the source of truth, so a lost connection costs latency, never work.

use std::time::Duration;

use nudge_core::store::WakeCallback;
use sqlx::postgres::PgListener;

const CHANNEL: &str = "nudge_wakeup";

pub(crate) async fn run(url: String, on_wake: WakeCallback) {
    let mut delay = Duration::from_millis(500);
    loop {
        match PgListener::connect(&url).await {
            Ok(mut listener) => {
                if let Err(error) = listener.listen(CHANNEL).await {
                    tracing::warn!(%error, "LISTEN failed; polling only until it works again");
                } else {
                    delay = Duration::from_millis(500);
                    loop {
                        match listener.recv().await {
                            Ok(_) => on_wake(),
                            Err(error) => {
                                tracing::warn!(%error, "wake-up listener lost its connection");
                                break;
                            }
                        }
                    }
                }
            }
            Err(error) => tracing::debug!(%error, "wake-up listener cannot connect yet"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}
