//! Whether and when a device gets another session for an update after one ended: the policy
//! between sessions (`[delivery]` `max_attempts`, `retry_backoff_s`). Inside a session, lost
//! requests are retried by the session itself ([`super::EngineConfig`]).

use std::time::Duration;

use super::State;

/// How many sessions an update gets on one device, and how far apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Sessions that may end failed or rolled back before ferry gives up.
    pub max_attempts: u32,
    /// Wait after the first failed session; doubled after each further one.
    pub backoff: Duration,
    pub backoff_max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_attempts: 3, backoff: Duration::from_secs(600), backoff_max: Duration::from_secs(24 * 3600) }
    }
}

/// What comes after a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing more to do: the device runs it (or cannot say, and ferry does not guess).
    Finished,
    /// Another session, no earlier than this after the end of the last one.
    RetryAfter(Duration),
    /// The attempts are spent.
    GiveUp,
    /// An operator's cancel: not an attempt, and not retried by this rule.
    NotCounted,
}

impl RetryPolicy {
    /// After a session ended in `state`, with `attempts` sessions of this update on this
    /// device counted so far, this one included.
    pub fn after(&self, state: State, attempts: u32) -> Next {
        match state {
            State::Failed | State::RolledBack if attempts >= self.max_attempts => Next::GiveUp,
            State::Failed | State::RolledBack => {
                let shift = attempts.saturating_sub(1).min(16);
                Next::RetryAfter(self.backoff.saturating_mul(1 << shift).min(self.backoff_max))
            }
            State::Cancelled => Next::NotCounted,
            _ => Next::Finished,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_doubling_until_the_attempts_are_spent() {
        let p =
            RetryPolicy { max_attempts: 3, backoff: Duration::from_secs(60), backoff_max: Duration::from_secs(100) };
        assert_eq!(p.after(State::RolledBack, 1), Next::RetryAfter(Duration::from_secs(60)));
        assert_eq!(p.after(State::Failed, 2), Next::RetryAfter(Duration::from_secs(100)), "capped");
        assert_eq!(p.after(State::Failed, 3), Next::GiveUp);
        assert_eq!(p.after(State::Done, 3), Next::Finished);
        assert_eq!(p.after(State::Unconfirmed, 1), Next::Finished);
        assert_eq!(p.after(State::Cancelled, 1), Next::NotCounted);
    }
}
