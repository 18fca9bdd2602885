//! A seeded random orthogonal rotation that costs `O(D log D)`: rounds of random sign flips
//! and fast Walsh-Hadamard transforms, as RaBitQ needs to make a residual's coordinates look
//! like those of a random unit vector.
//!
//! A dense `D x D` rotation costs as much per query as scanning `D` vectors; a Hadamard
//! transform needs a power-of-two length. Vectors are zero-padded to `padded` (a multiple of
//! 64) and, where that is not a power of two, each round transforms the leading `block`
//! coordinates (the largest power of two that fits) and then the trailing `block`: the two
//! overlap, so every coordinate mixes with every other within a round. Each transform is
//! preceded by a flip of its block's signs by a stored random pattern and scaled by
//! `1/sqrt(block)`, so every step, and their composition, is orthogonal.

use crate::rng::SplitMix64;

/// Coordinates are padded to a multiple of this (so codes pack into whole 64-bit words).
pub const PAD: usize = 64;

/// The length `dim` is padded to.
pub const fn padded_dim(dim: usize) -> usize {
    dim.div_ceil(PAD) * PAD
}

/// A structured random rotation of `padded` coordinates (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Rotation {
    dim: usize,
    padded: usize,
    block: usize,
    rounds: usize,
    /// One bit per coordinate of each transform's block, transform after transform, LSB first:
    /// a set bit negates the coordinate.
    signs: Vec<u8>,
}

impl Rotation {
    /// A rotation of `dim`-d vectors drawn from `seed`.
    pub(crate) fn random(dim: usize, rounds: usize, seed: u64) -> Self {
        let padded = padded_dim(dim);
        let bytes = Self::sign_bytes(padded, rounds);
        let mut rng = SplitMix64::new(seed, 0x5261_4269_7451);
        let signs = (0..bytes).map(|_| rng.next_u64() as u8).collect();
        Rotation { dim, padded, block: block_len(padded), rounds, signs }
    }

    /// A rotation from its stored sign bits.
    pub(crate) fn from_parts(dim: usize, rounds: usize, signs: Vec<u8>) -> Option<Self> {
        let padded = padded_dim(dim);
        (dim > 0 && rounds > 0 && signs.len() == Self::sign_bytes(padded, rounds))
            .then(|| Rotation { dim, padded, block: block_len(padded), rounds, signs })
    }

    /// Bytes of sign bits a rotation of `padded` coordinates keeps for `rounds` rounds.
    pub(crate) fn sign_bytes(padded: usize, rounds: usize) -> usize {
        let block = block_len(padded);
        let passes = if block == padded { 1 } else { 2 };
        rounds * passes * block / 8
    }

    /// Length of the rotated vectors.
    pub fn padded(&self) -> usize {
        self.padded
    }

    /// Rounds of flips and transforms.
    pub fn rounds(&self) -> usize {
        self.rounds
    }

    /// The stored sign bits.
    pub fn signs(&self) -> &[u8] {
        &self.signs
    }

    /// Each transform's coordinates and sign bits, in order: per round the leading block, then
    /// (when the padded length is not a power of two) the trailing one.
    fn passes(&self) -> impl DoubleEndedIterator<Item = (std::ops::Range<usize>, &[u8])> {
        let (padded, block) = (self.padded, self.block);
        self.signs.chunks_exact(block / 8).enumerate().map(move |(pass, signs)| {
            let range =
                if block == padded || pass % 2 == 0 { 0..block } else { padded - block..padded };
            (range, signs)
        })
    }

    /// Rotates `x` (`dim` floats) into `out` (`padded` floats).
    ///
    /// # Panics
    /// If the lengths are not `dim` and `padded`.
    pub fn apply(&self, x: &[f32], out: &mut [f32]) {
        assert_eq!(x.len(), self.dim, "rotate: input has the wrong dimension");
        assert_eq!(out.len(), self.padded, "rotate: output has the wrong length");
        out[..self.dim].copy_from_slice(x);
        out[self.dim..].fill(0.0);
        let scale = 1.0 / (self.block as f32).sqrt();
        for (range, signs) in self.passes() {
            let block = &mut out[range];
            flip(block, signs, scale);
            fwht(block);
        }
    }

