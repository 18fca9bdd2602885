//! Vector codecs: calibrated scalar quantization (SQ8, INT4), product quantization (PQ, residual
//! PQ) and RaBitQ.
//!
//! A [`Codec`] is trained on a sample of rows, then encodes each vector to a short code and
//! answers *asymmetric* distances: an `f32` query against codes, through a [`PreparedQuery`]
//! built once per query (a lookup table for PQ, folded scales and offsets for SQ). Every
//! distance is the metric's distance between the query and the *decoded* code, so ranking by
//! codes approximates ranking by vectors, and an exact rerank of the best candidates recovers
//! the rest. (Cosine is scored a little differently; see below. RaBitQ's estimate differs from
//! its decoded vector's distance by a per-code constant, and comes with an error bound:
//! `rabitq.rs`.)
//!
//! | codec | bytes per vector | trained | distance kernel |
//! |-------|------------------|---------|-----------------|
//! | [`Codec::Sq8`] | `dim` | per-dimension range from the 0.1% to the 99.9% quantile (inner product: min to max) | widen bytes to f32; 2 FMAs per dimension (L2, cosine) or 1 (inner product) |
//! | [`Codec::Int4`] | `⌈dim / 2⌉` | as SQ8, 16 levels, 1% clipped per tail | widen nibbles to f32; as SQ8 |
//! | [`Codec::Pq`] | `subspaces` | k-means (k-means++ then Lloyd) per sub-space, 256 centroids | one gathered table lookup per sub-space |
//! | [`Codec::Rpq`] | `5 + subspaces` | 256 coarse centroids, then PQ of the residuals | a coarse-table entry plus PQ's lookups |
//! | [`Codec::RaBitQ`] | `8 + dim/8` (1 bit), `16 + bits·dim/8` (dimension padded to 64) | up to 256 coarse centroids, a seeded rotation | SQ8/INT4 kernels, or summed query levels per bit plane |
//!
//! Cosine codecs expect unit-normalized rows and queries, as [`Metric::Cosine`] does, and score a
//! code by `½‖q - x̂‖²` rather than `1 - q·x̂`. The two agree when the decoded `x̂` has unit norm,
//! and rank the same true neighbours, but their errors differ: with `x̂ = x + e`, the first is
//! off by `(x - q)·e + ½‖e‖²`, which shrinks as `x` nears the query, while the second is off by
//! `q·e`, which does not. On 32-d clustered cosine data (`cargo xtask gen`), code-only recall@10
//! went from 0.86 to 0.98 for SQ8 and from 0.40 to 0.80 for INT4 by this alone. Inner product
//! cannot use it (norms matter there).
//!
//! Codebooks serialize to a versioned, checksummed byte format ([`Codec::to_bytes`],
//! `docs/format/codebook.md`).
//!
//! ```
//! use strata_quantize::{Codec, CodecKind, Metric, QueryScratch, TrainOptions};
//!
//! let dim = 8;
//! let rows: Vec<f32> = (0..64 * dim).map(|i| ((i * 37) % 101) as f32 / 10.0).collect();
//! let codec = Codec::train(CodecKind::Sq8, Metric::L2, dim, &rows, &TrainOptions::default())?;
//!
//! let mut codes = vec![0u8; 64 * codec.code_len()];
//! codec.encode_batch(&rows, &mut codes);
//!
//! let mut scratch = QueryScratch::default();
//! let query = codec.prepare(&rows[..dim], &mut scratch);
//! let mut distances = vec![0.0; 64];
//! query.distances(&codes, &mut distances);
//! let nearest = (0..64).min_by(|&a, &b| distances[a].total_cmp(&distances[b])).unwrap();
//! assert_eq!(nearest, 0);
//! # Ok::<(), strata_quantize::QuantizeError>(())
//! ```

mod codebook;
mod fastscan;
mod kernels;
mod kmeans;
mod pq;
mod rabitq;
pub mod reference;
mod rotation;
mod rpq;
mod sample;
mod sq;

use std::fmt;
use std::str::FromStr;

