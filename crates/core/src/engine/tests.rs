use std::time::Duration;

use rust_decimal::Decimal;

use super::*;
use crate::event::{CheckoutEvent, ContactInput, Item, OrderEvent};
use crate::flow::{Flow, FlowSet};
use crate::time::Timestamp;

const FLOW: &str = r#"
name = "cart"
trigger = "cart_abandoned"
idle = "1h"
quiet_hours = "off"
attribution_window = "5d"

[[steps]]
wait = "0s"
channel = "sms"
text = "Hi [Name], your [Product Name] is still waiting! [Link]"

[[steps]]
wait = "20m"
channel = "sms"
text = "Last call for your [Product Name], [Name]: [Link]"
"#;

fn engine_with(flow: &str) -> Engine {
    let flows = FlowSet::new(vec![Flow::parse(flow, "test.toml").unwrap()]).unwrap();
    Engine::new(
        flows,
        Settings {
            public_url: "https://n.example".into(),
            shop_name: Some("Duka Bora".into()),
            ..Settings::default()
        },
    )
}

fn engine() -> Engine {
    engine_with(FLOW)
}

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn item(title: &str, quantity: u32, price: &str) -> Item {
    Item {
        product_id: None,
        title: title.into(),
        variant: None,
        quantity,
        price: Some(price.parse().unwrap()),
        image_url: None,
    }
}

fn checkout_event(id: &str, at: &str, phone: Option<&str>) -> CheckoutEvent {
    CheckoutEvent {
        id: id.into(),
        occurred_at: ts(at),
        cart_token: None,
        contact: ContactInput {
            phone: phone.map(str::to_string),
            first_name: Some("amina".into()),
            ..ContactInput::default()
        },
        items: vec![item("Test Kettle 1.7L", 1, "4500.00")],
        total: Some("4850.00".parse().unwrap()),
        currency: Some("KES".into()),
        recovery_url: Some("https://shop.example/recover/1".into()),
        completed_at: None,
        locale: None,
    }
}

fn order_event(id: &str, at: &str) -> OrderEvent {
    OrderEvent {
        id: id.into(),
        occurred_at: ts(at),
        checkout_id: None,
        cart_token: None,
        contact: ContactInput::default(),
        total: Some("4850.00".parse().unwrap()),
        currency: Some("KES".into()),
        discount_codes: vec![],
    }
}

fn open(engine: &Engine, event: &CheckoutEvent) -> CheckoutState {
    engine
        .on_checkout(None, event, &[], event.occurred_at)
        .state
}

#[test]
fn reachable_checkout_arms_idle_timer() {
    let engine = engine();
    let event = checkout_event("c1", "2026-01-15T07:00:00Z", Some("0700 000 001"));
    let outcome = engine.on_checkout(None, &event, &[], event.occurred_at);
    assert_eq!(outcome.state.status, CheckoutStatus::Open);
    assert_eq!(
        outcome.state.phone.as_ref().unwrap().as_str(),
        "+254700000001"
    );
    assert_eq!(
        outcome.timers,
        IdleTimers::Arm(vec![("cart".into(), ts("2026-01-15T08:00:00Z"))])
    );
}

#[test]
fn each_update_pushes_idle_moment_back() {
    let engine = engine();
    let first = checkout_event("c1", "2026-01-15T07:00:00Z", Some("0700000001"));
    let state = open(&engine, &first);
    let later = checkout_event("c1", "2026-01-15T07:40:00Z", Some("0700000001"));
    let outcome = engine.on_checkout(Some(&state), &later, &[], later.occurred_at);
    assert_eq!(outcome.state.last_activity_at, ts("2026-01-15T07:40:00Z"));
    assert_eq!(outcome.state.opened_at, ts("2026-01-15T07:00:00Z"));
    assert_eq!(
        outcome.timers,
        IdleTimers::Arm(vec![("cart".into(), ts("2026-01-15T08:40:00Z"))])
    );
}

#[test]
fn older_update_keeps_newer_cart() {
    let engine = engine();
    let newer = CheckoutEvent {
        items: vec![item("Jiko Classic", 2, "2499.00")],
        ..checkout_event("c1", "2026-01-15T07:30:00Z", None)
    };
    let state = open(&engine, &newer);
    let older = checkout_event("c1", "2026-01-15T07:00:00Z", Some("0700000001"));
    let outcome = engine.on_checkout(Some(&state), &older, &[], ts("2026-01-15T07:31:00Z"));
    assert_eq!(outcome.state.items[0].title, "Jiko Classic");
    assert_eq!(
        outcome.state.phone.as_ref().unwrap().as_str(),
        "+254700000001"
    );
    assert_eq!(outcome.state.last_activity_at, ts("2026-01-15T07:30:00Z"));
    assert_eq!(outcome.state.opened_at, ts("2026-01-15T07:00:00Z"));
}