    /// The inverse rotation: `out` (`dim` floats) is the first `dim` coordinates of `Rᵀ y`.
    ///
    /// # Panics
    /// If the lengths are not `padded` and `dim`.
    pub fn apply_inverse(&self, y: &[f32], out: &mut [f32]) {
        assert_eq!(y.len(), self.padded, "rotate back: input has the wrong length");
        assert_eq!(out.len(), self.dim, "rotate back: output has the wrong dimension");
        let mut work = y.to_vec();
        let scale = 1.0 / (self.block as f32).sqrt();
        for (range, signs) in self.passes().rev() {
            let block = &mut work[range];
            fwht(block);
            flip(block, signs, scale);
        }
        out.copy_from_slice(&work[..self.dim]);
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.signs.len()
    }
}

/// The largest power of two no larger than `padded`.
fn block_len(padded: usize) -> usize {
    1 << (usize::BITS - 1 - padded.leading_zeros())
}

/// Multiplies each coordinate by `scale`, negated where its sign bit is set.
fn flip(block: &mut [f32], signs: &[u8], scale: f32) {
    for (chunk, &bits) in block.chunks_exact_mut(8).zip(signs) {
        for (bit, x) in chunk.iter_mut().enumerate() {
            let negate = (bits >> bit) & 1 == 1;
            *x *= if negate { -scale } else { scale };
        }
    }
}

/// The unnormalized fast Walsh-Hadamard transform, in place (`block.len()` a power of two).
fn fwht(block: &mut [f32]) {
    let mut half = 1;
    while half < block.len() {
        for pair in block.chunks_exact_mut(2 * half) {
            let (low, high) = pair.split_at_mut(half);
            for (a, b) in low.iter_mut().zip(high.iter_mut()) {
                let (sum, difference) = (*a + *b, *a - *b);
                *a = sum;
                *b = difference;
            }
        }
        half *= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotations_keep_norms_and_invert() {
        for dim in [1, 7, 64, 100, 128, 384, 768, 1000] {
            let rotation = Rotation::random(dim, 3, dim as u64);
            let mut rng = SplitMix64::new(9, dim as u64);
            let x: Vec<f32> = (0..dim).map(|_| rng.normal() as f32).collect();
            let mut y = vec![0.0; rotation.padded()];
            rotation.apply(&x, &mut y);
            let norm = |v: &[f32]| v.iter().map(|&a| f64::from(a).powi(2)).sum::<f64>();
            let (before, after) = (norm(&x), norm(&y));
            assert!((before - after).abs() <= 1e-4 * before, "dim {dim}: {before} -> {after}");
            let mut back = vec![0.0; dim];
            rotation.apply_inverse(&y, &mut back);
            for (a, b) in x.iter().zip(&back) {
                assert!((a - b).abs() <= 1e-4, "dim {dim}: {a} came back as {b}");
            }
        }
    }

    #[test]
    fn a_basis_vector_spreads_over_every_coordinate() {
        // What the rotation is for: one large coordinate becomes many small ones, and the
        // leading and trailing blocks of a non-power-of-two length both mix it.
        for dim in [128, 768] {
            let rotation = Rotation::random(dim, 3, 1);
            let mut x = vec![0.0; dim];
            x[dim - 1] = 1.0;
            let mut y = vec![0.0; rotation.padded()];
            rotation.apply(&x, &mut y);
            // A random unit vector's coordinates are about 1/sqrt(D); its largest of D near
            // 3/sqrt(D).
            let largest = y.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let nonzero = y.iter().filter(|v| v.abs() > 1e-6).count();
            let limit = 4.5 / (y.len() as f32).sqrt();
            assert!(largest < limit, "dim {dim}: a coordinate kept {largest}");
            assert!(nonzero > dim * 9 / 10, "dim {dim}: only {nonzero} coordinates touched");
        }
    }

    #[test]
    fn stored_signs_rebuild_the_same_rotation() {
        let rotation = Rotation::random(300, 2, 5);
        let again = Rotation::from_parts(300, 2, rotation.signs().to_vec()).unwrap();
        assert_eq!(rotation, again);
        assert!(Rotation::from_parts(300, 2, vec![0; 3]).is_none());
        assert!(Rotation::from_parts(0, 2, vec![]).is_none());
        assert_eq!(block_len(768), 512);
        assert_eq!(block_len(1024), 1024);
        assert_eq!(Rotation::sign_bytes(768, 3), 3 * 2 * 64);
        assert_eq!(Rotation::sign_bytes(128, 3), 3 * 16);
    }
}
