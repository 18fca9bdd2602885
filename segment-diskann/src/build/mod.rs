//! Building a Vamana segment: rows are pushed (a stream from other segments), then
//! [`VamanaBuilder::finish`] trains the codec, encodes every row, builds the graph and writes
//! the segment.

mod calibrate;
mod monitor;
mod options;
mod vamana;
mod writer;

use std::time::{Duration, Instant};
use strata_quantize::parallel::map_all;
use strata_segment::AttributeSections;

use strata_quantize::{Codec, Kernels, Metric};
use strata_storage::Storage;

pub use self::calibrate::Calibrated;
pub use self::monitor::{BuildMonitor, BuildProgress, BuildStage};
pub use self::options::{BuildOptions, WIDE_DIM};
use self::vamana::{KeptGraph, Params, Points};
use crate::format::MAX_ROWS;
use crate::reader::VamanaSegment;
use crate::{Result, VamanaError};

/// Rows of a kept graph's base read between releases of its resident pages.
const RELEASE_EVERY: u32 = 1 << 16;

pub use strata_segment::WrittenSegment;

/// How a build went: where its time went and what it made.
#[derive(Debug, Clone)]
pub struct BuildReport {
    pub segment: WrittenSegment,
    /// Training the codec on its sample.
    pub train: Duration,
    /// Encoding every row.
    pub encode: Duration,
    /// Building the graph.
    pub graph: Duration,
    /// Measuring recall at a ladder of list sizes.
    pub calibrate: Duration,
    /// Recall@10 measured at each list size (the calibration section).
    pub calibration: Vec<Calibrated>,
    /// Writing the object.
    pub write: Duration,
    /// Mean out-degree of the final graph.
    pub mean_degree: f64,
    /// [`BuildOptions::peak_memory`] for this build.
    pub peak_memory: u64,
}

/// Collects `(id, vector)` rows and builds a Vamana segment of them.
///
/// Vectors are kept as given: the caller has validated them (right dimension, normalized for
/// cosine), and the builder refuses non-finite components. Everything is held in memory until
/// [`finish`](Self::finish); [`BuildOptions::memory_budget`] bounds it.
#[derive(Debug)]
pub struct VamanaBuilder {
    dim: usize,
    metric: Metric,
    options: BuildOptions,
    vectors: Vec<f32>,
    ids: Vec<u64>,
    /// The graph carried over from an existing segment, if [`keep_graph`](Self::keep_graph)
    /// was called.
    kept: Option<KeptGraph>,
    attributes: AttributeSections,
}

impl VamanaBuilder {
    /// A builder of `dim`-dimensional rows for `metric`.
    pub fn new(dim: usize, metric: Metric, options: BuildOptions) -> Result<Self> {
        options.validate(dim).map_err(VamanaError::InvalidParameter)?;
        Ok(VamanaBuilder {
            dim,
            metric,
            options,
            vectors: Vec::new(),
            ids: Vec::new(),
            kept: None,
            attributes: AttributeSections::default(),
        })
    }

    /// Reserves room for `rows` more rows (so a build of known size never reallocates), after
    /// checking them against the memory budget.
    pub fn reserve(&mut self, rows: u64) -> Result<()> {
        let total = (self.ids.len() as u64).saturating_add(rows);
        if total > MAX_ROWS {
            return Err(VamanaError::InvalidParameter("a segment holds fewer than 2^32 rows"));
        }
        self.check_budget(total)?;
        let rows = usize::try_from(rows).map_err(|_| self.over_budget(total))?;
        self.ids.reserve_exact(rows);
        let values = rows.checked_mul(self.dim).ok_or_else(|| self.over_budget(total))?;
        self.vectors.reserve_exact(values);
        Ok(())
    }