#[test]
fn unreachable_checkouts_arm_nothing() {
    let engine = engine();
    let cases = [
        (None, Unreachable::NoContact),
        (Some("   "), Unreachable::NoContact),
        (Some(""), Unreachable::NoContact),
        (Some("07000"), Unreachable::InvalidPhone),
        (Some("+2547000000011"), Unreachable::InvalidPhone),
    ];
    for (phone, reason) in cases {
        let event = checkout_event("c1", "2026-01-15T07:00:00Z", phone);
        let outcome = engine.on_checkout(None, &event, &[], event.occurred_at);
        assert_eq!(outcome.state.unreachable, Some(reason), "phone {phone:?}");
        assert_eq!(outcome.timers, IdleTimers::Cancel, "phone {phone:?}");
    }
}

#[test]
fn explicit_refusal_of_sms_blocks() {
    let engine = engine();
    let mut event = checkout_event("c1", "2026-01-15T07:00:00Z", Some("0700000001"));
    event.contact.sms_consent = Some(false);
    let outcome = engine.on_checkout(None, &event, &[], event.occurred_at);
    assert_eq!(outcome.state.unreachable, Some(Unreachable::NoConsent));
    assert_eq!(outcome.timers, IdleTimers::Cancel);
}

#[test]
fn contact_added_later_arms_timer() {
    let engine = engine();
    let first = checkout_event("c1", "2026-01-15T07:00:00Z", None);
    let state = open(&engine, &first);
    let update = checkout_event("c1", "2026-01-15T07:20:00Z", Some("0700 000 003"));
    let outcome = engine.on_checkout(Some(&state), &update, &[], update.occurred_at);
    assert_eq!(outcome.state.unreachable, None);
    assert_eq!(
        outcome.timers,
        IdleTimers::Arm(vec![("cart".into(), ts("2026-01-15T08:20:00Z"))])
    );
}

#[test]
fn completed_checkout_cancels_timers() {
    let engine = engine();
    let state = open(
        &engine,
        &checkout_event("c1", "2026-01-15T07:00:00Z", Some("0700000001")),
    );
    let mut done = checkout_event("c1", "2026-01-15T07:10:00Z", Some("0700000001"));
    done.completed_at = Some(ts("2026-01-15T07:10:00Z"));
    let outcome = engine.on_checkout(Some(&state), &done, &[], done.occurred_at);
    assert_eq!(outcome.state.status, CheckoutStatus::Completed);
    assert_eq!(outcome.timers, IdleTimers::Cancel);
    assert_eq!(outcome.completed, Some(ExitReason::CheckoutCompleted));
}

#[test]
fn order_recorded_first_completes_late_checkout() {
    let engine = engine();
    let mut order = order_event("o1", "2026-01-15T07:05:00Z");
    order.checkout_id = Some("c1".into());
    let facts = engine.order_facts(&order);
    let event = checkout_event("c1", "2026-01-15T07:00:00Z", Some("0700000001"));
    let outcome = engine.on_checkout(None, &event, &[facts], ts("2026-01-15T07:06:00Z"));
    assert_eq!(outcome.state.status, CheckoutStatus::Completed);
    assert_eq!(outcome.state.completed_by.as_deref(), Some("o1"));
    assert_eq!(outcome.timers, IdleTimers::Cancel);
    assert_eq!(outcome.completed, Some(ExitReason::OrderPlaced));
}

#[test]
fn contact_match_needs_checkout_opened_before_order() {
    let engine = engine();
    let mut order = order_event("o1", "2026-01-15T07:00:00Z");
    order.contact.phone = Some("+254700000001".into());
    let facts = engine.order_facts(&order);
    let same_time = open(
        &engine,
        &checkout_event("c1", "2026-01-15T07:00:00Z", Some("0700000001")),
    );
    let earlier = open(
        &engine,
        &checkout_event("c2", "2026-01-15T06:59:59Z", Some("0700000001")),
    );
    let later = open(
        &engine,
        &checkout_event("c3", "2026-01-15T07:00:01Z", Some("0700000001")),
    );
    // A checkout stored before the order matches at the same instant.
    assert_eq!(
        order_matches(&facts, &same_time, false),
        Some(MatchRule::SameContact)
    );
    // One that arrives after the order needs to have opened strictly before it.
    assert_eq!(order_matches(&facts, &same_time, true), None);
    assert_eq!(
        order_matches(&facts, &earlier, true),
        Some(MatchRule::SameContact)
    );
    assert_eq!(order_matches(&facts, &later, false), None);
}

