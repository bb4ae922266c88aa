//! Shopper phone numbers: parsing what people type into validated E.164
//! numbers, and the masked, region and time-zone views the rest of nudge uses.
//!
//! Validation comes from the `phonenumber` crate (libphonenumber metadata).
//! A number the library calls invalid is rejected, never repaired by guessing.

use std::fmt;
use std::str::FromStr;

use phonenumber::country::{Id, Source};
use phonenumber::metadata::{DATABASE, Descriptor};
use phonenumber::{Metadata, Mode, PhoneNumber};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A validated phone number, stored in E.164 form with a leading '+'
/// (for example "+254700000001").
///
/// `Debug` prints the masked form so numbers stay out of logs, and `Display`
/// prints the full E.164 number for sending.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Phone(String);

/// Reasons a phone number could not be used.
///
/// `Debug` and `Display` mask the digits of the input, so both are safe to log.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// The input was empty or only whitespace, so the shopper gave no number.
    #[error("phone number is missing")]
    Missing,
    /// The input is not a valid phone number.
    #[error(
        "invalid phone number {masked:?}: {reason}. Enter a full international number \
         starting with + and the country code, or a national number of the default region",
        masked = mask_input(.input)
    )]
    Invalid {
        /// The raw input as given. It is personal data, so do not log it.
        input: String,
        /// The problem found, for example "too short for country code +254".
        reason: String,
    },
}

impl fmt::Debug for PhoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PhoneError::Missing => f.write_str("Missing"),
            PhoneError::Invalid { input, reason } => f
                .debug_struct("Invalid")
                .field("input", &mask_input(input))
                .field("reason", reason)
                .finish(),
        }
    }
}

impl Phone {
    /// Parses what a shopper typed into a validated E.164 number.
    ///
    /// `default_region` is an ISO 3166 alpha-2 code (for example "KE") used for
    /// numbers written without a country code. An empty `default_region` means
    /// there is none, so the number must start with '+' or "00". A leading
    /// "00" is read as '+', unless it begins the default region's own
    /// international prefix ("000" in Kenya), which the library resolves.
    pub fn parse(raw: &str, default_region: &str) -> Result<Phone, PhoneError> {
        let input = raw.trim();
        if input.is_empty() {
            return Err(PhoneError::Missing);
        }
        let invalid = |reason: String| PhoneError::Invalid {
            input: raw.to_owned(),
            reason,
        };

        let region = match default_region.trim() {
            "" => None,
            code => Some(Id::from_str(&code.to_ascii_uppercase()).map_err(|_| {
                invalid(format!(
                    "default region {code:?} is not a known ISO 3166 alpha-2 code"
                ))
            })?),
        };

        let parsed = if input.starts_with('+') {
            // The region is not needed here, and passing one makes
            // phonenumber 0.3.10 strip an Italian leading 0 as a trunk prefix.
            phonenumber::parse(None, input)
        } else if let Some(rest) = input.strip_prefix("00") {
            match region.map(|id| phonenumber::parse(Some(id), input)) {
                Some(Ok(n)) if n.code().source() == Source::Idd && n.is_valid() => Ok(n),
                _ => phonenumber::parse(None, format!("+{rest}")),
            }
        } else if region.is_some() {
            phonenumber::parse(region, input)
        } else {
            return Err(invalid(
                "no country code and no default region to read it in".to_owned(),
            ));
        };
        let number = parsed.map_err(|e| invalid(e.to_string()))?;

        if !phonenumber::is_valid(&number) {
            return Err(invalid(invalid_reason(&number)));
        }
        if number.extension().is_some() {
            return Err(invalid(
                "it has an extension, which cannot receive SMS or WhatsApp messages".to_owned(),
            ));
        }
        Ok(Phone(number.format().mode(Mode::E164).to_string()))
    }

