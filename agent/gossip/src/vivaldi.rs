//! Vivaldi network coordinates: an RTT estimate to any node without probing it.
//!
//! Each node keeps a point in an 8-dimensional space plus a "height" (its
//! access-link delay). Every direct probe ack carries the responder's
//! coordinate; the prober measures the round trip and nudges its own point
//! so that distances match measured RTTs (Dabek et al., as in Serf). The
//! distance between two coordinates is then the estimated RTT between them.
//!
//! A single RTT sample on Wi-Fi can be inflated tenfold or more by a
//! link-layer retransmission or a full queue, and one such sample fed to
//! Vivaldi moves the coordinate by a good part of the error (a 300 ms sample
//! against a 20 ms estimate pushes it some 35 ms). The latency filter
//! keeps the last three samples to each peer and feeds Vivaldi the lowest.
//! Serf feeds the median of three (Ledlie et al., "Network Coordinates in
//! the Wild"), which lets through every pair of delayed samples; but delay
//! noise is one-sided (queues and retransmissions only ever add time), so
//! the lowest of three is spoiled only when all three are. In the
//! simulator with 10 % of datagrams held up 100–300 ms, the median relative
//! error of 30 nodes' estimates is 6–8 % with the lowest, 55–116 % with the
//! median and 176–205 % unfiltered; 4–5 % without spikes in every case
//! (`vivaldi_estimates_survive_delay_spikes` in `tests/sim.rs`). A lasting
//! rise in RTT shows after three samples, a fall at once.
//! Serf's adjustment window and gravity are left out: `docs/protocol.md`
//! (section 8) gives the measurements.
//!
//! ```
//! use nuvol_gossip::Coordinate;
//! let a = Coordinate::origin();
//! assert!(a.distance_ms(&a) < 0.1); // only the two minimal heights
//! ```

use alloc::vec::Vec;

use crate::rng::{sqrt, Rng};

/// Dimensions of the Euclidean part.
pub const DIMENSIONS: usize = 8;
const ERROR_MAX: f64 = 1.5;
const CE: f64 = 0.25;
const CC: f64 = 0.25;
/// Smallest height, in milliseconds.
const HEIGHT_MIN: f64 = 0.01;
/// RTT samples above this (ms) are treated as bogus and ignored.
const RTT_MAX_MS: f64 = 10_000.0;

/// A network coordinate; units are milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Coordinate {
    pub vec: [f64; DIMENSIONS],
    /// Confidence: 1.5 = knows nothing, near 0 = confident.
    pub error: f64,
    pub height: f64,
}

/// A coordinate as it travels on the wire (f32 keeps acks small).
#[derive(Debug, Clone, PartialEq)]
pub struct WireCoordinate {
    pub vec: Vec<f32>,
    pub error: f32,
    pub height: f32,
}

impl Coordinate {
    /// The starting point: origin, maximal error.
    pub fn origin() -> Coordinate {
        Coordinate {
            vec: [0.0; DIMENSIONS],
            error: ERROR_MAX,
            height: HEIGHT_MIN,
        }
    }

    /// Estimated round-trip time to `other`, in milliseconds.
    pub fn distance_ms(&self, other: &Coordinate) -> f64 {
        let mut sum = 0.0;
        for i in 0..DIMENSIONS {
            let d = self.vec[i] - other.vec[i];
            sum += d * d;
        }
        let d = sqrt(sum) + self.height + other.height;
        if d.is_finite() {
            d
        } else {
            0.0
        }
    }

    /// Move towards agreement with a measured `rtt_ms` to a node at `other`.
    pub(crate) fn update(&mut self, other: &Coordinate, rtt_ms: f64, rng: &mut Rng) {
        if !(rtt_ms.is_finite() && rtt_ms > 0.0 && rtt_ms < RTT_MAX_MS && other.is_sane()) {
            return;
        }
        let rtt = rtt_ms.max(HEIGHT_MIN);
        let dist = self.distance_ms(other);
        let total_err = (self.error + other.error).max(1e-6);
        let weight = self.error / total_err;
        let wrongness = (dist - rtt).abs() / rtt;
        self.error = (CE * weight * wrongness + self.error * (1.0 - CE * weight)).min(ERROR_MAX);
        let force = CC * weight * (rtt - dist);

        let mut diff = [0.0; DIMENSIONS];
        let mut mag2 = 0.0;
        for (i, d) in diff.iter_mut().enumerate() {
            *d = self.vec[i] - other.vec[i];
            mag2 += *d * *d;
        }
        let mut mag = sqrt(mag2);
        if mag < 1e-6 {
            // Two nodes at the same point: push apart in a random direction.
            mag2 = 0.0;
            for d in diff.iter_mut() {
                *d = rng.unit() - 0.5;
                mag2 += *d * *d;
            }
            let m = sqrt(mag2).max(1e-9);
            for (i, d) in diff.iter().enumerate() {
                self.vec[i] += d / m * force;
            }
            mag = 0.0;
        } else {
            for (i, d) in diff.iter().enumerate() {
                self.vec[i] += d / mag * force;
            }
        }
        if mag > 1e-6 {
            self.height =
                ((self.height + other.height) * force / mag + self.height).max(HEIGHT_MIN);
        }
        if !self.is_sane() {
            *self = Coordinate::origin();
        }
    }