#[test]
fn email_match_ignores_case() {
    let engine = engine();
    let mut event = checkout_event("c1", "2026-01-15T07:00:00Z", None);
    event.contact.email = Some("amina.w@example.com".into());
    let state = open(&engine, &event);
    let mut order = order_event("o1", "2026-01-15T07:02:00Z");
    order.contact.email = Some(" Amina.W@Example.com ".into());
    let facts = engine.order_facts(&order);
    assert_eq!(
        order_matches(&facts, &state, false),
        Some(MatchRule::SameContact)
    );
}

fn run(id: i64, subject: &str, last_message: Option<&str>) -> RunFacts {
    RunFacts {
        id,
        flow: "cart".into(),
        subject: SubjectRef::Checkout(subject.into()),
        status: RunStatus::Active,
        holdout: false,
        entered_at: ts("2026-01-15T08:00:00Z"),
        next_step: 1,
        last_message_at: last_message.map(ts),
        credited_order: None,
    }
}

#[test]
fn order_completes_checkouts_and_exits_runs() {
    let engine = engine();
    let by_id = open(
        &engine,
        &checkout_event("c1", "2026-01-15T07:00:00Z", Some("0700000001")),
    );
    let by_contact = open(
        &engine,
        &checkout_event("c2", "2026-01-15T07:10:00Z", Some("0700000001")),
    );
    let other = open(
        &engine,
        &checkout_event("c3", "2026-01-15T07:10:00Z", Some("0700000002")),
    );
    let mut order = order_event("o1", "2026-01-15T08:30:00Z");
    order.checkout_id = Some("c1".into());
    order.contact.phone = Some("0700000001".into());
    let facts = engine.order_facts(&order);
    let runs = [
        run(1, "c1", Some("2026-01-15T08:00:00Z")),
        run(2, "c2", None),
        run(3, "c3", None),
    ];
    let outcome = engine.on_order(&facts, &[by_id, by_contact, other], &runs);
    assert_eq!(
        outcome.completed,
        vec![
            ("c1".to_string(), MatchRule::SameCheckout),
            ("c2".to_string(), MatchRule::SameContact)
        ]
    );
    assert_eq!(
        outcome.exits,
        vec![
            RunExit {
                run_id: 1,
                reason: ExitReason::OrderPlaced
            },
            RunExit {
                run_id: 2,
                reason: ExitReason::OrderBySameContact
            },
        ]
    );
    assert_eq!(outcome.credited_run, Some(1));
}

#[test]
fn attribution_takes_latest_message_within_window() {
    let engine = engine();
    let first = open(
        &engine,
        &checkout_event("c1", "2026-01-10T07:00:00Z", Some("0700000001")),
    );
    let second = open(
        &engine,
        &checkout_event("c2", "2026-01-14T07:00:00Z", Some("0700000001")),
    );
    let mut order = order_event("o1", "2026-01-15T09:00:00Z");
    order.contact.phone = Some("0700000001".into());
    let facts = engine.order_facts(&order);
    let old = run(1, "c1", Some("2026-01-10T08:00:00Z"));
    let recent = run(2, "c2", Some("2026-01-14T08:00:00Z"));
    let outcome = engine.on_order(
        &facts,
        &[first.clone(), second.clone()],
        &[old.clone(), recent],
    );
    assert_eq!(outcome.credited_run, Some(2));

    // Outside the 5-day window nothing is credited.
    let mut late = order_event("o2", "2026-01-16T08:00:01Z");
    late.contact.phone = Some("0700000001".into());
    let outcome = engine.on_order(&engine.order_facts(&late), &[first], &[old]);
    assert_eq!(outcome.credited_run, None);
}

#[test]
fn message_after_order_earns_no_credit() {
    let engine = engine();
    let state = open(
        &engine,
        &checkout_event("c1", "2026-01-15T07:00:00Z", Some("0700000001")),
    );
    let mut order = order_event("o1", "2026-01-15T08:00:00Z");
    order.contact.phone = Some("0700000001".into());
    let outcome = engine.on_order(
        &engine.order_facts(&order),
        &[state],
        &[run(1, "c1", Some("2026-01-15T08:00:01Z"))],
    );
    assert_eq!(outcome.credited_run, None);
}

