//! What a Vamana build is told: graph shape, codes, threads, seed and memory budget.

use strata_quantize::{CodecKind, TrainOptions};

use super::monitor::BuildMonitor;
use crate::format::NodeLayout;

/// Dimensions from which builds default to a smaller graph (R 48, L 48).
pub const WIDE_DIM: usize = 512;

/// The longest build search list accepted: lists are sorted arrays searched per insert, and
/// past a few hundred they only slow the build (the default is 64).
const MAX_BUILD_LIST: usize = 1 << 16;

/// Options of a Vamana build. Defaults follow DiskANN (R = 64, alpha = 1.2) with L = 64 and
/// residual PQ codes of one byte per two dimensions plus five, on every core; from
/// [`WIDE_DIM`] dimensions up, R = 48, L = 48 and a byte per four dimensions (see
/// [`max_degree`](Self::max_degree) and [`codec_for`](Self::codec_for)).
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// `None`: the default for the build's dimension.
    pub(crate) max_degree: Option<usize>,
    pub(crate) search_list: Option<usize>,
    pub(crate) alpha: f32,
    pub(crate) passes: Option<usize>,
    pub(crate) codec: Option<CodecKind>,
    pub(crate) train: TrainOptions,
    pub(crate) threads: Option<usize>,
    pub(crate) seed: u64,
    pub(crate) memory_budget: Option<u64>,
    pub(crate) monitor: BuildMonitor,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            max_degree: None,
            search_list: None,
            alpha: 1.2,
            passes: None,
            codec: None,
            train: TrainOptions::default(),
            threads: None,
            seed: 0x5EED_7A3A,
            memory_budget: None,
            monitor: BuildMonitor::default(),
        }
    }
}

impl BuildOptions {
    /// R: the most neighbours a node keeps. Default 64, or 48 from [`WIDE_DIM`] dimensions:
    /// each distance there costs six times a 128-d one, and on 768-d clustered data R 48 with
    /// build L 48 built 1.9x faster than R 64 / L 100 and searched faster at recall 0.95
    /// (9.0k against 7.8k q/s, docs/BENCHMARKS.md).
    pub fn max_degree(mut self, max_degree: usize) -> Self {
        self.max_degree = Some(max_degree);
        self
    }

    /// R for `dim`-dimensional rows.
    pub fn max_degree_for(&self, dim: usize) -> usize {
        self.max_degree.unwrap_or(if dim >= WIDE_DIM { 48 } else { 64 })
    }

    /// The build's L for `dim`-dimensional rows.
    pub fn search_list_for(&self, dim: usize) -> usize {
        self.search_list.unwrap_or(if dim >= WIDE_DIM { 48 } else { 64 })
    }

    /// L: the candidate list of the build's searches; larger builds a better graph, slower.
    /// Default 64, or 48 from [`WIDE_DIM`] dimensions. DiskANN's 100 built a graph that
    /// reached recall@10 0.954 at search L 12 on 200k x 128 clustered rows where 64 reached
    /// 0.943, in twice the time (24.0 against 12.3 s); with 64-byte codes a search list a
    /// little longer buys that back, and the load rate is a bar of its own.
    pub fn search_list(mut self, search_list: usize) -> Self {
        self.search_list = Some(search_list);
        self
    }

    /// The prune's slack, at least 1: larger keeps longer edges, which shortens
    /// searches. Default 1.2.
    pub fn alpha(mut self, alpha: f32) -> Self {
        self.alpha = alpha;
        self
    }

    /// Insertion passes, 1 or 2. Default 1, or 2 from [`WIDE_DIM`] dimensions.
    ///
    /// One pass grows the graph from empty (ParlayANN); two start from a random R-regular
    /// graph, re-link every row with alpha 1 and half the list, then again at full effort
    /// (DiskANN). On 200k x 128 clustered rows one pass reached two passes' recall at every
    /// search L in 54% of the graph time. On 100k x 768 clustered rows (cosine, R 48, L 48) it
    /// lost 17 points at search L 16 (0.785 against 0.960); a build L of 96 won back only
    /// 13 of them at a longer build than two passes, and two passes from an empty graph
    /// reached 0.932 (docs/BENCHMARKS.md).
    pub fn passes(mut self, passes: usize) -> Self {
        self.passes = Some(passes);
        self
    }

    /// Passes for `dim`-dimensional rows.
    pub fn passes_for(&self, dim: usize) -> usize {
        self.passes.unwrap_or(if dim >= WIDE_DIM { 2 } else { 1 })
    }

    /// The codes kept in RAM. Default: RaBitQ, 4 bits a dimension, 2 from [`WIDE_DIM`]
    /// dimensions, or SQ8 below 256 rows (see [`codec_for`](Self::codec_for)).
    pub fn codec(mut self, codec: CodecKind) -> Self {
        self.codec = Some(codec);
        self
    }

