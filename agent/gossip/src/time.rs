//! Time as the core sees it: an opaque millisecond counter the shell passes in.
//!
//! The core never reads a clock. The shell maps its monotonic clock onto
//! [`Instant`] (e.g. milliseconds since the agent started) and the simulator
//! uses its virtual clock, which is what makes runs reproducible.
//!
//! ```
//! use core::time::Duration;
//! use nuvol_gossip::Instant;
//! let t = Instant::from_millis(1_000) + Duration::from_millis(500);
//! assert_eq!(t.as_millis(), 1_500);
//! ```

use core::ops::{Add, Sub};
use core::time::Duration;

/// A point on the shell's monotonic clock, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The start of the clock.
    pub const ZERO: Instant = Instant(0);

    pub const fn from_millis(ms: u64) -> Instant {
        Instant(ms)
    }

    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Time elapsed since `earlier`, or zero if `earlier` is in the future.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(duration_ms(d)))
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, d: Duration) -> Instant {
        Instant(self.0.saturating_sub(duration_ms(d)))
    }
}

/// Milliseconds in `d`, saturating (a `Duration` can exceed `u64` ms).
pub(crate) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