#[test]
fn holdout_run_counts_as_control_conversion() {
    let engine = engine();
    let state = open(
        &engine,
        &checkout_event("c1", "2026-01-15T07:00:00Z", Some("0700000001")),
    );
    let mut order = order_event("o1", "2026-01-15T09:00:00Z");
    order.contact.phone = Some("0700000001".into());
    let holdout = RunFacts {
        holdout: true,
        next_step: 0,
        ..run(5, "c1", None)
    };
    let outcome = engine.on_order(&engine.order_facts(&order), &[state], &[holdout]);
    assert_eq!(outcome.credited_run, None);
    assert_eq!(outcome.control_run, Some(5));
}

#[test]
fn idle_timer_enters_flow_or_empties() {
    let engine = engine();
    let state = open(
        &engine,
        &checkout_event("c1", "2026-01-15T07:00:00Z", Some("0700000001")),
    );
    let now = ts("2026-01-15T08:00:00Z");
    assert_eq!(
        engine.on_idle_timer(&state, "cart", false, now),
        EntryOutcome::Enter {
            holdout: false,
            entered_at: now,
            first_step_due: Some(now)
        }
    );
    assert_eq!(
        engine.on_idle_timer(&state, "cart", true, now),
        EntryOutcome::Drop
    );
    assert_eq!(
        engine.on_idle_timer(&state, "gone", false, now),
        EntryOutcome::Drop
    );
    assert_eq!(
        engine.on_idle_timer(&state, "cart", false, ts("2026-01-15T07:30:00Z")),
        EntryOutcome::Rearm(now)
    );
    let empty = CheckoutState {
        items: vec![],
        ..state
    };
    assert_eq!(
        engine.on_idle_timer(&empty, "cart", false, now),
        EntryOutcome::Emptied
    );
}

#[test]
fn holdout_share_is_close_to_setting_and_stable() {
    let engine =
        engine_with(&FLOW.replace("attribution_window", "holdout = 20\nattribution_window"));
    let base = open(
        &engine,
        &checkout_event("c0", "2026-01-15T07:00:00Z", Some("0700000001")),
    );
    let now = ts("2026-01-15T08:00:00Z");
    let held = (0..2000)
        .filter(|index| {
            let state = CheckoutState {
                id: format!("c{index}"),
                ..base.clone()
            };
            matches!(
                engine.on_idle_timer(&state, "cart", false, now),
                EntryOutcome::Enter {
                    holdout: true,
                    first_step_due: None,
                    ..
                }
            )
        })
        .count();
    assert!(
        (300..500).contains(&held),
        "{held} of 2000 held out for 20 %"
    );
    assert_eq!(holdout_bucket("cart", "c1"), holdout_bucket("cart", "c1"));
}

fn context() -> StepContext {
    StepContext {
        link_token: "Ab3xQ9".into(),
        ..StepContext::default()
    }
}

fn abandoned(engine: &Engine) -> (CheckoutState, RunFacts) {
    let mut state = open(
        engine,
        &checkout_event("c1", "2026-01-15T07:00:00Z", Some("0700000001")),
    );
    state.status = CheckoutStatus::Abandoned;
    let run = RunFacts {
        next_step: 0,
        last_message_at: None,
        ..run(7, "c1", None)
    };
    (state, run)
}

#[test]
fn due_step_sends_personal_sms_with_link() {
    let engine = engine();
    let (state, run) = abandoned(&engine);
    let now = ts("2026-01-15T08:00:00Z");
    let StepOutcome::Send { message, next_due } =
        engine.on_step_timer(&run, &state, &context(), now)
    else {
        panic!("expected a send");
    };
    assert_eq!(
        message.body,
        "Hi Amina, your Test Kettle 1.7L is still waiting! https://n.example/r/Ab3xQ9"
    );
    assert_eq!(message.to, "+254700000001");
    assert_eq!(message.segments, 1);
    assert_eq!(
        message.link,
        Some(NewLink {
            token: "Ab3xQ9".into(),
            target: "https://shop.example/recover/1".into()
        })
    );
    assert_eq!(next_due, Some(ts("2026-01-15T08:20:00Z")));
}

#[test]
fn last_step_finishes_run() {
    let engine = engine();
    let (state, run) = abandoned(&engine);
    let run = RunFacts {
        next_step: 1,
        ..run
    };
    let outcome = engine.on_step_timer(&run, &state, &context(), ts("2026-01-15T08:20:00Z"));
    assert!(
        matches!(outcome, StepOutcome::Send { next_due: None, .. }),
        "{outcome:?}"
    );
}

