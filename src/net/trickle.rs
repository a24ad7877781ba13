//! The Trickle algorithm (RFC 6206) that paces DIOs: intervals double from Imin up to Imax
//! while the network is consistent; an inconsistency resets to Imin. In each interval one
//! transmission is due at a random time in its second half, suppressed when `k` consistent
//! messages were heard first (`k = 0` disables suppression).
//!
//! Sans-IO: time and randomness are arguments. Call `handle_timeout(now, random)` when
//! `poll_timeout()` is reached; it returns whether to transmit now.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Trickle {
    imin: Duration,
    imax: Duration,
    k: u32,
    i: Duration,
    start: Instant,
    t_at: Instant,
    fired: bool,
    c: u32,
}

impl Trickle {
    /// `imin_log2_ms` and `doublings` as the DODAG configuration option carries them
    /// (Imin = 2^DIOIntMin ms, Imax = Imin · 2^DIOIntDoubl, capped at one day).
    pub fn new(now: Instant, imin_log2_ms: u8, doublings: u8, k: u8, random: u64) -> Trickle {
        let cap = Duration::from_secs(86_400);
        let imin = Duration::from_millis(1u64 << imin_log2_ms.min(32)).min(cap);
        let imax = imin.checked_mul(1u32 << doublings.min(31)).unwrap_or(cap).min(cap);
        let mut t = Trickle { imin, imax, k: u32::from(k), i: imin, start: now, t_at: now, fired: false, c: 0 };
        t.begin(now, random);
        t
    }

    fn begin(&mut self, now: Instant, random: u64) {
        self.start = now;
        self.c = 0;
        self.fired = false;
        let half = self.i / 2;
        let span = half.as_micros().max(1) as u64;
        self.t_at = now + half + Duration::from_micros(random % span);
    }

    pub fn interval(&self) -> Duration {
        self.i
    }

    pub fn poll_timeout(&self) -> Instant {
        if self.fired {
            self.start + self.i
        } else {
            self.t_at
        }
    }

    /// Safe to call early. Returns true when a transmission is due now.
    pub fn handle_timeout(&mut self, now: Instant, random: u64) -> bool {
        let mut send = false;
        if !self.fired && now >= self.t_at {
            self.fired = true;
            send = self.k == 0 || self.c < self.k;
        }
        let end = self.start + self.i;
        if now >= end {
            self.i = (self.i * 2).min(self.imax);
            // Called very late: start afresh now rather than replaying missed intervals.
            let next = if now - end < self.i { end } else { now };
            self.begin(next, random);
        }
        send
    }

    /// A consistent message was heard.
    pub fn hear_consistent(&mut self) {
        self.c = self.c.saturating_add(1);
    }

    /// An inconsistency (or a multicast DIS): back to Imin unless already there.
    pub fn reset(&mut self, now: Instant, random: u64) {
        if self.i > self.imin {
            self.i = self.imin;
            self.begin(now, random);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_double_up_to_imax_and_reset() {
        let t0 = Instant::now();
        // Imin 2^10 ms ≈ 1 s, 3 doublings → Imax ≈ 8 s.
        let mut t = Trickle::new(t0, 10, 3, 0, 12345);
        let mut now = t0;
        let mut sends = Vec::new();
        for _ in 0..12 {
            now = t.poll_timeout();
            if t.handle_timeout(now, 777) {
                sends.push(now - t0);
            }
        }
        assert_eq!(t.interval(), Duration::from_millis(8192));
        // Transmissions land in the second half of each interval: 1, 2, 4, 8, 8, … s.
        assert!(sends[0] >= Duration::from_millis(512) && sends[0] < Duration::from_millis(1024));
        assert!(sends[1] >= Duration::from_millis(1024 + 1024) && sends[1] < Duration::from_millis(3072));
        t.reset(now, 1);
        assert_eq!(t.interval(), Duration::from_millis(1024));
    }

    #[test]
    fn redundancy_suppresses() {
        let t0 = Instant::now();
        let mut t = Trickle::new(t0, 10, 3, 1, 0);
        t.hear_consistent();
        let at = t.poll_timeout();
        assert!(!t.handle_timeout(at, 0));
        // Early calls do nothing.
        let mut u = Trickle::new(t0, 10, 3, 1, 0);
        assert!(!u.handle_timeout(t0, 0));
        assert!(u.handle_timeout(u.poll_timeout(), 0));
    }
}
