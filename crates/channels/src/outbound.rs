//! Checks on an [`OutboundMessage`] that every provider adapter makes before a request leaves.

use nudge_core::channel::{ChannelKind, OutboundMessage, SendError};

/// Builds a [`SendError::Invalid`].
pub(crate) fn invalid(code: &str, message: String) -> SendError {
    SendError::Invalid {
        code: code.to_owned(),
        message,
    }
}

/// Rejects a message addressed to another channel, which means the dispatcher picked the
/// wrong adapter.
pub(crate) fn check_channel(
    message: &OutboundMessage,
    expected: ChannelKind,
) -> Result<(), SendError> {
    if message.channel == expected {
        return Ok(());
    }
    Err(invalid(
        "wrong_channel",
        format!(
            "message {} is for {} but was given to the {} adapter",
            message.message_id,
            message.channel.as_str(),
            expected.as_str()
        ),
    ))
}

/// Returns the digits of an E.164 number (`+` and 8 to 15 digits) without the `+`.
pub(crate) fn e164_digits(message: &OutboundMessage) -> Result<&str, SendError> {
    let digits = message.to.strip_prefix('+').filter(|digits| {
        (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
    });
    // The number itself stays out of the message, because errors reach logs.
    digits.ok_or_else(|| {
        invalid(
            "invalid_recipient",
            format!(
                "message {} has a recipient that is not an E.164 number (+ and 8 to 15 digits)",
                message.message_id
            ),
        )
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use nudge_core::channel::MessageKind;

    use super::*;

    fn message_to(to: &str) -> OutboundMessage {
        OutboundMessage {
            message_id: 1,
            workspace_id: 1,
            idempotency_key: "run:1:step:1".to_owned(),
            channel: ChannelKind::Sms,
            to: to.to_owned(),
            kind: MessageKind::Text,
            body: "Hi".to_owned(),
            template: None,
        }
    }

    #[test]
    fn e164_numbers_lose_their_plus() {
        let message = message_to("+254700000001");
        assert_eq!(e164_digits(&message).unwrap(), "254700000001");
    }

    #[test]
    fn non_e164_numbers_are_invalid() {
        for to in [
            "0700000001",
            "254700000001",
            "+2547",
            "+25470000000123456",
            "+2547000x0001",
        ] {
            let error = e164_digits(&message_to(to)).unwrap_err();
            assert_eq!(error.code(), "invalid_recipient", "recipient {to}");
        }
    }

    #[test]
    fn other_channel_is_invalid() {
        let message = message_to("+254700000001");
        let error = check_channel(&message, ChannelKind::Whatsapp).unwrap_err();
        assert_eq!(error.code(), "wrong_channel");
    }
}
