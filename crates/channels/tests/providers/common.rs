//! Messages and addresses the provider tests share.

use nudge_core::channel::{ChannelKind, MessageKind, OutboundMessage, TemplateMessage};
use serde_json::Value;

/// Recipient used throughout, the number in the provider payload examples.
pub const TO: &str = "+254700000001";

pub fn sms(body: &str) -> OutboundMessage {
    OutboundMessage {
        message_id: 1,
        workspace_id: 1,
        idempotency_key: "run:1:step:1".to_owned(),
        channel: ChannelKind::Sms,
        to: TO.to_owned(),
        kind: MessageKind::Text,
        body: body.to_owned(),
        template: None,
    }
}

pub fn whatsapp_text(body: &str) -> OutboundMessage {
    OutboundMessage {
        channel: ChannelKind::Whatsapp,
        idempotency_key: "nudge:cart:00000000-0000-4000-8000-00000000c001:step1".to_owned(),
        ..sms(body)
    }
}

pub fn whatsapp_template(name: &str, body: &[&str], buttons: &[&str]) -> OutboundMessage {
    let owned = |values: &[&str]| values.iter().map(|v| (*v).to_owned()).collect();
    OutboundMessage {
        kind: MessageKind::Template,
        body: String::new(),
        template: Some(TemplateMessage {
            name: name.to_owned(),
            language: "en".to_owned(),
            header: Vec::new(),
            body: owned(body),
            buttons: owned(buttons),
        }),
        ..whatsapp_text("")
    }
}

/// Returns a base URL on a local port that nothing listens on.
pub fn closed_port_url(path: &str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{address}{path}")
}

/// Returns one field-failure case by id from the shared cases file.
pub fn field_failure(id: &str) -> Value {
    let cases = nudge_testkit::shared_json("cases/field-failures.json");
    let found = cases
        .as_array()
        .unwrap()
        .iter()
        .find(|case| case["id"] == id);
    found
        .unwrap_or_else(|| panic!("field-failure case {id} is missing"))
        .clone()
}