#[test]
fn quiet_hours_defer_step_to_morning() {
    let engine = engine_with(&FLOW.replace(
        "quiet_hours = \"off\"",
        "quiet_hours = { start = \"20:00\", end = \"08:00\" }",
    ));
    let (state, run) = abandoned(&engine);
    // 23:00 in Nairobi (UTC+3).
    let outcome = engine.on_step_timer(&run, &state, &context(), ts("2026-01-15T20:00:00Z"));
    assert_eq!(
        outcome,
        StepOutcome::Defer {
            until: ts("2026-01-16T05:00:00Z")
        }
    );
}

#[test]
fn opted_out_or_completed_stops_run() {
    let engine = engine();
    let (state, run) = abandoned(&engine);
    let now = ts("2026-01-15T08:00:00Z");
    let suppressed = StepContext {
        suppressed: true,
        ..context()
    };
    assert_eq!(
        engine.on_step_timer(&run, &state, &suppressed, now),
        StepOutcome::Exit {
            reason: ExitReason::OptedOut
        }
    );
    let done = CheckoutState {
        status: CheckoutStatus::Completed,
        completed_by: Some("o1".into()),
        ..state.clone()
    };
    assert_eq!(
        engine.on_step_timer(&run, &done, &context(), now),
        StepOutcome::Exit {
            reason: ExitReason::OrderPlaced
        }
    );
    let finished = RunFacts {
        status: RunStatus::Exited,
        ..run
    };
    assert_eq!(
        engine.on_step_timer(&finished, &state, &context(), now),
        StepOutcome::Drop
    );
}

#[test]
fn frequency_cap_skips_step() {
    let engine = engine_with(&FLOW.replace(
        "attribution_window",
        "frequency_cap = { max = 1, per = \"24h\" }\nattribution_window",
    ));
    let (state, run) = abandoned(&engine);
    let busy = StepContext {
        recent_sends: 1,
        ..context()
    };
    let outcome = engine.on_step_timer(&run, &state, &busy, ts("2026-01-15T08:00:00Z"));
    assert!(
        matches!(
            outcome,
            StepOutcome::Skip {
                reason: "frequency_cap",
                next_due: Some(_),
                ..
            }
        ),
        "{outcome:?}"
    );
}

#[test]
fn step_without_link_target_is_skipped() {
    let engine = engine();
    let (mut state, run) = abandoned(&engine);
    state.recovery_url = None;
    let outcome = engine.on_step_timer(&run, &state, &context(), ts("2026-01-15T08:00:00Z"));
    assert!(
        matches!(
            outcome,
            StepOutcome::Skip {
                reason: "missing_link",
                ..
            }
        ),
        "{outcome:?}"
    );
}

#[test]
fn several_items_read_and_n_more() {
    let engine = engine();
    let (mut state, _) = abandoned(&engine);
    state.items = vec![
        item("Test Kettle 1.7L", 1, "4500"),
        item("Sneakers 42", 2, "3000"),
        item("Mug", 1, "500"),
    ];
    let fields = fields_for_checkout(
        &state,
        &engine.flows.all()[0].fallbacks,
        &engine.settings,
        None,
    );
    assert_eq!(fields.product_name, "Test Kettle 1.7L and 2 more");
    assert_eq!(fields.items, "Test Kettle 1.7L, 2 x Sneakers 42, Mug");
    assert_eq!(fields.item_count, "4");
}

#[test]
fn missing_values_use_fallbacks() {
    // Field failure B27: never "Hi ," and never the e-mail handle.
    let engine = engine();
    let (state, _) = abandoned(&engine);
    let fallbacks = &engine.flows.all()[0].fallbacks;
    let template = crate::template::Template::parse(
        "Hi {{first_name}}, your {{product_name}} is waiting: {{link}}",
    )
    .unwrap();
    let names = [None, Some(""), Some("   "), Some("wanjiru")];
    let expected = ["there", "there", "there", "Wanjiru"];
    for (name, greeting) in names.iter().zip(expected) {
        let checkout = CheckoutState {
            first_name: name.map(str::to_string),
            email: Some("wanjiru.k87@example.com".into()),
            items: vec![item("Jiko Classic", 1, "2499")],
            ..state.clone()
        };
        let fields = fields_for_checkout(
            &checkout,
            fallbacks,
            &engine.settings,
            Some(("https://shop.example/r/Ab3xQ9", "Ab3xQ9")),
        );
        let text = template.render(&fields).unwrap();
        assert_eq!(
            text,
            format!("Hi {greeting}, your Jiko Classic is waiting: https://shop.example/r/Ab3xQ9"),
            "first name {name:?}"
        );
        for never in ["Hi ,", "Hi  ,", "{{", "}}", "Hi wanjiru.k87"] {
            assert!(!text.contains(never), "{never:?} in {text:?}");
        }
    }
}

