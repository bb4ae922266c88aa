//! Contact details as the engine uses them: phone numbers in E.164, e-mail addresses in lower
//! case, blank values treated as missing, and whether a message may be sent at all.

use crate::event::ContactInput;
use crate::phone::{Phone, PhoneError};
use crate::template::present;

use super::Settings;
use super::state::Unreachable;

/// A contact after normalisation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Contact {
    pub phone: Option<Phone>,
    /// Raw text of a phone number that is not valid.
    pub invalid_phone: Option<String>,
    pub email: Option<String>,
    pub customer_id: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub sms_consent: Option<bool>,
    pub timezone: Option<String>,
}

/// Normalises what a source reported about a contact.
pub fn normalise_contact(input: &ContactInput, settings: &Settings) -> Contact {
    let (phone, invalid_phone) = match input.phone.as_deref() {
        None => (None, None),
        Some(raw) => match Phone::parse(raw, &settings.default_region) {
            Ok(phone) => (Some(phone), None),
            Err(PhoneError::Missing) => (None, None),
            Err(PhoneError::Invalid { .. }) => (None, Some(raw.trim().to_string())),
        },
    };
    Contact {
        phone,
        invalid_phone,
        email: input.email.as_deref().and_then(normalise_email),
        customer_id: present(input.customer_id.as_deref()).map(str::to_string),
        first_name: present(input.first_name.as_deref()).map(str::to_string),
        last_name: present(input.last_name.as_deref()).map(str::to_string),
        sms_consent: input.sms_consent,
        timezone: present(input.timezone.as_deref()).map(str::to_string),
    }
}

/// Lower-cases and trims an e-mail address; blank or obviously broken addresses are missing.
pub fn normalise_email(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    if email.is_empty() || !email.contains('@') {
        return None;
    }
    Some(email)
}

/// Why a message cannot be sent to this contact, or `None` when it can.
pub(super) fn unreachable(
    phone: Option<&Phone>,
    invalid_phone: Option<&str>,
    sms_consent: Option<bool>,
    settings: &Settings,
) -> Option<Unreachable> {
    if settings.assume_reachable {
        return None;
    }
    if phone.is_none() {
        return Some(if invalid_phone.is_some() {
            Unreachable::InvalidPhone
        } else {
            Unreachable::NoContact
        });
    }
    match sms_consent {
        Some(false) => Some(Unreachable::NoConsent),
        None if settings.require_sms_consent => Some(Unreachable::NoConsent),
        _ => None,
    }
}
