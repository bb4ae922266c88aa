//! Waiting after a failure: exponential, capped, and reset by the next success.

use std::time::Duration;

#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
    failures: u32,
}

const FIRST: Duration = Duration::from_millis(200);
const MAX: Duration = Duration::from_secs(5);

impl Backoff {
    pub fn new() -> Backoff {
        Backoff {
            next: FIRST,
            failures: 0,
        }
    }

    /// The wait after one more failure.
    pub fn fail(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(MAX);
        self.failures += 1;
        wait
    }

    /// Whether this failure should be logged: the first, then one in twenty, so an outage
    /// does not flood the log.
    pub fn should_log(&self) -> bool {
        self.failures <= 1 || self.failures % 20 == 0
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn reset(&mut self) {
        self.next = FIRST;
        self.failures = 0;
    }
}
