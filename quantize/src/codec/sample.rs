//! The training sample.

use crate::rng::SplitMix64;

/// `want` distinct row numbers from `0..rows`, ascending (so the sample is read in order), drawn
/// uniformly with Knuth's selection sampling; all rows when `want >= rows`.
pub(crate) fn sample_rows(rows: usize, want: usize, seed: u64) -> Vec<usize> {
    if want >= rows {
        return (0..rows).collect();
    }
    let mut rng = SplitMix64::new(seed, 0x5A3B_1E00);
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
