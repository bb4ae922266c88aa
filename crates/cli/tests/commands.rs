//! The small commands of the binary: `flows check`, `api-key create`, `migrate`, `--help`.

#![allow(clippy::unwrap_used)]

use std::process::Command;

fn nudge() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nudge"));
    // Keep a developer's nudge.toml and NUDGE_* settings out of the way.
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    command
}

const GOOD: &str = r#"
name = "cart"
trigger = "cart_abandoned"
idle = "1h"
quiet_hours = "off"

[[steps]]
wait = "0s"
channel = "sms"
text = "Hi [Name], your [Product Name] is still waiting! [Link]"
max_segments = 1
"#;

#[test]
fn flows_check_renders_each_step() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cart.toml"), GOOD).unwrap();
    let output = nudge()
        .args(["flows", "check"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("Hi Amina, your Test Kettle 1.7L is still waiting! "),
        "{text}"
    );
    assert!(text.contains("GSM-7, 1 segment(s)"), "{text}");
    assert!(text.contains("1 flow(s) valid"), "{text}");
}

#[test]
fn flows_check_names_unknown_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        GOOD.replace("[Name]", "[Nmae]"),
    )
    .unwrap();
    let output = nudge()
        .args(["flows", "check"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let error = String::from_utf8(output.stderr).unwrap();
    assert!(error.contains("bad.toml"), "{error}");
    assert!(
        error.contains("steps[0].text: unknown field [Nmae]"),
        "{error}"
    );
}

#[test]
fn api_key_is_printed_alone_and_stored_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/keys.db", dir.path().display());
    let output = nudge()
        .args(["api-key", "create", "--database", &url])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let key = stdout.trim();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(key.starts_with("nk_") && key.len() > 30, "{key}");
    let database = std::fs::read(dir.path().join("keys.db")).unwrap();
    let haystack = String::from_utf8_lossy(&database);
    assert!(!haystack.contains(key), "the key itself is not stored");
}

#[test]
fn migrate_creates_database() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/sub/migrated.db", dir.path().display());
    let output = nudge()
        .args(["migrate", "--database", &url])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dir.path().join("sub/migrated.db").exists());
}

#[test]
fn invalid_setting_names_its_key() {
    let output = nudge()
        .env("NUDGE_LISTEN", "not-an-address")
        .args(["migrate", "--database", "sqlite::memory:"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let error = String::from_utf8(output.stderr).unwrap();
    assert!(error.contains("listen:"), "{error}");
}

#[test]
fn help_says_what_each_option_sets() {
    let output = nudge().args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    for expected in [
        "NUDGE_LISTEN",
        "NUDGE_DATABASE_URL",
        "NUDGE_FLOWS",
        "NUDGE_PUBLIC_URL",
    ] {
        assert!(help.contains(expected), "{expected} in {help}");
    }
    let output = nudge().args(["replay", "--help"]).output().unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    for expected in ["rees46", "jsonl", "chats"] {
        assert!(help.contains(expected), "{expected} in {help}");
    }
}

#[test]
fn jsonl_replay_applies_events_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows");
    std::fs::create_dir(&flows).unwrap();
    std::fs::write(
        flows.join("cart.toml"),
        GOOD.replace("idle = \"1h\"", "idle = \"10m\""),
    )
    .unwrap();
    let lines = [
        r#"{"type":"checkout.updated","id":"a","occurred_at":"2026-01-15T07:00:00Z","contact":{"phone":"0700000001"},"items":[{"title":"Kettle","quantity":1}],"recovery_url":"https://shop.example/a"}"#,
        r#"[{"type":"checkout.updated","id":"b","occurred_at":"2026-01-15T07:01:00Z","contact":{"phone":"0700000002"},"items":[{"title":"Mug","quantity":1}],"recovery_url":"https://shop.example/b"}]"#,
        r#"{"type":"order.created","id":"o","occurred_at":"2026-01-15T07:05:00Z","checkout_id":"b","total":"500","currency":"KES"}"#,
        r#"{"type":"order.created","id":"p","occurred_at":"2026-01-15T08:00:00Z","contact":{"phone":"+254700000001"},"total":"4850","currency":"KES"}"#,
    ];
    let input = dir.path().join("events.jsonl");
    std::fs::write(&input, lines.join("\n")).unwrap();
    let output = nudge()
        .args(["replay", "--format", "jsonl"])
        .arg(&input)
        .arg("--flows")
        .arg(&flows)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["events"], 4, "{report}");
    assert_eq!(report["checkouts"], 2, "{report}");
    assert_eq!(
        report["entered"], 1,
        "{report}: b was bought before its idle time"
    );
    assert_eq!(report["messages"], 1, "{report}");
    assert_eq!(report["orders"], 2, "{report}");
    assert_eq!(
        report["recovered_orders"], 1,
        "{report}: a's order came after its nudge"
    );
    assert_eq!(report["recovered_revenue"], "4850", "{report}");
}

#[test]
fn flows_check_compares_templates_with_approved_list() {
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows");
    std::fs::create_dir(&flows).unwrap();
    std::fs::write(
        flows.join("chat.toml"),
        r#"
name = "chat"
trigger = "conversation_idle"
idle = "24h"
[[steps]]
channel = "whatsapp"
template = { name = "chat_followup", language = "en", params = ["[First Name]"] }
"#,
    )
    .unwrap();
    let config = dir.path().join("nudge.toml");
    std::fs::write(
        &config,
        r#"
[[whatsapp.templates]]
name = "chat_followup"
language = "en"
body = "Hi {{1}}, any questions about the {{2}}?"
"#,
    )
    .unwrap();
    let output = nudge()
        .arg("--config")
        .arg(&config)
        .args(["flows", "check"])
        .arg(&flows)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let error = String::from_utf8(output.stderr).unwrap();
    assert!(
        error.contains("steps[0].template.params: 1 given"),
        "{error}"
    );
    assert!(error.contains("takes 2"), "{error}");
}