    /// Returns the E.164 form, for example "+254700000001".
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Returns the E.164 digits without '+', for example "254700000001", the
    /// form WhatsApp and the SMSLeopard GET endpoint take.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }

    /// Returns a form safe for logs and dashboards, for example "+2547•••••001".
    ///
    /// It keeps the country code, the first national digit and the last 3
    /// digits. For national numbers shorter than 7 digits it shows fewer
    /// trailing digits, so at least 3 digits are always masked.
    pub fn masked(&self) -> String {
        let code_len = self.country_code().to_string().len();
        let national = &self.digits()[code_len..];
        let head = 1.min(national.len());
        let tail = 3.min(national.len().saturating_sub(head + 3));
        let hidden = national.len() - head - tail;
        format!(
            "+{}{}{}{}",
            &self.digits()[..code_len],
            &national[..head],
            "•".repeat(hidden),
            &national[national.len() - tail..]
        )
    }

    /// Returns the country calling code, for example 254.
    pub fn country_code(&self) -> u16 {
        self.number().map_or(0, |n| n.code().value())
    }

    /// Returns the ISO 3166 alpha-2 region the number belongs to, for example
    /// "KE", or `None` for non-geographic numbers such as +800.
    pub fn region(&self) -> Option<String> {
        let number = self.number()?;
        if let Some(id) = number.country().id() {
            return Some(id.as_ref().to_owned());
        }
        // phonenumber 0.3.10 drops leading zeros of the national number when
        // it looks up the region, so "+39 06…" comes back without one.
        region_by_metadata(number.code().value(), &number.national().to_string())
    }

    /// Returns the IANA time zone of the number's region when the whole region
    /// keeps one civil time, for example "Africa/Nairobi" for KE.
    ///
    /// It returns `None` for regions with several civil times (US, CA, BR, RU,
    /// AU, MX, ID and others) and for regions missing from the table below,
    /// because guessing a zone there could send nudges at night.
    pub fn time_zone(&self) -> Option<&'static str> {
        single_time_zone(&self.region()?)
    }

    /// Re-parses the stored E.164 string, which `parse` has already validated.
    fn number(&self) -> Option<PhoneNumber> {
        phonenumber::parse(None, &self.0).ok()
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Phone").field(&self.masked()).finish()
    }
}

impl Serialize for Phone {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Phone {
    /// Accepts only numbers with a leading '+', because stored data has no
    /// default region to read national numbers in.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        if !raw.trim_start().starts_with('+') {
            return Err(serde::de::Error::custom(PhoneError::Invalid {
                input: raw,
                reason: "a stored phone number must start with +".to_owned(),
            }));
        }
        Phone::parse(&raw, "").map_err(serde::de::Error::custom)
    }
}

/// Explains why the library rejected a parsed number. The length limits come
/// from every number type under the country code. A number that becomes valid
/// when its last one or two digits are dropped is also called too long. The
/// maximum alone misses this case: Kenyan toll-free numbers have 10 digits,
/// so a 9-digit mobile number typed with an extra digit stays within it.
fn invalid_reason(number: &PhoneNumber) -> String {
    let code = number.code().value();
    let national = number.national().to_string();
    let lengths: Vec<usize> = DATABASE
        .by_code(&code)
        .into_iter()
        .flatten()
        .flat_map(|meta| typed_descriptors(meta).collect::<Vec<_>>())
        .flat_map(|descriptor| descriptor.possible_length().iter().map(|&n| usize::from(n)))
        .collect();
    let valid_without_last = |extra: usize| {
        national.len() > extra
            && phonenumber::parse(
                None,
                format!("+{code}{}", &national[..national.len() - extra]),
            )
            .is_ok_and(|shorter| shorter.is_valid())
    };
    match (lengths.iter().min(), lengths.iter().max()) {
        (Some(&min), _) if national.len() < min => format!("too short for country code +{code}"),
        (_, Some(&max)) if national.len() > max => format!("too long for country code +{code}"),
        _ if valid_without_last(1) || valid_without_last(2) => {
            format!("too long for country code +{code}")
        }
        _ => format!("not a number in use under country code +{code}"),
    }
}

