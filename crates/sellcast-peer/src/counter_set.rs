//! The set of publisher counters a viewer has seen, one bit per counter in a sliding window,
//! so hundreds of viewers can keep minutes of history cheaply (300 packets/s is ~40 bytes/s).

use std::collections::VecDeque;
use std::ops::Range;

/// Counters kept: 2^20 (about 58 minutes of video at 300 packets/s). Older ones are forgotten.
const WINDOW_WORDS: u64 = 1 << 14;

#[derive(Debug, Clone, Default)]
pub struct CounterSet {
    /// Index (counter / 64) of `words[0]`.
    first_word: u64,
    words: VecDeque<u64>,
    len: u64,
}

impl CounterSet {
    /// Record `counter`; false if it was already there. A counter older than the window is
    /// not recorded (and reported as new: it cannot be told apart).
    pub fn insert(&mut self, counter: u64) -> bool {
        let word = counter / 64;
        if word < self.first_word {
            return true;
        }
        if word >= self.first_word + WINDOW_WORDS {
            self.slide_to(word + 1 - WINDOW_WORDS);
        }
        let at = (word - self.first_word) as usize;
        if at >= self.words.len() {
            self.words.resize(at + 1, 0);
        }
        let bit = 1u64 << (counter % 64);
        let fresh = self.words[at] & bit == 0;
        self.words[at] |= bit;
        self.len += u64::from(fresh);
        fresh
    }

    fn slide_to(&mut self, first_word: u64) {
        while self.first_word < first_word {
            match self.words.pop_front() {
                Some(w) => self.len -= u64::from(w.count_ones()),
                None => {
                    self.first_word = first_word;
                    return;
                }
            }
            self.first_word += 1;
        }
    }

    pub fn contains(&self, counter: u64) -> bool {
        let word = counter / 64;
        word >= self.first_word
            && self
                .words
                .get((word - self.first_word) as usize)
                .is_some_and(|w| w & (1 << (counter % 64)) != 0)
    }

    /// The counters in `range` that were seen, ascending.
    pub fn range(&self, range: Range<u64>) -> impl Iterator<Item = u64> + '_ {
        let start = range.start.max(self.first_word * 64);
        (start..range.end.max(start)).filter(|c| self.contains(*c))
    }

    /// How many distinct counters are held.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_ranges_and_duplicates() {
        let mut s = CounterSet::default();
        assert!(s.insert(5));
        assert!(!s.insert(5));
        assert!(s.insert(200));
        assert!(s.insert(63));
        assert_eq!(s.range(0..100).collect::<Vec<_>>(), vec![5, 63]);
        assert_eq!(s.range(6..201).count(), 2);
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn slides_past_the_window_without_growing() {
        let mut s = CounterSet::default();
        let far = WINDOW_WORDS * 64 * 3;
        for c in [0, 1, far, far + 1] {
            s.insert(c);
        }
        assert!(!s.contains(0));
        assert_eq!(s.len(), 2);
        assert!(s.words.len() as u64 <= WINDOW_WORDS);
        assert_eq!(s.range(0..far + 10).count(), 2);
    }
}