pub use codebook::{CODEBOOK_MAGIC, CODEBOOK_MAJOR};
pub use fastscan::{FastScanCodes, FastScanQuery};
pub use kernels::FASTSCAN_BLOCK;
pub use pq::{CENTROIDS, ProductQuantizer};
pub use rabitq::{
    Factors, RABITQ_CENTROID_STEP, RABITQ_CENTROIDS, RABITQ_CONFIDENCE, RaBitQ, rabitq_prefix_len,
};
pub use rotation::{Rotation, padded_dim};
pub use rpq::{RPQ_PREFIX, ResidualPq};
pub use sq::ScalarQuantizer;

use crate::{Kernels, Metric, QuantizeError};
use kernels::{CodeOp, CodeSimd};

/// Which codec to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodecKind {
    /// 8 bits per dimension.
    Sq8,
    /// 4 bits per dimension, two dimensions per byte.
    Int4,
    /// Product quantization: `subspaces` codes of 8 bits, one per contiguous slice of the
    /// dimensions (slices differ in length by at most one when they do not divide evenly).
    Pq {
        /// Number of sub-spaces, in `1..=dim`: the code length in bytes.
        subspaces: usize,
    },
    /// Residual product quantization: the nearest of 256 coarse centroids, a correction term,
    /// and a PQ code of `subspaces` bytes for the vector minus its centroid
    /// ([`RPQ_PREFIX`]` + subspaces` bytes in all). Much finer than PQ of the same length on
    /// clustered data.
    Rpq {
        /// Sub-spaces of the residual quantizer, in `1..=dim`.
        subspaces: usize,
    },
    /// RaBitQ: the nearest of up to 256 coarse centroids, three f32 factors and `bits` bits per
    /// coordinate of the randomly rotated residual (coordinates padded to a multiple of 64),
    /// with an unbiased distance estimate and an error bound ([`PreparedQuery::error_bound`]).
    /// 1 bit is the original RaBitQ, 2-8 its extension.
    RaBitQ {
        /// Bits per coordinate, in `1..=8`.
        bits: u8,
    },
}

impl CodecKind {
    /// Stable on-disk code: 1 = SQ8, 2 = INT4, 3 = PQ, 4 = residual PQ, 5 = RaBitQ.
    pub const fn code(self) -> u8 {
        match self {
            CodecKind::Sq8 => 1,
            CodecKind::Int4 => 2,
            CodecKind::Pq { .. } => 3,
            CodecKind::Rpq { .. } => 4,
            CodecKind::RaBitQ { .. } => 5,
        }
    }

    /// Short name: `"sq8"`, `"int4"`, `"pq"`, `"rpq"` or `"rabitq"`.
    pub const fn family(self) -> &'static str {
        match self {
            CodecKind::Sq8 => "sq8",
            CodecKind::Int4 => "int4",
            CodecKind::Pq { .. } => "pq",
            CodecKind::Rpq { .. } => "rpq",
            CodecKind::RaBitQ { .. } => "rabitq",
        }
    }

    /// Bytes per encoded vector of dimension `dim`.
    pub const fn code_len(self, dim: usize) -> usize {
        match self {
            CodecKind::Sq8 => dim,
            CodecKind::Int4 => dim.div_ceil(2),
            CodecKind::Pq { subspaces } => subspaces,
            CodecKind::Rpq { subspaces } => RPQ_PREFIX + subspaces,
            CodecKind::RaBitQ { bits } => RaBitQ::code_len(dim, bits),
        }
    }
}

impl fmt::Display for CodecKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecKind::Pq { subspaces } => write!(f, "pq{subspaces}"),
            CodecKind::Rpq { subspaces } => write!(f, "rpq{subspaces}"),
            CodecKind::RaBitQ { bits } => write!(f, "rabitq{bits}"),
            other => f.pad(other.family()),
        }
    }
}

impl FromStr for CodecKind {
    type Err = QuantizeError;

