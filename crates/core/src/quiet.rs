//! Quiet hours: the local hours in which no nudge goes out, resolved in the recipient's time
//! zone on the day of sending, so that daylight saving time moves the window with the clock.

use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};
use serde::{Deserialize, Serialize};

/// A daily window of local time in which messages wait. A window whose start is later than
/// its end wraps past midnight (`20:00`–`08:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "QuietHoursText", into = "QuietHoursText")]
pub struct QuietHours {
    pub start: Time,
    pub end: Time,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuietHoursText {
    start: String,
    end: String,
}

impl TryFrom<QuietHoursText> for QuietHours {
    type Error = String;

    fn try_from(text: QuietHoursText) -> Result<Self, Self::Error> {
        QuietHours::parse(&text.start, &text.end)
    }
}

impl From<QuietHours> for QuietHoursText {
    fn from(hours: QuietHours) -> Self {
        QuietHoursText {
            start: hours.start.strftime("%H:%M").to_string(),
            end: hours.end.strftime("%H:%M").to_string(),
        }
    }
}

impl QuietHours {
    /// Parses `HH:MM` start and end times.
    pub fn parse(start: &str, end: &str) -> Result<QuietHours, String> {
        let start = parse_time(start)?;
        let end = parse_time(end)?;
        if start == end {
            return Err("quiet hours start and end at the same time; write \"off\" instead".into());
        }
        Ok(QuietHours { start, end })
    }

    /// Returns when the quiet window that contains `at` ends in `zone`, or `None` when `at`
    /// is outside quiet hours and the message may go now.
    pub fn deferral(&self, at: Timestamp, zone: &TimeZone) -> Option<Timestamp> {
        let local = at.to_zoned(zone.clone());
        let time = local.time();
        let wraps = self.start > self.end;
        let quiet = if wraps {
            time >= self.start || time < self.end
        } else {
            time >= self.start && time < self.end
        };
        if !quiet {
            return None;
        }
        // The window ends on the same local day, unless it wraps and we are before midnight.
        let end_day = if wraps && time >= self.start {
            local.date().checked_add(1.day()).ok()?
        } else {
            local.date()
        };
        let end: Zoned = end_day.to_datetime(self.end).to_zoned(zone.clone()).ok()?;
        Some(end.timestamp())
    }
}

fn parse_time(text: &str) -> Result<Time, String> {
    let text = text.trim();
    let (hour, minute) = text
        .split_once(':')
        .ok_or_else(|| format!("invalid time {text:?}; expected HH:MM such as 20:00"))?;
    let hour: i8 = hour
        .parse()
        .map_err(|_| format!("invalid hour in {text:?}; expected HH:MM"))?;
    let minute: i8 = minute
        .parse()
        .map_err(|_| format!("invalid minute in {text:?}; expected HH:MM"))?;
    Time::new(hour, minute, 0, 0)
        .map_err(|_| format!("invalid time {text:?}; expected 00:00 to 23:59"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn zone(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    #[test]
    fn field_failure_cases_defer_in_local_time() {
        // Each row: zone, quiet start, quiet end, due, expected send time (None: send now).
        let cases = [
            (
                "America/New_York",
                "21:00",
                "08:00",
                "2025-07-10T01:30:00Z",
                Some("2025-07-10T12:00:00Z"),
            ),
            // 20:30 EST is before the 21:00 start, so the message goes now.
            (
                "America/New_York",
                "21:00",
                "08:00",
                "2025-01-10T01:30:00Z",
                None,
            ),
            (
                "America/New_York",
                "21:00",
                "08:00",
                "2025-01-10T02:30:00Z",
                Some("2025-01-10T13:00:00Z"),
            ),
            (
                "Africa/Nairobi",
                "21:00",
                "07:00",
                "2025-05-01T20:30:00Z",
                Some("2025-05-02T04:00:00Z"),
            ),
            (
                "Africa/Nairobi",
                "21:00",
                "07:00",
                "2025-05-01T23:00:00Z",
                Some("2025-05-02T04:00:00Z"),
            ),
            (
                "Africa/Nairobi",
                "21:00",
                "07:00",
                "2025-05-02T09:00:00Z",
                None,
            ),
            (
                "Africa/Nairobi",
                "18:00",
                "08:00",
                "2025-05-02T16:30:00Z",
                Some("2025-05-03T05:00:00Z"),
            ),
        ];
        for (name, start, end, due, expected) in cases {
            let hours = QuietHours::parse(start, end).unwrap();
            let deferred = hours.deferral(ts(due), &zone(name));
            assert_eq!(deferred, expected.map(ts), "{name} {start}-{end} due {due}");
        }
    }

    #[test]
    fn same_day_window_does_not_wrap() {
        let hours = QuietHours::parse("01:00", "05:00").unwrap();
        let utc = TimeZone::UTC;
        assert_eq!(hours.deferral(ts("2025-05-01T00:30:00Z"), &utc), None);
        assert_eq!(
            hours.deferral(ts("2025-05-01T02:00:00Z"), &utc),
            Some(ts("2025-05-01T05:00:00Z"))
        );
        assert_eq!(hours.deferral(ts("2025-05-01T05:00:00Z"), &utc), None);
    }

    #[test]
    fn invalid_times_are_rejected() {
        assert!(QuietHours::parse("25:00", "08:00").is_err());
        assert!(QuietHours::parse("8pm", "08:00").is_err());
        assert!(QuietHours::parse("08:00", "08:00").is_err());
    }
}