    /// Appends one row.
    pub fn push(&mut self, id: u64, vector: &[f32]) -> Result<()> {
        if self.kept.is_some() {
            return Err(VamanaError::InvalidParameter("rows pushed after keep_graph"));
        }
        if vector.len() != self.dim {
            let (expected, found) = (self.dim, vector.len());
            return Err(crate::FileError::DimensionMismatch { expected, found }.into());
        }
        let row = self.ids.len() as u64;
        if let Some(index) = vector.iter().position(|x| !x.is_finite()) {
            return Err(VamanaError::NonFinite { row, id, index });
        }
        if row + 1 > MAX_ROWS {
            return Err(VamanaError::InvalidParameter("a segment holds fewer than 2^32 rows"));
        }
        self.check_budget(row + 1)?;
        self.vectors.extend_from_slice(vector);
        self.ids.push(id);
        Ok(())
    }

    /// Rows pushed so far.
    pub fn rows(&self) -> u64 {
        self.ids.len() as u64
    }

    /// Carries `base`'s graph into this build for the rows that survive, so that
    /// [`finish`](Self::finish) inserts only the other rows instead of building every list
    /// again (FreshDiskANN's StreamingMerge; a merge into a large segment then costs what its
    /// new rows cost).
    ///
    /// `row_map[r]` is the builder row of `base`'s row `r`, or `None` for a row left out
    /// (deleted). Call it after the last [`push`](Self::push): the surviving rows must have
    /// been pushed first, in `base`'s order, with the same ids. A list that lost more than a quarter of its neighbours is pruned again from
    /// the lost neighbours' own lists; one that lost fewer just drops them (a few missing
    /// edges of R cost little navigability, and repairing every touched list would cost as
    /// much as inserting it).
    pub fn keep_graph(&mut self, base: &VamanaSegment, row_map: &[Option<u32>]) -> Result<()> {
        if base.dim() != self.dim || base.metric() != self.metric {
            return Err(VamanaError::InvalidParameter(
                "the kept graph's segment has another dimension or metric",
            ));
        }
        if row_map.len() as u64 != base.rows() {
            return Err(VamanaError::InvalidParameter("the row map must cover every base row"));
        }
        let r = self.options.max_degree_for(self.dim);
        let mut kept = KeptGraph::new(self.ids.len(), r);
        let mut links = Vec::new();
        for (row, out) in row_map.iter().enumerate() {
            let Some(out) = *out else { continue };
            let row = row as u32;
            let in_order = out as usize == kept.rows() && kept.rows() < self.ids.len();
            if !in_order || self.ids[out as usize] != base.id(row) {
                return Err(VamanaError::InvalidParameter(
                    "kept rows must be pushed first, in the base segment's order, with its ids",
                ));
            }
            links.clear();
            let neighbors = base.neighbors(row)?;
            links.extend(neighbors.iter().filter_map(|&n| row_map[n as usize]));
            let repair = (links.len() as f32) < KeptGraph::REPAIR_BELOW * neighbors.len() as f32;
            if repair {
                for &lost in neighbors.iter().filter(|&&n| row_map[n as usize].is_none()) {
                    for &next in base.neighbors(lost)? {
                        if links.len() >= 4 * r {
                            break;
                        }
                        if let Some(next) = row_map[next as usize].filter(|&next| next != out) {
                            links.push(next);
                        }
                    }
                }
            }
            kept.push(&links, repair);
            // The lists are read once, in order: drop the pages behind the cursor as it goes,
            // so copying a large base's graph does not hold its whole file resident.
            if row % RELEASE_EVERY == RELEASE_EVERY - 1 {
                base.release_resident();
            }
        }
        self.kept = (kept.rows() > 0).then_some(kept);
        Ok(())
    }

    /// Adds the rows' attribute sections (columns and payloads, in push order), written by
    /// [`finish`](Self::finish).
    pub fn set_attributes(&mut self, sections: AttributeSections) {
        self.attributes = sections;
    }