/// Finds the region for a number the way libphonenumber does: the first
/// region of the country code whose leading digits match, or, for a region
/// without leading digits, whose number patterns match.
fn region_by_metadata(code: u16, national: &str) -> Option<String> {
    let regions = DATABASE.region(&code)?;
    regions
        .into_iter()
        .filter(|id| *id != "001")
        .find(|id| {
            DATABASE
                .by_id(*id)
                .is_some_and(|meta| match meta.leading_digits() {
                    Some(pattern) => pattern.find(national).is_some_and(|m| m.start() == 0),
                    None => has_number_type(meta, national),
                })
        })
        .map(str::to_owned)
}

fn has_number_type(meta: &Metadata, national: &str) -> bool {
    meta.descriptors().general().is_match(national)
        && typed_descriptors(meta).any(|descriptor| descriptor.is_match(national))
}

/// Lists the number-type descriptors of a region. The general descriptor is
/// left out because phonenumber 0.3.10 loads it without possible lengths.
fn typed_descriptors(meta: &Metadata) -> impl Iterator<Item = &Descriptor> {
    let descriptors = meta.descriptors();
    [
        descriptors.fixed_line(),
        descriptors.mobile(),
        descriptors.toll_free(),
        descriptors.premium_rate(),
        descriptors.shared_cost(),
        descriptors.personal_number(),
        descriptors.voip(),
        descriptors.pager(),
        descriptors.uan(),
    ]
    .into_iter()
    .flatten()
}

/// Masks every digit of raw input except the last 3, keeping the layout so a
/// log still shows the shape of what was typed. Inputs with fewer than 6
/// digits are masked completely.
fn mask_input(input: &str) -> String {
    let digits = input.chars().filter(char::is_ascii_digit).count();
    let visible = if digits < 6 { 0 } else { 3 };
    let mut seen = 0;
    input
        .chars()
        .map(|c| {
            if !c.is_ascii_digit() {
                return c;
            }
            seen += 1;
            if seen > digits - visible { c } else { '•' }
        })
        .collect()
}