    /// Parses `"sq8"`, `"int4"`, `"pq<subspaces>"` (`"pq32"`), `"rpq<subspaces>"` or
    /// `"rabitq<bits>"` (`"rabitq4"`), ignoring ASCII case.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let lower = name.to_ascii_lowercase();
        let unknown = || QuantizeError::UnknownCodec { name: name.to_owned() };
        match lower.as_str() {
            "sq8" => Ok(CodecKind::Sq8),
            "int4" => Ok(CodecKind::Int4),
            _ => {
                if let Some(bits) = lower.strip_prefix("rabitq") {
                    let bits = bits.parse().map_err(|_| unknown())?;
                    return Ok(CodecKind::RaBitQ { bits });
                }
                if let Some(subspaces) = lower.strip_prefix("rpq") {
                    let subspaces = subspaces.parse().map_err(|_| unknown())?;
                    return Ok(CodecKind::Rpq { subspaces });
                }
                let subspaces = lower.strip_prefix("pq").ok_or_else(unknown)?;
                let subspaces = subspaces.parse().map_err(|_| unknown())?;
                Ok(CodecKind::Pq { subspaces })
            }
        }
    }
}

/// How to train a codec. The defaults suit data sets from thousands to billions of rows.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOptions {
    sample_rows: Option<usize>,
    iterations: usize,
    seed: u64,
    threads: Option<usize>,
    clip_tail: Option<f64>,
    coarse_centroids: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            sample_rows: None,
            iterations: 20,
            seed: 0x5EED_C0DE,
            threads: None,
            clip_tail: None,
            coarse_centroids: RABITQ_CENTROIDS,
        }
    }
}

impl TrainOptions {
    /// Rows drawn (uniformly, without replacement) from the input to train on. Default: 32,768
    /// for scalar codecs (the clipping quantiles need the tails), 16,384 for PQ (64 rows per
    /// centroid; training time grows linearly with it).
    pub fn sample_rows(mut self, rows: usize) -> Self {
        self.sample_rows = Some(rows);
        self
    }

    /// Most Lloyd iterations per PQ sub-space (it stops early once no assignment changes).
    /// Default 20.
    pub fn iterations(mut self, iterations: usize) -> Self {
        self.iterations = iterations;
        self
    }

    /// Seed for the sample and the k-means initialisation: the same seed, input and options
    /// give the same codebook, whatever the thread count.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Threads to train on. Default: every core.
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads.max(1));
        self
    }

    /// Scalar codecs: the fraction of each tail of every dimension's sampled values left
    /// outside the grid (clamped to its ends), in `[0, 0.5)`. Default: 0.001 for SQ8 and 0.01
    /// for INT4. Inner product by default clips nothing and takes the range over every row, not
    /// only the sample, since that metric ranks by the extremes; setting a tail here (even 0)
    /// uses the sample's quantiles instead, as for the other metrics.
    ///
    /// # Panics
    /// If `tail` is not in `[0, 0.5)`.
    pub fn clip_tail(mut self, tail: f64) -> Self {
        assert!((0.0..0.5).contains(&tail), "clip_tail must be in [0, 0.5), got {tail}");
        self.clip_tail = Some(tail);
        self
    }

    /// RaBitQ: coarse centroids to assign residuals to, a multiple of 64 up to 256 (the
    /// default). Fewer make each query's centroid table cheaper and the codes coarser.
    ///
    /// # Panics
    /// If `k` is not one of 64, 128, 192, 256.
    pub fn coarse_centroids(mut self, k: usize) -> Self {
        assert!(
            rabitq::valid_centroid_count(k),
            "coarse_centroids must be 64, 128, 192 or 256, got {k}"
        );
        self.coarse_centroids = k;
        self
    }

    pub(crate) fn coarse_centroid_count(&self) -> usize {
        self.coarse_centroids
    }

    pub(crate) fn clip_tail_value(&self) -> Option<f64> {
        self.clip_tail
    }

    pub(crate) fn thread_count(&self) -> usize {
        self.threads.unwrap_or_else(crate::parallel::current_threads)
    }

    pub(crate) fn seed_value(&self) -> u64 {
        self.seed
    }

    pub(crate) fn iteration_count(&self) -> usize {
        self.iterations
    }

    pub(crate) fn sample_or(&self, default: usize) -> usize {
        self.sample_rows.unwrap_or(default).max(1)
    }
}

/// A trained codec. Closed over its kinds so that segment formats and search loops
/// match on it without dynamic dispatch.
#[derive(Debug, Clone, PartialEq)]
pub enum Codec {
    /// 8-bit scalar quantization.
    Sq8(ScalarQuantizer),
    /// 4-bit scalar quantization.
    Int4(ScalarQuantizer),
    /// Product quantization with 256 centroids per sub-space.
    Pq(ProductQuantizer),
    /// Residual product quantization.
    Rpq(ResidualPq),
    /// RaBitQ codes of 1-8 bits per coordinate.
    RaBitQ(RaBitQ),
}

