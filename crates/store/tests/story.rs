//! One story over every store operation, run on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use nudge_core::channel::ChannelKind;
use nudge_core::engine::{Engine, Settings};
use nudge_core::event::{CheckoutEvent, ContactInput, Event, Item, OrderEvent};
use nudge_core::flow::{Flow, FlowSet};
use nudge_core::store::{Claim, Incoming, Ingested, MessageQuery, SendResult, Store};
use nudge_core::time::Timestamp;

const FLOW: &str = r#"
name = "cart"
trigger = "cart_abandoned"
idle = "1h"
quiet_hours = "off"

[[steps]]
wait = "0s"
channel = "sms"
text = "Hi [Name], your [Product Name] is still waiting! [Link]"

[[steps]]
wait = "20m"
channel = "sms"
text = "Last call, [Name]: [Link]"
"#;

fn engine() -> Engine {
    let flows = FlowSet::new(vec![Flow::parse(FLOW, "story.toml").unwrap()]).unwrap();
    Engine::new(
        flows,
        Settings {
            public_url: "https://n.example".into(),
            ..Settings::default()
        },
    )
}

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn checkout(id: &str, at: &str, phone: &str) -> Incoming {
    Incoming {
        workspace_id: 1,
        source: "api".into(),
        delivery_id: None,
        event: Event::CheckoutUpdated(CheckoutEvent {
            id: id.into(),
            occurred_at: ts(at),
            cart_token: None,
            contact: ContactInput {
                phone: Some(phone.into()),
                first_name: Some("Amina".into()),
                ..ContactInput::default()
            },
            items: vec![Item {
                product_id: Some("p1".into()),
                title: "Test Kettle 1.7L".into(),
                variant: None,
                quantity: 1,
                price: Some("4500.00".parse().unwrap()),
                image_url: None,
            }],
            total: Some("4850.00".parse().unwrap()),
            currency: Some("KES".into()),
            recovery_url: Some("https://shop.example/recover?key=K".into()),
            completed_at: None,
            locale: None,
        }),
    }
}

fn order(id: &str, at: &str, phone: &str) -> Incoming {
    Incoming {
        workspace_id: 1,
        source: "api".into(),
        delivery_id: Some(format!("delivery-{id}")),
        event: Event::OrderCreated(OrderEvent {
            id: id.into(),
            occurred_at: ts(at),
            checkout_id: None,
            cart_token: None,
            contact: ContactInput {
                phone: Some(phone.into()),
                ..ContactInput::default()
            },
            total: Some("4850.00".parse().unwrap()),
            currency: Some("KES".into()),
            discount_codes: vec![],
        }),
    }
}

fn claim_at(at: &str) -> Claim {
    Claim {
        worker: "story-worker".into(),
        now: Some(ts(at)),
        limit: 100,
        lease: Duration::from_secs(30),
    }
}

#[tokio::test]
async fn store_story_on_every_backend() {
    for db in common::databases().await {
        story(&db).await;
    }
}

