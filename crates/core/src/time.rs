//! Time for the engine and the workers: a `Clock` that is passed in, never read from the wall
//! directly, and the duration syntax used in flow files and configuration.
//!
//! Every timestamp in nudge is UTC with millisecond precision, because the stores keep epoch
//! milliseconds and the engine must see the same value it will read back.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

pub use jiff::Timestamp;

/// A source of the current time.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        truncate_to_millis(Timestamp::now())
    }
}

/// A clock that moves only when told to, for tests and replays.
#[derive(Debug)]
pub struct ManualClock {
    millis: AtomicI64,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock {
            millis: AtomicI64::new(start.as_millisecond()),
        }
    }

    pub fn set(&self, to: Timestamp) {
        self.millis.store(to.as_millisecond(), Ordering::SeqCst);
    }

    pub fn advance(&self, by: Duration) {
        let step = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.millis.fetch_add(step, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        from_millis(self.millis.load(Ordering::SeqCst))
    }
}

/// Converts epoch milliseconds, clamping values outside jiff's range to its bounds.
pub fn from_millis(millis: i64) -> Timestamp {
    Timestamp::from_millisecond(millis).unwrap_or(if millis < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

pub fn truncate_to_millis(ts: Timestamp) -> Timestamp {
    from_millis(ts.as_millisecond())
}

/// Adds a duration, saturating at the end of jiff's range.
pub fn add(ts: Timestamp, duration: Duration) -> Timestamp {
    let step = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
    from_millis(ts.as_millisecond().saturating_add(step))
}

/// Subtracts a duration, saturating at the start of jiff's range.
pub fn sub(ts: Timestamp, duration: Duration) -> Timestamp {
    let step = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
    from_millis(ts.as_millisecond().saturating_sub(step))
}

/// Parses a humantime duration such as `"90s"`, `"24h"` or `"5d"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|error| format!("invalid duration {text:?}: {error}"))
}

/// Formats a duration the way flow files write it.
pub fn format_duration(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

/// Serde helpers for humantime durations in TOML and JSON.
pub mod serde_duration {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_duration(*duration))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start: Timestamp = "2026-01-15T07:00:00Z".parse().unwrap();
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now(), "2026-01-15T07:01:30Z".parse().unwrap());
    }

    #[test]
    fn durations_parse_in_humantime_syntax() {
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(
            parse_duration("5d").unwrap(),
            Duration::from_secs(5 * 86_400)
        );
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert!(parse_duration("soon").is_err());
    }
}