impl Codec {
    /// Trains a codec of `kind` for `metric` on `rows` (row-major, `dim` floats each).
    ///
    /// # Errors
    /// - [`QuantizeError::InvalidParameter`] if `dim` is 0, `rows.len()` is not a multiple of
    ///   `dim`, or PQ's sub-spaces are not in `1..=dim`;
    /// - [`QuantizeError::TooFewRows`] with no rows, or fewer than 256 for PQ;
    /// - [`QuantizeError::NonFiniteTrainingValue`] if any row holds NaN or ±inf.
    pub fn train(
        kind: CodecKind,
        metric: Metric,
        dim: usize,
        rows: &[f32],
        options: &TrainOptions,
    ) -> Result<Codec, QuantizeError> {
        if dim == 0 {
            return Err(invalid("dim", "must be at least 1".into()));
        }
        if !rows.len().is_multiple_of(dim) {
            let problem = format!("{} floats is not a whole number of {dim}-d rows", rows.len());
            return Err(invalid("rows", problem));
        }
        if let Some(at) = rows.iter().position(|x| !x.is_finite()) {
            return Err(QuantizeError::NonFiniteTrainingValue {
                row: at / dim,
                index: at % dim,
                value: rows[at],
            });
        }
        match kind {
            CodecKind::Sq8 => ScalarQuantizer::train(8, metric, dim, rows, options).map(Codec::Sq8),
            CodecKind::Int4 => {
                ScalarQuantizer::train(4, metric, dim, rows, options).map(Codec::Int4)
            }
            CodecKind::Pq { subspaces } => {
                ProductQuantizer::train(metric, dim, subspaces, rows, options).map(Codec::Pq)
            }
            CodecKind::Rpq { subspaces } => {
                ResidualPq::train(metric, dim, subspaces, rows, options).map(Codec::Rpq)
            }
            CodecKind::RaBitQ { bits } => {
                RaBitQ::train(metric, dim, bits, rows, options).map(Codec::RaBitQ)
            }
        }
    }

    /// Which kind of codec this is.
    pub fn kind(&self) -> CodecKind {
        match self {
            Codec::Sq8(_) => CodecKind::Sq8,
            Codec::Int4(_) => CodecKind::Int4,
            Codec::Pq(pq) => CodecKind::Pq { subspaces: pq.subspaces() },
            Codec::Rpq(rpq) => CodecKind::Rpq { subspaces: rpq.subspaces() },
            Codec::RaBitQ(rabitq) => CodecKind::RaBitQ { bits: rabitq.bits() },
        }
    }

    /// The metric distances are computed for.
    pub fn metric(&self) -> Metric {
        match self {
            Codec::Sq8(sq) | Codec::Int4(sq) => sq.metric(),
            Codec::Pq(pq) => pq.metric(),
            Codec::Rpq(rpq) => rpq.metric(),
            Codec::RaBitQ(rabitq) => rabitq.metric(),
        }
    }

    /// Dimension of the vectors.
    pub fn dim(&self) -> usize {
        match self {
            Codec::Sq8(sq) | Codec::Int4(sq) => sq.dim(),
            Codec::Pq(pq) => pq.dim(),
            Codec::Rpq(rpq) => rpq.dim(),
            Codec::RaBitQ(rabitq) => rabitq.dim(),
        }
    }

    /// Bytes per encoded vector.
    pub fn code_len(&self) -> usize {
        self.kind().code_len(self.dim())
    }

    /// Bytes this codec keeps in memory (its codebook and derived tables).
    pub fn memory_bytes(&self) -> usize {
        match self {
            Codec::Sq8(sq) | Codec::Int4(sq) => sq.memory_bytes(),
            Codec::Pq(pq) => pq.memory_bytes(),
            Codec::Rpq(rpq) => rpq.memory_bytes(),
            Codec::RaBitQ(rabitq) => rabitq.memory_bytes(),
        }
    }

