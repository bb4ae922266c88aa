//! Fault tests with real `nudge serve` processes on PostgreSQL. They cover several instances
//! sharing one database, an instance killed with SIGKILL, a database outage, SIGTERM during
//! sends, a due job that several workers poll for, and one order webhook delivered to two
//! instances at once.
//!
//! Each test creates its own database on the server named by `NUDGE_TEST_POSTGRES_URL`, except
//! the outage test, which starts a private cluster it may stop. Without that variable every
//! test prints a line saying it is skipped. Waits poll the database against a deadline, and
//! no assertion depends on how fast anything ran.

#![allow(clippy::unwrap_used)]

mod fleet;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fleet::cluster::PrivateCluster;
use fleet::{
    Instance, Spec, checkout_event, create_api_key, flow_dir, fresh_database, http_client,
    metric_total, now_rfc3339, pairs, phone, pool, post_events, post_shopify, scalar,
    shopify_checkout, sms_flow, texts, wait_until, whatsapp_flow,
};
use nudge_core::engine::{Engine, Settings};
use nudge_core::flow::{Flow, FlowSet};
use nudge_core::store::{Claim, Incoming, Store};
use nudge_core::time::{Timestamp, from_millis};
use nudge_store::{ConnectOptions, SqlStore};
use nudge_testkit::FakeSmsLeopard;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::task::JoinSet;

/// The longest wait between an instance's looks for messages left `sending` by a dead worker
/// (half the send lease, at most 30 s), so a takeover can come this long after the lease.
const RECONCILE_EVERY: Duration = Duration::from_secs(30);

