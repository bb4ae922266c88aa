//! Timers live in the database: a timer armed before a stop fires once after the restart.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use nudge_core::store::Store;
use serde_json::json;
use support::*;

#[tokio::test]
async fn timer_set_before_stop_fires_once_after_restart() {
    for db in databases().await {
        let name = db.name;
        let first = TestApp::spawn_on(name, &db.url, Options::default()).await;
        let checkout = json!({
            "type": "checkout.updated",
            "id": "restart-1",
            "occurred_at": "2026-01-15T07:05:00Z",
            "contact": { "phone": "0700 000 021", "first_name": "Baraka" },
            "items": [{ "title": "Sample Sneakers 42", "quantity": 1, "price": "3200" }],
            "total": "3200",
            "currency": "KES",
            "recovery_url": "https://shop.example/cart/restart-1"
        });
        assert_eq!(first.post_events(&checkout).await.status(), 200, "{name}");
        first.stop().await;

        // The process comes back after the timer was due; its own workers must fire it.
        let second = TestApp::spawn_on(
            name,
            &db.url,
            Options {
                start: "2026-01-15T07:05:30Z".parse().unwrap(),
                ..Options::default()
            },
        )
        .await;
        let workers = second.start_workers();
        let started = Instant::now();
        while second.sent().await.is_empty() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{name}: overdue timer never fired"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Nothing else is due now, however often the workers look.
        second.run_due().await;
        let sent = second.sent().await;
        assert_eq!(sent.len(), 1, "{name}: {sent:?}");
        let message_id = sent[0]["id"].as_i64().unwrap();
        assert!(
            second.store.sandbox_has(message_id).await.unwrap(),
            "{name}"
        );
        assert_eq!(second.sandbox_sends().await, 1, "{name}: sent exactly once");
        second.stop().await;
        workers.join().await;
    }
}
