//! Lifeguard's dynamic suspicion timeout.
//!
//! A suspicion starts at the maximum timeout and shrinks towards the minimum
//! as independent members confirm it: with `c` confirmations out of `k`
//! expected, the timeout is `max − (max − min)·ln(c+1)/ln(k+1)`. Without
//! Lifeguard (plain SWIM) the timeout is fixed at the minimum.

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use crate::rng::ln;
use crate::time::Instant;

pub(crate) struct Suspicion {
    pub incarnation: u64,
    start: Instant,
    min: Duration,
    max: Duration,
    k: u32,
    /// Who has suspected it; the first suspecter does not count as a confirmation.
    suspecters: Vec<String>,
    dynamic: bool,
    /// Cached [`Suspicion::deadline`]; changes only on a confirmation.
    deadline: Instant,
}

impl Suspicion {
    pub(crate) fn new(
        incarnation: u64,
        from: String,
        start: Instant,
        min: Duration,
        max_mult: u32,
        k: u32,
        dynamic: bool,
    ) -> Suspicion {
        let mut s = Suspicion {
            incarnation,
            start,
            min,
            max: min.saturating_mul(max_mult.max(1)),
            k,
            suspecters: alloc::vec![from],
            dynamic,
            deadline: start,
        };
        s.deadline = s.compute_deadline();
        s
    }

    /// Record a suspicion from `from`; true if it is a new, independent one.
    pub(crate) fn confirm(&mut self, from: &str) -> bool {
        if !self.dynamic || self.suspecters.len() > self.k as usize {
            return false;
        }
        if self.suspecters.iter().any(|s| s == from) {
            return false;
        }
        self.suspecters.push(String::from(from));
        self.deadline = self.compute_deadline();
        true
    }

    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    fn compute_deadline(&self) -> Instant {
        if !self.dynamic || self.k == 0 {
            return self.start + self.min;
        }
        let confirmations = (self.suspecters.len() - 1) as f64;
        let frac = ln(confirmations + 1.0) / ln(f64::from(self.k) + 1.0);
        let span = self.max.saturating_sub(self.min).as_millis() as f64;
        let timeout = self.max.as_millis() as f64 - frac * span;
        let timeout = (timeout as u64).max(self.min.as_millis() as u64);
        self.start + Duration::from_millis(timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_shrinks_from_max_to_min_with_confirmations() {
        let min = Duration::from_millis(4000);
        let mut s = Suspicion::new(1, "a".into(), Instant::ZERO, min, 6, 2, true);
        assert_eq!(s.deadline().as_millis(), 24_000);
        assert!(s.confirm("b"));
        assert!(!s.confirm("b"));
        let mid = s.deadline().as_millis();
        assert!(mid < 24_000 && mid > 4000, "{mid}");
        assert!(s.confirm("c"));
        assert_eq!(s.deadline().as_millis(), 4000);
    }

    #[test]
    fn plain_swim_uses_the_fixed_minimum() {
        let min = Duration::from_millis(4000);
        let mut s = Suspicion::new(1, "a".into(), Instant::ZERO, min, 6, 2, false);
        assert!(!s.confirm("b"));
        assert_eq!(s.deadline().as_millis(), 4000);
    }
}
