#![allow(clippy::unwrap_used)]

use super::*;

fn approved(body: &str, header_params: usize, buttons: Vec<ButtonKind>) -> ApprovedTemplate {
    ApprovedTemplate {
        name: "cart_reminder_v2".to_owned(),
        language: "en".to_owned(),
        body: body.to_owned(),
        header_params,
        buttons,
    }
}

fn message(header: &[&str], body: &[&str], buttons: &[&str]) -> TemplateMessage {
    let owned = |values: &[&str]| values.iter().map(|v| (*v).to_owned()).collect();
    TemplateMessage {
        name: "cart_reminder_v2".to_owned(),
        language: "en".to_owned(),
        header: owned(header),
        body: owned(body),
        buttons: owned(buttons),
    }
}

#[test]
fn placeholders_are_found_with_positions() {
    let found = placeholders("Hi {{1}}, your {{2}} is still waiting, {{1}}.");
    let numbers: Vec<usize> = found.iter().map(|p| p.number).collect();
    assert_eq!(numbers, [1, 2, 1]);
    assert_eq!(found[0].range, 3..8);
}

#[test]
fn non_numeric_braces_are_not_placeholders() {
    assert!(placeholders("Hi {{name}} and {{ 1 }} and {{}}").is_empty());
    let nested = placeholders("Hi {{{1}}");
    assert_eq!(nested.len(), 1);
    assert_eq!(nested[0].number, 1);
}

#[test]
fn body_params_count_distinct_placeholders() {
    let template = approved("Hi {{1}}, your {{2}} is waiting, {{1}}.", 0, vec![]);
    assert_eq!(template.body_params(), 2);
}

#[test]
fn render_fills_each_placeholder() {
    let parameters = vec!["Amina".to_owned(), "Jiko Classic".to_owned()];
    let rendered = render("Hi {{1}}, your {{2}} is still waiting.", &parameters);
    assert_eq!(rendered, "Hi Amina, your Jiko Classic is still waiting.");
}

#[test]
fn render_leaves_unfilled_placeholders() {
    let rendered = render("Hi {{1}}, {{3}}", &["Amina".to_owned()]);
    assert_eq!(rendered, "Hi Amina, {{3}}");
}

#[test]
fn approved_templates_need_numbered_placeholders() {
    let cases = [
        ("Hi {{1}}, your {{2}} waits", true),
        ("No parameters at all", true),
        ("Hi {{2}}", false),
        ("Hi {{1}} {{3}}", false),
        ("Hi {{first_name}}", false),
    ];
    for (body, valid) in cases {
        assert_eq!(
            approved(body, 0, vec![]).check().is_ok(),
            valid,
            "body {body:?}"
        );
    }
}

#[test]
fn blank_parameters_are_invalid() {
    let cases = [
        message(&[], &["", "Jiko Classic"], &[]),
        message(&[], &["   ", "Jiko Classic"], &[]),
        message(&[], &["Amina", ""], &[]),
        message(&[" "], &["Amina"], &[]),
        message(&[], &["Amina"], &["\t"]),
    ];
    for template in cases {
        let error = check_parameters(&template).unwrap_err();
        assert_eq!(error.code(), "empty_parameter", "{template:?}");
    }
}

#[test]
fn unlisted_template_is_not_approved() {
    let known = [approved("Hi {{1}}", 0, vec![])];
    let mut template = message(&[], &["Amina"], &[]);
    template.language = "sw".to_owned();
    let error = find_approved(&known, &template).unwrap_err();
    assert_eq!(error.code(), "template_not_approved");
    assert!(
        error
            .to_string()
            .contains("not in the approved template list")
    );
}

#[test]
fn empty_list_skips_template_check() {
    let template = message(&[], &["Amina"], &[]);
    assert_eq!(find_approved(&[], &template).unwrap(), None);
}

#[test]
fn counts_must_match_approved_template() {
    let known = approved(
        "Hi {{1}}, your {{2}} is still waiting.",
        1,
        vec![ButtonKind::Url { dynamic: true }],
    );
    let cases = [
        (
            message(&["Duka"], &["Amina", "Jiko Classic"], &["Ab3xQ9"]),
            None,
        ),
        (
            message(&["Duka"], &["Amina", "Jiko Classic", "Ab3xQ9"], &[]),
            Some("body_parameter_count"),
        ),
        (
            message(&["Duka"], &["Amina", "Jiko Classic"], &[]),
            Some("button_parameter_count"),
        ),
        (
            message(&[], &["Amina", "Jiko Classic"], &["Ab3xQ9"]),
            Some("header_parameter_count"),
        ),
        (
            message(&["Duka"], &["Amina"], &["Ab3xQ9"]),
            Some("body_parameter_count"),
        ),
    ];
    for (template, expected) in cases {
        let actual = check_against(&known, &template)
            .err()
            .map(|error| error.code().to_owned());
        assert_eq!(actual.as_deref(), expected, "{template:?}");
    }
}

#[test]
fn rendered_body_over_limit_is_invalid() {
    let known = approved("Hi {{1}}, your {{2}} is still waiting.", 0, vec![]);
    let fixed = "Hi , your  is still waiting.".chars().count();
    let at_limit = "x".repeat(MAX_TEMPLATE_BODY_CHARS - fixed - 5);
    let ok = message(&[], &["Amina", &at_limit], &[]);
    assert!(check_against(&known, &ok).is_ok());

    let over = "x".repeat(MAX_TEMPLATE_BODY_CHARS - fixed - 4);
    let error = check_against(&known, &message(&[], &["Amina", &over], &[])).unwrap_err();
    assert_eq!(error.code(), "template_body_too_long");
}

#[test]
fn button_index_follows_dynamic_url_buttons() {
    let known = approved(
        "Hi {{1}}",
        0,
        vec![
            ButtonKind::QuickReply,
            ButtonKind::Url { dynamic: false },
            ButtonKind::Url { dynamic: true },
        ],
    );
    let template = message(&[], &["Amina"], &["Ab3xQ9"]);
    let object = serde_json::to_value(template_object(&template, Some(&known))).unwrap();
    assert_eq!(object["components"][1]["index"], "2");

    let unchecked = serde_json::to_value(template_object(&template, None)).unwrap();
    assert_eq!(unchecked["components"][1]["index"], "0");
}

#[test]
fn header_appears_only_with_parameters() {
    let template = message(&[], &["Amina"], &[]);
    let object = serde_json::to_value(template_object(&template, None)).unwrap();
    let types: Vec<&str> = object["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|component| component["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["body"]);

    let with_header = message(&["Duka"], &["Amina"], &[]);
    let object = serde_json::to_value(template_object(&with_header, None)).unwrap();
    assert_eq!(object["components"][0]["type"], "header");
    assert_eq!(object["components"][0]["parameters"][0]["text"], "Duka");
}

#[test]
fn approved_template_reads_from_json() {
    let text = r#"{"name":"cart_reminder_v2","language":"en","body":"Hi {{1}}",
        "buttons":[{"type":"url","dynamic":true},{"type":"quick_reply"}]}"#;
    let template: ApprovedTemplate = serde_json::from_str(text).unwrap();
    assert_eq!(template.header_params, 0);
    assert_eq!(
        template.buttons,
        [ButtonKind::Url { dynamic: true }, ButtonKind::QuickReply]
    );
}