#[test]
fn long_product_name_is_shortened_not_the_link() {
    // Field failure B29.
    let template = crate::template::Template::parse(
        "Hi {{first_name}}, {{product_name}} is still in your cart: {{link}}",
    )
    .unwrap();
    let fields = crate::template::Fields {
        first_name: "Kamau".into(),
        product_name: "Pikabora PB-557 Professional Stainless Steel 4-Burner Gas Cooker with \
                       Electric Oven, Rotisserie, Auto Ignition, Glass Lid and 12-Month Warranty - \
                       Silver Grey Edition 2025"
            .into(),
        link: "https://shop.example/r/Ab3xQ9".into(),
        ..Default::default()
    };
    let sms = fit_sms(&template, &fields, Some(1)).unwrap();
    assert_eq!(
        sms.text,
        "Hi Kamau, Pikabora PB-557 Professional Stainless Steel 4-Burner Gas Cooker with Electric \
         Oven, Rotisseri... is still in your cart: https://shop.example/r/Ab3xQ9"
    );
    assert_eq!(sms.segments, 1);
    assert_eq!(sms.encoding, crate::sms::Encoding::Gsm7);
    assert_eq!(crate::sms::analyse(&sms.text).units, 160);
    assert!(sms.shortened);
    assert!(sms.text.ends_with("https://shop.example/r/Ab3xQ9"));
    assert!(!sms.text.contains('\u{2026}'));
}

#[test]
fn total_from_lines_when_missing() {
    let engine = engine();
    let (mut state, _) = abandoned(&engine);
    state.total = None;
    state.items = vec![item("Kettle", 2, "1200.50")];
    let fields = fields_for_checkout(
        &state,
        &engine.flows.all()[0].fallbacks,
        &engine.settings,
        None,
    );
    assert_eq!(
        fields.cart_total,
        crate::money::format_money(
            Decimal::new(240100, 2),
            "KES",
            None,
            crate::money::MoneyStyle::Compact,
        )
    );
    let _ = Duration::ZERO;
}

mod conversations {
    use super::*;
    use crate::channel::{ChannelKind, MessageKind};
    use crate::event::{Author, ChatMessageEvent};

    const CHAT: &str = r#"
name = "chat"
trigger = "conversation_idle"
idle = "24h"
require_quote = true
quiet_hours = "off"

[[steps]]
wait = "0s"
channel = "whatsapp"
text = "Hi [Name], any questions about the [Product Name]?"
template = { name = "cart_reminder_v2", language = "en", params = ["[First Name]", "[Product Name]"] }
"#;

    fn chat(text: &str, at: &str, inbound: bool, name: Option<&str>) -> ChatMessageEvent {
        ChatMessageEvent {
            id: None,
            occurred_at: ts(at),
            contact: ContactInput {
                phone: Some("+254700000001".into()),
                first_name: name.map(str::to_string),
                ..ContactInput::default()
            },
            channel: ChannelKind::Whatsapp,
            text: text.into(),
            kind: None,
            author: (!inbound).then_some(Author::Agent),
            product: None,
            price: None,
            currency: None,
        }
    }

    fn conversation(
        engine: &Engine,
        messages: &[(&str, &str, bool, Option<&str>)],
    ) -> ConversationState {
        let mut state: Option<ConversationState> = None;
        for (text, at, inbound, name) in messages {
            let event = chat(text, at, *inbound, *name);
            state = Some(
                engine
                    .on_chat_message(state.as_ref(), &event, *inbound, &[], event.occurred_at)
                    .unwrap()
                    .state,
            );
        }
        state.unwrap()
    }

    fn run_at(entered: &str) -> RunFacts {
        RunFacts {
            id: 1,
            flow: "chat".into(),
            subject: SubjectRef::Conversation("1".into()),
            status: RunStatus::Active,
            holdout: false,
            entered_at: ts(entered),
            next_step: 0,
            last_message_at: None,
            credited_order: None,
        }
    }

    #[test]
    fn quote_records_amount_and_asked_product() {
        let engine = engine_with(CHAT);
        let state = conversation(
            &engine,
            &[
                (
                    "How much is the blue kitenge dress?",
                    "2025-05-01T09:55:00Z",
                    true,
                    Some("Amina Test"),
                ),
                ("It's Ksh 2,500/=", "2025-05-01T10:00:00Z", false, None),
            ],
        );
        let quote = state.quote.clone().unwrap();
        assert_eq!(quote.amount, Decimal::new(2500, 0));
        assert_eq!(quote.currency, "KES");
        assert_eq!(quote.product.as_deref(), Some("blue kitenge dress"));
        assert_eq!(state.last_speaker, Some(Speaker::Business));
    }