    fn is_sane(&self) -> bool {
        self.vec.iter().all(|v| v.is_finite() && v.abs() < 1e7)
            && self.error.is_finite()
            && self.height.is_finite()
            && self.height >= 0.0
    }

    pub fn to_wire(&self) -> WireCoordinate {
        WireCoordinate {
            vec: self.vec.iter().map(|&v| v as f32).collect(),
            error: self.error as f32,
            height: self.height as f32,
        }
    }

    /// A peer's coordinate, or `None` if it is malformed or absurd.
    pub fn from_wire(w: &WireCoordinate) -> Option<Coordinate> {
        if w.vec.len() != DIMENSIONS {
            return None;
        }
        let mut vec = [0.0; DIMENSIONS];
        for (d, s) in vec.iter_mut().zip(&w.vec) {
            *d = f64::from(*s);
        }
        let c = Coordinate {
            vec,
            error: f64::from(w.error).clamp(0.0, ERROR_MAX),
            height: f64::from(w.height),
        };
        c.is_sane().then_some(c)
    }
}

/// RTT samples kept per peer.
const FILTER_SAMPLES: usize = 3;

/// The last [`FILTER_SAMPLES`] RTT samples to one peer; Vivaldi is fed the
/// lowest (see the module docs for why not the median).
///
/// The node keeps one in each member, so the samples go with the member.
/// They are `f32` like coordinates on the wire: a microsecond's precision
/// is plenty for a figure fed to a spring model.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LatencyFilter {
    /// A ring; unfilled slots hold infinity, which no minimum picks.
    rtt_ms: [f32; FILTER_SAMPLES],
    /// Slot the next sample overwrites.
    next: u8,
}

impl Default for LatencyFilter {
    fn default() -> LatencyFilter {
        LatencyFilter {
            rtt_ms: [f32::INFINITY; FILTER_SAMPLES],
            next: 0,
        }
    }
}

impl LatencyFilter {
    /// Record a sample of `rtt_ms`; returns the RTT to feed Vivaldi: the
    /// lowest of the last three samples.
    pub(crate) fn sample(&mut self, rtt_ms: f64) -> f64 {
        self.rtt_ms[usize::from(self.next) % FILTER_SAMPLES] = rtt_ms as f32;
        self.next = (self.next + 1) % FILTER_SAMPLES as u8;
        f64::from(self.rtt_ms.iter().copied().fold(f32::INFINITY, f32::min))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinates_converge_to_measured_rtts() {
        // Three nodes on a line: a-b 10 ms, b-c 20 ms, a-c 30 ms.
        let rtt = [[0.0, 10.0, 30.0], [10.0, 0.0, 20.0], [30.0, 20.0, 0.0]];
        let mut c = [
            Coordinate::origin(),
            Coordinate::origin(),
            Coordinate::origin(),
        ];
        let mut rng = Rng::new(1);
        for round in 0..2000 {
            let i = round % 3;
            let j = (round / 3 + i + 1) % 3;
            if i == j {
                continue;
            }
            let other = c[j].clone();
            c[i].update(&other, rtt[i][j], &mut rng);
        }
        for i in 0..3 {
            for j in 0..3 {
                if i != j {
                    let est = c[i].distance_ms(&c[j]);
                    assert!(
                        (est - rtt[i][j]).abs() < rtt[i][j] * 0.25,
                        "{i}->{j}: {est}"
                    );
                }
            }
        }
    }

    #[test]
    fn delayed_samples_are_outvoted_by_one_prompt_one() {
        let mut f = LatencyFilter::default();
        assert_eq!(f.sample(2.0), 2.0);
        assert_eq!(f.sample(250.0), 2.0);
        assert_eq!(f.sample(120.0), 2.0, "two delayed in three");
        assert_eq!(f.sample(3.0), 3.0, "2 fell out of the window");
    }

    #[test]
    fn a_lasting_change_in_rtt_gets_through() {
        let mut f = LatencyFilter::default();
        for _ in 0..3 {
            f.sample(2.0);
        }
        assert_eq!(f.sample(40.0), 2.0);
        assert_eq!(f.sample(40.0), 2.0);
        assert_eq!(f.sample(40.0), 40.0, "a rise shows after three");
        assert_eq!(f.sample(5.0), 5.0, "a fall shows at once");
    }

    #[test]
    fn malformed_wire_coordinates_are_refused() {
        let bad = WireCoordinate {
            vec: alloc::vec![f32::NAN; DIMENSIONS],
            error: 1.0,
            height: 1.0,
        };
        assert!(Coordinate::from_wire(&bad).is_none());
        let short = WireCoordinate {
            vec: alloc::vec![1.0; 3],
            error: 1.0,
            height: 1.0,
        };
        assert!(Coordinate::from_wire(&short).is_none());
    }
}