/// Maps a region to its IANA zone, for regions whose whole territory keeps a
/// single civil time. The zone names are those of the IANA `zone.tab`, where
/// each of these regions has a single zone. DE also lists Europe/Busingen,
/// which keeps the same time as Europe/Berlin.
fn single_time_zone(region: &str) -> Option<&'static str> {
    let zone = match region {
        // Africa
        "KE" => "Africa/Nairobi",
        "UG" => "Africa/Kampala",
        "TZ" => "Africa/Dar_es_Salaam",
        "RW" => "Africa/Kigali",
        "BI" => "Africa/Bujumbura",
        "ET" => "Africa/Addis_Ababa",
        "SO" => "Africa/Mogadishu",
        "DJ" => "Africa/Djibouti",
        "ER" => "Africa/Asmara",
        "SS" => "Africa/Juba",
        "SD" => "Africa/Khartoum",
        "NG" => "Africa/Lagos",
        "GH" => "Africa/Accra",
        "CI" => "Africa/Abidjan",
        "SN" => "Africa/Dakar",
        "CM" => "Africa/Douala",
        "ZA" => "Africa/Johannesburg",
        "ZM" => "Africa/Lusaka",
        "ZW" => "Africa/Harare",
        "MW" => "Africa/Blantyre",
        "MZ" => "Africa/Maputo",
        "BW" => "Africa/Gaborone",
        "NA" => "Africa/Windhoek",
        "EG" => "Africa/Cairo",
        "MA" => "Africa/Casablanca",
        "TN" => "Africa/Tunis",
        "DZ" => "Africa/Algiers",
        "LY" => "Africa/Tripoli",
        // Europe
        "GB" => "Europe/London",
        "GG" => "Europe/Guernsey",
        "JE" => "Europe/Jersey",
        "IM" => "Europe/Isle_of_Man",
        "IE" => "Europe/Dublin",
        "DE" => "Europe/Berlin",
        "FR" => "Europe/Paris",
        "NL" => "Europe/Amsterdam",
        "BE" => "Europe/Brussels",
        "LU" => "Europe/Luxembourg",
        "CH" => "Europe/Zurich",
        "AT" => "Europe/Vienna",
        "IT" => "Europe/Rome",
        "VA" => "Europe/Vatican",
        "DK" => "Europe/Copenhagen",
        "SE" => "Europe/Stockholm",
        "NO" => "Europe/Oslo",
        "FI" => "Europe/Helsinki",
        "PL" => "Europe/Warsaw",
        "CZ" => "Europe/Prague",
        "SK" => "Europe/Bratislava",
        "HU" => "Europe/Budapest",
        "RO" => "Europe/Bucharest",
        "BG" => "Europe/Sofia",
        "GR" => "Europe/Athens",
        "HR" => "Europe/Zagreb",
        "SI" => "Europe/Ljubljana",
        "RS" => "Europe/Belgrade",
        "EE" => "Europe/Tallinn",
        "LV" => "Europe/Riga",
        "LT" => "Europe/Vilnius",
        "TR" => "Europe/Istanbul",
        // Asia
        "AE" => "Asia/Dubai",
        "SA" => "Asia/Riyadh",
        "QA" => "Asia/Qatar",
        "KW" => "Asia/Kuwait",
        "BH" => "Asia/Bahrain",
        "OM" => "Asia/Muscat",
        "IL" => "Asia/Jerusalem",
        "JO" => "Asia/Amman",
        "LB" => "Asia/Beirut",
        "IN" => "Asia/Kolkata",
        "PK" => "Asia/Karachi",
        "BD" => "Asia/Dhaka",
        "LK" => "Asia/Colombo",
        "NP" => "Asia/Kathmandu",
        "SG" => "Asia/Singapore",
        "PH" => "Asia/Manila",
        "TH" => "Asia/Bangkok",
        "VN" => "Asia/Ho_Chi_Minh",
        "JP" => "Asia/Tokyo",
        "KR" => "Asia/Seoul",
        "HK" => "Asia/Hong_Kong",
        "TW" => "Asia/Taipei",
        // Americas
        "CO" => "America/Bogota",
        "PE" => "America/Lima",
        "VE" => "America/Caracas",
        "UY" => "America/Montevideo",
        "CR" => "America/Costa_Rica",
        "GT" => "America/Guatemala",
        "JM" => "America/Jamaica",
        "PA" => "America/Panama",
        _ => return None,
    };
    Some(zone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn e164(raw: &str, region: &str) -> Result<String, PhoneError> {
        Phone::parse(raw, region).map(|p| p.as_str().to_owned())
    }

    #[test]
    fn kenyan_inputs_normalise_to_e164() {
        // Ways shoppers type Kenyan 07xx and newer 01xx mobile numbers.
        let cases = [
            ("0700 000 001", "+254700000001"),
            ("254700000001", "+254700000001"),
            ("+254 700-000-001", "+254700000001"),
            ("700000001", "+254700000001"),
            ("+254 0700 000 001", "+254700000001"),
            ("00254700000001", "+254700000001"),
            ("0110 000 001", "+254110000001"),
            ("254110000001", "+254110000001"),
            ("+254 (0) 110 000 001", "+254110000001"),
        ];
        for (raw, expected) in cases {
            assert_eq!(e164(raw, "KE").as_deref(), Ok(expected), "input {raw:?}");
        }
    }

    #[test]
    fn kenyan_short_and_long_numbers_are_invalid() {
        // These must not be sent to, and a '+' must never be glued onto a
        // national number.
        let cases = [("07000", "too short"), ("+2547000000011", "too long")];
        for (raw, reason_part) in cases {
            let Err(PhoneError::Invalid { input, reason }) = Phone::parse(raw, "KE") else {
                panic!("{raw:?} should be invalid");
            };
            assert_eq!(input, raw);
            assert!(reason.contains(reason_part), "{raw:?}: {reason}");
        }
        for raw in ["0700000001", "700000001", "0700 000 001"] {
            let parsed = e164(raw, "KE");
            assert_ne!(parsed.as_deref(), Ok("+0700000001"), "input {raw:?}");
            assert_ne!(parsed.as_deref(), Ok("+700000001"), "input {raw:?}");
        }
    }

    #[test]
    fn blank_input_is_missing() {
        for raw in ["", "   ", "\t\n"] {
            assert_eq!(Phone::parse(raw, "KE"), Err(PhoneError::Missing), "{raw:?}");
        }
    }

    #[test]
    fn international_prefixes_read_as_plus() {
        let cases = [
            ("0044 20 7946 0958", "KE", "+442079460958"),
            ("000 44 20 7946 0958", "KE", "+442079460958"),
            ("000254700000001", "KE", "+254700000001"),
            ("00254700000001", "UG", "+254700000001"),
            ("0044 20 7946 0958", "GB", "+442079460958"),
            ("011 254 700 000 001", "US", "+254700000001"),
            ("00254700000001", "", "+254700000001"),
        ];
        for (raw, region, expected) in cases {
            assert_eq!(
                e164(raw, region).as_deref(),
                Ok(expected),
                "{raw:?} in {region}"
            );
        }
    }

    #[test]
    fn plus_numbers_ignore_default_region() {
        let cases = [
            ("+44 0161 496 0000", "KE", "+441614960000"),
            ("+39 02 1234 5678", "KE", "+390212345678"),
            ("+255 712 345 678", "KE", "+255712345678"),
            ("+254 700 000 001", "US", "+254700000001"),
            ("+254700000001", "", "+254700000001"),
        ];
        for (raw, region, expected) in cases {
            assert_eq!(
                e164(raw, region).as_deref(),
                Ok(expected),
                "{raw:?} in {region}"
            );
        }
    }

    #[test]
    fn default_region_ignores_case_and_spaces() {
        assert_eq!(e164("0700 000 001", "ke").as_deref(), Ok("+254700000001"));
        assert_eq!(e164("0700 000 001", " KE ").as_deref(), Ok("+254700000001"));
    }

    #[test]
    fn unusable_inputs_are_invalid() {
        let cases = [
            ("0700000001", "XX", "not a known ISO 3166"),
            ("0700000001", "", "no country code"),
            ("abc", "KE", "not a number"),
            ("+254", "KE", "too short"),
            ("+254 700 000 001 ext 5", "KE", "extension"),
            ("+254 300 000 001", "KE", "not a number in use"),
        ];
        for (raw, region, reason_part) in cases {
            let result = Phone::parse(raw, region);
            let Err(PhoneError::Invalid { reason, .. }) = &result else {
                panic!("{raw:?} in {region:?} should be invalid, got {result:?}");
            };
            assert!(reason.contains(reason_part), "{raw:?}: {reason}");
        }
    }

    #[test]
    fn error_messages_mask_the_input() {
        let error = Phone::parse("+254 700 000 0011", "KE").expect_err("too long");
        let message = error.to_string();
        let debug = format!("{error:?}");
        assert!(message.contains("\"+••• ••• ••• •011\""), "{message}");
        assert!(message.contains("full international number"), "{message}");
        assert!(
            message.contains("national number of the default region"),
            "{message}"
        );
        assert!(!debug.contains("700"), "{debug}");
        assert_eq!(mask_input("07000"), "•••••");
    }

    #[test]
    fn views_of_a_kenyan_number() {
        let phone = Phone::parse("0712 345 678", "KE").expect("valid");
        assert_eq!(phone.as_str(), "+254712345678");
        assert_eq!(phone.digits(), "254712345678");
        assert_eq!(phone.masked(), "+2547•••••678");
        assert_eq!(phone.country_code(), 254);
        assert_eq!(phone.region().as_deref(), Some("KE"));
        assert_eq!(phone.time_zone(), Some("Africa/Nairobi"));
        assert_eq!(phone.to_string(), "+254712345678");
        assert_eq!(format!("{phone:?}"), "Phone(\"+2547•••••678\")");
    }

    #[test]
    fn masking_hides_at_least_three_digits() {
        let cases = [
            ("+254700000001", "+2547•••••001"),
            ("+12025550143", "+12••••••143"),
            ("+29022158", "+2902•••8"),
            ("+6834002", "+6834•••"),
        ];
        for (raw, expected) in cases {
            let phone = Phone::parse(raw, "").expect("valid");
            assert_eq!(phone.masked(), expected, "{raw}");
        }
    }

    #[test]
    fn regions_and_time_zones() {
        let cases = [
            ("+254700000001", 254, Some("KE"), Some("Africa/Nairobi")),
            ("+256712345678", 256, Some("UG"), Some("Africa/Kampala")),
            (
                "+255712345678",
                255,
                Some("TZ"),
                Some("Africa/Dar_es_Salaam"),
            ),
            ("+2348031234567", 234, Some("NG"), Some("Africa/Lagos")),
            ("+447911123456", 44, Some("GG"), Some("Europe/Guernsey")),
            ("+442079460958", 44, Some("GB"), Some("Europe/London")),
            ("+4930901820", 49, Some("DE"), Some("Europe/Berlin")),
            ("+919876543210", 91, Some("IN"), Some("Asia/Kolkata")),
            ("+390212345678", 39, Some("IT"), Some("Europe/Rome")),
            ("+12025550143", 1, Some("US"), None),
            ("+14165550143", 1, Some("CA"), None),
            ("+79123456789", 7, Some("RU"), None),
            ("+61412345678", 61, Some("AU"), None),
            ("+5511912345678", 55, Some("BR"), None),
            ("+6281234567890", 62, Some("ID"), None),
            ("+80012345678", 800, None, None),
        ];
        for (raw, code, region, zone) in cases {
            let phone = Phone::parse(raw, "").expect(raw);
            assert_eq!(phone.country_code(), code, "{raw}");
            assert_eq!(phone.region().as_deref(), region, "{raw}");
            assert_eq!(phone.time_zone(), zone, "{raw}");
        }
    }

    #[test]
    fn serde_uses_the_e164_string() {
        let phone = Phone::parse("0700 000 001", "KE").expect("valid");
        let json = serde_json::to_string(&phone).expect("serialise");
        assert_eq!(json, "\"+254700000001\"");
        let back: Phone = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, phone);
    }

    #[test]
    fn deserialising_revalidates() {
        for json in ["\"0700000001\"", "\"254700000001\"", "\"+2547000\"", "\"\""] {
            let result: Result<Phone, _> = serde_json::from_str(json);
            assert!(result.is_err(), "{json} should be rejected");
        }
        let spaced: Phone = serde_json::from_str("\"+254 700 000 001\"").expect("valid");
        assert_eq!(spaced.as_str(), "+254700000001");
    }

    #[test]
    fn equal_numbers_compare_and_hash_equal() {
        let typed = ["0700 000 001", "+254700000001", "254 700 000 001"];
        let phones: HashSet<Phone> = typed
            .iter()
            .map(|raw| Phone::parse(raw, "KE").expect("valid"))
            .collect();
        assert_eq!(phones.len(), 1);

        let low = Phone::parse("+254700000001", "").expect("valid");
        let high = Phone::parse("+254700000002", "").expect("valid");
        assert!(low < high);
    }
}