    /// Encodes `vector` into `code`. Components outside the trained range are clamped to it.
    ///
    /// # Panics
    /// If `vector.len() != dim()` or `code.len() != code_len()`.
    pub fn encode(&self, vector: &[f32], code: &mut [u8]) {
        assert_eq!(vector.len(), self.dim(), "encode: vector has the wrong dimension");
        assert_eq!(code.len(), self.code_len(), "encode: code has the wrong length");
        match self {
            Codec::Sq8(sq) | Codec::Int4(sq) => sq.encode(vector, code),
            Codec::Pq(pq) => pq.encode(vector, code),
            Codec::Rpq(rpq) => rpq.encode(vector, code),
            Codec::RaBitQ(rabitq) => rabitq.encode(vector, code),
        }
    }

    /// Encodes every row of `rows` into consecutive codes of `codes`.
    ///
    /// # Panics
    /// If the lengths are not `n * dim()` and `n * code_len()` for the same `n`.
    pub fn encode_batch(&self, rows: &[f32], codes: &mut [u8]) {
        let (dim, code_len) = (self.dim(), self.code_len());
        assert!(
            rows.len().is_multiple_of(dim) && rows.len() / dim * code_len == codes.len(),
            "encode_batch: {} floats and {} code bytes are not n rows of {dim} and n codes of {code_len}",
            rows.len(),
            codes.len(),
        );
        for (row, code) in rows.chunks_exact(dim).zip(codes.chunks_exact_mut(code_len)) {
            self.encode(row, code);
        }
    }

    /// The vector `code` stands for.
    ///
    /// # Panics
    /// If `code.len() != code_len()` or `out.len() != dim()`.
    pub fn decode(&self, code: &[u8], out: &mut [f32]) {
        assert_eq!(code.len(), self.code_len(), "decode: code has the wrong length");
        assert_eq!(out.len(), self.dim(), "decode: output has the wrong dimension");
        match self {
            Codec::Sq8(sq) | Codec::Int4(sq) => sq.decode(code, out),
            Codec::Pq(pq) => pq.decode(code, out),
            Codec::Rpq(rpq) => rpq.decode(code, out),
            Codec::RaBitQ(rabitq) => rabitq.decode(code, out),
        }
    }

    /// Prepares `query` for asymmetric distances to codes, in `scratch` (reused, so a
    /// steady-state search allocates nothing). Cosine queries must be unit-normalized.
    ///
    /// # Panics
    /// If `query.len() != dim()`.
    pub fn prepare<'a>(
        &'a self,
        query: &[f32],
        scratch: &'a mut QueryScratch,
    ) -> PreparedQuery<'a> {
        assert_eq!(query.len(), self.dim(), "prepare: query has the wrong dimension");
        let (form, bias) = match self {
            Codec::Sq8(sq) | Codec::Int4(sq) => sq.prepare(query, scratch),
            Codec::Pq(pq) => pq.prepare(query, scratch),
            Codec::Rpq(rpq) => rpq.prepare(query, scratch),
            Codec::RaBitQ(rabitq) => rabitq.prepare(query, scratch),
        };
        PreparedQuery {
            code_len: self.code_len(),
            form,
            bias,
            primary: &scratch.primary,
            secondary: &scratch.secondary,
            bits: &scratch.bits,
            levels: &scratch.levels,
        }
    }

    /// Serializes the codebook (`docs/format/codebook.md`).
    pub fn to_bytes(&self) -> Vec<u8> {
        codebook::encode(self)
    }

    /// Reads a codebook written by [`to_bytes`](Self::to_bytes), checking its checksums,
    /// version and every field.
    ///
    /// # Errors
    /// [`QuantizeError::CorruptCodebook`] for damaged or truncated bytes, and
    /// [`QuantizeError::UnsupportedCodebookVersion`] for a major version this build does not
    /// read.
    pub fn from_bytes(bytes: &[u8]) -> Result<Codec, QuantizeError> {
        codebook::decode(bytes)
    }
}

pub(crate) fn invalid(name: &'static str, problem: String) -> QuantizeError {
    QuantizeError::InvalidParameter { name, problem }
}

