//! A fixed-bucket histogram that the writer thread records into and any thread reads, with no
//! lock: each bucket is an atomic counter. It exists so that `/metrics` can show how long
//! commits take and how many buys share one, without asking the writer.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Counts per bucket: bucket `i` holds values `<= bounds[i]` (and above the bucket before it);
/// the last bucket holds everything above the last bound.
#[derive(Debug)]
pub struct AtomicHistogram {
    bounds: &'static [u64],
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
}

/// A copy of an [`AtomicHistogram`] at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HistogramSnapshot {
    /// Upper bounds, inclusive, in the recorded unit.
    pub bounds: Vec<u64>,
    /// One count per bound, then the count above the last bound (not cumulative).
    pub counts: Vec<u64>,
    /// Sum of every recorded value.
    pub sum: u64,
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

impl AtomicHistogram {
    pub fn new(bounds: &'static [u64]) -> Self {
        Self { bounds, counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(), sum: AtomicU64::new(0) }
    }

    pub fn record(&self, value: u64) {
        let i = self.bounds.partition_point(|b| *b < value);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// Buckets are read one by one while the writer may record: a snapshot taken meanwhile can
    /// miss that one record, never count it twice.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds: self.bounds.to_vec(),
            counts: self.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect(),
            sum: self.sum.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_the_first_bucket_whose_bound_holds_them() {
        let h = AtomicHistogram::new(&[1, 4, 16]);
        for v in [0, 1, 2, 4, 5, 16, 17, 1000] {
            h.record(v);
        }
        let s = h.snapshot();
        assert_eq!(s.counts, vec![2, 2, 2, 2]);
        assert_eq!(s.sum, 1045);
        assert_eq!(s.count(), 8);
    }
}
