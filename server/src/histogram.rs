//! Latency histograms: per command (INFO latencystats, LATENCY HISTOGRAM and
//! `prism_command_latency_seconds`) and for a replicated write's wait for its commit
//! (`prism_write_commit_seconds`).
//!
//! Buckets are log-linear over whole microseconds: exact below 8 µs, then eight buckets
//! per power of two, so a reported percentile is at most 12.5 % above the true value
//! (an HDR histogram with one significant digit, as small as a fixed array can be).
//! Bucket `i` holds values in `[lower(i), upper(i))`; the last bucket also holds
//! everything beyond (over two hours).
//!
//! Invariants:
//! - Every power of two is a bucket boundary, so the Prometheus export (le = 1 µs, 2 µs,
//!   4 µs, ... 16.8 s, +Inf) sums whole buckets and loses nothing but resolution.
//! - Recording is one relaxed atomic add on the bucket and one on the sum; readers see
//!   each counter's own latest value, which is all a scrape or INFO needs.

use std::sync::atomic::{AtomicU64, Ordering};

/// Sub-buckets per power of two (and the exact range below it).
const SUB: u64 = 8;
const SUB_BITS: u32 = 3;
/// Buckets in all: 8 exact, then 8 per octave from 8 µs to 2^34 µs.
pub const BUCKETS: usize = 256;
/// The Prometheus export's largest finite bound: 2^24 µs (16.8 s).
const EXPORT_MAX_POW: u32 = 24;

/// The bucket of a value in microseconds.
#[inline]
pub fn bucket(us: u64) -> usize {
    if us < SUB {
        return us as usize;
    }
    let e = 63 - us.leading_zeros(); // >= SUB_BITS
    let m = (us >> (e - SUB_BITS)) & (SUB - 1);
    (SUB as usize + (e - SUB_BITS) as usize * SUB as usize + m as usize).min(BUCKETS - 1)
}

/// The smallest value of bucket `i`.
pub fn lower(i: usize) -> u64 {
    if i < SUB as usize {
        return i as u64;
    }
    let e = (i - SUB as usize) as u32 / SUB as u32 + SUB_BITS;
    let m = (i - SUB as usize) as u64 % SUB;
    (SUB + m) << (e - SUB_BITS)
}

/// One past the largest value of bucket `i`.
pub fn upper(i: usize) -> u64 {
    lower(i + 1)
}

/// A histogram of latencies in microseconds.
#[derive(Debug)]
pub struct Histogram {
    counts: Box<[AtomicU64; BUCKETS]>,
    sum_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: Box::new(std::array::from_fn(|_| AtomicU64::new(0))), sum_us: AtomicU64::new(0) }
    }
}

impl Histogram {
    #[inline]
    pub fn record(&self, us: u64) {
        self.add(bucket(us), 1);
        self.add_sum(us);
    }

    /// `n` values in bucket `i` (a connection's batch, `stats.rs`); their sum goes to
    /// [`Histogram::add_sum`].
    #[inline]
    pub fn add(&self, i: usize, n: u64) {
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    #[inline]
    pub fn add_sum(&self, us: u64) {
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    pub fn reset(&self) {
        self.counts.iter().for_each(|c| c.store(0, Ordering::Relaxed));
        self.sum_us.store(0, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            counts: self.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect(),
            sum_us: self.sum_us.load(Ordering::Relaxed),
        }
    }
}

/// A histogram's figures at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    counts: Vec<u64>,
    pub sum_us: u64,
}

impl Snapshot {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The value at or below which `q` (0..=1) of the recorded values fall: the upper
    /// end of the bucket holding that rank (so never below the true value). 0 if empty.
    pub fn percentile(&self, q: f64) -> u64 {
        let total = self.count();
        if total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(i);
            }
        }
        upper(BUCKETS - 1)
    }

    /// Counts per power of two: `(2^k µs, values below it and at or above 2^(k-1))` for
    /// k = 0..=24, then `(u64::MAX, the rest)`. Not cumulative.
    pub fn by_power_of_two(&self) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = (0..=EXPORT_MAX_POW).map(|k| (1u64 << k, 0)).collect();
        out.push((u64::MAX, 0));
        for (i, &c) in self.counts.iter().enumerate().filter(|(_, c)| **c > 0) {
            let up = upper(i);
            // The first bound at or above the bucket's end; boundaries align, so the
            // whole bucket is below it.
            let slot = out.iter().position(|&(b, _)| up <= b).unwrap_or(out.len() - 1);
            out[slot].1 += c;
        }
        out
    }

    /// Prometheus buckets: `(le in seconds, count)`, not cumulative, last `+Inf`.
    pub fn prometheus(&self) -> Vec<(f64, u64)> {
        self.by_power_of_two()
            .into_iter()
            .map(|(b, c)| (if b == u64::MAX { f64::MAX } else { b as f64 / 1e6 }, c))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_tile_the_range_and_align_on_powers_of_two() {
        for i in 0..BUCKETS - 1 {
            assert!(lower(i) < upper(i), "bucket {i}");
            assert_eq!(bucket(lower(i)), i, "lower of {i}");
            assert_eq!(bucket(upper(i) - 1), i, "last value of {i}");
        }
        for k in 0..=EXPORT_MAX_POW {
            let b = bucket(1 << k);
            assert_eq!(lower(b), 1 << k, "2^{k} starts a bucket");
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        // Resolution: a bucket is at most an eighth of its lower bound wide (above 8 µs).
        for i in SUB as usize..BUCKETS - 1 {
            assert!((upper(i) - lower(i)) * 8 <= lower(i), "bucket {i} too wide");
        }
    }

    #[test]
    fn percentiles_are_upper_bounds_within_an_eighth() {
        let h = Histogram::default();
        for us in 1..=1000u64 {
            h.record(us);
        }
        let s = h.snapshot();
        assert_eq!(s.count(), 1000);
        assert_eq!(s.sum_us, 500_500);
        for (q, truth) in [(0.5, 500u64), (0.99, 990), (0.999, 999), (1.0, 1000)] {
            let p = s.percentile(q);
            assert!(p >= truth && p * 8 <= truth * 9 + 8, "p{q}: {p} for {truth}");
        }
        assert_eq!(Histogram::default().snapshot().percentile(0.5), 0);
    }

    #[test]
    fn power_of_two_export_keeps_every_value() {
        let h = Histogram::default();
        for us in [0, 1, 3, 100, 100, 5_000, 40_000_000] {
            h.record(us);
        }
        let b = h.snapshot().by_power_of_two();
        assert_eq!(b.iter().map(|(_, c)| c).sum::<u64>(), 7);
        let at = |bound: u64| b.iter().find(|(x, _)| *x == bound).map(|(_, c)| *c);
        assert_eq!(at(1), Some(1)); // 0
        assert_eq!(at(2), Some(1)); // 1
        assert_eq!(at(4), Some(1)); // 3
        assert_eq!(at(128), Some(2)); // 100 x2
        assert_eq!(at(8192), Some(1)); // 5000
        assert_eq!(at(u64::MAX), Some(1)); // 40 s
    }
}