/// Reusable buffers behind a [`PreparedQuery`].
#[derive(Debug, Clone, Default)]
pub struct QueryScratch {
    primary: Vec<f32>,
    secondary: Vec<f32>,
    bits: Vec<u64>,
    levels: Vec<u8>,
}

/// How a prepared query's buffers are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// `Σ (primary[i] - secondary[i]·code[i])²` over 8-bit codes.
    Sq8L2,
    /// `bias + Σ primary[i]·code[i]` over 8-bit codes.
    Sq8Dot,
    /// As `Sq8L2`, over packed nibbles.
    Int4L2,
    /// As `Sq8Dot`, over packed nibbles.
    Int4Dot,
    /// `bias + Σ primary[j·256 + code[j]]`.
    PqTable,
    /// `secondary[code[0]] + bias·f32(code[1..5]) + Σ primary[j·256 + code[5 + j]]`: residual
    /// PQ, whose `bias` weighs the stored correction.
    RpqTable,
    /// `secondary[c] + add + mul·(Σ u_i·primary[i] - bias)` over a RaBitQ code of `bits` bits
    /// per coordinate (see `rabitq.rs`).
    RaBitQ {
        /// Bits per coordinate.
        bits: u8,
    },
}

/// A query prepared against one codec: computes its distance to that codec's codes.
#[derive(Debug, Clone, Copy)]
pub struct PreparedQuery<'a> {
    code_len: usize,
    form: Form,
    bias: f32,
    primary: &'a [f32],
    secondary: &'a [f32],
    /// RaBitQ: the quantized query's bit planes.
    bits: &'a [u64],
    /// RaBitQ: the same levels, one byte per coordinate.
    levels: &'a [u8],
}

impl PreparedQuery<'_> {
    /// Distance from the query to the vector `code` stands for.
    ///
    /// # Panics
    /// If `code.len()` is not the codec's code length.
    #[inline]
    pub fn distance(&self, code: &[u8]) -> f32 {
        self.distance_on(Kernels::detected(), code)
    }

    /// [`distance`](Self::distance) on a chosen instruction-set path (for tests and benchmarks).
    #[inline]
    pub fn distance_on(&self, kernels: &Kernels, code: &[u8]) -> f32 {
        assert_eq!(code.len(), self.code_len, "distance: code has the wrong length");
        kernels::dispatch(kernels, Batch { query: self, codes: code, out: &mut [0.0] })[0]
    }

    /// Distances to each of `out.len()` consecutive codes in `codes`, dispatched once.
    ///
    /// # Panics
    /// If `codes.len() != out.len() * code_len`.
    #[inline]
    pub fn distances(&self, codes: &[u8], out: &mut [f32]) {
        self.distances_on(Kernels::detected(), codes, out);
    }

    /// [`distances`](Self::distances) on a chosen instruction-set path.
    #[inline]
    pub fn distances_on(&self, kernels: &Kernels, codes: &[u8], out: &mut [f32]) {
        assert_eq!(
            codes.len(),
            out.len() * self.code_len,
            "distances: codes do not hold out.len() codes"
        );
        kernels::dispatch(kernels, Batch { query: self, codes, out });
    }

    /// Distances to the codes of `rows` in `codes`, every row's code of the codec laid end to
    /// end (`out[i]` for row `rows[i]`), dispatched once. For graph searches, whose neighbours'
    /// codes are scattered: no copy into a contiguous run first.
    ///
    /// # Panics
    /// If `rows.len() != out.len()`, `codes.len()` is not a whole number of codes, or a row is
    /// out of range.
    #[inline]
    pub fn distances_of_rows(&self, codes: &[u8], rows: &[u32], out: &mut [f32]) {
        self.distances_of_rows_on(Kernels::detected(), codes, rows, out);
    }

    /// [`distances_of_rows`](Self::distances_of_rows) on a chosen instruction-set path.
    #[inline]
    pub fn distances_of_rows_on(
        &self,
        kernels: &Kernels,
        codes: &[u8],
        rows: &[u32],
        out: &mut [f32],
    ) {
        assert_eq!(rows.len(), out.len(), "distances_of_rows: one output per row");
        assert!(
            codes.len().is_multiple_of(self.code_len),
            "distances_of_rows: codes are not whole codes"
        );
        kernels::dispatch(kernels, Gather { query: self, codes, rows, out });
    }

    /// The error bound of a RaBitQ code's distance at confidence 1: the true distance lies
    /// within `distance(code) ± ε·bound` with high probability for `ε` near
    /// [`RABITQ_CONFIDENCE`] (1.9), and almost surely for larger `ε`. `None` for codecs that
    /// give no bound.
    ///
    /// # Panics
    /// If `code.len()` is not the codec's code length.
    #[inline]
    pub fn error_bound(&self, code: &[u8]) -> Option<f32> {
        assert_eq!(code.len(), self.code_len, "error_bound: code has the wrong length");
        match self.form {
            Form::RaBitQ { bits } => Some(rabitq::bound(code, bits, self.secondary)),
            _ => None,
        }
    }

    /// Whether [`error_bound`](Self::error_bound) gives bounds.
    pub fn has_bounds(&self) -> bool {
        matches!(self.form, Form::RaBitQ { .. })
    }

    /// The scalar reference of [`distance`](Self::distance): same formula, one plain loop.
    pub fn distance_reference(&self, code: &[u8]) -> f32 {
        assert_eq!(code.len(), self.code_len, "distance: code has the wrong length");
        reference::prepared_distance(self, code)
    }
}