    /// How the codec is trained (sample size, iterations; its seed is this build's seed).
    pub fn train(mut self, train: TrainOptions) -> Self {
        self.train = train;
        self
    }

    /// Threads for training, encoding and the graph. Default: every core. The result does not
    /// depend on it.
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads.max(1));
        self
    }

    /// Seeds the insertion order, the codec's training sample and the calibration's rows.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Refuse to build (with [`VamanaError::OverBudget`](crate::VamanaError::OverBudget)) when
    /// [`peak_memory`](Self::peak_memory) for the rows pushed would exceed `bytes`. A push
    /// that would pass it fails; nothing is held beyond it.
    pub fn memory_budget(mut self, bytes: u64) -> Self {
        self.memory_budget = Some(bytes);
        self
    }

    /// Reports the build's progress and stops it when asked (see [`BuildMonitor`]).
    pub fn monitor(mut self, monitor: BuildMonitor) -> Self {
        self.monitor = monitor;
        self
    }

    /// The codec a build of `rows` rows of `dim` dimensions uses.
    ///
    /// The code's precision decides how long a search list must be: the walk ranks
    /// candidates by code distance and only expands (and scores exactly) the best L; each
    /// code scored costs little, each expansion a node read and an exact distance. The default
    /// is RaBitQ at the bytes residual PQ used to take: 4 bits a dimension (`dim / 2` bytes)
    /// below [`WIDE_DIM`], 2 bits (`dim / 4`) from it. On 100k clustered rows it searched at
    /// recall@10 0.95 1.7x faster than residual PQ of about the same bytes at 128-d (44.9k
    /// against 26.1k q/s) and 1.8x at 768-d (18.2k against 10.0k), docs/BENCHMARKS.md (issue 21).
    /// Below 256 rows, SQ8: no per-query tables, and its extra bytes are few.
    pub fn codec_for(&self, dim: usize, rows: u64) -> CodecKind {
        self.codec.unwrap_or(if rows >= strata_quantize::codec::CENTROIDS as u64 {
            CodecKind::RaBitQ { bits: if dim >= WIDE_DIM { 2 } else { 4 } }
        } else {
            CodecKind::Sq8
        })
    }

    /// Peak bytes a build of `rows` rows of `dim` dimensions holds: the vectors and ids pushed,
    /// the graph with its slack, the codes, and each thread's search buffers. Training's
    /// sample (at most a few MB) is not counted. A planner sizes its merges by this.
    pub fn peak_memory(&self, dim: usize, rows: u64) -> u64 {
        let vectors = rows * (dim as u64 * 4 + 8);
        let lift = rows * 4;
        let (max_degree, search_list) = (self.max_degree_for(dim), self.search_list_for(dim));
        let graph = super::vamana::graph_bytes(rows, max_degree);
        let codes = rows * self.codec_for(dim, rows).code_len(dim) as u64;
        // A 2-byte visited mark per row (with a quarter's headroom), the candidate list and the
        // prune pool, per thread; and the batch's new lists and back edges (at most 1/50 of
        // the rows, at least 256).
        let threads = self.thread_count() as u64;
        let per_thread = rows / 2 * 5 + (search_list as u64 + max_degree as u64) * 24;
        let batch = (rows / 50).clamp(256, 16_384) * max_degree as u64 * 16;
        vectors + lift + graph + codes + threads * per_thread + batch
    }

    pub(crate) fn thread_count(&self) -> usize {
        self.threads.unwrap_or_else(strata_quantize::parallel::current_threads)
    }

    pub(crate) fn validate(&self, dim: usize) -> Result<(), &'static str> {
        let max_degree = self.max_degree_for(dim);
        if max_degree == 0 || max_degree > 4096 {
            return Err("max_degree must be between 1 and 4096");
        }
        if !(1..=MAX_BUILD_LIST).contains(&self.search_list_for(dim)) {
            return Err("search_list must be between 1 and 65,536");
        }
        if !(1..=2).contains(&self.passes_for(dim)) {
            return Err("passes must be 1 or 2");
        }
        if !(self.alpha >= 1.0 && self.alpha.is_finite()) {
            return Err("alpha must be finite and at least 1");
        }
        if dim == 0 || NodeLayout::new(dim, max_degree).is_none() {
            return Err("dimension must be at least 1 and a node must fit in 4 GiB");
        }
        if let Some(CodecKind::Pq { subspaces } | CodecKind::Rpq { subspaces }) = self.codec
            && (subspaces == 0 || subspaces > dim)
        {
            return Err("PQ needs between 1 and dim sub-spaces");
        }
        Ok(())
    }
}