    /// Trains the codec, encodes every row, builds the graph and writes the segment to `key`.
    pub fn finish(mut self, storage: &dyn Storage, key: &str) -> Result<BuildReport> {
        let rows = self.ids.len();
        if rows == 0 {
            return Err(VamanaError::Empty);
        }
        let threads = self.options.thread_count();
        let kind = self.options.codec_for(self.dim, rows as u64);
        let monitor = self.options.monitor.clone();
        let total = rows as u64;
        let stop = |stage, done| match monitor.tick(stage, done, total) {
            true => Err(VamanaError::Cancelled),
            false => Ok(()),
        };
        stop(BuildStage::Train, 0)?;
        let started = Instant::now();
        let train = self.options.train.clone().seed(self.options.seed).threads(threads);
        let codec = Codec::train(kind, self.metric, self.dim, &self.vectors, &train)?;
        let train_time = started.elapsed();

        stop(BuildStage::Encode, 0)?;
        let started = Instant::now();
        let codes = encode_all(&codec, &self.vectors, threads);
        let encode_time = started.elapsed();
        stop(BuildStage::Link, 0)?;

        let started = Instant::now();
        let lift = (self.metric == Metric::InnerProduct)
            .then(|| Points::inner_product_lift(&self.vectors, self.dim));
        let points = Points { vectors: &self.vectors, dim: self.dim, lift };
        let params = Params {
            max_degree: self.options.max_degree_for(self.dim),
            search_list: self.options.search_list_for(self.dim),
            alpha: self.options.alpha,
            passes: self.options.passes_for(self.dim),
            threads,
            seed: self.options.seed,
            monitor: &monitor,
        };
        let built = match self.kept.take() {
            Some(kept) => vamana::extend(&points, &params, Kernels::detected(), kept),
            None => vamana::build(&points, &params, Kernels::detected()),
        };
        let (graph, medoid) = built.ok_or(VamanaError::Cancelled)?;
        stop(BuildStage::Calibrate, 0)?;
        let graph_time = started.elapsed();
        let edges: usize = (0..rows as u32).map(|row| graph.neighbors(row).len()).sum();

        let started = Instant::now();
        let measured = calibrate::Segment {
            vectors: &self.vectors,
            dim: self.dim,
            metric: self.metric,
            graph: &graph,
            codec: &codec,
            codes: &codes,
            medoid,
        };
        let calibration = calibrate::calibrate(&measured, self.options.seed, threads);
        let calibrate_time = started.elapsed();
        stop(BuildStage::Write, 0)?;

        let started = Instant::now();
        let segment = writer::write(
            storage,
            key,
            &writer::Contents {
                dim: self.dim,
                metric: self.metric,
                max_degree: self.options.max_degree_for(self.dim),
                medoid,
                vectors: &self.vectors,
                ids: &self.ids,
                graph: &graph,
                codec: &codec,
                codes: &codes,
                calibration: &calibration,
                attributes: &self.attributes,
            },
        )?;
        Ok(BuildReport {
            segment,
            train: train_time,
            encode: encode_time,
            graph: graph_time,
            calibrate: calibrate_time,
            calibration,
            write: started.elapsed(),
            mean_degree: edges as f64 / rows as f64,
            peak_memory: self.options.peak_memory(self.dim, rows as u64),
        })
    }

    fn check_budget(&self, rows: u64) -> Result<()> {
        match self.options.memory_budget {
            Some(budget) if self.options.peak_memory(self.dim, rows) > budget => {
                Err(self.over_budget(rows))
            }
            _ => Ok(()),
        }
    }

    fn over_budget(&self, rows: u64) -> VamanaError {
        VamanaError::OverBudget {
            rows,
            needed: self.options.peak_memory(self.dim, rows),
            budget: self.options.memory_budget.unwrap_or(0),
        }
    }
}

/// Every row's code, encoded on `threads` threads.
fn encode_all(codec: &Codec, vectors: &[f32], threads: usize) -> Vec<u8> {
    let dim = codec.dim();
    let code_len = codec.code_len();
    let rows = vectors.len() / dim;
    let mut codes = vec![0u8; rows * code_len];
    let per_thread = rows.div_ceil(threads.max(1)).max(1);
    let chunks: Vec<_> =
        vectors.chunks(per_thread * dim).zip(codes.chunks_mut(per_thread * code_len)).collect();
    map_all(chunks, |(vectors, codes)| codec.encode_batch(vectors, codes));
    codes
}