/// Scores consecutive codes into `out`, four rows per kernel call and then the rest one at a
/// time. A macro rather than a function because the kernel expression is instantiated at two
/// row counts, which a closure cannot be.
macro_rules! score_rows {
    ($codes:expr, $code_len:expr, $out:expr, |$rows:ident| $kernel:expr) => {{
        let (codes, code_len, out): (&[u8], usize, &mut [f32]) = ($codes, $code_len, $out);
        let mut quads = codes.chunks_exact(4 * code_len);
        let mut slots = out.chunks_exact_mut(4);
        for (quad, slots) in (&mut quads).zip(&mut slots) {
            let (a, rest) = quad.split_at(code_len);
            let (b, rest) = rest.split_at(code_len);
            let (c, d) = rest.split_at(code_len);
            let $rows = [a, b, c, d];
            slots.copy_from_slice(&$kernel);
        }
        for (code, slot) in quads.remainder().chunks_exact(code_len).zip(slots.into_remainder()) {
            let $rows = [code];
            *slot = $kernel[0];
        }
    }};
}

/// Distances from one prepared query to a run of codes, at one level.
struct Batch<'q, 'o> {
    query: &'q PreparedQuery<'q>,
    codes: &'q [u8],
    out: &'o mut [f32],
}

impl<'o> CodeOp for Batch<'_, 'o> {
    type Output = &'o mut [f32];

    #[inline(always)]
    fn run<S: CodeSimd>(self, simd: S) -> &'o mut [f32] {
        let PreparedQuery { code_len, form, bias, primary, secondary, bits, levels } = *self.query;
        let codes = self.codes;
        let out = &mut *self.out;
        match form {
            Form::Sq8L2 => {
                score_rows!(codes, code_len, out, |rows| kernels::sq8_l2(
                    simd, primary, secondary, rows
                ));
            }
            Form::Sq8Dot => {
                score_rows!(codes, code_len, out, |rows| kernels::sq8_dot(simd, primary, rows)
                    .map(|d| bias + d));
            }
            Form::Int4L2 => {
                score_rows!(codes, code_len, out, |rows| kernels::int4_l2(
                    simd, primary, secondary, rows
                ));
            }
            Form::Int4Dot => {
                score_rows!(codes, code_len, out, |rows| kernels::int4_dot(simd, primary, rows)
                    .map(|d| bias + d));
            }
            Form::PqTable => {
                for (code, d) in codes.chunks_exact(code_len).zip(out.iter_mut()) {
                    *d = bias + kernels::pq_sum(simd, primary, code);
                }
            }
            Form::RpqTable => {
                for (code, d) in codes.chunks_exact(code_len).zip(out.iter_mut()) {
                    let (prefix, residual) = code.split_at(RPQ_PREFIX);
                    let correction =
                        f32::from_le_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]);
                    *d = secondary[usize::from(prefix[0])]
                        + bias * correction
                        + kernels::pq_sum(simd, primary, residual);
                }
            }
            Form::RaBitQ { bits: code_bits } => {
                let layout = rabitq::layout_of(code_len, code_bits);
                score_rows!(codes, code_len, out, |rows| rabitq::score_codes(
                    simd,
                    layout,
                    rabitq::Query { bias, primary, secondary, bits, levels },
                    rows
                ));
            }
        }
        self.out
    }
}

