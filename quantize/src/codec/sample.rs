//! The training sample and the seeded generator behind it.

/// SplitMix64: tiny, seedable, and good enough for sampling and k-means++ draws.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64, stream: u64) -> Self {
        let mut rng = Rng(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        rng.next_u64();
        rng
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n`, `n > 0`.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

/// `want` distinct row numbers from `0..rows`, ascending (so the sample is read in order), drawn
/// uniformly with Knuth's selection sampling; all rows when `want >= rows`.
pub(crate) fn sample_rows(rows: usize, want: usize, seed: u64) -> Vec<usize> {
    if want >= rows {
        return (0..rows).collect();
    }
    let mut rng = Rng::new(seed, 0x5A3B_1E00);
    let mut chosen = Vec::with_capacity(want);
    for row in 0..rows {
        let needed = want - chosen.len();
        if needed == 0 {
            break;
        }
        // Select this row with probability needed / remaining.
        if rng.below(rows - row) < needed {
            chosen.push(row);
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_distinct_sorted_and_of_the_asked_size() {
        for (rows, want) in [(10, 3), (1000, 999), (5, 5), (5, 9), (100_000, 16_384)] {
            let sample = sample_rows(rows, want, 7);
            assert_eq!(sample.len(), want.min(rows));
            assert!(sample.windows(2).all(|w| w[0] < w[1]));
            assert!(sample.iter().all(|&r| r < rows));
        }
        assert_eq!(sample_rows(1000, 10, 1), sample_rows(1000, 10, 1));
        assert_ne!(sample_rows(1000, 10, 1), sample_rows(1000, 10, 2));
    }

    #[test]
    fn samples_cover_the_whole_range() {
        let sample = sample_rows(100_000, 1000, 3);
        let in_last_half = sample.iter().filter(|&&r| r >= 50_000).count();
        assert!((400..600).contains(&in_last_half), "{in_last_half} of 1000 in the last half");
    }
}
