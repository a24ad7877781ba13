//! When to poll a repository next: the interval with jitter after a success, exponential
//! backoff after failures. Sans-IO: time and randomness are arguments.
//!
//! Call order: [`Poller::poll_timeout`] → sleep until then → sync → [`Poller::on_success`] or
//! [`Poller::on_failure`] with the time the sync ended and a fresh random number.

use std::time::{Duration, Instant};

/// First retry after a failure; doubles per consecutive failure.
const BACKOFF_START: Duration = Duration::from_secs(5);
/// Backoff never waits longer than this (nor longer than the poll interval).
const BACKOFF_MAX: Duration = Duration::from_secs(3600);
/// Jitter is ± this fraction (in percent) of the wait, so gateways do not poll in lockstep.
const JITTER_PERCENT: u64 = 10;

#[derive(Debug, Clone)]
pub struct Poller {
    interval: Duration,
    failures: u32,
    next: Instant,
}

impl Poller {
    /// Due at once: the first poll happens at startup.
    pub fn new(now: Instant, interval: Duration) -> Poller {
        Poller { interval: interval.max(Duration::from_secs(1)), failures: 0, next: now }
    }

    /// When the next poll is due.
    pub fn poll_timeout(&self) -> Instant {
        self.next
    }

    pub fn is_due(&self, now: Instant) -> bool {
        now >= self.next
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn on_success(&mut self, now: Instant, random: u64) {
        self.failures = 0;
        self.next = now + jitter(self.interval, random);
    }

    pub fn on_failure(&mut self, now: Instant, random: u64) {
        self.failures = self.failures.saturating_add(1);
        let doublings = self.failures.saturating_sub(1).min(20);
        let wait = BACKOFF_START.saturating_mul(1 << doublings).min(BACKOFF_MAX).min(self.interval);
        self.next = now + jitter(wait, random);
    }
}

fn jitter(wait: Duration, random: u64) -> Duration {
    let ms = wait.as_millis() as u64;
    let span = ms * JITTER_PERCENT / 100;
    if span == 0 {
        return wait;
    }
    let offset = random % (2 * span + 1);
    Duration::from_millis(ms - span + offset)
}

/// The deterministic generator for poll jitter; the shell seeds it.
pub use crate::seeded::SplitMix64 as Jitter;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_with_jitter_and_backoff() {
        let t0 = Instant::now();
        let mut p = Poller::new(t0, Duration::from_secs(300));
        assert!(p.is_due(t0));
        let mut rng = Jitter::new(1);
        for _ in 0..100 {
            p.on_success(t0, rng.next_u64());
            let wait = p.poll_timeout() - t0;
            assert!(wait >= Duration::from_secs(270) && wait <= Duration::from_secs(330), "{wait:?}");
        }
        let waits: Vec<Duration> = (0..8)
            .map(|_| {
                p.on_failure(t0, 0);
                p.poll_timeout() - t0
            })
            .collect();
        // 5 s, 10 s, 20 s ... (minus the full jitter with random = 0), capped at the interval.
        assert_eq!(waits[0], Duration::from_millis(4500));
        assert_eq!(waits[1], Duration::from_secs(9));
        assert_eq!(waits[7], Duration::from_secs(270));
        p.on_success(t0, 0);
        assert_eq!(p.failures(), 0);
    }
}