/// Returns the destination numbers of the SMS requests a fake received, repeats included.
fn fake_destinations(fake: &FakeSmsLeopard) -> Vec<String> {
    fake.requests()
        .iter()
        .filter(|request| request.path == "/v1/sms/send")
        .filter_map(|request| {
            request.body["destination"][0]["number"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

/// Returns the items that appear more than once.
fn repeated<T: Ord + Clone>(items: &[T]) -> Vec<T> {
    let mut seen = BTreeMap::new();
    for item in items {
        *seen.entry(item.clone()).or_insert(0) += 1;
    }
    seen.into_iter()
        .filter(|(_, count)| *count > 1)
        .map(|(item, _)| item)
        .collect()
}

/// Returns the checkout ids of the API events stored in `events` (dedupe key
/// `checkout.updated:<id>:<occurred_at ms>`).
async fn stored_checkout_ids(db: &PgPool) -> HashSet<String> {
    texts(db, "SELECT dedupe_key FROM events WHERE source = 'api'")
        .await
        .iter()
        .filter_map(|key| key.split(':').nth(1).map(str::to_string))
        .collect()
}

/// Maps `(checkout id, flow)` to the status of the run's first message.
async fn message_status_by_checkout(db: &PgPool) -> HashMap<(String, String), String> {
    sqlx::query_as::<_, (String, String, String)>(
        "SELECT runs.subject_id, runs.flow, messages.status FROM messages \
         JOIN runs ON runs.id = messages.run_id WHERE messages.step = 0",
    )
    .fetch_all(db)
    .await
    .unwrap()
    .into_iter()
    .map(|(checkout, flow, status)| ((checkout, flow), status))
    .collect()
}

/// Counts the work still pending: timers, outbox rows, and messages not yet settled.
async fn pending_work(db: &PgPool) -> (i64, i64, i64) {
    let timers = scalar(db, "SELECT COUNT(*) FROM timers").await;
    let outbox = scalar(db, "SELECT COUNT(*) FROM outbox").await;
    let unsettled = scalar(
        db,
        "SELECT COUNT(*) FROM messages WHERE status IN ('queued', 'sending')",
    )
    .await;
    (timers, outbox, unsettled)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_fire_each_timer_once() {
    let _serial = fleet::serial().await;
    const CHECKOUTS: usize = 10_000;
    let Some(database) = fresh_database().await else {
        return;
    };
    let fake = FakeSmsLeopard::start(fleet::LEOPARD_KEY, fleet::LEOPARD_SECRET).await;
    let flows = flow_dir(&[
        ("sms.toml", &sms_flow("sms-nudge", "3s", "0s")),
        ("whatsapp.toml", &whatsapp_flow("whatsapp-nudge", "3s")),
    ]);
    let key = create_api_key(&database).await;
    let spec = Spec::new(&database, flows.path()).with_fake(&fake);
    let (a, b) = fleet::start_two(&spec.named("nudge-a"), &spec.named("nudge-b")).await;
    let db = pool(&database).await;

    // Ten arrays of 1,000 checkouts, alternately to each instance, all posted at once.
    let client = http_client();
    let occurred_at = now_rfc3339();
    let mut posts = JoinSet::new();
    for chunk in 0..CHECKOUTS / 1000 {
        let events: Vec<Value> = (chunk * 1000..(chunk + 1) * 1000)
            .map(|index| checkout_event(&format!("c-{index}"), &phone(index), &occurred_at))
            .collect();
        let base = if chunk % 2 == 0 {
            a.base.clone()
        } else {
            b.base.clone()
        };
        let (client, key) = (client.clone(), key.clone());
        posts.spawn(async move { post_events(&client, &base, &key, &Value::from(events)).await });
    }
    while let Some(posted) = posts.join_next().await {
        let (status, body) = posted.unwrap().unwrap();
        assert_eq!(status, 200, "POST /v1/events: {body}");
        assert_eq!(body["applied"], 1000, "{body}");
    }

    let expected_messages = 2 * CHECKOUTS as i64;
    wait_until("every checkout's two messages", Duration::from_secs(600), || {
        let db = db.clone();
        async move {
            let sent = scalar(&db, "SELECT COUNT(*) FROM messages WHERE status = 'sent'").await;
            let (timers, outbox, unsettled) = pending_work(&db).await;
            if sent >= expected_messages && timers == 0 && outbox == 0 {
                Ok(())
            } else {
                Err(format!(
                    "{sent} sent, {timers} timers, {outbox} in the outbox, {unsettled} unsettled"
                ))
            }
        }
    })
    .await;

    let destinations = fake_destinations(&fake);
    assert_eq!(fake.count(), CHECKOUTS, "requests at the SMS provider");
    assert_eq!(
        repeated(&destinations),
        Vec::<String>::new(),
        "numbers that got two SMS"
    );
    let expected_numbers: BTreeSet<String> = (0..CHECKOUTS).map(phone).collect();
    let received_numbers: BTreeSet<String> = destinations.into_iter().collect();
    assert_eq!(
        received_numbers, expected_numbers,
        "numbers that got an SMS"
    );

    let sandbox_rows = scalar(&db, "SELECT COUNT(*) FROM sandbox_outbox").await;
    let sandbox_messages =
        scalar(&db, "SELECT COUNT(DISTINCT message_id) FROM sandbox_outbox").await;
    assert_eq!(sandbox_rows, CHECKOUTS as i64, "sandbox records");
    assert_eq!(sandbox_messages, sandbox_rows, "a message recorded twice");

    let messages = scalar(&db, "SELECT COUNT(*) FROM messages").await;
    let not_sent = scalar(&db, "SELECT COUNT(*) FROM messages WHERE status <> 'sent'").await;
    assert_eq!(messages, expected_messages, "messages decided");
    assert_eq!(not_sent, 0, "messages not sent");
    let per_flow = pairs(
        &db,
        "SELECT flow, COUNT(*) FROM messages GROUP BY flow ORDER BY flow",
    )
    .await;
    assert_eq!(
        per_flow,
        vec![
            ("sms-nudge".to_string(), CHECKOUTS as i64),
            ("whatsapp-nudge".to_string(), CHECKOUTS as i64)
        ]
    );
    assert_eq!(
        scalar(&db, "SELECT COUNT(*) FROM timers").await,
        0,
        "timers left"
    );
    assert_eq!(
        scalar(&db, "SELECT COUNT(*) FROM outbox").await,
        0,
        "outbox rows left"
    );

    let claims = pairs(
        &db,
        "SELECT claimed_by, COUNT(*) FROM messages GROUP BY claimed_by ORDER BY claimed_by",
    )
    .await;
    eprintln!("messages claimed per instance: {claims:?}");
    let claims: HashMap<String, i64> = claims.into_iter().collect();
    assert!(
        claims.get("nudge-a").copied().unwrap_or(0) > 0,
        "{claims:?}"
    );
    assert!(
        claims.get("nudge-b").copied().unwrap_or(0) > 0,
        "{claims:?}"
    );

    // Each checkout fires an idle timer and a step timer per flow.
    let mut fired_total = 0.0;
    let mut sent_total = 0.0;
    for instance in [&a, &b] {
        let text = instance.metrics().await;
        let fired = metric_total(&text, "nudge_timers_fired_total", &[]);
        let sent = metric_total(&text, "nudge_messages_total", &[("status", "sent")]);
        eprintln!(
            "{}: {fired} timers fired, {sent} messages sent",
            instance.name
        );
        assert!(
            fired > 0.0,
            "{}: no fired timers in /metrics",
            instance.name
        );
        fired_total += fired;
        sent_total += sent;
    }
    assert_eq!(
        fired_total,
        (4 * CHECKOUTS) as f64,
        "timers fired in /metrics"
    );
    assert_eq!(
        sent_total,
        (2 * CHECKOUTS) as f64,
        "messages sent in /metrics"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_instance_loses_nothing_and_sends_nothing_twice() {
    let _serial = fleet::serial().await;
    const BATCHES: usize = 40;
    const BATCH_SIZE: usize = 25;
    const SEND_LEASE: Duration = Duration::from_secs(10);
    let Some(database) = fresh_database().await else {
        return;
    };
    let fake = FakeSmsLeopard::start(fleet::LEOPARD_KEY, fleet::LEOPARD_SECRET).await;
    fake.set_delay(Duration::from_millis(300));
    let flows = flow_dir(&[
        ("sms.toml", &sms_flow("sms-nudge", "2s", "0s")),
        ("whatsapp.toml", &whatsapp_flow("whatsapp-nudge", "2s")),
    ]);
    let key = create_api_key(&database).await;
    let spec = Spec::new(&database, flows.path())
        .with_fake(&fake)
        .with_env("NUDGE_WORKERS_TIMER_LEASE", "5s")
        .with_env("NUDGE_WORKERS_SEND_LEASE", "10s")
        .with_env("NUDGE_WORKERS_SEND_TIMEOUT", "5s");
    let spec_b = spec.named("nudge-b");
    let (a, mut b) = fleet::start_two(&spec.named("nudge-a"), &spec_b).await;
    let db = pool(&database).await;

    // Batches go to both instances in turn until the kill, then to nudge-a alone.
    let targets = Arc::new(Mutex::new(vec![a.base.clone(), b.base.clone()]));
    let accepted = Arc::new(Mutex::new(Vec::<String>::new()));
    let poster = {
        let (targets, accepted, key) = (targets.clone(), accepted.clone(), key.clone());
        tokio::spawn(async move {
            let client = http_client();
            let mut failed = 0;
            for batch in 0..BATCHES {
                let ids: Vec<String> = (0..BATCH_SIZE)
                    .map(|offset| format!("k-{}", batch * BATCH_SIZE + offset))
                    .collect();
                let events: Vec<Value> = ids
                    .iter()
                    .enumerate()
                    .map(|(offset, id)| {
                        checkout_event(id, &phone(batch * BATCH_SIZE + offset), &now_rfc3339())
                    })
                    .collect();
                let base = {
                    let targets = targets.lock().unwrap();
                    targets[batch % targets.len()].clone()
                };
                match post_events(&client, &base, &key, &Value::from(events)).await {
                    Ok((status, _)) if (200..300).contains(&status) => {
                        accepted.lock().unwrap().extend(ids);
                    }
                    _ => failed += 1,
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            failed
        })
    };

    // Kill nudge-b during sends, and if possible also while it holds timer leases. When no
    // lease shows up together with a send within 10 s, a moment with sends alone will do.
    let watching = Instant::now();
    let mut first_send_seen: Option<Instant> = None;
    loop {
        let (sending, leased) = sqlx::query_as::<_, (i64, i64)>(
            "SELECT (SELECT COUNT(*) FROM messages WHERE status = 'sending' \
             AND claimed_by = 'nudge-b'), \
             (SELECT COUNT(*) FROM timers WHERE lease_owner = 'nudge-b')",
        )
        .fetch_one(&db)
        .await
        .unwrap();
        if sending > 0 {
            let seen = *first_send_seen.get_or_insert_with(Instant::now);
            if leased > 0 || seen.elapsed() > Duration::from_secs(10) {
                break;
            }
        }
        assert!(
            watching.elapsed() < Duration::from_secs(120),
            "nudge-b never had a send in flight"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    b.kill();
    let killed_at = Instant::now();
    *targets.lock().unwrap() = vec![a.base.clone()];
    let posting_at_kill = !poster.is_finished();
    let cut_sends: HashSet<i64> = sqlx::query_scalar::<_, i64>(
        "SELECT id FROM messages WHERE status = 'sending' AND claimed_by = 'nudge-b'",
    )
    .fetch_all(&db)
    .await
    .unwrap()
    .into_iter()
    .collect();
    let timers_leased_by_b = scalar(
        &db,
        "SELECT COUNT(*) FROM timers WHERE lease_owner = 'nudge-b'",
    )
    .await;
    eprintln!(
        "killed nudge-b with {} messages sending and {timers_leased_by_b} timers leased; posting still running: {posting_at_kill}",
        cut_sends.len()
    );
    assert!(
        !cut_sends.is_empty(),
        "the kill did not catch nudge-b during a send; the test needs a longer provider delay"
    );

    let failed_batches = poster.await.unwrap();
    let restarted = Instance::start(&spec_b).await;
    let accepted: Vec<String> = accepted.lock().unwrap().clone();
    eprintln!(
        "{} checkouts accepted, {failed_batches} batches not accepted",
        accepted.len()
    );

    // A message cut by the kill is reconciled once its lease has passed, at the next
    // reconciliation pass of a live instance.
    let deadline = SEND_LEASE + RECONCILE_EVERY + Duration::from_secs(60);
    let expected = 2 * accepted.len() as i64;
    wait_until("all work after the kill", deadline, || {
        let db = db.clone();
        async move {
            let messages = scalar(&db, "SELECT COUNT(*) FROM messages").await;
            let (timers, outbox, unsettled) = pending_work(&db).await;
            if messages >= expected && timers == 0 && outbox == 0 && unsettled == 0 {
                Ok(())
            } else {
                Err(format!(
                    "{messages} messages, {timers} timers, {outbox} in the outbox, {unsettled} unsettled"
                ))
            }
        }
    })
    .await;
    eprintln!("all work done {:?} after the kill", killed_at.elapsed());

    let stored = stored_checkout_ids(&db).await;
    let missing: Vec<&String> = accepted.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "accepted events missing from events: {missing:?}"
    );

    let destinations = fake_destinations(&fake);
    assert_eq!(
        repeated(&destinations),
        Vec::<String>::new(),
        "numbers that got two SMS"
    );
    let sandbox_ids: Vec<i64> = sqlx::query_scalar("SELECT message_id FROM sandbox_outbox")
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(
        repeated(&sandbox_ids),
        Vec::<i64>::new(),
        "messages recorded twice"
    );

    let statuses = message_status_by_checkout(&db).await;
    for id in &accepted {
        let sms = statuses.get(&(id.clone(), "sms-nudge".to_string()));
        let whatsapp = statuses.get(&(id.clone(), "whatsapp-nudge".to_string()));
        assert!(
            matches!(sms.map(String::as_str), Some("sent" | "unknown")),
            "{id}: SMS message {sms:?}"
        );
        assert_eq!(
            whatsapp.map(String::as_str),
            Some("sent"),
            "{id}: WhatsApp message"
        );
    }

    let unknown: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, to_address FROM messages WHERE status = 'unknown' ORDER BY id")
            .fetch_all(&db)
            .await
            .unwrap();
    eprintln!("{} SMS cut by the kill ended unknown", unknown.len());
    for (id, _) in &unknown {
        assert!(
            cut_sends.contains(id),
            "message {id} is unknown but was not in flight on nudge-b"
        );
    }
    let sent_sms: Vec<String> = texts(
        &db,
        "SELECT to_address FROM messages WHERE channel = 'sms' AND status = 'sent'",
    )
    .await;
    let received: HashSet<&String> = destinations.iter().collect();
    let never_received: Vec<&String> = sent_sms
        .iter()
        .filter(|to| !received.contains(to))
        .collect();
    assert!(
        never_received.is_empty(),
        "sent SMS the provider never got: {never_received:?}"
    );
    assert!(
        destinations.len() <= sent_sms.len() + unknown.len(),
        "{} requests at the provider for {} sent and {} unknown SMS",
        destinations.len(),
        sent_sms.len(),
        unknown.len()
    );
    let claims = pairs(
        &db,
        "SELECT COALESCE(claimed_by, '-'), COUNT(*) FROM messages GROUP BY 1 ORDER BY 1",
    )
    .await;
    eprintln!("messages claimed per instance: {claims:?}");
    drop((a, restarted));
}

/// One webhook of the outage test's stream.
struct Delivery {
    webhook_id: String,
    token: String,
    sent_at: Instant,
    answered_at: Instant,
    /// The HTTP status, or `None` when the request failed without one.
    status: Option<u16>,
    retry_after: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outage_gives_503_and_resumes() {
    let _serial = fleet::serial().await;
    if fleet::postgres_base().is_none() {
        return;
    }
    let cluster = PrivateCluster::create().await;
    let database = cluster.url("test");
    let flows = flow_dir(&[("sms.toml", &sms_flow("sms-nudge", "2s", "0s"))]);
    create_api_key(&database).await;
    let instance = Instance::start(&Spec::new(&database, flows.path())).await;

    let stop_stream = tokio_util::sync::CancellationToken::new();
    let stream = {
        let (base, stop) = (instance.base.clone(), stop_stream.clone());
        tokio::spawn(async move {
            let client = http_client();
            let mut requests = JoinSet::new();
            let mut ticker = tokio::time::interval(Duration::from_millis(20));
            let mut index = 0;
            while !stop.is_cancelled() {
                ticker.tick().await;
                let token = format!("outage-{index}");
                let webhook_id = format!("00000000-0000-4000-8000-{index:012}");
                let body =
                    shopify_checkout(&token, &phone(index), 1_000 + index as u64, &now_rfc3339());
                let bytes = serde_json::to_vec(&body).unwrap();
                let (client, base) = (client.clone(), base.clone());
                requests.spawn(async move {
                    let sent_at = Instant::now();
                    let answer =
                        post_shopify(&client, &base, "checkouts/create", &bytes, &webhook_id).await;
                    Delivery {
                        webhook_id,
                        token,
                        sent_at,
                        answered_at: Instant::now(),
                        status: answer.as_ref().ok().map(|answer| answer.status),
                        retry_after: answer.ok().and_then(|answer| answer.retry_after),
                    }
                });
                index += 1;
            }
            let mut deliveries = Vec::new();
            while let Some(delivery) = requests.join_next().await {
                deliveries.push(delivery.unwrap());
            }
            deliveries
        })
    };

    tokio::time::sleep(Duration::from_secs(3)).await;
    tokio::task::block_in_place(|| cluster.stop());
    let stopped_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    tokio::task::block_in_place(|| cluster.start());
    let restarted_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    stop_stream.cancel();
    let deliveries = stream.await.unwrap();

    let phase = |delivery: &Delivery| {
        if delivery.sent_at < stopped_at {
            "before"
        } else if delivery.sent_at < restarted_at {
            "outage"
        } else {
            "after"
        }
    };
    let mut counts: BTreeMap<(&str, Option<u16>), usize> = BTreeMap::new();
    for delivery in &deliveries {
        *counts
            .entry((phase(delivery), delivery.status))
            .or_default() += 1;
    }
    eprintln!("webhooks by phase and status: {counts:?}");
    let count =
        |phase: &'static str, status: u16| counts.get(&(phase, Some(status))).copied().unwrap_or(0);
    assert!(count("before", 200) > 0, "no 2xx before the outage");
    assert!(count("outage", 503) > 0, "no 503 during the outage");
    assert!(
        count("after", 200) > 0,
        "no 2xx after the database returned"
    );
    let other: Vec<_> = counts
        .keys()
        .filter(|(_, status)| !matches!(status, Some(200 | 503)))
        .collect();
    assert!(
        other.is_empty(),
        "answers other than 200 and 503: {other:?}"
    );
    let without_retry_after = deliveries
        .iter()
        .filter(|delivery| delivery.status == Some(503) && delivery.retry_after.is_none())
        .count();
    assert_eq!(without_retry_after, 0, "503 answers without Retry-After");
    let recovered = deliveries
        .iter()
        .filter(|delivery| delivery.answered_at >= restarted_at && delivery.status == Some(200))
        .map(|delivery| delivery.answered_at - restarted_at)
        .min();
    eprintln!("first 200 answered {recovered:?} after the database started");

    let db = pool(&database).await;
    let stored: HashSet<String> = texts(
        &db,
        "SELECT dedupe_key FROM events WHERE source = 'shopify'",
    )
    .await
    .into_iter()
    .collect();
    let lost: Vec<&String> = deliveries
        .iter()
        .filter(|delivery| delivery.status == Some(200))
        .map(|delivery| &delivery.webhook_id)
        .filter(|id| !stored.contains(&format!("delivery:{id}")))
        .collect();
    assert!(lost.is_empty(), "answered 200 but not in events: {lost:?}");

    // Checkouts posted after the database returned still get their SMS.
    let later: HashSet<String> = deliveries
        .iter()
        .filter(|delivery| phase(delivery) == "after" && delivery.status == Some(200))
        .map(|delivery| delivery.token.clone())
        .collect();
    wait_until(
        "messages for checkouts after the outage",
        Duration::from_secs(120),
        || {
            let (db, later) = (db.clone(), later.clone());
            async move {
                let sent: HashSet<String> = texts(
                    &db,
                    "SELECT runs.subject_id FROM messages JOIN runs ON runs.id = messages.run_id \
                 WHERE messages.status = 'sent'",
                )
                .await
                .into_iter()
                .collect();
                let waiting = later.iter().filter(|token| !sent.contains(*token)).count();
                if waiting == 0 {
                    Ok(())
                } else {
                    Err(format!("{waiting} of {} not sent", later.len()))
                }
            }
        },
    )
    .await;
    let log = instance.log_text();
    assert!(
        log.contains("database unavailable"),
        "the instance log does not mention the outage"
    );
    drop(instance);
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_finishes_sends_and_releases_claims() {
    let _serial = fleet::serial().await;
    const CHECKOUTS: usize = 48;
    let Some(database) = fresh_database().await else {
        return;
    };
    let fake = FakeSmsLeopard::start(fleet::LEOPARD_KEY, fleet::LEOPARD_SECRET).await;
    fake.set_delay(Duration::from_secs(2));
    let flows = flow_dir(&[("sms.toml", &sms_flow("sms-nudge", "1s", "0s"))]);
    let key = create_api_key(&database).await;
    let spec = Spec::new(&database, flows.path())
        .with_fake(&fake)
        .with_env("NUDGE_WORKERS_SHUTDOWN_GRACE", "20s");
    let mut instance = Instance::start(&spec).await;
    let db = pool(&database).await;

    let occurred_at = now_rfc3339();
    let events: Vec<Value> = (0..CHECKOUTS)
        .map(|index| checkout_event(&format!("t-{index}"), &phone(index), &occurred_at))
        .collect();
    let (status, body) = post_events(&http_client(), &instance.base, &key, &Value::from(events))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");

    wait_until("a request at the provider", Duration::from_secs(60), || {
        let count = fake.count();
        async move {
            if count > 0 {
                Ok(())
            } else {
                Err("no request yet".into())
            }
        }
    })
    .await;
    instance.terminate();
    let exit = instance.wait_exit(Duration::from_secs(60)).await;
    assert_eq!(exit.code(), Some(0), "exit status after SIGTERM");

    let received = fake_destinations(&fake);
    eprintln!(
        "{} requests reached the provider before the process exited",
        received.len()
    );
    let status_of: HashMap<String, String> =
        sqlx::query_as::<_, (String, String)>("SELECT to_address, status FROM messages")
            .fetch_all(&db)
            .await
            .unwrap()
            .into_iter()
            .collect();
    for number in &received {
        assert_eq!(
            status_of.get(number).map(String::as_str),
            Some("sent"),
            "{number} reached the provider"
        );
    }
    let in_doubt = scalar(
        &db,
        "SELECT COUNT(*) FROM messages WHERE status IN ('sending', 'unknown')",
    )
    .await;
    assert_eq!(in_doubt, 0, "messages left sending or unknown");
    let queued = scalar(&db, "SELECT COUNT(*) FROM messages WHERE status = 'queued'").await;
    let outbox_queued = scalar(
        &db,
        "SELECT COUNT(*) FROM outbox WHERE state = 'queued' AND lease_owner IS NULL",
    )
    .await;
    let outbox = scalar(&db, "SELECT COUNT(*) FROM outbox").await;
    assert_eq!(outbox_queued, queued, "queued messages back in the outbox");
    assert_eq!(outbox, outbox_queued, "outbox rows still claimed");
    let leased_timers = scalar(
        &db,
        "SELECT COUNT(*) FROM timers WHERE lease_owner IS NOT NULL",
    )
    .await;
    assert_eq!(leased_timers, 0, "timers still leased");
    let pending_timers = scalar(&db, "SELECT COUNT(*) FROM timers").await;
    eprintln!("after SIGTERM: {queued} messages queued, {pending_timers} timers pending");
    assert!(
        received.len() < CHECKOUTS,
        "every message went out before SIGTERM; the test needs more checkouts"
    );

    let log = instance.log_text();
    let steps = [
        "SIGTERM received",
        "HTTP server stopped",
        "send worker stopped claiming",
        "claims released",
        "nudge stopped",
    ];
    let mut from = 0;
    for step in steps {
        let at = log[from..]
            .find(step)
            .unwrap_or_else(|| panic!("log has no {step:?} after the earlier steps:\n{log}"));
        from += at + step.len();
    }
    assert!(log.contains("timer worker stopped claiming"), "{log}");

    fake.set_delay(Duration::ZERO);
    let mut again = Instance::start(&spec).await;
    wait_until(
        "every message after the restart",
        Duration::from_secs(120),
        || {
            let db = db.clone();
            async move {
                let sent = scalar(&db, "SELECT COUNT(*) FROM messages WHERE status = 'sent'").await;
                let (timers, outbox, _) = pending_work(&db).await;
                if sent == CHECKOUTS as i64 && timers == 0 && outbox == 0 {
                    Ok(())
                } else {
                    Err(format!(
                        "{sent} sent, {timers} timers, {outbox} in the outbox"
                    ))
                }
            }
        },
    )
    .await;
    let destinations = fake_destinations(&fake);
    assert_eq!(destinations.len(), CHECKOUTS, "requests at the provider");
    assert_eq!(
        repeated(&destinations),
        Vec::<String>::new(),
        "numbers that got two SMS"
    );
    again.terminate();
    let exit = again.wait_exit(Duration::from_secs(60)).await;
    assert_eq!(exit.code(), Some(0), "exit status of the second run");
}

/// Reads the database's clock, which PostgreSQL instances judge due-ness by.
async fn database_now(db: &PgPool) -> Timestamp {
    from_millis(scalar(db, "SELECT nudge_now_ms()").await)
}

/// Stores one checkout through the store, as the ingest writer does at `now`.
async fn ingest_checkout(
    store: &SqlStore,
    engine: &Engine,
    id: &str,
    occurred_at: Timestamp,
    now: Timestamp,
) {
    let body = checkout_event(id, "+254711000001", &occurred_at.to_string());
    let events = nudge_core::event::parse_events(body.to_string().as_bytes()).unwrap();
    let batch: Vec<Incoming> = events
        .into_iter()
        .map(|event| Incoming {
            workspace_id: 1,
            source: "api".into(),
            delivery_id: None,
            event,
        })
        .collect();
    store.ingest(engine, &batch, now).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn field_failure_b25_due_job_is_claimed_once_by_database_time() {
    let _serial = fleet::serial().await;
    const JOBS: usize = 20;
    let Some(database) = fresh_database().await else {
        return;
    };
    let fake = FakeSmsLeopard::start(fleet::LEOPARD_KEY, fleet::LEOPARD_SECRET).await;
    let flows = flow_dir(&[("sms.toml", &sms_flow("sms-nudge", "2s", "0s"))]);
    let key = create_api_key(&database).await;
    let spec = Spec::new(&database, flows.path()).with_fake(&fake);
    let (a, b) = fleet::start_two(&spec.named("w1"), &spec.named("w2")).await;
    let db = pool(&database).await;

    // Jobs that come due at the same instant while both instances poll.
    let occurred_at = now_rfc3339();
    let events: Vec<Value> = (0..JOBS)
        .map(|index| checkout_event(&format!("j25-{index}"), &phone(index), &occurred_at))
        .collect();
    let (status, body) = post_events(&http_client(), &a.base, &key, &Value::from(events))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    wait_until("every job sent", Duration::from_secs(120), || {
        let db = db.clone();
        async move {
            let sent = scalar(&db, "SELECT COUNT(*) FROM messages WHERE status = 'sent'").await;
            let (timers, outbox, _) = pending_work(&db).await;
            if sent == JOBS as i64 && timers == 0 && outbox == 0 {
                Ok(())
            } else {
                Err(format!(
                    "{sent} sent, {timers} timers, {outbox} in the outbox"
                ))
            }
        }
    })
    .await;
    let destinations = fake_destinations(&fake);
    assert_eq!(destinations.len(), JOBS, "provider sends");
    assert_eq!(
        repeated(&destinations),
        Vec::<String>::new(),
        "jobs sent twice"
    );
    assert_eq!(
        scalar(&db, "SELECT COUNT(*) FROM messages").await,
        JOBS as i64
    );
    drop((a, b));

    // The store's claims, on a database of their own.
    let Some(database) = fresh_database().await else {
        return;
    };
    let store = SqlStore::open(&database, &ConnectOptions::default())
        .await
        .unwrap();
    let db = pool(&database).await;
    let flow = Flow::parse(&sms_flow("b25", "150s", "10m"), "b25.toml").unwrap();
    let engine = Engine::new(FlowSet::new(vec![flow]).unwrap(), Settings::default());
    let claim = |now| Claim {
        worker: "w3".into(),
        now,
        limit: 10,
        lease: Duration::from_secs(30),
    };

    // A timer due 150 s after the database's now.
    let now = database_now(&db).await;
    ingest_checkout(&store, &engine, "j25-early", now, now).await;
    let due_at = scalar(&db, "SELECT due_at FROM timers").await;
    assert_eq!(
        due_at,
        now.as_millisecond() + 150_000,
        "idle timer due time"
    );
    let by_database = store.fire_due_timers(&engine, &claim(None)).await.unwrap();
    assert_eq!(
        by_database.claimed, 0,
        "claimed 150 s early by the database clock"
    );
    let leased = scalar(
        &db,
        "SELECT COUNT(*) FROM timers WHERE lease_owner IS NOT NULL",
    )
    .await;
    assert_eq!(leased, 0, "the early timer got a lease");
    // A worker whose clock runs 3 minutes ahead would pass its own time, and that claims it.
    let ahead = now + jiff::SignedDuration::from_secs(180);
    let by_skewed_clock = store
        .fire_due_timers(&engine, &claim(Some(ahead)))
        .await
        .unwrap();
    assert_eq!(
        by_skewed_clock.claimed, 1,
        "a clock 3 minutes ahead claims the timer"
    );

    // Five passes over one due timer started together, then five back to back.
    let now = database_now(&db).await;
    let long_ago = now - jiff::SignedDuration::from_secs(600);
    ingest_checkout(&store, &engine, "j25-together", long_ago, now).await;
    let by_database = claim(None);
    let passes = tokio::join!(
        store.fire_due_timers(&engine, &by_database),
        store.fire_due_timers(&engine, &by_database),
        store.fire_due_timers(&engine, &by_database),
        store.fire_due_timers(&engine, &by_database),
        store.fire_due_timers(&engine, &by_database),
    );
    let claimed: usize = [passes.0, passes.1, passes.2, passes.3, passes.4]
        .into_iter()
        .map(|pass| pass.unwrap().claimed)
        .sum();
    assert_eq!(claimed, 1, "claims of one due timer by five passes at once");

    let now = database_now(&db).await;
    let long_ago = now - jiff::SignedDuration::from_secs(600);
    ingest_checkout(&store, &engine, "j25-in-turn", long_ago, now).await;
    let mut claimed = 0;
    for _ in 0..5 {
        claimed += store
            .fire_due_timers(&engine, &claim(None))
            .await
            .unwrap()
            .claimed;
    }
    assert_eq!(claimed, 1, "claims of one due timer by five passes in turn");
    for id in ["j25-together", "j25-in-turn"] {
        let runs = scalar(
            &db,
            &format!("SELECT COUNT(*) FROM runs WHERE subject_id = '{id}'"),
        )
        .await;
        assert_eq!(runs, 1, "{id}: runs");
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn field_failure_b08_duplicate_order_webhooks_on_two_instances() {
    let _serial = fleet::serial().await;
    let Some(database) = fresh_database().await else {
        return;
    };
    let fake = FakeSmsLeopard::start(fleet::LEOPARD_KEY, fleet::LEOPARD_SECRET).await;
    // The run enters after 1 s of silence; its SMS would be due 10 minutes later.
    let flows = flow_dir(&[("sms.toml", &sms_flow("sms-nudge", "1s", "10m"))]);
    create_api_key(&database).await;
    let spec = Spec::new(&database, flows.path()).with_fake(&fake);
    let (a, b) = fleet::start_two(&spec.named("nudge-a"), &spec.named("nudge-b")).await;
    let db = pool(&database).await;
    let client = http_client();

    let checkout = shopify_checkout("chk_T8", "+254711000008", 7008, &now_rfc3339());
    let answer = post_shopify(
        &client,
        &a.base,
        "checkouts/create",
        &serde_json::to_vec(&checkout).unwrap(),
        "00000000-0000-4000-8000-00000000b080",
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    wait_until("the checkout's run", Duration::from_secs(60), || {
        let db = db.clone();
        async move {
            let runs = scalar(&db, "SELECT COUNT(*) FROM runs WHERE subject_id = 'chk_T8'").await;
            if runs == 1 {
                Ok(())
            } else {
                Err("no run yet".into())
            }
        }
    })
    .await;

    let mut order = nudge_testkit::shared_json("providers/payloads/shopify_orders_create.json");
    order["id"] = json!(5008);
    order["checkout_token"] = json!("chk_T8");
    order["total_price"] = json!("1200.00");
    order["currency"] = json!("KES");
    order["created_at"] = json!(now_rfc3339());
    let bytes = serde_json::to_vec(&order).unwrap();
    let webhook_id = "00000000-0000-4000-8000-00000000b081";
    let (first, second) = tokio::join!(
        post_shopify(&client, &a.base, "orders/create", &bytes, webhook_id),
        post_shopify(&client, &b.base, "orders/create", &bytes, webhook_id)
    );
    let redelivery = post_shopify(&client, &b.base, "orders/create", &bytes, webhook_id).await;
    let answers = [first.unwrap(), second.unwrap(), redelivery.unwrap()];
    for answer in &answers {
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    let applied = answers
        .iter()
        .filter(|answer| answer.body["result"] == "applied")
        .count();
    assert_eq!(applied, 1, "deliveries applied: {answers:?}");

    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM orders WHERE external_id = '5008'"
        )
        .await,
        1,
        "orders recorded"
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM events WHERE source = 'shopify' AND event_type = 'order.created'"
        )
        .await,
        1,
        "order events stored"
    );
    let runs: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT status, exit_reason FROM runs WHERE subject_id = 'chk_T8'")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(
        runs,
        vec![("exited".to_string(), Some("order_placed".to_string()))],
        "the run's end"
    );
    assert_eq!(
        scalar(&db, "SELECT COUNT(*) FROM timers").await,
        0,
        "timers left"
    );
    assert_eq!(
        scalar(&db, "SELECT COUNT(*) FROM messages").await,
        0,
        "messages"
    );
    assert_eq!(fake.count(), 0, "SMS sent");
}