async fn story(db: &common::TestDb) {
    let name = db.name;
    let store = common::open(db).await;
    let engine = engine();

    // Workspaces and keys.
    let workspace = store.default_workspace().await.unwrap();
    assert_eq!(workspace, 1, "{name}");
    store
        .create_api_key(workspace, "hash-1", "story", ts("2026-01-15T07:00:00Z"))
        .await
        .unwrap();
    assert_eq!(
        store.workspace_for_key("hash-1").await.unwrap(),
        Some(1),
        "{name}"
    );
    assert_eq!(
        store.workspace_for_key("hash-2").await.unwrap(),
        None,
        "{name}"
    );

    // A checkout arms an idle timer; the same event again is a duplicate.
    let first = checkout("c1", "2026-01-15T07:00:00Z", "0700 000 001");
    let now = ts("2026-01-15T07:00:01Z");
    let results = store
        .ingest(&engine, &[first.clone(), first.clone()], now)
        .await
        .unwrap();
    assert_eq!(
        results,
        vec![Ingested::Applied, Ingested::Duplicate],
        "{name}"
    );
    assert_eq!(
        store.next_due().await.unwrap(),
        Some(ts("2026-01-15T08:00:00Z")),
        "{name}"
    );

    // Nothing fires early.
    let report = store
        .fire_due_timers(&engine, &claim_at("2026-01-15T07:59:59Z"))
        .await
        .unwrap();
    assert_eq!(report.fired, 0, "{name}");

    // At the idle moment the checkout enters the flow, and the first step is due at once.
    let report = store
        .fire_due_timers(&engine, &claim_at("2026-01-15T08:00:00Z"))
        .await
        .unwrap();
    assert_eq!(report.fired, 1, "{name}: idle timer");
    let report = store
        .fire_due_timers(&engine, &claim_at("2026-01-15T08:00:00Z"))
        .await
        .unwrap();
    assert_eq!(report.messages_queued, 1, "{name}: first step");

    // Claiming marks the message sending; a second claim finds nothing.
    let claimed = store
        .claim_messages(&claim_at("2026-01-15T08:00:01Z"))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "{name}");
    let message = &claimed[0].message;
    assert_eq!(message.channel, ChannelKind::Sms, "{name}");
    assert_eq!(message.to, "+254700000001", "{name}");
    assert!(
        message
            .body
            .starts_with("Hi Amina, your Test Kettle 1.7L is still waiting! https://n.example/r/"),
        "{name}: {}",
        message.body
    );
    assert!(
        store
            .claim_messages(&claim_at("2026-01-15T08:00:02Z"))
            .await
            .unwrap()
            .is_empty(),
        "{name}"
    );
    store
        .finish_send(
            message.message_id,
            &SendResult::Sent {
                provider: "sandbox".into(),
                provider_message_id: Some("p-1".into()),
            },
            ts("2026-01-15T08:00:02Z"),
        )
        .await
        .unwrap();

    // The message is listed, and its link redirects with campaign parameters.
    let page = store
        .list_messages(
            1,
            &MessageQuery {
                limit: 10,
                ..MessageQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.messages.len(), 1, "{name}");
    assert_eq!(page.messages[0].status, "sent", "{name}");
    assert_eq!(page.messages[0].step, 0, "{name}");
    let token = page.messages[0].link.clone().unwrap();
    let target = store
        .follow_link(&token, true, ts("2026-01-15T08:05:00Z"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        target,
        "https://shop.example/recover?key=K&utm_source=nudge&utm_medium=sms&utm_campaign=cart",
        "{name}"
    );
    assert_eq!(
        store
            .follow_link("unknown", true, ts("2026-01-15T08:05:00Z"))
            .await
            .unwrap(),
        None,
        "{name}"
    );

    // An order from the same phone before the second step stops the run.
    let results = store
        .ingest(
            &engine,
            &[order("o1", "2026-01-15T08:10:00Z", "+254700000001")],
            ts("2026-01-15T08:10:00Z"),
        )
        .await
        .unwrap();
    assert_eq!(results, vec![Ingested::Applied], "{name}");
    let report = store
        .fire_due_timers(&engine, &claim_at("2026-01-15T09:00:00Z"))
        .await
        .unwrap();
    assert_eq!(report.fired, 0, "{name}: second step cancelled");
    let (figures, per_flow) = store.figures(1).await.unwrap();
    assert_eq!(figures.checkouts, 1, "{name}");
    assert_eq!(figures.abandoned, 1, "{name}");
    assert_eq!(figures.entered, 1, "{name}");
    assert_eq!(figures.messages, 1, "{name}");
    assert_eq!(figures.cancelled_by_order, 1, "{name}");
    assert_eq!(figures.orders, 1, "{name}");
    assert_eq!(figures.recovered_orders, 1, "{name}");
    assert_eq!(figures.recovered_revenue, "4850", "{name}");
    assert_eq!(per_flow.len(), 1, "{name}");

    // The same order again, through another delivery, changes nothing.
    let again = Incoming {
        delivery_id: Some("other".into()),
        ..order("o1", "2026-01-15T08:10:00Z", "+254700000001")
    };
    let results = store
        .ingest(&engine, &[again], ts("2026-01-15T08:11:00Z"))
        .await
        .unwrap();
    assert_eq!(results, vec![Ingested::Duplicate], "{name}");

    store.close().await;
}

#[tokio::test]
async fn claims_are_released_and_stale_sends_reconciled() {
    for db in common::databases().await {
        let name = db.name;
        let store = common::open(&db).await;
        let engine = engine();
        store
            .ingest(
                &engine,
                &[
                    checkout("c2", "2026-01-15T07:00:00Z", "0700000002"),
                    checkout("c3", "2026-01-15T07:00:00Z", "0700000003"),
                ],
                ts("2026-01-15T07:00:00Z"),
            )
            .await
            .unwrap();
        for _ in 0..2 {
            store
                .fire_due_timers(&engine, &claim_at("2026-01-15T08:00:00Z"))
                .await
                .unwrap();
        }
        let claimed = store
            .claim_messages(&claim_at("2026-01-15T08:00:00Z"))
            .await
            .unwrap();
        assert_eq!(claimed.len(), 2, "{name}");
        // One was never started: released, it can be claimed again.
        let unsent = claimed[1].message.message_id;
        let released = store
            .release_claims("story-worker", &[unsent])
            .await
            .unwrap();
        assert_eq!(released, 1, "{name}");
        let again = store
            .claim_messages(&claim_at("2026-01-15T08:00:01Z"))
            .await
            .unwrap();
        assert_eq!(again.len(), 1, "{name}");
        assert_eq!(again[0].message.message_id, unsent, "{name}");
        // The other one's worker "died" during the call: after the lease it is stale, not queued.
        assert!(
            store
                .claim_messages(&claim_at("2026-01-15T08:05:00Z"))
                .await
                .unwrap()
                .is_empty(),
            "{name}"
        );
        let stale = store
            .stale_sending(&claim_at("2026-01-15T08:05:00Z"))
            .await
            .unwrap();
        let stale_ids: Vec<i64> = stale
            .iter()
            .map(|message| message.message.message_id)
            .collect();
        assert!(
            stale_ids.contains(&claimed[0].message.message_id),
            "{name}: {stale_ids:?}"
        );
        store
            .finish_send(
                claimed[0].message.message_id,
                &SendResult::Unknown {
                    reason: "lost in a crash".into(),
                },
                ts("2026-01-15T08:05:00Z"),
            )
            .await
            .unwrap();
        let page = store
            .list_messages(
                1,
                &MessageQuery {
                    status: Some("unknown".into()),
                    limit: 10,
                    ..MessageQuery::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(page.messages.len(), 1, "{name}");
        store.close().await;
    }
}

#[tokio::test]
async fn timers_survive_reopening() {
    for db in common::databases().await {
        let name = db.name;
        let engine = engine();
        {
            let store = common::open(&db).await;
            store
                .ingest(
                    &engine,
                    &[checkout("c4", "2026-01-15T07:00:00Z", "0700000004")],
                    ts("2026-01-15T07:00:00Z"),
                )
                .await
                .unwrap();
            store.close().await;
        }
        let store = common::open(&db).await;
        assert_eq!(
            store.next_due().await.unwrap(),
            Some(ts("2026-01-15T08:00:00Z")),
            "{name}"
        );
        let report = store
            .fire_due_timers(&engine, &claim_at("2026-01-15T08:00:00Z"))
            .await
            .unwrap();
        assert_eq!(report.fired, 1, "{name}");
        let report = store
            .fire_due_timers(&engine, &claim_at("2026-01-15T08:00:00Z"))
            .await
            .unwrap();
        assert_eq!(report.messages_queued, 1, "{name}");
        let report = store
            .fire_due_timers(&engine, &claim_at("2026-01-15T08:00:00Z"))
            .await
            .unwrap();
        assert_eq!(report.fired, 0, "{name}: fired once only");
        store.close().await;
    }
}

#[tokio::test]
async fn opt_out_from_provider_suppresses_address() {
    for db in common::databases().await {
        let name = db.name;
        let store = common::open(&db).await;
        let engine = engine();
        store
            .ingest(
                &engine,
                &[checkout("c5", "2026-01-15T07:00:00Z", "0700000005")],
                ts("2026-01-15T07:00:00Z"),
            )
            .await
            .unwrap();
        for _ in 0..2 {
            store
                .fire_due_timers(&engine, &claim_at("2026-01-15T08:00:00Z"))
                .await
                .unwrap();
        }
        let claimed = store
            .claim_messages(&claim_at("2026-01-15T08:00:00Z"))
            .await
            .unwrap();
        store
            .finish_send(
                claimed[0].message.message_id,
                &SendResult::Failed {
                    provider: "twilio".into(),
                    code: "21610".into(),
                    reason: "unsubscribed".into(),
                    opted_out: true,
                },
                ts("2026-01-15T08:00:01Z"),
            )
            .await
            .unwrap();
        // The next step finds the address suppressed and ends the run.
        let report = store
            .fire_due_timers(&engine, &claim_at("2026-01-15T08:20:00Z"))
            .await
            .unwrap();
        assert_eq!(report.fired, 1, "{name}");
        assert_eq!(report.messages_queued, 0, "{name}");
        let page = store
            .list_messages(
                1,
                &MessageQuery {
                    limit: 10,
                    ..MessageQuery::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(page.messages.len(), 1, "{name}");
        assert_eq!(page.messages[0].status, "failed", "{name}");
        store.close().await;
    }
}

#[tokio::test]
async fn due_timer_is_claimed_once_by_concurrent_workers() {
    // Field failure B25: two workers polling at the same instant, and ticks that pile up
    // after a pause, claim a due job once.
    for db in common::databases().await {
        let name = db.name;
        let engine = engine();
        let first = common::open(&db).await;
        let second = common::open(&db).await;
        first
            .ingest(
                &engine,
                &[checkout("c25", "2025-05-01T09:00:00Z", "0700000025")],
                ts("2025-05-01T09:00:00Z"),
            )
            .await
            .unwrap();
        let claim = |worker: &str| Claim {
            worker: worker.into(),
            now: Some(ts("2025-05-01T10:00:00Z")),
            limit: 100,
            lease: Duration::from_secs(30),
        };
        let (w1, w2) = (claim("W1"), claim("W2"));
        // Both workers poll at the same instant, then ticks pile up on both: the idle timer
        // and the step it arms may fire in either worker, but each fires once.
        for _ in 0..5 {
            let (one, two) = tokio::join!(
                first.fire_due_timers(&engine, &w1),
                second.fire_due_timers(&engine, &w2)
            );
            one.unwrap();
            two.unwrap();
        }
        let (figures, _) = first.figures(1).await.unwrap();
        assert_eq!(
            figures.entered, 1,
            "{name}: the checkout entered the flow once"
        );
        let queued = first
            .list_messages(
                1,
                &MessageQuery {
                    limit: 10,
                    ..MessageQuery::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            queued.messages.len(),
            1,
            "{name}: the step queued one message"
        );
        let (a, b) = tokio::join!(first.claim_messages(&w1), second.claim_messages(&w2));
        assert_eq!(
            a.unwrap().len() + b.unwrap().len(),
            1,
            "{name}: one worker sends it"
        );
        first.close().await;
        second.close().await;
    }
}