    #[test]
    fn follow_up_a_day_after_quote_is_a_template() {
        // Field failure B18 b: the customer's last message came before the quote, so the
        // window is closed when the nudge is due.
        let engine = engine_with(CHAT);
        let state = conversation(
            &engine,
            &[
                (
                    "How much is the blue kitenge dress?",
                    "2025-05-01T09:55:00Z",
                    true,
                    Some("Amina"),
                ),
                ("It's KES 2,500", "2025-05-01T10:00:00Z", false, None),
            ],
        );
        let due = ts("2025-05-02T10:00:00Z");
        assert!(!state.window_open(due));
        assert_eq!(
            engine.on_conversation_idle(&state, "chat", "1", false, due),
            EntryOutcome::Enter {
                holdout: false,
                entered_at: due,
                first_step_due: Some(due)
            }
        );
        let outcome = engine.on_conversation_step(
            &run_at("2025-05-02T10:00:00Z"),
            &state,
            &StepContext::default(),
            due,
        );
        let StepOutcome::Send { message, .. } = outcome else {
            panic!("expected a send, got {outcome:?}");
        };
        assert_eq!(message.kind, MessageKind::Template);
        assert_eq!(
            message.template.unwrap().body,
            ["Amina", "blue kitenge dress"]
        );
    }

    #[test]
    fn window_closes_ten_minutes_early() {
        // Field failure B18 a: under ten minutes left counts as closed.
        let engine = engine_with(CHAT);
        let state = conversation(&engine, &[("Hi", "2025-05-01T08:00:00Z", true, None)]);
        assert!(state.window_open(ts("2025-05-02T07:49:59Z")));
        assert!(!state.window_open(ts("2025-05-02T07:50:00Z")));
        assert!(!state.window_open(ts("2025-05-02T08:03:00Z")));
    }

    #[test]
    fn missing_name_never_gives_empty_template_parameter() {
        // Field failure B20: blank, whitespace and missing names use the fallback.
        let engine = engine_with(CHAT);
        for name in [None, Some(""), Some("   ")] {
            let state = conversation(
                &engine,
                &[
                    (
                        "How much is the Jiko Classic?",
                        "2025-05-01T09:55:00Z",
                        true,
                        name,
                    ),
                    ("KES 2,499", "2025-05-01T10:00:00Z", false, None),
                ],
            );
            let due = ts("2025-05-02T10:00:00Z");
            let outcome = engine.on_conversation_step(
                &run_at("2025-05-02T10:00:00Z"),
                &state,
                &StepContext::default(),
                due,
            );
            let StepOutcome::Send { message, .. } = outcome else {
                panic!("expected a send for {name:?}, got {outcome:?}");
            };
            let template = message.template.unwrap();
            assert_eq!(template.body, ["there", "Jiko Classic"], "name {name:?}");
            assert!(
                template
                    .body
                    .iter()
                    .all(|parameter| !parameter.trim().is_empty())
            );
        }
    }

    #[test]
    fn no_template_and_no_fallback_skips_with_window_closed() {
        let engine = engine_with(&CHAT.replace(
            "template = { name = \"cart_reminder_v2\", language = \"en\", params = [\"[First Name]\", \"[Product Name]\"] }\n",
            "",
        ));
        let state = conversation(
            &engine,
            &[
                ("Price?", "2025-05-01T09:55:00Z", true, None),
                ("KES 100", "2025-05-01T10:00:00Z", false, None),
            ],
        );
        let due = ts("2025-05-02T10:00:00Z");
        let outcome = engine.on_conversation_step(
            &run_at("2025-05-02T10:00:00Z"),
            &state,
            &StepContext::default(),
            due,
        );
        assert!(
            matches!(
                outcome,
                StepOutcome::Skip {
                    reason: "window_closed",
                    ..
                }
            ),
            "{outcome:?}"
        );
    }