/// Distances to scattered codes, four at a time and then one at a time, at one level.
struct Gather<'q, 'o> {
    query: &'q PreparedQuery<'q>,
    codes: &'q [u8],
    rows: &'q [u32],
    out: &'o mut [f32],
}

impl CodeOp for Gather<'_, '_> {
    type Output = ();

    #[inline(always)]
    fn run<S: CodeSimd>(self, simd: S) {
        let code_len = self.query.code_len;
        let code = |row: u32| {
            let start = row as usize * code_len;
            &self.codes[start..start + code_len]
        };
        let mut quads = self.rows.chunks_exact(4);
        let mut slots = self.out.chunks_exact_mut(4);
        for (quad, slots) in (&mut quads).zip(&mut slots) {
            let codes = [code(quad[0]), code(quad[1]), code(quad[2]), code(quad[3])];
            slots.copy_from_slice(&score_codes(simd, self.query, codes));
        }
        for (&row, out) in quads.remainder().iter().zip(slots.into_remainder()) {
            *out = score_codes(simd, self.query, [code(row)])[0];
        }
    }
}

/// `R` codes' distances at one level: the scattered-row form of [`Batch`]'s kernels, for codes
/// that are not laid end to end. Table codecs score one row at a time within it.
#[inline(always)]
fn score_codes<S: CodeSimd, const R: usize>(
    simd: S,
    query: &PreparedQuery<'_>,
    codes: [&[u8]; R],
) -> [f32; R] {
    let PreparedQuery { code_len, form, bias, primary, secondary, bits, levels } = *query;
    // Loops, not closures: a closure may be compiled outside the level's target features.
    let mut out = [0.0; R];
    match form {
        Form::Sq8L2 => kernels::sq8_l2(simd, primary, secondary, codes),
        Form::Sq8Dot => kernels::sq8_dot(simd, primary, codes).map(|d| bias + d),
        Form::Int4L2 => kernels::int4_l2(simd, primary, secondary, codes),
        Form::Int4Dot => kernels::int4_dot(simd, primary, codes).map(|d| bias + d),
        Form::PqTable => {
            for (out, code) in out.iter_mut().zip(codes) {
                *out = bias + kernels::pq_sum(simd, primary, code);
            }
            out
        }
        Form::RpqTable => {
            for (out, code) in out.iter_mut().zip(codes) {
                let (prefix, residual) = code.split_at(RPQ_PREFIX);
                let correction = f32::from_le_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]);
                *out = secondary[usize::from(prefix[0])]
                    + bias * correction
                    + kernels::pq_sum(simd, primary, residual);
            }
            out
        }
        Form::RaBitQ { bits: code_bits } => {
            let layout = rabitq::layout_of(code_len, code_bits);
            let query = rabitq::Query { bias, primary, secondary, bits, levels };
            rabitq::score_codes(simd, layout, query, codes)
        }
    }
}

/// Prepared buffers are written through here so each codec fills them in place.
impl QueryScratch {
    /// As [`buffers`](Self::buffers), with `bits` zeroed words and `levels` zeroed bytes.
    pub(crate) fn all_buffers(
        &mut self,
        primary: usize,
        secondary: usize,
        bits: usize,
        levels: usize,
    ) -> (&mut [f32], &mut [f32], &mut [u64], &mut [u8]) {
        self.bits.clear();
        self.bits.resize(bits, 0);
        self.levels.clear();
        self.levels.resize(levels, 0);
        let _ = self.buffers(primary, secondary);
        (&mut self.primary, &mut self.secondary, &mut self.bits, &mut self.levels)
    }

    pub(crate) fn buffers(&mut self, primary: usize, secondary: usize) -> (&mut [f32], &mut [f32]) {
        self.primary.clear();
        self.primary.resize(primary, 0.0);
        self.secondary.clear();
        self.secondary.resize(secondary, 0.0);
        (&mut self.primary, &mut self.secondary)
    }
}
