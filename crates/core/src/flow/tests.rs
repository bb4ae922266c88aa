use super::*;

const CART: &str = r#"
name = "cart-recovery"
trigger = "cart_abandoned"
idle = "1h"
quiet_hours = "off"
holdout = 0
attribution_window = "5d"

[[steps]]
wait = "0s"
channel = "sms"
text = "Hi [Name], your [Product Name] is still waiting! [Link]"

[[steps]]
wait = "20m"
channel = "sms"
text = "Still thinking, [Name]? [Link]"
"#;

#[test]
fn issue_example_flow_loads() {
    let flow = Flow::parse(CART, "cart.toml").unwrap();
    assert_eq!(flow.name, "cart-recovery");
    assert_eq!(flow.trigger, Trigger::CartAbandoned);
    assert_eq!(flow.idle, Duration::from_secs(3600));
    assert_eq!(flow.quiet_hours, None);
    assert_eq!(flow.holdout, 0);
    assert_eq!(flow.attribution_window, Duration::from_secs(5 * 86_400));
    assert_eq!(flow.steps.len(), 2);
    assert_eq!(flow.offset_of(1), Duration::from_secs(20 * 60));
}

#[test]
fn absent_quiet_hours_use_the_default_window() {
    let text = CART.replace("quiet_hours = \"off\"\n", "");
    let flow = Flow::parse(&text, "cart.toml").unwrap();
    assert_eq!(flow.quiet_hours, Some(default_quiet_hours()));
}

#[test]
fn quiet_hours_window_is_read() {
    let text = CART.replace(
        "quiet_hours = \"off\"",
        "quiet_hours = { start = \"21:00\", end = \"07:00\" }",
    );
    let flow = Flow::parse(&text, "cart.toml").unwrap();
    let hours = flow.quiet_hours.unwrap();
    assert_eq!(hours.start, jiff::civil::time(21, 0, 0, 0));
    assert_eq!(hours.end, jiff::civil::time(7, 0, 0, 0));
}

fn error_of(text: &str) -> String {
    Flow::parse(text, "bad.toml").unwrap_err().to_string()
}

#[test]
fn bad_flows_name_the_key_at_fault() {
    let cases = [
        (
            CART.replace("[Name], your", "[Nmae], your"),
            "steps[0].text: unknown field [Nmae]",
        ),
        (
            CART.replace("holdout = 0", "holdout = 60"),
            "holdout: 60 percent is above the limit of 50",
        ),
        (
            CART.replace("idle = \"1h\"", "idle = \"soon\""),
            "idle: invalid duration",
        ),
        (
            CART.replace("quiet_hours = \"off\"", "quiet_hours = \"never\""),
            "quiet_hours:",
        ),
        (
            CART.replace(
                "channel = \"sms\"\ntext = \"Still",
                "channel = \"fax\"\ntext = \"Still",
            ),
            "steps[1].channel",
        ),
        (
            CART.replace("name = \"cart-recovery\"", "name = \"Cart Recovery\""),
            "name:",
        ),
        (
            CART.replace("holdout = 0", "holdout = 0\ncolour = \"red\""),
            "unknown field `colour`",
        ),
        (
            CART.replace("trigger = \"cart_abandoned\"", "trigger = \"someday\""),
            "trigger",
        ),
    ];
    for (text, expected) in cases {
        let error = error_of(&text);
        assert!(error.starts_with("bad.toml: "), "{error}");
        assert!(
            error.contains(expected),
            "expected {expected:?} in {error:?}"
        );
    }
}

#[test]
fn flow_without_steps_is_rejected() {
    let text = CART.split("[[steps]]").next().unwrap();
    assert!(error_of(text).contains("at least one [[steps]]"));
}

#[test]
fn whatsapp_step_rules_are_checked() {
    let base = r#"
name = "chat"
trigger = "conversation_idle"
idle = "24h"
require_quote = true
"#;
    let ok = format!(
        "{base}[[steps]]\nchannel = \"whatsapp\"\ntext = \"Hi [Name]\"\nfallback = \"sms\"\n\
         template = {{ name = \"cart_followup\", language = \"en\", params = [\"[First Name]\", \"[Product Name]\"] }}\n"
    );
    let flow = Flow::parse(&ok, "chat.toml").unwrap();
    let template = flow.steps[0].template.as_ref().unwrap();
    assert_eq!(template.name, "cart_followup");
    assert_eq!(template.body.len(), 2);
    assert_eq!(flow.steps[0].fallback, Some(ChannelKind::Sms));

    let no_text_fallback = format!(
        "{base}[[steps]]\nchannel = \"whatsapp\"\nfallback = \"sms\"\n\
         template = {{ name = \"t\", language = \"en\" }}\n"
    );
    assert!(error_of(&no_text_fallback).contains("steps[0].fallback"));
    let bad_param = format!(
        "{base}[[steps]]\nchannel = \"whatsapp\"\n\
         template = {{ name = \"t\", language = \"en\", params = [\"[Frist Name]\"] }}\n"
    );
    assert!(
        error_of(&bad_param).contains("steps[0].template.params[0]: unknown field [Frist Name]")
    );
}

#[test]
fn require_quote_needs_a_conversation_trigger() {
    let text = CART.replace("holdout = 0", "holdout = 0\nrequire_quote = true");
    assert!(error_of(&text).contains("require_quote"));
}

#[test]
fn duplicate_names_are_rejected() {
    let flow = Flow::parse(CART, "a.toml").unwrap();
    let error = FlowSet::new(vec![
        flow.clone(),
        Flow {
            source: "b.toml".into(),
            ..flow
        },
    ])
    .unwrap_err();
    assert_eq!(error.origin, "b.toml");
    assert!(error.message.contains("already used by a.toml"));
}

#[test]
fn built_in_flows_load() {
    let flows = FlowSet::built_in().unwrap();
    assert!(flows.for_trigger(Trigger::CartAbandoned).count() >= 1);
}

#[test]
fn folder_loads_in_file_name_order() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("b.toml"),
        CART.replace("cart-recovery", "second"),
    )
    .unwrap();
    std::fs::write(dir.path().join("a.toml"), CART).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a flow").unwrap();
    let flows = FlowSet::load_dir(dir.path()).unwrap();
    let names: Vec<_> = flows.all().iter().map(|flow| flow.name.as_str()).collect();
    assert_eq!(names, ["cart-recovery", "second"]);
}

#[test]
fn empty_folder_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let error = FlowSet::load_dir(dir.path()).unwrap_err();
    assert!(error.message.contains("no *.toml"));
}
