//! Entering a flow: what happens when a checkout's idle timer fires.

use sha2::{Digest, Sha256};

use crate::time::{Timestamp, add};

use super::Engine;
use super::state::{CheckoutState, CheckoutStatus};

/// The result of an idle timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryOutcome {
    /// Nothing to do: the checkout is complete, unreachable, already in the flow, or the
    /// flow is gone.
    Drop,
    /// Activity moved the idle moment; the timer fires again at this time.
    Rearm(Timestamp),
    /// The checkout went idle with nothing in it. Final.
    Emptied,
    /// The checkout is abandoned and enters the flow.
    Enter {
        holdout: bool,
        entered_at: Timestamp,
        /// When the first step is due; `None` for a holdout entry, which gets no message.
        first_step_due: Option<Timestamp>,
    },
}

impl Engine {
    /// Decides what a firing idle timer means for a checkout and one flow.
    pub fn on_idle_timer(
        &self,
        checkout: &CheckoutState,
        flow_name: &str,
        already_entered: bool,
        now: Timestamp,
    ) -> EntryOutcome {
        let Some(flow) = self.flows.get(flow_name).filter(|flow| flow.enabled) else {
            return EntryOutcome::Drop;
        };
        if checkout.is_final() || checkout.unreachable.is_some() || already_entered {
            return EntryOutcome::Drop;
        }
        let due = add(checkout.last_activity_at, flow.idle);
        if due > now {
            return EntryOutcome::Rearm(due);
        }
        if checkout.status == CheckoutStatus::Open && checkout.unit_count() == 0 {
            return EntryOutcome::Emptied;
        }
        let holdout = holdout_bucket(&flow.name, &checkout.id) < flow.holdout;
        let first_step_due = if holdout {
            None
        } else {
            flow.steps.first().map(|step| add(now, step.wait))
        };
        EntryOutcome::Enter {
            holdout,
            entered_at: now,
            first_step_due,
        }
    }
}

/// A stable number from 0 to 99 for a flow and subject, so that the same entry always lands
/// in the same group, on every machine and in every replay.
pub fn holdout_bucket(flow: &str, subject: &str) -> u8 {
    let digest = Sha256::new()
        .chain_update(flow.as_bytes())
        .chain_update([0u8])
        .chain_update(subject.as_bytes())
        .finalize();
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(head) % 100) as u8
}