    #[test]
    fn sms_fallback_outside_window() {
        let engine = engine_with(&CHAT.replace(
            "template = { name = \"cart_reminder_v2\", language = \"en\", params = [\"[First Name]\", \"[Product Name]\"] }\n",
            "fallback = \"sms\"\n",
        ));
        let state = conversation(
            &engine,
            &[
                ("Price?", "2025-05-01T09:55:00Z", true, None),
                ("KES 100", "2025-05-01T10:00:00Z", false, None),
            ],
        );
        let due = ts("2025-05-02T10:00:00Z");
        let outcome = engine.on_conversation_step(
            &run_at("2025-05-02T10:00:00Z"),
            &state,
            &StepContext::default(),
            due,
        );
        let StepOutcome::Send { message, .. } = outcome else {
            panic!("expected a send, got {outcome:?}");
        };
        assert_eq!(message.channel, ChannelKind::Sms);
        assert_eq!(message.to, "+254700000001");
    }

    #[test]
    fn idle_needs_business_to_speak_last_and_a_quote() {
        let engine = engine_with(CHAT);
        let due = ts("2025-05-02T10:00:00Z");
        let unquoted = conversation(
            &engine,
            &[
                ("Hello", "2025-05-01T09:55:00Z", true, None),
                ("Welcome!", "2025-05-01T10:00:00Z", false, None),
            ],
        );
        assert_eq!(
            engine.on_conversation_idle(&unquoted, "chat", "1", false, due),
            EntryOutcome::Drop
        );
        let customer_last = conversation(
            &engine,
            &[
                ("KES 500", "2025-05-01T09:55:00Z", false, None),
                ("Thanks", "2025-05-01T10:00:00Z", true, None),
            ],
        );
        assert_eq!(
            engine.on_conversation_idle(&customer_last, "chat", "1", false, due),
            EntryOutcome::Drop
        );
    }

    #[test]
    fn send_within_window_moves_step_before_it_closes() {
        let engine = engine_with(
            &CHAT
                .replace("idle = \"24h\"", "idle = \"2h\"\nsend_within_window = true")
                .replace("wait = \"0s\"", "wait = \"22h\""),
        );
        let state = conversation(
            &engine,
            &[
                ("How much is it?", "2025-05-01T09:00:00Z", true, None),
                ("KES 100", "2025-05-01T10:00:00Z", false, None),
            ],
        );
        let fired = ts("2025-05-01T12:00:00Z");
        let EntryOutcome::Enter {
            first_step_due: Some(due),
            ..
        } = engine.on_conversation_idle(&state, "chat", "1", false, fired)
        else {
            panic!("expected an entry");
        };
        // 22 h after entry would be 10:00 the next day, after the window closes at 09:00;
        // the step moves to 08:49, a minute before the ten-minute margin begins.
        assert_eq!(due, ts("2025-05-02T08:49:00Z"));
        assert!(state.window_open(due));
    }
}

#[test]
fn whatsapp_cart_step_respects_window() {
    let flow = FLOW.replace(
        "channel = \"sms\"\ntext = \"Hi [Name], your [Product Name] is still waiting! [Link]\"",
        "channel = \"whatsapp\"\ntext = \"Hi [Name], your [Product Name] is still waiting! [Link]\"\n\
         template = { name = \"cart_reminder\", language = \"en\", params = [\"[Name]\", \"[Product Name]\"], buttons = [\"[Link Token]\"] }",
    );
    let engine = engine_with(&flow);
    let (state, run) = abandoned(&engine);
    let now = ts("2026-01-15T08:00:00Z");
    let recent = StepContext {
        last_inbound_at: Some(ts("2026-01-15T07:00:00Z")),
        ..context()
    };
    let StepOutcome::Send { message, .. } = engine.on_step_timer(&run, &state, &recent, now) else {
        panic!("expected a send");
    };
    assert_eq!(message.kind, crate::channel::MessageKind::Text);
    assert!(message.body.ends_with("/r/Ab3xQ9"), "{}", message.body);
    let StepOutcome::Send { message, .. } = engine.on_step_timer(&run, &state, &context(), now)
    else {
        panic!("expected a send");
    };
    assert_eq!(message.kind, crate::channel::MessageKind::Template);
    let template = message.template.unwrap();
    assert_eq!(template.body, ["Amina", "Test Kettle 1.7L"]);
    assert_eq!(template.buttons, ["Ab3xQ9"]);
    assert!(
        message.link.is_some(),
        "the button's token is a tracked link"
    );
}

#[test]
fn customer_id_alone_never_matches() {
    let engine = engine();
    let mut event = checkout_event("c1", "2026-01-15T07:00:00Z", Some("0700000001"));
    event.contact.customer_id = Some("992".into());
    let state = open(&engine, &event);
    let mut order = order_event("o1", "2026-01-15T07:30:00Z");
    order.contact.customer_id = Some("992".into());
    order.contact.phone = Some("0700000099".into());
    assert_eq!(
        order_matches(&engine.order_facts(&order), &state, false),
        None
    );
}
